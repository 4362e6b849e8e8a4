//! Scheduling as a pure state machine: events in (a task submitted, a task finished,
//! a worker came or went, a cancel), actions out through [`Comm`] (dispatch a task to
//! a worker, hand a finished task back, ask a worker to cancel). No threads, sockets
//! or clocks here, so every rule is tested directly.
//!
//! Rules:
//! - Ready tasks are taken highest priority first, FIFO among equals.
//! - A task goes to a worker where it starts at once; failing that, to a worker
//!   that can hold it and has fewer than its prefetch allowance waiting, so that a
//!   worker finishing a task finds the next one already there. Prefetch 0 gives a
//!   strict order: nothing is dispatched ahead of free resources.
//! - A task that no worker can take now is parked with the others of its shape
//!   (same request, same kind of work), so that the ones behind it can use what is
//!   free, however many wait ahead. Parked shapes are tried again, in priority
//!   order with the ready tasks, only when something may have made room (a task
//!   finished, a worker joined or changed): a round costs one attempt per shape,
//!   not per parked task.
//! - A task no worker could ever hold, when no more workers can join, is returned as
//!   UNSCHEDULABLE at once.
//! - A worker whose end is known (its batch job's or its own wall time) is given
//!   no task within [`END_MARGIN_US`] of that end, nor a task whose `time_min` is
//!   more than the time it has left. Such a task waits for another worker; it is
//!   not failed.
//! - A failure that is not the task's own (its worker failed it, or was lost) re-runs
//!   it up to its retries.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ffi::CStr;
use std::ops::ControlFlow;
use std::sync::Arc;

use super::categories::Categories;
use super::ready::{key, ReadyQueue};
use super::temps::{TempPlace, Temps};
use crate::files::{FileKind, MOUNT_FIXED_LOCATION};
use crate::idmap::IdMap;
use crate::resources::Resources;
use crate::task::{
    Place, State, Task, TaskId, TaskResult, Work, FLAG_MONITOR, FLAG_NO_WATCHDOG, RETRIES_DEFAULT,
};
use crate::worker::slots::SlotQueue;

/// A worker's id, unique for the life of the manager (0 is the local pool).
pub type WorkerId = u32;

/// What the scheduler asks the world to do.
pub trait Comm {
    /// Send `task` to `worker`.
    fn dispatch(&mut self, worker: WorkerId, task: Box<Task>);
    /// `task` is finished: hand it to the waiters.
    fn complete(&mut self, task: Box<Task>);
    /// Ask `worker` to stop task `id` and send it back.
    fn cancel_on_worker(&mut self, worker: WorkerId, id: TaskId);
    /// Tell `worker` that task `id`'s end time passed: it stops it as one
    /// killed at its end time (a command returns what it wrote).
    fn end_on_worker(&mut self, worker: WorkerId, id: TaskId);
}

/// What decides which workers can take a task: tasks of one shape fit the same
/// workers, so while one of them cannot be placed, none can.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Shape {
    request: Resources,
    runs: Runs,
    /// Features a worker must offer.
    features: Vec<std::ffi::CString>,
    /// The running time it asks for (`time_min`, seconds, as bits).
    time_min: u64,
    /// Its category, when categories bound how many of their tasks run at once.
    category: Option<Box<[u8]>>,
    /// The workers it passes over (see [`pick_worker`]), sorted: tasks that
    /// avoid the same workers fit the same ones.
    avoids: Box<[u32]>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Runs {
    /// A command: any worker.
    Anywhere,
    /// A function pointer of this process: the local pool only.
    Here,
    /// A registered function: workers that know its name.
    Function(Arc<CStr>),
    /// Reads temps, whose place changes as they are made and moved: a shape of
    /// its own.
    Alone(TaskId),
}

/// Whether a mini task behind input file `file` (one making it, or one making
/// a file that one reads, at any depth) reads a temp for which `temp` holds.
fn temp_behind(
    file: &crate::files::File,
    temp: &mut impl FnMut(&crate::files::File) -> bool,
) -> bool {
    let FileKind::MiniTask { task, .. } = file.kind() else {
        return false;
    };
    task.extra.as_ref().is_some_and(|e| {
        e.inputs.iter().any(|m| {
            (matches!(m.file.kind(), FileKind::Temp) && temp(&m.file)) || temp_behind(&m.file, temp)
        })
    })
}

/// Whether `task` writes file `id` (a temp it makes itself is not waited for).
fn writes(task: &Task, id: u64) -> bool {
    task.extra
        .as_ref()
        .is_some_and(|e| e.outputs.iter().any(|m| m.file.id() == id))
}

fn shape_of(task: &Task, by_category: bool) -> Shape {
    let reads_temps = task.extra.as_ref().is_some_and(|e| {
        e.inputs.iter().any(|m| {
            matches!(m.file.kind(), FileKind::Temp)
                || m.flags & MOUNT_FIXED_LOCATION != 0
                || temp_behind(&m.file, &mut |_| true)
        })
    });
    // A task passing over workers fits fewer workers than others of its
    // request do: its shape names them.
    let mut avoids: Box<[u32]> = task
        .extra
        .as_ref()
        .map_or(Box::default(), |e| e.slow_on.as_slice().into());
    avoids.sort_unstable();
    let runs = match &task.work {
        _ if reads_temps => Runs::Alone(task.id),
        Work::Command { .. } => Runs::Anywhere,
        _ if task.local_only() => Runs::Here,
        Work::Local { .. } => Runs::Here,
        Work::Function { name, .. } => Runs::Function(name.clone()),
    };
    Shape {
        request: task.request,
        runs,
        features: task.features().to_vec(),
        time_min: task.time_min().to_bits(),
        category: by_category.then(|| task.category().to_bytes().into()),
        avoids,
    }
}

/// The order tasks are taken in: highest priority, then first submitted.
fn rank(task: &Task) -> (u64, Reverse<TaskId>) {
    (key(task.priority), Reverse(task.id))
}

/// Tasks that could not be placed when last tried, by shape, each shape in the
/// order its tasks would run.
#[derive(Default)]
struct Parked {
    by_shape: HashMap<Shape, ReadyQueue>,
    len: usize,
}

impl Parked {
    fn park(&mut self, shape: Shape, task: Box<Task>) {
        self.by_shape.entry(shape).or_default().push_back(task);
        self.len += 1;
    }

    fn remove(&mut self, id: TaskId) -> Option<Box<Task>> {
        let (shape, task) = self
            .by_shape
            .iter_mut()
            .find_map(|(shape, q)| q.remove(id).map(|t| (shape.clone(), t)))?;
        if self.by_shape[&shape].is_empty() {
            self.by_shape.remove(&shape);
        }
        self.len -= 1;
        Some(task)
    }

    fn contains(&self, id: TaskId) -> bool {
        self.by_shape.values().any(|q| q.contains(id))
    }

    fn take_where(&mut self, mut take: impl FnMut(&Task) -> bool) -> Vec<Box<Task>> {
        let mut out = Vec::new();
        for q in self.by_shape.values_mut() {
            out.extend(q.take_where(&mut take));
        }
        self.by_shape.retain(|_, q| !q.is_empty());
        self.len -= out.len();
        out
    }
}

/// With automatic prefetch, a worker holds about this much work (in microseconds
/// of its measured task durations) beyond what it runs: enough that tiny tasks are
/// handed over in batches and a pool never runs dry between the manager's
/// collections (every 5 ms while its queue is deep) even when the manager
/// thread then waits for a core (on a busy machine that can take a millisecond
/// or more), little enough that a later task of higher priority waits behind at
/// most this long. A worker whose tasks have not run yet, or last longer than
/// this, holds only what it runs: its tasks would wait there for many times
/// what a round trip to the manager costs, while a worker that joins meanwhile
/// (or a factory counting the tasks that wait) could take them.
const PREFETCH_HORIZON_US: f64 = 20000.0;
/// The most tasks automatic prefetch lets a worker hold beyond what it runs.
const PREFETCH_MAX: usize = 4096;
/// A worker this close to its end (microseconds) takes no new task: it would
/// barely start before the worker goes.
pub const END_MARGIN_US: i64 = 5_000_000;

