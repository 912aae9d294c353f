//! A private containerd for the CRI runtime tests: its own root, state, socket and CNI
//! configuration under a temporary directory, the CRI settings this host needs
//! (`restrict_oom_score_adj`, a local sandbox image, netns mounts under the state dir),
//! and an OCI image built from `busybox-static` and imported, since no registry is
//! reachable. Dropping it stops every container it ran, then containerd itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The image every CRI test pod uses (also the sandbox image).
pub const IMAGE: &str = "rkube.local/busybox:1";

pub struct Containerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bridge: String,
    subnet: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Builds an OCI image layout tarball: busybox-static and its applet links, sleeping
/// forever by default.
const BUILD_IMAGE: &str = r#"set -e
NAME="$2"
cd "$1"
mkdir -p rootfs/bin rootfs/tmp rootfs/etc rootfs/proc rootfs/sys rootfs/dev layout/blobs/sha256
cp /bin/busybox rootfs/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "rootfs/bin/$a"; done
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C rootfs -cf layer.tar .
put() { d=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1"); mv "$1" "layout/blobs/sha256/$d"; echo "$d $s"; }
set -- $(put layer.tar); L=$1; LS=$2
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sleep","2147483647"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $L > config.json
set -- $(put config.json); C=$1; CS=$2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' $C $CS $L $LS > manifest.json
set -- $(put manifest.json); M=$1; MS=$2
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"1"}}]}' $M $MS "$NAME" > layout/index.json
echo '{"imageLayoutVersion":"1.0.0"}' > layout/oci-layout
tar -C layout -cf image.tar .
"#;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("rkube-containerd-")
            .disable_cleanup(std::env::var_os("RKUBE_TEST_KEEP").is_some())
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        eprintln!("containerd data and logs in {}", d.display());
        let n = (std::process::id() % 200) as u8 + NEXT.fetch_add(1, Ordering::Relaxed) as u8;
        let bridge = format!("rkbcri{n}");
        let subnet = format!("10.89.{n}.0/24");
        std::fs::create_dir_all(d.join("net.d")).unwrap();
        std::fs::write(
            d.join("net.d/10-rkube.conflist"),
            format!(
                r#"{{"cniVersion": "1.0.0", "name": "rkube-test", "plugins": [
 {{"type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false,
  "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{subnet}"}}]],
   "routes": [{{"dst": "0.0.0.0/0"}}], "dataDir": "{ipam}"}}}},
 {{"type": "loopback"}}]}}"#,
                ipam = d.join("ipam").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("config.toml"),
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{netd}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
"#,
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
                netd = d.join("net.d").display(),
            ),
        )
        .unwrap();
        let log = crate::process::open_log(d, "containerd");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (apt-get install containerd runc)");
        let mut c = Containerd {
            child: Some(child),
            dir,
            bridge,
            subnet,
        };
        let sock = c.socket();
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "containerd did not start; see its log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let img = c.dir.path().join("image");
        std::fs::create_dir_all(&img).unwrap();
        run(Command::new("bash")
            .args(["-c", BUILD_IMAGE, "build"])
            .arg(&img)
            .arg(IMAGE));
        c.import(&img.join("image.tar"));
        c
    }

    fn import(&mut self, tar: &Path) {
        let start = Instant::now();
        loop {
            let out = Command::new("ctr")
                .arg("--address")
                .arg(self.socket())
                .args(["-n", "k8s.io", "images", "import"])
                .arg(tar)
                .output()
                .expect("ctr");
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "importing the test image: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The network its pods get addresses from (its CNI bridge's).
    pub fn pod_subnet(&self) -> &str {
        &self.subnet
    }

    /// Pids of the processes whose command line names this containerd's socket (its
    /// shims).
    fn shims(&self) -> Vec<u32> {
        let sock = self.socket().to_string_lossy().to_string();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                String::from_utf8_lossy(&cmd).contains(&sock).then_some(pid)
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let d = self.dir.path().to_path_buf();
        // Every container: runc kill, then containerd and its shims.
        let runc_root = d.join("state/io.containerd.runtime.v2.task/k8s.io");
        for e in std::fs::read_dir(&runc_root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = e.file_name().to_string_lossy().to_string();
            let _ = Command::new("runc")
                .arg("--root")
                .arg("/run/containerd/runc/k8s.io")
                .args(["kill", "--all", &id, "KILL"])
                .output();
        }
        let shims = self.shims();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in shims {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        // Sandbox mounts (shm, netns, rootfs) under the temp dir must go before it can.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let prefix = d.to_string_lossy().to_string();
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&prefix))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").args(["-l", p]).output();
            }
        }
    }
}
