//! The manager thread: the one owner of scheduling state. It waits on its channel
//! (submissions, finished tasks, requests from callers) with a deadline for its
//! timers, applies each message to the [`Scheduler`], and carries out what the
//! scheduler decided: tasks to workers, finished tasks to the completion queue.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbox::{Receiver, RecvTimeoutError};

use std::collections::HashMap;

use super::remote::{apply_report, RemoteLink, RemoteSettings};
use super::scheduler::{Comm, Scheduler, WorkerId};
use super::settings::Setting;
use super::{Message, Shared};

/// The most factory job tokens kept for factories that have not looked yet.
const MAX_FACTORY_JOINED: usize = 100_000;
use crate::error::{Error, ErrorKind, Result};
use crate::files::FileKind;
use crate::resources::Resources;
use crate::task::{Task, TaskId};
use crate::worker::local::LocalPool;
use crate::worker::WorkerLink as _;

/// The id of the local pool.
pub(crate) const LOCAL_WORKER: WorkerId = 0;

/// Messages handled per wake-up before scheduling and flushing.
const BATCH: usize = 4096;

/// While the local pool has a deep queue it may keep finished tasks for a while
/// (see `LocalPool`); the manager collects them at least this often. Each
/// collection wakes the manager and then the waiter, each taking a core from a
/// running task; the pool's prefetch (`PREFETCH_HORIZON_US`, four times this)
/// keeps it fed in between.
const COLLECT_EVERY: Duration = Duration::from_millis(5);

/// Seconds a THREAD function may still take after shutdown killed what it could.
const STUCK_GRACE: Duration = Duration::from_secs(2);

/// True if `task`, back from `worker` with an input missing, reads a temp that
/// worker does not hold and that is being made again: its holder was lost
/// while the task was on its way.
fn reads_temp_lost_meanwhile(temps: &super::temps::Temps, task: &Task, worker: WorkerId) -> bool {
    task.extra.as_ref().is_some_and(|e| {
        e.inputs.iter().any(|m| {
            matches!(m.file.kind(), crate::files::FileKind::Temp)
                && !temps.held_by(m.file.id(), worker)
                && temps.place(&m.file) == super::temps::TempPlace::BeingMade
        })
    })
}

/// The instant `d` from now, or as late as an `Instant` goes.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 30)))
        .unwrap_or(now)
}

/// What the scheduler decided in one round, carried out after it.
#[derive(Default)]
struct Outbox {
    to_local: Vec<Box<Task>>,
    to_remote: Vec<(WorkerId, Box<Task>)>,
    finished: Vec<Box<Task>>,
    /// Tasks to stop at their workers: true for one stopped at its end
    /// time, false for a cancel.
    stops: Vec<(WorkerId, TaskId, bool)>,
    /// Tasks the manager ran itself (to make lost temps again): never returned.
    internal: Vec<Box<Task>>,
}

impl Comm for Outbox {
    fn dispatch(&mut self, worker: WorkerId, task: Box<Task>) {
        if worker == LOCAL_WORKER {
            self.to_local.push(task);
        } else {
            self.to_remote.push((worker, task));
        }
    }

    fn complete(&mut self, task: Box<Task>) {
        if task.flags & crate::task::FLAG_INTERNAL != 0 {
            self.internal.push(task);
        } else {
            self.finished.push(task);
        }
    }

    fn cancel_on_worker(&mut self, worker: WorkerId, id: TaskId) {
        self.stops.push((worker, id, false));
    }

    fn end_on_worker(&mut self, worker: WorkerId, id: TaskId) {
        self.stops.push((worker, id, true));
    }
}

/// How a remote worker leaves (see `ManagerLoop::drop_worker`).
enum Departure {
    /// Told to exit.
    Released,
    /// Its connection cut; it may try to join again.
    Disconnected,
    /// Its connection ended by itself.
    Lost,
    /// It said it leaves (its wall time passed), then closed.
    Left,
    /// Its session was closed when the password was set or changed.
    Revoked,
}

/// A temp on its way back from its worker, and the callers waiting for it.
struct PendingFetch {
    file: Arc<crate::files::File>,
    /// The worker asked for it.
    worker: WorkerId,
    replies: Vec<super::reply::Reply<Result<()>>>,
}

struct Shutdown {
    reply: super::reply::Reply<Result<()>>,
    deadline: Instant,
    killed: bool,
}

/// The listening socket, the thread accepting on it, and its address. The
/// socket is shared so that it stays open until that thread is joined: it is
/// shut down to wake the thread (see `remote::stop_listener`).
pub(super) struct Listening {
    pub(super) thread: std::thread::JoinHandle<()>,
    pub(super) socket: std::sync::Arc<std::net::TcpListener>,
    pub(super) addr: std::net::SocketAddr,
}

pub(super) struct ManagerLoop {
    /// First, so it is dropped first (see `FailNotice`).
    _fail_notice: super::FailNotice,
    pub(super) sched: Scheduler,
    /// What direct tasks held of the local pool when last looked at.
    local_reserved: Resources,
    pub(super) rx: Receiver<Message>,
    pub(super) shared: Arc<Shared>,
    pub(super) local: LocalPool,
    pub(super) local_capacity: Resources,
    pub(super) prefetch: Option<usize>,
    /// Set by `resource-submit-multiplier`: each worker's prefetch follows its cores.
    submit_multiplier: Option<f64>,
    pub(super) shutdown_timeout: Duration,
    outbox: Outbox,
    shutdown: Option<Shutdown>,
    /// Reused buffer for tasks taken from the local pool.
    returned: Vec<Box<Task>>,
    /// Submitted tasks taken from `Shared::submissions`, not yet handled.
    incoming: std::collections::VecDeque<Box<Task>>,
    /// `take_submissions` stopped at its limit with tasks left.
    more_submissions: bool,
    /// Connected remote workers.
    remote: HashMap<WorkerId, Box<RemoteLink>>,
    /// Factory job tokens of workers that joined, until their factory looks.
    factory_joined: Vec<String>,
    pub(super) remote_settings: Arc<RemoteSettings>,
    /// The accept loop, and the address that wakes it.
    pub(super) listener: Option<Listening>,
    /// Where temps produced by remote workers are kept.
    pub(super) temp_root: std::path::PathBuf,
    /// Callers waiting for a temp to come from its worker, by file id.
    fetches: HashMap<u64, PendingFetch>,
    /// Remote workers draining: they take no new task and are told to exit once
    /// they hold none.
    draining: std::collections::HashSet<WorkerId>,
    /// Slow workers (`vine_enable_disconnect_slow_workers`).
    slow: SlowWorkers,
    /// Where the logs' records go.
    pub(super) sink: Arc<super::journal::Sink>,
    /// The last row of the performance log, and when it was written.
    perf_last: Vec<i64>,
    perf_last_at: i64,
    /// A performance row was held back by the one-a-second bound: when to
    /// look again (see `perf_row`).
    perf_due: Option<i64>,
    /// When the state was last written to the run directory.
    status_last_at: i64,
    /// The files already in the task graph log.
    graph: super::journal::graph::Graph,
}

/// How often the state is written to the run directory, at most.
const STATUS_EVERY_US: i64 = 5_000_000;

