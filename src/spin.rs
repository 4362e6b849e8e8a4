//! Short, bounded spinning before a thread goes to sleep. A hand-off between
//! threads that sleep costs a wake-up (microseconds); one between threads that are
//! still looking costs a cache-line transfer (tens of nanoseconds). Spinning is only
//! worth it when a core is idle, so callers ask first; it yields the CPU between
//! rounds so that on a machine with few cores the thread it waits for can run.

use std::time::{Duration, Instant};

/// How long a thread looks for work before sleeping.
pub const BUDGET: Duration = Duration::from_micros(50);

/// Calls `ready` until it returns `Some`, for at most [`BUDGET`]; None if it never did.
pub fn spin_until<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        for _ in 0..32 {
            if let Some(v) = ready() {
                return Some(v);
            }
            std::hint::spin_loop();
        }
        round += 1;
        if round.is_multiple_of(4) {
            if start.elapsed() >= BUDGET {
                return None;
            }
            std::thread::yield_now();
        }
    }
}
