//! What the page shows, computed from one run: timeline bars with their lanes,
//! the running and waiting counts over time, durations, and the tables.

use super::parse::{Attempt, Log, Outcome, Run};
use super::slots;
use std::collections::HashMap;

/// One attempt that ran, as a bar on the timeline.
pub struct Bar {
    /// Lane from the top (0 = first lane of the first worker).
    pub lane: usize,
    pub start_s: f64,
    pub end_s: f64,
    pub category: usize,
    pub failed: bool,
}

/// A worker's block of lanes on the timeline.
pub struct Lanes {
    pub worker: String,
    pub first: usize,
    pub count: usize,
}

/// A row of the slowest-attempts table.
pub struct Slow {
    pub task: String,
    pub attempt: String,
    pub category: String,
    pub worker: String,
    pub duration_s: f64,
    pub result: String,
}

/// A row of the failures table.
pub struct Failure {
    pub task: String,
    pub attempt: String,
    pub result: String,
    pub exit_code: Option<i64>,
    pub worker: String,
}

pub struct Model {
    pub bars: Vec<Bar>,
    pub lanes: Vec<Lanes>,
    pub total_lanes: usize,
    /// Categories in order of first appearance; a bar's `category` indexes this.
    pub categories: Vec<String>,
    /// Step functions: (seconds since start, count).
    pub running: Vec<(f64, f64)>,
    pub waiting: Vec<(f64, f64)>,
    /// Durations (seconds) of attempts whose result came back.
    pub durations_s: Vec<f64>,
    pub slowest: Vec<Slow>,
    pub failures: Vec<Failure>,
    /// The x range every time plot shares.
    pub x_min: f64,
    pub x_max: f64,
    pub tasks: usize,
    pub attempts_ran: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub lost: usize,
    pub unfinished: usize,
    pub tasks_not_succeeded: usize,
    pub workers: usize,
    pub makespan_s: f64,
}

pub const SLOWEST: usize = 20;

fn secs(us: i64, origin: i64) -> f64 {
    (us.saturating_sub(origin)) as f64 / 1e6
}

fn attempt_label(a: &Attempt, i: usize) -> String {
    match a.number {
        Some(n) => n.to_string(),
        None => (i + 1).to_string(),
    }
}

/// A step function through `(time, +1/-1)` events, starting at 0 at `x_min`
/// and held to `x_max`. At equal times ends come before starts, so a slot
/// handed over shows no spike.
fn steps(mut events: Vec<(i64, i32)>, origin: i64, x_min: f64, x_max: f64) -> Vec<(f64, f64)> {
    events.sort_unstable();
    let mut out = vec![(x_min, 0.0)];
    let mut cur: i64 = 0;
    let mut i = 0;
    while i < events.len() {
        let t = events[i].0;
        let before = cur;
        while i < events.len() && events[i].0 == t {
            cur += i64::from(events[i].1);
            i += 1;
        }
        if cur != before {
            let x = secs(t, origin);
            out.push((x, before as f64));
            out.push((x, cur as f64));
        }
    }
    out.push((x_max, cur as f64));
    out
}

