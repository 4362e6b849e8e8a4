//! The local pool: worker threads inside this process, one worker to the scheduler.
//!
//! The manager hands tasks over in batches; the pool starts them in arrival order as
//! its resources allow (the [`SlotQueue`] rule the manager models), on threads that
//! are spawned on demand and stay warm. Because the manager may give the pool a few
//! tasks more than it can run (prefetch), a thread that finishes one finds the next
//! already here. Finished tasks wait in an outbox the owner empties: it is woken
//! (through the [`Report`] callback it gave) once per batch, and while the queue
//! is deep not at all (it collects on a timer; see `deliver`). The pool knows
//! nothing of its owner but that callback.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::idmap::IdMap;
use crate::resources::Resources;
use crate::task::{
    now_us, Task, TaskId, TaskResult, Work, FLAG_CANCELLED, FLAG_DELIVERING, FLAG_DIRECT,
    FLAG_STARTED,
};
use crate::worker::command::CommandEnv;
use crate::worker::process::RunControl;
use crate::worker::slots::SlotQueue;
use crate::worker::WorkerLink;

/// Stack size of pool threads: task functions (Fortran ones especially) may keep
/// large arrays on the stack, as they would on the main thread.
const THREAD_STACK: usize = 8 << 20;

struct Startable {
    task: Box<Task>,
    gpus: Vec<u32>,
}

struct State {
    slots: SlotQueue<Box<Task>>,
    startable: VecDeque<Startable>,
    free_gpus: Vec<u32>,
    running: IdMap<Arc<RunControl>>,
    /// Threads not running a task.
    idle: usize,
    /// Threads asleep on `work`.
    sleeping: usize,
    threads: usize,
    stopping: bool,
    handles: Vec<JoinHandle<()>>,
    /// Finished tasks not yet taken by the manager.
    outbox: Vec<Box<Task>>,
    /// The manager was told the outbox has tasks and has not taken them yet.
    notified: bool,
    /// A thread is spinning for work (at most one does).
    spinning: bool,
    /// Finished tasks may wait in the outbox while the queue is deep (see
    /// [`LocalPool::report_in_batches`]).
    batch_reports: bool,
    /// Tasks waiting for a core beyond which the queue counts as deep: the
    /// number of cores, as the manager's model counts it.
    deep_at: usize,
    /// Tasks waiting for a core right after the last hand-over.
    high_water: usize,
    /// Direct tasks held (waiting, startable or running), with their tags and
    /// requests.
    direct: IdMap<(Option<std::ffi::CString>, Resources)>,
    /// The pool takes no more direct tasks (shutdown began).
    direct_closed: bool,
    /// Reused for what a direct submission starts.
    scratch: Vec<(Resources, Box<Task>)>,
    /// A thread sleeps with a timer, looking at the inbox when it rings (see
    /// `sleep`); at most one does.
    dozing: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped whenever tasks become startable: what a spinning thread watches.
    /// It and `inbox_len` are each alone on their lines: the spinning thread
    /// reads them in a loop, and a write by any thread to a field beside them
    /// would take their line from it and back, one cache miss per write (this
    /// alone made a submit-and-wait round trip half again as long).
    handed: crate::padded::Padded<std::sync::atomic::AtomicU64>,
    work: Condvar,
    exited: Condvar,
    report: Report,
    env: CommandEnv,
    /// Mirrors `State::idle` for the manager, which reads it without the lock.
    idle_gauge: std::sync::atomic::AtomicUsize,
    /// Tasks running, and the whole cores of the pool's capacity: read without
    /// the lock by a waiter deciding whether a core is free to spin on.
    busy_gauge: std::sync::atomic::AtomicUsize,
    cores_gauge: std::sync::atomic::AtomicUsize,
    /// The outbox holds tasks the owner was not told about.
    kept: std::sync::atomic::AtomicBool,
    /// The owner is about to sleep with no timer to collect kept tasks: keep
    /// none back (see `deliver`).
    owner_untimed: std::sync::atomic::AtomicBool,
    /// Where finished direct tasks go (see [`LocalPool::submit_direct`]).
    direct_sink: std::sync::OnceLock<Sink>,
    /// Where the other finished tasks go once the owner stopped collecting
    /// the outbox (see [`LocalPool::set_late_sink`]). Read under the lock.
    late_sink: std::sync::OnceLock<Sink>,
    /// Direct tasks not yet started, for readers without the lock.
    direct_waiting: std::sync::atomic::AtomicUsize,
    /// Direct tasks running, likewise.
    direct_running: std::sync::atomic::AtomicUsize,
    /// Direct tasks submitted and not yet in the queue: a submitter takes only
    /// this short lock, and the pool moves them into its queue (see `absorb`)
    /// whenever it takes its own lock.
    inbox: Mutex<Inbox>,
    /// Tasks in the inbox, read without its lock.
    inbox_len: crate::padded::Padded<std::sync::atomic::AtomicUsize>,
    /// Mirrors `State::sleeping`, for submitters deciding whether to wake one.
    sleepers: std::sync::atomic::AtomicUsize,
    /// Mirrors `State::spinning` likewise.
    spinner: std::sync::atomic::AtomicBool,
    /// Mirrors the number of direct tasks held (`State::direct`).
    direct_len: std::sync::atomic::AtomicUsize,
    /// Direct tasks let go of and not yet in the completion queue.
    delivering: std::sync::atomic::AtomicUsize,
    /// Mirrors `State::dozing`: a submitter leaves a direct task to the
    /// thread dozing (see `sleep`) rather than wake one.
    dozer: std::sync::atomic::AtomicBool,
    /// The owner waits for direct tasks to leave room: each one that ends
    /// wakes it.
    owner_waits: std::sync::atomic::AtomicBool,
    /// No thread can be started (as under a process limit), for tests.
    #[cfg(test)]
    refuse_threads: std::sync::atomic::AtomicBool,
}

