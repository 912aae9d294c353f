//! The ranges each running `rkube up` cluster on this host holds — its pod and Service
//! ranges and its NodePorts — as one file per cluster in a directory every user shares
//! (`$TMPDIR/rkube-up`). A second `rkube up` leaves them alone even before the first's
//! bridges, ClusterIPs or NodePorts show on the host (a node makes its bridge with its
//! first pod; loopback ClusterIPs and unused NodePorts never show). A claim lasts while
//! its `rkube up` runs: a killed one's is ignored, then removed. Claims are read and
//! written under a lock, so two `rkube up` started together never take the same ranges.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What one cluster holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The cluster's `--dir`, absolute.
    pub dir: PathBuf,
    /// Its `rkube up` process.
    pub pid: u32,
    pub cluster_cidr: String,
    pub service_cidr: String,
    /// `first-last`.
    pub node_ports: String,
}

impl Claim {
    /// Who holds it, for messages.
    pub fn holder(&self) -> String {
        format!(
            "the rkube up cluster in {} (pid {})",
            self.dir.display(),
            self.pid
        )
    }
}

/// The claims directory, locked while this lives.
pub struct Registry {
    dir: PathBuf,
    _lock: File,
}

/// Removes its claim when dropped (when `rkube up` ends).
pub struct Held(PathBuf);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Registry {
    /// Locks the host's claims directory (waiting for another `rkube up` that holds it).
    pub fn lock() -> anyhow::Result<Registry> {
        Self::lock_in(std::env::temp_dir().join("rkube-up"))
    }

    fn lock_in(dir: PathBuf) -> anyhow::Result<Registry> {
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // Shared by every user, as /tmp is; each removes only what it may.
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
        }
        let path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Registry { dir, _lock: lock })
    }

    /// The claims of the other clusters that run; claims of ended ones are removed.
    pub fn others(&self, own: &Path) -> Vec<Claim> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let claim = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Claim>(&b).ok());
            match claim {
                Some(c) if super::plan::alive(c.pid) => {
                    if c.dir != own {
                        out.push(c);
                    }
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        out.sort_by(|a, b| a.dir.cmp(&b.dir));
        out
    }

    /// Records `claim` until the returned guard is dropped.
    pub fn hold(&self, claim: &Claim) -> anyhow::Result<Held> {
        let path = self
            .dir
            .join(format!("{}.json", super::plan::tag(&claim.dir)));
        std::fs::write(&path, serde_json::to_vec(claim)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
        Ok(Held(path))
    }
}

impl Registry {
    /// Removes the claim of the cluster in `dir` (a killed `rkube up` left it).
    pub fn forget(&self, dir: &Path) {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let _ = std::fs::remove_file(self.dir.join(format!("{}.json", super::plan::tag(&dir))));
    }
}

/// The claims as networks that a new range must not overlap, each named for messages.
pub fn networks(claims: &[Claim]) -> Vec<(String, String)> {
    claims
        .iter()
        .flat_map(|c| {
            [
                (
                    c.cluster_cidr.clone(),
                    format!("the pods of {}", c.holder()),
                ),
                (
                    c.service_cidr.clone(),
                    format!("the Services of {}", c.holder()),
                ),
            ]
        })
        .collect()
}

/// Fails, naming the holder, when a cluster brought back would share a range with one
/// that started since.
pub fn still_free(mine: &Claim, others: &[Claim]) -> anyhow::Result<()> {
    let nets = networks(others);
    for (flag, cidr) in [
        ("--cluster-cidr", &mine.cluster_cidr),
        ("--service-cidr", &mine.service_cidr),
    ] {
        if let Some(who) = super::conflicts::collision(cidr, &nets) {
            anyhow::bail!(
                "the cluster in {} has {flag} {cidr}, which {who} now uses: stop that one \
                 first, or remove this one (`rkube up --down --dir {}`) and start anew",
                mine.dir.display(),
                mine.dir.display()
            );
        }
    }
    let mine_ports = super::conflicts::parse_ports(&mine.node_ports);
    for o in others {
        let theirs = super::conflicts::parse_ports(&o.node_ports);
        if let (Some(m), Some(t)) = (mine_ports, theirs) {
            anyhow::ensure!(
                m.1 < t.0 || t.1 < m.0,
                "the cluster in {} has NodePorts {}, which {} now uses: stop that one first, \
                 or remove this one (`rkube up --down --dir {}`) and start anew",
                mine.dir.display(),
                mine.node_ports,
                o.holder(),
                mine.dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(dir: &str, pid: u32) -> Claim {
        Claim {
            dir: PathBuf::from(dir),
            pid,
            cluster_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/16".into(),
            node_ports: "30000-32767".into(),
        }
    }

    #[test]
    fn claims_of_running_clusters_are_seen_and_ended_ones_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::lock_in(tmp.path().join("claims")).unwrap();
        // This test runs in a binary named `rkube-…`, so its pid is a live cluster's; a
        // pid beyond pid_max is an ended one.
        let me = claim("/a", std::process::id());
        let gone = claim("/b", u32::MAX - 1);
        let held = reg.hold(&me).unwrap();
        let stale = reg.hold(&gone).unwrap();
        let stale_path = stale.0.clone();
        std::mem::forget(stale);
        let seen = reg.others(Path::new("/elsewhere"));
        assert_eq!(seen, vec![me.clone()]);
        assert!(!stale_path.exists(), "the ended cluster's claim is removed");
        assert!(
            reg.others(Path::new("/a")).is_empty(),
            "its own is not another's"
        );
        let path = held.0.clone();
        drop(held);
        assert!(!path.exists(), "dropping the guard removes the claim");
        let again = reg.hold(&me).unwrap();
        std::mem::forget(again);
        reg.forget(Path::new("/a"));
        assert!(!path.exists(), "forgetting a cluster removes its claim");
    }

    #[test]
    fn claims_name_their_cluster_in_both_ranges() {
        let n = networks(&[claim("/x", 7)]);
        assert_eq!(n[0].0, "10.244.0.0/16");
        assert_eq!(n[0].1, "the pods of the rkube up cluster in /x (pid 7)");
        assert_eq!(n[1].1, "the Services of the rkube up cluster in /x (pid 7)");
    }

    #[test]
    fn a_cluster_brought_back_must_not_share_a_range_with_one_started_since() {
        let mut mine = claim("/mine", 0);
        let other = claim("/other", 9);
        let e = still_free(&mine, std::slice::from_ref(&other))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has --cluster-cidr 10.244.0.0/16, which the pods of the rkube up cluster in /other (pid 9) now uses"),
            "{e}"
        );
        mine.cluster_cidr = "10.245.0.0/16".into();
        mine.service_cidr = "10.97.0.0/16".into();
        let e = still_free(&mine, std::slice::from_ref(&other))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has NodePorts 30000-32767, which the rkube up cluster in /other"),
            "{e}"
        );
        mine.node_ports = "29000-29999".into();
        still_free(&mine, &[other]).unwrap();
    }
}
