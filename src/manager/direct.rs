//! The direct lane: local tasks that need nothing the manager thread owns go
//! from the submitting thread straight onto the local pool, and from the pool
//! thread that ran them straight to the completion queue. The manager thread
//! takes part in neither hand-off; it still answers for these tasks when asked
//! (cancel, `IsOutstanding`, shutdown) by asking the pool, which holds them.
//!
//! A task takes the lane only when nothing needs the manager's view of it: the
//! manager has no remote workers (no port, no factory, no local worker
//! processes), writes no transactions, performance or task graph log, changes no category
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
use std::ffi::{CStr, CString};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard};

use super::categories::CategoryStats;
use super::scheduler::Stats;
use super::{Message, Shared};
use crate::task::{now_us, ExecMode, Place, State, Task, TaskResult, Work};
use crate::worker::local::{LocalPool, Sink};

/// What the stats count of direct tasks, kept under one lock by the threads
/// that submit and finish them, so that a reader sees them all at one moment
/// (a task is never counted submitted and not yet finished in one total while
/// finished in another).
#[derive(Default)]
pub(crate) struct Counters(Mutex<Counts>);

#[derive(Default)]
struct Counts {
    /// Every direct task (`running` unused: submitted and not done).
    all: CategoryStats,
    /// The same, per category, in the order first seen (looked up twice for
    /// every direct task).
    categories: Vec<(CString, CategoryStats)>,
    /// Where each category is in `categories` (a category is the program's
    /// own name, so the cheap hash of task ids serves, not SipHash).
    index: HashMap<CString, usize, BuildHasherDefault<crate::idmap::IdHasher>>,
    /// The category looked up last: most tasks have the category of the one
    /// before them, found then with no hashing.
    last: usize,
    /// The manager thread counts the direct tasks still running by category
    /// (it bounds how many of a category run at once): no task takes the lane
    /// any more, and each one ending is reported to it.
    watched: bool,
}

/// A direct task took the lane (`by` 1) or was taken back (-1).
fn count_taken(s: &mut CategoryStats, by: i64) {
    s.submitted = s.submitted.saturating_add_signed(by);
    s.dispatched = s.dispatched.saturating_add_signed(by);
}

/// A direct task ended after `execute` microseconds with `result`.
fn count_ended(s: &mut CategoryStats, execute: u64, result: TaskResult, successful: bool) {
    s.done += 1;
    s.failed += u64::from(!successful);
    s.successful += u64::from(successful);
    s.cancelled += u64::from(result == TaskResult::Cancelled);
    s.time_execute = s.time_execute.saturating_add(execute);
    if result == TaskResult::Success {
        s.time_execute_good = s.time_execute_good.saturating_add(execute);
    }
}

impl Counts {
    fn category(&mut self, category: &CStr) -> &mut CategoryStats {
        let last_matches = self
            .categories
            .get(self.last)
            .is_some_and(|(name, _)| name.as_c_str() == category);
        if !last_matches {
            // Looked up before inserting: the name is copied only the first time.
            self.last = match self.index.get(category) {
                Some(&at) => at,
                None => {
                    let at = self.categories.len();
                    self.categories
                        .push((category.to_owned(), CategoryStats::default()));
                    self.index.insert(category.to_owned(), at);
                    at
                }
            };
        }
        &mut self.categories[self.last].1
    }
}

impl Counters {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task of `category` takes the lane; false if the manager thread
    /// watches the lane (see [`Counters::watch`]): it must take the manager's
    /// path.
    pub(crate) fn take(&self, category: &CStr) -> bool {
        let mut c = self.lock();
        if c.watched {
            return false;
        }
        count_taken(&mut c.all, 1);
        count_taken(c.category(category), 1);
        true
    }

    /// A task [`Counters::take`] counted did not take the lane after all.
    pub(crate) fn give_back(&self, category: &CStr) {
        let mut c = self.lock();
        count_taken(&mut c.all, -1);
        count_taken(c.category(category), -1);
    }

