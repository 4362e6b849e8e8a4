//! The manager's logs, in TaskVine's formats: the transactions log (every task
//! state and worker event), the performance log (a row of `vine_stats` at each
//! change, at most one a second) and the debug log.
//!
//! The hot path only appends small records to a vector: the scheduler fills a
//! [`Journal`] as tasks change state, and the manager thread hands the whole
//! vector to the [`Sink`] once per round (one lock, no syscall). A writer thread
//! takes what has gathered, formats it and writes it with one `write` per file and
//! batch. Other threads (links to remote workers, the caller's `vine_log_*`) push
//! their rare records to the sink directly. The sink flushes everything when the
//! manager is deleted, when the journal is dropped by a panic, and at `exit`.
//!
//! Memory is bounded: past [`HURRY_AT`] records not yet written, the writer
//! leaves its idle priority until it has caught up; past [`MAX_PENDING`], the
//! manager thread waits for it rather than grow without end or drop records.

mod clock;
pub(crate) mod debug;
mod format;
pub(crate) mod graph;
pub(crate) mod logfile;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::resources::Resources;
use crate::task::{Task, TaskId, TaskResult};

pub(crate) use clock::now_us;
pub(crate) use writer::{flush_all, Perf, Target, PERF_COLUMNS};

use super::scheduler::WorkerId;

/// Records gathered and not yet written, past which producers wait.
const MAX_PENDING: usize = 1 << 18;

/// Records gathered and not yet written, past which the writer runs at normal
/// priority (it runs at idle priority otherwise, so it takes no core from a
/// task; but then, with every core busy, it hardly runs at all, and what it
/// has not written would pile up) until it has caught up.
const HURRY_AT: usize = 1 << 16;

/// Why a worker left, as the transactions log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Its connection ended by itself (it failed, was killed, or left when
    /// idle: the manager cannot tell which).
    Unknown,
    /// Disconnected for being slow, or its host blocked.
    FastAbort,
    /// Told to exit.
    Explicit,
}

impl Departure {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Departure::Unknown => "UNKNOWN",
            Departure::FastAbort => "FAST_ABORT",
            Departure::Explicit => "EXPLICIT",
        }
    }
}

/// The values of a performance log row (all columns but the timestamp).
pub(crate) fn perf_values(
    s: &super::Stats,
    bytes_sent: u64,
    bytes_received: u64,
    times: &crate::manager::bandwidth::Times,
    with_results: usize,
) -> Vec<i64> {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let cores = |r: &Resources| i(r.millicores / crate::resources::MILLI);
    let tasks_with_results = i(with_results as u64);
    let mut row = vec![
        i(s.workers_connected),
        0,
        i(s.workers_idle),
        i(s.workers_busy),
        i(s.workers_able),
        i(s.workers_joined),
        i(s.workers_removed),
        i(s.workers_released),
        0,
        i(s.workers_blocked),
        i(s.workers_slow),
        i(s.workers_lost),
        i(s.tasks_waiting),
        i(s.tasks_on_workers),
        i(s.tasks_running),
        tasks_with_results,
        i(s.tasks_submitted),
        i(s.tasks_dispatched),
        i(s.tasks_done),
        i(s.tasks_failed),
        i(s.tasks_successful),
        i(s.tasks_cancelled),
        i(s.tasks_exhausted),
        i(s.tasks_recovery),
    ];
    row.extend([
        i(times.send_us),
        i(times.receive_us),
        i(times.send_good_us),
        i(times.receive_good_us),
    ]);
    // The manager's other times: not measured.
    row.extend([0; 5]);
    let bandwidth = crate::manager::bandwidth::mb_per_second(
        bytes_sent.saturating_add(bytes_received),
        times.send_us.saturating_add(times.receive_us),
    );
    row.extend([
        i(s.time_execute),
        i(s.time_execute_good),
        i(s.time_execute_exhaustion),
        i(bytes_sent),
        i(bytes_received),
        bandwidth.round() as i64,
    ]);
    // Capacity estimates: not made.
    row.extend([0; 6]);
    for r in [&s.total, &s.committed, &s.max, &s.min] {
        row.extend([cores(r), i(r.memory_mb), i(r.disk_mb)]);
    }
    row.push(0);
    debug_assert_eq!(row.len() + 1, PERF_COLUMNS.len());
    row
}

/// One record, with the time it happened (microseconds since the epoch).
pub(crate) struct Rec {
    pub(crate) at: i64,
    pub(crate) what: What,
}

