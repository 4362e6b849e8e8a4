//! When the batch job a worker runs in ends: under Slurm (`SLURM_JOB_ID` set), as
//! `squeue -j $SLURM_JOB_ID -h -o %e` says. Anything that goes wrong (no `squeue`,
//! no answer, "N/A", an end already past) leaves the end unknown; it never stops
//! the worker.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `squeue` is given to answer before the end is taken as unknown.
const SQUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// The time left before this process's Slurm job ends, if it runs in one and
/// Slurm says.
pub(super) fn slurm_time_left() -> Option<Duration> {
    let job = std::env::var("SLURM_JOB_ID")
        .ok()
        .filter(|j| !j.is_empty())?;
    let out = match run_squeue(&job) {
        Ok(out) => out,
        Err(why) => {
            super::log::notice(&format!("the end of Slurm job {job} is not known: {why}"));
            return None;
        }
    };
    let Some(end) = squeue_end(&out) else {
        super::log::debug(|| format!("Slurm job {job} has no known end ({})", out.trim()));
        return None;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let left = u64::try_from(end).ok()?.checked_sub(now).filter(|&s| s > 0);
    if left.is_none() {
        super::log::notice(&format!(
            "Slurm says job {job} ended at {}, before now: its end is taken as unknown",
            out.trim()
        ));
    }
    left.map(Duration::from_secs)
}

/// Runs `squeue` for `job`, bounded by [`SQUEUE_TIMEOUT`]; its standard output.
fn run_squeue(job: &str) -> Result<String, String> {
    let mut child = Command::new("squeue")
        .args(["-j", job, "-h", "-o", "%e"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    let until = Instant::now() + SQUEUE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("squeue gave no answer in {SQUEUE_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("squeue: {e}")),
        }
    };
    if !status.success() {
        return Err(format!("squeue failed ({status})"));
    }
    // One short line: it fits in the pipe, read after the exit.
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        o.read_to_string(&mut out)
            .map_err(|e| format!("squeue's output: {e}"))?;
    }
    Ok(out)
}

/// The end squeue printed (its first line, `YYYY-MM-DDTHH:MM:SS` in local time),
/// in seconds since the epoch; None for "N/A", "Unknown" or anything else.
fn squeue_end(out: &str) -> Option<i64> {
    let line = out.lines().next()?.trim();
    local_to_epoch(parse_slurm_time(line)?)
}

/// The fields of a Slurm time `YYYY-MM-DDTHH:MM:SS`: year, month, day, hour,
/// minute, second, each in its range.
fn parse_slurm_time(s: &str) -> Option<[i32; 6]> {
    let (date, time) = s.split_once('T')?;
    let mut f = [0i32; 6];
    let parts = date.split('-').chain(time.split(':'));
    let mut n = 0;
    for p in parts {
        if n == 6 || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 4 {
            return None;
        }
        f[n] = p.parse().ok()?;
        n += 1;
    }
    let [_, mo, d, h, mi, sec] = f;
    let ok = n == 6
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0..=60).contains(&sec);
    ok.then_some(f)
}

/// Seconds since the epoch of a local time (year, month, day, hour, minute,
/// second), as the C library's time zone rules say.
fn local_to_epoch(f: [i32; 6]) -> Option<i64> {
    // SAFETY: `tm` is integers and, on some systems, a pointer to a zone name,
    // for which null is valid: all zeros is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = f[0] - 1900;
    tm.tm_mon = f[1] - 1;
    tm.tm_mday = f[2];
    tm.tm_hour = f[3];
    tm.tm_min = f[4];
    tm.tm_sec = f[5];
    // Whether summer time applies is for the C library to find.
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, exclusively borrowed struct tm.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_times_are_parsed_and_anything_else_is_unknown() {
        assert_eq!(
            parse_slurm_time("2026-12-02T16:30:05"),
            Some([2026, 12, 2, 16, 30, 5])
        );
        for bad in [
            "N/A",
            "Unknown",
            "",
            "2026-12-02",
            "2026-12-02T16:30",
            "2026-13-02T16:30:05",
            "2026-12-02T24:00:00",
            "2026-12-02T16:30:05:01",
            "2026-12-02 16:30:05",
            "2026-12-0xT16:30:05",
            "-2026-12-02T16:30:05",
        ] {
            assert_eq!(parse_slurm_time(bad), None, "{bad:?}");
            assert_eq!(squeue_end(bad), None, "{bad:?}");
        }
        assert_eq!(squeue_end(""), None);
    }

    #[test]
    fn a_squeue_end_is_local_time_in_seconds_since_the_epoch() {
        // Two ends 1 h 2 min 3 s apart, in January (no change of summer time
        // between them), are that far apart in seconds, whatever the zone.
        let a = squeue_end("2030-01-15T10:00:00\n").unwrap();
        let b = squeue_end("2030-01-15T11:02:03\n").unwrap();
        assert_eq!(b - a, 3723);
        // And the time is the local one: converting back gives the same fields.
        // SAFETY: zeroed `tm` is valid (see local_to_epoch); localtime_r writes it.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let t = a as libc::time_t;
        // SAFETY: both pointers are to valid, live values.
        assert!(!unsafe { libc::localtime_r(&t, &mut tm) }.is_null());
        assert_eq!(
            (
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min
            ),
            (2030, 1, 15, 10, 0)
        );
    }
}