/// What it takes to find slow workers: a task running past `factor` times the
/// average of its category is taken back and runs elsewhere; a worker that twice
/// holds such a task is disconnected and its host blocked for `block_for`.
struct SlowWorkers {
    /// For categories without their own; 0: off.
    factor: f64,
    /// Categories with their own factor (at least 1), or off (0) whatever
    /// the default.
    by_category: HashMap<Arc<[u8]>, f64>,
    block_for: Duration,
    /// Tasks on remote workers: their worker, when they were sent, their category.
    running: HashMap<TaskId, (WorkerId, Instant, Arc<[u8]>)>,
    /// By category: tasks that succeeded on remote workers, and the sum of their
    /// times from dispatch to report.
    times: HashMap<Arc<[u8]>, (u64, Duration)>,
    /// Times each task was taken back for slowness.
    marks: HashMap<TaskId, u32>,
    /// Workers that held a task taken back once already.
    suspects: std::collections::HashSet<WorkerId>,
}

/// Tasks of a category that must succeed before its average counts.
const SLOW_MIN_SAMPLES: u64 = 10;

impl SlowWorkers {
    /// Off for every category; a slow worker's host blocked for 900 s once on.
    fn off() -> SlowWorkers {
        SlowWorkers {
            factor: 0.0,
            by_category: HashMap::new(),
            block_for: Duration::from_secs(900),
            running: HashMap::new(),
            times: HashMap::new(),
            marks: HashMap::new(),
            suspects: Default::default(),
        }
    }

    /// True if tasks of any category may be taken back.
    fn on(&self) -> bool {
        self.factor > 0.0 || self.by_category.values().any(|&f| f > 0.0)
    }

    /// The factor for tasks of `category` (0: off).
    fn factor_of(&self, category: &[u8]) -> f64 {
        self.by_category
            .get(category)
            .copied()
            .unwrap_or(self.factor)
    }

    /// Forgets the running tasks of categories that are off now.
    fn forget_off(&mut self) {
        let (factor, by_category) = (self.factor, &self.by_category);
        self.running
            .retain(|_, (_, _, c)| by_category.get(&**c).copied().unwrap_or(factor) > 0.0);
    }

    fn average(&self, category: &[u8]) -> Option<Duration> {
        let &(n, sum) = self.times.get(category)?;
        (n >= SLOW_MIN_SAMPLES).then(|| sum / n as u32)
    }

    /// When task `id`, sent at `sent`, counts as slow, if its category has an
    /// average.
    fn deadline(&self, id: TaskId, sent: Instant, category: &[u8]) -> Option<Instant> {
        let factor = self.factor_of(category);
        if factor == 0.0 {
            return None;
        }
        let avg = self.average(category)?;
        let marks = self.marks.get(&id).copied().unwrap_or(0);
        let allowed = avg.as_secs_f64() * (factor + f64::from(marks));
        sent.checked_add(Duration::try_from_secs_f64(allowed).ok()?)
    }
}

impl ManagerLoop {
    pub(super) fn new(
        sched: Scheduler,
        rx: Receiver<Message>,
        shared: Arc<Shared>,
        local: LocalPool,
        local_capacity: Resources,
        sink: Arc<super::journal::Sink>,
    ) -> Self {
        let mut sched = sched;
        sched.journal.attach(sink.clone());
        sched.stats_mut().time_when_started = u64::try_from(crate::task::now_us()).unwrap_or(0);
        ManagerLoop {
            _fail_notice: super::FailNotice(shared.clone()),
            sched,
            local_reserved: Resources::default(),
            rx,
            shared,
            local,
            local_capacity,
            prefetch: None,
            submit_multiplier: None,
            shutdown_timeout: Duration::from_secs(30),
            outbox: Outbox::default(),
            shutdown: None,
            returned: Vec::new(),
            incoming: Default::default(),
            more_submissions: false,
            remote: HashMap::new(),
            factory_joined: Vec::new(),
            remote_settings: RemoteSettings::new(),
            listener: None,
            temp_root: std::env::temp_dir(),
            fetches: HashMap::new(),
            draining: Default::default(),
            slow: SlowWorkers::off(),
            sink,
            perf_last: Vec::new(),
            perf_last_at: 0,
            perf_due: None,
            status_last_at: 0,
            graph: Default::default(),
        }
    }

    pub(super) fn add_local_worker(&mut self) {
        if self.local_capacity.millicores > 0 {
            self.sched
                .add_worker(LOCAL_WORKER, self.local_capacity, self.prefetch);
            if let Some(m) = self.submit_multiplier {
                self.sched.set_prefetch_multiplier(LOCAL_WORKER, m);
            }
            self.sched
                .set_place(LOCAL_WORKER, self.shared.local_place.clone());
            self.worker_records(LOCAL_WORKER, "local".into(), self.local_capacity);
        }
    }

    /// A worker's CONNECTION and RESOURCES records.
    fn worker_records(&mut self, worker: WorkerId, addr: String, resources: Resources) {
        use super::journal::Other;
        let j = &mut self.sched.journal;
        j.set_now(super::journal::now_us());
        j.other(Other::WorkerConnect { worker, addr });
        j.other(Other::WorkerResources { worker, resources });
        j.other(Other::Debug(format!(
            "{} joined with {}",
            super::journal::worker_label(worker),
            resources.describe()
        )));
    }

    /// A worker's DISCONNECTION record and its debug line.
    fn worker_left_records(&mut self, worker: WorkerId, why: super::journal::Departure) {
        use super::journal::Other;
        let j = &mut self.sched.journal;
        j.set_now(super::journal::now_us());
        j.other(Other::WorkerGone { worker, why });
        j.other(Other::Debug(format!(
            "{} left ({})",
            super::journal::worker_label(worker),
            why.name()
        )));
    }

    /// The manager's state as JSON (see `status`).
    fn status_report(&self) -> String {
        let run_dir = self.sink.status_dir();
        let name = self
            .shared
            .name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let about = super::status::About {
            name: name.as_deref(),
            port: self.listener.as_ref().map(|l| l.addr.port()),
            with_results: self.shared.completions.finished_len(),
            bytes_sent: self.remote_settings.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.remote_settings.bytes_received.load(Ordering::Relaxed),
            run_dir: run_dir.as_deref().and_then(|d| d.to_str()),
        };
        super::status::report(&self.sched, &about)
    }

    /// Every few seconds, while something happens, the state goes to the run
    /// directory (`vine-logs/status.json`) for managers `vine_status` cannot ask.
    fn status_file(&mut self, now: i64) {
        if now - self.status_last_at < STATUS_EVERY_US || self.sink.status_dir().is_none() {
            return;
        }
        self.status_last_at = now;
        let report = self.status_report();
        self.sched
            .journal
            .other(super::journal::Other::Status(report));
    }

    /// A row of the performance log, at most one a second and only when
    /// something changed. A change within the second is written when the
    /// second is over (the manager sleeps no longer than that), not when
    /// something next changes.
    fn perf_row(&mut self, now: i64, force: bool) {
        let fresh = self.sink.perf_fresh.swap(false, Ordering::Relaxed);
        if now - self.perf_last_at < 1_000_000 && !fresh && !force {
            self.perf_due = Some(self.perf_last_at + 1_000_000);
            return;
        }
        self.perf_due = None;
        let s = self.sched.stats();
        let (sent, received) = (
            self.remote_settings.bytes_sent.load(Ordering::Relaxed),
            self.remote_settings.bytes_received.load(Ordering::Relaxed),
        );
        let times = self.remote_settings.transfers.times();
        let row = super::journal::perf_values(
            &s,
            sent,
            received,
            &times,
            self.shared.completions.finished_len(),
        );
        if row == self.perf_last && !fresh {
            return;
        }
        self.perf_last_at = now;
        self.perf_last = row.clone();
        self.sched
            .journal
            .other(super::journal::Other::Perf(super::journal::Perf(row)));
    }