/// What happened. The variants a task goes through are kept small; the rare
/// ones are boxed.
pub(crate) enum What {
    /// A task waits for a worker: its attempt (from 1) and its shape (category
    /// and request, see [`Shapes`]); `at_max` if it runs with its category's
    /// maximum after an automatic allocation was exhausted (TaskVine's
    /// `MAX_RESOURCES`).
    Ready {
        task: TaskId,
        attempt: u32,
        shape: u32,
        at_max: bool,
    },
    /// A task was given to a worker.
    Running {
        task: TaskId,
        worker: WorkerId,
        shape: u32,
        at_max: bool,
    },
    /// A task came back from its worker: the attempt's result, exit code and
    /// worker-side start and end; with `done`, also handed to the caller with
    /// that result (the common case, one record for three lines).
    Retrieved(Retrieved),
    /// The same, for an attempt that was measured (with monitoring): what it
    /// measured and what it was given. Boxed: most records carry none.
    RetrievedMeasured(Box<(Retrieved, crate::resources::Measured, Resources)>),
    /// A task was handed to the caller with its final result.
    Done {
        task: TaskId,
        result: TaskResult,
        exit: i32,
    },
    /// A shape seen for the first time.
    Shape(Box<(u32, Arc<[u8]>, Resources)>),
    /// Everything else, formatted when written.
    Other(Box<Other>),
}

/// See [`What::Retrieved`].
pub(crate) struct Retrieved {
    pub(crate) task: TaskId,
    pub(crate) started: i64,
    pub(crate) ended: i64,
    pub(crate) worker: WorkerId,
    pub(crate) exit: i32,
    pub(crate) result: TaskResult,
    pub(crate) done: bool,
}

/// True if `task` runs with its category's maximum after an automatic
/// allocation was exhausted.
fn at_max(task: &Task) -> bool {
    task.extra
        .as_ref()
        .is_some_and(|e| e.sizing == crate::resources::Sizing::Max)
}

/// The rare records.
pub(crate) enum Other {
    /// A worker connected from `addr`.
    WorkerConnect { worker: WorkerId, addr: String },
    /// A worker's capacity.
    WorkerResources {
        worker: WorkerId,
        resources: Resources,
    },
    /// A worker left.
    WorkerGone { worker: WorkerId, why: Departure },
    /// A file went to (`input`) or came from a worker: name, bytes, microseconds
    /// it took, when it started.
    Transfer {
        worker: WorkerId,
        input: bool,
        name: String,
        bytes: u64,
        took_us: i64,
        start_us: i64,
    },
    /// A worker has a file in its cache.
    CacheUpdate {
        worker: WorkerId,
        name: String,
        bytes: u64,
        took_us: i64,
        start_us: i64,
    },
    /// A line of the program's own.
    App(String),
    /// A row of the performance log.
    Perf(Perf),
    /// A line for the debug log.
    Debug(String),
    /// The manager's state, for `status.json` in the run directory.
    Status(String),
    /// Lines of the task graph log.
    Graph(String),
    /// The program exits without ending the manager: the task graph log gets
    /// its closing brace now.
    GraphEnd,
}

/// The shapes (category, request) tasks have had, so a task's record names one
/// by number. The last one is checked first: most runs have few shapes.
#[derive(Default)]
struct Shapes {
    last: Option<(usize, Resources, u32)>,
    by_key: HashMap<(Arc<[u8]>, Resources), u32>,
    names: Vec<Arc<[u8]>>,
}

/// The records the scheduler gathers during one round of the manager thread.
#[derive(Default)]
pub(crate) struct Journal {
    sink: Option<Arc<Sink>>,
    now: i64,
    recs: Vec<Rec>,
    shapes: Shapes,
    /// Tasks given to a worker that holds them ahead, not started yet as its
    /// model says: their RUNNING record (worker, shape, at the maximum) waits
    /// for the start, so that the tasks RUNNING on a worker fit it.
    held: crate::idmap::IdMap<(WorkerId, u32, bool)>,
}

impl Journal {
    /// Records go to `sink` from now on.
    pub(crate) fn attach(&mut self, sink: Arc<Sink>) {
        self.sink = Some(sink);
    }

