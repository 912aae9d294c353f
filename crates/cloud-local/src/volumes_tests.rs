use super::*;

#[test]
fn ids_and_provider_ids_name_plain_files_only() {
    assert_eq!(parse_id("w1/pvc-1").unwrap(), ("w1", "pvc-1"));
    assert_eq!(parse_id("a.b/c.d").unwrap(), ("a.b", "c.d"));
    for bad in [
        "w1",
        "/pvc",
        "w1/",
        "../x/y",
        "w1/../../etc",
        "w1/a/b",
        "W1/x",
        "w1/.x",
    ] {
        let e = parse_id(bad).unwrap_err();
        assert!(e.to_string().starts_with("volume_id: "), "{bad}: {e}");
    }
    assert_eq!(node_of_provider_id("local://w1").unwrap(), "w1");
    for bad in ["w1", "aws://w1", "local://", "local://../x", "local://a/b"] {
        let e = node_of_provider_id(bad).unwrap_err();
        assert!(e.to_string().starts_with("node_id: "), "{bad}: {e}");
    }
}

#[test]
fn block_sizes_are_whole_mebibytes_within_the_limit() {
    let cases = [
        (0, 0, Some(MIN_BLOCK_BYTES)),
        (1, 0, Some(MIN_BLOCK_BYTES)),
        (100 << 20, 0, Some(100 << 20)),
        ((100 << 20) + 1, 0, Some(101 << 20)),
        (100 << 20, 100 << 20, Some(100 << 20)),
        (100 << 20, 50 << 20, None),
        (0, 1 << 20, None),
        (-1, 0, None),
    ];
    for (required, limit, want) in cases {
        assert_eq!(block_size(required, limit).ok(), want, "{required} {limit}");
    }
}

#[test]
fn kinds_and_loop_devices_parse() {
    assert_eq!(Kind::parse(None).unwrap(), Kind::Block);
    assert_eq!(Kind::parse(Some("directory")).unwrap(), Kind::Directory);
    let e = Kind::parse(Some("nfs")).unwrap_err();
    assert!(e.to_string().starts_with("parameters.type: "), "{e}");
    let out = "/dev/loop3: [2049]:1234 (/pool/n/v.img)\n/dev/loop7: []: (/pool/n/v.img)\n";
    assert_eq!(parse_loops(out), vec!["/dev/loop3", "/dev/loop7"]);
    assert!(parse_loops("").is_empty());
}

#[test]
fn a_repeated_create_returns_the_first_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::open(tmp.path().join("pool")).unwrap();
    let v = pool.create("pvc-1", "w1", Kind::Block, 32 << 20).unwrap();
    assert_eq!(v.id(), "w1/pvc-1");
    let file = tmp.path().join("pool/w1/pvc-1.img");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 32 << 20);
    // A retry after a crash, even one that prefers another node, gets the same volume.
    assert_eq!(
        pool.create("pvc-1", "w2", Kind::Block, 32 << 20).unwrap(),
        v
    );
    assert!(!tmp.path().join("pool/w2/pvc-1.img").exists());
    // The same name as something else is a conflict.
    for (kind, bytes) in [(Kind::Block, 64 << 20), (Kind::Directory, 0)] {
        let e = pool.create("pvc-1", "w1", kind, bytes).unwrap_err();
        assert!(matches!(e, VolumeError::Conflict { .. }), "{e}");
    }
    let d = pool.create("pvc-2", "w1", Kind::Directory, 0).unwrap();
    assert!(tmp.path().join("pool/w1/pvc-2").is_dir());
    assert_eq!(pool.find("pvc-2").unwrap(), Some(d));
    assert_eq!(pool.find("pvc-3").unwrap(), None);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// Detaches whatever loop devices `file` still has when dropped (a failed assertion).
struct Detach(PathBuf);

impl Drop for Detach {
    fn drop(&mut self) {
        let out = std::process::Command::new("losetup")
            .arg("-j")
            .arg(&self.0)
            .output();
        for dev in out
            .map(|o| parse_loops(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_default()
        {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &dev])
                .status();
        }
    }
}

#[tokio::test]
async fn attach_sets_up_one_loop_device_and_detach_tears_it_down() {
    if !is_root() {
        eprintln!("skipped: loop devices need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::open(tmp.path().join("pool")).unwrap();
    let v = pool.create("pvc-1", "w1", Kind::Block, 16 << 20).unwrap();
    let file = tmp.path().join("pool/w1/pvc-1.img");
    let _cleanup = Detach(file.clone());
    let e = pool.attach(&v.id(), "w2").await.unwrap_err();
    assert!(matches!(e, VolumeError::Precondition(_)), "{e}");
    let ctx = pool.attach(&v.id(), "w1").await.unwrap();
    let dev = ctx
        .iter()
        .find(|(k, _)| k == DEVICE_PATH)
        .unwrap()
        .1
        .clone();
    assert!(dev.starts_with("/dev/loop"), "{dev}");
    // Attach is idempotent: the same device, not a second one.
    assert_eq!(pool.attach(&v.id(), "w1").await.unwrap(), ctx);
    assert_eq!(loops_of(&file).await.unwrap(), vec![dev.clone()]);
    let e = pool.delete(&v.id()).await.unwrap_err();
    assert!(matches!(e, VolumeError::Precondition(_)), "{e}");
    pool.detach(&v.id()).await.unwrap();
    pool.detach(&v.id()).await.unwrap();
    assert!(loops_of(&file).await.unwrap().is_empty());
    pool.delete(&v.id()).await.unwrap();
    pool.delete(&v.id()).await.unwrap();
    assert!(!file.exists());
}
