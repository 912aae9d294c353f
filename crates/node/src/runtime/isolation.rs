//! The second stage of the process runtime's shim, as `runc init` is to runc: the shim
//! starts its own binary again (`RKUBE_SHIM_STAGE=init`), and that process isolates
//! itself, then becomes the container's process by `exec`. Isolating in a process of
//! its own keeps the shim in the host's mount namespace and with its privileges, so it
//! can still record the container's end.
//!
//! As root, in this order: a private mount namespace, with the node's secrets masked
//! (unprivileged containers), the volumes bind-mounted from descriptors opened before
//! anything was hidden, everything read-only but the volumes when the root filesystem
//! must be, and the kernel's paths read-only or masked as container runtimes do; then
//! supplementary groups, gid and uid; then the capabilities the container keeps (the
//! bounding set limited, and, for a non-root uid, raised as ambient capabilities so
//! they survive `exec`); then `no_new_privs`. A failure is written to the descriptor
//! the shim gave as standard input, which closes without a word on a successful `exec`.
//!
//! `RKUBE_SHIM_STAGE=exec` runs a command in a running container the same way (`exec`
//! and exec probes): into its mount and network namespaces, with its credentials; with a
//! terminal as standard input, in a session of its own with that controlling terminal.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{Gid, Uid};
use rustix::thread::CapabilitySet;

use super::beneath::PathError;
use super::security::{
    UnknownCapability, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, HOST_SECRETS,
};
use super::shim::ShimSpec;
use super::Mount;

/// The environment variable that tells the shim binary which stage it is.
pub const STAGE_ENV: &str = "RKUBE_SHIM_STAGE";
/// With `exec`: the command, a JSON array.
pub const EXEC_ARGV_ENV: &str = "RKUBE_SHIM_EXEC_ARGV";
/// With `exec`, set to `1`: standard input is a terminal, to become the command's
/// controlling terminal in a session of its own.
pub const EXEC_TTY_ENV: &str = "RKUBE_SHIM_EXEC_TTY";