    /// Whether the transactions log is being written.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.sink
            .as_ref()
            .is_some_and(|s| s.txn_on.load(Ordering::Relaxed))
    }

    /// The time records of this round carry.
    pub(crate) fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    fn shape(&mut self, task: &Task) -> u32 {
        let category = task.category();
        let bytes = category.to_bytes();
        let ptr = bytes.as_ptr() as usize;
        if let Some((p, r, n)) = self.shapes.last {
            if p == ptr && r == task.request && *self.shapes.names[n as usize] == *bytes {
                return n;
            }
        }
        let name: Arc<[u8]> = bytes.into();
        let n = match self.shapes.by_key.get(&(name.clone(), task.request)) {
            Some(&n) => n,
            None => {
                let n = self.shapes.names.len() as u32;
                self.shapes.names.push(name.clone());
                self.shapes.by_key.insert((name.clone(), task.request), n);
                self.recs.push(Rec {
                    at: self.now,
                    what: What::Shape(Box::new((n, name, task.request))),
                });
                n
            }
        };
        self.shapes.last = Some((ptr, task.request, n));
        n
    }

    /// `task` waits for a worker.
    #[inline]
    pub(crate) fn ready(&mut self, task: &Task) {
        self.forget_held(task.id);
        if !self.on() || task.flags & crate::task::FLAG_INTERNAL != 0 {
            return;
        }
        let shape = self.shape(task);
        self.recs.push(Rec {
            at: self.now,
            what: What::Ready {
                task: task.id,
                // The run at the maximum does not count against the task's
                // retries, but it is an attempt of its own in the log.
                attempt: (task.attempts + 1).saturating_add(u32::from(at_max(task))),
                shape,
                at_max: at_max(task),
            },
        });
    }

    /// `task` was given to `worker`, which `started` it (as its model says)
    /// or holds it ahead: then it is RUNNING once [`Journal::started`] says so.
    #[inline]
    pub(crate) fn running(&mut self, task: &Task, worker: WorkerId, started: bool) {
        if !self.on() || task.flags & crate::task::FLAG_INTERNAL != 0 {
            return;
        }
        let shape = self.shape(task);
        if started {
            self.push_running(task.id, (worker, shape, at_max(task)));
        } else {
            self.held.insert(task.id, (worker, shape, at_max(task)));
        }
    }

    fn push_running(&mut self, task: TaskId, (worker, shape, at_max): (WorkerId, u32, bool)) {
        self.recs.push(Rec {
            at: self.now,
            what: What::Running {
                task,
                worker,
                shape,
                at_max,
            },
        });
    }

    /// Tasks a worker held ahead started (as its model says).
    pub(crate) fn started(&mut self, tasks: impl Iterator<Item = TaskId>) {
        if self.held.is_empty() {
            return;
        }
        for task in tasks {
            if let Some(h) = self.held.remove(&task) {
                self.push_running(task, h);
            }
        }
    }

    /// `task` is back or given up before it started: it was never RUNNING.
    fn forget_held(&mut self, task: TaskId) {
        if !self.held.is_empty() {
            self.held.remove(&task);
        }
    }

    /// `task` came back from `worker`.
    #[inline]
    pub(crate) fn retrieved(&mut self, task: &Task, worker: WorkerId) {
        if let Some(h) = (!self.held.is_empty())
            .then(|| self.held.remove(&task.id))
            .flatten()
        {
            // Started before its worker's model knew: it ran all the same.
            if task.was_started() && self.on() {
                self.push_running(task.id, h);
            }
        }
        if !self.on() || task.flags & crate::task::FLAG_INTERNAL != 0 {
            return;
        }
        let r = Retrieved {
            task: task.id,
            worker,
            result: task.result,
            exit: task.exit_code,
            started: task.times.started,
            ended: task.times.done,
            done: false,
        };
        let what = match task.extra.as_ref().and_then(|e| e.measured) {
            Some(m) => What::RetrievedMeasured(Box::new((r, m, task.request))),
            None => What::Retrieved(r),
        };
        self.recs.push(Rec { at: self.now, what });
    }

    /// `task` is handed to the caller.
    #[inline]
    pub(crate) fn done(&mut self, task: &Task) {
        self.forget_held(task.id);
        if !self.on() || task.flags & crate::task::FLAG_INTERNAL != 0 {
            return;
        }
        // Handed over as it came back: the same record says so.
        let last = self.recs.last_mut().and_then(|r| match &mut r.what {
            What::Retrieved(r) => Some(r),
            What::RetrievedMeasured(b) => Some(&mut b.0),
            _ => None,
        });
        if let Some(r) = last {
            if r.task == task.id && r.result == task.result && r.exit == task.exit_code && !r.done {
                r.done = true;
                return;
            }
        }
        self.recs.push(Rec {
            at: self.now,
            what: What::Done {
                task: task.id,
                result: task.result,
                exit: task.exit_code,
            },
        });
    }

    /// A rare record (worker events, performance rows).
    pub(crate) fn other(&mut self, other: Other) {
        if self.sink.is_some() {
            self.recs.push(Rec {
                at: self.now,
                what: What::Other(Box::new(other)),
            });
        }
    }

    /// Hands this round's records to the writer.
    pub(crate) fn flush(&mut self) {
        if self.recs.is_empty() {
            return;
        }
        match &self.sink {
            Some(sink) => sink.append(&mut self.recs),
            None => self.recs.clear(),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Also when the manager thread unwinds: what it saw is written.
        self.flush();
    }
}

