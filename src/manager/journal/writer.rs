//! The writer thread: formats what the sink gathered and writes it, one batch
//! at a time, to the transactions, performance and debug logs.

use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::format;
use super::logfile::LogFile;
use super::{Other, Rec, Sink, What};
use crate::resources::Resources;

/// How long the writer lets records gather after a batch, so that a busy
/// manager costs it a few wake-ups a second, not one per round.
const GATHER: Duration = Duration::from_millis(20);

/// Which log a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Txn,
    Perf,
    Debug,
    Graph,
}

impl Target {
    /// How the API names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Txn => "transactions",
            Target::Perf => "performance",
            Target::Debug => "debug",
            Target::Graph => "task graph",
        }
    }
}

/// The columns of the performance log, TaskVine's names and order.
pub(crate) const PERF_COLUMNS: &[&str] = &[
    "timestamp",
    "workers_connected",
    "workers_init",
    "workers_idle",
    "workers_busy",
    "workers_able",
    "workers_joined",
    "workers_removed",
    "workers_released",
    "workers_idled_out",
    "workers_blocked",
    "workers_slow",
    "workers_lost",
    "tasks_waiting",
    "tasks_on_workers",
    "tasks_running",
    "tasks_with_results",
    "tasks_submitted",
    "tasks_dispatched",
    "tasks_done",
    "tasks_failed",
    "tasks_successful",
    "tasks_cancelled",
    "tasks_exhausted_attempts",
    "tasks_recovery",
    "time_send",
    "time_receive",
    "time_send_good",
    "time_receive_good",
    "time_status_msgs",
    "time_internal",
    "time_polling",
    "time_application",
    "time_scheduling",
    "time_execute",
    "time_execute_good",
    "time_execute_exhaustion",
    "bytes_sent",
    "bytes_received",
    "bandwidth",
    "capacity_tasks",
    "capacity_cores",
    "capacity_memory",
    "capacity_disk",
    "capacity_instantaneous",
    "capacity_weighted",
    "total_cores",
    "total_memory",
    "total_disk",
    "committed_cores",
    "committed_memory",
    "committed_disk",
    "max_cores",
    "max_memory",
    "max_disk",
    "min_cores",
    "min_memory",
    "min_disk",
    "inuse_cache",
];

/// A row of the performance log: one value per column after the timestamp.
pub(crate) struct Perf(pub(crate) Vec<i64>);

/// The documentation block at the top of the transactions log.
const TXN_HEADER: &str = "\
# time manager_pid MANAGER manager_pid START|END time_from_origin
# time manager_pid WORKER worker_id CONNECTION host:port
# time manager_pid WORKER worker_id DISCONNECTION (UNKNOWN|IDLE_OUT|FAST_ABORT|FAILURE|STATUS_WORKER|EXPLICIT|XFER_ERRORS)
# time manager_pid WORKER worker_id RESOURCES {resources}
# time manager_pid WORKER worker_id CACHE_UPDATE filename size_in_mb wall_time_us start_time_us
# time manager_pid WORKER worker_id TRANSFER (INPUT|OUTPUT) filename size_in_mb wall_time_us start_time_us
# time manager_pid CATEGORY name MAX {resources_max_per_task}
# time manager_pid CATEGORY name MIN {resources_min_per_task_per_worker}
# time manager_pid CATEGORY name FIRST (FIXED|MAX|MIN_WASTE|MAX_THROUGHPUT) {resources_requested}
# time manager_pid TASK task_id WAITING category_name (FIRST_RESOURCES|MAX_RESOURCES) attempt_number {resources_requested}
# time manager_pid TASK task_id RUNNING worker_id (FIRST_RESOURCES|MAX_RESOURCES) {resources_allocated}
# time manager_pid TASK task_id WAITING_RETRIEVAL worker_id
# time manager_pid TASK task_id RETRIEVED (SUCCESS|UNKNOWN|INPUT_MISSING|OUTPUT_MISSING|STDOUT_MISSING|SIGNAL|RESOURCE_EXHAUSTION|MAX_RETRIES|MAX_END_TIME|MAX_WALL_TIME|FORSAKEN) {limits_exceeded} {resources_measured}
# time manager_pid TASK task_id DONE (SUCCESS|UNKNOWN|INPUT_MISSING|OUTPUT_MISSING|STDOUT_MISSING|SIGNAL|RESOURCE_EXHAUSTION|MAX_RETRIES|MAX_END_TIME|MAX_WALL_TIME|FORSAKEN) exit_code
# time manager_pid LIBRARY library_id (WAITING|SENT|STARTED|FAILURE) worker_id
# time manager_pid APPLICATION message*
";