/// Why the container's process could not be isolated or started, reported as text (to the
/// shim, or on stderr for `exec`). Not retryable: the spec or the node must change.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// A file, the spec, a system call of rustix's or the `exec`; `what` says what for.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A system call of nix's (mounts, namespaces, ids); `what` says what it was for.
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("volume source {}: {source}", path.display())]
    VolumeSource {
        path: std::path::PathBuf,
        #[source]
        source: PathError,
    },
    #[error(transparent)]
    Capability(#[from] UnknownCapability),
    #[error("capabilities {0:?} are not available to the node's runtime")]
    CapabilitiesUnavailable(CapabilitySet),
    #[error("{field} {value} is not a valid id")]
    Id { field: &'static str, value: i64 },
    #[error("the container has no command")]
    NoCommand,
    #[error("exec: no command")]
    NoExecCommand,
    #[error("exec: the container is not running")]
    NotRunning,
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error (rustix's errors read as `std::io`'s) while doing `what`.
fn io<E: Into<std::io::Error>>(what: impl std::fmt::Display) -> impl FnOnce(E) -> Error {
    move |e| Error::Io {
        what: what.to_string(),
        source: e.into(),
    }
}

/// A nix system call failed while doing `what`.
fn sys(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> Error {
    move |source| Error::Sys {
        what: what.to_string(),
        source,
    }
}

fn read_spec(dir: &Path) -> Result<ShimSpec> {
    let bytes = std::fs::read(dir.join("spec.json")).map_err(io("reading the spec"))?;
    serde_json::from_slice(&bytes).map_err(io("reading the spec"))
}

/// Stage two: isolates this process as `DIR/spec.json` says and runs the container in
/// it. Returns only on failure, once the failure has been reported.
pub fn init(dir: &Path) -> std::io::Result<()> {
    // The report channel comes as standard input; the container gets its own stdin pipe
    // there, or /dev/null.
    let report = rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3)?;
    rustix::stdio::dup2_stdin(super::shim_stdin::for_container()?)?;
    let Err(e) = read_spec(dir).and_then(|spec| start(&spec));
    File::from(report).write_all(e.to_string().as_bytes())?;
    std::process::exit(127)
}

fn start(spec: &ShimSpec) -> Result<Infallible> {
    if spec.isolate {
        mount_namespace(spec)?;
        credentials(spec)?;
    } else if spec.security.no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(io("no_new_privs"))?;
    }
    let argv = &spec.argv;
    let program = argv.first().ok_or(Error::NoCommand)?;
    let mut cmd = command(spec, program, &argv[1..]);
    Err(io(format!("starting {program:?}"))(cmd.exec()))
}

/// `program` with the spec's environment, in its working directory (`/` in a mount
/// namespace of its own, when the spec names none).
fn command(spec: &ShimSpec, program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("PATH", super::shim::path_of(&spec.env));
    if let Some(wd) = &spec.working_dir {
        cmd.current_dir(wd);
    } else if spec.isolate {
        cmd.current_dir("/");
    }
    cmd
}

/// `exec` into the running container of `DIR`: its namespaces, its credentials.
pub fn exec(dir: &Path) -> std::io::Result<()> {
    let Err(e) = exec_in(dir);
    eprintln!("{e}");
    std::process::exit(126)
}

/// Enters the container of `dir` and `exec`s the command [`EXEC_ARGV_ENV`] names.
fn exec_in(dir: &Path) -> Result<Infallible> {
    let spec = read_spec(dir)?;
    let argv: Vec<String> = std::env::var(EXEC_ARGV_ENV)
        .ok()
        .and_then(|a| serde_json::from_str(&a).ok())
        .filter(|a: &Vec<String>| !a.is_empty())
        .ok_or(Error::NoExecCommand)?;
    let tty = std::env::var(EXEC_TTY_ENV).as_deref() == Ok("1");
    if tty {
        rustix::process::setsid().map_err(io("exec: a new session"))?;
        rustix::process::ioctl_tiocsctty(std::io::stdin())
            .map_err(io("exec: the controlling terminal"))?;
    }
    let pid: super::shim::ProcessId = std::fs::read(dir.join("pid"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|p: &super::shim::ProcessId| p.alive())
        .ok_or(Error::NotRunning)?;
    if spec.isolate {
        for (ns, flag) in [
            ("net", CloneFlags::CLONE_NEWNET),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ] {
            let f = File::open(format!("/proc/{}/ns/{ns}", pid.pid))
                .map_err(io(format!("exec: the container's {ns} namespace")))?;
            setns(&f, flag).map_err(sys(format!("exec: joining the {ns} namespace")))?;
        }
        credentials(&spec)?;
    } else if spec.security.no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(io("no_new_privs"))?;
    }
    let mut cmd = command(&spec, &argv[0], &argv[1..]);
    // As container runtimes do for a terminal the container does not name itself.
    if tty && !spec.env.iter().any(|(k, _)| k == "TERM") {
        cmd.env("TERM", "xterm");
    }
    Err(io(format!("exec {:?}", argv[0]))(cmd.exec()))
}

/// A private mount namespace for the container (root only).
fn mount_namespace(spec: &ShimSpec) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("a private mount namespace"))?;
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
        .map_err(sys("making / private"))?;
    // Opened before anything is hidden: the volumes live in the node's data directory.
    let sources = spec
        .mounts
        .iter()
        .map(open_source)
        .collect::<Result<Vec<_>, _>>()?;
    let sec = &spec.security;
    if !sec.privileged {
        let paths = HOST_SECRETS
            .iter()
            .map(Path::new)
            .chain(sec.masked_host_paths.iter().map(|p| p.as_path()))
            .chain(DEFAULT_MASKED_PATHS.iter().map(Path::new));
        for p in paths {
            mask(p)?;
        }
    }
    for (m, fd) in spec.mounts.iter().zip(&sources) {
        bind(m, fd)?;
    }
    let volumes: Vec<&Path> = spec
        .mounts
        .iter()
        .map(|m| Path::new(&m.container_path))
        .collect();
    let kernel = ["/proc", "/sys", "/dev"].map(Path::new);
    for (point, opts) in mount_table()? {
        let p = Path::new(&point);
        let in_volume = volumes.iter().any(|v| p.starts_with(v));
        let ro = if in_volume {
            false
        } else if kernel.iter().any(|k| p.starts_with(k)) {
            // As container runtimes do: /sys is read-only unless privileged.
            !sec.privileged && p.starts_with("/sys")
        } else {
            sec.read_only_root_filesystem
        };
        if ro && !opts.split(',').any(|o| o == "ro") {
            match remount(p, true, &opts) {
                // Below a masked directory: hidden already.
                Err(nix::Error::ENOENT) => {}
                r => r.map_err(sys(format!("making {point} read-only")))?,
            }
        }
    }
    if !sec.privileged {
        for p in DEFAULT_READONLY_PATHS
            .iter()
            .map(Path::new)
            .filter(|p| p.exists())
        {
            mount(
                Some(p),
                p,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(format!("binding {}", p.display())))?;
            remount(p, true, "nosuid,nodev,noexec")
                .map_err(sys(format!("making {} read-only", p.display())))?;
        }
    }
    for m in spec.mounts.iter().filter(|m| m.read_only) {
        let opts = mount_table()?
            .into_iter()
            .rev()
            .find(|(p, _)| *p == m.container_path)
            .map(|(_, o)| o)
            .unwrap_or_default();
        remount(Path::new(&m.container_path), true, &opts)
            .map_err(sys(format!("making {} read-only", m.container_path)))?;
    }
    Ok(())
}