struct WorkerEntry {
    id: WorkerId,
    model: SlotQueue<TaskId>,
    /// Fixed prefetch, or None for automatic.
    fixed_prefetch: Option<usize>,
    prefetch: usize,
    assigned: usize,
    /// Moving average of task run times on this worker, microseconds.
    avg_run_us: Option<f64>,
    /// The function names a remote worker can run (None: the local pool, which
    /// resolves names in this process when it runs them).
    functions: Option<Vec<Box<[u8]>>>,
    /// Takes function tasks of names this process has not registered (the
    /// local pool of a manager no remote worker can join: they fail there,
    /// MISSING_FUNCTION, rather than wait for ever).
    runs_unknown_names: bool,
    /// Takes no new task (`vine_set_draining_by_hostname`).
    draining: bool,
    /// The features it offers (`vine_worker --feature`).
    features: Vec<Box<[u8]>>,
    /// Its host name and address, given to the tasks it runs.
    place: Option<Arc<Place>>,
    /// When it will end, microseconds since the epoch (None: not known, or never).
    end_us: Option<i64>,
}

impl WorkerEntry {
    fn has_room(&self) -> bool {
        if self.draining {
            return false;
        }
        let waiting = self.model.waiting_len();
        waiting < self.prefetch
            || (waiting == 0 && self.model.taken().millicores < self.model.capacity().millicores)
    }

    fn slots(&self) -> usize {
        self.model.capacity().millicores.div_ceil(1000).max(1) as usize
    }

    /// Learns from a task that ran for `us` microseconds and re-derives the
    /// automatic prefetch.
    fn observe_run(&mut self, us: f64) {
        let avg = match self.avg_run_us {
            Some(a) => a + (us - a) / 16.0,
            None => us,
        };
        self.avg_run_us = Some(avg);
        self.refresh_prefetch();
    }

    fn refresh_prefetch(&mut self) {
        let slots = self.slots();
        self.prefetch = match (self.fixed_prefetch, self.avg_run_us) {
            (Some(n), _) => n,
            (None, None) => 0,
            (None, Some(avg)) => {
                let depth = PREFETCH_HORIZON_US * slots as f64 / avg.max(0.1);
                (depth as usize).min(PREFETCH_MAX)
            }
        };
    }
}

/// True if worker `w` can run `task`: local function pointers only on the local
/// pool, registered functions only where the name is known, readers of a kept
/// temp where `temps` says it is, tasks with features where they are all
/// offered, and `VINE_FIXED_LOCATION` inputs only where they already are.
///
/// With `ever`, a temp being made counts as placeable wherever it may end up:
/// what decides whether a task could ever run, not whether it can run now.
fn can_run(w: &WorkerEntry, temps: &Temps, task: &Task, ever: bool) -> bool {
    let known = match (&task.work, &w.functions) {
        (_, functions) if task.local_only() => functions.is_none(),
        (Work::Function { name, .. }, Some(known)) => known.iter().any(|k| **k == *name.to_bytes()),
        // The local pool runs what this process registered (by now, if not
        // when the task was made); with remote workers possible, a name only
        // they may know waits for them.
        (Work::Function { name, func, .. }, None) => {
            w.runs_unknown_names || func.is_some() || crate::registry::lookup(name).is_some()
        }
        _ => true,
    };
    // A temp kept at a worker is read there; one being made is waited for.
    known
        && task.extra.as_ref().is_none_or(|e| {
            e.features
                .iter()
                .all(|f| w.features.iter().any(|k| **k == *f.to_bytes()))
                && e.inputs.iter().all(|m| {
                    // A mini task making an input waits, as its task does,
                    // for the temps it reads to be written.
                    if !ever
                        && temp_behind(&m.file, &mut |t| {
                            temps.place(t) == TempPlace::BeingMade && !writes(task, t.id())
                        })
                    {
                        return false;
                    }
                    let place = temps.place(&m.file);
                    if ever && place == TempPlace::BeingMade {
                        return true;
                    }
                    if m.flags & MOUNT_FIXED_LOCATION != 0 {
                        return holds(w, place, &m.file);
                    }
                    match place {
                        TempPlace::Anywhere => true,
                        // With peer transfers, any remote worker fetches it
                        // from one that holds it.
                        TempPlace::Worker(_) => {
                            temps.held_by(m.file.id(), w.id)
                                || (temps.shared()
                                    && w.functions.is_some()
                                    && m.file.flags() & crate::files::FILE_PEER_NOSHARE == 0)
                        }
                        TempPlace::BeingMade => false,
                    }
                })
        })
}

/// True if worker `w` already has `file` (whose place as a temp is `place`), so
/// a `VINE_FIXED_LOCATION` input needs no transfer: a remote worker has the
/// temps it keeps; the local pool, which reads the manager's files where they
/// are, has every file whose data the manager holds.
fn holds(w: &WorkerEntry, place: TempPlace, file: &crate::files::File) -> bool {
    match place {
        TempPlace::Worker(at) => at == w.id,
        TempPlace::BeingMade => false,
        TempPlace::Anywhere => {
            w.functions.is_none()
                && match file.kind() {
                    FileKind::Temp => file.temp_location().is_some(),
                    _ => true,
                }
        }
    }
}

/// True if worker `w`, as of `now_us`, lives long enough for `task`: it is not
/// within [`END_MARGIN_US`] of its end, and has at least the task's `time_min`
/// left. A worker with no known end always does.
fn lives_long_enough(w: &WorkerEntry, now_us: i64, task: &Task) -> bool {
    let Some(end) = w.end_us else {
        return true;
    };
    let left = end.saturating_sub(now_us);
    let wanted = (task.time_min() * 1e6).ceil() as i64;
    left >= END_MARGIN_US && left >= wanted
}

/// The worker to place `task` on, if one can take it now: one where it starts at
/// once, else the one with the fewest waiting among those with prefetch room.
fn pick_worker(workers: &[WorkerEntry], temps: &Temps, now_us: i64, task: &Task) -> Option<usize> {
    let req = &task.request;
    // A task sized automatically is not queued at a worker: by the time it
    // would start, its category may be sized otherwise.
    let may_wait = task
        .extra
        .as_ref()
        .is_none_or(|e| e.sizing != crate::resources::Sizing::Auto);
    let could = |w: &WorkerEntry| {
        !w.draining
            && req.fits_within(&w.model.capacity())
            && lives_long_enough(w, now_us, task)
            && can_run(w, temps, task, false)
    };
    // Workers the task was taken back from for being slow there are passed
    // over while another worker could run it, now or once it has room.
    let slow_on = task.extra.as_ref().map_or(&[][..], |e| &e.slow_on[..]);
    let passed_over = |w: &WorkerEntry| slow_on.contains(&w.id);
    let pass_over = !slow_on.is_empty() && workers.iter().any(|w| !passed_over(w) && could(w));
    let mut best: Option<(usize, usize)> = None;
    for (at, w) in workers.iter().enumerate() {
        if !could(w) || (pass_over && passed_over(w)) {
            continue;
        }
        if w.model.would_start(req) {
            return Some(at);
        }
        let waiting = w.model.waiting_len();
        if waiting < w.prefetch && may_wait && best.is_none_or(|(_, b)| waiting < b) {
            best = Some((at, waiting));
        }
    }
    best.map(|(at, _)| at)
}

