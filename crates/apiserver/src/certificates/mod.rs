//! certificates.k8s.io: CertificateSigningRequests, their `status` and `approval`
//! subresources, and the bootstrap tokens new nodes make their first request with.
//!
//! The apiserver only records requests and decisions; the controller-manager approves and
//! signs them (`csrapproving`, `csrsigning`).

mod admission;
mod bootstrap;

use serde_json::Value;

pub use admission::CertificateSigning;
pub use bootstrap::{BootstrapTokens, BootstrapperScope, BOOTSTRAPPERS_GROUP};

pub const GROUP: &str = "certificates.k8s.io";
pub const KIND: &str = "CertificateSigningRequest";
/// The conditions only the `approval` subresource sets.
const APPROVAL: &[&str] = &["Approved", "Denied"];

pub fn is_csr(group: &str, kind: &str) -> bool {
    group == GROUP && kind == KIND
}

fn conditions(obj: &Value) -> Vec<Value> {
    obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn is_approval(c: &Value) -> bool {
    c["type"].as_str().is_some_and(|t| APPROVAL.contains(&t))
}

/// An update of `status`: everything but the Approved and Denied conditions, which stay
/// as stored.
pub fn merge_status(cur: &Value, obj: &Value) -> Value {
    let mut new = cur.clone();
    new["status"] = obj["status"].clone();
    let mut conds: Vec<Value> = conditions(cur).into_iter().filter(is_approval).collect();
    conds.extend(conditions(obj).into_iter().filter(|c| !is_approval(c)));
    set_conditions(&mut new, conds);
    new
}

/// An update of `approval`: only the Approved and Denied conditions.
pub fn merge_approval(cur: &Value, obj: &Value) -> Value {
    let mut new = cur.clone();
    let mut conds: Vec<Value> = conditions(cur)
        .into_iter()
        .filter(|c| !is_approval(c))
        .collect();
    conds.extend(conditions(obj).into_iter().filter(is_approval));
    set_conditions(&mut new, conds);
    new
}

fn set_conditions(obj: &mut Value, conds: Vec<Value>) {
    if conds.is_empty() {
        if let Some(st) = obj.get_mut("status").and_then(Value::as_object_mut) {
            st.remove("conditions");
        }
    } else {
        obj["status"]["conditions"] = Value::Array(conds);
    }
}

/// Whether the request carries condition `type_` with status True.
pub fn has_condition(obj: &Value, type_: &str) -> bool {
    conditions(obj)
        .iter()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_and_approval_each_change_only_their_conditions() {
        let cur = json!({"spec": {"request": "x"}, "status": {"conditions": [
            {"type": "Approved", "status": "True"}]}});
        let sneaky = json!({"spec": {"request": "y"}, "status": {"certificate": "c",
            "conditions": [{"type": "Failed", "status": "True"}]}});
        let s = merge_status(&cur, &sneaky);
        assert_eq!(s["spec"]["request"], "x");
        assert_eq!(s["status"]["certificate"], "c");
        assert_eq!(
            s["status"]["conditions"],
            json!([{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}])
        );
        // A status update cannot drop the approval either.
        let s = merge_status(&cur, &json!({"status": {}}));
        assert!(has_condition(&s, "Approved"));
        let a = merge_approval(
            &json!({"status": {"certificate": "c"}}),
            &json!({"status": {"certificate": "forged", "conditions": [
                {"type": "Denied", "status": "True"}, {"type": "Failed", "status": "True"}]}}),
        );
        assert_eq!(a["status"]["certificate"], "c");
        assert!(has_condition(&a, "Denied"));
        assert!(!has_condition(&a, "Failed"));
    }
}
