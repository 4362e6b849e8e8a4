//! The time records carry: microseconds since the Unix epoch, read from the
//! monotonic clock after one reading of the wall clock, so that records never
//! go back in time when the system clock is set.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static ORIGIN: OnceLock<(Instant, i64)> = OnceLock::new();

/// Microseconds since the Unix epoch, never decreasing within the process.
pub(crate) fn now_us() -> i64 {
    let (at, epoch_us) = *ORIGIN.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        (Instant::now(), wall)
    });
    epoch_us.saturating_add(at.elapsed().as_micros().min(i64::MAX as u128) as i64)
}
