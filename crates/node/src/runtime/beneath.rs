//! Paths inside a volume that stay inside it. A pod names files in its volumes
//! (`items[].path`, data keys, `subPath`), and its containers can plant symbolic links
//! in writable volumes; the kubelet and the runtime must never be led out of the volume
//! by either. Names are checked as Kubernetes validates them (relative, no `..`
//! element), and paths are walked one element at a time through directory descriptors,
//! following a symbolic link only while it stays below the volume (as `openat2`'s
//! `RESOLVE_BENEATH` does: absolute links and links that climb out are refused), so a
//! link swapped in half-way cannot redirect the walk.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Why a path in a volume was refused. Not retryable: the pod (or its source object, or
/// what a container put in the volume) must change.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("path must not be empty")]
    Empty,
    #[error("path {0:?} must be a relative path")]
    Absolute(String),
    #[error("path {0:?} must not contain '..'")]
    Backstep(String),
    #[error("path {path:?} leaves {} through the symbolic link {link:?}", base.display())]
    Escapes {
        path: String,
        base: PathBuf,
        link: String,
    },
    #[error("path {path:?} in {}: too many levels of symbolic links", base.display())]
    Loop { path: String, base: PathBuf },
    #[error("path {path:?} in {}: {source}", base.display())]
    Io {
        path: String,
        base: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks a path a pod gives inside a volume: relative, and no element is `..`
/// (names that merely start with dots, like `..data`, are fine).
pub fn check_relative(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute(path.into()));
    }
    if path.split('/').any(|e| e == "..") {
        return Err(PathError::Backstep(path.into()));
    }
    Ok(())
}

/// Symbolic links followed in one walk at most (the kernel's limit).
const MAX_LINKS: usize = 40;

struct Walk<'a> {
    base: &'a Path,
    path: &'a str,
}

impl Walk<'_> {
    fn io(&self, source: impl Into<std::io::Error>) -> PathError {
        PathError::Io {
            path: self.path.into(),
            base: self.base.into(),
            source: source.into(),
        }
    }

    fn escapes(&self, link: &str) -> PathError {
        PathError::Escapes {
            path: self.path.into(),
            base: self.base.into(),
            link: link.into(),
        }
    }
}

fn o_path() -> OFlags {
    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens `rel` below the directory `base` (an `O_PATH` descriptor) without leaving it.
/// `create`: missing directories are made (with `base`'s mode), as for a `subPath`.
pub fn open_beneath(base: &Path, rel: &str, create: bool) -> Result<OwnedFd, PathError> {
    check_relative(rel).or_else(|e| match e {
        PathError::Empty => Ok(()),
        e => Err(e),
    })?;
    let w = Walk { base, path: rel };
    let root = rustix::fs::open(
        base,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| w.io(e))?;
    let dir_mode = rustix::fs::fstat(&root).map_err(|e| w.io(e))?.st_mode & 0o7777;
    // The open directories from `base` down; the last is where the walk is.
    let mut stack: Vec<OwnedFd> = vec![root];
    let mut todo: VecDeque<String> = rel.split('/').map(str::to_string).collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        match name.as_str() {
            "" | "." => continue,
            ".." => {
                // Only a link's target can say `..` here; it may not climb above `base`.
                if stack.len() == 1 {
                    return Err(w.escapes(rel));
                }
                stack.pop();
                continue;
            }
            _ => {}
        }
        let cur = stack.last().ok_or_else(|| w.escapes(rel))?;
        let fd = match rustix::fs::openat(cur, name.as_str(), o_path(), Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create => {
                match rustix::fs::mkdirat(cur, name.as_str(), Mode::from_raw_mode(dir_mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(w.io(e)),
                }
                let fd = rustix::fs::openat(cur, name.as_str(), o_path(), Mode::empty())
                    .map_err(|e| w.io(e))?;
                // mkdir applied the umask: the new directory gets the volume's mode, set
                // through the descriptor, so a link swapped in meanwhile is not followed.
                let st = rustix::fs::fstat(&fd).map_err(|e| w.io(e))?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
                    rustix::fs::chmod(fd_path(&fd), Mode::from_raw_mode(dir_mode))
                        .map_err(|e| w.io(e))?;
                }
                fd
            }
            r => r.map_err(|e| w.io(e))?,
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| w.io(e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return Err(PathError::Loop {
                    path: rel.into(),
                    base: base.into(),
                });
            }
            let target = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| w.io(e))?;
            let target = target.to_string_lossy().to_string();
            if target.starts_with('/') {
                return Err(w.escapes(&target));
            }
            for (i, e) in target.split('/').enumerate() {
                todo.insert(i, e.to_string());
            }
            continue;
        }
        stack.push(fd);
    }
    stack.pop().ok_or_else(|| w.escapes(rel))
}

/// Writes `content` to `rel` below `base` with `mode`, replacing a file that was there
/// in one rename, making missing directories, and never following a link out of `base`.
pub fn write_beneath(base: &Path, rel: &str, content: &[u8], mode: u32) -> Result<(), PathError> {
    check_relative(rel)?;
    let w = Walk { base, path: rel };
    let (parent, name) = match rel.trim_end_matches('/').rsplit_once('/') {
        Some((p, n)) => (open_beneath(base, p, true)?, n),
        None => (open_beneath(base, "", false)?, rel.trim_end_matches('/')),
    };
    let tmp = format!(".{name}.rkube-tmp");
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&parent, tmp.as_str(), flags, Mode::from_raw_mode(0o600))
        .map_err(|e| w.io(e))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(content).map_err(|e| w.io(e))?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| w.io(e))?;
    rustix::fs::renameat(&parent, tmp.as_str(), &parent, name).map_err(|e| w.io(e))?;
    Ok(())
}