/// Direct submissions on their way into the pool's queue.
#[derive(Default)]
struct Inbox {
    tasks: Vec<Box<Task>>,
    /// The pool's capacity (what a direct task must fit), kept here so that a
    /// submitter checks it under this lock alone.
    capacity: Resources,
    /// No more direct tasks (shutdown began, or the pool has no direct sink).
    closed: bool,
    /// Direct tasks submitted so far: a thread about to sleep dozes if the
    /// lane was used since it last looked (see `sleep`).
    pushed: u64,
}

/// Takes each finished task on the thread that finished it (see [`Report::Each`]).
pub type Sink = Box<dyn Fn(Box<Task>) + Send + Sync>;

/// How the pool hands finished tasks to its owner, chosen when it is made.
pub enum Report {
    /// Finished tasks wait in the outbox until the owner takes them
    /// (`take_finished`); the callback is the owner's wake-up, called with no
    /// lock held once per batch (not once per task), when the outbox stops
    /// being empty. It must not block.
    Outbox(Box<dyn Fn() + Send + Sync>),
    /// Each finished task is passed to the sink on the pool thread that
    /// finished it (or the one cancelling it), with no lock held: one hand-over
    /// less for an owner that only forwards results (a remote worker writes
    /// them to its manager).
    Each(Sink),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the direct submissions waiting in the inbox into the queue, in
    /// the order they were submitted (each by priority among the waiting
    /// tasks). Tasks the queue refuses (none, as the capacity is checked when
    /// they are submitted) are returned, to be handed back with no lock held.
    #[must_use]
    fn absorb(&self, st: &mut State) -> Vec<Box<Task>> {
        if self.inbox_len.load(SeqCst) == 0 {
            return Vec::new();
        }
        let tasks = {
            let mut inbox = self.inbox();
            self.inbox_len.store(0, SeqCst);
            std::mem::take(&mut inbox.tasks)
        };
        let mut refused = Vec::new();
        let mut started = std::mem::take(&mut st.scratch);
        for task in tasks {
            let (id, req, priority) = (task.id, task.request, task.priority);
            let tag = task.tag().map(std::ffi::CStr::to_owned);
            match st
                .slots
                .push_ordered(req, task, |w| w.priority < priority, &mut started)
            {
                Ok(()) => {
                    st.direct.insert(id, (tag, req));
                    self.direct_len.store(st.direct.len(), SeqCst);
                }
                Err(mut task) => {
                    self.direct_waiting.fetch_sub(1, Relaxed);
                    task.finish(
                        TaskResult::Unschedulable,
                        Some("the task does not fit the local pool".into()),
                    );
                    refused.push(task);
                }
            }
        }
        LocalPool::make_startable(st, &mut started);
        st.scratch = started;
        refused
    }

    fn wake_owner(&self) {
        if let Report::Outbox(wake) = &self.report {
            wake();
        }
    }
}

/// Most finished tasks kept before the manager is woken for them.
const OUTBOX_MAX: usize = 1024;

/// Puts a finished task in the outbox; true if the manager must be woken for it.
/// While the manager has not emptied the outbox, more tasks join it silently, so
/// a busy pool wakes the manager once per batch, not once per task. With batch
/// reports, a pool that still has a deep queue (more tasks waiting than cores,
/// and at least half of what it was last given) does not wake the manager at
/// all: the manager collects on its own timer while it sees that queue, and
/// each wake-up would take a core from a running task.
///
/// The owner may go to sleep without a timer, e.g. when its model of this pool
/// differs from the pool for a moment: it then says so (`owner_sleeps_untimed`)
/// before checking `has_kept`, and this function checks that after marking a
/// task kept. Both sides are sequentially consistent, so at least one sees the
/// other: either the owner sets a timer or the task is reported at once.
fn deliver(shared: &Shared, st: &mut State, task: Box<Task>) -> bool {
    let cancelled = task.flags & FLAG_CANCELLED != 0;
    st.outbox.push(task);
    if st.notified {
        return false;
    }
    let waiting = st.slots.waiting_len();
    let keep = st.batch_reports
        && !cancelled
        && waiting > st.deep_at
        && waiting * 2 > st.high_water
        && st.outbox.len() < OUTBOX_MAX;
    if keep {
        // Kept already, and not collected since (the owner clears it under the
        // lock held here): the delivery that set it made sure the outbox will
        // be collected, this task with it. This skips two fenced accesses per
        // task to lines the owner writes.
        if shared.kept.load(Relaxed) {
            return false;
        }
        shared.kept.store(true, SeqCst);
        if !shared.owner_untimed.load(SeqCst) {
            return false;
        }
    }
    st.notified = true;
    true
}

/// Tasks waiting for a core beyond which a pool of `capacity` has a deep queue.
fn deep_at(capacity: Resources) -> usize {
    capacity.millicores.div_ceil(1000).max(1) as usize
}

/// The pool of local worker threads.
pub struct LocalPool {
    shared: Arc<Shared>,
}

