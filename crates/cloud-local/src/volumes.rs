//! The `local` provider's volumes (`--volume-pool DIR`): each lives on one node, as a
//! sparse file `DIR/<node>/<name>.img` of the size asked for (type `block`, the default)
//! or a directory `DIR/<node>/<name>/` (type `directory`, size not enforced). A block
//! volume is attached as a loop device (`losetup`) and detached by tearing it down; the
//! node's kubelet makes its filesystem on first use.
//!
//! A volume's id is `<node>/<name>`, so every call finds it from the id alone and a
//! restarted provider needs no state but the pool. The pool must be on the nodes'
//! machine: the provider sets up loop devices on the machine it runs on (a single-machine
//! cluster, as `rkube up` makes).

use std::path::{Path, PathBuf};

/// The topology key of a volume's node.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// Where an attached block volume is: the loop device.
pub const DEVICE_PATH: &str = "devicePath";
/// Where an attached directory volume is.
pub const DIR_PATH: &str = "path";
/// The filesystem the kubelet makes on a block volume.
pub const FS_TYPE: &str = "fsType";
/// The smallest block volume (room for an ext4 journal).
pub const MIN_BLOCK_BYTES: u64 = 16 << 20;
const MIB: u64 = 1 << 20;

/// Why a volume call failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The request is wrong; retrying it does not help.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A volume of that name exists with another size or type.
    #[error("volume {name:?} exists as {existing}")]
    Conflict { name: String, existing: String },
    /// The volume is attached (delete) or on another node (attach).
    #[error("{0}")]
    Precondition(String),
    /// The machine failed (a file, `losetup`); retryable.
    #[error("{what}: {reason}")]
    Host { what: String, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> VolumeError {
    VolumeError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn host(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> VolumeError {
    move |e| VolumeError::Host {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// How a volume is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Block,
    Directory,
}

impl Kind {
    /// From the StorageClass parameter `type` (default `block`).
    pub fn parse(p: Option<&str>) -> Result<Kind, VolumeError> {
        match p.unwrap_or("block") {
            "block" | "" => Ok(Kind::Block),
            "directory" => Ok(Kind::Directory),
            other => Err(invalid(
                "parameters.type",
                format!("{other:?} is not one of block, directory"),
            )),
        }
    }
}

/// A volume as the pool keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub node: String,
    pub name: String,
    pub kind: Kind,
    pub bytes: u64,
}

impl Volume {
    pub fn id(&self) -> String {
        format!("{}/{}", self.node, self.name)
    }
}

/// A node or volume name: a DNS subdomain, so it is a plain file name in the pool.
fn check_name(field: &'static str, s: &str) -> Result<(), VolumeError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['.', '-'])
        && !s.contains("..");
    match ok {
        true => Ok(()),
        false => Err(invalid(
            field,
            format!("{s:?} is not a DNS subdomain (lowercase letters, digits, '-', '.')"),
        )),
    }
}

/// `(node, name)` of a volume id `<node>/<name>`.
pub fn parse_id(id: &str) -> Result<(&str, &str), VolumeError> {
    let (node, name) = id
        .split_once('/')
        .ok_or_else(|| invalid("volume_id", format!("{id:?} is not <node>/<name>")))?;
    check_name("volume_id", node)?;
    check_name("volume_id", name)?;
    Ok((node, name))
}

/// The node a providerID `local://<node>` names.
pub fn node_of_provider_id(id: &str) -> Result<&str, VolumeError> {
    let node = id
        .strip_prefix(crate::inventory::PROVIDER_ID_PREFIX)
        .ok_or_else(|| invalid("node_id", format!("{id:?} is not local://<node>")))?;
    check_name("node_id", node)?;
    Ok(node)
}

/// The size of a new block volume: what was asked, at least [`MIN_BLOCK_BYTES`], in
/// whole MiB, at most `limit` (0: no limit).
pub fn block_size(required: i64, limit: i64) -> Result<u64, VolumeError> {
    if required < 0 || limit < 0 {
        return Err(invalid("capacity_range", "negative bytes"));
    }
    let want = (required as u64).max(MIN_BLOCK_BYTES).div_ceil(MIB) * MIB;
    if limit > 0 && want > limit as u64 {
        return Err(invalid(
            "capacity_range.limit_bytes",
            format!("{limit} is below the smallest volume of {want} bytes"),
        ));
    }
    Ok(want)
}

/// The volumes under a pool directory.
pub struct Pool {
    dir: PathBuf,
    /// Attach, detach and delete of one pool one at a time: two Attach calls must not set
    /// up two loop devices on one file.
    lock: tokio::sync::Mutex<()>,
}

impl Pool {
    /// The pool at `dir`, made (mode 0700) if missing.
    pub fn open(dir: PathBuf) -> Result<Pool, VolumeError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir).map_err(host(dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(host(dir.display()))?;
        Ok(Pool {
            dir,
            lock: Default::default(),
        })
    }

    fn file(&self, node: &str, name: &str) -> PathBuf {
        self.dir.join(node).join(format!("{name}.img"))
    }

    fn directory(&self, node: &str, name: &str) -> PathBuf {
        self.dir.join(node).join(name)
    }

    /// The volume `name` on whichever node holds it.
    pub fn find(&self, name: &str) -> Result<Option<Volume>, VolumeError> {
        check_name("name", name)?;
        let nodes = match std::fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) => return Err(host(self.dir.display())(e)),
        };
        for entry in nodes.flatten() {
            let node = entry.file_name().to_string_lossy().into_owned();
            if check_name("node", &node).is_err() {
                continue;
            }
            if let Some(v) = self.find_on(&node, name)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn find_on(&self, node: &str, name: &str) -> Result<Option<Volume>, VolumeError> {
        let volume = |kind, bytes| Volume {
            node: node.to_string(),
            name: name.to_string(),
            kind,
            bytes,
        };
        let file = self.file(node, name);
        match std::fs::metadata(&file) {
            Ok(m) => return Ok(Some(volume(Kind::Block, m.len()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(host(file.display())(e)),
        }
        let dir = self.directory(node, name);
        Ok(dir.is_dir().then(|| volume(Kind::Directory, 0)))
    }

    /// Makes volume `name` on `node`, or returns the one made by an earlier call with the
    /// same name (on whichever node it went to). `bytes`: the size of a block volume.
    pub fn create(
        &self,
        name: &str,
        node: &str,
        kind: Kind,
        bytes: u64,
    ) -> Result<Volume, VolumeError> {
        check_name("name", name)?;
        check_name("node", node)?;
        if let Some(v) = self.find(name)? {
            let fits = v.kind == kind && (kind == Kind::Directory || v.bytes >= bytes);
            return match fits {
                true => Ok(v),
                false => Err(VolumeError::Conflict {
                    name: name.into(),
                    existing: format!("{:?} of {} bytes on {}", v.kind, v.bytes, v.node),
                }),
            };
        }
        let dir = self.dir.join(node);
        std::fs::create_dir_all(&dir).map_err(host(dir.display()))?;
        match kind {
            Kind::Block => {
                // Sized whole before it appears under its name: a crash leaves only a
                // temporary file, which the next call replaces.
                let file = self.file(node, name);
                let tmp = file.with_extension("img.tmp");
                let f = std::fs::File::create(&tmp).map_err(host(tmp.display()))?;
                f.set_len(bytes).map_err(host(tmp.display()))?;
                std::fs::rename(&tmp, &file).map_err(host(file.display()))?;
            }
            Kind::Directory => {
                use std::os::unix::fs::PermissionsExt;
                let d = self.directory(node, name);
                std::fs::create_dir_all(&d).map_err(host(d.display()))?;
                // Pods of any uid share it, as hostPath-like volumes are.
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
                    .map_err(host(d.display()))?;
            }
        }
        Ok(Volume {
            node: node.into(),
            name: name.into(),
            kind,
            bytes: if kind == Kind::Block { bytes } else { 0 },
        })
    }

    /// Deletes a volume; one already gone is not an error, one attached is.
    pub async fn delete(&self, id: &str) -> Result<(), VolumeError> {
        let (node, name) = parse_id(id)?;
        let _held = self.lock.lock().await;
        match self.find_on(node, name)? {
            None => Ok(()),
            Some(v) if v.kind == Kind::Block => {
                let file = self.file(node, name);
                if let Some(dev) = loops_of(&file).await?.first() {
                    return Err(VolumeError::Precondition(format!(
                        "volume {id} is attached at {dev}: detach it first"
                    )));
                }
                std::fs::remove_file(&file).map_err(host(file.display()))
            }
            Some(_) => {
                let d = self.directory(node, name);
                std::fs::remove_dir_all(&d).map_err(host(d.display()))
            }
        }
    }

    /// Makes volume `id` available on node `node`: what the node needs to find it.
    pub async fn attach(&self, id: &str, node: &str) -> Result<Vec<(String, String)>, VolumeError> {
        let (on, name) = parse_id(id)?;
        if on != node {
            return Err(VolumeError::Precondition(format!(
                "volume {id} lives on node {on}, not on {node}"
            )));
        }
        let _held = self.lock.lock().await;
        let v = self
            .find_on(on, name)?
            .ok_or_else(|| VolumeError::Precondition(format!("volume {id} does not exist")))?;
        if v.kind == Kind::Directory {
            let d = self.directory(on, name);
            return Ok(vec![(DIR_PATH.into(), d.display().to_string())]);
        }
        let file = self.file(on, name);
        // A device being torn down (size 0) is not the volume's any more.
        let live = loops_of(&file)
            .await?
            .into_iter()
            .find(|d| device_bytes(d) > 0);
        let dev = match live {
            Some(dev) => dev,
            None => losetup(&["-f", "--show"], &file).await?.trim().to_string(),
        };
        if !dev.starts_with("/dev/loop") {
            return Err(VolumeError::Host {
                what: format!("losetup {}", file.display()),
                reason: format!("unexpected device {dev:?}"),
            });
        }
        Ok(vec![
            (DEVICE_PATH.into(), dev),
            (FS_TYPE.into(), "ext4".into()),
        ])
    }

    /// Tears down the loop devices of volume `id`; a volume not attached (or gone) is not
    /// an error.
    pub async fn detach(&self, id: &str) -> Result<(), VolumeError> {
        let (node, name) = parse_id(id)?;
        let _held = self.lock.lock().await;
        let file = self.file(node, name);
        if !file.exists() {
            return Ok(());
        }
        for dev in loops_of(&file).await? {
            losetup(&["-d", &dev], Path::new("")).await?;
        }
        // The kernel lets a device go when its last opener does: wait for it, so that the
        // next Attach sets up a new one rather than finding this one dying.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = loops_of(&file).await?;
            if left.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(VolumeError::Host {
                    what: format!("detaching {}", file.display()),
                    reason: format!("{} still attached after 10s", left.join(", ")),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The size of block device `/dev/<name>` (0 when it is being torn down or unreadable).
fn device_bytes(dev: &str) -> u64 {
    let name = dev.trim_start_matches("/dev/");
    std::fs::read_to_string(format!("/sys/block/{name}/size"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(0, |sectors| sectors * 512)
}

/// Runs `losetup ARGS [FILE]`.
async fn losetup(args: &[&str], file: &Path) -> Result<String, VolumeError> {
    let mut c = tokio::process::Command::new("losetup");
    c.args(args);
    if !file.as_os_str().is_empty() {
        c.arg(file);
    }
    let fail = |reason: String| VolumeError::Host {
        what: format!("losetup {} {}", args.join(" "), file.display()),
        reason,
    };
    let out = c.output().await.map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The loop devices backed by `file` (`losetup -j`).
async fn loops_of(file: &Path) -> Result<Vec<String>, VolumeError> {
    let out = losetup(&["-j"], file).await?;
    Ok(parse_loops(&out))
}

/// Detaches every loop device backed by a volume file under pool directory `dir`, when
/// the provider (or the cluster) stops: the kernel frees a device still mounted once it is
/// unmounted. Returns the devices detached.
pub fn release_pool(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let nodes = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for node in nodes {
        let files = std::fs::read_dir(node.path())
            .into_iter()
            .flatten()
            .flatten();
        for f in files.filter(|f| f.path().extension().is_some_and(|x| x == "img")) {
            let listed = std::process::Command::new("losetup")
                .arg("-j")
                .arg(f.path())
                .output();
            let Ok(listed) = listed else { continue };
            for dev in parse_loops(&String::from_utf8_lossy(&listed.stdout)) {
                let detached = std::process::Command::new("losetup")
                    .args(["-d", &dev])
                    .status()
                    .is_ok_and(|s| s.success());
                if detached {
                    out.push(dev);
                }
            }
        }
    }
    out
}

/// The devices of `losetup -j` output: `/dev/loop3: [2049]:1234 (/pool/n/v.img)`.
fn parse_loops(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(':').map(|(dev, _)| dev.trim().to_string()))
        .filter(|d| d.starts_with("/dev/loop"))
        .collect()
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