/// Counters and gauges, as `vine_get_stats` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Tasks submitted.
    pub tasks_submitted: u64,
    /// Tasks waiting to be dispatched.
    pub tasks_waiting: u64,
    /// Tasks given to workers (running or about to).
    pub tasks_on_workers: u64,
    /// Tasks running on workers.
    pub tasks_running: u64,
    /// Tasks finished (any result).
    pub tasks_done: u64,
    /// Of those, the tasks the manager ran itself (`tasks_recovery`), which no
    /// wait returns.
    pub tasks_done_internal: u64,
    /// Finished tasks whose result is not SUCCESS.
    pub tasks_failed: u64,
    /// Finished tasks that were cancelled.
    pub tasks_cancelled: u64,
    /// Attempts re-run after failures that were not the task's own.
    pub tasks_retried: u64,
    /// Workers connected (the local pool counts when it has cores).
    pub workers_connected: u64,
    /// Sum of the workers' capacities.
    pub total: Resources,
    /// Sum of what running tasks hold.
    pub committed: Resources,
    /// Times a task was given to a worker.
    pub tasks_dispatched: u64,
    /// Finished tasks with SUCCESS and exit code 0.
    pub tasks_successful: u64,
    /// Finished tasks that exhausted their resources.
    pub tasks_exhausted: u64,
    /// Tasks the manager submitted itself (to make lost temps again).
    pub tasks_recovery: u64,
    /// Microseconds finished tasks spent executing; of them, successful ones,
    /// and those that exhausted their resources.
    pub time_execute: u64,
    /// See `time_execute`.
    pub time_execute_good: u64,
    /// See `time_execute`.
    pub time_execute_exhaustion: u64,
    /// Workers holding no task, and holding some.
    pub workers_idle: u64,
    /// See `workers_idle`.
    pub workers_busy: u64,
    /// Workers that can hold the largest task submitted so far (all before any).
    pub workers_able: u64,
    /// The largest and smallest capacity of one worker, resource by resource.
    pub max: Resources,
    /// See `max`.
    pub min: Resources,
    /// Remote worker connections established, ended, told to exit, disconnected
    /// for being slow, lost; hosts blocked. Counted by the manager thread.
    pub workers_joined: u64,
    /// See `workers_joined`.
    pub workers_removed: u64,
    /// See `workers_joined`.
    pub workers_released: u64,
    /// See `workers_joined`.
    pub workers_slow: u64,
    /// See `workers_joined`.
    pub workers_blocked: u64,
    /// See `workers_joined`.
    pub workers_lost: u64,
    /// When the manager started, microseconds since the epoch.
    pub time_when_started: u64,
}

/// A worker as a status report shows it.
pub struct WorkerView {
    /// Its id.
    pub id: WorkerId,
    /// What it offers.
    pub capacity: Resources,
    /// What its running tasks hold.
    pub in_use: Resources,
    /// Tasks given to it (running or queued there).
    pub tasks: usize,
    /// Its host name and address.
    pub place: Option<Arc<Place>>,
    /// It takes no new task.
    pub draining: bool,
}

/// How a worker that may hold tasks went (see [`Scheduler::remove_worker_as`]).
#[derive(Debug, Clone, Copy)]
pub enum Removal {
    /// Lost, or gone by its own choice (its wall time passed): the attempts
    /// it held count against their tasks' retries. The words say how it went
    /// ("was lost"), for the tasks' reasons.
    Counted(&'static str),
    /// Sent away by the manager (told to exit, dropped when the password was
    /// set): its tasks run again with their attempts given back.
    NotCounted(&'static str),
}

/// The scheduling state of one manager.
pub struct Scheduler {
    ready: ReadyQueue,
    parked: Parked,
    /// Something may have made room since parked tasks were last tried.
    retry_parked: bool,
    workers: Vec<WorkerEntry>,
    dispatched: IdMap<WorkerId>,
    /// Dispatched tasks whose cancellation was accepted: they come back
    /// CANCELLED whatever their worker made of them (it may have finished them
    /// before the cancel reached it).
    cancelling: IdMap<()>,
    /// Dispatched tasks taken back from a slow worker: unless they finished
    /// meanwhile, they wait for a worker again, the attempt not counted.
    recalling: IdMap<()>,
    /// Dispatched tasks whose end time passed, which their worker was told to
    /// stop: unless they finished meanwhile, they come back MAX_END_TIME.
    ending: IdMap<()>,
    remote_allowed: bool,
    default_retries: u32,
    wait_for_workers: usize,
    shutting_down: bool,
    stats: Stats,
    scratch: Vec<(Resources, TaskId)>,
    /// The largest request submitted so far (by cores, then memory, gpus, disk).
    largest_request: Option<Resources>,
    /// Where temps kept at remote workers are, and what makes them again; the
    /// manager thread updates it as tasks come back and workers go.
    pub(crate) temps: Temps,
    /// The time as of the last [`Scheduler::tick`], microseconds since the epoch.
    clock_us: i64,
    /// Tasks whose start time has not come, as of `clock_us`.
    delayed: Vec<Box<Task>>,
    /// End times of waiting tasks (some may have left since), earliest first.
    ends: BinaryHeap<Reverse<(i64, TaskId)>>,
    /// Tags of dispatched tasks that have one, to cancel them by tag.
    dispatched_tags: HashMap<TaskId, std::ffi::CString>,
    /// Every task's states, for the transactions log (records only: the manager
    /// thread sets its clock and hands them on).
    pub(crate) journal: super::journal::Journal,
    /// Categories: their sizing, bounds and counts.
    pub(crate) categories: Categories,
}

impl Scheduler {
    /// A scheduler with no workers. `remote_allowed` says whether workers may
    /// still join (if not, a task that fits none of the present ones is refused).
    pub fn new(remote_allowed: bool) -> Self {
        Scheduler {
            ready: ReadyQueue::default(),
            parked: Parked::default(),
            retry_parked: false,
            workers: Vec::new(),
            dispatched: IdMap::default(),
            cancelling: IdMap::default(),
            recalling: IdMap::default(),
            ending: IdMap::default(),
            remote_allowed,
            default_retries: 3,
            wait_for_workers: 0,
            shutting_down: false,
            stats: Stats::default(),
            scratch: Vec::new(),
            largest_request: None,
            temps: Temps::default(),
            clock_us: 0,
            delayed: Vec::new(),
            ends: BinaryHeap::new(),
            dispatched_tags: HashMap::new(),
            journal: Default::default(),
            categories: Categories::new(),
        }
    }

    /// Retries for tasks that did not set their own.
    pub fn set_default_retries(&mut self, n: u32) {
        self.default_retries = n;
    }

    /// Dispatch nothing until `n` workers are present (once; see `schedule`).
    pub fn set_wait_for_workers(&mut self, n: usize) {
        self.wait_for_workers = n;
    }

    /// Changes how many tasks a worker may hold beyond what it can start: a fixed
    /// number, or None to derive it from the worker's measured task durations.
    pub fn set_prefetch(&mut self, worker: WorkerId, prefetch: Option<usize>) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            w.fixed_prefetch = prefetch;
            w.refresh_prefetch();
        }
        self.retry_parked = true;
    }

    /// Sets `worker`'s prefetch to hold tasks for `multiplier` times its cores:
    /// `(multiplier - 1) * cores` tasks (rounded up) beyond what it can start.
    pub fn set_prefetch_multiplier(&mut self, worker: WorkerId, multiplier: f64) {
        let Some(slots) = self
            .workers
            .iter()
            .find(|w| w.id == worker)
            .map(WorkerEntry::slots)
        else {
            return;
        };
        let n = ((multiplier - 1.0).max(0.0) * slots as f64).ceil();
        self.set_prefetch(worker, Some(n.min(PREFETCH_MAX as f64) as usize));
    }

    /// Something outside the scheduler may let parked tasks be placed (a temp
    /// they read has arrived or moved): they are tried again next round.
    pub fn retry_parked(&mut self) {
        self.retry_parked = true;
    }

