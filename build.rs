//! Generates the C header from the Rust source with cbindgen. The header is
//! committed: the build writes `$OUT_DIR/vine.h`, a test compares it with
//! `include/vine.h`, and `make header` (VINE_UPDATE_HEADER=1) refreshes the copy.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("vine.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=VINE_UPDATE_HEADER");
    // The shared library carries a soname, so programs linked against it keep
    // working across compatible releases (libvine.so.MAJOR).
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets it");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvine.so.{major}");
    // vine_worker exports the C API, so a library loaded with --library calls
    // vine_buffer_append (and the rest) in the worker itself.
    println!("cargo:rustc-link-arg-bin=vine_worker=-Wl,--export-dynamic");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // Only the C boundary (src/ffi and its modules) is read: a public item of
    // another module (a protocol constant, a Rust type) never reaches the header,
    // whose names are all vine_/VINE_ (tests/header.rs checks it).
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    let bindings = builder.generate().expect("the C header can be generated");
    bindings.write_to_file(&out);
    if std::env::var_os("VINE_UPDATE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(crate_dir.join("include/vine.h"));
    }
}
