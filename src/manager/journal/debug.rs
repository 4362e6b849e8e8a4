//! The debug log: a line per notable event (workers coming and going, factory
//! jobs, errors, the program's own lines), in TaskVine's layout
//! `YYYY/MM/DD HH:MM:SS.cc vine[pid] vine: message`, times in UTC. Each manager
//! writes its own (in its runtime directory); `vine_enable_debug_log` adds one
//! file that every manager of the process writes to.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};

static GLOBAL: Mutex<Option<super::logfile::LogFile>> = Mutex::new(None);
/// The device and inode of the file `GLOBAL` writes to.
static GLOBAL_AT: Mutex<Option<(u64, u64)>> = Mutex::new(None);

/// The device and inode of the process's debug log, if there is one.
pub(crate) fn global_at() -> Option<(u64, u64)> {
    *GLOBAL_AT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every manager's debug lines also go to `path` (created or truncated).
/// Refused if a manager of the process writes a log of its own to that file
/// (both would truncate and tear each other's lines).
pub(crate) fn enable_global(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(path) {
        if super::is_manager_log((m.dev(), m.ino())) {
            return Err(Error::invalid(format!(
                "{} is a log of a manager already",
                path.display()
            )));
        }
    }
    let (f, at) = super::logfile::LogFile::create(path)?;
    let mut global = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    *global = Some(f);
    *GLOBAL_AT.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    Ok(())
}

/// Writes `line` to the process's debug log, if there is one.
pub(crate) fn to_global(line: &str) {
    if let Some(f) = GLOBAL.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Days since 1970-01-01 as (year, month, day), in the proleptic Gregorian
/// calendar.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A debug log line for `text` at `at` (microseconds since the epoch).
pub(crate) fn format_line(at: i64, text: &str) -> String {
    let secs = at.div_euclid(1_000_000);
    let centis = at.rem_euclid(1_000_000) / 10_000;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}/{mo:02}/{d:02} {:02}:{:02}:{:02}.{centis:02} vine[{}] vine: {}\n",
        s / 3600,
        s / 60 % 60,
        s % 60,
        std::process::id(),
        super::line(text)
    )
}

#[cfg(test)]
mod test {
    #[test]
    fn dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(19_723), (2024, 1, 1));
        assert_eq!(super::civil(20_425), (2025, 12, 3));
        let l = super::format_line(1_764_720_000_123_456, "a\nb");
        assert!(l.starts_with("2025/12/03 00:00:00.12 vine["), "{l}");
        assert!(l.ends_with("vine: a b\n"), "{l}");
    }
}
