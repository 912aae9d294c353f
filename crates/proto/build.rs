//! Compiles the .proto files with protox (pure Rust, so no protoc binary is needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/mvcc.proto",
        "proto/etcd.proto",
        "proto/raft.proto",
        "proto/api.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
