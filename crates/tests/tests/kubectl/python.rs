//! The Python `kubernetes` client: create, read, list with a selector, patch and delete,
//! with a `watch.Watch().stream` that sees every change.

use std::path::Path;

use rkube_tests::kubectl::run_python;

const PROGRAM: &str = r#"
import json, threading, time
from kubernetes import client, config, watch
config.load_kube_config()
v1 = client.CoreV1Api()
ns = "default"
seen, ready = [], threading.Event()
rv = v1.list_namespaced_config_map(ns).metadata.resource_version
def follow():
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, ns, label_selector="py=1",
                       resource_version=rv, timeout_seconds=30):
        seen.append([ev["type"], ev["object"].metadata.name, ev["object"].data])
        if ev["type"] == "DELETED":
            w.stop()
t = threading.Thread(target=follow)
t.start()
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="pycm", labels={"py": "1"}),
                        data={"a": "1"})
created = v1.create_namespaced_config_map(ns, cm)
read = v1.read_namespaced_config_map("pycm", ns)
listed = [c.metadata.name for c in
          v1.list_namespaced_config_map(ns, label_selector="py=1").items]
other = [c.metadata.name for c in
         v1.list_namespaced_config_map(ns, label_selector="py=2").items]
v1.patch_namespaced_config_map("pycm", ns, {"data": {"b": "2"}})
patched = v1.read_namespaced_config_map("pycm", ns).data
v1.delete_namespaced_config_map("pycm", ns)
t.join(40)
print(json.dumps({"uid": created.metadata.uid, "read": read.data, "listed": listed,
                  "other": other, "patched": patched, "seen": seen}))
"#;

pub fn check(kubeconfig: &Path) {
    let out = run_python(PROGRAM, kubeconfig);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("the program's JSON");
    assert!(!v["uid"].as_str().unwrap_or("").is_empty(), "{v}");
    assert_eq!(v["read"], serde_json::json!({"a": "1"}));
    assert_eq!(v["listed"], serde_json::json!(["pycm"]));
    assert_eq!(v["other"], serde_json::json!([]));
    assert_eq!(v["patched"], serde_json::json!({"a": "1", "b": "2"}));
    let types: Vec<&str> = v["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .map(|e| e[0].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{v}");
}
