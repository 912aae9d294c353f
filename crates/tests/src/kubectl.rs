//! Stock kubectl binaries (1.27 … 1.33, installed beside the one on the PATH) and the
//! Python `kubernetes` client, run against an rkube cluster through a kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The kubectl of minor version `minor` (`1.27`): `kubectl.<minor>` beside the kubectl on
/// the PATH.
pub fn kubectl_bin(minor: &str) -> PathBuf {
    let on_path = which("kubectl").expect("kubectl on the PATH");
    let real = std::fs::canonicalize(&on_path).expect("resolve kubectl");
    let p = real
        .parent()
        .expect("kubectl directory")
        .join(format!("kubectl.{minor}"));
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Writes a kubeconfig for `cluster`'s admin (its namespace `default`, member 0 as the
/// server) into `dir`.
pub fn admin_kubeconfig(cluster: &crate::Cluster, dir: &Path) -> PathBuf {
    let p = &cluster.pki;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    certificate-authority: {}\n\
         users:\n- name: u\n  user:\n    client-certificate: {}\n    client-key: {}\n\
         contexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: default}}\ncurrent-context: c\n",
        cluster.members[0].client,
        p.ca_file.display(),
        p.admin.cert.display(),
        p.admin.key.display()
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).expect("write the kubeconfig");
    path
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// Where kubectl keeps its discovery and OpenAPI cache: by default under `~/.kube/cache`,
/// keyed by server address, which a later cluster on a reused port would inherit.
pub const CACHE_DIR_ENV: &str = "KUBECACHEDIR";

/// A cache directory of kubectl's own beside `kubeconfig`.
pub fn cache_dir(kubeconfig: &Path) -> PathBuf {
    kubeconfig
        .parent()
        .unwrap_or(Path::new("."))
        .join("kubectl-cache")
}

/// One kubectl version with one kubeconfig.
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub version: String,
}

impl Kubectl {
    pub fn new(minor: &str, kubeconfig: &Path) -> Kubectl {
        Kubectl {
            bin: kubectl_bin(minor),
            kubeconfig: kubeconfig.to_path_buf(),
            version: minor.to_string(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env(CACHE_DIR_ENV, cache_dir(&self.kubeconfig))
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    /// Runs kubectl, asserts it succeeded, and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "kubectl {} {args:?} failed ({}):\n{stdout}\n{stderr}",
            self.version,
            out.status
        );
        stdout
    }

    /// Runs kubectl, asserts it failed, and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} {args:?} succeeded:\n{}",
            self.version,
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// Applies `yaml` from stdin with extra arguments.
    pub fn apply_stdin(&self, yaml: &str, extra: &[&str]) -> Output {
        use std::io::Write;
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The Python interpreter with the `kubernetes` package: `$RKUBE_PYTHON`, else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("RKUBE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs a Python program with `KUBECONFIG` set; asserts it succeeded; returns its stdout.
pub fn run_python(program: &str, kubeconfig: &Path) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(program)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .expect("run python (set RKUBE_PYTHON to a python with the kubernetes package)");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "python failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}