/// Writes the header a new log file starts with.
pub(crate) fn write_header(target: Target, f: &mut impl Write) -> std::io::Result<()> {
    match target {
        Target::Txn => f.write_all(TXN_HEADER.as_bytes()),
        Target::Perf => {
            let mut line = String::from("#");
            for c in PERF_COLUMNS {
                line.push(' ');
                line.push_str(c);
            }
            line.push('\n');
            f.write_all(line.as_bytes())
        }
        Target::Debug => Ok(()),
        Target::Graph => f.write_all(GRAPH_HEADER.as_bytes()),
    }
}

/// The task graph log: a Graphviz `digraph`, tasks as ellipses, files as boxes.
const GRAPH_HEADER: &str = "digraph \"vine\" {\nnode [fontsize=10];\n";

/// What closes the task graph log.
const GRAPH_FOOTER: &[u8] = b"}\n";

/// The name the logs give worker `id`.
pub(crate) fn worker_name(buf: &mut Vec<u8>, id: u32) {
    if id == crate::manager::core::LOCAL_WORKER {
        buf.extend_from_slice(b"worker-local");
    } else {
        buf.extend_from_slice(b"worker-");
        format::uint(buf, u64::from(id));
    }
}

/// Starts a record in `b`: `TIME PID `.
fn record_start(b: &mut Vec<u8>, at: i64, pid: &[u8]) {
    format::int(b, at);
    b.push(b' ');
    b.extend_from_slice(pid);
    b.push(b' ');
}

/// `TASK ID DONE RESULT EXIT`.
fn done_fields(b: &mut Vec<u8>, task: u64, result: crate::task::TaskResult, exit: i32) {
    b.extend_from_slice(b"TASK ");
    format::uint(b, task);
    b.extend_from_slice(b" DONE ");
    b.extend_from_slice(result.name().to_bytes());
    b.push(b' ');
    format::int(b, i64::from(exit));
}

/// ` FIRST_RESOURCES ` or, for a run at the category's maximum after an
/// automatic allocation was exhausted, ` MAX_RESOURCES `.
fn allocation(at_max: bool) -> &'static [u8] {
    if at_max {
        b" MAX_RESOURCES "
    } else {
        b" FIRST_RESOURCES "
    }
}

/// `{limits_exceeded}` of a retrieved attempt: for one that ran out of its
/// allocation, the limits its measurement went past (the limit's value, as
/// TaskVine writes it); `{}` otherwise.
fn limits_exceeded(
    b: &mut Vec<u8>,
    result: crate::task::TaskResult,
    measured: Option<(&crate::resources::Measured, &crate::resources::Resources)>,
) {
    b.push(b'{');
    if let (crate::task::TaskResult::ResourceExhaustion, Some((measured, given))) =
        (result, measured)
    {
        let mut sep = "";
        if given.memory_mb > 0 && measured.memory_mb.is_some_and(|mb| mb > given.memory_mb) {
            b.extend_from_slice(b"\"memory\":[");
            format::uint(b, given.memory_mb);
            b.extend_from_slice(b",\"MB\"]");
            sep = ",";
        }
        if given.disk_mb > 0 && measured.disk_mb > given.disk_mb {
            b.extend_from_slice(sep.as_bytes());
            b.extend_from_slice(b"\"disk\":[");
            format::uint(b, given.disk_mb);
            b.extend_from_slice(b",\"MB\"]");
        }
    }
    b.push(b'}');
}

