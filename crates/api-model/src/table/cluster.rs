//! The rows of the cluster-wide plumbing kinds: Lease, EndpointSlice, RoleBinding and
//! ClusterRoleBinding, CertificateSigningRequest, the admission webhook configurations,
//! PriorityClass.

use serde_json::Value;

use super::format::{age, int, items, len, list_with_more, name, text};
use super::time::human_duration;
use super::ColumnType::{Boolean as B, Integer as I, String as S};
use super::{col, wide, Doc, Printer, AGE, NAME};

pub(super) static LEASE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Holder",
            S,
            Doc::Field("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
        ),
        AGE,
    ],
    cells: |l, now| {
        vec![
            name(l),
            text(&l["spec"]["holderIdentity"]).into(),
            age(l, now),
        ]
    },
    conditions: None,
};

const SLICE: &str = "io.k8s.api.discovery.v1.EndpointSlice";

pub(super) static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col("AddressType", S, Doc::Field(SLICE, "addressType")),
        col("Ports", S, Doc::Field(SLICE, "ports")),
        col("Endpoints", S, Doc::Field(SLICE, "endpoints")),
        AGE,
    ],
    cells: |s, now| {
        vec![
            name(s),
            text(&s["addressType"]).into(),
            slice_ports(s).into(),
            slice_endpoints(s).into(),
            age(s, now),
        ]
    },
    conditions: None,
};

const MAX_LISTED: usize = 3;

/// Up to three ports (the number, else the name, else `*`).
fn slice_ports(s: &Value) -> String {
    let ports = items(&s["ports"]);
    let list: Vec<String> = ports
        .iter()
        .take(MAX_LISTED)
        .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    list_with_more(&list, ports.len(), MAX_LISTED)
}

/// Up to three addresses of the endpoints.
fn slice_endpoints(s: &Value) -> String {
    let addresses = items(&s["endpoints"])
        .iter()
        .flat_map(|e| items(&e["addresses"]));
    let count = addresses.clone().count();
    let list: Vec<String> = addresses
        .take(MAX_LISTED)
        .map(|a| text(a).to_string())
        .collect();
    list_with_more(&list, count, MAX_LISTED)
}

pub(super) static ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Role",
            S,
            Doc::Field("io.k8s.api.rbac.v1.RoleBinding", "roleRef"),
        ),
        AGE,
        wide("Users", S, Doc::Text("Users in the roleBinding")),
        wide("Groups", S, Doc::Text("Groups in the roleBinding")),
        wide(
            "ServiceAccounts",
            S,
            Doc::Text("ServiceAccounts in the roleBinding"),
        ),
    ],
    cells: role_binding_cells,
    conditions: None,
};

fn role_binding_cells(rb: &Value, now: i64) -> Vec<Value> {
    let role = &rb["roleRef"];
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(&rb["subjects"]) {
        match text(&s["kind"]) {
            "ServiceAccount" => sas.push(format!("{}/{}", text(&s["namespace"]), text(&s["name"]))),
            "User" => users.push(text(&s["name"])),
            "Group" => groups.push(text(&s["name"])),
            _ => {}
        }
    }
    vec![
        name(rb),
        format!("{}/{}", text(&role["kind"]), text(&role["name"])).into(),
        age(rb, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        sas.join(", ").into(),
    ]
}

const CSR_SPEC: &str = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec";

pub(super) static CSR: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col("SignerName", S, Doc::Field(CSR_SPEC, "signerName")),
        col("Requestor", S, Doc::Field(CSR_SPEC, "request")),
        col(
            "RequestedDuration",
            S,
            Doc::Field(CSR_SPEC, "expirationSeconds"),
        ),
        col(
            "Condition",
            S,
            Doc::Field(
                "io.k8s.api.certificates.v1.CertificateSigningRequestStatus",
                "conditions",
            ),
        ),
    ],
    cells: |csr, now| {
        let spec = &csr["spec"];
        let signer = match text(&spec["signerName"]) {
            "" => "<none>",
            s => s,
        };
        let duration = spec["expirationSeconds"]
            .as_i64()
            .map_or_else(|| "<none>".to_string(), human_duration);
        vec![
            name(csr),
            age(csr, now),
            signer.into(),
            text(&spec["username"]).into(),
            duration.into(),
            csr_condition(csr).into(),
        ]
    },
    conditions: None,
};

/// `Denied`, `Approved` or `Pending`, then `,Failed` and `,Issued` where they apply.
fn csr_condition(csr: &Value) -> String {
    let status = &csr["status"];
    let has = |ty: &str| {
        items(&status["conditions"])
            .iter()
            .any(|c| text(&c["type"]) == ty)
    };
    let mut out = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        out.push_str(",Failed");
    }
    if !text(&status["certificate"]).is_empty() {
        out.push_str(",Issued");
    }
    out
}

pub(super) static WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Webhooks",
            I,
            Doc::Text("Webhooks indicates the number of webhooks registered in this configuration"),
        ),
        AGE,
    ],
    cells: |w, now| vec![name(w), len(&w["webhooks"]).into(), age(w, now)],
    conditions: None,
};

const PC_DEF: &str = "io.k8s.api.scheduling.v1.PriorityClass";

pub(super) static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Value", I, Doc::Field(PC_DEF, "value")),
        col("Global-Default", B, Doc::Field(PC_DEF, "globalDefault")),
        AGE,
        col(
            "PreemptionPolicy",
            S,
            Doc::Field(PC_DEF, "preemptionPolicy"),
        ),
    ],
    cells: |pc, now| {
        vec![
            name(pc),
            int(&pc["value"]).into(),
            pc["globalDefault"].as_bool().unwrap_or(false).into(),
            age(pc, now),
            text(&pc["preemptionPolicy"]).into(),
        ]
    },
    conditions: None,
};
