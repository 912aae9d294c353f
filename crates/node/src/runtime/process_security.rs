//! The process runtime's side of container security: which security contexts it
//! refuses (what a non-root runtime cannot give, runAsNonRoot for a process that would
//! run as root, unknown capabilities), which node paths it hides from containers, and
//! `exec` with the container's namespaces and credentials, to completion or connected to
//! the caller (pipes, or a pseudo-terminal).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::interactive::{open_pty, Interactive, Pty, Reader, Writer};
use super::isolation::{EXEC_ARGV_ENV, EXEC_TTY_ENV, STAGE_ENV};
use super::process::ProcessRuntime;
use super::{ContainerConfig, Error, ExecResult, Result};

/// Refuses a container this runtime cannot run as its security context says.
/// `uid`/`gid`: the runtime's own.
pub(super) fn check(cfg: &ContainerConfig, uid: u32, gid: u32) -> Result<()> {
    let sec = &cfg.security;
    let name = &cfg.name;
    let runs_as = sec.run_as_user.unwrap_or(i64::from(uid));
    if sec.run_as_non_root && runs_as == 0 {
        return Err(Error::Config(match sec.run_as_user {
            Some(_) => format!("container's runAsUser breaks non-root policy (container: {name})"),
            None => {
                format!("container has runAsNonRoot and image will run as root (container: {name})")
            }
        }));
    }
    if uid != 0 {
        let asked = sec.needs_root(uid, gid);
        if !asked.is_empty() {
            return Err(Error::Config(format!(
                "container {name:?} sets {}: the process runtime applies them only when it runs as root",
                asked.join(", ")
            )));
        }
    }
    sec.capabilities(rustix::thread::CapabilitySet::empty())
        .map_err(|e| Error::Config(format!("container {name:?}: {e}")))?;
    let ids = sec
        .run_as_user
        .iter()
        .map(|v| ("runAsUser", v))
        .chain(sec.run_as_group.iter().map(|v| ("runAsGroup", v)))
        .chain(
            sec.supplemental_groups
                .iter()
                .map(|v| ("supplementalGroups", v)),
        );
    for (field, v) in ids {
        if u32::try_from(*v).is_err() {
            return Err(Error::Config(format!(
                "container {name:?}: {field} {v} is not a valid id"
            )));
        }
    }
    Ok(())
}