/// The measured resources of an attempt, as the first entries of an open
/// dictionary: cores (CPU time over wall time), memory (not for a THREAD
/// function), disk.
fn measured_fields(b: &mut Vec<u8>, m: &crate::resources::Measured) {
    let millicores = if m.wall_us > 0 {
        (u128::from(m.cpu_us) * 1000 / u128::from(m.wall_us)).min(u128::from(u32::MAX)) as u64
    } else {
        0
    };
    b.extend_from_slice(b"\"cores\":[");
    format::cores(b, millicores);
    b.extend_from_slice(b",\"cores\"]");
    if let Some(mb) = m.memory_mb {
        b.extend_from_slice(b",\"memory\":[");
        format::uint(b, mb);
        b.extend_from_slice(b",\"MB\"]");
    }
    b.extend_from_slice(b",\"disk\":[");
    format::uint(b, m.disk_mb);
    b.extend_from_slice(b",\"MB\"]");
}

/// A file event's tail: `NAME BYTES TOOK_US START_US`.
fn file_fields(b: &mut Vec<u8>, name: &str, bytes: u64, took_us: i64, start_us: i64) {
    b.extend_from_slice(super::word(name.as_bytes()).as_bytes());
    b.push(b' ');
    format::uint(b, bytes);
    b.push(b' ');
    format::int(b, took_us);
    b.push(b' ');
    format::int(b, start_us);
}

struct Files {
    txn: Option<BufWriter<LogFile>>,
    perf: Option<BufWriter<LogFile>>,
    debug: Option<BufWriter<LogFile>>,
    graph: Option<BufWriter<LogFile>>,
    shapes: Vec<(String, Resources)>,
    pid: Vec<u8>,
    started: i64,
    line: Vec<u8>,
    /// The logs (by `Target as usize`) a write failed for since they were
    /// opened: each says why on standard error once.
    failed: [bool; 4],
}

/// The writer thread's body.
/// Puts thread `tid` (0: the calling thread) in the idle scheduling class, or
/// back in the normal one. Idle, it runs only on cores nothing else wants, so
/// that formatting and writing the logs takes no time from tasks (the records
/// wait in memory meanwhile, up to the bound); when the logs must be written
/// now (`vine_delete`, `exit`), it goes back to normal so busy cores cannot
/// starve it.
pub(crate) fn set_idle(tid: i32, idle: bool) {
    let param = libc::sched_param { sched_priority: 0 };
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    // SAFETY: `param` is a valid, initialised struct that the call only reads; a
    // tid that is gone or a refusal only makes the call fail.
    unsafe {
        libc::sched_setscheduler(tid, policy, &param);
    }
}

