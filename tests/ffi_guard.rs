//! Every C entry point runs its whole body inside the panic guard, so no panic
//! (nor anything an entry point does before its guard, such as reading a C string)
//! escapes it: a panic becomes an error value and `vine_last_error()`. Checked on
//! the source of src/ffi, against the functions vine.h declares.

use std::collections::BTreeSet;
use std::path::Path;

/// The calls that are the panic guard (see src/ffi/boundary.rs); `set` is the
/// setters' guard in src/ffi/task.rs, itself one call of `guard_code`.
const GUARDS: [&str; 5] = ["guard", "guard_code", "guard_or_code", "guard_errno", "set"];

/// `extern "C" fn ` as it reads once string contents are blanked (`code_only`).
const EXTERN_C_FN: &str = "extern \"\" fn ";

/// `src` with comments removed and the contents of string and character literals
/// blanked, so that braces and parentheses can be matched.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if src[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if src[i..].starts_with("/*") {
            let end = src[i + 2..].find("*/").expect("closed comment");
            i += 2 + end + 2;
        } else if c == b'r' && (src[i + 1..].starts_with('"') || src[i + 1..].starts_with("#\"")) {
            // A raw string: r"..." or r#"..."#.
            let hashes = src[i + 1..].bytes().take_while(|&h| h == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = i + 1 + hashes + 1;
            let end = src[start..].find(&close).expect("closed raw string");
            out.push_str("\"\"");
            i = start + end + close.len();
        } else if c == b'"' {
            i += 1;
            while b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A character literal ('x', '\n', '{') or a lifetime ('a, '_).
            if b[i + 1] == b'\\' {
                i += 2;
                while b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The index just past the bracket matching the one at `open`.
fn matching(code: &str, open: usize) -> usize {
    let (o, c) = match code.as_bytes()[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        other => panic!("not a bracket: {}", other as char),
    };
    let mut depth = 0;
    for (k, &x) in code.as_bytes()[open..].iter().enumerate() {
        if x == o {
            depth += 1;
        } else if x == c {
            depth -= 1;
            if depth == 0 {
                return open + k + 1;
            }
        }
    }
    panic!("unbalanced brackets")
}

/// Each function named `fn NAME` in `code` that is preceded by `marker`, with
/// its body (inside the braces).
fn bodies<'a>(code: &'a str, marker: &str) -> Vec<(String, &'a str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(marker) {
        let start = from + at + marker.len();
        from = start;
        let name: String = code[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // a function pointer type, `extern "C" fn(...)`
        }
        let params = start + code[start..].find('(').unwrap();
        let after = matching(code, params);
        let open = after + code[after..].find('{').unwrap();
        let close = matching(code, open);
        found.push((name, &code[open + 1..close - 1]));
    }
    found
}

/// Whether `body` is, as a whole, one call of a guard.
fn is_one_guard_call(body: &str) -> bool {
    let body = body.trim();
    let Some(open) = body.find('(') else {
        return false;
    };
    let callee = body[..open].trim();
    GUARDS.contains(&callee) && matching(body, open) == body.len()
}

fn ffi_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, code_only(&std::fs::read_to_string(p).unwrap()))
        })
        .collect()
}

#[test]
fn every_entry_point_runs_its_whole_body_inside_the_panic_guard() {
    let mut exported = BTreeSet::new();
    let mut unguarded = Vec::new();
    for (file, code) in ffi_sources() {
        for (name, body) in bodies(&code, EXTERN_C_FN) {
            if !is_one_guard_call(body) {
                unguarded.push(format!("{file}: {name}"));
            }
            exported.insert(name);
        }
        // The setters' guard is itself one call of the guard.
        for (name, body) in bodies(&code, "\nfn ") {
            if GUARDS.contains(&name.as_str()) {
                let body = body.trim();
                assert!(
                    body.starts_with("guard") && is_one_guard_call(body),
                    "{file}: {name} is not the guard"
                );
            }
        }
    }
    assert!(
        unguarded.is_empty(),
        "entry points with code outside their panic guard: {unguarded:#?}"
    );
    // Every function of vine.h was seen.
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/vine.h"))
            .unwrap();
    let declared: BTreeSet<String> = header
        .lines()
        .filter(|l| l.ends_with(");") && !l.starts_with("//"))
        .filter_map(|l| l.split('(').next()?.split([' ', '*']).next_back())
        .filter(|n| n.starts_with("vine_"))
        .map(str::to_owned)
        .collect();
    assert!(declared.len() > 50, "{declared:?}");
    let missing: Vec<_> = declared.difference(&exported).collect();
    assert!(missing.is_empty(), "not found in src/ffi: {missing:?}");
}

#[test]
fn the_check_sees_code_outside_a_guard() {
    let code = code_only(
        r#"
pub unsafe extern "C" fn vine_a(p: *const c_char) -> c_int {
    let s = unsafe { c_str(p, "a {") };
    set(t, |t| t.x(s?))
}
pub extern "C" fn vine_b(m: *mut vine_manager) -> c_int {
    guard_code(|| Ok(handles::manager(m)?.port().map_or(-1, c_int::from)))
}
pub extern "C" fn vine_c() -> *const c_char {
    guard(c"".as_ptr(), || Ok(last_error())); other()
}
pub extern "C" fn vine_d(t: *mut vine_task, m: vine_exec_mode_t) -> c_int {
    set(t, |t: &'_ mut Task| match m { '}' => t.x(), _ => Err(e) })
}
"#,
    );
    let verdicts: Vec<(String, bool)> = bodies(&code, EXTERN_C_FN)
        .into_iter()
        .map(|(n, b)| (n, is_one_guard_call(b)))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("vine_a".to_owned(), false),
            ("vine_b".to_owned(), true),
            ("vine_c".to_owned(), false),
            ("vine_d".to_owned(), true),
        ]
    );
}