    /// Runs until shutdown completes; returns the final stats. Tasks submitted
    /// but never taken come back cancelled, and later submissions are refused.
    pub(super) fn run(mut self) -> super::Stats {
        let stats = self.serve();
        let mut left: Vec<Box<Task>> = {
            let mut queue = self.shared.submissions();
            queue.closed = true;
            let queued = std::mem::take(&mut queue.tasks);
            self.incoming.drain(..).chain(queued).collect()
        };
        for t in &mut left {
            t.finish(
                crate::task::TaskResult::Cancelled,
                Some("the manager had stopped".into()),
            );
        }
        self.shared.completions.push_all(&mut left);
        stats
    }

    fn serve(&mut self) -> super::Stats {
        loop {
            let spun = if self.more_submissions {
                // Submissions left over from the last round go on without a wait.
                Some(Message::Submitted)
            } else {
                self.spin_for_message()
            };
            let first = match spun {
                Some(msg) => Ok(msg),
                None => self.block_for_message(),
            };
            let logging = self.sched.journal.on();
            if logging {
                self.sched.journal.set_now(super::journal::now_us());
            }
            match first {
                Ok(msg) => {
                    self.handle(msg);
                    for _ in 0..BATCH {
                        match self.rx.try_recv() {
                            Ok(msg) => {
                                // Records carry the time their message was
                                // taken: it may have been sent after a line
                                // the program logged since the round began.
                                if logging {
                                    self.sched.journal.set_now(super::journal::now_us());
                                }
                                self.handle(msg)
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.collect_local();
                    self.check_slow();
                    let past = |s: &Shutdown| Instant::now() >= s.deadline;
                    if self.shutdown.as_ref().is_some_and(past) && self.on_shutdown_deadline() {
                        return self.sched.stats();
                    }
                }
                // Every sender is gone: the manager handle and all pools dropped.
                Err(RecvTimeoutError::Disconnected) => return self.sched.stats(),
            }
            if self.sched.next_timer_us().is_some() || self.sched.needs_clock() {
                self.sched.tick(crate::task::now_us(), &mut self.outbox);
            }
            if logging {
                // Dispatches carry the time they are made.
                self.sched.journal.set_now(super::journal::now_us());
            }
            self.schedule();
            self.flush();
            if !self.draining.is_empty() {
                self.release_drained();
            }
            if self.sink.perf_on.load(Ordering::Relaxed) {
                let now = super::journal::now_us();
                self.sched.journal.set_now(now);
                self.perf_row(now, false);
                self.status_file(now);
            }
            self.sched.journal.flush();
            if self.try_finish_shutdown() {
                return self.sched.stats();
            }
        }
    }

    /// Before sleeping, watches the channel for a short while if a local core is
    /// idle (the pool has room, or one of its threads waits for work, as it does
    /// between tiny tasks): a caller waiting on one task at a time then gets its
    /// next submission and its task's completion handled without two thread
    /// wake-ups, and a caller submitting many is not woken into at every task.
    /// With every core busy it does not spin, so it takes no CPU from running tasks.
    fn spin_for_message(&mut self) -> Option<Message> {
        if !self.sched.has_idle_core(LOCAL_WORKER) && !self.local.has_idle_thread() {
            return None;
        }
        crate::spin::spin_until(|| self.rx.try_recv().ok())
    }

    /// Takes up to `limit` submitted tasks, in order. If it stops at the limit,
    /// the next round goes on without waiting for a message: the one that
    /// announced the tasks still queued may have been consumed already.
    fn take_submissions(&mut self, limit: usize) {
        let mut taken = 0;
        loop {
            if self.incoming.is_empty() {
                let mut queue = self.shared.submissions();
                if queue.tasks.is_empty() {
                    self.more_submissions = false;
                    return;
                }
                std::mem::swap(&mut queue.tasks, &mut self.incoming);
                drop(queue);
                // Their records carry a time after their submissions.
                if self.sched.journal.on() {
                    self.sched.journal.set_now(super::journal::now_us());
                }
            }
            if taken == limit {
                self.more_submissions = true;
                return;
            }
            taken += 1;
            let task = self
                .incoming
                .pop_front()
                .expect("refilled above when empty");
            self.shared
                .processed_submits
                .fetch_add(1, Ordering::Relaxed);
            if task.extra.is_some() {
                self.gather_temps(&task);
            }
            if self.sink.graph_on.load(Ordering::Relaxed) {
                let lines = self.graph.task(&task);
                self.sched
                    .journal
                    .other(super::journal::Other::Graph(lines));
            }
            self.sched.submit(task, &mut self.outbox);
        }
    }

    /// Sleeps until a message comes, or a timer: the shutdown deadline, and
    /// while the local pool may keep finished tasks back, the next collection.
    fn block_for_message(&mut self) -> std::result::Result<Message, RecvTimeoutError> {
        let mut deadline = self.shutdown.as_ref().map(|s| s.deadline);
        let deep = self.sched.has_deep_queue(LOCAL_WORKER);
        if deep {
            self.shared.collects_soon.store(true, Ordering::SeqCst);
        }
        let collect = deep || {
            self.local.owner_sleeps_untimed(true);
            let kept = self.local.has_kept();
            if kept {
                self.local.owner_sleeps_untimed(false);
            }
            kept
        };
        if collect {
            let at = Instant::now() + COLLECT_EVERY;
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
        if let Some(at) = self.next_slow_deadline() {
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
        // A task's start or end time, or a performance row held back.
        if let Some(t) = self
            .sched
            .next_timer_us()
            .into_iter()
            .chain(self.perf_due)
            .min()
        {
            let wait = (t - crate::task::now_us()).max(0) as u64;
            let at = later(Duration::from_micros(wait));
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
        let got = match deadline {
            Some(d) => self.rx.recv_deadline(d),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        self.local.owner_sleeps_untimed(false);
        if deep {
            // Submissions may have been queued meanwhile without a message.
            self.shared.collects_soon.store(false, Ordering::SeqCst);
            self.more_submissions = true;
        }
        got
    }

    fn handle(&mut self, msg: Message) {
        // A caller's request concerns the tasks it submitted before it: those are
        // taken first.
        let from_caller = !matches!(
            msg,
            Message::Submitted
                | Message::WorkerReady { .. }
                | Message::Finished { .. }
                | Message::RemoteDone { .. }
                | Message::RemoteFileData { .. }
                | Message::RemoteWatch { .. }
                | Message::WorkerJoined { .. }
                | Message::WorkerLost { .. }
                | Message::WorkerLeft { .. }
        );
        if from_caller {
            self.take_submissions(usize::MAX);
        }
        match msg {
            Message::Submitted => self.take_submissions(BATCH),
            Message::Finished { worker, task } => {
                self.sched.finished(worker, task, &mut self.outbox)
            }
            Message::WorkerJoined {
                worker,
                resources,
                link,
            } => {
                if self.shutdown.is_some() {
                    link.exit();
                    return;
                }
                if link.is_blocked() {
                    // Blocked while it was joining.
                    link.disconnect();
                    return;
                }
                self.sched.stats_mut().workers_joined += 1;
                // The prefetch set with vine_tune holds for every worker.
                self.sched.add_worker(worker, resources, self.prefetch);
                if let Some(m) = self.submit_multiplier {
                    self.sched.set_prefetch_multiplier(worker, m);
                }
                self.sched.set_functions(worker, link.functions().to_vec());
                self.sched.set_features(worker, link.features().to_vec());
                self.sched.set_end(worker, link.end_us());
                self.sched.set_place(worker, link.place());
                let addr = link.place().addrport.to_string_lossy().into_owned();
                self.worker_records(worker, addr, resources);
                if let Some(job) = link.factory_job() {
                    // For its factory's next look, even if it is gone by then.
                    if self.factory_joined.len() >= MAX_FACTORY_JOINED {
                        self.factory_joined.remove(0);
                    }
                    self.factory_joined.push(job.to_owned());
                }
                self.remote.insert(worker, link);
                self.shared
                    .slots
                    .store(self.sched.total_slots(), Ordering::Relaxed);
            }
            Message::RemoteDone { worker, mut report } => {
                let Some(link) = self.remote.get_mut(&worker) else {
                    return;
                };
                let Some(mut task) = link.take(report.id) else {
                    return;
                };
                if let Some((_, sent, category)) = self.slow.running.remove(&task.id) {
                    if report.result == crate::task::TaskResult::Success as i32 {
                        let e = self.slow.times.entry(category).or_default();
                        e.0 += 1;
                        e.1 += sent.elapsed();
                    }
                }
                let attempt = report.attempt;
                let kept = std::mem::take(&mut report.kept);
                let cancelled = self.sched.is_cancelling(task.id);
                if apply_report(&mut task, *report, &self.temp_root, cancelled) {
                    use crate::task::TaskResult::InputMissing;
                    let unsent = link.why_unsent(&task, attempt);
                    if let Some(why) = unsent.filter(|_| task.result == InputMissing) {
                        // The worker named its placeholder; the manager knows why.
                        task.finish(InputMissing, Some(why));
                    }
                    if task.result == InputMissing
                        && !task.cancel_requested()
                        && reads_temp_lost_meanwhile(&self.sched.temps, &task, worker)
                    {
                        // The worker that held a temp it reads was lost
                        // between its dispatch and its inputs' sending: it
                        // runs again once the temp is made again, and this
                        // attempt, which never had its inputs, does not count.
                        task.attempts = task.attempts.saturating_sub(1);
                        task.finish(
                            crate::task::TaskResult::Forsaken,
                            Some(
                                "a temp it reads was lost with its worker before it was sent"
                                    .into(),
                            ),
                        );
                    }
                    link.made_inputs_kept(&task);
                    self.outputs_renewed(&task, Some(worker));
                    // Temps it made stay at its worker, which can make them again if lost.
                    self.sched.temps.task_done(worker, Some(&kept), &task);
                    self.share_temps_of(worker, &task);
                    self.sched.finished(worker, task, &mut self.outbox);
                } else {
                    link.keep(task);
                }
            }
            Message::PeerFetched {
                worker,
                file_id,
                ok: true,
            } => {
                if self.remote.contains_key(&worker) {
                    self.sched.temps.add_replica(file_id, worker);
                }
            }
            Message::PeerFetched {
                file_id, ok: false, ..
            } => self.bring_temp(file_id),
            Message::RemoteFileData {
                worker,
                file_id,
                data,
            } => {
                // Only the worker asked for the file answers for it.
                if self
                    .fetches
                    .get(&file_id)
                    .is_none_or(|p| p.worker != worker)
                {
                    if let Ok(staged) = data {
                        crate::transfer::remove_all(&staged);
                    }
                    return;
                }
                let pending = self.fetches.remove(&file_id).expect("looked up above");
                self.sched.temps.brought(file_id);
                self.sched.retry_parked();
                let stored = data
                    .and_then(|staged| {
                        super::remote::keep_temp(&pending.file, &staged, &self.temp_root)
                            .inspect_err(|_| {
                                crate::transfer::remove_all(&staged);
                            })
                    })
                    .map_err(|e| Error::new(ErrorKind::Io, format!("cannot fetch the temp: {e}")));
                if stored.is_ok() {
                    // The workers holding it are not sent it again.
                    for w in self.sched.temps.fetched(file_id) {
                        if let Some(link) = self.remote.get(&w) {
                            link.holds_in_cache(file_id);
                        }
                    }
                    // Tasks that read it may now go to any worker.
                    self.sched.retry_parked();
                }
                for reply in pending.replies {
                    let _ = reply.send(stored.as_ref().map(|_| ()).map_err(Clone::clone));
                }
            }
            Message::FetchTemp { file, reply } => match self.sched.temps.worker_of(file.id()) {
                None => {
                    let _ = reply.send(Ok(()));
                }
                Some(w) => match self.remote.get(&w) {
                    Some(link) => {
                        let id = file.id();
                        let pending = self.fetches.entry(id).or_insert_with(|| {
                            link.get_file(id);
                            PendingFetch {
                                file,
                                worker: w,
                                replies: Vec::new(),
                            }
                        });
                        pending.replies.push(reply);
                    }
                    None => {
                        let _ = reply.send(Err(Error::new(
                            ErrorKind::Io,
                            "the worker holding the temp is gone",
                        )));
                    }
                },
            },
            Message::Status { reply } => {
                let _ = reply.send(self.status_report());
            }
            Message::WorkerLost { worker } => {
                if self.remote_settings.take_revoked(worker) {
                    // Dropped for the password set or changed: removed, not
                    // lost; and with it every other worker the password cut
                    // off, so that none is given a task before its own
                    // message comes.
                    let mut revoked = self.remote_settings.take_all_revoked();
                    revoked.push(worker);
                    for w in revoked {
                        self.drop_worker(w, Departure::Revoked);
                    }
                } else if self.remote.contains_key(&worker) {
                    self.sched.stats_mut().workers_lost += 1;
                    self.drop_worker(worker, Departure::Lost);
                }
            }
            Message::WorkerLeft { worker, reason } => {
                if self.remote.contains_key(&worker) {
                    self.sched
                        .journal
                        .other(super::journal::Other::Debug(format!(
                            "{} leaves: {}",
                            super::journal::worker_label(worker),
                            reason
                        )));
                    self.drop_worker(worker, Departure::Left);
                }
            }
            Message::BlockHost {
                host,
                timeout,
                reply,
            } => {
                self.remote_settings.block(&host, timeout);
                self.sched.stats_mut().workers_blocked += 1;
                let on: Vec<WorkerId> = self
                    .remote
                    .iter()
                    .filter(|(_, l)| l.is_on(&host))
                    .map(|(&w, _)| w)
                    .collect();
                for &w in &on {
                    self.drop_worker(w, Departure::Disconnected);
                }
                let _ = reply.send(on.len());
            }
            Message::Drain { host, on, reply } => {
                let mut n = 0;
                for (&w, l) in &self.remote {
                    if l.is_on(&host) {
                        self.sched.set_draining(w, on);
                        if on {
                            self.draining.insert(w);
                        } else {
                            self.draining.remove(&w);
                        }
                        n += 1;
                    }
                }
                let _ = reply.send(n);
            }
            Message::FactoryView { ask, reply } => {
                let mut view = super::factory::View::default();
                self.sched.visit_waiting(|t, n| {
                    view.count(&ask, t, n);
                    if view.enough(&ask) {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                });
                view.count_left(&ask, self.shared.tasks_left.load(Ordering::Relaxed));
                self.factory_joined.retain(|j| {
                    let mine = ask.owns(j);
                    if mine {
                        view.joined.push(j.clone());
                    }
                    !mine
                });
                for (&w, link) in &self.remote {
                    if let Some(job) = link.factory_job().filter(|j| ask.owns(j)) {
                        let held = self.sched.held_by(w).unwrap_or(0);
                        view.workers.push((w, job.to_owned(), held));
                    }
                }
                let _ = reply.send(view);
            }
            Message::ReleaseWorker { worker, reply } => {
                let idle =
                    self.remote.contains_key(&worker) && self.sched.held_by(worker) == Some(0);
                if idle {
                    self.drop_worker(worker, Departure::Released);
                }
                let _ = reply.send(idle);
            }
            Message::ShutdownWorkers { n, reply } => {
                let mut idle: Vec<WorkerId> = self
                    .remote
                    .keys()
                    .copied()
                    .filter(|&w| self.sched.held_by(w) == Some(0))
                    .collect();
                idle.sort_unstable();
                idle.truncate(n.unwrap_or(usize::MAX));
                for &w in &idle {
                    self.drop_worker(w, Departure::Released);
                }
                let _ = reply.send(idle.len());
            }
            Message::Prune { file, reply } => {
                let mut n = 0;
                for link in self.remote.values() {
                    if link.forget_file(&file, &self.sched.temps) {
                        n += 1;
                    }
                }
                // Nowhere now: tasks that read it find it missing.
                self.sched.temps.forget(file.id());
                let _ = reply.send(n);
            }
            Message::TempWorker { file_id, reply } => {
                let _ = reply.send(self.sched.temps.worker_of(file_id));
            }
            Message::WorkerReady { worker } => {
                debug_assert_eq!(worker, LOCAL_WORKER);
                self.collect_local();
            }
            Message::Cancel { id, reply } => {
                let found = self.sched.cancel(id, &mut self.outbox) || self.local.cancel_direct(id);
                // Flush first so the caller that hears "cancelled" can wait for it.
                self.flush();
                let _ = reply.send(found);
            }
            Message::CancelByTag { tag, all, reply } => {
                let tag = tag.as_deref();
                let n = if all {
                    self.sched.cancel_by_tag(tag, true, &mut self.outbox)
                        + self.local.cancel_direct_matching(|_, t| t == tag, true)
                } else {
                    // The first submitted, in whichever lane it went.
                    let first = self.sched.first_by_tag(tag);
                    let direct = self.local.cancel_direct_matching(
                        |id, t| t == tag && first.is_none_or(|f| id < f),
                        false,
                    );
                    if direct > 0 {
                        direct
                    } else {
                        self.sched.cancel_by_tag(tag, false, &mut self.outbox)
                    }
                };
                self.flush();
                let _ = reply.send(n);
            }
            Message::RemoteWatch { worker, update } => {
                let dest = self
                    .remote
                    .get(&worker)
                    .and_then(|l| l.task(update.id))
                    .filter(|t| t.attempts == update.attempt)
                    .and_then(|t| t.extra.as_ref())
                    .and_then(|e| {
                        e.outputs.iter().find(|m| {
                            m.remote_name == update.remote_name
                                && m.flags & crate::files::MOUNT_WATCH != 0
                        })
                    })
                    .and_then(|m| match m.file.kind() {
                        crate::files::FileKind::Path(p) => Some(p.clone()),
                        _ => None,
                    });
                // Stale (the task came back, or another attempt runs) or not
                // watched: dropped.
                if let Some(dest) = dest {
                    let _ = crate::worker::watch::write_update(&dest, update.offset, &update.bytes);
                }
            }
            Message::CancelAll { reply } => {
                let n = self.sched.cancel_all(&mut self.outbox)
                    + self.local.cancel_direct_matching(|_, _| true, true);
                self.flush();
                let _ = reply.send(n);
            }
            Message::IsOutstanding { id, reply } => {
                self.flush();
                let _ = reply.send(self.sched.is_outstanding(id) || self.local.holds_direct(id));
            }
            Message::Category { change, reply } => {
                // The lane closed when the change was asked for: what still
                // runs on it counts against the bounds on concurrent tasks.
                for (category, n) in self.shared.direct.watch() {
                    self.sched.categories.direct_running(&category, n);
                }
                self.sched.categories.apply(change);
                // Waiting tasks may be sized or bounded otherwise now.
                self.sched.retry_parked();
                let _ = reply.send(());
            }
            Message::DirectEnded { category } => {
                if self.sched.categories.direct_ended(&category) {
                    self.sched.retry_parked();
                }
            }
            Message::CategoryStats { category, reply } => {
                let waiting = self
                    .sched
                    .count_waiting(|t| t.category() == category.as_c_str());
                let _ = reply.send((self.sched.categories.stats(&category), waiting));
            }
            Message::AtExit { reply } => {
                self.last_rows();
                self.sched.journal.flush();
                let _ = reply.send(());
            }
            Message::LogBarrier { reply } => {
                // The submissions before it were taken above.
                self.sched.journal.flush();
                let _ = reply.send(());
            }
            Message::WorkerSizes { reply } => {
                let _ = reply.send(self.sched.worker_sizes());
            }
            Message::Stats { reply } => {
                // What `vine_hungry` reads agrees with the stats the caller sees.
                self.shared
                    .ready_len
                    .store(self.sched.ready_len() as u64, Ordering::Relaxed);
                let mut stats = self.sched.stats();
                // The model of the local pool does not see direct tasks, which
                // may hold cores it counts free: what runs there is what the
                // pool says runs (direct tasks are added by the caller).
                stats.tasks_running -= self.sched.started_on(LOCAL_WORKER);
                stats.tasks_running += self.local.running_not_direct();
                // Nor what they hold, or that the local worker is busy with them.
                let held = self.local.direct_held();
                if held != crate::resources::Resources::default() {
                    stats.committed = stats.committed.plus(&held);
                    if self.sched.assigned_on(LOCAL_WORKER) == 0 && stats.workers_idle > 0 {
                        stats.workers_idle -= 1;
                        stats.workers_busy += 1;
                    }
                }
                let _ = reply.send(stats);
            }
            Message::Tune { setting, reply } => {
                let _ = reply.send(self.apply(setting));
            }
            Message::SlowWorkersCategory {
                category,
                factor,
                reply,
            } => {
                let key: Arc<[u8]> = category.to_bytes().into();
                if factor >= 1.0 || factor == 0.0 {
                    self.slow.by_category.insert(key, factor);
                    self.slow.forget_off();
                } else {
                    self.slow.by_category.remove(&key);
                    self.slow.forget_off();
                }
                let _ = reply.send(());
            }
            Message::Shutdown { reply } => self.begin_shutdown(reply),
            #[cfg(test)]
            Message::Crash => panic!("the manager thread was made to panic"),
        }
    }

    fn apply(&mut self, setting: Setting) -> Result<()> {
        match setting {
            Setting::MaxRetries(n) => self.sched.set_default_retries(n),
            Setting::CategorySteadyN(n) => self.sched.categories.set_steady_n(n),
            Setting::WaitForWorkers(n) => self.sched.set_wait_for_workers(n),
            Setting::ShutdownTimeout(s) => {
                self.shutdown_timeout = Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
            }
            Setting::SubmitMultiplier(m) => {
                self.submit_multiplier = Some(m);
                self.sched.set_prefetch_multiplier(LOCAL_WORKER, m);
                for &w in self.remote.keys() {
                    self.sched.set_prefetch_multiplier(w, m);
                }
            }
            Setting::Prefetch(n) => {
                self.submit_multiplier = None;
                self.prefetch = Some(n);
                self.sched.set_prefetch(LOCAL_WORKER, Some(n));
                for &w in self.remote.keys() {
                    self.sched.set_prefetch(w, Some(n));
                }
            }
            Setting::LocalCores(_)
            | Setting::LocalMemory(_)
            | Setting::LocalDisk(_)
            | Setting::LocalGpus(_) => {
                if self.shared.completions.outstanding() > 0 || self.sched.dispatched_len() > 0 {
                    return Err(Error::invalid(
                        "local resources can only change while no task is outstanding",
                    ));
                }
                let mut c = self.local_capacity;
                match setting {
                    Setting::LocalCores(m) => c.millicores = m,
                    Setting::LocalMemory(m) => c.memory_mb = m,
                    Setting::LocalDisk(d) => c.disk_mb = d,
                    Setting::LocalGpus(g) => c.gpus = g,
                    _ => unreachable!(),
                }
                if !self.local.set_capacity(c) {
                    return Err(Error::invalid(
                        "local resources can only change while the local pool holds no task",
                    ));
                }
                if self.local_capacity.millicores > 0 {
                    self.worker_left_records(LOCAL_WORKER, super::journal::Departure::Explicit);
                }
                self.local_capacity = c;
                self.sched
                    .remove_worker(LOCAL_WORKER, Vec::new(), &mut self.outbox);
                self.add_local_worker();
                self.shared
                    .slots
                    .store(self.sched.total_slots(), Ordering::Relaxed);
            }
            Setting::KeepaliveTimeout(s) => self
                .remote_settings
                .keepalive_timeout_ms
                // 0 is no timeout; any other is at least a millisecond.
                .store((s * 1000.0).ceil() as u64, Ordering::Relaxed),
            Setting::KeepaliveInterval(s) => self
                .remote_settings
                .keepalive_interval_ms
                .store((s * 1000.0) as u64, Ordering::Relaxed),
            Setting::SlowWorkersFactor(f) => {
                self.slow.factor = if f >= 1.0 { f } else { 0.0 };
                self.slow.forget_off();
            }
            Setting::SlowWorkersBlockTimeout(s) => {
                self.slow.block_for = Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
            }
            Setting::Autocategory(_)
            | Setting::Progress(_)
            | Setting::HungryMinimum(_)
            | Setting::MaxStdout(_)
            | Setting::HungryFactor(_)
            | Setting::LocalWorkerProcesses(_)
            | Setting::WorkerSourceMaxTransfers(_)
            | Setting::FileSourceMaxTransfers(_)
            | Setting::TempReplicaCount(_)
            | Setting::Proportional(_) => {
                unreachable!("applied by the manager handle")
            }
        }
        Ok(())
    }

    /// Carries out what the scheduler decided.
    fn flush(&mut self) {
        if !self.outbox.to_local.is_empty() {
            self.local.dispatch(&mut self.outbox.to_local);
        }
        let mut one = Vec::with_capacity(1);
        let now = crate::task::now_us();
        for (worker, mut task) in std::mem::take(&mut self.outbox.to_remote) {
            match self.remote.get_mut(&worker) {
                Some(link) => {
                    // When this attempt was handed over (TaskVine's
                    // time_when_commit_start); its worker's report says when
                    // it started there.
                    task.times.started = now;
                    if self.slow.on() && self.slow.factor_of(task.category().to_bytes()) > 0.0 {
                        let category: Arc<[u8]> = task.category().to_bytes().into();
                        self.slow
                            .running
                            .insert(task.id, (worker, Instant::now(), category));
                    }
                    one.push(task);
                    link.dispatch(&mut one, &self.sched.temps);
                }
                None => {
                    // The books are wrong (a bug): the task runs again elsewhere.
                    task.finish(
                        crate::task::TaskResult::Forsaken,
                        Some(format!("internal error: worker {worker} is gone")),
                    );
                    self.sched.finished(worker, task, &mut self.outbox);
                }
            }
        }
        for (worker, id, end_time) in std::mem::take(&mut self.outbox.stops) {
            match (worker == LOCAL_WORKER, end_time) {
                (true, false) => self.local.cancel(id),
                (true, true) => self.local.end_time(id),
                (false, _) => {
                    if let Some(link) = self.remote.get_mut(&worker) {
                        link.stop(id, end_time);
                    }
                }
            }
        }
        if !self.slow.marks.is_empty() {
            for t in &self.outbox.finished {
                self.slow.marks.remove(&t.id);
            }
        }
        if !self.outbox.finished.is_empty() {
            // Their records reach the logs before a waiter can see them done
            // (and, say, switch the transactions log to another file).
            self.sched.journal.flush();
        }
        self.shared.completions.push_all(&mut self.outbox.finished);
        for task in self.outbox.internal.drain(..) {
            if task.result != crate::task::TaskResult::Success {
                // Tasks reading its temps will find them missing.
                self.sched.temps.remake_failed(&task);
                // Tasks waiting for those temps are placed (to find them missing).
                self.sched.retry_parked();
            }
        }
        self.shared
            .ready_len
            .store(self.sched.ready_len() as u64, Ordering::Relaxed);
    }

    fn begin_shutdown(&mut self, reply: super::reply::Reply<Result<()>>) {
        if self.shutdown.is_some() {
            let _ = reply.send(Err(Error::new(
                ErrorKind::ShutDown,
                "shutdown already under way",
            )));
            return;
        }
        self.sched.begin_shutdown(&mut self.outbox);
        self.local.cancel_waiting();
        self.shutdown = Some(Shutdown {
            reply,
            deadline: later(self.shutdown_timeout),
            killed: false,
        });
    }

    /// Schedules, counting what direct tasks hold of the local pool as taken
    /// in its model. While they hold some and tasks wait for a worker, each
    /// direct task that ends wakes the manager (checked again after asking, so
    /// that one ending meanwhile is not missed).
    fn schedule(&mut self) {
        loop {
            self.sync_reserved();
            self.sched.schedule(&mut self.outbox);
            self.shared
                .local_assigned
                .store(self.sched.assigned_on(LOCAL_WORKER), Ordering::Relaxed);
            let waits = self.local_reserved != Resources::default() && self.sched.ready_len() > 0;
            self.local.set_owner_waits(waits);
            if !waits || self.local.direct_held() == self.local_reserved {
                return;
            }
        }
    }

    /// Counts what direct tasks hold of the local pool as taken in its model.
    fn sync_reserved(&mut self) {
        if self.local.direct_any() || self.local_reserved != Resources::default() {
            let held = self.local.direct_held();
            if held != self.local_reserved {
                self.sched.reserve(LOCAL_WORKER, held);
                self.local_reserved = held;
            }
        }
    }

    /// `task` came back: files and buffers of the manager that it wrote as
    /// outputs may hold new data, so remote workers caching an older copy are
    /// told to delete it, and the next task reading one is sent it again.
    fn outputs_renewed(&mut self, task: &Task, writer: Option<WorkerId>) {
        let Some(extra) = &task.extra else { return };
        for m in &extra.outputs {
            match m.file.kind() {
                FileKind::Path(_) | FileKind::Buffer => {
                    m.file.forget_content_name();
                    self.remote_settings.peers.unstored(m.file.id());
                    for link in self.remote.values() {
                        link.forget_file(&m.file, &self.sched.temps);
                    }
                }
                // A temp written again: the copies of what it held before,
                // wherever they are, are not the temp any more.
                FileKind::Temp
                    if task.result == crate::task::TaskResult::Success
                        && self.made_before(&m.file) =>
                {
                    for (w, link) in &self.remote {
                        if Some(*w) != writer {
                            link.forget_file(&m.file, &self.sched.temps);
                        }
                    }
                    if writer.is_some() {
                        m.file.drop_temp_location();
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether temp `file` holds data already, at the manager or at workers.
    fn made_before(&self, file: &crate::files::File) -> bool {
        let id = file.id();
        file.temp_location().is_some()
            || self.sched.temps.holders(id) > 0
            || self.remote_settings.peers.replicas(id) > 0
    }

    /// Takes the tasks the local pool has finished.
    fn collect_local(&mut self) {
        // First: a task the pool started once a direct task left is started
        // in the model too before it comes back.
        self.sync_reserved();
        let mut batch = std::mem::take(&mut self.returned);
        self.local.take_finished(&mut batch);
        for task in batch.drain(..) {
            if task.extra.is_some() {
                self.outputs_renewed(&task, None);
                // Temps it made are at the manager: any worker can be sent them.
                self.sched.temps.task_done(LOCAL_WORKER, None, &task);
            }
            self.sched.finished(LOCAL_WORKER, task, &mut self.outbox);
        }
        self.returned = batch;
    }

    /// The shutdown deadline passed: kill what can be killed, then, after a grace
    /// period, give up on what cannot. True when the loop should end.
    fn on_shutdown_deadline(&mut self) -> bool {
        let Some(s) = self.shutdown.as_mut() else {
            return false;
        };
        if !s.killed {
            s.killed = true;
            s.deadline = Instant::now() + STUCK_GRACE;
            self.local.cancel_running();
            for (worker, id) in self.sched.all_dispatched() {
                if let Some(link) = self.remote.get_mut(&worker) {
                    link.cancel(id);
                }
            }
            return false;
        }
        // Only THREAD functions that ignore cancellation can still be running: a
        // thread cannot be killed. Leave them behind and say so.
        // Remote tasks whose workers did not answer come back cancelled: the
        // manager still holds them.
        let workers: Vec<WorkerId> = self.remote.keys().copied().collect();
        for worker in workers {
            let tasks = self
                .remote
                .get_mut(&worker)
                .map(|l| l.take_all())
                .unwrap_or_default();
            for mut task in tasks {
                task.flags |= crate::task::FLAG_CANCELLED | crate::task::FLAG_STARTED;
                self.sched.finished(worker, task, &mut self.outbox);
            }
        }
        // What the abandoned functions return from now on goes straight to
        // the callers of `wait`, as direct tasks do: nothing collects the
        // pool's outbox once this loop ends. What is there already is taken.
        let shared = self.shared.clone();
        self.local
            .set_late_sink(Box::new(move |mut task: Box<Task>| {
                task.flags |= crate::task::FLAG_CANCELLED;
                task.finish(
                    crate::task::TaskResult::Cancelled,
                    Some(
                        "the manager was shut down; the function returned after shutdown-timeout"
                            .into(),
                    ),
                );
                task.publish_state(crate::task::State::Retrieved);
                shared.completions.push(task);
            }));
        self.collect_local();
        self.flush();
        // Workers are told to exit and the listener stops here too: this
        // loop ends now, and nothing would stop them later.
        self.close_remote();
        let stuck = self.sched.dispatched_len() + self.local.direct_counts().1;
        let s = self.shutdown.take().expect("checked above");
        let joined = self.local.stop(Instant::now());
        // Only an abandoned function makes the shutdown incomplete: tasks of
        // workers that did not answer came back cancelled above.
        let _ = s.reply.send(if stuck == 0 && joined {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                format!("{stuck} task function(s) did not return within shutdown-timeout and were abandoned"),
            ))
        });
        true
    }

    /// A task can run only where its kept temps are. If they are at several workers,
    /// or at one too small for the task, those of one worker that can hold it stay
    /// there and the others are brought to the manager, from which any worker can
    /// be sent them; the task waits until they arrive.
    fn gather_temps(&mut self, task: &Task) {
        let Some(extra) = &task.extra else { return };
        let fixed = |m: &crate::files::Mount| m.flags & crate::files::MOUNT_FIXED_LOCATION != 0;
        // A fixed-location temp never moves: the task runs where it is, or not.
        let pinned = extra
            .inputs
            .iter()
            .filter(|m| fixed(m))
            .find_map(|m| self.sched.temps.worker_of(m.file.id()));
        let held: Vec<(Arc<crate::files::File>, WorkerId)> = extra
            .inputs
            .iter()
            .filter(|m| !fixed(m))
            .filter_map(|m| {
                let w = self.sched.temps.worker_of(m.file.id())?;
                Some((m.file.clone(), w))
            })
            .collect();
        let keep = pinned.or_else(|| {
            held.iter()
                .map(|(_, w)| *w)
                .find(|&w| self.sched.worker_can_hold(w, &task.request))
        });
        for (file, w) in held {
            if Some(w) == keep || self.fetches.contains_key(&file.id()) {
                continue;
            }
            if let Some(link) = self.remote.get(&w) {
                link.get_file(file.id());
                let replies = Vec::new();
                self.fetches.insert(
                    file.id(),
                    PendingFetch {
                        file,
                        worker: w,
                        replies,
                    },
                );
            }
        }
    }

    /// A worker could not fetch temp `file_id` from a peer (the task that
    /// needed it comes back to run again): the manager brings it from a worker
    /// holding it over that worker's own connection, from which any worker can
    /// be sent it; tasks that read it wait until it arrives.
    fn bring_temp(&mut self, file_id: u64) {
        if self.fetches.contains_key(&file_id) {
            return;
        }
        let Some(w) = self.sched.temps.worker_of(file_id) else {
            return;
        };
        let (Some(link), Some(file)) = (self.remote.get(&w), self.sched.temps.file(file_id)) else {
            return;
        };
        link.get_file(file_id);
        self.sched.temps.bringing(file_id);
        self.fetches.insert(
            file_id,
            PendingFetch {
                file,
                worker: w,
                replies: Vec::new(),
            },
        );
    }

    /// Temps `task` left at remote worker `worker` can be fetched from there;
    /// with `temp-replica-count` above 1, that many workers in all are told to
    /// fetch a copy now, so that losing one costs no recomputation.
    fn share_temps_of(&mut self, worker: WorkerId, task: &crate::task::Task) {
        let Some(extra) = &task.extra else { return };
        let peers = &self.remote_settings.peers;
        let want = peers.temp_replicas.load(Ordering::Relaxed) as usize;
        for m in &extra.outputs {
            let id = m.file.id();
            if !self.sched.temps.held_by(id, worker) {
                continue;
            }
            peers.add(id, worker);
            if !peers.enabled() || m.file.flags() & crate::files::FILE_PEER_NOSHARE != 0 {
                continue;
            }
            let mut others: Vec<WorkerId> = self
                .remote
                .keys()
                .copied()
                .filter(|w| !self.sched.temps.held_by(id, *w))
                .collect();
            others.sort_unstable();
            let have = self.sched.temps.holders(id);
            for w in others.into_iter().take(want.saturating_sub(have)) {
                if let (Some(c), Some(link)) = (peers.choose(id, w, false), self.remote.get(&w)) {
                    link.replicate(id, c);
                }
            }
        }
    }

    /// A worker was lost with the temps it kept: their producing tasks run again,
    /// as tasks of the manager's own; tasks that read them wait. Fetches of them fail.
    fn remake_temps_of(&mut self, worker: WorkerId) {
        let asked: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, p)| p.worker == worker)
            .map(|(&id, _)| id)
            .collect();
        for id in asked {
            let pending = self.fetches.remove(&id).expect("listed above");
            for reply in pending.replies {
                let _ = reply.send(Err(Error::new(
                    ErrorKind::Io,
                    "the worker holding the temp was lost",
                )));
            }
        }
        for (_, mut recipe) in self.sched.temps.lost(worker) {
            recipe.flags |= crate::task::FLAG_INTERNAL;
            recipe.id = self.shared.next_task_id();
            recipe.times.submitted = crate::task::now_us();
            self.sched.submit(recipe, &mut self.outbox);
        }
    }

    /// Removes remote worker `worker`: its tasks run again elsewhere (up to
    /// their retries), temps only it kept are made again. A worker `Released` is
    /// told to exit; one `Disconnected` is cut off (it tries to join again).
    fn drop_worker(&mut self, worker: WorkerId, how: Departure) {
        let Some(mut link) = self.remote.remove(&worker) else {
            return;
        };
        {
            use super::journal::Departure as Why;
            let why = match how {
                Departure::Released | Departure::Revoked => Why::Explicit,
                Departure::Disconnected => Why::FastAbort,
                // TaskVine's name for a departure the worker chose.
                Departure::Lost | Departure::Left => Why::Unknown,
            };
            self.worker_left_records(worker, why);
        }
        let tasks = link.take_all();
        use super::scheduler::Removal;
        let removal = match how {
            Departure::Lost => Removal::Counted("was lost"),
            Departure::Left => Removal::Counted("left (its wall time passed)"),
            Departure::Disconnected => Removal::Counted("was cut off"),
            Departure::Released => Removal::NotCounted("was told to exit"),
            Departure::Revoked => Removal::NotCounted("was dropped when the password was set"),
        };
        self.sched
            .remove_worker_as(worker, tasks, removal, &mut self.outbox);
        self.remake_temps_of(worker);
        self.shared
            .slots
            .store(self.sched.total_slots(), Ordering::Relaxed);
        let stats = self.sched.stats_mut();
        stats.workers_removed += 1;
        match how {
            Departure::Released => {
                stats.workers_released += 1;
                link.exit();
            }
            Departure::Disconnected => link.disconnect(),
            Departure::Lost | Departure::Left | Departure::Revoked => {}
        }
        self.draining.remove(&worker);
        self.slow.suspects.remove(&worker);
        self.slow.running.retain(|_, (w, _, _)| *w != worker);
    }

    /// Tells draining workers that hold no task to exit.
    fn release_drained(&mut self) {
        let done: Vec<WorkerId> = self
            .draining
            .iter()
            .copied()
            .filter(|&w| self.sched.held_by(w).is_none_or(|n| n == 0))
            .collect();
        for w in done {
            self.drop_worker(w, Departure::Released);
        }
    }

    /// The next instant a task on a remote worker would count as slow.
    fn next_slow_deadline(&self) -> Option<Instant> {
        if !self.slow.on() {
            return None;
        }
        self.slow
            .running
            .iter()
            .filter_map(|(&id, (_, sent, c))| self.slow.deadline(id, *sent, c))
            .min()
    }

    /// Takes back tasks running past their category's average times the factor;
    /// a worker caught twice is disconnected and its host blocked for a while.
    fn check_slow(&mut self) {
        if !self.slow.on() {
            return;
        }
        let now = Instant::now();
        let late: Vec<(TaskId, WorkerId)> = self
            .slow
            .running
            .iter()
            .filter(|(&id, (_, sent, c))| {
                self.slow.deadline(id, *sent, c).is_some_and(|d| d <= now)
            })
            .map(|(&id, (w, _, _))| (id, *w))
            .collect();
        for (id, worker) in late {
            self.slow.running.remove(&id);
            if !self.remote.contains_key(&worker) || !self.sched.recall(id, &mut self.outbox) {
                continue;
            }
            let marks = self.slow.marks.entry(id).or_insert(0);
            *marks += 1;
            // A task slow everywhere says nothing about a second worker.
            if *marks > 1 {
                continue;
            }
            if self.slow.suspects.insert(worker) {
                continue;
            }
            // The second task in a row slow there: the worker, not the task.
            let host = self.remote.get(&worker).map(|l| l.host_key());
            if let Some(host) = host {
                eprintln!(
                    "vine: worker {worker} on {host} is slow: disconnecting it and blocking its host for {:?}",
                    self.slow.block_for
                );
                self.remote_settings.block(&host, Some(self.slow.block_for));
                let stats = self.sched.stats_mut();
                stats.workers_slow += 1;
                stats.workers_blocked += 1;
                self.drop_worker(worker, Departure::Disconnected);
            }
        }
        self.flush();
    }

    /// The performance log's last row and the last state: how the run ended.
    fn last_rows(&mut self) {
        let now = super::journal::now_us();
        self.sched.journal.set_now(now);
        if self.sink.perf_on.load(Ordering::Relaxed) {
            self.perf_row(now, true);
        }
        self.status_last_at = i64::MIN / 2;
        self.status_file(now);
    }

    /// Tells every remote worker to exit and stops accepting new ones.
    fn close_remote(&mut self) {
        // Workers leaving now are told to, not lost.
        self.remote_settings.closing.store(true, Ordering::Release);
        use super::journal::Departure as Why;
        self.last_rows();
        if self.local_capacity.millicores > 0 {
            self.worker_left_records(LOCAL_WORKER, Why::Explicit);
        }
        let mut told: Vec<WorkerId> = Vec::with_capacity(self.remote.len());
        for (&worker, link) in &self.remote {
            link.exit();
            told.push(worker);
        }
        told.sort_unstable();
        for worker in told {
            self.worker_left_records(worker, Why::Explicit);
            // Told to exit, each leaves now: it is no longer counted as
            // connected (its link stays until this thread ends, so that the
            // word reaches it).
            let tasks = self
                .remote
                .get_mut(&worker)
                .map(|l| l.take_all())
                .unwrap_or_default();
            self.sched.remove_worker_as(
                worker,
                tasks,
                super::scheduler::Removal::NotCounted("was told to exit"),
                &mut self.outbox,
            );
            let stats = self.sched.stats_mut();
            stats.workers_removed += 1;
            stats.workers_released += 1;
        }
        if let Some(l) = self.listener.take() {
            super::remote::stop_listener(&l.socket, l.addr, &self.remote_settings);
            let _ = l.thread.join();
        }
    }

    fn try_finish_shutdown(&mut self) -> bool {
        let Some(s) = self.shutdown.as_ref() else {
            return false;
        };
        // Direct tasks still running end before the pool stops; the pool wakes
        // this thread when the last one has.
        if self.sched.dispatched_len() > 0 || self.local.direct_counts() != (0, 0) {
            return false;
        }
        let joined = self
            .local
            .stop(s.deadline.max(Instant::now() + STUCK_GRACE));
        self.close_remote();
        let s = self.shutdown.take().expect("checked above");
        let _ = s.reply.send(if joined {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                "a local worker thread did not exit",
            ))
        });
        true
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_category_of_its_own_is_judged_by_its_factor_and_the_others_by_the_default() {
        let mut slow = SlowWorkers::off();
        assert!(!slow.on());
        slow.by_category.insert(b"own".as_slice().into(), 3.0);
        assert!(slow.on());
        for c in [b"own".as_slice(), b"other"] {
            slow.times
                .insert(c.into(), (SLOW_MIN_SAMPLES, Duration::from_secs(10)));
        }
        let sent = Instant::now();
        // Averages of 1 s: the own category's tasks are slow after 3 s, the
        // others never while the default is off, then after 2 s.
        assert_eq!(
            slow.deadline(1, sent, b"own"),
            Some(sent + Duration::from_secs(3))
        );
        assert_eq!(slow.deadline(2, sent, b"other"), None);
        slow.factor = 2.0;
        assert_eq!(
            slow.deadline(2, sent, b"other"),
            Some(sent + Duration::from_secs(2))
        );
        // Turning the default off forgets only the tasks it judged.
        slow.running.insert(1, (0, sent, b"own".as_slice().into()));
        slow.running
            .insert(2, (0, sent, b"other".as_slice().into()));
        slow.factor = 0.0;
        slow.forget_off();
        assert_eq!(slow.running.keys().copied().collect::<Vec<_>>(), vec![1]);
        // A category turned off (0) is never judged, whatever the default
        // (as in TaskVine).
        slow.factor = 2.0;
        slow.by_category.insert(b"own".as_slice().into(), 0.0);
        assert_eq!(slow.deadline(1, sent, b"own"), None);
        slow.forget_off();
        assert!(slow.running.is_empty());
        slow.factor = 0.0;
        assert!(!slow.on(), "off everywhere");
    }
}
