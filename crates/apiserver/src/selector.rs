//! Label selectors (equality- and set-based) and field selectors, with Kubernetes' syntax.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_of(s: &str, sel: &str) -> Result<BTreeSet<String>> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| {
            bad(
                "labelSelector",
                sel,
                "expected a parenthesised set of values",
            )
        })?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

fn bad(field: &str, sel: &str, why: &str) -> Error {
    Error::BadRequest(format!(
        "unable to parse requirement: {field} {sel:?}: {why}"
    ))
}

impl LabelSelector {
    pub fn parse(sel: &str) -> Result<Self> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top(sel) {
            let p = part.trim();
            if p.is_empty() {
                return Err(bad("labelSelector", sel, "empty requirement"));
            }
            let req = if let Some((k, v)) = p.split_once("!=") {
                Req::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set_of(v, sel)?)
            } else if let Some((k, v)) = p.split_once(" in ") {
                Req::In(k.trim().into(), set_of(v, sel)?)
            } else if let Some(k) = p.strip_prefix('!') {
                Req::NotExists(k.trim().into())
            } else if p.contains(' ') || p.contains('(') {
                return Err(bad("labelSelector", sel, "unknown operator"));
            } else {
                Req::Exists(p.into())
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether labels given by `get` satisfy every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `field=value` and `field!=value` terms, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(sel: &str) -> Result<Self> {
        let mut terms = Vec::new();
        if sel.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for p in sel.split(',') {
            let p = p.trim();
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(bad(
                    "fieldSelector",
                    sel,
                    "expected field=value or field!=value",
                ));
            };
            terms.push((k.trim().to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _, _)| k.as_str())
    }

    pub fn matches(&self, get: impl Fn(&str) -> String) -> bool {
        self.0.iter().all(|(k, eq, v)| (get(k) == *v) == *eq)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn m(sel: &str, labels: &[(&str, &str)]) -> bool {
        let l: HashMap<&str, &str> = labels.iter().cloned().collect();
        LabelSelector::parse(sel)
            .unwrap()
            .matches(|k| l.get(k).copied())
    }

    #[test]
    fn label_selectors() {
        let l = [("app", "web"), ("tier", "front")];
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("env notin (prod)", true),
            ("app=db", false),
        ] {
            assert_eq!(m(sel, &l), want, "{sel}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        let get = |phase: &'static str| {
            move |k: &str| match k {
                "spec.nodeName" => "n1".to_string(),
                "status.phase" => phase.to_string(),
                _ => String::new(),
            }
        };
        assert!(f.matches(get("Running")));
        assert!(!f.matches(get("Failed")));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
