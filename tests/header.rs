//! The committed headers: `include/vine.h` is what the build generates, compiles on
//! its own as C and as C++, carries the crate's version; the Fortran module carries
//! every constant of it with the same value.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> String {
    std::fs::read_to_string(root().join("include/vine.h")).unwrap()
}

/// The header the build script wrote for this build (the newest one).
fn generated() -> String {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for profile in ["debug", "release"] {
        let Ok(dirs) = std::fs::read_dir(target.join(profile).join("build")) else {
            continue;
        };
        for d in dirs.flatten() {
            let h = d.path().join("out/vine.h");
            if let Ok(m) = std::fs::metadata(&h) {
                found.push((m.modified().unwrap(), h));
            }
        }
    }
    let (_, newest) = found
        .into_iter()
        .max()
        .expect("the build script generated vine.h");
    std::fs::read_to_string(newest).unwrap()
}

#[test]
fn the_committed_header_is_the_generated_one() {
    assert!(
        committed() == generated(),
        "include/vine.h differs from what the build generates: run `make header` and commit it"
    );
}

fn compiles(compiler: &str, args: &[&str]) {
    let out = Command::new(compiler)
        .args(args)
        .arg(root().join("include/vine.h"))
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_header_compiles_alone_as_c_and_as_cpp() {
    compiles(
        "cc",
        &[
            "-fsyntax-only",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-std=c99",
            "-x",
            "c",
        ],
    );
    compiles(
        "c++",
        &[
            "-fsyntax-only",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-std=c++17",
            "-x",
            "c++",
        ],
    );
}

fn defines(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#define VINE_"))
        .filter_map(|rest| {
            let mut it = rest.split_whitespace();
            let name = format!("VINE_{}", it.next()?);
            Some((name, it.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_version_macros_are_the_crates() {
    let d = defines(&committed());
    let get = |n: &str| d.iter().find(|(k, _)| k == n).unwrap().1;
    let v = format!(
        "{}.{}.{}",
        get("VINE_VERSION_MAJOR"),
        get("VINE_VERSION_MINOR"),
        get("VINE_VERSION_PATCH")
    );
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_fortran_module_has_every_constant_with_its_value() {
    let module = std::fs::read_to_string(root().join("include/vine.f90")).unwrap();
    let consts = defines(&committed());
    assert!(consts.len() > 40);
    for (name, value) in consts {
        let line = format!("parameter, public :: {name} = {value}");
        assert!(module.contains(&line), "vine.f90 lacks `{line}`");
    }
}

#[test]
fn the_fortran_module_binds_every_c_function() {
    let module = std::fs::read_to_string(root().join("include/vine.f90")).unwrap();
    for line in committed().lines() {
        let Some(name) = line
            .split('(')
            .next()
            .and_then(|l| l.split_whitespace().last())
        else {
            continue;
        };
        let name = name.trim_start_matches('*');
        if line.ends_with(");") && name.starts_with("vine_") {
            assert!(
                module.contains(&format!("name='{name}'")),
                "vine.f90 does not bind {name}"
            );
        }
    }
}