impl LocalPool {
    /// A pool over `capacity` (gpus numbered 0..n) reporting finished tasks
    /// through `report`.
    pub fn new(capacity: Resources, env: CommandEnv, report: Report) -> LocalPool {
        LocalPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    slots: SlotQueue::new(capacity),
                    startable: VecDeque::new(),
                    free_gpus: (0..capacity.gpus).rev().collect(),
                    running: IdMap::default(),
                    idle: 0,
                    sleeping: 0,
                    threads: 0,
                    stopping: false,
                    handles: Vec::new(),
                    outbox: Vec::new(),
                    notified: false,
                    spinning: false,
                    batch_reports: false,
                    deep_at: deep_at(capacity),
                    high_water: 0,
                    direct: IdMap::default(),
                    direct_closed: false,
                    scratch: Vec::new(),
                    dozing: false,
                }),
                handed: Default::default(),
                work: Condvar::new(),
                exited: Condvar::new(),
                report,
                env,
                idle_gauge: Default::default(),
                busy_gauge: Default::default(),
                cores_gauge: std::sync::atomic::AtomicUsize::new(whole_cores(capacity)),
                kept: Default::default(),
                owner_untimed: Default::default(),
                direct_sink: std::sync::OnceLock::new(),
                late_sink: std::sync::OnceLock::new(),
                direct_waiting: Default::default(),
                direct_running: Default::default(),
                inbox: Mutex::new(Inbox {
                    tasks: Vec::new(),
                    capacity,
                    closed: false,
                    pushed: 0,
                }),
                inbox_len: Default::default(),
                sleepers: Default::default(),
                spinner: Default::default(),
                direct_len: Default::default(),
                delivering: Default::default(),
                dozer: Default::default(),
                owner_waits: Default::default(),
                #[cfg(test)]
                refuse_threads: Default::default(),
            }),
        }
    }

    /// Another handle on the same pool, for a second thread that hands it tasks.
    pub fn share(&self) -> LocalPool {
        LocalPool {
            shared: self.shared.clone(),
        }
    }

    /// Changes the capacity; only while the pool holds no task (false, and
    /// nothing changes, otherwise: the tasks it holds would be lost).
    pub fn set_capacity(&self, capacity: Resources) -> bool {
        let mut st = self.shared.lock();
        let mut inbox = self.shared.inbox();
        if st.slots.in_use() != Resources::default()
            || st.slots.waiting_len() > 0
            || !st.startable.is_empty()
            || !inbox.tasks.is_empty()
        {
            return false;
        }
        inbox.capacity = capacity;
        drop(inbox);
        self.shared
            .cores_gauge
            .store(whole_cores(capacity), Relaxed);
        st.slots = SlotQueue::new(capacity);
        st.free_gpus = (0..capacity.gpus).rev().collect();
        st.deep_at = deep_at(capacity);
        true
    }

    /// Lets finished tasks wait in the outbox while the queue is deep. The owner
    /// must then take them (`take_finished`) on a timer while its own count of
    /// tasks waiting here exceeds the number of cores or `has_kept` says so, and
    /// call `owner_sleeps_untimed` around any sleep without that timer.
    pub fn report_in_batches(&self) {
        self.shared.lock().batch_reports = true;
    }

    /// Cancels every task that has not started; they come back cancelled.
    pub fn cancel_waiting(&self) {
        let mut st = self.shared.lock();
        st.direct_closed = true;
        self.shared.inbox().closed = true;
        let mut back = self.shared.absorb(&mut st);
        back.extend(st.slots.drain_waiting().map(|(_, t)| t));
        let mut started = Vec::new();
        while let Some(s) = st.startable.pop_front() {
            st.slots.release(s.task.request, &mut started);
            st.free_gpus.extend(s.gpus);
            back.push(s.task);
        }
        // Nothing waits any more, so nothing can have started; anything that did
        // comes back with the rest rather than being dropped.
        for (req, task) in std::mem::take(&mut started) {
            st.slots.release(req, &mut started);
            back.push(task);
        }
        for task in &mut back {
            Self::forget_unstarted(&self.shared, &mut st, task);
        }
        drop(st);
        for mut task in back {
            task.flags |= FLAG_CANCELLED;
            self.send_back(task);
        }
    }

    /// Cancels every running task: commands are killed, functions are marked.
    pub fn cancel_running(&self) {
        let st = self.shared.lock();
        for control in st.running.values() {
            control.cancel();
        }
    }

    /// Stops the threads, waiting until `deadline` for those still running a task.
    /// True if every thread was joined; threads stuck in a task are left detached.
    pub fn stop(&self, deadline: Instant) -> bool {
        let mut st = self.shared.lock();
        st.stopping = true;
        self.shared.inbox().closed = true;
        let refused = self.shared.absorb(&mut st);
        self.shared.work.notify_all();
        if !refused.is_empty() {
            drop(st);
            for task in refused {
                direct_done(&self.shared, task);
            }
            st = self.shared.lock();
        }
        while st.threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .exited
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let all = st.threads == 0;
        let handles = std::mem::take(&mut st.handles);
        drop(st);
        if all {
            for h in handles {
                let _ = h.join();
            }
        }
        all
    }

    fn send_back(&self, task: Box<Task>) {
        if task.flags & FLAG_DIRECT != 0 {
            return direct_done(&self.shared, task);
        }
        if let Report::Each(sink) = &self.shared.report {
            sink(task);
            return;
        }
        let mut st = self.shared.lock();
        let wake = deliver(&self.shared, &mut st, task);
        drop(st);
        if wake {
            self.shared.wake_owner();
        }
    }

    /// True if a pool thread is waiting for work, that is, a core the pool
    /// could use is idle.
    pub fn has_idle_thread(&self) -> bool {
        self.shared.idle_gauge.load(Relaxed) > 0
    }

    /// True if fewer tasks run than the pool has cores: a thread that looks
    /// for a moment (see [`crate::spin`]) takes no CPU from a running task.
    pub fn has_idle_core(&self) -> bool {
        self.shared.busy_gauge.load(Relaxed) < self.shared.cores_gauge.load(Relaxed)
    }

    /// Moves the finished tasks into `out`; the next finished task wakes the
    /// manager again.
    pub fn take_finished(&self, out: &mut Vec<Box<Task>>) {
        let mut st = self.shared.lock();
        std::mem::swap(&mut st.outbox, out);
        st.notified = false;
        self.shared.kept.store(false, SeqCst);
    }

    /// The owner is about to sleep with no timer to collect kept tasks (true),
    /// or is awake again (false).
    pub fn owner_sleeps_untimed(&self, untimed: bool) {
        self.shared.owner_untimed.store(untimed, SeqCst);
    }

    /// True if finished tasks wait in the outbox unreported.
    pub fn has_kept(&self) -> bool {
        self.shared.kept.load(SeqCst)
    }

    /// From now on, tasks that finish (other than direct ones) go to `sink`
    /// from the thread that ran them, not to the outbox: for an owner that
    /// stops collecting while tasks it could not stop still run. A task put in
    /// the outbox before this returns is the owner's to take (`take_finished`).
    pub fn set_late_sink(&self, sink: Sink) {
        // Under the lock, so that a task delivered after this goes to the sink.
        let _st = self.shared.lock();
        let _ = self.shared.late_sink.set(sink);
    }

    /// Where finished direct tasks go: set once, before the first
    /// `submit_direct` (which refuses tasks until it is set).
    pub fn set_direct_sink(&self, sink: Sink) {
        let _ = self.shared.direct_sink.set(sink);
    }

    /// The direct lane: the submitting thread places `task` on the pool itself,
    /// in priority order (FIFO among equals) among the tasks waiting here, to
    /// start as soon as it fits; when it ends it goes to the direct sink from the
    /// thread that ran it, without passing through the pool's owner. Given back
    /// if the pool takes no more direct tasks or could never hold it.
    pub fn submit_direct(&self, mut task: Box<Task>) -> Result<(), Box<Task>> {
        let was_empty = {
            let mut inbox = self.shared.inbox();
            // A pool of no cores runs nothing (remote only), whatever a task asks.
            if inbox.closed
                || inbox.capacity.millicores == 0
                || !task.request.fits_within(&inbox.capacity)
                || self.shared.direct_sink.get().is_none()
            {
                return Err(task);
            }
            task.flags |= FLAG_DIRECT;
            self.shared.direct_waiting.fetch_add(1, Relaxed);
            inbox.tasks.push(task);
            inbox.pushed += 1;
            self.shared.inbox_len.fetch_add(1, SeqCst);
            inbox.tasks.len() == 1
        };
        // Someone must move it into the queue: a spinning thread will (it
        // watches the inbox); so will whoever moves the tasks already there,
        // and a dozing thread when its timer rings, if the submitter has not
        // run it itself by then (`run_direct_here`): a submit-and-wait loop
        // then wakes no thread at all. Otherwise this thread moves it, and
        // wakes or starts a thread for it. A thread about to sleep checks the
        // inbox after counting itself a sleeper (or no longer a dozer), under
        // the pool's lock, which this thread takes to wake it.
        if self.shared.spinner.load(SeqCst)
            || self.shared.dozer.load(SeqCst)
            || (!was_empty && self.shared.sleepers.load(SeqCst) == 0)
        {
            return Ok(());
        }
        self.start_inbox();
        Ok(())
    }

    /// Moves the direct tasks in the inbox into the queue and wakes or starts
    /// threads for what can start.
    fn start_inbox(&self) {
        let mut st = self.shared.lock();
        let refused = self.shared.absorb(&mut st);
        Self::wake_or_spawn(&self.shared, &mut st);
        drop(st);
        for task in refused {
            direct_done(&self.shared, task);
        }
    }

    /// For a caller about to sleep until a task ends: a direct task left in
    /// the inbox for a dozing thread (see `submit_direct`) is handed to a
    /// thread now rather than when the dozer's timer rings.
    pub fn start_deferred(&self) {
        if self.shared.dozer.load(SeqCst)
            && (self.shared.inbox_len.load(SeqCst) > 0
                || self.shared.direct_waiting.load(SeqCst) > 0)
        {
            self.start_inbox();
        }
    }

    /// Cancels direct task `id`: one not started comes back cancelled at once,
    /// a running one is told to stop and comes back cancelled when it returns.
    /// False if the pool holds no direct task `id`.
    pub fn cancel_direct(&self, id: TaskId) -> bool {
        // One told to stop already comes back cancelled, as a caller cancelling
        // it again is told.
        let told = self
            .shared
            .lock()
            .running
            .get(&id)
            .is_some_and(|c| c.is_cancelled());
        told || self.cancel_direct_matching(|tid, _| tid == id, false) > 0
    }

    /// Cancels the direct tasks whose id and tag `matches` accepts: all of them,
    /// or the first submitted only. Returns how many.
    pub fn cancel_direct_matching(
        &self,
        matches: impl Fn(TaskId, Option<&std::ffi::CStr>) -> bool,
        all: bool,
    ) -> usize {
        let mut st = self.shared.lock();
        let refused = self.shared.absorb(&mut st);
        // A running task told to stop already was cancelled already.
        let cancelled = |id: &TaskId| st.running.get(id).is_some_and(|c| c.is_cancelled());
        let mut ids: Vec<TaskId> = st
            .direct
            .iter()
            .filter(|(&id, (tag, _))| matches(id, tag.as_deref()) && !cancelled(&id))
            .map(|(&id, _)| id)
            .collect();
        if !all {
            ids = ids.into_iter().min().into_iter().collect();
        }
        if ids.is_empty() {
            drop(st);
            for task in refused {
                direct_done(&self.shared, task);
            }
            return 0;
        }
        let chosen: IdMap<()> = ids.iter().map(|&id| (id, ())).collect();
        let mut started = Vec::new();
        let mut back: Vec<Box<Task>> = st
            .slots
            .remove_all_waiting(|t| chosen.contains_key(&t.id), true, &mut started)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        back.extend(refused);
        let mut i = 0;
        while i < st.startable.len() {
            if chosen.contains_key(&st.startable[i].task.id) {
                let s = st.startable.remove(i).expect("index is in range");
                st.free_gpus.extend(s.gpus);
                st.slots.release(s.task.request, &mut started);
                back.push(s.task);
            } else {
                i += 1;
            }
        }
        for id in &ids {
            if let Some(control) = st.running.get(id) {
                control.cancel();
            }
        }
        for task in &mut back {
            Self::forget_unstarted(&self.shared, &mut st, task);
        }
        Self::make_startable(&mut st, &mut started);
        Self::wake_or_spawn(&self.shared, &mut st);
        drop(st);
        for mut task in back {
            task.flags |= FLAG_CANCELLED;
            direct_done(&self.shared, task);
        }
        ids.len()
    }

    /// True if the pool holds direct task `id` (waiting or running). If not,
    /// every direct task the pool let go of is in the completion queue by the
    /// time this returns, so a caller told "not held" finds a finished task
    /// there rather than nowhere.
    pub fn holds_direct(&self, id: TaskId) -> bool {
        let mut st = self.shared.lock();
        let refused = self.shared.absorb(&mut st);
        let held = st.direct.contains_key(&id);
        drop(st);
        for task in refused {
            direct_done(&self.shared, task);
        }
        // A direct task the pool let go of is a push away from the completion
        // queue: once it is there, a caller told "not held" finds it finished
        // rather than nowhere.
        if !held {
            while self.shared.delivering.load(SeqCst) > 0 {
                std::thread::yield_now();
            }
        }
        held
    }

    /// True if direct tasks may be held (read without the lock).
    pub fn direct_any(&self) -> bool {
        self.shared.direct_len.load(SeqCst) > 0
            || self.shared.inbox_len.load(SeqCst) > 0
            || self.shared.direct_waiting.load(SeqCst) > 0
    }

    /// The owner waits (or no longer does) for direct tasks to leave room:
    /// each that ends wakes it (see `Report::Outbox`).
    pub fn set_owner_waits(&self, on: bool) {
        self.shared.owner_waits.store(on, SeqCst);
    }

    /// What the direct tasks held (waiting or running) ask for together: the
    /// part of the pool the manager's model of it must count as taken.
    pub fn direct_held(&self) -> Resources {
        let mut st = self.shared.lock();
        let refused = self.shared.absorb(&mut st);
        let held = st
            .direct
            .values()
            .fold(Resources::default(), |sum, (_, req)| sum.plus(req));
        drop(st);
        for task in refused {
            direct_done(&self.shared, task);
        }
        held
    }

    /// Tasks running that did not come by the direct lane.
    pub fn running_not_direct(&self) -> u64 {
        let st = self.shared.lock();
        let direct_running = st
            .running
            .keys()
            .filter(|id| st.direct.contains_key(id))
            .count();
        (st.running.len() - direct_running) as u64
    }

    /// Direct tasks held: (not started, running).
    pub fn direct_counts(&self) -> (usize, usize) {
        let st = self.shared.lock();
        let waiting = self.shared.direct_waiting.load(Relaxed);
        let in_inbox = self.shared.inbox_len.load(SeqCst);
        (
            waiting,
            (st.direct.len() + in_inbox).saturating_sub(waiting),
        )
    }

    /// Runs on the calling thread the task the pool would start next, if it is
    /// a direct task; true if it ran one. For a thread about to sleep until a
    /// task ends: it does the work itself instead of handing it to a pool thread
    /// and waiting to be woken, as task runtimes do in their waits. The task's
    /// resources were taken from the pool when it became startable, as for any
    /// pool thread, so the pool's packing holds; the task is listed as running,
    /// so cancel and shutdown find it as they would on a pool thread.
    pub fn run_direct_here(&self) -> bool {
        thread_local! {
            static CONTROL: Arc<RunControl> = Arc::new(RunControl::default());
        }
        let shared = &self.shared;
        if shared.direct_waiting.load(Relaxed) == 0 {
            return false;
        }
        let control = CONTROL.with(Arc::clone);
        let mut st = shared.lock();
        let mut bounced = shared.absorb(&mut st);
        let next_is_direct = st
            .startable
            .front()
            .is_some_and(|job| job.task.flags & FLAG_DIRECT != 0);
        let job = if next_is_direct && !st.stopping {
            st.startable.pop_front()
        } else {
            None
        };
        let Some(Startable { mut task, gpus }) = job else {
            drop(st);
            for task in bounced {
                direct_done(shared, task);
            }
            return false;
        };
        book_start(shared, &mut st, &control, &task);
        drop(st);
        for task in bounced.drain(..) {
            direct_done(shared, task);
        }
        execute(&mut task, &gpus, &control, shared);
        let mut st = shared.lock();
        bounced.extend(shared.absorb(&mut st));
        book_end(&mut st, shared, &task, gpus, &mut Vec::new());
        let last = direct_ended(shared, &mut st, &mut task, &control);
        // What became startable goes to the pool's threads.
        LocalPool::wake_or_spawn(shared, &mut st);
        drop(st);
        for task in bounced {
            direct_done(shared, task);
        }
        direct_done(shared, task);
        if last {
            shared.wake_owner();
        }
        true
    }

    /// True if some direct task runs (read without the lock).
    pub fn direct_running(&self) -> bool {
        self.shared.direct_running.load(Relaxed) > 0
    }

    /// Direct tasks not started (read without the lock).
    pub fn direct_waiting(&self) -> usize {
        self.shared.direct_waiting.load(Relaxed)
    }

    /// A task leaves the pool unstarted: if direct, it is no longer held.
    fn forget_unstarted(shared: &Shared, st: &mut State, task: &mut Task) {
        if task.flags & FLAG_DIRECT != 0 && st.direct.remove(&task.id).is_some() {
            delivering(shared, task);
            shared.direct_len.store(st.direct.len(), SeqCst);
            shared.direct_waiting.fetch_sub(1, Relaxed);
        }
    }

    fn make_startable(st: &mut State, started: &mut Vec<(Resources, Box<Task>)>) {
        for (req, task) in started.drain(..) {
            let at = st.free_gpus.len() - req.gpus as usize;
            let gpus = st.free_gpus.split_off(at);
            st.startable.push_back(Startable { task, gpus });
        }
    }

    fn wake_or_spawn(shared: &Arc<Shared>, st: &mut State) {
        let want = st.startable.len();
        if want > 0 {
            shared
                .handed
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        let wake = want.min(st.sleeping);
        for _ in 0..wake {
            shared.work.notify_one();
        }
        while st.idle < want && !st.stopping {
            let s = shared.clone();
            let spawned = if threads_refused(shared) {
                Err(std::io::Error::other("refused for the test"))
            } else {
                std::thread::Builder::new()
                    .name(format!("vine-local-{}", st.threads))
                    .stack_size(THREAD_STACK)
                    .spawn(move || {
                        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| thread_main(s)));
                        if ran.is_err() {
                            // A bug outside any task: the pool's books and the tasks it
                            // held are in an unknown state, and waiting on them would
                            // hang. Stop loudly instead.
                            eprintln!(
                                "vine: internal error: a local worker thread failed; aborting"
                            );
                            std::process::abort();
                        }
                    })
            };
            match spawned {
                Ok(h) => {
                    st.idle += 1;
                    shared.idle_gauge.store(st.idle, Relaxed);
                    st.threads += 1;
                    st.handles.push(h);
                }
                // Out of threads: the ones there are will get to it.
                Err(_) if st.threads > 0 => break,
                // Not even one (a process or memory limit): the tasks wait,
                // and the next hand-over or submission tries again. Said
                // once; a panic here would leave the submitting caller's
                // task half handed over.
                Err(e) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        eprintln!(
                            "vine: cannot start a local worker thread ({e}); the local pool's \
                             tasks wait until one can start"
                        );
                    });
                    break;
                }
            }
        }
    }
}