/// The data directories of the rkube processes on this host (their `--data-dir` and
/// `--dir`): cluster state, keys and credentials no container may read.
pub(super) fn rkube_data_dirs(exe: &std::path::Path) -> Vec<PathBuf> {
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        if std::fs::read_link(p.join("exe")).ok().as_ref() != Some(&exe) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(p.join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let cwd = std::fs::read_link(p.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
        for (i, a) in args.iter().enumerate() {
            let v = match a.split_once('=') {
                Some(("--data-dir" | "--dir", v)) => Some(v),
                _ if a == "--data-dir" || a == "--dir" => args.get(i + 1).map(String::as_str),
                _ => None,
            };
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                let dir = cwd.join(v);
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
    }
    out
}

impl ProcessRuntime {
    /// Runs `cmd` in container `id` through the shim's exec stage: in the container's
    /// namespaces (root), with its credentials and capabilities.
    pub(super) async fn exec_in(
        &self,
        id: &str,
        dir: PathBuf,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecResult> {
        let mut c = self.exec_command(id, dir, cmd)?;
        c.stdin(Stdio::null()).kill_on_drop(true);
        match tokio::time::timeout(timeout, c.output()).await {
            Ok(Ok(o)) => Ok(ExecResult {
                exit_code: o.status.code().unwrap_or(128 + 9),
                stdout: o.stdout,
                stderr: o.stderr,
            }),
            Ok(Err(e)) => Err(Error::Io(format!("exec {:?}: {e}", cmd[0]))),
            Err(_) => Err(Error::Io(format!(
                "exec {:?}: timed out after {timeout:?}",
                cmd[0]
            ))),
        }
    }
}

impl ProcessRuntime {
    /// Starts `cmd` in container `id` as [`Self::exec_in`] does, its standard streams
    /// connected to the caller: pipes, or a new pseudo-terminal with `tty`.
    pub(super) fn spawn_exec(
        &self,
        id: &str,
        dir: PathBuf,
        cmd: &[String],
        stdin: bool,
        tty: bool,
    ) -> Result<Interactive> {
        let mut c = self.exec_command(id, dir, cmd)?;
        c.kill_on_drop(true);
        let mut pty = None;
        if tty {
            let Pty {
                terminal,
                reader,
                writer,
                slave,
            } = open_pty()?;
            c.env(EXEC_TTY_ENV, "1")
                .stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave));
            pty = Some((terminal, reader, writer));
        } else {
            let input = if stdin { Stdio::piped() } else { Stdio::null() };
            c.stdin(input).stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = c
            .spawn()
            .map_err(|e| Error::Io(format!("exec {:?}: {e}", cmd[0])))?;
        // The terminal's slave must be held by the process alone, so its end is seen.
        drop(c);
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let exit = Box::pin(async move {
            let status = child.wait().await?;
            Ok(exit_code(status))
        });
        let session = match (pty, pipes) {
            (Some((terminal, reader, writer)), _) => Interactive {
                stdin: stdin.then_some(writer),
                stdout: Some(reader),
                stderr: None,
                terminal: Some(terminal),
                exit,
            },
            (None, (input, out, err)) => Interactive {
                stdin: input.map(|w| Box::pin(w) as Writer),
                stdout: out.map(|r| Box::pin(r) as Reader),
                stderr: err.map(|r| Box::pin(r) as Reader),
                terminal: None,
                exit,
            },
        };
        Ok(session)
    }

    /// The shim's exec stage for `cmd` in container `id`.
    fn exec_command(
        &self,
        id: &str,
        dir: PathBuf,
        cmd: &[String],
    ) -> Result<tokio::process::Command> {
        if cmd.is_empty() {
            return Err(Error::Unsupported("exec: no command".into()));
        }
        if !self.process(id).is_some_and(|p| p.alive()) {
            return Err(Error::NotFound(format!("running container {id}")));
        }
        let argv = serde_json::to_string(cmd).map_err(|e| Error::Io(e.to_string()))?;
        let mut c = tokio::process::Command::new(self.shim_exe());
        c.arg("node-shim")
            .arg(dir)
            .env_clear()
            .env(STAGE_ENV, "exec")
            .env(EXEC_ARGV_ENV, argv);
        Ok(c)
    }
}

/// 128 + the signal for a process killed by one, as shells report it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SecurityConfig;

    fn cfg(sec: SecurityConfig) -> ContainerConfig {
        ContainerConfig {
            name: "c".into(),
            security: sec,
            ..Default::default()
        }
    }

    #[test]
    fn run_as_non_root_refuses_a_process_that_would_run_as_root() {
        let non_root = SecurityConfig {
            run_as_non_root: true,
            ..Default::default()
        };
        let e = check(&cfg(non_root.clone()), 0, 0).unwrap_err().to_string();
        assert!(
            e.contains("container has runAsNonRoot and image will run as root"),
            "{e}"
        );
        let zero = SecurityConfig {
            run_as_user: Some(0),
            ..non_root.clone()
        };
        let e = check(&cfg(zero), 0, 0).unwrap_err().to_string();
        assert!(e.contains("runAsUser breaks non-root policy"), "{e}");
        let user = SecurityConfig {
            run_as_user: Some(1000),
            ..non_root.clone()
        };
        check(&cfg(user), 0, 0).unwrap();
        // A non-root runtime runs its containers as itself.
        check(&cfg(non_root), 1000, 1000).unwrap();
    }

    #[test]
    fn a_non_root_runtime_refuses_what_it_cannot_give() {
        let ro = SecurityConfig {
            read_only_root_filesystem: true,
            ..Default::default()
        };
        assert!(
            matches!(check(&cfg(ro.clone()), 1000, 1000), Err(Error::Config(m)) if m.contains("readOnlyRootFilesystem"))
        );
        check(&cfg(ro), 0, 0).unwrap();
        let bad = SecurityConfig {
            capabilities_add: vec!["NOPE".into()],
            ..Default::default()
        };
        assert!(matches!(check(&cfg(bad), 0, 0), Err(Error::Config(_))));
        let neg = SecurityConfig {
            supplemental_groups: vec![-1],
            ..Default::default()
        };
        assert!(matches!(check(&cfg(neg), 0, 0), Err(Error::Config(_))));
    }
}
