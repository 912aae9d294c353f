//! Query parameters of REST requests, read as Kubernetes reads them: booleans accept
//! `true`, `True` and `1` (the Python client sends `True`), repeated keys are kept.

use crate::error::{Error, Result};
use crate::handler::WriteOptions;

#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        Query {
            pairs: form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None | Some("") => Ok(false),
            Some("true" | "True" | "1" | "t" | "T" | "TRUE") => Ok(true),
            Some("false" | "False" | "0" | "f" | "F" | "FALSE") => Ok(false),
            Some(v) => Err(Error::BadRequest(format!(
                "{key}: Invalid value: {v:?}: must be a boolean"
            ))),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::BadRequest(format!("{key}: Invalid value: {v:?}: must be an integer"))
            }),
        }
    }

    /// `dryRun`, `fieldManager` and `force`.
    pub fn write_options(&self) -> Result<WriteOptions> {
        let dry = self.all("dryRun");
        if let Some(bad) = dry.iter().find(|d| d.as_str() != "All") {
            return Err(Error::BadRequest(format!(
                "dryRun: Unsupported value: {bad:?}: supported values: \"All\""
            )));
        }
        let manager = self.str("fieldManager");
        if manager.len() > 128 {
            return Err(Error::BadRequest(
                "fieldManager: Too long: may not be more than 128 bytes".into(),
            ));
        }
        Ok(WriteOptions {
            dry_run: !dry.is_empty(),
            field_manager: manager.to_string(),
            force: self.flag("force")?,
            ..Default::default()
        })
    }

    /// `fieldValidation`: Strict, Warn (the default) or Ignore.
    pub fn field_validation(&self) -> Result<Validation> {
        match self.str("fieldValidation") {
            "" | "Warn" => Ok(Validation::Warn),
            "Strict" => Ok(Validation::Strict),
            "Ignore" => Ok(Validation::Ignore),
            v => Err(Error::BadRequest(format!(
                "fieldValidation: Unsupported value: {v:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// What to do with unknown or duplicate fields in a request body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Validation {
    Strict,
    Warn,
    Ignore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubernetes_parameters() {
        let q = Query::parse(Some(
            "watch=True&command=sh&command=-c&dryRun=All&fieldValidation=Strict&limit=5",
        ));
        assert!(q.flag("watch").unwrap());
        assert_eq!(q.all("command"), ["sh", "-c"]);
        assert!(q.write_options().unwrap().dry_run);
        assert_eq!(q.field_validation().unwrap(), Validation::Strict);
        assert_eq!(q.int("limit").unwrap(), Some(5));
        assert!(Query::parse(Some("dryRun=Some")).write_options().is_err());
        assert!(Query::parse(Some("watch=maybe")).flag("watch").is_err());
        assert!(Query::parse(Some("fieldValidation=Loose"))
            .field_validation()
            .is_err());
    }
}