/// The source of a volume mount, held open (a `subPath` opened without leaving its
/// volume).
fn open_source(m: &Mount) -> Result<OwnedFd> {
    let what = format!("volume source {}", m.host_path.display());
    match &m.volume_root {
        Some(root) => {
            let rel = m
                .host_path
                .strip_prefix(root)
                .map_err(|e| io(what)(std::io::Error::other(e)))?;
            super::beneath::open_beneath(root, &rel.to_string_lossy(), false).map_err(|source| {
                Error::VolumeSource {
                    path: m.host_path.clone(),
                    source,
                }
            })
        }
        None => {
            use rustix::fs::{Mode, OFlags};
            rustix::fs::open(&m.host_path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(io(what))
        }
    }
}

/// Hides `p`: an empty read-only tmpfs over a directory, /dev/null over a file.
fn mask(p: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    let what = sys(format!("masking {}", p.display()));
    if meta.is_dir() {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            flags,
            Some("size=4k,mode=0555"),
        )
        .map_err(what)
    } else if meta.is_file() {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(what)
    } else {
        Ok(())
    }
}

fn bind(m: &Mount, src: &OwnedFd) -> Result<()> {
    let dst = Path::new(&m.container_path);
    let what = format!("mounting {} at {}", m.host_path.display(), m.container_path);
    let src_path = super::beneath::fd_path(src);
    let is_dir = std::fs::metadata(&src_path).map_err(io(&what))?.is_dir();
    let made = if is_dir {
        std::fs::create_dir_all(dst)
    } else {
        dst.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| match dst.exists() {
                true => Ok(()),
                false => File::create(dst).map(drop),
            })
    };
    made.map_err(io(format!("{what}: creating the mount point")))?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(&src_path), dst, None::<&str>, flags, None::<&str>).map_err(sys(what))
}

/// Every mount point of this namespace with its per-mount options, in mount order.
fn mount_table() -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(io("reading the mount table"))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ').skip(4);
            Some((unescape(f.next()?), f.next()?.to_string()))
        })
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Bind-remounts `p` read-only (or read-write), keeping its other per-mount flags (a
/// bind remount replaces them all).
fn remount(p: &Path, read_only: bool, opts: &str) -> nix::Result<()> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    for o in opts.split(',') {
        flags |= match o {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            _ => MsFlags::empty(),
        };
    }
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
}

/// Every capability this kernel knows.
fn known_capabilities() -> CapabilitySet {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63);
    CapabilitySet::from_bits_retain(u64::MAX >> (63 - last))
}

fn id(value: i64, field: &'static str) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Id { field, value })
}

/// Groups, gid, uid, capabilities and no_new_privs, as the spec says (root only).
fn credentials(spec: &ShimSpec) -> Result<()> {
    let sec = &spec.security;
    let known = known_capabilities();
    // "All" is what the runtime has: in a container itself, that may be less.
    let all = rustix::thread::capabilities(None)
        .map_err(io("reading capabilities"))?
        .permitted
        & known;
    let keep = sec.capabilities(all)?.unwrap_or(all);
    if !all.contains(keep) {
        return Err(Error::CapabilitiesUnavailable(keep - all));
    }
    let uid = sec.run_as_user.map_or(Ok(0), |u| id(u, "runAsUser"))?;
    // Kubernetes: without runAsGroup the primary group is root's.
    let gid = sec.run_as_group.map_or(Ok(0), |g| id(g, "runAsGroup"))?;
    let groups = sec
        .supplemental_groups
        .iter()
        .map(|g| id(*g, "supplementalGroups").map(Gid::from_raw))
        .collect::<Result<Vec<_>, _>>()?;
    let caps = |e: rustix::io::Errno| io("setting capabilities")(e);
    for bit in 0..64u32 {
        let c = CapabilitySet::from_bits_retain(1 << bit);
        if known.contains(c) && !keep.contains(c) {
            rustix::thread::remove_capability_from_bounding_set(c).map_err(caps)?;
        }
    }
    // The permitted set survives the change of uid; what the process keeps is set after.
    rustix::thread::set_keep_capabilities(true).map_err(caps)?;
    nix::unistd::setgroups(&groups).map_err(sys("setgroups"))?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(sys(format!("setgid {gid}")))?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(sys(format!("setuid {uid}")))?;
    rustix::thread::set_keep_capabilities(false).map_err(caps)?;
    let sets = rustix::thread::CapabilitySets {
        effective: keep,
        permitted: keep,
        inheritable: keep,
    };
    rustix::thread::set_capabilities(None, sets).map_err(caps)?;
    if uid != 0 {
        // Without file capabilities, a non-root process keeps across exec only its
        // ambient capabilities.
        for bit in 0..64u32 {
            let c = CapabilitySet::from_bits_retain(1 << bit);
            if keep.contains(c) {
                rustix::thread::configure_capability_in_ambient_set(c, true).map_err(caps)?;
            }
        }
    }
    if sec.no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(io("no_new_privs"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/bad\\04"), "/bad\\04");
    }

    #[test]
    fn all_capabilities_cover_the_kernels() {
        let all = known_capabilities();
        assert!(all.contains(CapabilitySet::CHOWN | CapabilitySet::SYS_ADMIN));
        assert!(all.bits().count_ones() >= 38);
    }
}