impl WorkerLink for LocalPool {
    fn dispatch(&mut self, tasks: &mut Vec<Box<Task>>) {
        let mut st = self.shared.lock();
        let mut started = Vec::new();
        let mut refused = Vec::new();
        for task in tasks.drain(..) {
            if let Err(mut task) = st.slots.push(task.request, task, &mut started) {
                let reason = format!(
                    "the worker cannot hold a task that asks for {}",
                    task.request.describe()
                );
                task.finish(TaskResult::Forsaken, Some(reason));
                refused.push(task);
            }
        }
        st.high_water = st.slots.waiting_len();
        Self::make_startable(&mut st, &mut started);
        Self::wake_or_spawn(&self.shared, &mut st);
        drop(st);
        for task in refused {
            self.send_back(task);
        }
    }

    fn cancel(&mut self, id: TaskId) {
        self.stop_task(id, false);
    }

    fn end_time(&mut self, id: TaskId) {
        self.stop_task(id, true);
    }
}

impl LocalPool {
    /// Stops task `id` if the pool has it: cancels it, or when `end_time`
    /// stops it at its end time.
    fn stop_task(&mut self, id: TaskId, end_time: bool) {
        let mut st = self.shared.lock();
        let mut started = Vec::new();
        let mut back = st
            .slots
            .remove_waiting(|t| t.id == id, &mut started)
            .map(|(_, t)| t);
        if back.is_none() {
            if let Some(at) = st.startable.iter().position(|s| s.task.id == id) {
                let s = st.startable.remove(at).expect("position is in range");
                st.free_gpus.extend(s.gpus);
                st.slots.release(s.task.request, &mut started);
                back = Some(s.task);
            } else if let Some(control) = st.running.get(&id) {
                if end_time {
                    control.expire();
                } else {
                    control.cancel();
                }
            }
        }
        if let Some(task) = &mut back {
            Self::forget_unstarted(&self.shared, &mut st, task);
        }
        Self::make_startable(&mut st, &mut started);
        Self::wake_or_spawn(&self.shared, &mut st);
        drop(st);
        if let Some(mut task) = back {
            if end_time {
                task.finish(
                    TaskResult::MaxEndTime,
                    Some("the task reached its end time before it started; it did not run".into()),
                );
            } else {
                task.flags |= FLAG_CANCELLED;
            }
            self.send_back(task);
        }
    }
}