/// Where records gather for the writer thread, shared by every thread that logs.
pub(crate) struct Sink {
    pending: Mutex<Pending>,
    /// The writer waits for records.
    wake: Condvar,
    /// Producers wait for room.
    room: Condvar,
    /// The transactions log is open (checked on every record).
    pub(crate) txn_on: AtomicBool,
    /// The performance log is open.
    pub(crate) perf_on: AtomicBool,
    /// The task graph log is open.
    pub(crate) graph_on: AtomicBool,
    /// A performance log was just opened: its first row is due at once.
    pub(crate) perf_fresh: AtomicBool,
    /// The writer thread's id, once it runs (0 before).
    pub(crate) writer_tid: std::sync::atomic::AtomicI32,
    /// The file (device, inode) each open log writes.
    places: Mutex<Vec<(writer::Target, (u64, u64))>>,
    /// The run directory, where `vine-logs/status.json` is written.
    run_dir: Mutex<Option<std::path::PathBuf>>,
    /// When the manager started: the time of the log's START record, so that
    /// it comes before every other.
    started: i64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Pending {
    recs: Vec<Rec>,
    /// Files opened by callers, for the writer to take, each with the number
    /// of records in `recs` when it was opened: those go to the file it
    /// replaces.
    opened: Vec<(writer::Target, logfile::LogFile, usize)>,
    /// The writer is asleep and must be woken for new records.
    idle: bool,
    /// Records handed over and not yet written, counted by `flushed`.
    handed: u64,
    /// Records written (and flushed to the kernel).
    flushed: u64,
    stop: bool,
    /// The writer runs at normal priority until it has caught up (see
    /// [`HURRY_AT`]).
    hurried: bool,
}

impl Sink {
    /// A sink with its writer thread, writing nothing until a log is opened.
    pub(crate) fn start() -> Result<Arc<Sink>> {
        let sink = Arc::new(Sink {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            room: Condvar::new(),
            txn_on: AtomicBool::new(false),
            perf_on: AtomicBool::new(false),
            graph_on: AtomicBool::new(false),
            perf_fresh: AtomicBool::new(false),
            started: now_us(),
            run_dir: Mutex::new(None),
            writer_tid: std::sync::atomic::AtomicI32::new(0),
            places: Mutex::new(Vec::new()),
            thread: Mutex::new(None),
        });
        let s = sink.clone();
        let started = sink.started;
        let t = std::thread::Builder::new()
            .name("vine-log".into())
            .spawn(move || writer::run(&s, started))
            .map_err(|e| Error::io("cannot start the log writer thread", e))?;
        *sink.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
        writer::register(&sink);
        Ok(sink)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `recs` (leaving it empty) for the writer.
    pub(crate) fn append(&self, recs: &mut Vec<Rec>) {
        let mut p = self.lock();
        while p.recs.len() >= MAX_PENDING && !p.stop {
            if p.idle {
                p.idle = false;
                self.wake.notify_one();
            }
            p = self.room.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.handed += recs.len() as u64;
        if p.recs.is_empty() {
            std::mem::swap(&mut p.recs, recs);
        } else {
            p.recs.append(recs);
        }
        if p.idle {
            p.idle = false;
            self.wake.notify_one();
        }
        if p.recs.len() >= HURRY_AT && !p.hurried {
            p.hurried = true;
            drop(p);
            self.hurry();
        }
    }

    /// One record from any thread.
    pub(crate) fn push(&self, what: Other) {
        let mut one = vec![Rec {
            at: now_us(),
            what: What::Other(Box::new(what)),
        }];
        self.append(&mut one);
    }

    /// Opens `path` for `target` (truncated), writes its header at once, and has
    /// the writer append to it from now on.
    pub(crate) fn open(&self, target: writer::Target, path: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        // One file, two logs: each would truncate and interleave the other.
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(m) = std::fs::metadata(path) {
            if let Some((other, _)) = places
                .iter()
                .find(|(t, at)| *t != target && *at == (m.dev(), m.ino()))
            {
                return Err(Error::invalid(format!(
                    "{} is the {} log already",
                    path.display(),
                    other.name()
                )));
            }
            let at = (m.dev(), m.ino());
            if !places.contains(&(target, at)) && in_use().contains(&at) {
                return Err(Error::invalid(format!(
                    "{} is a log of another manager of this process already",
                    path.display()
                )));
            }
            if debug::global_at() == Some((m.dev(), m.ino())) {
                return Err(Error::invalid(format!(
                    "{} is the process's debug log already (vine_enable_debug_log)",
                    path.display()
                )));
            }
        }
        let (mut f, at) = logfile::LogFile::create(path)?;
        {
            let mut all = in_use();
            if let Some(&(_, old)) = places.iter().find(|(t, _)| *t == target) {
                forget(&mut all, old);
            }
            all.push(at);
        }
        places.retain(|(t, _)| *t != target);
        places.push((target, at));
        drop(places);
        writer::write_header(target, &mut f).map_err(|e| Error::io(path.display(), e))?;
        let mut p = self.lock();
        let before = p.recs.len();
        p.opened.push((target, f, before));
        match target {
            writer::Target::Txn => self.txn_on.store(true, Ordering::Relaxed),
            writer::Target::Perf => {
                self.perf_fresh.store(true, Ordering::Relaxed);
                self.perf_on.store(true, Ordering::Relaxed);
            }
            writer::Target::Debug => {}
            writer::Target::Graph => self.graph_on.store(true, Ordering::Relaxed),
        }
        if p.idle {
            p.idle = false;
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The run directory, if the manager has one.
    pub(crate) fn status_dir(&self) -> Option<std::path::PathBuf> {
        self.run_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the run directory.
    pub(crate) fn set_run_dir(&self, dir: &Path) {
        *self.run_dir.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_owned());
    }

    /// The writer is needed now: out of the idle class.
    fn hurry(&self) {
        let tid = self.writer_tid.load(Ordering::Acquire);
        if tid != 0 {
            writer::set_idle(tid, false);
        }
    }

    /// Waits until everything handed over so far is written to the kernel.
    pub(crate) fn sync(&self) {
        self.hurry();
        let mut p = self.lock();
        let target = p.handed;
        while p.flushed < target && !p.stop {
            self.wake.notify_one();
            p = self.room.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Writes what is left, closes the files and ends the writer thread.
    pub(crate) fn stop(&self) {
        self.hurry();
        {
            let mut p = self.lock();
            p.stop = true;
            self.wake.notify_all();
            self.room.notify_all();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        // Its files are closed: another log of the process may have them.
        // (The table is locked after `places`, as `open` does.)
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = in_use();
        for (_, at) in places.drain(..) {
            forget(&mut all, at);
        }
    }
}

/// The files (device, inode) every manager of the process writes a log to,
/// once per log: the process's debug log refuses them (`debug::enable_global`).
static IN_USE: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

fn in_use() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    IN_USE.lock().unwrap_or_else(|p| p.into_inner())
}

/// One log no longer writes the file at `at`.
fn forget(all: &mut Vec<(u64, u64)>, at: (u64, u64)) {
    if let Some(i) = all.iter().position(|x| *x == at) {
        all.swap_remove(i);
    }
}

/// True if some manager of the process writes a log to the file at `at`.
pub(crate) fn is_manager_log(at: (u64, u64)) -> bool {
    in_use().contains(&at)
}

/// Stops a sink when dropped, unless disarmed: a manager that fails to start
/// leaves no writer thread behind.
pub(crate) struct StopUnlessKept(pub(crate) Option<Arc<Sink>>);

impl StopUnlessKept {
    /// The sink lives on (its manager stops it).
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for StopUnlessKept {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.stop();
        }
    }
}

/// A worker's name in the logs: `worker-local` for the local pool,
/// `worker-N` for the others.
pub(crate) fn worker_label(id: u32) -> String {
    let mut b = Vec::new();
    writer::worker_name(&mut b, id);
    String::from_utf8_lossy(&b).into_owned()
}

/// A category name or word as the log can hold it: spaces and control
/// characters would split or end a record, so they become `_`.
pub(crate) fn word(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.is_empty() {
        return "_".into();
    }
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Free text on one line: line breaks and control characters become spaces.
pub(crate) fn line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod test {
    #[test]
    fn a_record_stays_small() {
        // Millions of them may wait for the writer.
        assert!(std::mem::size_of::<super::Rec>() <= 48);
    }
}
