//! Pod networking for the process runtime: a network namespace per pod, wired by the
//! standard CNI plugins (`bridge` with `host-local` addresses from the node's pod CIDR, and
//! `loopback`), called the way a container runtime calls them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{Error, Result};

/// Where the plugins are and what network they make.
#[derive(Clone, Debug)]
pub struct CniConfig {
    /// The plugin binaries (Debian: /usr/lib/cni).
    pub bin_dir: PathBuf,
    /// The node's bridge.
    pub bridge: String,
    /// The node's pod CIDR; pod IPs come from it.
    pub subnet: String,
    /// host-local's allocation records.
    pub ipam_dir: PathBuf,
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

fn run_plugin(
    cfg: &CniConfig,
    plugin: &str,
    command: &str,
    id: &str,
    netns: &Path,
    ifname: &str,
    conf: &Value,
) -> Result<Value> {
    let mut child = Command::new(cfg.bin_dir.join(plugin))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", &cfg.bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Io(format!(
                "CNI plugin {}: {e}",
                cfg.bin_dir.join(plugin).display()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        let msg = v["msg"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).to_string());
        return Err(Error::Io(format!("CNI {plugin} {command}: {msg}")));
    }
    Ok(v)
}

fn bridge_conf(cfg: &CniConfig) -> Value {
    json!({"cniVersion": "1.0.0", "name": "rkube", "type": "bridge", "bridge": cfg.bridge,
        "isGateway": true, "ipMasq": false, "hairpinMode": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": cfg.subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": cfg.ipam_dir}})
}

fn loopback_conf() -> Value {
    json!({"cniVersion": "1.0.0", "name": "rkube-lo", "type": "loopback"})
}

/// Creates the namespace `name` and wires it; returns the pod's IP.
pub fn add(cfg: &CniConfig, id: &str, name: &str) -> Result<String> {
    let st = Command::new("ip").args(["netns", "add", name]).output()?;
    if !st.status.success() {
        return Err(Error::Io(format!(
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&st.stderr).trim()
        )));
    }
    let ns = netns_path(name);
    let wired = run_plugin(cfg, "loopback", "ADD", id, &ns, "lo", &loopback_conf())
        .and_then(|_| run_plugin(cfg, "bridge", "ADD", id, &ns, "eth0", &bridge_conf(cfg)));
    let result = match wired {
        Ok(r) => r,
        Err(e) => {
            del(cfg, id, name);
            return Err(e);
        }
    };
    result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .ok_or_else(|| Error::Io(format!("CNI bridge ADD returned no address: {result}")))
}

/// Unwires and removes the namespace; safe to repeat.
pub fn del(cfg: &CniConfig, id: &str, name: &str) {
    let ns = netns_path(name);
    if let Err(e) = run_plugin(cfg, "bridge", "DEL", id, &ns, "eth0", &bridge_conf(cfg)) {
        tracing::debug!(error = %e, "CNI DEL");
    }
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

/// Deletes the network namespaces of the pods a process runtime rooted at `root` created,
/// without the plugins, and the node's egress rule: for a node that is gone for good
/// (killed, then removed).
pub fn remove_pod_networks(root: &Path) {
    super::egress::remove(root);
    for e in std::fs::read_dir(root.join("sandboxes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let sandbox: Value = std::fs::read(e.path().join("sandbox.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Some(ns) = sandbox["netns"].as_str() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