/// How long a spinning pool thread leaves a direct task to a submitter that
/// may run it itself: about what a wait that follows the submission takes to
/// get there, and far less than waking a sleeping thread.
const LEFT_TO_SUBMITTER: std::time::Duration = std::time::Duration::from_micros(2);

fn thread_main(shared: Arc<Shared>) {
    let control = Arc::new(RunControl::default());
    let mut started = Vec::new();
    // The next task, already taken (with the lock released) after a direct one.
    let mut carried: Option<Startable> = None;
    // Direct tasks the queue refused, handed back once the lock is released.
    let mut bounced: Vec<Box<Task>> = Vec::new();
    // Direct tasks submitted when this thread last went to sleep.
    let mut pushed_seen = 0;
    let mut guard = Some(shared.lock());
    loop {
        if !bounced.is_empty() {
            guard = None;
            for task in bounced.drain(..) {
                direct_done(&shared, task);
            }
        }
        let job = match carried.take() {
            Some(job) => Some(job),
            None => {
                let st = guard.get_or_insert_with(|| shared.lock());
                if shared.inbox_len.load(SeqCst) > 0 {
                    bounced.extend(shared.absorb(st));
                    // This thread takes one; others may take the rest.
                    if st.startable.len() > 1 {
                        LocalPool::wake_or_spawn(&shared, st);
                    }
                }
                st.startable
                    .pop_front()
                    .inspect(|job| begin(&shared, st, &control, job))
            }
        };
        if let Some(Startable { mut task, gpus }) = job {
            guard = None;
            execute(&mut task, &gpus, &control, &shared);

            let mut st = shared.lock();
            bounced.extend(shared.absorb(&mut st));
            book_end(&mut st, &shared, &task, gpus, &mut started);
            st.idle += 1;
            shared.idle_gauge.store(st.idle, Relaxed);
            // This thread takes the next task itself; wake others only for the rest.
            if st.startable.len() > 1 {
                let more = st.startable.len() - 1;
                for _ in 0..more.min(st.sleeping) {
                    shared.work.notify_one();
                }
            }
            if task.flags & FLAG_DIRECT != 0 {
                let last = direct_ended(&shared, &mut st, &mut task, &control);
                // The next task is taken before this one is handed over, so
                // its waiter never finds the pool idle with work queued, and
                // the lock is taken once per task.
                carried = st.startable.pop_front();
                if let Some(job) = &carried {
                    begin(&shared, &mut st, &control, job);
                }
                // Handed over without the lock held.
                drop(st);
                direct_done(&shared, task);
                if last {
                    // Shutdown waits for the last direct task.
                    shared.wake_owner();
                }
            } else if let Report::Each(sink) = &shared.report {
                drop(st);
                sink(task);
            } else if let Some(late) = shared.late_sink.get() {
                drop(st);
                late(task);
            } else if deliver(&shared, &mut st, task) {
                drop(st);
                shared.wake_owner();
            } else {
                guard = Some(st);
            }
            continue;
        }
        let mut st = guard.take().expect("held when no task was carried");
        if st.stopping {
            st.idle -= 1;
            shared.idle_gauge.store(st.idle, Relaxed);
            st.threads -= 1;
            shared.exited.notify_all();
            return;
        } else if !st.outbox.is_empty() && !st.notified {
            // Nothing left to start here: report what was kept back first.
            st.notified = true;
            drop(st);
            shared.wake_owner();
            st = shared.lock();
        } else if !st.spinning {
            // One idle thread looks for work for a moment before sleeping, so a
            // task handed over right after this one finished starts without a
            // wake-up. An idle thread means an idle core, so this costs no work.
            // It also watches the inbox, which submitters then leave to it.
            st.spinning = true;
            shared.spinner.store(true, SeqCst);
            let seen = shared.handed.load(std::sync::atomic::Ordering::Acquire);
            drop(st);
            // A direct task in the inbox is left for a moment to its submitter,
            // which may be about to wait for it and run it itself
            // (`run_direct_here`) without a hand-over between cores.
            let mut queued_at = None;
            crate::spin::spin_until(|| {
                if shared.handed.load(std::sync::atomic::Ordering::Acquire) != seen {
                    return Some(());
                }
                if shared.inbox_len.load(SeqCst) == 0 {
                    queued_at = None;
                    return None;
                }
                let at = *queued_at.get_or_insert_with(std::time::Instant::now);
                (at.elapsed() >= LEFT_TO_SUBMITTER).then_some(())
            });
            st = shared.lock();
            st.spinning = false;
            shared.spinner.store(false, SeqCst);
            bounced.extend(shared.absorb(&mut st));
            if st.startable.is_empty() && !st.stopping && bounced.is_empty() {
                st = sleep(&shared, st, &mut pushed_seen);
            }
        } else {
            st = sleep(&shared, st, &mut pushed_seen);
        }
        guard = Some(st);
    }
}

