//! Compiles `nightjar/v1/nightjar.proto` with protox (pure Rust, no system
//! `protoc`) and hands the descriptors to tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "nightjar/v1/nightjar.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::Compiler::new(["."])?
        .include_imports(true)
        .open_files([proto])?
        .file_descriptor_set();
    tonic_prost_build::configure()
        // Written by hand so servers can send pre-encoded series
        // (src/latest.rs); the wire format is unchanged.
        .extern_path(
            ".nightjar.v1.LatestResponse",
            "crate::latest::LatestResponse",
        )
        .compile_fds(fds)?;
    Ok(())
}