pub fn build(log: &Log) -> Model {
    let run: &Run = &log.run;
    let origin = run.origin_us;
    let run_end = run.run_end_us();

    let mut categories: Vec<String> = Vec::new();
    let mut category_of = HashMap::new();
    for t in &run.tasks {
        if !category_of.contains_key(&t.category) {
            category_of.insert(t.category.clone(), categories.len());
            categories.push(t.category.clone());
        }
    }

    // Per worker, the attempts that ran there: (task, attempt, start, end).
    let mut per_worker: Vec<Vec<(usize, usize, i64, i64)>> = vec![Vec::new(); run.workers.len()];
    let worker_pos: HashMap<&str, usize> = run
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id.as_str(), i))
        .collect();
    let mut x_min_us = origin;
    let mut x_max_us = run_end;
    let mut run_events = Vec::new();
    let mut wait_events = Vec::new();
    let (mut succeeded, mut failed, mut lost, mut unfinished, mut ran) = (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut slow: Vec<(i64, usize, usize)> = Vec::new();
    for (ti, t) in run.tasks.iter().enumerate() {
        for (ai, a) in t.attempts.iter().enumerate() {
            if let (Some(r), Some(e)) = (a.ready_us, a.wait_end_us(run_end)) {
                wait_events.push((r, 1));
                wait_events.push((e, -1));
                x_min_us = x_min_us.min(r);
                x_max_us = x_max_us.max(e);
            }
            let outcome = a.outcome();
            if let (Some(s), Some(e), Some(w)) = (a.start_us(), a.end_us(run_end), &a.worker) {
                ran += 1;
                if let Some(&wi) = worker_pos.get(w.as_str()) {
                    per_worker[wi].push((ti, ai, s, e));
                }
                run_events.push((s, 1));
                run_events.push((e, -1));
                x_min_us = x_min_us.min(s);
                x_max_us = x_max_us.max(e);
                match outcome {
                    Outcome::Success => succeeded += 1,
                    Outcome::Failed(_) => failed += 1,
                    Outcome::Lost => lost += 1,
                    Outcome::Unfinished => unfinished += 1,
                    Outcome::NotRun => {}
                }
            }
            if let Some(d) = a.duration_us() {
                slow.push((d, ti, ai));
            }
            let result = match &outcome {
                Outcome::Failed(r) => Some(r.clone()),
                Outcome::Lost => Some(lost_why(run, &worker_pos, a)),
                _ => None,
            };
            if let Some(result) = result {
                failures.push(Failure {
                    task: t.id.clone(),
                    attempt: attempt_label(a, ai),
                    result,
                    exit_code: a.exit_code,
                    worker: a.worker.clone().unwrap_or_default(),
                });
            }
        }
    }

    // Lanes: per worker, greedy slots by start; workers in order of appearance.
    let mut bars = Vec::new();
    let mut lanes = Vec::new();
    let mut next_lane = 0;
    for (wi, list) in per_worker.iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        let intervals: Vec<(i64, i64)> = list.iter().map(|&(_, _, s, e)| (s, e)).collect();
        let (slot, count) = slots::assign(&intervals);
        for (k, &(ti, ai, s, e)) in list.iter().enumerate() {
            let t = &run.tasks[ti];
            let a = &t.attempts[ai];
            bars.push(Bar {
                lane: next_lane + slot[k],
                start_s: secs(s, origin),
                end_s: secs(e, origin),
                category: category_of.get(&t.category).copied().unwrap_or(0),
                failed: matches!(a.outcome(), Outcome::Failed(_) | Outcome::Lost),
            });
        }
        lanes.push(Lanes {
            worker: run.workers[wi].id.clone(),
            first: next_lane,
            count,
        });
        next_lane += count;
    }

    let x_min = secs(x_min_us, origin);
    let mut x_max = secs(x_max_us, origin);
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }

    slow.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let durations_s = slow.iter().map(|&(d, _, _)| d as f64 / 1e6).collect();
    let slowest = slow
        .iter()
        .take(SLOWEST)
        .map(|&(d, ti, ai)| {
            let t = &run.tasks[ti];
            let a = &t.attempts[ai];
            Slow {
                task: t.id.clone(),
                attempt: attempt_label(a, ai),
                category: t.category.clone(),
                worker: a.worker.clone().unwrap_or_default(),
                duration_s: d as f64 / 1e6,
                result: match a.outcome() {
                    Outcome::Lost => lost_why(run, &worker_pos, a),
                    _ => a.result.clone().unwrap_or_default(),
                },
            }
        })
        .collect();

    let tasks_not_succeeded = run
        .tasks
        .iter()
        .filter(|t| match &t.done {
            Some((r, _)) => r != "SUCCESS",
            None => t
                .attempts
                .last()
                .is_some_and(|a| a.outcome() != Outcome::Success),
        })
        .count();

    Model {
        bars,
        total_lanes: next_lane,
        lanes,
        categories,
        running: steps(run_events, origin, x_min, x_max),
        waiting: steps(wait_events, origin, x_min, x_max),
        durations_s,
        slowest,
        failures,
        x_min,
        x_max,
        tasks: run.tasks.len(),
        attempts_ran: ran,
        succeeded,
        failed,
        lost,
        unfinished,
        tasks_not_succeeded,
        workers: run.workers.len(),
        makespan_s: secs(run_end, origin),
    }
}

/// How a lost attempt is named in the tables.
fn lost_why(run: &Run, worker_pos: &HashMap<&str, usize>, a: &Attempt) -> String {
    let w = a
        .worker
        .as_deref()
        .and_then(|id| worker_pos.get(id))
        .map(|&i| &run.workers[i]);
    match w {
        Some(w) if w.disconnected_us.is_some() && w.disconnected_us == a.closed_us => format!(
            "LOST (worker DISCONNECTION {})",
            w.disconnect_reason.as_deref().unwrap_or("UNKNOWN")
        ),
        _ => "LOST (no result before it was made ready again)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hand_over_without_spike() {
        let s = steps(vec![(2, 1), (1, 1), (2, -1), (3, -1)], 0, 0.0, 1.0);
        let counts: Vec<f64> = s.iter().map(|p| p.1).collect();
        assert!(counts.iter().all(|&c| c <= 1.0), "{s:?}");
    }
}
