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

/// Every name `header` defines, as (kind, name): macros, typedefs, struct, union
/// and enum tags, enum constants, functions. Comments and `#include`s are dropped
/// and the rest run through the C preprocessor (as C), so what is parsed is what a
/// C compiler declares; fields and parameter names are scoped and not collected.
fn names_defined(header: &str) -> Vec<(&'static str, String)> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vine-header-names-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let own = dir.join("own.h");
    let kept: String = header
        .lines()
        .filter(|l| !l.trim_start().starts_with("#include"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&own, kept).unwrap();
    let cpp = |extra: &[&str]| {
        let out = Command::new("cc")
            .args(["-E", "-P", "-x", "c"])
            .args(extra)
            .arg(&own)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut found = Vec::new();
    // Macros: those the header defines, not the compiler's own.
    let builtin = Command::new("cc")
        .args(["-E", "-dM", "-x", "c", "/dev/null"])
        .output()
        .unwrap();
    let builtin = String::from_utf8(builtin.stdout).unwrap();
    let macro_name = |l: &str| -> Option<String> {
        let rest = l.strip_prefix("#define ")?;
        Some(rest.split(['(', ' ']).next()?.to_owned())
    };
    let builtin: std::collections::HashSet<String> =
        builtin.lines().filter_map(macro_name).collect();
    for l in cpp(&["-dM"]).lines() {
        if let Some(n) = macro_name(l).filter(|n| !builtin.contains(n)) {
            found.push(("macro", n));
        }
    }
    // Declarations, from the tokens of the preprocessed text.
    let text = cpp(&[]);
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i + 1;
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' {
                    end = j + 1;
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(text[i..end].to_owned());
        } else if c == '"' {
            for (_, d) in chars.by_ref() {
                if d == '"' {
                    break;
                }
            }
        } else if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|&(_, d)| d.is_ascii_alphanumeric())
            {
                chars.next();
            }
            tokens.push("0".into());
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    let is_ident = |t: &str| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    // Split into top-level declarations at `;` outside braces.
    let mut depth = 0;
    let mut decl: Vec<String> = Vec::new();
    let mut decls = Vec::new();
    for t in tokens {
        match t.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            ";" if depth == 0 => {
                decls.push(std::mem::take(&mut decl));
                continue;
            }
            _ => {}
        }
        decl.push(t);
    }
    for d in decls {
        // Tags, and the constants of enum bodies.
        for (k, w) in d.iter().enumerate() {
            if matches!(w.as_str(), "struct" | "union" | "enum") {
                if let Some(tag) = d.get(k + 1).filter(|t| is_ident(t)) {
                    found.push(("tag", tag.clone()));
                }
                if w == "enum" {
                    let Some(open) = d[k..].iter().position(|t| t == "{") else {
                        continue;
                    };
                    let mut expect_name = true;
                    let mut nest = 0;
                    for t in &d[k + open + 1..] {
                        match t.as_str() {
                            "}" if nest == 0 => break,
                            "(" => nest += 1,
                            ")" => nest -= 1,
                            "," if nest == 0 => expect_name = true,
                            t if expect_name && is_ident(t) => {
                                found.push(("enum constant", t.to_owned()));
                                expect_name = false;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // What stands at depth 0, bodies removed.
        let mut flat = Vec::new();
        let mut nest = 0;
        for t in &d {
            match t.as_str() {
                "{" => nest += 1,
                "}" => {
                    nest -= 1;
                    continue;
                }
                _ => {}
            }
            if nest == 0 {
                flat.push(t.as_str());
            }
        }
        if flat.first() == Some(&"typedef") {
            // `typedef R (*name)(...)` or `typedef ... name`.
            let name = match flat.windows(3).position(|w| w[0] == "(" && w[1] == "*") {
                Some(k) => flat[k + 2],
                None => flat
                    .iter()
                    .rev()
                    .find(|t| is_ident(t))
                    .copied()
                    .unwrap_or(""),
            };
            found.push(("typedef", name.to_owned()));
        } else if let Some(k) = flat.iter().position(|t| *t == "(") {
            // A function: the name before its parameter list.
            if k > 0 && is_ident(flat[k - 1]) {
                found.push(("function", flat[k - 1].to_owned()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    found
}

fn unprefixed(header: &str) -> Vec<(&'static str, String)> {
    names_defined(header)
        .into_iter()
        .filter(|(_, n)| !n.starts_with("vine_") && !n.starts_with("VINE_"))
        .collect()
}

#[test]
fn the_header_defines_only_vine_names() {
    let names = names_defined(&committed());
    // The parse finds every kind of name the header has.
    for (kind, name) in [
        ("macro", "VINE_RESULT_SUCCESS"),
        ("macro", "VINE_H"),
        ("function", "vine_create"),
        ("function", "vine_task_get_metric"),
        ("typedef", "vine_function_t"),
        ("typedef", "vine_stats"),
        ("tag", "vine_manager"),
    ] {
        assert!(
            names.contains(&(kind, name.to_owned())),
            "{kind} {name} not found in vine.h: {names:?}"
        );
    }
    let bad = unprefixed(&committed());
    assert!(
        bad.is_empty(),
        "vine.h defines names without vine_/VINE_: {bad:?}"
    );
}

#[test]
fn the_name_check_sees_each_kind_of_name() {
    let header = r#"
#include <stdint.h>
#define VERSION 2
#define MAX(a, b) a
typedef struct Resources Resources;
typedef int (*callback)(void *ctx);
struct thing { int x; };
enum colour { RED = 1, GREEN = (2), BLUE };
typedef enum { vine_ok, other } vine_mode;
int helper(const char *name);
"#;
    let mut bad: Vec<_> = unprefixed(header).into_iter().map(|(_, n)| n).collect();
    bad.sort();
    assert_eq!(
        bad,
        [
            "BLUE",
            "GREEN",
            "MAX",
            "RED",
            "Resources",
            "Resources",
            "VERSION",
            "callback",
            "colour",
            "helper",
            "other",
            "thing"
        ]
    );
}

#[test]
fn the_header_compiles_after_an_autotools_config_h() {
    // Macros a configure script typically defines, and the names vine.h once did.
    let dir = std::env::temp_dir().join(format!("vine-header-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("app.c");
    std::fs::write(
        &src,
        "#define VERSION \"9.9\"\n#define PACKAGE \"app\"\n#define PACKAGE_VERSION \"9.9\"\n\
         #define MAX_FRAME 1\n#define Resources int\n#define Payload long\n\
         #define HAVE_STDINT_H 1\n#include \"vine.h\"\nint main(void) { return vine_version() == 0; }\n",
    )
    .unwrap();
    let out = Command::new("cc")
        .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-std=c99"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(&src)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "vine.h clashes with a config.h: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TaskVine's values of the constants of its C API (numbers only), grouped by the
/// enum they belong to, so that a vine-only name can be checked not to take a
/// value that means something else in the same group.
const TASKVINE: &[(&str, &[(&str, i64)])] = &[
    (
        "ports",
        &[
            ("VINE_DEFAULT_PORT", 9123),
            ("VINE_RANDOM_PORT", 0),
            ("VINE_WAIT_FOREVER", -1),
        ],
    ),
    (
        "MOUNT",
        &[
            ("VINE_TRANSFER_ALWAYS", 0),
            ("VINE_FIXED_LOCATION", 1),
            ("VINE_WATCH", 2),
            ("VINE_FAILURE_ONLY", 4),
            ("VINE_SUCCESS_ONLY", 8),
            ("VINE_RETRACT_ON_RESET", 16),
            ("VINE_MOUNT_SYMLINK", 32),
            ("VINE_MOUNT_MKDIR", 64),
        ],
    ),
    (
        "CACHE_LEVEL",
        &[
            ("VINE_CACHE_LEVEL_TASK", 0),
            ("VINE_CACHE_LEVEL_WORKFLOW", 1),
            ("VINE_CACHE_LEVEL_WORKER", 2),
            ("VINE_CACHE_LEVEL_FOREVER", 3),
        ],
    ),
    (
        "file flags",
        &[("VINE_PEER_NOSHARE", 1), ("VINE_UNLINK_WHEN_DONE", 2)],
    ),
    (
        "RESULT",
        &[
            ("VINE_RESULT_SUCCESS", 0),
            ("VINE_RESULT_INPUT_MISSING", 1),
            ("VINE_RESULT_OUTPUT_MISSING", 2),
            ("VINE_RESULT_STDOUT_MISSING", 4),
            ("VINE_RESULT_SIGNAL", 8),
            ("VINE_RESULT_RESOURCE_EXHAUSTION", 16),
            ("VINE_RESULT_MAX_END_TIME", 24),
            ("VINE_RESULT_UNKNOWN", 32),
            ("VINE_RESULT_FORSAKEN", 40),
            ("VINE_RESULT_MAX_RETRIES", 48),
            ("VINE_RESULT_MAX_WALL_TIME", 56),
            ("VINE_RESULT_RMONITOR_ERROR", 64),
            ("VINE_RESULT_OUTPUT_TRANSFER_ERROR", 72),
            ("VINE_RESULT_FIXED_LOCATION_MISSING", 80),
            ("VINE_RESULT_CANCELLED", 88),
            ("VINE_RESULT_LIBRARY_EXIT", 96),
            ("VINE_RESULT_SANDBOX_EXHAUSTION", 104),
            ("VINE_RESULT_MISSING_LIBRARY", 112),
        ],
    ),
    (
        "file types",
        &[
            ("VINE_FILE", 1),
            ("VINE_URL", 2),
            ("VINE_TEMP", 3),
            ("VINE_BUFFER", 4),
            ("VINE_MINI_TASK", 5),
        ],
    ),
    (
        "ALLOCATION_MODE",
        &[
            ("VINE_ALLOCATION_MODE_FIXED", 0),
            ("VINE_ALLOCATION_MODE_MAX", 1),
            ("VINE_ALLOCATION_MODE_MIN_WASTE", 2),
            ("VINE_ALLOCATION_MODE_MAX_THROUGHPUT", 3),
            ("VINE_ALLOCATION_MODE_GREEDY_BUCKETING", 4),
            ("VINE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING", 5),
            ("VINE_ALLOCATION_MODE_DET_GREEDY_BUCKETING", 6),
            ("VINE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING", 7),
            ("VINE_ALLOCATION_MODE_QUANTIZED_BUCKETING", 8),
        ],
    ),
    (
        "SCHEDULE",
        &[
            ("VINE_SCHEDULE_UNSET", 0),
            ("VINE_SCHEDULE_FCFS", 1),
            ("VINE_SCHEDULE_FILES", 2),
            ("VINE_SCHEDULE_TIME", 3),
            ("VINE_SCHEDULE_RAND", 4),
            ("VINE_SCHEDULE_WORST", 5),
            ("VINE_SCHEDULE_DISK", 6),
        ],
    ),
];

#[test]
fn names_shared_with_taskvine_have_taskvine_values() {
    let ours = defines(&committed());
    let mut shared = 0;
    for (_, group) in TASKVINE {
        for (name, value) in *group {
            if let Some((_, v)) = ours.iter().find(|(n, _)| n == name) {
                assert_eq!(v, value, "{name} is {v} in vine.h, {value} in TaskVine");
                shared += 1;
            }
        }
    }
    assert!(shared >= 32, "only {shared} shared names found");
}

#[test]
fn vine_only_mount_flags_and_results_take_no_taskvine_value() {
    let ours = defines(&committed());
    for (key, group) in TASKVINE {
        if !matches!(*key, "MOUNT" | "RESULT") {
            continue;
        }
        let prefix = if *key == "MOUNT" {
            "VINE_MOUNT_"
        } else {
            "VINE_RESULT_"
        };
        for (name, v) in ours.iter().filter(|(n, _)| n.starts_with(prefix)) {
            if group.iter().any(|(n, _)| n == name) {
                continue;
            }
            let clash = group.iter().find(|(_, tv)| {
                // Mount flags are bits: no shared bit; results are values.
                if *key == "MOUNT" {
                    tv & v != 0
                } else {
                    tv == v
                }
            });
            assert!(clash.is_none(), "{name} = {v} collides with {clash:?}");
        }
    }
}

/// TaskVine's `struct vine_stats`: (C type, field), in order (`timestamp_t` is
/// `uint64_t`).
const TASKVINE_STATS: &[(&str, &str)] = &[
    ("int", "workers_connected"),
    ("int", "workers_init"),
    ("int", "workers_idle"),
    ("int", "workers_busy"),
    ("int", "workers_able"),
    ("int", "workers_joined"),
    ("int", "workers_removed"),
    ("int", "workers_released"),
    ("int", "workers_idled_out"),
    ("int", "workers_slow"),
    ("int", "workers_blocked"),
    ("int", "workers_lost"),
    ("int", "tasks_waiting"),
    ("int", "tasks_on_workers"),
    ("int", "tasks_running"),
    ("int", "tasks_with_results"),
    ("int", "tasks_recovery"),
    ("int", "tasks_submitted"),
    ("int", "tasks_dispatched"),
    ("int", "tasks_done"),
    ("int", "tasks_failed"),
    ("int", "tasks_successful"),
    ("int", "tasks_cancelled"),
    ("int", "tasks_exhausted_attempts"),
    ("uint64_t", "time_when_started"),
    ("uint64_t", "time_send"),
    ("uint64_t", "time_receive"),
    ("uint64_t", "time_send_good"),
    ("uint64_t", "time_receive_good"),
    ("uint64_t", "time_status_msgs"),
    ("uint64_t", "time_internal"),
    ("uint64_t", "time_polling"),
    ("uint64_t", "time_application"),
    ("uint64_t", "time_scheduling"),
    ("uint64_t", "time_workers_execute"),
    ("uint64_t", "time_workers_execute_good"),
    ("uint64_t", "time_workers_execute_exhaustion"),
    ("int64_t", "bytes_sent"),
    ("int64_t", "bytes_received"),
    ("double", "bandwidth"),
    ("int", "capacity_tasks"),
    ("int", "capacity_cores"),
    ("int", "capacity_memory"),
    ("int", "capacity_disk"),
    ("int", "capacity_gpus"),
    ("int", "capacity_instantaneous"),
    ("int", "capacity_weighted"),
    ("int64_t", "total_cores"),
    ("int64_t", "total_memory"),
    ("int64_t", "total_disk"),
    ("int64_t", "total_gpus"),
    ("int64_t", "committed_cores"),
    ("int64_t", "committed_memory"),
    ("int64_t", "committed_disk"),
    ("int64_t", "committed_gpus"),
    ("int64_t", "max_cores"),
    ("int64_t", "max_memory"),
    ("int64_t", "max_disk"),
    ("int64_t", "max_gpus"),
    ("int64_t", "min_cores"),
    ("int64_t", "min_memory"),
    ("int64_t", "min_disk"),
    ("int64_t", "min_gpus"),
    ("int64_t", "inuse_cache"),
];

#[test]
fn vine_stats_begins_with_taskvines_fields_in_taskvines_order() {
    let h = committed();
    let start = h
        .find("typedef struct vine_stats {")
        .expect("struct vine_stats");
    let end = start + h[start..].find("} vine_stats;").unwrap();
    let ours: Vec<(String, String)> = h[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(';') && !l.starts_with("//") && !l.starts_with('*'))
        .map(|l| {
            let l = l.trim_end_matches(';');
            let (ty, name) = l.rsplit_once(' ').unwrap();
            (ty.trim().to_owned(), name.to_owned())
        })
        .collect();
    assert!(ours.len() >= TASKVINE_STATS.len(), "{ours:?}");
    for (i, (ty, name)) in TASKVINE_STATS.iter().enumerate() {
        assert_eq!(
            (ours[i].0.as_str(), ours[i].1.as_str()),
            (*ty, *name),
            "field {i} of struct vine_stats"
        );
    }
}

/// taskvine.h lists what vine lacks of TaskVine's API: none of those names is a
/// function of vine.h, and its count of what vine has adds up.
#[test]
fn taskvines_missing_functions_are_listed_and_absent() {
    let tv = std::fs::read_to_string(root().join("include/taskvine.h")).unwrap();
    let vine = committed();
    let lacks = &tv[tv
        .find("What vine lacks")
        .expect("the list of what vine lacks")..];
    // The list ends with the header's comment.
    let lacks = &lacks[..lacks.find("*/").expect("the end of the comment")];
    let mut listed: Vec<&str> = Vec::new();
    for word in lacks.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("vine_") && !listed.contains(&word) {
            listed.push(word);
        }
    }
    // Names that appear in the prose as vine's own alternatives.
    let alternatives = [
        "vine_enable_disconnect_slow_workers",
        "vine_register_function",
        "vine_task_create_function",
        "vine_worker",
        "vine_task_add_poncho_package",
    ];
    let missing: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|n| !alternatives.contains(n))
        .collect();
    let declared =
        |name: &str| vine.contains(&format!(" {name}(")) || vine.contains(&format!("*{name}("));
    for name in &missing {
        assert!(
            !declared(name),
            "{name} is listed as missing but vine.h has it"
        );
    }
    for name in alternatives {
        assert!(
            declared(name) || name == "vine_worker",
            "{name} is not in vine.h"
        );
    }
    let have = 142 - missing.len();
    assert!(
        lacks.contains(&format!("({have} of its 142 functions")),
        "taskvine.h should say vine has {have} of TaskVine's 142 functions"
    );
}