/// Books a task this thread is about to run (under the lock).
fn begin(shared: &Shared, st: &mut State, control: &Arc<RunControl>, job: &Startable) {
    st.idle -= 1;
    shared.idle_gauge.store(st.idle, Relaxed);
    book_start(shared, st, control, &job.task);
}

/// Lists `task` as running under `control` (under the lock), whichever thread
/// runs it.
fn book_start(shared: &Shared, st: &mut State, control: &Arc<RunControl>, task: &Task) {
    control.reset();
    st.running.insert(task.id, control.clone());
    shared.busy_gauge.store(st.running.len(), Relaxed);
    if task.flags & FLAG_DIRECT != 0 {
        shared.direct_waiting.fetch_sub(1, Relaxed);
        shared.direct_running.fetch_add(1, Relaxed);
    }
}

/// Books the end of `task`, which ran with `gpus` (under the lock): what it held
/// is free, and what fits now is startable.
fn book_end(
    st: &mut State,
    shared: &Shared,
    task: &Task,
    gpus: Vec<u32>,
    started: &mut Vec<(Resources, Box<Task>)>,
) {
    st.running.remove(&task.id);
    shared.busy_gauge.store(st.running.len(), Relaxed);
    st.free_gpus.extend(gpus);
    st.slots.release(task.request, started);
    LocalPool::make_startable(st, started);
}