    /// From now on no task takes the lane, and the end of each direct task
    /// is reported to the manager thread ([`Message::DirectEnded`]). Returns
    /// how many direct tasks of each category are still submitted and not
    /// done (running, or about to); nothing once watched already.
    pub(crate) fn watch(&self) -> Vec<(CString, u64)> {
        let mut c = self.lock();
        if std::mem::replace(&mut c.watched, true) {
            return Vec::new();
        }
        c.categories
            .iter()
            .map(|(name, s)| (name.clone(), s.submitted.saturating_sub(s.done)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Adds the direct tasks of `category` to `stats`.
    pub(crate) fn add_category_to(&self, category: &CStr, stats: &mut CategoryStats) {
        let counts = self.lock();
        if let Some(c) = counts
            .index
            .get(category)
            .map(|&at| &counts.categories[at].1)
        {
            stats.submitted += c.submitted;
            stats.dispatched += c.dispatched;
            stats.running += c.submitted.saturating_sub(c.done);
            stats.done += c.done;
            stats.failed += c.failed;
            stats.successful += c.successful;
            stats.cancelled += c.cancelled;
            stats.time_execute = stats.time_execute.saturating_add(c.time_execute);
            stats.time_execute_good = stats.time_execute_good.saturating_add(c.time_execute_good);
        }
    }

    /// Tasks that took the direct lane.
    pub(crate) fn submitted_total(&self) -> u64 {
        self.lock().all.submitted
    }

    /// Adds the direct tasks to `stats` (kept by the manager thread for its
    /// own). A direct task not done is waiting while it waits for a core in
    /// the pool (as a task the manager holds is), and on the local worker once
    /// it started.
    pub(crate) fn add_to(&self, stats: &mut Stats, pool: &LocalPool) {
        // The pool's lock is not taken under this one.
        let (waiting, running) = pool.direct_counts();
        let counts = self.lock();
        let c = &counts.all;
        let held = c.submitted.saturating_sub(c.done);
        let waiting = (waiting as u64).min(held);
        let on_worker = held - waiting;
        stats.tasks_submitted += c.submitted;
        stats.tasks_dispatched += c.dispatched;
        stats.tasks_waiting += waiting;
        stats.tasks_on_workers += on_worker;
        stats.tasks_running += (running as u64).min(on_worker);
        stats.tasks_done += c.done;
        stats.tasks_failed += c.failed;
        stats.tasks_cancelled += c.cancelled;
        stats.tasks_successful += c.successful;
        stats.time_execute = stats.time_execute.saturating_add(c.time_execute);
        stats.time_execute_good = stats.time_execute_good.saturating_add(c.time_execute_good);
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
                && e.monitor_output.is_none()
        })
}

/// Readies `task` for the pool: it is dispatched as the manager would have
/// dispatched it to its local worker, at `place`.
pub(crate) fn prepare(task: &mut Task, local_worker: u32, place: &Arc<Place>) {
    task.attempts = 1;
    task.worker_id = local_worker;
    task.place = Some(place.clone());
    task.publish_state(State::Running);
}

/// Where the pool puts finished direct tasks: counted, then handed to the
/// waiters, as the manager thread would have done. `tell` reaches the manager
/// thread (for a watched lane, see [`Counters::watch`]).
pub(crate) fn sink(shared: Arc<Shared>, tell: super::inbox::Sender<Message>) -> Sink {
    Box::new(move |mut task: Box<Task>| {
        if task.cancel_requested() {
            task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
        }
        if task.times.done == 0 {
            task.times.done = now_us();
        }
        let execute = u64::try_from(task.times.execute).unwrap_or(0);
        let successful = task.result == TaskResult::Success;
        let watched = {
            let mut c = shared.direct.lock();
            count_ended(&mut c.all, execute, task.result, successful);
            count_ended(
                c.category(task.category()),
                execute,
                task.result,
                successful,
            );
            c.watched
        };
        if watched {
            // The manager thread is gone only when nothing waits for this.
            let _ = tell.send(Message::DirectEnded {
                category: task.category().to_owned(),
            });
        }
        task.publish_state(State::Retrieved);
        shared.completions.push(task);
    })
}
