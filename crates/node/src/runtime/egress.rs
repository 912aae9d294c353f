//! Pod egress: one masquerade rule per node, in an nftables table of its own, for pod
//! traffic leaving the cluster's pod network (as ip-masq-agent does), so a pod reaches
//! addresses outside the cluster with the node's address, and the answers find their way
//! back. Traffic to pods — of this node or, by the cluster CIDR, of any other — keeps its
//! source. The table's name is kept in the runtime's directory, so whoever removes the
//! node's pod networks removes it too.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Error, Result};

const TABLE_FILE: &str = "egress-table";

/// The table of the node whose pod bridge is `bridge`.
pub fn table_name(bridge: &str) -> String {
    format!(
        "rkube-egress-{:06x}",
        crate::proxy::hash(bridge) & 0xff_ffff
    )
}

/// The `nft -f` script that (re)creates `table`: pods of `pod_cidr` going anywhere but
/// `pod_cidr` and `cluster_cidr` leave with the node's address.
pub fn script(table: &str, pod_cidr: &str, cluster_cidr: &str) -> String {
    format!(
        "table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {pod_cidr} ip daddr != {{ {pod_cidr}, {cluster_cidr} }} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io(format!("running nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Io(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Io(format!("running nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Io(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Puts the masquerade rule of the runtime at `root` in place (replacing an older one).
pub fn ensure(root: &Path, bridge: &str, pod_cidr: &str, cluster_cidr: &str) -> Result<()> {
    let table = table_name(bridge);
    std::fs::write(root.join(TABLE_FILE), &table)?;
    nft(&script(&table, pod_cidr, cluster_cidr))?;
    tracing::info!(%table, pod_cidr, cluster_cidr, "pod egress masqueraded");
    Ok(())
}

/// Removes the table of the runtime at `root`, if it made one; safe to repeat.
pub fn remove(root: &Path) {
    let Ok(table) = std::fs::read_to_string(root.join(TABLE_FILE)) else {
        return;
    };
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", table.trim()])
        .output();
    let _ = std::fs::remove_file(root.join(TABLE_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_masquerades_what_leaves_the_pod_network() {
        let t = table_name("rkube0");
        assert!(t.starts_with("rkube-egress-") && t.len() == 19, "{t}");
        assert_ne!(t, table_name("rkube1"));
        let s = script(&t, "10.244.1.0/24", "10.244.0.0/16");
        assert!(
            s.starts_with(&format!("table ip {t}\ndelete table ip {t}\n")),
            "{s}"
        );
        assert!(
            s.contains(
                "ip saddr 10.244.1.0/24 ip daddr != { 10.244.1.0/24, 10.244.0.0/16 } masquerade"
            ),
            "{s}"
        );
        assert_eq!(s.matches("masquerade").count(), 1);
    }
}