/// Books the end of direct task `task` (under the lock); true if it was the last
/// one a shutdown waits for.
fn direct_ended(shared: &Shared, st: &mut State, task: &mut Task, control: &RunControl) -> bool {
    st.direct.remove(&task.id);
    delivering(shared, task);
    shared.direct_len.store(st.direct.len(), SeqCst);
    shared.direct_running.fetch_sub(1, Relaxed);
    // A cancel that came after the function returned, while the task was still
    // listed as running, still counts.
    if control.is_cancelled() {
        task.flags |= FLAG_CANCELLED;
    }
    st.direct_closed && st.direct.is_empty()
}

/// Counts direct task `task`, just removed from the pool's books (under the
/// lock), as on its way to the completion queue until `direct_done` has put it
/// there.
fn delivering(shared: &Shared, task: &mut Task) {
    task.flags |= FLAG_DELIVERING;
    shared.delivering.fetch_add(1, SeqCst);
}

/// Hands a finished (or cancelled) direct task to the direct sink.
fn direct_done(shared: &Shared, mut task: Box<Task>) {
    let counted = task.flags & FLAG_DELIVERING != 0;
    task.flags &= !FLAG_DELIVERING;
    match shared.direct_sink.get() {
        Some(sink) => sink(task),
        // `submit_direct` takes no task before the sink is set.
        None => unreachable!("a direct task without a direct sink"),
    }
    if counted {
        shared.delivering.fetch_sub(1, SeqCst);
    }
    if shared.owner_waits.load(SeqCst) {
        shared.wake_owner();
    }
}

