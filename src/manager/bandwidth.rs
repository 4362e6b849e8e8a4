//! The manager's file transfers with its workers: how long they take (the
//! effective bandwidth) and a limit on their rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Transfer times and the rate limit, shared by every worker connection.
#[derive(Default)]
pub struct Transfers {
    /// Bytes a second each connection may carry in file data; 0: no limit.
    limit: AtomicU64,
    send_us: AtomicU64,
    send_good_us: AtomicU64,
    receive_us: AtomicU64,
    receive_good_us: AtomicU64,
}

/// Microseconds spent sending and receiving files, all of them and those that
/// arrived whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    /// Sending files to workers.
    pub send_us: u64,
    /// Sending the files that arrived whole.
    pub send_good_us: u64,
    /// Receiving files from workers.
    pub receive_us: u64,
    /// Receiving the files that arrived whole.
    pub receive_good_us: u64,
}

impl Transfers {
    /// Sets the limit, in bytes a second (0: none).
    pub fn set_limit(&self, bytes_per_second: u64) {
        self.limit.store(bytes_per_second, Ordering::Relaxed);
    }

    /// The limit, in bytes a second (0: none).
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// A file sent to a worker took `took`; `good` if it arrived whole.
    pub fn sent(&self, took: Duration, good: bool) {
        add(&self.send_us, &self.send_good_us, took, good);
    }

    /// A file received from a worker took `took`; `good` if it arrived whole.
    pub fn received(&self, took: Duration, good: bool) {
        add(&self.receive_us, &self.receive_good_us, took, good);
    }

    /// The times so far.
    pub fn times(&self) -> Times {
        Times {
            send_us: self.send_us.load(Ordering::Relaxed),
            send_good_us: self.send_good_us.load(Ordering::Relaxed),
            receive_us: self.receive_us.load(Ordering::Relaxed),
            receive_good_us: self.receive_good_us.load(Ordering::Relaxed),
        }
    }
}

fn add(all: &AtomicU64, good_ones: &AtomicU64, took: Duration, good: bool) {
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    all.fetch_add(us, Ordering::Relaxed);
    if good {
        good_ones.fetch_add(us, Ordering::Relaxed);
    }
}

/// MB (2^20 bytes) a second over `bytes` moved in `us` microseconds; 0 when
/// nothing was timed.
pub fn mb_per_second(bytes: u64, us: u64) -> f64 {
    if us == 0 {
        return 0.0;
    }
    bytes as f64 / (1u64 << 20) as f64 / (us as f64 / 1e6)
}

/// Holds one connection's file data to the limit: each piece takes the link
/// for its length over the limit, and the next waits until then.
#[derive(Default)]
pub struct Pace {
    free_at: Option<Instant>,
}

impl Pace {
    /// `bytes` of file data went by at `at`; sleeps until they would have at
    /// `limit` bytes a second (0: no limit), or until `stop` is set.
    pub fn went(&mut self, at: Instant, bytes: usize, limit: u64, stop: &AtomicBool) {
        if limit == 0 {
            self.free_at = None;
            return;
        }
        if bytes == 0 {
            return;
        }
        let start = self.free_at.map_or(at, |f| f.max(at));
        let busy = Duration::from_secs_f64(bytes as f64 / limit as f64);
        let free_at = start.checked_add(busy).unwrap_or(start);
        self.free_at = Some(free_at);
        // In slices: a shutdown does not wait for a slow limit.
        loop {
            let now = Instant::now();
            if free_at <= now || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep((free_at - now).min(Duration::from_millis(100)));
        }
    }
}

/// Bytes a second from a rate such as `"500K"`, `"10MB"`, `"1.5 G"` or
/// `"2000000"`: a finite number of at least 0, then optionally K, M, G, T or
/// P (powers of 1024) and B. `"0"` is no limit.
pub fn parse_rate(text: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(format!(
            "{text:?} is not a rate: a number of bytes a second, optionally with K, M, G, T or P (powers of 1024)"
        ))
    };
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).map(str::trim_end).unwrap_or(t);
    let (number, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let power = match c.to_ascii_uppercase() {
                'K' => 1,
                'M' => 2,
                'G' => 3,
                'T' => 4,
                'P' => 5,
                _ => return Err(bad()),
            };
            (t[..i].trim_end(), 1024f64.powi(power))
        }
        _ => (t, 1.0),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    if number.is_empty() || !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let rate = (n * scale).ceil();
    if rate > u64::MAX as f64 {
        return Err(Error::invalid(format!("{text:?} is past the largest rate")));
    }
    Ok(rate as u64)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rates_parse_with_their_units_and_bad_ones_are_refused() {
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert_eq!(parse_rate("2000000").unwrap(), 2_000_000);
        assert_eq!(parse_rate("500K").unwrap(), 500 * 1024);
        assert_eq!(parse_rate("10MB").unwrap(), 10 << 20);
        assert_eq!(parse_rate(" 1.5 gb ").unwrap(), 1536 << 20);
        assert_eq!(parse_rate("3 B").unwrap(), 3);
        assert_eq!(parse_rate("1T").unwrap(), 1 << 40);
        for bad in [
            "", "B", "M", "-1", "-1K", "NaN", "inf", "1e400", "1X", "1 MBs", "K10", "1..2", "1e30P",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_pace_holds_data_to_the_limit_and_no_limit_does_not_wait() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let go_on = AtomicBool::new(false);
        for _ in 0..10 {
            p.went(Instant::now(), 1000, 100_000, &go_on);
        }
        // 10,000 bytes at 100,000 a second take at least 0.1 s.
        assert!(t0.elapsed() >= Duration::from_millis(100));
        let mut free = Pace::default();
        free.went(Instant::now(), usize::MAX, 0, &go_on);
        assert!(free.free_at.is_none());
        // A stop ends the wait: an hour's worth of data at once.
        let stop = AtomicBool::new(true);
        let mut slow = Pace::default();
        slow.went(Instant::now(), 3600, 1, &stop);
        assert!(slow.free_at.is_some());
    }

    #[test]
    fn bandwidth_is_megabytes_a_second_and_zero_untimed() {
        assert_eq!(mb_per_second(1 << 20, 1_000_000), 1.0);
        assert_eq!(mb_per_second(5 << 20, 0), 0.0);
        let t = Transfers::default();
        t.sent(Duration::from_micros(30), true);
        t.sent(Duration::from_micros(20), false);
        t.received(Duration::from_micros(7), true);
        assert_eq!(
            t.times(),
            Times {
                send_us: 50,
                send_good_us: 30,
                receive_us: 7,
                receive_good_us: 7
            }
        );
    }
}
