//! The direct lane: local tasks that need nothing the manager thread owns go
//! from the submitting thread straight onto the local pool, and from the pool
//! thread that ran them straight to the completion queue. The manager thread
//! takes part in neither hand-off; it still answers for these tasks when asked
//! (cancel, `IsOutstanding`, shutdown) by asking the pool, which holds them.
//!
//! A task takes the lane only when nothing needs the manager's view of it: the
//! manager has no remote workers (no port, no factory, no local worker
//! processes), writes no transactions or performance log, changes no category
//! setting and measures nothing (`Manager::sizing_active`), and the task is a
//! THREAD function of this process with no files, environment, features, time
//! window or minimum/maximum running time, that the pool could ever hold. And
//! only while the lane saves a hand-off without costing one: nothing else is
//! outstanding (the caller waited for every task before), the pool has an
//! idle core, no direct task waits in it, and the manager holds no task ready
//! or unseen. A wait with no deadline then runs the task itself if no pool
//! thread has started it (`LocalPool::run_direct_here`). Otherwise (tasks
//! outstanding, every core busy) tasks take the manager's path, which hands
//! them over in batches. Any other task takes the manager's
//! path, as before. Direct tasks are counted in their category's stats (their
//! category is the function's name under autocategory). Between the two lanes priority order is
//! kept where the tasks meet, in the pool's queue; a task the manager still holds
//! back (waiting for a file, say) does not hold up a direct task.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::categories::CategoryStats;
use super::scheduler::Stats;
use super::Shared;
use crate::task::{now_us, ExecMode, State, Task, TaskResult, Work};
use crate::worker::local::{LocalPool, Sink};

/// What the stats count of direct tasks, kept with atomics by the threads that
/// submit and finish them.
#[derive(Default)]
pub(crate) struct Counters {
    submitted: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    successful: AtomicU64,
    time_execute: AtomicU64,
    time_execute_good: AtomicU64,
    /// The same, per category (running: submitted and not done).
    categories: Mutex<HashMap<CString, CategoryStats>>,
}

impl Counters {
    pub(crate) fn submitted(&self, n: i64) {
        if n >= 0 {
            self.submitted.fetch_add(n as u64, Relaxed);
        } else {
            self.submitted.fetch_sub(n.unsigned_abs(), Relaxed);
        }
    }

    fn categories(&self) -> std::sync::MutexGuard<'_, HashMap<CString, CategoryStats>> {
        self.categories.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task of `category` took the lane (`n` = 1), or was taken back (-1).
    pub(crate) fn category_submitted(&self, category: &std::ffi::CStr, n: i64) {
        let mut all = self.categories();
        let c = match all.get_mut(category) {
            Some(c) => c,
            None => all.entry(category.to_owned()).or_default(),
        };
        if n >= 0 {
            c.submitted += 1;
            c.dispatched += 1;
        } else {
            c.submitted = c.submitted.saturating_sub(1);
            c.dispatched = c.dispatched.saturating_sub(1);
        }
    }

    /// Adds the direct tasks of `category` to `stats`.
    pub(crate) fn add_category_to(&self, category: &std::ffi::CStr, stats: &mut CategoryStats) {
        if let Some(c) = self.categories().get(category) {
            stats.submitted += c.submitted;
            stats.dispatched += c.dispatched;
            stats.running += c.submitted.saturating_sub(c.done);
            stats.done += c.done;
            stats.failed += c.failed;
            stats.successful += c.successful;
            stats.cancelled += c.cancelled;
            stats.time_execute += c.time_execute;
            stats.time_execute_good += c.time_execute_good;
        }
    }

    /// Tasks that took the direct lane.
    pub(crate) fn submitted_total(&self) -> u64 {
        self.submitted.load(Relaxed)
    }

    /// Adds the direct tasks to `stats` (kept by the manager thread for its own).
    pub(crate) fn add_to(&self, stats: &mut Stats, pool: &LocalPool) {
        let (waiting, running) = pool.direct_counts();
        let (waiting, running) = (waiting as u64, running as u64);
        let submitted = self.submitted.load(Relaxed);
        stats.tasks_submitted += submitted;
        stats.tasks_dispatched += submitted;
        stats.tasks_waiting += waiting;
        stats.tasks_on_workers += waiting + running;
        stats.tasks_running += running;
        stats.tasks_done += self.done.load(Relaxed);
        stats.tasks_failed += self.failed.load(Relaxed);
        stats.tasks_cancelled += self.cancelled.load(Relaxed);
        stats.tasks_successful += self.successful.load(Relaxed);
        stats.time_execute += self.time_execute.load(Relaxed);
        stats.time_execute_good += self.time_execute_good.load(Relaxed);
    }
}

/// True if `task` may take the direct lane (the manager's settings aside; see
/// the module's documentation). The pool itself refuses a task it could never
/// hold, which then takes the manager's path.
pub(crate) fn eligible(task: &Task) -> bool {
    let runs_here = match &task.work {
        Work::Local { .. } => true,
        Work::Function { func, .. } => func.is_some(),
        Work::Command { .. } => false,
    };
    runs_here
        && matches!(task.mode, ExecMode::Thread)
        && task.flags & crate::task::FLAG_MONITOR == 0
        && task.extra.as_ref().is_none_or(|e| {
            e.inputs.is_empty()
                && e.outputs.is_empty()
                && e.env.is_empty()
                && e.features.is_empty()
                && e.time_min == 0.0
                && e.time_max == 0.0
                && e.time_start == 0
                && e.time_end == 0
                && e.max_forsaken.is_none()
                && e.refused.is_none()
        })
}

/// Readies `task` for the pool: it is dispatched as the manager would have
/// dispatched it to its local worker.
pub(crate) fn prepare(task: &mut Task, local_worker: u32) {
    task.attempts = 1;
    task.worker_id = local_worker;
    task.publish_state(State::Running);
}

/// Where the pool puts finished direct tasks: counted, then handed to the
/// waiters, as the manager thread would have done.
pub(crate) fn sink(shared: Arc<Shared>) -> Sink {
    Box::new(move |mut task: Box<Task>| {
        let c = &shared.direct;
        if task.cancel_requested() {
            task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
        }
        if task.times.done == 0 {
            task.times.done = now_us();
        }
        c.done.fetch_add(1, Relaxed);
        if task.result != TaskResult::Success || task.exit_code != 0 {
            c.failed.fetch_add(1, Relaxed);
        }
        if task.result == TaskResult::Cancelled {
            c.cancelled.fetch_add(1, Relaxed);
        }
        let execute = u64::try_from(task.times.execute).unwrap_or(0);
        c.time_execute.fetch_add(execute, Relaxed);
        let good = task.result == TaskResult::Success;
        let successful = good && task.exit_code == 0;
        if good {
            c.time_execute_good.fetch_add(execute, Relaxed);
            if successful {
                c.successful.fetch_add(1, Relaxed);
            }
        }
        {
            let mut all = c.categories();
            let category = task.category();
            let s = match all.get_mut(category) {
                Some(s) => s,
                None => all.entry(category.to_owned()).or_default(),
            };
            s.done += 1;
            s.failed += u64::from(!successful);
            s.successful += u64::from(successful);
            s.cancelled += u64::from(task.result == TaskResult::Cancelled);
            s.time_execute += execute;
            if good {
                s.time_execute_good += execute;
            }
        }
        task.publish_state(State::Retrieved);
        shared.completions.push(task);
    })
}
