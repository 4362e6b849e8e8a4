//! Runtime information directories, laid out as TaskVine lays them out:
//! `ROOT/TEMPLATE/vine-logs/{transactions,performance,debug}` with a link
//! `ROOT/most-recent` to the newest run. ROOT is `vine-run-info` in the current
//! directory unless `vine_set_runtime_info_path` or `VINE_RUNTIME_INFO_DIR` says
//! otherwise; TEMPLATE is the start time (`%Y-%m-%dT%H%M%S`, UTC) unless
//! `vine_set_runtime_info_template` sets it (an absolute template is the run
//! directory itself).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The default root, relative to the current directory.
pub(crate) const DEFAULT_ROOT: &str = "vine-run-info";
/// The default template.
const DEFAULT_TEMPLATE: &str = "%Y-%m-%dT%H%M%S";

static TEMPLATE: Mutex<Option<String>> = Mutex::new(None);

/// Sets the template for runs started from now on (None: the default).
pub fn set_template(template: Option<String>) {
    *TEMPLATE.lock().unwrap_or_else(|p| p.into_inner()) = template;
}

/// `template` with `%Y %m %d %H %M %S %%` replaced by the UTC time `secs`.
fn expand(template: &str, secs: i64) -> String {
    let line = super::journal::debug::format_line(secs * 1_000_000, "");
    // "YYYY/MM/DD HH:MM:SS..."
    let part = |a: usize, b: usize| line.get(a..b).unwrap_or("").to_owned();
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&part(0, 4)),
            Some('m') => out.push_str(&part(5, 7)),
            Some('d') => out.push_str(&part(8, 10)),
            Some('H') => out.push_str(&part(11, 13)),
            Some('M') => out.push_str(&part(14, 16)),
            Some('S') => out.push_str(&part(17, 19)),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Makes directory `dir` and those above it. A file already there by that
/// name is reported as what it is (the system says only "File exists").
fn make_dirs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            let e = std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "it is a file, not a directory",
            );
            return Error::io(dir.display(), e);
        }
        Error::io(dir.display(), e)
    })
}

/// Makes a new run directory under `root` (and its `vine-logs`), and points
/// `root/most-recent` at it; returns it, absolute.
pub(crate) fn create(root: &Path) -> Result<PathBuf> {
    let template = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let chosen = template.is_some();
    let template = template.unwrap_or_else(|| DEFAULT_TEMPLATE.into());
    let secs = super::journal::now_us() / 1_000_000;
    let name = expand(&template, secs);
    let mut dir = if Path::new(&name).is_absolute() {
        PathBuf::from(&name)
    } else {
        root.join(&name)
    };
    make_dirs(root)?;
    if !chosen {
        // Two managers started in the same second each get their own.
        let base = dir.clone();
        let mut n = 1;
        while std::fs::create_dir(&dir).is_err() {
            if !dir.exists() {
                return Err(Error::io(
                    dir.display(),
                    std::io::Error::other("cannot create it"),
                ));
            }
            n += 1;
            dir = PathBuf::from(format!("{}.{n}", base.display()));
        }
    }
    let logs = dir.join("vine-logs");
    make_dirs(&logs)?;
    let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let link = root.join("most-recent");
    static LINKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = LINKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".most-recent.{}.{n}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::os::unix::fs::symlink(&dir, &tmp).is_ok() && std::fs::rename(&tmp, &link).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(dir)
}

#[cfg(test)]
mod test {
    #[test]
    fn a_file_where_the_run_root_should_be_is_named_as_such() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-rundir-test").unwrap();
        let file = dir.join("runs");
        std::fs::write(&file, "").unwrap();
        let e = super::create(&file).unwrap_err().to_string();
        assert!(e.contains("it is a file, not a directory"), "{e}");
        assert!(!e.contains("File exists"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn templates_expand_to_the_utc_time() {
        // 2025-12-03 01:02:03 UTC
        let t = 1_764_723_723;
        assert_eq!(super::expand("%Y-%m-%dT%H%M%S", t), "2025-12-03T010203");
        assert_eq!(super::expand("run-%%-%q-%", t), "run-%-%q-%");
    }
}
