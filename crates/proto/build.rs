//! Compiles the .proto files with protox (pure Rust, so no protoc binary is needed).
//!
//! - rkube's own protocols (`proto/*.proto`) become tonic/prost code;
//! - Kubernetes' API messages (`proto/k8s/**/generated.proto`) become an encoded
//!   `FileDescriptorSet` only, which the apiserver reads to decode protobuf request bodies.

use std::path::{Path, PathBuf};

const K8S_ROOT: &str = "proto/k8s";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/mvcc.proto",
        "proto/etcd.proto",
        "proto/raft.proto",
        "proto/api.proto",
        "proto/openapiv2.proto",
        "proto/cloudprovider.proto",
        "proto/cloudlocal.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    compile_k8s_descriptors()
}

/// Writes `k8s_descriptors.bin` into OUT_DIR: every Kubernetes message with its imports,
/// without source info, since only the wire layout and the field names are needed.
fn compile_k8s_descriptors() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={K8S_ROOT}");
    let mut protos = Vec::new();
    collect_protos(Path::new(K8S_ROOT), &mut protos)?;
    protos.sort();
    let relative: Vec<PathBuf> = protos
        .iter()
        .map(|p| p.strip_prefix(K8S_ROOT).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;
    let mut compiler = protox::Compiler::new([K8S_ROOT])?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(relative)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("k8s_descriptors.bin");
    std::fs::write(out, compiler.encode_file_descriptor_set())?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
