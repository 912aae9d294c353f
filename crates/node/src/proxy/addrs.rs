//! ClusterIPs made local, so the userspace proxy can listen on them: addresses inside
//! 127.0.0.0/8 are local already; any other is added to a dummy interface of the node's
//! own (root only), as kube-proxy's IPVS mode does with `kube-ipvs0`. Where the kernel
//! has no dummy interfaces (some containers), they go on `lo` under a label of the node's
//! own instead.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::{Error, Result};

/// The dummy interface of `node`: `rks-` and a hash of the name, so several node agents
/// on one host keep their own (an interface name has at most 15 bytes).
pub fn interface_name(node: &str) -> String {
    format!("rks-{:08x}", super::hash(node) as u32)
}

/// The label of the node's addresses on `lo` (`lo:` and the interface name: 15 bytes).
fn lo_label(node: &str) -> String {
    format!("lo:{}", interface_name(node))
}

/// Removes what the proxy of `node` added, also after it was killed.
pub fn remove_all(node: &str) {
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &interface_name(node)])
        .output();
    let _ = std::process::Command::new("ip")
        .args(["addr", "flush", "dev", "lo", "label", &lo_label(node)])
        .output();
}

pub struct Addrs {
    node: String,
    /// The device the addresses are on (the dummy interface, or `lo`), once there is one.
    device: Option<String>,
    root: bool,
    added: BTreeSet<Ipv4Addr>,
}

/// Runs `ip ARGS`; what is there already counts as done.
async fn ip(args: &[&str]) -> Result<()> {
    let command = format!("ip {}", args.join(" "));
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| Error::io(&command, e))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("File exists") {
        Ok(())
    } else {
        Err(Error::Command {
            command,
            output: err.trim().to_string(),
        })
    }
}

impl Addrs {
    pub fn new(node: &str) -> Self {
        Addrs {
            node: node.to_string(),
            device: None,
            root: rustix::process::geteuid().is_root(),
            added: BTreeSet::new(),
        }
    }

    /// Makes `want` local (and only those of them this proxy added before stay added).
    /// Fails with every address that could not be added or removed, or with the one
    /// error that left no device to add them to.
    pub async fn sync(&mut self, want: &BTreeSet<Ipv4Addr>) -> Result<(), Vec<Error>> {
        let mut errs = Vec::new();
        for gone in self.added.difference(want).copied().collect::<Vec<_>>() {
            let cidr = format!("{gone}/32");
            let dev = self.device.clone().unwrap_or_default();
            if let Err(e) = ip(&["addr", "del", &cidr, "dev", &dev]).await {
                errs.push(e);
            }
            self.added.remove(&gone);
        }
        for ip_ in want.iter().filter(|ip| !ip.is_loopback()) {
            if self.added.contains(ip_) {
                continue;
            }
            if !self.root {
                errs.push(Error::invalid(
                    format!("ClusterIP {ip_}"),
                    "only root can make it local; give the apiserver a --service-cluster-ip-range inside 127.0.0.0/8 to run the proxy without root",
                ));
                continue;
            }
            let dev = match &self.device {
                Some(d) => d.clone(),
                None => {
                    let d = self.open_device().await.map_err(|e| vec![e])?;
                    self.device = Some(d.clone());
                    d
                }
            };
            let cidr = format!("{ip_}/32");
            let mut args = vec!["addr", "add", &cidr, "dev", &dev];
            let label = lo_label(&self.node);
            if dev == "lo" {
                args.extend(["label", &label]);
            }
            match ip(&args).await {
                Ok(()) => {
                    self.added.insert(*ip_);
                }
                Err(e) => errs.push(e),
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The node's dummy interface, up; `lo` where the kernel has no dummy interfaces.
    async fn open_device(&self) -> Result<String> {
        let link = interface_name(&self.node);
        match ip(&["link", "add", &link, "type", "dummy"]).await {
            Ok(()) => {
                ip(&["link", "set", &link, "up"]).await?;
                Ok(link)
            }
            Err(Error::Command { output, .. }) if output.contains("Unknown device type") => {
                Ok("lo".into())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the interface and every address the proxy added.
    pub async fn clear(&mut self) {
        if self.root {
            let node = self.node.clone();
            let _ = tokio::task::spawn_blocking(move || remove_all(&node)).await;
        }
        self.added.clear();
        self.device = None;
    }
}
