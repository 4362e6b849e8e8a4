//! Lanes for a worker's attempts: each attempt, in order of start, takes the
//! lowest slot free at its start. An attempt that ends exactly when another
//! starts hands its slot over, so back-to-back attempts share a lane and the
//! number of slots is the worker's peak concurrency.
//!
//! Self-contained (std only): tests/report.rs compiles this file as its own
//! module to check the assignment directly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The slot of each interval `(start, end)` (same order as given) and the
/// number of slots used. An interval with `end < start` is taken as empty at
/// `start`. Ties in start are broken by end, then by position, so the result
/// does not depend on the sort's stability.
pub fn assign(intervals: &[(i64, i64)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (intervals[i].0, intervals[i].1.max(intervals[i].0), i));
    let mut slot = vec![0; intervals.len()];
    let mut busy: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut free: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    let mut used = 0;
    for i in order {
        let (start, end) = intervals[i];
        while let Some(&Reverse((busy_end, s))) = busy.peek() {
            if busy_end > start {
                break;
            }
            busy.pop();
            free.push(Reverse(s));
        }
        let s = match free.pop() {
            Some(Reverse(s)) => s,
            None => {
                used += 1;
                used - 1
            }
        };
        slot[i] = s;
        busy.push(Reverse((end.max(start), s)));
    }
    (slot, used)
}