/// Sleeps until woken, unless a direct task reached the inbox meanwhile: a
/// submitter wakes a sleeper (taking the lock held here until the wait) only
/// if it sees one counted, after placing its task, so this thread counts
/// itself first and then looks.
///
/// If direct tasks were submitted since this thread last went to sleep
/// (`pushed_seen`), and no other thread dozes, it dozes instead: it sleeps
/// with a timer of [`DOZE`], and submitters leave their direct tasks to it
/// rather than wake it. Most such tasks are run by their submitter's wait
/// (`run_direct_here`) within a microsecond, and a submit-and-wait loop then
/// wakes no thread; a task nobody waits for is started when the timer rings,
/// or at once by a caller about to sleep (`start_deferred`). A timer that
/// rings with no direct task submitted since ends the doze in a sleep without
/// a timer.
fn sleep<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    pushed_seen: &mut u64,
) -> MutexGuard<'a, State> {
    st.sleeping += 1;
    shared.sleepers.fetch_add(1, SeqCst);
    let mut pushed = shared.inbox().pushed;
    if pushed != *pushed_seen && !st.dozing && !st.stopping {
        *pushed_seen = pushed;
        st.dozing = true;
        shared.dozer.store(true, SeqCst);
        loop {
            // A task taken into the queue by another caller (one asking what
            // direct tasks hold, say) wakes no thread: this one starts it.
            if shared.inbox_len.load(SeqCst) > 0 || !st.startable.is_empty() {
                break;
            }
            let (next, rang) = shared
                .work
                .wait_timeout(st, DOZE)
                .unwrap_or_else(|p| p.into_inner());
            st = next;
            if !rang.timed_out() || st.stopping {
                break;
            }
            pushed = shared.inbox().pushed;
            if pushed == *pushed_seen {
                // The lane is quiet: sleep without a timer, unless a task came
                // before a submitter could see this thread stop dozing.
                st.dozing = false;
                shared.dozer.store(false, SeqCst);
                if shared.inbox_len.load(SeqCst) == 0 && st.startable.is_empty() {
                    st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                break;
            }
            *pushed_seen = pushed;
        }
        st.dozing = false;
        shared.dozer.store(false, SeqCst);
    } else {
        *pushed_seen = pushed;
        if shared.inbox_len.load(SeqCst) == 0 {
            st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
    shared.sleepers.fetch_sub(1, SeqCst);
    st.sleeping -= 1;
    st
}

/// How long a dozing thread sleeps between looks at the inbox (see `sleep`):
/// the longest a direct task nobody waits for can wait for an idle thread.
const DOZE: std::time::Duration = std::time::Duration::from_micros(250);

/// Runs one task on this thread; a panic inside the library fails only the task.
fn execute(task: &mut Task, gpus: &[u32], control: &RunControl, shared: &Shared) {
    task.flags |= FLAG_STARTED;
    task.times.started = now_us();
    if let Some(why) = task.extra.as_mut().and_then(|e| e.refused.take()) {
        task.finish(
            TaskResult::InputMissing,
            Some(format!("the worker refused the task: {why}")),
        );
        task.times.done = now_us();
        return;
    }
    let end = task.time_end();
    if end > 0 && task.times.started >= end {
        task.finish(
            TaskResult::MaxEndTime,
            Some("the task reached its worker after its end time; it did not run".into()),
        );
        task.times.done = task.times.started;
        return;
    }
    #[cfg(test)]
    control
        .panic_when_started
        .store(task.has_test_env(b"VINE_TEST_PANIC_WHEN_STARTED"), SeqCst);
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match task.work {
        Work::Command { .. } => crate::worker::command::run(task, gpus, control, &shared.env),
        _ => crate::worker::function::run(task, gpus, control),
    }));
    if let Err(panic) = ran {
        // What it started must not run on unwatched.
        control.abandon();
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        task.finish(
            TaskResult::Unknown,
            Some(format!(
                "internal error while running the task ({why}); what it started was killed"
            )),
        );
    }
    task.times.done = now_us();
    task.times.execute += (task.times.done - task.times.started).max(0);
    if control.is_cancelled() {
        task.flags |= FLAG_CANCELLED;
    }
}

/// True if no thread may be started (only ever in tests: as under a process
/// limit).
#[cfg(test)]
fn threads_refused(shared: &Shared) -> bool {
    shared.refuse_threads.load(SeqCst)
}

#[cfg(not(test))]
fn threads_refused(_: &Shared) -> bool {
    false
}

/// The whole cores in `capacity` (a fraction counts as one).
fn whole_cores(capacity: Resources) -> usize {
    capacity.millicores.div_ceil(1000) as usize
}

#[cfg(test)]
mod test {
    use super::*;

    fn env(dir: &std::path::Path) -> CommandEnv {
        CommandEnv {
            sandbox_root: dir.join("sandbox"),
            temp_root: dir.join("temp"),
            max_stdout: Arc::new(crate::worker::command::DEFAULT_MAX_STDOUT.into()),
            fetcher: std::sync::Arc::new(crate::worker::fetch::Fetcher::new(dir.join("fetched"))),
            watch: None,
        }
    }

    fn one_core() -> Resources {
        Resources {
            millicores: 1000,
            ..Resources::default()
        }
    }

    fn tasks(n: u64) -> Vec<Box<Task>> {
        (1..=n)
            .map(|id| {
                let mut t = Task::command(c"true");
                t.id = id;
                t.request = one_core();
                t
            })
            .collect()
    }

    #[test]
    fn finished_tasks_wait_in_the_outbox_and_the_owner_is_woken_through_its_callback() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-pool-test").unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let wake = Report::Outbox(Box::new(move || tx.send(()).unwrap()));
        let mut pool = LocalPool::new(one_core(), env(&dir), wake);
        pool.dispatch(&mut tasks(3));
        let mut got = Vec::new();
        while got.len() < 3 {
            rx.recv().unwrap();
            let mut batch = Vec::new();
            pool.take_finished(&mut batch);
            got.extend(batch);
        }
        let mut ids: Vec<_> = got.iter().map(|t| (t.id, t.result)).collect();
        ids.sort_by_key(|&(id, _)| id);
        assert_eq!(ids, [1, 2, 3].map(|id| (id, TaskResult::Success)));
        assert!(pool.stop(Instant::now() + std::time::Duration::from_secs(30)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tasks_wait_while_no_thread_can_start_and_run_once_one_can() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-pool-test").unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let sink = Report::Each(Box::new(move |t: Box<Task>| tx.send(t).unwrap()));
        let mut pool = LocalPool::new(one_core(), env(&dir), sink);
        pool.shared.refuse_threads.store(true, SeqCst);
        let mut all = tasks(2);
        let second = all.split_off(1);
        // Not a panic: the task waits.
        pool.dispatch(&mut all);
        assert_eq!(pool.shared.lock().threads, 0);
        pool.shared.refuse_threads.store(false, SeqCst);
        // The next hand-over starts a thread, which runs both.
        pool.dispatch(&mut { second });
        let mut ids: Vec<_> = (0..2).map(|_| rx.recv().unwrap().id).collect();
        ids.sort();
        assert_eq!(ids, [1, 2]);
        assert!(pool.stop(Instant::now() + std::time::Duration::from_secs(30)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn each_finished_task_goes_to_the_sink_the_owner_gave() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-pool-test").unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let sink = Report::Each(Box::new(move |t: Box<Task>| tx.send(t).unwrap()));
        let mut pool = LocalPool::new(one_core(), env(&dir), sink);
        pool.dispatch(&mut tasks(2));
        let mut ids: Vec<_> = (0..2).map(|_| rx.recv().unwrap().id).collect();
        ids.sort();
        assert_eq!(ids, [1, 2]);
        let mut outbox = Vec::new();
        pool.take_finished(&mut outbox);
        assert!(outbox.is_empty(), "nothing waits in the outbox");
        assert!(pool.stop(Instant::now() + std::time::Duration::from_secs(30)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