/// Gives everything in the directory `base` to group `gid`, as Kubernetes does for
/// volumes of a pod with an fsGroup: group-readable files (and writable unless
/// `read_only`), group-searchable directories that pass their group on (setgid). Links
/// are re-owned themselves, never followed.
pub fn set_group_beneath(base: &Path, gid: u32, read_only: bool) -> std::io::Result<()> {
    let dir = rustix::fs::open(
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    own(&dir, gid, read_only)?;
    own_below(dir, gid, read_only, 0)
}

/// Directory levels [`set_group_beneath`] descends at most.
const MAX_DEPTH: usize = 64;

fn own(fd: &OwnedFd, gid: u32, read_only: bool) -> std::io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let group = Some(rustix::fs::Gid::from_raw(gid));
    rustix::fs::chownat(fd, "", None, group, rustix::fs::AtFlags::EMPTY_PATH)?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    let mut mask = if read_only { 0o440 } else { 0o660 };
    match kind {
        rustix::fs::FileType::Symlink => return Ok(()),
        rustix::fs::FileType::Directory => mask |= 0o2110,
        _ => {}
    }
    let mode = (st.st_mode & 0o7777) | mask;
    rustix::fs::chmod(fd_path(fd), Mode::from_raw_mode(mode))?;
    Ok(())
}

fn own_below(dir: OwnedFd, gid: u32, read_only: bool, depth: usize) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other("directories nested too deep"));
    }
    let mut entries = rustix::fs::Dir::read_from(&dir)?;
    while let Some(e) = entries.read() {
        let e = e?;
        let name = e.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let fd = rustix::fs::openat(&dir, name, o_path(), Mode::empty())?;
        own(&fd, gid, read_only)?;
        if e.file_type() == rustix::fs::FileType::Directory {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let sub = rustix::fs::openat(&dir, name, flags, Mode::empty())?;
            own_below(sub, gid, read_only, depth + 1)?;
        }
    }
    Ok(())
}

/// The path of a descriptor, to mount it or hand it to another process.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn pod_paths_must_be_relative_and_never_step_up() {
        for ok in ["a", "a/b", "..data", "a/..b", "a/./b", "...", "a/b..c/d"] {
            assert!(check_relative(ok).is_ok(), "{ok}");
        }
        for bad in ["/abs", "..", "../x", "a/../../x", "a/..", "a/../b", ""] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            check_relative("/etc"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            check_relative("a/../../x"),
            Err(PathError::Backstep(_))
        ));
    }

    #[test]
    fn links_are_followed_only_while_they_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(vol.join("d/e")).unwrap();
        std::fs::write(tmp.path().join("outside"), b"secret").unwrap();
        symlink("/etc", vol.join("abs")).unwrap();
        symlink("../outside", vol.join("up")).unwrap();
        symlink("d/e", vol.join("inside")).unwrap();
        symlink("e/../../d", vol.join("d/back")).unwrap();
        symlink("loop", vol.join("loop")).unwrap();
        for ok in ["d/e", "inside", "d/back/e", ""] {
            assert!(open_beneath(&vol, ok, false).is_ok(), "{ok}");
        }
        for bad in ["abs", "abs/passwd", "up", "d/e/../../up"] {
            assert!(
                open_beneath(&vol, bad, false).is_err(),
                "{bad} was resolved"
            );
        }
        assert!(matches!(
            open_beneath(&vol, "abs/passwd", false),
            Err(PathError::Escapes { .. })
        ));
        assert!(matches!(
            open_beneath(&vol, "loop", false),
            Err(PathError::Loop { .. })
        ));
        // Missing directories are made only on request, and only inside.
        assert!(open_beneath(&vol, "new/sub", false).is_err());
        open_beneath(&vol, "new/sub", true).unwrap();
        assert!(vol.join("new/sub").is_dir());
        assert!(open_beneath(&vol, "abs/new", true).is_err());
        assert!(!Path::new("/etc/new").exists());
    }

    #[test]
    fn fs_group_owns_the_volume_without_following_links() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(vol.join("d")).unwrap();
        std::fs::write(vol.join("d/f"), b"x").unwrap();
        std::fs::set_permissions(vol.join("d/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        symlink(&outside, vol.join("link")).unwrap();
        // Our own group: no privilege needed.
        let gid = rustix::process::getegid().as_raw();
        set_group_beneath(&vol, gid, true).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&vol.join("d/f")), 0o640);
        assert_eq!(mode(&vol.join("d")) & 0o2550, 0o2550);
        assert_eq!(std::fs::metadata(vol.join("d/f")).unwrap().gid(), gid);
        assert_eq!(mode(&outside), 0o600, "the link's target is untouched");
        set_group_beneath(&vol, gid, false).unwrap();
        assert_eq!(mode(&vol.join("d/f")), 0o660);
    }

    #[test]
    fn writes_never_leave_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        symlink(&out, vol.join("link")).unwrap();
        symlink(out.join("f"), vol.join("file")).unwrap();
        write_beneath(&vol, "a/b/c", b"x", 0o640).unwrap();
        assert_eq!(std::fs::read(vol.join("a/b/c")).unwrap(), b"x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(vol.join("a/b/c"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert!(write_beneath(&vol, "link/f", b"x", 0o644).is_err());
        assert!(write_beneath(&vol, "../out/f", b"x", 0o644).is_err());
        // A link at the file's own name is replaced, not followed.
        write_beneath(&vol, "file", b"y", 0o644).unwrap();
        assert_eq!(std::fs::read(vol.join("file")).unwrap(), b"y");
        assert!(
            std::fs::read_dir(&out).unwrap().next().is_none(),
            "nothing written outside"
        );
    }
}