    /// A worker with `capacity` joins; `prefetch` as in [`Scheduler::set_prefetch`].
    pub fn add_worker(&mut self, id: WorkerId, capacity: Resources, prefetch: Option<usize>) {
        let mut w = WorkerEntry {
            id,
            model: SlotQueue::new(capacity),
            fixed_prefetch: prefetch,
            prefetch: 0,
            assigned: 0,
            avg_run_us: None,
            functions: None,
            runs_unknown_names: !self.remote_allowed,
            draining: false,
            features: Vec::new(),
            place: None,
            end_us: None,
        };
        w.refresh_prefetch();
        self.workers.push(w);
        self.retry_parked = true;
    }

    /// Records which functions a remote worker can run.
    pub fn set_functions(&mut self, worker: WorkerId, names: Vec<Box<[u8]>>) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            w.functions = Some(names);
        }
        self.retry_parked = true;
    }

    /// Stops (or resumes) giving `worker` new tasks.
    pub fn set_draining(&mut self, worker: WorkerId, draining: bool) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            w.draining = draining;
        }
        self.retry_parked = true;
    }

    /// Records the features a remote worker offers.
    pub fn set_features(&mut self, worker: WorkerId, features: Vec<Box<[u8]>>) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            w.features = features;
        }
        self.retry_parked = true;
    }

    /// Records when a worker will end (microseconds since the epoch; None: not
    /// known). Tasks are then placed on it only while it has time for them, as of
    /// the time given to [`Scheduler::tick`].
    pub fn set_end(&mut self, worker: WorkerId, end_us: Option<i64>) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            w.end_us = end_us;
        }
        self.retry_parked = true;
    }

    /// True if placing tasks depends on the time (some worker's end is known), so
    /// [`Scheduler::tick`] must be kept up to date even with no timer due.
    pub fn needs_clock(&self) -> bool {
        self.workers.iter().any(|w| w.end_us.is_some())
    }

    /// How many waiting tasks (ready, parked, or before their start time) `which` selects.
    pub fn count_waiting(&self, mut which: impl FnMut(&Task) -> bool) -> u64 {
        let parked = self.parked.by_shape.values().flat_map(|q| q.iter());
        let delayed = self.delayed.iter().map(|t| &**t);
        parked
            .chain(self.ready.iter())
            .chain(delayed)
            .filter(|t| which(t))
            .count() as u64
    }

    /// Shows `visit` the tasks waiting for a worker, parked ones one per shape with
    /// how many share it, then the others one by one in the order they would
    /// run, until it says to stop. Tasks waiting for their start time are not
    /// shown. What a factory sizes its demand from.
    pub fn visit_waiting(&self, mut visit: impl FnMut(&Task, usize) -> ControlFlow<()>) {
        for q in self.parked.by_shape.values() {
            if let Some(first) = q.peek_front() {
                if visit(first, q.len()).is_break() {
                    return;
                }
            }
        }
        for t in self.ready.iter() {
            if visit(t, 1).is_break() {
                return;
            }
        }
    }

    /// What a status report says of each worker.
    pub fn worker_views(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|w| WorkerView {
                id: w.id,
                capacity: w.model.capacity(),
                in_use: w.model.in_use(),
                tasks: w.assigned,
                place: w.place.clone(),
                draining: w.draining,
            })
            .collect()
    }

    /// How many tasks `worker` holds, if it is present.
    pub fn held_by(&self, worker: WorkerId) -> Option<usize> {
        self.workers
            .iter()
            .find(|w| w.id == worker)
            .map(|w| w.assigned)
    }

    /// Takes back dispatched task `id` from its worker (asked to stop it): when
    /// it comes back it waits for a worker again, unless it finished meanwhile.
    /// False if it is not on a worker, or is being cancelled.
    pub fn recall(&mut self, id: TaskId, comm: &mut impl Comm) -> bool {
        let Some(&worker) = self.dispatched.get(&id) else {
            return false;
        };
        if self.cancelling.contains_key(&id) {
            return false;
        }
        self.recalling.insert(id, ());
        comm.cancel_on_worker(worker, id);
        true
    }

    /// Records where a worker is: the tasks it is given carry it.
    pub fn set_place(&mut self, worker: WorkerId, place: Arc<Place>) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            w.place = Some(place);
        }
    }

    /// True if worker `worker` is present and could ever run `task`: large
    /// enough, and offering what else it needs (its function, features, kept
    /// temps; see `can_run`).
    pub fn worker_could_run(&self, worker: WorkerId, task: &Task) -> bool {
        let now_us = crate::task::now_us();
        self.workers.iter().any(|w| {
            w.id == worker
                && !w.draining
                && task.request.fits_within(&w.model.capacity())
                && lives_long_enough(w, now_us, task)
                && can_run(w, &self.temps, task, true)
        })
    }

    /// True if `worker` is present and large enough for a task asking `req`.
    pub fn worker_can_hold(&self, worker: WorkerId, req: &Resources) -> bool {
        self.workers
            .iter()
            .any(|w| w.id == worker && req.fits_within(&w.model.capacity()))
    }

    /// Every dispatched task and its worker.
    pub fn all_dispatched(&self) -> Vec<(WorkerId, TaskId)> {
        self.dispatched.iter().map(|(&t, &w)| (w, t)).collect()
    }

    /// A worker was lost; `tasks` are those it held, which run again elsewhere
    /// or, out of retries, come back FORSAKEN.
    pub fn remove_worker(&mut self, id: WorkerId, tasks: Vec<Box<Task>>, comm: &mut impl Comm) {
        self.remove_worker_as(id, tasks, Removal::Counted("was lost"), comm)
    }

    /// A worker went as `how` says; `tasks` are those it held.
    pub fn remove_worker_as(
        &mut self,
        id: WorkerId,
        tasks: Vec<Box<Task>>,
        how: Removal,
        comm: &mut impl Comm,
    ) {
        self.workers.retain(|w| w.id != id);
        self.dispatched.retain(|_, w| *w != id);
        for task in &tasks {
            self.dispatched_tags.remove(&task.id);
        }
        self.retry_parked = true;
        let now = crate::task::now_us();
        for mut task in tasks {
            self.recalling.remove(&task.id);
            // It no longer runs for its category (whose bound on tasks at
            // once may let another start now).
            self.categories.returned(&task);
            // The attempt ran (or waited there) from its hand-over until now,
            // as TaskVine counts it: an execution time that failed.
            if task.times.started > task.times.done {
                task.times.execute = task
                    .times
                    .execute
                    .saturating_add(now.saturating_sub(task.times.started));
                task.times.done = now;
            }
            if self.cancelling.remove(&task.id).is_some() {
                task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
                self.complete(task, comm);
                continue;
            }
            let (counted, why) = match how {
                Removal::Counted(why) => (true, why),
                Removal::NotCounted(why) => (false, why),
            };
            if !counted {
                // Sent away by the manager's or the program's choice: the
                // task did not fail, and runs again with its attempt given back.
                task.attempts = task.attempts.saturating_sub(1);
                task.reset_for_retry();
                if self.shutting_down {
                    task.finish(
                        TaskResult::Cancelled,
                        Some("the manager is shutting down".into()),
                    );
                    self.complete(task, comm);
                } else {
                    self.push_ready(task);
                }
                continue;
            }
            task.finish(
                TaskResult::Forsaken,
                Some(format!("worker {id} {why} while it held the task")),
            );
            self.forsaken(task, TaskResult::Forsaken, comm);
        }
        if !self.remote_allowed {
            self.refuse_what_cannot_fit(comm);
        }
    }

    /// True if no worker present could ever hold `req` and none may join.
    fn never_fits(&self, task: &Task) -> bool {
        (!self.remote_allowed || task.local_only())
            && !self.workers.iter().any(|w| {
                task.request.fits_within(&w.model.capacity()) && can_run(w, &self.temps, task, true)
            })
    }

    fn largest_worker(&self) -> String {
        self.workers
            .iter()
            .map(|w| w.model.capacity())
            .max_by_key(|c| (c.millicores, c.memory_mb, c.gpus, c.disk_mb))
            .map_or_else(
                || "there are no workers".into(),
                |c| format!("the largest worker has {}", c.describe()),
            )
    }

    fn refuse_what_cannot_fit(&mut self, comm: &mut impl Comm) {
        let mut ready = std::mem::take(&mut self.ready);
        let mut refused = ready.take_where(|t| self.never_fits(t));
        self.ready = ready;
        let mut parked = std::mem::take(&mut self.parked);
        refused.extend(parked.take_where(|t| self.never_fits(t)));
        self.parked = parked;
        for task in refused {
            self.complete_unschedulable(task, comm);
        }
    }

    /// Takes every waiting task, ready or parked, in the order they would run.
    fn take_all_waiting(&mut self) -> Vec<Box<Task>> {
        let mut all = self.ready.drain_in_order();
        all.append(&mut self.delayed);
        let parked = std::mem::take(&mut self.parked);
        for mut q in parked.by_shape.into_values() {
            all.extend(q.drain_in_order());
        }
        all.sort_by_key(|t| Reverse(rank(t)));
        all
    }

    fn complete_unschedulable(&mut self, mut task: Box<Task>, comm: &mut impl Comm) {
        let big_enough = self
            .workers
            .iter()
            .any(|w| task.request.fits_within(&w.model.capacity()));
        // A local function runs only here, whatever workers may join.
        let why_none = match &task.work {
            _ if !self.remote_allowed => "no remote workers are allowed".to_string(),
            Work::Local { .. } => "a local function pointer runs only in the local pool".into(),
            _ => format!(
                "a function input over {} bytes runs only in the local pool",
                crate::protocol::MAX_TASK_BYTES
            ),
        };
        let reason = if big_enough {
            format!(
                "no worker can run it (none offers its features, knows its function or \
                 holds its fixed-location inputs) and {why_none}"
            )
        } else {
            format!(
                "the task asks for {} but {} and {why_none}",
                task.request.describe(),
                self.largest_worker()
            )
        };
        task.finish(TaskResult::Unschedulable, Some(reason));
        self.complete(task, comm);
    }

    /// A task is submitted.
    pub fn submit(&mut self, mut task: Box<Task>, comm: &mut impl Comm) {
        if task.flags & crate::task::FLAG_INTERNAL != 0 {
            self.stats.tasks_recovery += 1;
        } else {
            self.stats.tasks_submitted += 1;
            if task.extra.is_some() {
                self.temps.submitted(&task);
            }
        }
        let key = |r: &Resources| (r.millicores, r.memory_mb, r.gpus, r.disk_mb);
        if self
            .largest_request
            .is_none_or(|l| key(&task.request) > key(&l))
        {
            self.largest_request = Some(task.request);
        }
        if task.max_retries == RETRIES_DEFAULT {
            task.max_retries = self.default_retries;
        }
        self.categories.submitted(&mut task);
        match self.categories.monitoring() {
            Some(true) => task.flags |= FLAG_MONITOR,
            Some(false) => task.flags |= FLAG_MONITOR | FLAG_NO_WATCHDOG,
            None if self.categories.wants_measurements(task.category())
                || task.monitor_output().is_some() =>
            {
                task.flags |= FLAG_MONITOR
            }
            None => {}
        }
        // A task refused at once still begins its log where every task's does.
        if self.shutting_down {
            self.journal.ready(&task);
            task.finish(
                TaskResult::Cancelled,
                Some("the manager is shutting down".into()),
            );
            self.complete(task, comm);
        } else if let Some(why) = self.fixed_location_missing(&task) {
            // Whatever else may stop it: said first, as it is the same with
            // remote workers or without.
            self.journal.ready(&task);
            task.finish(TaskResult::FixedLocationMissing, Some(why));
            self.complete(task, comm);
        } else if self.never_fits(&task) {
            self.journal.ready(&task);
            self.complete_unschedulable(task, comm);
        } else {
            self.push_ready(task);
        }
    }

    /// Why a task with `VINE_FIXED_LOCATION` inputs cannot run: no worker present
    /// has them all, and none of them is being made again.
    fn fixed_location_missing(&self, task: &Task) -> Option<String> {
        let e = task.extra.as_ref()?;
        let mut fixed = e
            .inputs
            .iter()
            .filter(|m| m.flags & MOUNT_FIXED_LOCATION != 0)
            .peekable();
        fixed.peek()?;
        let fixed: Vec<_> = fixed.collect();
        let places: Vec<TempPlace> = fixed.iter().map(|m| self.temps.place(&m.file)).collect();
        if places.contains(&TempPlace::BeingMade) {
            return None;
        }
        let held_at = |w: &WorkerEntry| {
            fixed
                .iter()
                .zip(&places)
                .all(|(m, &place)| holds(w, place, &m.file))
        };
        // It must also be able to run the task there: a worker holding them
        // that lacks a feature the task asks for never will.
        let offers = |w: &WorkerEntry| {
            e.features
                .iter()
                .all(|f| w.features.iter().any(|k| **k == *f.to_bytes()))
        };
        let names: Vec<&str> = fixed.iter().map(|m| m.remote_name.as_str()).collect();
        if !self.workers.iter().any(held_at) {
            return Some(format!(
                "no worker has all of its fixed-location inputs ({})",
                names.join(", ")
            ));
        }
        if self.workers.iter().any(|w| held_at(w) && offers(w)) {
            return None;
        }
        let features: Vec<_> = e.features.iter().map(|f| f.to_string_lossy()).collect();
        Some(format!(
            "no worker with all of its fixed-location inputs ({}) offers its features ({})",
            names.join(", "),
            features.join(", ")
        ))
    }

    fn push_ready(&mut self, task: Box<Task>) {
        task.publish_state(State::Ready);
        self.journal.ready(&task);
        if let Some(e) = &task.extra {
            if e.time_end > 0 {
                self.ends.push(Reverse((e.time_end, task.id)));
            }
            if e.time_start > self.clock_us {
                self.delayed.push(task);
                return;
            }
        }
        self.ready.push_back(task);
    }

    /// The time is `now_us` (microseconds since the epoch): tasks whose start
    /// time has come may be dispatched, and waiting tasks past their end time
    /// come back `MaxEndTime`, as do dispatched ones, which their workers are
    /// told to stop (one may be waiting in a busy worker's queue).
    pub fn tick(&mut self, now_us: i64, comm: &mut impl Comm) {
        self.clock_us = now_us;
        if !self.delayed.is_empty() {
            let mut i = 0;
            while i < self.delayed.len() {
                if self.delayed[i].time_start() <= now_us {
                    let task = self.delayed.swap_remove(i);
                    self.ready.push_back(task);
                } else {
                    i += 1;
                }
            }
        }
        while let Some(&Reverse((end, id))) = self.ends.peek() {
            if end > now_us {
                break;
            }
            self.ends.pop();
            if let Some(&worker) = self.dispatched.get(&id) {
                if !self.cancelling.contains_key(&id) && self.ending.insert(id, ()).is_none() {
                    comm.end_on_worker(worker, id);
                }
                continue;
            }
            let waiting = self.ready.remove(id).or_else(|| self.parked.remove(id));
            let waiting = waiting.or_else(|| {
                let at = self.delayed.iter().position(|t| t.id == id)?;
                Some(self.delayed.swap_remove(at))
            });
            if let Some(mut task) = waiting {
                task.finish(
                    TaskResult::MaxEndTime,
                    Some("the task was not done by its end time".into()),
                );
                self.complete(task, comm);
            }
        }
    }

    /// When [`Scheduler::tick`] has something to do next (microseconds since the
    /// epoch), if ever.
    pub fn next_timer_us(&self) -> Option<i64> {
        let start = self.delayed.iter().map(|t| t.time_start()).min();
        let end = self.ends.peek().map(|Reverse((end, _))| *end);
        match (start, end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Dispatches what can be dispatched now: ready tasks and, if something may
    /// have made room since they were parked, parked ones, all in priority order.
    /// A task no worker can take now is parked with its shape; once a shape fails
    /// in a round, its other tasks are parked without another attempt.
    pub fn schedule(&mut self, comm: &mut impl Comm) {
        if self.workers.len() < self.wait_for_workers || self.shutting_down {
            return;
        }
        // Reached: as in TaskVine, dispatch is not held again when workers
        // leave (until the setting is given again).
        self.wait_for_workers = 0;
        if !self.workers.iter().any(WorkerEntry::has_room) {
            // Nothing can be placed: parked shapes wait for the next chance.
            return;
        }
        // Parked shapes to try again, by the rank of their first task.
        let mut retry = BinaryHeap::new();
        let mut shapes = Vec::new();
        let retrying = std::mem::take(&mut self.retry_parked);
        if retrying {
            for (shape, q) in &self.parked.by_shape {
                if let Some(first) = q.peek_front() {
                    retry.push((rank(first), shapes.len()));
                    shapes.push(shape.clone());
                }
            }
        }
        // Shapes that failed this round.
        let mut blocked: HashSet<Shape> = HashSet::new();
        // The largest worker, for sizing by category: found once a round.
        let mut largest = None;
        while self.workers.iter().any(WorkerEntry::has_room) {
            let from_parked = match (self.ready.peek_front(), retry.peek()) {
                (None, None) => break,
                (Some(next), Some((first, _))) => *first > rank(next),
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if from_parked {
                let Some((_, i)) = retry.pop() else { break };
                let shape: &Shape = &shapes[i];
                if blocked.contains(shape) {
                    continue;
                }
                let Some(q) = self.parked.by_shape.get_mut(shape) else {
                    continue;
                };
                let Some(task) = q.pop_front() else { continue };
                let held = self.categories.active() && !self.categories.may_start(&task);
                let at = if held {
                    None
                } else {
                    pick_worker(&self.workers, &self.temps, self.clock_us, &task)
                };
                match at {
                    Some(at) => {
                        self.parked.len -= 1;
                        match q.peek_front() {
                            Some(next) => retry.push((rank(next), i)),
                            None => {
                                self.parked.by_shape.remove(shape);
                            }
                        }
                        self.assign(at, task, comm);
                    }
                    None => {
                        q.push_front(task);
                        blocked.insert(shape.clone());
                    }
                }
                continue;
            }
            let Some(mut task) = self.ready.pop_front() else {
                break;
            };
            let by_category = self.categories.active();
            let mut held = false;
            if by_category {
                held = !self.categories.may_start(&task);
                if largest.is_none() {
                    largest = self.largest_capacity();
                }
                if let Some(largest) = largest {
                    self.categories.size(&mut task, largest);
                }
                // Its category made it larger than every worker, and none
                // may join: it would wait forever.
                if self.never_fits(&task) {
                    self.complete_unschedulable(task, comm);
                    continue;
                }
            }
            // Only when something is parked can a task's shape be known to fail.
            let shape =
                (held || !self.parked.by_shape.is_empty()).then(|| shape_of(&task, by_category));
            let known_to_fail = held
                || shape.as_ref().is_some_and(|s| {
                    blocked.contains(s) || (!retrying && self.parked.by_shape.contains_key(s))
                });
            let at = if known_to_fail {
                None
            } else {
                pick_worker(&self.workers, &self.temps, self.clock_us, &task)
            };
            match at {
                Some(at) => self.assign(at, task, comm),
                None => {
                    let shape = shape.unwrap_or_else(|| shape_of(&task, by_category));
                    blocked.insert(shape.clone());
                    self.parked.park(shape, task);
                }
            }
        }
    }

    fn assign(&mut self, at: usize, mut task: Box<Task>, comm: &mut impl Comm) {
        let w = &mut self.workers[at];
        task.attempts += 1;
        task.worker_id = w.id;
        self.scratch.clear();
        if w.model
            .push(task.request, task.id, &mut self.scratch)
            .is_err()
        {
            // `pick_worker` checked it fits; if not, the books are wrong. The task
            // is not sent where it would wait forever: it counts as a failed attempt.
            task.finish(
                TaskResult::Forsaken,
                Some(format!(
                    "internal error: worker {} cannot hold the task",
                    w.id
                )),
            );
            return self.retry_or_complete(task, TaskResult::Forsaken, comm);
        }
        w.assigned += 1;
        self.stats.tasks_dispatched += 1;
        self.categories.dispatched(&task);
        self.dispatched.insert(task.id, w.id);
        if w.place.is_some() {
            task.place = w.place.clone();
        }
        if let Some(tag) = task.tag() {
            self.dispatched_tags.insert(task.id, tag.to_owned());
        }
        task.publish_state(State::Running);
        let started = self.scratch.iter().any(|&(_, id)| id == task.id);
        self.journal.running(&task, w.id, started);
        comm.dispatch(w.id, task);
    }

    /// The capacity of the largest worker (by cores, then memory), if any.
    fn largest_capacity(&self) -> Option<Resources> {
        self.workers
            .iter()
            .map(|w| w.model.capacity())
            .max_by_key(|c| (c.millicores, c.memory_mb, c.disk_mb, c.gpus))
    }

    /// A worker sends a task back, run or not.
    pub fn finished(&mut self, worker: WorkerId, mut task: Box<Task>, comm: &mut impl Comm) {
        if self.dispatched.remove(&task.id).is_none() {
            // The books are wrong (a bug), but the task is real: hand it back
            // rather than lose it.
            eprintln!(
                "vine: internal error: task {} came back from worker {worker} but was not dispatched",
                task.id
            );
            return self.complete(task, comm);
        }
        let id = task.id;
        let shut_out = self.shutting_down
            && task.cancel_requested()
            && !self.recalling.contains_key(&id)
            && !self.ending.contains_key(&id);
        if !task.was_started()
            && task.result == TaskResult::Unknown
            && (self.cancelling.contains_key(&id) || shut_out)
        {
            // Given back unstarted because it was cancelled, or the manager
            // shuts down (held ahead at its worker): it comes back cancelled,
            // and its record says so.
            task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
        }
        self.journal.retrieved(&task, worker);
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            self.scratch.clear();
            // A task its worker started holds resources; one returned unstarted
            // (cancelled) is still in the worker's queue.
            let id = task.id;
            if task.was_started() {
                // The model may not have started it where the pool did (its
                // view of what direct tasks hold lags; the manager syncs it
                // before it collects, so only as a safeguard): caught up here.
                let caught_up = !task.request.fits_within(&w.model.in_use())
                    && w.model
                        .remove_waiting(|&t| t == id, &mut self.scratch)
                        .is_some();
                if !caught_up {
                    w.model.release(task.request, &mut self.scratch);
                }
            } else {
                let removed = w.model.remove_waiting(|&t| t == id, &mut self.scratch);
                if removed.is_none() {
                    // The model had started it: what it held is free again.
                    w.model.release(task.request, &mut self.scratch);
                }
            }
            self.journal.started(self.scratch.iter().map(|&(_, id)| id));
            w.assigned -= 1;
            if task.times.started > 0 && task.times.done >= task.times.started {
                w.observe_run((task.times.done - task.times.started) as f64);
            }
        }
        // What the task held, or its place in a queue, is free again.
        self.retry_parked = true;
        let returned = self.categories.returned(&task);
        if returned.resized {
            // Its category's waiting tasks are sized again when next taken.
            let category = task.category();
            let mut again = self.parked.take_where(|t| t.category() == category);
            again.sort_unstable_by_key(|t| std::cmp::Reverse(rank(t)));
            for t in again.into_iter().rev() {
                self.ready.push_front(t);
            }
        }
        if !self.dispatched_tags.is_empty() {
            self.dispatched_tags.remove(&task.id);
        }
        let cancelled = self.cancelling.remove(&task.id).is_some();
        let recalled = self.recalling.remove(&task.id).is_some();
        let ended = !self.ending.is_empty() && self.ending.remove(&task.id).is_some();
        if ended && !cancelled && (task.cancel_requested() || task.result == TaskResult::Cancelled)
        {
            // Stopped at its end time, before or while it ran.
            task.flags &= !crate::task::FLAG_CANCELLED;
            // A process killed there: the signal is its exit code, as for one
            // its worker killed at the end time (a THREAD function ran on).
            let thread = matches!(task.work, crate::task::Work::Local { .. })
                || (matches!(task.work, crate::task::Work::Function { .. })
                    && task.mode == crate::task::ExecMode::Thread);
            if task.was_started() && !thread && task.exit_code == crate::task::NO_EXIT_CODE {
                task.exit_code = libc::SIGKILL;
            }
            task.finish(
                TaskResult::MaxEndTime,
                Some("the task was not done by its end time".into()),
            );
            return self.complete(task, comm);
        }
        if recalled && !cancelled && !ended && task.result != TaskResult::Success {
            // Stopped by the recall: the attempt does not count.
            task.attempts = task.attempts.saturating_sub(1);
            task.flags &= !crate::task::FLAG_CANCELLED;
            task.reset_for_retry();
            // Slow there: not sent back while another worker could run it.
            let slow_on = &mut task.extra_mut().slow_on;
            if !slow_on.contains(&worker) {
                slow_on.push(worker);
            }
            if self.shutting_down {
                task.finish(
                    TaskResult::Cancelled,
                    Some("the manager is shutting down".into()),
                );
                return self.complete(task, comm);
            }
            return self.push_ready(task);
        }
        if !cancelled && !task.cancel_requested() && self.categories.retry_at_max(&mut task) {
            // An automatic allocation was too small: once more with the maximum,
            // not counted as an attempt.
            task.attempts = task.attempts.saturating_sub(1);
            task.reset_for_retry();
            if !self.shutting_down {
                return self.push_ready(task);
            }
            task.finish(
                TaskResult::Cancelled,
                Some("the manager is shutting down".into()),
            );
            return self.complete(task, comm);
        }
        match task.result {
            _ if cancelled || task.cancel_requested() => {
                task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
                self.complete(task, comm)
            }
            // The worker failed the task through no fault of the task. One
            // that could not keep an input sent for it (its disk is full)
            // would fail it again: not sent back there while another worker
            // could run it.
            TaskResult::Forsaken => {
                if task.flags & crate::task::FLAG_UNKEPT != 0 {
                    task.flags &= !crate::task::FLAG_UNKEPT;
                    let passed_over = &mut task.extra_mut().slow_on;
                    if !passed_over.contains(&worker) {
                        passed_over.push(worker);
                    }
                }
                self.forsaken(task, TaskResult::MaxRetries, comm)
            }
            _ => self.complete(task, comm),
        }
    }

    /// A worker gave the task back unfinished through no fault of its own. With
    /// a `max_forsaken` of its own, it runs again until it has been forsaken more
    /// than that many times, then comes back `Forsaken`, whatever its retries (as
    /// TaskVine does); without, its retries bound it and `exhausted` says how it
    /// ends.
    fn forsaken(&mut self, mut task: Box<Task>, exhausted: TaskResult, comm: &mut impl Comm) {
        let limit = task.extra.as_ref().and_then(|e| e.max_forsaken);
        let Some(limit) = limit else {
            return self.retry_or_complete(task, exhausted, comm);
        };
        if self.shutting_down {
            return self.retry_or_complete(task, exhausted, comm);
        }
        let e = task.extra_mut();
        e.forsaken = e.forsaken.saturating_add(1);
        let forsaken = e.forsaken;
        if forsaken > limit {
            let why = task
                .reason()
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            let reason = format!("forsaken {forsaken} times; last: {why}");
            task.finish(TaskResult::Forsaken, Some(reason));
            return self.complete(task, comm);
        }
        self.stats.tasks_retried += 1;
        task.reset_for_retry();
        self.push_ready(task);
    }

    fn retry_or_complete(
        &mut self,
        mut task: Box<Task>,
        exhausted: TaskResult,
        comm: &mut impl Comm,
    ) {
        if self.shutting_down {
            task.finish(
                TaskResult::Cancelled,
                Some("the manager is shutting down".into()),
            );
            return self.complete(task, comm);
        }
        if task.attempts <= task.max_retries {
            self.stats.tasks_retried += 1;
            task.reset_for_retry();
            return self.push_ready(task);
        }
        let why = task
            .reason()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reason = format!("failed on all {} attempts; last: {why}", task.attempts);
        task.finish(exhausted, Some(reason));
        self.complete(task, comm);
    }

    fn complete(&mut self, mut task: Box<Task>, comm: &mut impl Comm) {
        if self.temps.returned(task.id) {
            // Tasks that wait for its temps run now, or find them missing.
            self.retry_parked = true;
        }
        self.stats.tasks_done += 1;
        if task.flags & crate::task::FLAG_INTERNAL != 0 {
            self.stats.tasks_done_internal += 1;
        }
        self.categories.completed(&task);
        // As TaskVine counts them: by result alone (a command that exited
        // non-zero ran successfully).
        if task.result != TaskResult::Success {
            self.stats.tasks_failed += 1;
        }
        if task.result == TaskResult::Cancelled {
            self.stats.tasks_cancelled += 1;
        }
        let execute = u64::try_from(task.times.execute).unwrap_or(0);
        self.stats.time_execute = self.stats.time_execute.saturating_add(execute);
        if task.result == TaskResult::Success {
            self.stats.time_execute_good = self.stats.time_execute_good.saturating_add(execute);
            self.stats.tasks_successful += 1;
        }
        if task.result == TaskResult::ResourceExhaustion {
            self.stats.tasks_exhausted += 1;
            self.stats.time_execute_exhaustion =
                self.stats.time_execute_exhaustion.saturating_add(execute);
        }
        if task.times.done == 0 {
            task.times.done = crate::task::now_us();
        }
        if let Some(dir) = task.monitor_output() {
            if let Err(e) = super::summary::write(dir, &task) {
                self.journal.other(super::journal::Other::Debug(format!(
                    "the summary of task {} could not be written in {}: {e}",
                    task.id,
                    dir.display()
                )));
            }
        }
        task.publish_state(State::Retrieved);
        self.journal.done(&task);
        comm.complete(task);
    }

    /// Whether task `id`, on a worker, is being cancelled there.
    pub fn is_cancelling(&self, id: TaskId) -> bool {
        self.cancelling.contains_key(&id)
    }

    /// Cancels task `id`: a waiting one comes back at once, a dispatched one when its
    /// worker returns it, CANCELLED in both cases (even if its worker finished it
    /// meanwhile). True also for one whose cancellation is under way: it too
    /// comes back CANCELLED. False if no waiting or dispatched task has that id:
    /// it has finished already, or never was.
    pub fn cancel(&mut self, id: TaskId, comm: &mut impl Comm) -> bool {
        if let Some(&worker) = self.dispatched.get(&id) {
            // One whose cancellation is under way was cancelled already.
            if self.cancelling.insert(id, ()).is_some() {
                return true;
            }
            comm.cancel_on_worker(worker, id);
            return true;
        }
        let waiting = self.ready.remove(id).or_else(|| self.parked.remove(id));
        let waiting = waiting.or_else(|| {
            let at = self.delayed.iter().position(|t| t.id == id)?;
            Some(self.delayed.swap_remove(at))
        });
        match waiting {
            Some(mut task) => {
                task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
                self.complete(task, comm);
                true
            }
            None => false,
        }
    }

    /// Cancels every waiting and dispatched task; returns how many.
    pub fn cancel_all(&mut self, comm: &mut impl Comm) -> usize {
        let ready = self.take_all_waiting();
        let n = ready.len();
        // Highest priority first, as they would have run.
        for mut task in ready {
            task.finish(TaskResult::Cancelled, Some("the task was cancelled".into()));
            self.complete(task, comm);
        }
        let mut on_workers: Vec<(TaskId, WorkerId)> = self
            .dispatched
            .iter()
            .filter(|(t, _)| !self.cancelling.contains_key(t))
            .map(|(&t, &w)| (t, w))
            .collect();
        on_workers.sort_unstable();
        let n = n + on_workers.len();
        for (id, worker) in on_workers {
            self.cancelling.insert(id, ());
            comm.cancel_on_worker(worker, id);
        }
        n
    }

    /// Cancels the waiting and dispatched tasks whose tag is `tag` (None: those
    /// with no tag), each as [`Scheduler::cancel`] does: all of them if `all`,
    /// else the one submitted first. Returns how many.
    pub fn cancel_by_tag(&mut self, tag: Option<&CStr>, all: bool, comm: &mut impl Comm) -> usize {
        let mut ids = self.ids_by_tag(tag);
        if !all {
            ids.truncate(1);
        }
        ids.into_iter().filter(|&id| self.cancel(id, comm)).count()
    }

    /// The first submitted of the waiting and dispatched tasks whose tag is
    /// `tag` (None: with no tag) and that are not being cancelled already.
    pub fn first_by_tag(&mut self, tag: Option<&CStr>) -> Option<TaskId> {
        self.ids_by_tag(tag).first().copied()
    }

    /// The waiting and dispatched tasks whose tag is `tag` and that are not
    /// being cancelled already, in the order they were submitted.
    fn ids_by_tag(&mut self, tag: Option<&CStr>) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = Vec::new();
        let mut note = |t: &Task| {
            if t.tag() == tag {
                ids.push(t.id);
            }
            false
        };
        self.ready.take_where(&mut note);
        self.parked.take_where(&mut note);
        for t in &self.delayed {
            note(t);
        }
        for (&id, _) in self.dispatched.iter() {
            // One whose cancellation is under way was cancelled already.
            if self.cancelling.contains_key(&id) {
                continue;
            }
            if self.dispatched_tags.get(&id).map(|t| t.as_c_str()) == tag {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids
    }

    /// Stops taking work: waiting tasks come back cancelled, later submissions too,
    /// running ones are left to finish (the caller bounds that in time). Tasks
    /// a remote worker holds and has not started, as far as the manager knows,
    /// are taken back from it cancelled; the local pool's are its own to cancel
    /// (`LocalPool::cancel_waiting`).
    pub fn begin_shutdown(&mut self, comm: &mut impl Comm) {
        for mut task in self.take_all_waiting() {
            task.finish(
                TaskResult::Cancelled,
                Some("the manager shut down before the task ran".into()),
            );
            self.complete(task, comm);
        }
        for w in self.workers.iter().filter(|w| w.id != 0) {
            for &id in w.model.waiting() {
                if self.cancelling.insert(id, ()).is_none() {
                    comm.cancel_on_worker(w.id, id);
                }
            }
        }
        self.shutting_down = true;
    }

    /// True when task `id` is waiting or on a worker.
    pub fn is_outstanding(&self, id: TaskId) -> bool {
        self.dispatched.contains_key(&id)
            || self.ready.contains(id)
            || self.parked.contains(id)
            || self.delayed.iter().any(|t| t.id == id)
    }

    /// True if `worker` has at least one whole core that no running task holds.
    pub fn has_idle_core(&self, worker: WorkerId) -> bool {
        self.workers.iter().any(|w| {
            w.id == worker && w.model.taken().millicores + 1000 <= w.model.capacity().millicores
        })
    }

    /// True if `worker` holds more tasks waiting for a core than it has cores: it
    /// is busy for a while yet, and may report finished tasks in batches (see
    /// `LocalPool`). Only ever overstates what the worker itself sees, since the
    /// worker has run some of those tasks already.
    pub fn has_deep_queue(&self, worker: WorkerId) -> bool {
        self.workers
            .iter()
            .any(|w| w.id == worker && w.model.waiting_len() > w.slots())
    }

    /// Tasks on workers.
    pub fn dispatched_len(&self) -> usize {
        self.dispatched.len()
    }

    /// Tasks waiting for a worker (parked ones included).
    pub fn ready_len(&self) -> usize {
        self.ready.len() + self.parked.len + self.delayed.len()
    }

    /// The ids of tasks on `worker`.
    pub fn tasks_on(&self, worker: WorkerId) -> Vec<TaskId> {
        self.dispatched
            .iter()
            .filter(|(_, &w)| w == worker)
            .map(|(&t, _)| t)
            .collect()
    }

    /// Sets what tasks the manager does not hold take of `worker` (direct
    /// tasks in the local pool).
    pub fn reserve(&mut self, worker: WorkerId, reserved: Resources) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) {
            self.scratch.clear();
            w.model.set_reserved(reserved, &mut self.scratch);
            self.journal.started(self.scratch.iter().map(|&(_, id)| id));
            self.retry_parked = true;
        }
    }

    /// Tasks given to `worker` and not yet back.
    pub fn assigned_on(&self, worker: WorkerId) -> u64 {
        self.workers
            .iter()
            .find(|w| w.id == worker)
            .map_or(0, |w| w.assigned as u64)
    }

    /// Tasks on `worker` that its model counts as started.
    pub fn started_on(&self, worker: WorkerId) -> u64 {
        self.workers
            .iter()
            .find(|w| w.id == worker)
            .map_or(0, |w| (w.assigned - w.model.waiting_len()) as u64)
    }

    /// The connected workers grouped by their whole resources: each size once,
    /// with how many workers have it, in the order the first of each joined.
    pub fn worker_sizes(&self) -> Vec<(Resources, u64)> {
        let mut sizes: Vec<(Resources, u64)> = Vec::new();
        for w in &self.workers {
            let c = w.model.capacity();
            match sizes.iter_mut().find(|(r, _)| *r == c) {
                Some((_, n)) => *n += 1,
                None => sizes.push((c, 1)),
            }
        }
        sizes
    }

    /// A snapshot of the counters and gauges.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.tasks_waiting = self.ready_len() as u64;
        s.tasks_on_workers = self.dispatched.len() as u64;
        s.workers_connected = self.workers.len() as u64;
        s.total = Resources::default();
        s.committed = Resources::default();
        s.tasks_running = 0;
        s.workers_idle = 0;
        s.workers_busy = 0;
        s.workers_able = 0;
        s.max = Resources::default();
        s.min = Resources::default();
        let largest = self.largest_request;
        for (i, w) in self.workers.iter().enumerate() {
            let c = w.model.capacity();
            s.total = s.total.plus(&c);
            s.committed = s.committed.plus(&w.model.in_use());
            s.tasks_running += (w.assigned - w.model.waiting_len()) as u64;
            if w.assigned == 0 {
                s.workers_idle += 1;
            } else {
                s.workers_busy += 1;
            }
            if largest.is_none_or(|r| r.fits_within(&c)) {
                s.workers_able += 1;
            }
            let first = i == 0;
            s.max.millicores = s.max.millicores.max(c.millicores);
            s.max.memory_mb = s.max.memory_mb.max(c.memory_mb);
            s.max.disk_mb = s.max.disk_mb.max(c.disk_mb);
            s.max.gpus = s.max.gpus.max(c.gpus);
            if first {
                s.min = c;
            } else {
                s.min.millicores = s.min.millicores.min(c.millicores);
                s.min.memory_mb = s.min.memory_mb.min(c.memory_mb);
                s.min.disk_mb = s.min.disk_mb.min(c.disk_mb);
                s.min.gpus = s.min.gpus.min(c.gpus);
            }
        }
        s
    }

    /// The counters the manager thread keeps (workers joined, lost, ...).
    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Slots across all workers: what "hungry" compares the waiting tasks with.
    pub fn total_slots(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| (w.slots() + w.prefetch) as u64)
            .sum()
    }
}

#[cfg(test)]
mod test;