pub(crate) fn run(sink: &Sink, started: i64) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    sink.writer_tid
        .store(tid, std::sync::atomic::Ordering::Release);
    set_idle(0, true);
    let status_dir = || sink.status_dir();
    let mut files = Files {
        txn: None,
        perf: None,
        debug: None,
        graph: None,
        shapes: Vec::new(),
        pid: std::process::id().to_string().into_bytes(),
        started,
        line: Vec::with_capacity(512),
        failed: [false; 4],
    };
    let mut batch = Vec::new();
    loop {
        let (opened, stop) = {
            let mut p = sink.lock();
            // Caught up after a hurry: idle priority again (not while the
            // sink stops, which waits for this thread).
            if p.hurried && p.recs.len() < super::HURRY_AT / 4 && !p.stop {
                p.hurried = false;
                set_idle(0, true);
            }
            while p.recs.is_empty() && p.opened.is_empty() && !p.stop {
                p.idle = true;
                p = sink.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.idle = false;
            std::mem::swap(&mut p.recs, &mut batch);
            (std::mem::take(&mut p.opened), p.stop)
        };
        sink.room.notify_all();
        let n = batch.len() as u64;
        // Only the newest state is worth writing.
        if let Some(report) = batch.iter().rev().find_map(|r| match &r.what {
            What::Other(o) => match &**o {
                Other::Status(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }) {
            if let Some(dir) = status_dir() {
                write_status(&dir, &report);
            }
        }
        // Records made before a log was switched go to the log they were made for.
        let mut written = 0;
        for (target, f, before) in opened {
            let before = before.min(batch.len());
            if before > written {
                files.write(&mut batch[written..before]);
                written = before;
            }
            let w = Some(BufWriter::with_capacity(1 << 20, f));
            files.failed[target as usize] = false;
            match target {
                Target::Txn => {
                    files.txn = w;
                    // Every transactions log begins with the manager's start.
                    files.manager_line(files.started, "START", 0);
                }
                Target::Perf => files.perf = w,
                Target::Debug => files.debug = w,
                Target::Graph => {
                    files.close_graph();
                    files.graph = w;
                }
            }
        }
        files.write(&mut batch[written..]);
        batch.clear();
        files.flush();
        {
            let mut p = sink.lock();
            p.flushed += n;
            sink.room.notify_all();
            if p.stop && p.recs.is_empty() && p.opened.is_empty() {
                break;
            }
            if !stop && !p.stop {
                // Let records gather; `stop` and `sync` wake it early.
                let (g, _) = sink
                    .wake
                    .wait_timeout(p, GATHER)
                    .unwrap_or_else(|e| e.into_inner());
                drop(g);
            }
        }
    }
    // The end of the transactions log, and of the graph.
    let now = super::now_us();
    files.manager_line(now, "END", now - files.started);
    files.close_graph();
    files.flush();
}

impl Files {
    /// `MANAGER PID START|END TIME_FROM_ORIGIN`.
    fn manager_line(&mut self, at: i64, event: &str, since: i64) {
        if self.txn.is_none() {
            return;
        }
        self.prefix(at);
        let b = &mut self.line;
        b.extend_from_slice(b"MANAGER ");
        b.extend_from_slice(&self.pid);
        b.push(b' ');
        b.extend_from_slice(event.as_bytes());
        b.push(b' ');
        format::int(b, since);
        b.push(b'\n');
        if let Some(t) = self.txn.as_mut() {
            if let Err(e) = t.write_all(&self.line) {
                self.failed(Target::Txn, &e);
            }
        }
    }

    fn write(&mut self, batch: &mut [Rec]) {
        // Shapes first, whatever their times, so that every record finds its own.
        for r in batch.iter() {
            if let What::Shape(s) = &r.what {
                let (n, name, req) = &**s;
                let n = *n as usize;
                if self.shapes.len() <= n {
                    self.shapes
                        .resize(n + 1, (String::new(), Resources::default()));
                }
                self.shapes[n] = (super::word(name), *req);
            }
        }
        // Records from other threads may be a little older than the manager's.
        batch.sort_by_key(|r| r.at);
        for r in batch.iter() {
            self.one(r);
        }
    }

    fn prefix(&mut self, at: i64) {
        self.line.clear();
        record_start(&mut self.line, at, &self.pid);
    }

    fn shape(&self, n: u32) -> (&str, Resources) {
        self.shapes
            .get(n as usize)
            .map_or(("default", Resources::default()), |(c, r)| (c.as_str(), *r))
    }

    fn one(&mut self, r: &Rec) {
        if let What::Other(o) = &r.what {
            return self.other(r.at, o);
        }
        if self.txn.is_none() {
            return;
        }
        let at = r.at;
        match &r.what {
            What::Ready {
                task,
                attempt,
                shape,
                at_max,
            } => {
                self.prefix(at);
                let (category, req) = self.shape(*shape);
                let category = category.as_bytes().to_vec();
                let b = &mut self.line;
                b.extend_from_slice(b"TASK ");
                format::uint(b, *task);
                b.extend_from_slice(b" READY ");
                b.extend_from_slice(&category);
                b.extend_from_slice(allocation(*at_max));
                format::uint(b, u64::from(*attempt));
                b.push(b' ');
                format::open_resources(b, &req, false);
                format::close(b);
            }
            What::Running {
                task,
                worker,
                shape,
                at_max,
            } => {
                self.prefix(at);
                let (_, req) = self.shape(*shape);
                let b = &mut self.line;
                b.extend_from_slice(b"TASK ");
                format::uint(b, *task);
                b.extend_from_slice(b" RUNNING ");
                worker_name(b, *worker);
                b.extend_from_slice(allocation(*at_max));
                format::open_resources(b, &req, false);
                // TaskVine's commit report: what the manager sent with the task
                // is not counted per task here (see bytes_sent).
                b.extend_from_slice(b",\"size_input_mgr\":[0,\"MB\"]");
                format::add_seconds(b, "time_input_mgr", 0);
                format::add_seconds(b, "time_commit_end", at);
                format::add_seconds(b, "time_commit_start", at);
                format::close(b);
            }
            What::Retrieved(_) | What::RetrievedMeasured(_) => {
                let (d, measured) = match &r.what {
                    What::RetrievedMeasured(b) => (&b.0, Some((&b.1, &b.2))),
                    What::Retrieved(d) => (d, None),
                    _ => unreachable!("matched above"),
                };
                self.prefix(at);
                let b = &mut self.line;
                b.extend_from_slice(b"TASK ");
                format::uint(b, d.task);
                b.extend_from_slice(b" WAITING_RETRIEVAL ");
                worker_name(b, d.worker);
                b.push(b'\n');
                record_start(b, at, &self.pid);
                b.extend_from_slice(b"TASK ");
                format::uint(b, d.task);
                b.extend_from_slice(b" RETRIEVED ");
                b.extend_from_slice(d.result.name().to_bytes());
                b.push(b' ');
                format::int(b, i64::from(d.exit));
                b.push(b' ');
                limits_exceeded(b, d.result, measured);
                b.extend_from_slice(b" {");
                let mut first = true;
                if let Some((m, _)) = measured {
                    measured_fields(b, m);
                    first = false;
                }
                if d.started > 0 && d.ended >= d.started {
                    if !first {
                        b.push(b',');
                    }
                    b.extend_from_slice(b"\"wall_time\":[");
                    format::seconds(b, d.ended - d.started);
                    b.extend_from_slice(b",\"s\"]");
                    format::add_seconds(b, "time_worker_start", d.started);
                    format::add_seconds(b, "time_worker_end", d.ended);
                    b.extend_from_slice(b",\"size_output_mgr\":[0,\"MB\"]");
                    format::add_seconds(b, "time_output_mgr", 0);
                    // TaskVine repeats the commit report here; the worker's
                    // start is when the task had reached it.
                    b.extend_from_slice(b",\"size_input_mgr\":[0,\"MB\"]");
                    format::add_seconds(b, "time_input_mgr", 0);
                    format::add_seconds(b, "time_commit_end", d.started);
                    format::add_seconds(b, "time_commit_start", d.started);
                }
                format::close(b);
                if d.done {
                    b.push(b'\n');
                    record_start(b, at, &self.pid);
                    done_fields(b, d.task, d.result, d.exit);
                }
            }
            What::Done { task, result, exit } => {
                self.prefix(at);
                done_fields(&mut self.line, *task, *result, *exit);
            }
            What::Shape(_) | What::Other(_) => return,
        }
        self.line.push(b'\n');
        if let Some(t) = self.txn.as_mut() {
            if let Err(e) = t.write_all(&self.line) {
                self.failed(Target::Txn, &e);
            }
        }
    }

    fn other(&mut self, at: i64, o: &Other) {
        match o {
            Other::Perf(p) => {
                let Some(f) = self.perf.as_mut() else { return };
                let mut b = Vec::with_capacity(512);
                format::int(&mut b, at);
                for v in &p.0 {
                    b.push(b' ');
                    format::int(&mut b, *v);
                }
                b.push(b'\n');
                if let Err(e) = f.write_all(&b) {
                    self.failed(Target::Perf, &e);
                }
                return;
            }
            Other::Debug(text) => {
                let line = super::debug::format_line(at, text);
                if let Some(f) = self.debug.as_mut() {
                    if let Err(e) = f.write_all(line.as_bytes()) {
                        self.failed(Target::Debug, &e);
                    }
                }
                super::debug::to_global(&line);
                return;
            }
            Other::Status(_) => return,
            Other::GraphEnd => {
                self.close_graph();
                return;
            }
            Other::Graph(lines) => {
                if let Some(f) = self.graph.as_mut() {
                    if let Err(e) = f.write_all(lines.as_bytes()) {
                        self.failed(Target::Graph, &e);
                    }
                }
                return;
            }
            _ => {}
        }
        if self.txn.is_none() {
            return;
        }
        self.prefix(at);
        let b = &mut self.line;
        match o {
            Other::WorkerConnect { worker, addr } => {
                b.extend_from_slice(b"WORKER ");
                worker_name(b, *worker);
                b.extend_from_slice(b" CONNECTION ");
                b.extend_from_slice(super::word(addr.as_bytes()).as_bytes());
            }
            Other::WorkerResources { worker, resources } => {
                b.extend_from_slice(b"WORKER ");
                worker_name(b, *worker);
                b.extend_from_slice(b" RESOURCES ");
                format::open_resources(b, resources, true);
                format::close(b);
            }
            Other::WorkerGone { worker, why } => {
                b.extend_from_slice(b"WORKER ");
                worker_name(b, *worker);
                b.extend_from_slice(b" DISCONNECTION ");
                b.extend_from_slice(why.name().as_bytes());
            }
            Other::Transfer {
                worker,
                input,
                name,
                bytes,
                took_us,
                start_us,
            } => {
                b.extend_from_slice(b"WORKER ");
                worker_name(b, *worker);
                b.extend_from_slice(if *input {
                    b" TRANSFER INPUT "
                } else {
                    b" TRANSFER OUTPUT "
                });
                file_fields(b, name, *bytes, *took_us, *start_us);
            }
            Other::CacheUpdate {
                worker,
                name,
                bytes,
                took_us,
                start_us,
            } => {
                b.extend_from_slice(b"WORKER ");
                worker_name(b, *worker);
                b.extend_from_slice(b" CACHE_UPDATE ");
                file_fields(b, name, *bytes, *took_us, *start_us);
            }
            Other::App(text) => {
                b.extend_from_slice(b"APPLICATION ");
                b.extend_from_slice(super::line(text).as_bytes());
            }
            Other::Perf(_)
            | Other::Debug(_)
            | Other::Status(_)
            | Other::Graph(_)
            | Other::GraphEnd => return,
        }
        self.line.push(b'\n');
        if let Some(t) = self.txn.as_mut() {
            if let Err(e) = t.write_all(&self.line) {
                self.failed(Target::Txn, &e);
            }
        }
    }

    /// Says once per log, with why, that it cannot be written.
    fn failed(&mut self, log: Target, e: &std::io::Error) {
        if !std::mem::replace(&mut self.failed[log as usize], true) {
            eprintln!(
                "vine: cannot write the {} log ({e}); later records may be missing",
                log.name()
            );
        }
    }

    /// Ends the task graph log, if one is open: its closing brace.
    fn close_graph(&mut self) {
        if let Some(mut f) = self.graph.take() {
            if let Err(e) = f.write_all(GRAPH_FOOTER).and_then(|()| f.flush()) {
                self.failed(Target::Graph, &e);
            }
        }
    }

    fn flush(&mut self) {
        let mut broken = Vec::new();
        for (f, log) in [
            (&mut self.txn, Target::Txn),
            (&mut self.perf, Target::Perf),
            (&mut self.debug, Target::Debug),
            (&mut self.graph, Target::Graph),
        ] {
            if let Some(Err(e)) = f.as_mut().map(|f| f.flush()) {
                broken.push((log, e));
            }
        }
        for (log, e) in broken {
            self.failed(log, &e);
        }
    }
}

/// Replaces `dir/vine-logs/status.json` with `report` (written aside, then
/// renamed, so a reader never sees half of it).
fn write_status(dir: &std::path::Path, report: &str) {
    let logs = dir.join("vine-logs");
    let tmp = logs.join(".status.json.tmp");
    if std::fs::write(&tmp, report).is_ok() {
        let _ = std::fs::rename(&tmp, logs.join("status.json"));
    }
}

/// Every live sink, for [`flush_all`].
static SINKS: Mutex<Vec<Weak<Sink>>> = Mutex::new(Vec::new());

/// Remembers `sink` so that [`flush_all`] reaches it.
pub(crate) fn register(sink: &Arc<Sink>) {
    let mut all = SINKS.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(sink));
}

/// Writes out everything handed to any sink so far (called at `exit`).
pub(crate) fn flush_all() {
    let all: Vec<Arc<Sink>> = SINKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for s in all {
        s.sync();
    }
}
