//! Bad input over REST, each answered with a Status naming the problem, and nothing
//! written: a malformed body, an unknown field under Strict, a JSON patch to a missing
//! path, an apply without a fieldManager, a protobuf body with a wrong magic, and a watch
//! from a version the watch cache no longer holds (410 in an ERROR event). Attacks are
//! refused the same way: no credentials (401), and a ServiceAccount token with no grants
//! listing secrets, creating, exec'ing or impersonating an admin (403).

use std::path::Path;

use rkube_tests::kubectl::run_python;

const PROGRAM: &str = r#"
import json, urllib.parse, urllib3
from kubernetes import client, config
config.load_kube_config()
cfg = client.Configuration.get_default_copy()
http = urllib3.PoolManager(cert_file=cfg.cert_file, key_file=cfg.key_file, ca_certs=cfg.ssl_ca_cert)
v1 = client.CoreV1Api()
ns = "default"
base = "/api/v1/namespaces/default/configmaps"

def raw(method, path, body=None, ctype=None, query=None):
    url = cfg.host + path + ("?" + urllib.parse.urlencode(query) if query else "")
    headers = {"Accept": "application/json"}
    if ctype:
        headers["Content-Type"] = ctype
    r = http.request(method, url, body=body, headers=headers, preload_content=True)
    return r.status, r.data

def call(method, path, body, ctype, query=None):
    status, data = raw(method, path, body, ctype, query)
    return status, json.loads(data or b"null")

def names():
    # Not the cluster CA, which the controller-manager publishes in a new namespace.
    return sorted(c.metadata.name for c in v1.list_namespaced_config_map(ns).items
                  if c.metadata.name != "kube-root-ca.crt")

out = {}
before = names()
out["malformed"] = call("POST", base, b'{"metadata": {"name": "bad"', "application/json")
out["unknown"] = call("POST", base, json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "strict"}, "bogus": 1}), "application/json",
    [("fieldValidation", "Strict")])
out["protobuf"] = call("POST", base, b"xyz\x00\x0a\x02\x08\x01", "application/vnd.kubernetes.protobuf")
v1.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="jp"), data={"a": "1"}))
rv = v1.read_namespaced_config_map("jp", ns).metadata.resource_version
out["jsonpatch"] = call("PATCH", base + "/jp", json.dumps([{"op": "replace", "path": "/data/missing", "value": "x"}]),
    "application/json-patch+json")
out["jp_after"] = v1.read_namespaced_config_map("jp", ns).metadata.resource_version == rv
out["apply"] = call("PATCH", base + "/applied", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n",
    "application/apply-patch+yaml")
v1.delete_namespaced_config_map("jp", ns)
# Attacks: no credentials at all, and a ServiceAccount token with no grants.
anon = urllib3.PoolManager(ca_certs=cfg.ssl_ca_cert)
def attack(method, path, token=None, body=None, extra=None):
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    headers.update(extra or {})
    r = anon.request(method, cfg.host + path, body=body, headers=headers)
    return r.status, json.loads(r.data or b"null")
token = v1.create_namespaced_service_account_token("default", ns,
    client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))).status.token
cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stolen"}})
out["anon_list"] = attack("GET", "/api/v1/pods")
out["anon_discovery"] = attack("GET", "/apis")
out["anon_create"] = attack("POST", base, body=cm)
out["sa_list"] = attack("GET", "/api/v1/namespaces/kube-system/secrets", token)
out["sa_create"] = attack("POST", base, token, cm)
out["sa_exec"] = attack("POST", "/api/v1/namespaces/default/pods/any/exec?command=id&stdout=true", token)
out["sa_impersonate"] = attack("GET", "/api/v1/namespaces/kube-system/secrets", token,
    extra={"Impersonate-User": "admin", "Impersonate-Group": "system:masters"})
out["after"] = names() == before
# Churn past the watch cache window, then watch from the first version.
for i in range(150):
    v1.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="churn-%d" % i)))
for i in range(150):
    v1.delete_namespaced_config_map("churn-%d" % i, ns)
status, data = raw("GET", base, query=[("watch", "true"), ("resourceVersion", "2"), ("timeoutSeconds", "5")])
out["watch"] = [status, [json.loads(l) for l in data.splitlines() if l.strip()]]
print(json.dumps(out))
"#;

fn assert_status(case: &serde_json::Value, code: u64, what: &str) {
    assert_eq!(case[0], code, "{what}: {case}");
    assert_eq!(case[1]["kind"], "Status", "{what}: {case}");
    assert_eq!(case[1]["code"], code, "{what}: {case}");
    assert!(
        !case[1]["message"].as_str().unwrap_or("").is_empty(),
        "{what}: {case}"
    );
}

pub fn check(kubeconfig: &Path) {
    let out = run_python(PROGRAM, kubeconfig);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("the program's JSON");
    assert_status(&v["malformed"], 400, "a malformed body");
    assert_status(&v["unknown"], 400, "an unknown field under Strict");
    let msg = v["unknown"][1]["message"].as_str().unwrap_or("");
    assert!(msg.contains("unknown field \"bogus\""), "{msg}");
    assert_status(&v["protobuf"], 400, "a protobuf body with a wrong magic");
    assert!(
        v["jsonpatch"][0] == 422 || v["jsonpatch"][0] == 400,
        "{}",
        v["jsonpatch"]
    );
    assert_eq!(v["jsonpatch"][1]["kind"], "Status");
    assert_eq!(v["jp_after"], true, "the failed JSON patch changed nothing");
    assert_status(&v["apply"], 400, "an apply without a fieldManager");
    let msg = v["apply"][1]["message"].as_str().unwrap_or("");
    assert!(msg.contains("fieldManager"), "{msg}");
    for case in ["anon_list", "anon_discovery", "anon_create"] {
        assert_status(&v[case], 401, case);
    }
    for case in ["sa_list", "sa_create", "sa_exec", "sa_impersonate"] {
        assert_status(&v[case], 403, case);
    }
    assert_eq!(v["after"], true, "no bad request wrote anything");
    let watch = &v["watch"];
    assert_eq!(watch[0], 200, "{watch}");
    let events = watch[1].as_array().expect("events");
    assert_eq!(events.len(), 1, "{watch}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}
