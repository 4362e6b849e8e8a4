//! The manager: what a program creates to run tasks. [`Manager`] is the handle
//! callers use from any thread; behind it one manager thread owns all scheduling
//! state ([`core`]), and finished tasks come back through a [`CompletionQueue`].

pub mod bandwidth;
pub(crate) mod categories;
pub mod completion;
pub(crate) mod core;
mod direct;
pub mod factory;
pub(crate) mod inbox;
pub(crate) mod journal;
mod outbound;
pub(crate) mod peers;
mod progress;
mod ready;
pub mod remote;
mod reply;
pub(crate) mod rundir;
pub mod scheduler;
pub mod settings;
mod status;
mod summary;
mod temps;

use crate::padded::Padded;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reply::Reply;

pub use self::completion::{CompletionQueue, Want};
pub use self::scheduler::{Stats, WorkerId};
use self::settings::Setting;
use std::collections::VecDeque;

use crate::error::{Error, ErrorKind, Result};
use crate::files::File;
use crate::resources::Resources;
use crate::task::{now_us, Task, TaskId, TaskResult, FLAG_AUTOCATEGORY};
use crate::worker::command::{CommandEnv, DEFAULT_MAX_STDOUT};
use crate::worker::local::{LocalPool, Report};

/// What flows into the manager thread.
pub enum Message {
    /// The manager's state as JSON, for `vine_status`.
    Status {
        /// Where the answer goes.
        reply: Reply<String>,
    },
    /// New tasks wait in `Shared::submissions` (sent when it stops being empty).
    Submitted,
    /// A remote worker connected and authenticated.
    WorkerJoined {
        /// Its id.
        worker: WorkerId,
        /// What it offers.
        resources: Resources,
        /// How to reach it.
        link: Box<remote::RemoteLink>,
    },
    /// A remote worker reports on a task.
    RemoteDone {
        /// Which worker.
        worker: WorkerId,
        /// The report.
        report: Box<crate::protocol::TaskReport>,
    },
    /// A remote worker fetched a file from a peer (`ok`: it holds a replica
    /// now), or failed to.
    PeerFetched {
        /// Which worker.
        worker: WorkerId,
        /// Which file.
        file_id: u64,
        /// Whether the fetch succeeded.
        ok: bool,
    },
    /// A remote worker sends a file it keeps.
    RemoteFileData {
        /// Which worker.
        worker: WorkerId,
        /// Which file.
        file_id: u64,
        /// Where it arrived, in the manager's temp directory, or why it did not.
        data: std::result::Result<PathBuf, String>,
    },
    /// Bring a temp kept at a worker to the manager.
    FetchTemp {
        /// The temp.
        file: Arc<File>,
        /// Reply when it is here (or cannot be).
        reply: Reply<Result<()>>,
    },
    /// Tell the remote workers holding a copy of a file to delete it; replies
    /// how many were told.
    Prune {
        /// The file.
        file: Arc<File>,
        /// Reply.
        reply: Reply<usize>,
    },
    /// Which remote worker keeps a temp (by file id), if only a worker has it.
    TempWorker {
        /// The temp's id.
        file_id: u64,
        /// Reply.
        reply: Reply<Option<WorkerId>>,
    },
    /// A remote worker's connection ended.
    WorkerLost {
        /// Which worker.
        worker: WorkerId,
    },
    /// A remote worker said it leaves of its own accord (see
    /// `ToManager::Leaving`); its connection ends next.
    WorkerLeft {
        /// Which worker.
        worker: WorkerId,
        /// Why, as it said.
        reason: String,
    },
    /// A direct task of `category` ended while the manager thread watches the
    /// direct lane (see `direct::Counters::watch`).
    DirectEnded {
        /// Its category.
        category: std::ffi::CString,
    },
    /// A worker has finished tasks waiting to be taken (the local pool's outbox).
    WorkerReady {
        /// Which worker.
        worker: WorkerId,
    },
    /// A worker returns a task, run or not.
    Finished {
        /// Which worker.
        worker: WorkerId,
        /// The task.
        task: Box<Task>,
    },
    /// Cancel one task; replies whether it was waiting or running.
    Cancel {
        /// The task.
        id: TaskId,
        /// Reply.
        reply: Reply<bool>,
    },
    /// Cancel by tag (None: untagged tasks), the first or all; replies how many.
    CancelByTag {
        /// The tag.
        tag: Option<std::ffi::CString>,
        /// All of them, or only the first submitted.
        all: bool,
        /// Reply.
        reply: Reply<usize>,
    },
    /// A remote worker sends what a task appended to a watched output.
    RemoteWatch {
        /// Which worker.
        worker: WorkerId,
        /// The bytes and where they go.
        update: Box<crate::protocol::WatchUpdate>,
    },
    /// Cancel everything; replies how many.
    CancelAll {
        /// Reply.
        reply: Reply<usize>,
    },
    /// Is the task waiting or running?
    IsOutstanding {
        /// The task.
        id: TaskId,
        /// Reply.
        reply: Reply<bool>,
    },
    /// A stats snapshot.
    Stats {
        /// Reply.
        reply: Reply<Stats>,
    },
    /// Replies once the records of everything submitted so far are with the
    /// log writer: what a log switched after this records happened after.
    LogBarrier {
        /// Reply.
        reply: Reply<()>,
    },
    /// The program exits without ending the manager: the last performance
    /// row and state are written now, then the reply.
    AtExit {
        /// Reply.
        reply: Reply<()>,
    },
    /// The workers' sizes, and how many workers have each.
    WorkerSizes {
        /// Reply.
        reply: Reply<Vec<(Resources, u64)>>,
    },
    /// A change to categories (sizing, bounds, monitoring).
    Category {
        /// The change.
        change: categories::Change,
        /// Reply when applied.
        reply: Reply<()>,
    },
    /// One category's counts, and how many of its tasks wait.
    CategoryStats {
        /// The category.
        category: std::ffi::CString,
        /// Reply.
        reply: Reply<(categories::CategoryStats, u64)>,
    },
    /// The slow-worker factor of one category (below 1: the default's).
    SlowWorkersCategory {
        /// The category.
        category: std::ffi::CString,
        /// The factor.
        factor: f64,
        /// Reply when applied.
        reply: Reply<()>,
    },
    /// A setting the manager thread owns.
    Tune {
        /// The setting.
        setting: Setting,
        /// Reply.
        reply: Reply<Result<()>>,
    },
    /// Block a host: its workers are cut off and may not join until unblocked
    /// (or `timeout` passes); replies how many were connected.
    BlockHost {
        /// Host name or address.
        host: String,
        /// None: until unblocked.
        timeout: Option<Duration>,
        /// Reply.
        reply: Reply<usize>,
    },
    /// Stop (or resume) giving tasks to the workers of a host; replies how many.
    Drain {
        /// Host name or address.
        host: String,
        /// Draining or not.
        on: bool,
        /// Reply.
        reply: Reply<usize>,
    },
    /// A factory asks how many workers of its size the waiting tasks need, and
    /// which of its jobs' workers are connected.
    FactoryView {
        /// The factory's worker size and what its workers offer.
        ask: factory::Ask,
        /// Reply.
        reply: Reply<factory::View>,
    },
    /// A factory lets one of its workers go: told to exit if it holds no task;
    /// replies whether it was.
    ReleaseWorker {
        /// The worker.
        worker: WorkerId,
        /// Reply.
        reply: Reply<bool>,
    },
    /// Tell up to `n` idle remote workers (None: all) to exit; replies how many.
    ShutdownWorkers {
        /// How many at most.
        n: Option<usize>,
        /// Reply.
        reply: Reply<usize>,
    },
    /// Begin shutting down; replies when every thread is done.
    Shutdown {
        /// Reply.
        reply: Reply<Result<()>>,
    },
    /// Makes the manager thread panic, as a bug in it would (tests only).
    #[cfg(test)]
    Crash,
}

/// State shared between the handle, the manager thread and the waiters. None of it
/// is scheduling state: that lives on the manager thread only.
pub(crate) struct Shared {
    pub(crate) completions: CompletionQueue,
    /// The name `vine_set_name` gave (None: none), which `vine_status` shows.
    pub(crate) name: Mutex<Option<String>>,
    /// Tasks submitted and not yet taken by the manager thread. A batch of
    /// submissions costs one message and no allocation, and the buffers stay
    /// with the threads that use them instead of being freed across threads.
    /// (What submitters write and what the manager thread writes are on lines of
    /// their own.)
    pub(crate) submissions: Padded<Mutex<Submissions>>,
    accepting: AtomicBool,
    /// The manager thread has ended: nothing more will finish.
    closed: AtomicBool,
    next_id: Padded<AtomicU64>,
    autocategory: AtomicBool,
    pub(crate) processed_submits: Padded<AtomicU64>,
    /// The manager thread sleeps with a timer to collect from a local pool
    /// whose queue is deep: it takes the submissions queued meanwhile when it
    /// wakes, so a submission need not wake it (each wake-up would take a core
    /// from a running task). See `Manager::submit_prepared` for the ordering.
    pub(crate) collects_soon: Padded<AtomicBool>,
    /// Tasks the program says it has yet to submit
    /// ([`Manager::set_tasks_left_count`]).
    pub(crate) tasks_left: AtomicU64,
    pub(crate) ready_len: Padded<AtomicU64>,
    /// Tasks the manager has on the local pool, as of its last round (the
    /// direct lane stays closed while there are any).
    pub(crate) local_assigned: Padded<AtomicU64>,
    pub(crate) slots: Padded<AtomicU64>,
    hungry_factor_milli: AtomicU64,
    /// `vine_hungry` wants at least this many tasks waiting.
    hungry_minimum: AtomicU64,
    /// The stats when the manager thread ended.
    final_stats: Mutex<Option<Stats>>,
    /// Why the manager thread failed, if it did (a bug inside the library): it
    /// then ended without returning the tasks it held.
    failure: Mutex<Option<String>>,
    /// What the stats count of tasks that took the direct lane.
    pub(crate) direct: direct::Counters,
    /// Where the local pool is, as tasks that ran there report it.
    pub(crate) local_place: Arc<crate::task::Place>,
}

/// Held first among the manager thread's state, so that it is dropped first: if
/// that happens because the thread panics, the failure is recorded before anything
/// else the thread held (reply channels, its message channel) goes away, and every
/// caller who sees those gone also sees why.
pub(crate) struct FailNotice(pub(crate) Arc<Shared>);

impl Drop for FailNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .manager_failed("it panicked; the panic message is on standard error");
        }
    }
}

/// See `Shared::submissions`.
#[derive(Default)]
pub(crate) struct Submissions {
    pub(crate) tasks: VecDeque<Box<Task>>,
    /// The manager thread has ended: it takes no more.
    pub(crate) closed: bool,
}

impl Shared {
    pub(crate) fn submissions(&self) -> std::sync::MutexGuard<'_, Submissions> {
        self.submissions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new task id.
    pub(crate) fn next_task_id(&self) -> TaskId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// True once the manager thread has failed.
    fn has_failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The error callers get once the manager thread has failed.
    fn failure(&self) -> Option<Error> {
        let why = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        why.as_ref().map(|why| {
            Error::new(
                ErrorKind::Internal,
                format!("the manager thread failed ({why}); tasks it held are lost"),
            )
        })
    }

    /// The manager thread panicked: nothing it held will come back. Says so on
    /// standard error, refuses later submissions, returns those it had not taken
    /// (failed, with the reason), and lets every waiter see the failure.
    fn manager_failed(&self, why: &str) {
        // Not eprintln!: this runs while the thread unwinds, where a second
        // panic (a closed standard error) would abort the process.
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("vine: internal error: the manager thread failed: {why}\n"),
        );
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_owned());
        self.accepting.store(false, Ordering::Release);
        let mut left: Vec<Box<Task>> = {
            let mut queue = self.submissions();
            queue.closed = true;
            std::mem::take(&mut queue.tasks).into()
        };
        for t in &mut left {
            t.finish(
                crate::task::TaskResult::Unknown,
                Some(format!("the manager thread failed ({why})")),
            );
        }
        self.completions.push_all(&mut left);
    }
}

/// Where to listen for remote workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// No socket: local workers only.
    None,
    /// Any free port.
    Any,
    /// This port.
    Fixed(u16),
}

/// Why a task gets no id: tasks' ids are C `int`s.
/// `vine_hungry` wants at least this many tasks waiting unless tuned
/// (`"hungry-minimum"`), as in TaskVine.
const DEFAULT_HUNGRY_MINIMUM: u64 = 10;

const IDS_EXHAUSTED: &str =
    "task ids are exhausted: every id up to 2147483647, the largest a C int \
     holds, was given (or vine_set_task_id_min asked for more)";

/// A task manager.
pub struct Manager {
    /// Where its log records go.
    sink: Arc<journal::Sink>,
    /// The progress line on standard error.
    progress: progress::Progress,
    tx: inbox::Sender<Message>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shutdown_result: Mutex<Option<Result<()>>>,
    /// Where the listener thread accepts workers (it alone holds the
    /// socket, so the port is free once it has stopped).
    listen_addr: Option<std::net::SocketAddr>,
    runtime_dir: PathBuf,
    /// Names this manager among those of the process, as the owner of the
    /// files declared to it.
    owner_id: u64,
    files: Mutex<Vec<Arc<File>>>,
    /// Files undeclared: kept (their data, not the manager's interest in
    /// them) until the manager goes, as the memory `vine_fetch_file` and
    /// `vine_file_source` returned must stay valid until `vine_delete`.
    undeclared: Mutex<Vec<Arc<File>>>,
    /// Every name the manager had, as C strings: what `vine_get_name` returned
    /// stays valid as long as the manager.
    names_c: Mutex<Vec<std::ffi::CString>>,
    info_dir: Mutex<Option<PathBuf>>,
    /// Recorded by `vine_enable_peer_transfers` / `vine_disable_peer_transfers`.
    peer_transfers: AtomicBool,
    max_stdout: Arc<AtomicUsize>,
    remote_settings: Arc<remote::RemoteSettings>,
    /// Its factories, and whether local worker processes were started.
    factories: Mutex<Vec<Arc<factory::Factory>>>,
    /// How many factories there are (read on every submission).
    factory_count: AtomicUsize,
    local_workers_started: AtomicBool,
    /// What the local pool downloaded or made (URLs, mini tasks).
    fetcher: Arc<crate::worker::fetch::Fetcher>,
    /// The local pool, for the direct lane (see [`direct`]).
    pool: LocalPool,
    /// A setting only the manager thread can honour was made (waiting for
    /// workers): no task takes the direct lane.
    direct_off: AtomicBool,
    /// Some category is sized automatically (an allocation mode other than
    /// FIXED, or a category maximum or minimum): its tasks need the manager's
    /// measurements, so no task takes the direct lane. Read on every submission.
    sizing_active: AtomicBool,
}

/// Where managers created from now on keep their runtime information (see
/// [`set_runtime_info_root`]).
static RUNTIME_INFO_ROOT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Managers created from now on each write their log into a fresh directory
/// under `root` (created if needed); None: they write none unless told.
pub fn set_runtime_info_root(root: Option<PathBuf>) {
    *RUNTIME_INFO_ROOT.lock().unwrap_or_else(|p| p.into_inner()) = root;
}

impl Manager {
    /// Starts a manager: its thread and its local pool, configured from the
    /// environment (`VINE_LOCAL_*`). With `Port::None` no socket is opened and only
    /// the local pool runs tasks.
    pub fn new(port: Port) -> Result<Manager> {
        Self::with_tls(port, None)
    }

    /// Like [`Manager::new`]; with `tls`, workers connect with TLS under that
    /// identity. The password comes from `VINE_PASSWORD_FILE` when it is set.
    pub fn with_tls(port: Port, tls: Option<crate::tls::ServerTls>) -> Result<Manager> {
        crate::worker::process::open_standard_fds();
        let runtime_dir = crate::files::fresh_dir(&crate::files::temp_root(), "vine")?;
        let cleanup = |e: Error| {
            let _ = std::fs::remove_dir_all(&runtime_dir);
            e
        };
        let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| Error::io(p.display(), e));
        mkdir(&runtime_dir.join("sandbox")).map_err(cleanup)?;
        mkdir(&runtime_dir.join("temp")).map_err(cleanup)?;
        // Removed by the guardian if the program ends without deleting the
        // manager (an exit(), a signal), once a guardian runs.
        crate::worker::guardian::remove_scratch_at_end(&runtime_dir);
        let cleanup = |e: Error| {
            crate::worker::guardian::keep_scratch_at_end(&runtime_dir);
            let _ = std::fs::remove_dir_all(&runtime_dir);
            e
        };
        let local_capacity = settings::local_resources_from_env(&runtime_dir).map_err(cleanup)?;
        let progress_asked = progress::Progress::env_setting().map_err(cleanup)?;
        // Where workers from other machines can connect, if they can.
        let mut exposed_at = None;
        let listener = match port {
            Port::None => None,
            Port::Any | Port::Fixed(_) => {
                let p = if let Port::Fixed(p) = port { p } else { 0 };
                // Loopback unless an address is chosen explicitly (VINE_LISTEN_ADDRESS):
                // whoever connects gets tasks, so only workers the user meant should.
                let host =
                    std::env::var("VINE_LISTEN_ADDRESS").unwrap_or_else(|_| "127.0.0.1".into());
                // A name that is no address at all is the caller's mistake
                // (EINVAL), not an OS failure; an address of another machine
                // fails to bind with the OS's own reason.
                let addrs: Vec<std::net::SocketAddr> =
                    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), p))
                        .map_err(|e| {
                            cleanup(Error::invalid(format!(
                                "VINE_LISTEN_ADDRESS {host:?} is not an address: {e}"
                            )))
                        })?
                        .collect();
                let l = std::net::TcpListener::bind(&addrs[..])
                    .map_err(|e| cleanup(Error::io(format!("cannot listen on {host}:{p}"), e)))?;
                if host != "127.0.0.1" && host != "localhost" && host != "::1" {
                    let port = l.local_addr().map_or(p, |a| a.port());
                    exposed_at = Some(format!("{host}:{port}"));
                }
                Some(l)
            }
        };
        let (tx, rx) = inbox::unbounded::<Message>();
        let shared = Arc::new(Shared {
            completions: CompletionQueue::default(),
            name: Mutex::new(None),
            submissions: Default::default(),
            accepting: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            next_id: Padded(AtomicU64::new(1)),
            autocategory: AtomicBool::new(true),
            processed_submits: Padded(AtomicU64::new(0)),
            collects_soon: Padded(AtomicBool::new(false)),
            tasks_left: AtomicU64::new(0),
            ready_len: Padded(AtomicU64::new(0)),
            local_assigned: Padded(AtomicU64::new(0)),
            slots: Padded(AtomicU64::new(0)),
            hungry_factor_milli: AtomicU64::new(2000),
            hungry_minimum: AtomicU64::new(DEFAULT_HUNGRY_MINIMUM),
            final_stats: Mutex::new(None),
            failure: Mutex::new(None),
            direct: direct::Counters::default(),
            local_place: Arc::new(crate::task::Place {
                hostname: CString::new(crate::worker::machine::hostname()).unwrap_or_default(),
                addrport: c"local".to_owned(),
            }),
        });
        let max_stdout = Arc::new(AtomicUsize::new(DEFAULT_MAX_STDOUT));
        let fetcher = Arc::new(crate::worker::fetch::Fetcher::new(
            runtime_dir.join("fetched"),
        ));
        let env = CommandEnv {
            sandbox_root: runtime_dir.join("sandbox"),
            temp_root: runtime_dir.join("temp"),
            max_stdout: max_stdout.clone(),
            fetcher: fetcher.clone(),
            watch: None,
        };
        // The pool wakes the manager thread when finished tasks wait for it.
        let wake = tx.clone();
        let report = Report::Outbox(Box::new(move || {
            let _ = wake.send(Message::WorkerReady {
                worker: core::LOCAL_WORKER,
            });
        }));
        let pool = LocalPool::new(local_capacity, env, report);
        pool.report_in_batches();
        pool.set_direct_sink(direct::sink(shared.clone(), tx.clone()));
        let direct_pool = pool.share();
        let sink = journal::Sink::start().map_err(cleanup)?;
        let sink_guard = journal::StopUnlessKept(Some(sink.clone()));
        let sched = scheduler::Scheduler::new(listener.is_some());
        let mut lp = core::ManagerLoop::new(
            sched,
            rx,
            shared.clone(),
            pool,
            local_capacity,
            sink.clone(),
        );
        lp.add_local_worker();
        lp.temp_root = runtime_dir.join("temp");
        let remote_settings = lp.remote_settings.clone();
        lp.sched.temps.peers_on = remote_settings.peers.on.clone();
        let _ = remote_settings.journal.set(sink.clone());
        let _ = remote_settings.staging.set(runtime_dir.join("temp"));
        if let Some(tls) = tls {
            let _ = remote_settings.tls.set(tls);
        }
        remote_settings.exposed_at(exposed_at);
        match std::env::var_os("VINE_PASSWORD_FILE") {
            Some(p) if listener.is_some() && !p.is_empty() => {
                let pw = crate::protocol::read_password(Path::new(&p)).map_err(cleanup)?;
                remote_settings.set_password(pw);
                remote_settings.seal();
            }
            _ => {}
        }
        let listening = listener.is_some();
        let mut listen_addr = None;
        if let Some(l) = listener {
            let addr = l
                .local_addr()
                .map_err(|e| cleanup(Error::io("listening socket", e)))?;
            let l = Arc::new(l);
            let handle = remote::start_listener(l.clone(), tx.clone(), remote_settings.clone())
                .map_err(|e| cleanup(Error::io("cannot start the listener thread", e)))?;
            lp.listener = Some(core::Listening {
                thread: handle,
                socket: l,
                addr,
            });
            listen_addr = Some(addr);
        }
        shared
            .slots
            .store(lp.sched.total_slots(), Ordering::Relaxed);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("vine-manager".into())
            .spawn(move || {
                // A panic here is a bug in the library; it must not leave callers
                // waiting forever for tasks that will never come.
                // (`FailNotice` records it as the thread unwinds.)
                if let Ok(last) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run()))
                {
                    *thread_shared
                        .final_stats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(last)
                }
                thread_shared.closed.store(true, Ordering::Release);
                thread_shared.completions.wake_all();
            })
            .map_err(|e| cleanup(Error::io("cannot start the manager thread", e)))?;
        // Where its logs go: asked for (a root set by the program or the
        // environment), or by default when it has a port, as TaskVine does.
        let root = RUNTIME_INFO_ROOT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let asked = root.clone().or_else(|| {
            std::env::var_os("VINE_RUNTIME_INFO_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let run_root = asked
            .clone()
            .or_else(|| listening.then(|| PathBuf::from(rundir::DEFAULT_ROOT)));
        sink_guard.keep();
        let manager = Manager {
            progress: progress::Progress::new(&tx, progress_asked),
            sink,
            tx,
            shared,
            thread: Mutex::new(Some(thread)),
            shutdown_result: Mutex::new(None),
            listen_addr,
            runtime_dir,
            owner_id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
            files: Mutex::new(Vec::new()),
            undeclared: Mutex::new(Vec::new()),
            names_c: Mutex::new(Vec::new()),
            info_dir: Mutex::new(None),
            peer_transfers: AtomicBool::new(true),
            max_stdout,
            remote_settings,
            factories: Mutex::new(Vec::new()),
            factory_count: AtomicUsize::new(0),
            local_workers_started: AtomicBool::new(false),
            fetcher,
            pool: direct_pool,
            direct_off: AtomicBool::new(false),
            sizing_active: AtomicBool::new(false),
        };
        if let Some(root) = run_root {
            let made = rundir::create(&root).and_then(|dir| manager.set_runtime_info_path(&dir));
            match made {
                Ok(()) => {}
                Err(e) if asked.is_some() => return Err(e),
                // By default only: a manager runs without logs rather than not at all.
                Err(e) => eprintln!("vine: no logs for this run: {e}"),
            }
        }
        Ok(manager)
    }

    /// The directory the manager writes its log into, if any.
    pub fn runtime_info_dir(&self) -> Option<PathBuf> {
        self.info_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The SHA-256 fingerprint of the manager's TLS certificate, if workers connect
    /// with TLS.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.remote_settings.tls.get().map(|t| t.fingerprint())
    }

    /// [`Manager::tls_fingerprint`] as a C string.
    pub fn tls_fingerprint_c(&self) -> Option<&std::ffi::CStr> {
        self.remote_settings.tls.get().map(|t| t.fingerprint_c())
    }

    /// The port remote workers connect to, if listening.
    pub fn port(&self) -> Option<u16> {
        self.listen_addr.map(|a| a.port())
    }

    /// Submits `task`; returns its id. On error the task is handed back.
    pub fn submit(&self, mut task: Box<Task>) -> std::result::Result<TaskId, (Error, Box<Task>)> {
        self.prepare_submission(&mut task);
        self.submit_prepared(task)
    }

    /// [`Manager::submit`] for a task [`Manager::prepare_submission`] readied.
    pub(crate) fn submit_prepared(
        &self,
        mut task: Box<Task>,
    ) -> std::result::Result<TaskId, (Error, Box<Task>)> {
        self.remote_settings.seal();
        if !self.shared.accepting.load(Ordering::Acquire) {
            let e = self
                .shared
                .failure()
                .unwrap_or_else(|| Error::new(ErrorKind::ShutDown, "the manager was shut down"));
            return Err((e, task));
        }
        if let crate::task::Work::Command { command } = task.work() {
            if command.is_empty() {
                return Err((
                    Error::invalid("the task has no command (see vine_task_set_command)"),
                    task,
                ));
            }
        }
        if let Some(e) = task.extra.as_ref() {
            if let Some(m) = e
                .inputs
                .iter()
                .chain(e.outputs.iter())
                .find(|m| !m.file.usable_by(self.owner_id))
            {
                let e = Error::invalid(format!(
                    "the file of {:?} was declared to another manager",
                    m.remote_name
                ));
                return Err((e, task));
            }
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if id > i32::MAX as u64 {
            // A refused task takes no id: the count stays just past the last.
            self.shared
                .next_id
                .fetch_min(i32::MAX as u64 + 1, Ordering::Relaxed);
            return Err((Error::invalid(IDS_EXHAUSTED), task));
        }
        task.id = id;
        task.times.submitted = now_us();
        let mut counted = false;
        if self.direct_lane_open()
            && direct::eligible(&task)
            && self.shared.completions.outstanding() == 0
            && self.pool.has_idle_core()
            && self.pool.direct_waiting() == 0
            && self.shared.ready_len.load(Ordering::Relaxed) == 0
            && self.shared.local_assigned.load(Ordering::Relaxed) == 0
            && self.shared.submissions().tasks.is_empty()
        {
            // Counted before a waiter can see it finish.
            self.shared.completions.count_submitted();
            counted = true;
            // The manager thread may have closed the lane since it was looked at.
            if self.shared.direct.take(task.category()) {
                direct::prepare(&mut task, core::LOCAL_WORKER, &self.shared.local_place);
                match self.pool.submit_direct(task) {
                    Ok(()) => return Ok(id),
                    // Shutdown began: the manager's path refuses it or cancels it.
                    Err(back) => {
                        task = back;
                        self.shared.direct.give_back(task.category());
                        task.publish_state(crate::task::State::Ready);
                    }
                }
            }
        }
        let mut queue = self.shared.submissions();
        if queue.closed {
            drop(queue);
            if counted {
                self.shared.completions.uncount_submitted();
            }
            task.id = 0;
            let e = self
                .shared
                .failure()
                .unwrap_or_else(|| Error::new(ErrorKind::ShutDown, "the manager has stopped"));
            return Err((e, task));
        }
        // Counted before the manager can see it, so that `wait` never finds more
        // taken than submitted.
        if !counted {
            self.shared.completions.count_submitted();
        }
        let first = queue.tasks.is_empty();
        queue.tasks.push_back(task);
        drop(queue);
        // No wake-up while the manager thread will come for it on its timer.
        // Both sides are sequentially consistent: the manager clears the flag
        // before it next takes this queue, so either it finds this task there
        // or this thread sees the flag cleared and wakes it.
        if first && !self.shared.collects_soon.load(Ordering::SeqCst) {
            // The manager takes what is queued before it ends (it closes the queue
            // first), so a failed send loses nothing.
            let _ = self.tx.send(Message::Submitted);
        }
        self.nudge_factories();
        Ok(id)
    }

    /// Demand changed: factories look now rather than at their next cycle.
    fn nudge_factories(&self) {
        if self.factory_count.load(Ordering::Relaxed) > 0 {
            for f in self
                .factories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                f.nudge();
            }
        }
    }

    /// Tells the factories that the program has `n` tasks yet to submit
    /// (TaskVine's tasks-left count): each counts in their demand as a task of
    /// the default size (one core) until the next call changes the count.
    pub fn set_tasks_left_count(&self, n: u64) {
        self.shared.tasks_left.store(n, Ordering::Relaxed);
        self.nudge_factories();
    }

    /// Readies `task` for submission: what an earlier submission left is
    /// forgotten, and its category is decided (the function's name under
    /// autocategory). [`Manager::submit`] does it; the C API does it while it
    /// takes the task from its handle, so that the handle shows the category
    /// the manager counts it in, then calls [`Manager::submit_prepared`].
    pub(crate) fn prepare_submission(&self, task: &mut Task) {
        task.reset_for_submit();
        if self.shared.autocategory.load(Ordering::Relaxed) {
            task.flags |= FLAG_AUTOCATEGORY;
        }
    }

    /// True while tasks may take the direct lane: nothing needs the manager's
    /// view of every task (see [`direct`]).
    fn direct_lane_open(&self) -> bool {
        self.listen_addr.is_none()
            && self.factory_count.load(Ordering::Relaxed) == 0
            && !self.local_workers_started.load(Ordering::Relaxed)
            && !self.sizing_active.load(Ordering::Relaxed)
            && !self.direct_off.load(Ordering::Relaxed)
            && !self.sink.txn_on.load(Ordering::Relaxed)
            && !self.sink.perf_on.load(Ordering::Relaxed)
            && !self.sink.graph_on.load(Ordering::Relaxed)
    }

    /// The next finished task, waiting up to `timeout` (None = forever). None on
    /// timeout or when no task is outstanding.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<Box<Task>> {
        self.wait_for(Want::Any, timeout)
    }

    /// Like [`Manager::wait_for`], but an error instead of None when the manager
    /// thread has failed and no finished task is left to take.
    pub fn try_wait_for(
        &self,
        want: Want<'_>,
        timeout: Option<Duration>,
    ) -> Result<Option<Box<Task>>> {
        match self.wait_for(want, timeout) {
            Some(t) => Ok(Some(t)),
            None => self.shared.failure().map_or(Ok(None), Err),
        }
    }

    /// Why a wait for `want` bounded by `timeout` gave nothing, for its caller
    /// to report: nothing was outstanding, that id was not, or the time ran out.
    pub fn why_nothing(&self, want: Want<'_>, timeout: Option<Duration>) -> Error {
        if let Some(e) = self.shared.failure() {
            return e;
        }
        if self.shared.completions.outstanding() == 0 {
            return Error::new(
                ErrorKind::UnknownTask,
                "no task is outstanding: every task submitted was returned by a wait",
            );
        }
        if let Want::Id(id) = want {
            let outstanding = self
                .ask(|reply| Message::IsOutstanding { id, reply })
                .unwrap_or(false);
            if !outstanding {
                return Error::new(
                    ErrorKind::UnknownTask,
                    format!("task {id} is not outstanding (not submitted, or already returned)"),
                );
            }
        }
        let what = match want {
            Want::Any => "no task".to_string(),
            Want::Id(id) => format!("task {id}"),
            Want::Tag(tag) => format!("no task tagged \"{}\"", tag.to_string_lossy()),
        };
        let verb = if matches!(want, Want::Id(_)) {
            "has not finished"
        } else {
            "finished"
        };
        match timeout {
            Some(t) if t.is_zero() => Error::new(
                ErrorKind::Timeout,
                format!("{what} {verb} (the wait did not block)"),
            ),
            Some(t) => Error::new(
                ErrorKind::Timeout,
                format!("{what} {verb} within {} s", t.as_secs()),
            ),
            None => Error::new(ErrorKind::Timeout, format!("{what} {verb}")),
        }
    }

    /// Like [`Manager::wait`], for one task id or one tag.
    pub fn wait_for(&self, want: Want<'_>, timeout: Option<Duration>) -> Option<Box<Task>> {
        self.remote_settings.seal();
        // A timeout past what an Instant holds is no bound at all.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let shared = &self.shared;
        // Once the manager thread ended, what is still outstanding and not
        // here is a function shutdown abandoned, which may yet return (its task
        // then comes here); unless the thread failed, when nothing will.
        let possible = |cq: &CompletionQueue| {
            cq.outstanding() > 0 && (!shared.closed.load(Ordering::Acquire) || !shared.has_failed())
        };
        if let Want::Id(id) = want {
            // Finished already: no need to ask the manager.
            if let Some(t) = shared.completions.wait(want, None, |_| false) {
                return Some(t);
            }
            // Wait for it only if it is on its way; otherwise take it if finished.
            if !self
                .ask(|reply| Message::IsOutstanding { id, reply })
                .unwrap_or(false)
            {
                return shared
                    .completions
                    .wait(want, Some(Instant::now()), |_| false);
            }
        }
        // A direct task waits to start: a waiter with no deadline runs it here
        // rather than sleep until a pool thread has (see `run_direct_here`).
        if matches!(want, Want::Any) && timeout.is_none() {
            while self.pool.direct_waiting() > 0 {
                if let Some(t) = shared
                    .completions
                    .wait(want, Some(Instant::now()), |_| false)
                {
                    return Some(t);
                }
                if !self.pool.run_direct_here() {
                    break;
                }
            }
        }
        // A direct task left for a dozing pool thread is not left to its
        // timer by a caller about to wait for it.
        self.pool.start_deferred();
        // A direct task runs (or is about to) while a local core is idle: it is likely to end
        // within microseconds, sooner than a sleeping waiter could be woken.
        // With every core busy, the waiter sleeps at once, taking no CPU from
        // running tasks.
        if matches!(want, Want::Any)
            && self.pool.has_idle_core()
            && (self.pool.direct_running() || self.pool.direct_waiting() > 0)
            && possible(&shared.completions)
        {
            shared.completions.spin_for_push();
        }
        shared.completions.wait(want, deadline, possible)
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Message) -> Result<T> {
        let (reply, answer) = reply::oneshot();
        let gone = || {
            self.shared
                .failure()
                .unwrap_or_else(|| Error::new(ErrorKind::ShutDown, "the manager has stopped"))
        };
        self.tx.send(make(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())
    }

    /// Cancels task `id`: on success it comes back from `wait` as cancelled,
    /// whatever happens to it meanwhile. An error if it has finished already (it
    /// then comes back as it finished) or was never submitted.
    pub fn cancel(&self, id: TaskId) -> Result<()> {
        if self.ask(|reply| Message::Cancel { id, reply })? {
            Ok(())
        } else if self.shared.completions.result_of(id) == Some(TaskResult::Cancelled) {
            // Cancelled already and not yet taken by a wait: it comes back
            // cancelled, as a second cancel of a running task is told.
            Ok(())
        } else if id < self.shared.next_id.load(Ordering::Relaxed) {
            Err(Error::new(
                ErrorKind::UnknownTask,
                format!("task {id} has already finished; it was not cancelled"),
            ))
        } else {
            Err(Error::new(
                ErrorKind::UnknownTask,
                format!("no task {id} was submitted"),
            ))
        }
    }

    /// Cancels the first submitted waiting or running task tagged `tag` (None:
    /// with no tag); true if there was one.
    pub fn cancel_by_tag(&self, tag: Option<&CStr>) -> Result<bool> {
        let tag = tag.map(CStr::to_owned);
        self.ask(|reply| Message::CancelByTag {
            tag,
            all: false,
            reply,
        })
        .map(|n| n > 0)
    }

    /// Cancels every waiting and running task tagged `tag` (None: with no tag);
    /// returns how many.
    pub fn cancel_all_by_tag(&self, tag: Option<&CStr>) -> Result<usize> {
        let tag = tag.map(CStr::to_owned);
        self.ask(|reply| Message::CancelByTag {
            tag,
            all: true,
            reply,
        })
    }

    /// Cancels every waiting and running task; returns how many.
    pub fn cancel_all(&self) -> Result<usize> {
        self.ask(|reply| Message::CancelAll { reply })
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Result<Stats> {
        self.remote_settings.seal();
        let mut stats = self.ask(|reply| Message::Stats { reply }).or_else(|e| {
            // After shutdown: the counters as the manager left them.
            self.shared
                .final_stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ok_or(e)
        })?;
        self.shared.direct.add_to(&mut stats, &self.pool);
        Ok(stats)
    }

    /// The connected workers (the local pool counts as one) grouped by their
    /// whole resources, with how many have each size.
    pub fn worker_sizes(&self) -> Result<Vec<(Resources, u64)>> {
        self.ask(|reply| Message::WorkerSizes { reply })
    }

    /// True when no task is outstanding (submitted and not yet taken by `wait`).
    pub fn empty(&self) -> bool {
        self.remote_settings.seal();
        self.shared.completions.outstanding() == 0
    }

    /// True while the manager would like more tasks: fewer are waiting for a worker
    /// than `hungry-factor` (default 2) times the workers' slots.
    pub fn hungry(&self) -> bool {
        self.hungry_for() > 0
    }

    /// How many more tasks the manager wants now: `hungry-factor` times the
    /// workers' slots, less the tasks waiting (0 when not hungry or shut down).
    pub fn hungry_for(&self) -> usize {
        self.remote_settings.seal();
        if !self.shared.accepting.load(Ordering::Acquire) {
            return 0;
        }
        let s = &self.shared;
        // Submitted by callers but not yet seen by the manager (direct tasks
        // never are: those waiting in the pool are counted below).
        let in_channel = self.unseen_submissions();
        let waiting =
            s.ready_len.load(Ordering::Relaxed) + in_channel + self.pool.direct_waiting() as u64;
        let slots = s.slots.load(Ordering::Relaxed).max(1);
        let factor = s.hungry_factor_milli.load(Ordering::Relaxed);
        // Hungry while waiting < slots * factor: as a count, the whole tasks
        // that can still join the queue.
        let want = (slots * factor)
            .div_ceil(1000)
            .max(s.hungry_minimum.load(Ordering::Relaxed))
            .saturating_sub(waiting);
        usize::try_from(want).unwrap_or(usize::MAX)
    }

    /// Applies a `vine_tune` setting.
    pub fn tune(&self, name: &str, value: f64) -> Result<()> {
        let setting = Setting::parse(name, value)?;
        match setting {
            Setting::Autocategory(on) => self.shared.autocategory.store(on, Ordering::Relaxed),
            Setting::Progress(on) => self.progress.set(on, &self.tx),
            Setting::MaxStdout(n) => {
                self.max_stdout.store(n, Ordering::Relaxed);
                // Remote workers are told with each task.
                self.remote_settings
                    .max_stdout
                    .store(n as u64, Ordering::Relaxed);
            }
            Setting::LocalWorkerProcesses(n) => self.start_local_workers(n, None)?,
            // Held until workers join: only the manager thread holds tasks back.
            Setting::WaitForWorkers(n) if n > 1 => {
                self.direct_off.store(true, Ordering::Relaxed);
                return self.ask(|reply| Message::Tune { setting, reply })?;
            }
            Setting::WorkerSourceMaxTransfers(n) => self
                .remote_settings
                .peers
                .worker_max
                .store(n, Ordering::Relaxed),
            Setting::FileSourceMaxTransfers(n) => self
                .remote_settings
                .peers
                .file_max
                .store(n, Ordering::Relaxed),
            Setting::TempReplicaCount(n) => self
                .remote_settings
                .peers
                .temp_replicas
                .store(n, Ordering::Relaxed),
            Setting::HungryMinimum(n) => self
                .shared
                .hungry_minimum
                .store(n as u64, Ordering::Relaxed),
            Setting::HungryFactor(f) => self
                .shared
                .hungry_factor_milli
                .store((f * 1000.0).max(1.0) as u64, Ordering::Relaxed),
            Setting::Proportional(on) => {
                self.change_categories(categories::Change::Proportional(on))?
            }
            _ => self.ask(|reply| Message::Tune { setting, reply })??,
        }
        Ok(())
    }

    /// Starts `n` worker processes on this machine (1 core each), running
    /// `program` (default: see [`factory::worker_program`]), and starts another
    /// whenever one ends: a local factory keeping `n` workers.
    /// `n` 0 (the default) starts nothing and leaves the one start open.
    pub fn start_local_workers(&self, n: usize, program: Option<&Path>) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        if self.local_workers_started.swap(true, Ordering::AcqRel) {
            return Err(Error::invalid(
                "local worker processes were already started (they are set once only)",
            ));
        }
        if self.port().is_none() {
            self.local_workers_started.store(false, Ordering::Release);
            return Err(Error::invalid(
                "local worker processes connect to the manager's port: \
                 create it with a port, not VINE_PORT_NONE",
            ));
        }
        if self.is_shut_down() {
            return Ok(());
        }
        let program = program.map_or_else(factory::worker_program, Path::to_path_buf);
        let n = n as f64;
        self.start_factory(factory::Kind::Local, |c| {
            c.set("min-workers", n)?;
            c.set("max-workers", n)?;
            c.set("workers-per-cycle", n)?;
            c.set("idle-timeout", 1e8)?;
            c.set_string("worker-path", &program.display().to_string())
        })
        .map(drop)
        .inspect_err(|_| self.local_workers_started.store(false, Ordering::Release))
    }

    /// A new factory submitting worker jobs to `batch_type` ("local", "slurm" or
    /// "custom"); it belongs to the manager, which stops it at shutdown.
    pub fn create_factory(&self, batch_type: &str) -> Result<Arc<factory::Factory>> {
        let kind = factory::Kind::parse(batch_type)?;
        self.start_factory(kind, |_| Ok(()))
    }

    fn start_factory(
        &self,
        kind: factory::Kind,
        setup: impl FnOnce(&mut factory::ConfigEdit) -> Result<()>,
    ) -> Result<Arc<factory::Factory>> {
        self.remote_settings.seal();
        let addr = self.listen_addr.ok_or_else(|| {
            Error::invalid(
                "a factory's workers connect to the manager's port: \
                     create the manager with a port, not VINE_PORT_NONE",
            )
        })?;
        if self.is_shut_down() {
            return Err(Error::new(ErrorKind::ShutDown, "the manager has shut down"));
        }
        let ip = addr.ip();
        let host = if ip.is_unspecified() {
            if kind == factory::Kind::Local {
                "127.0.0.1".to_owned()
            } else {
                crate::worker::machine::hostname()
            }
        } else {
            ip.to_string()
        };
        if ip.is_loopback() && kind != factory::Kind::Local {
            eprintln!(
                "vine: factory: the manager listens on {ip} only, so its workers can run on \
                 this machine only; to reach compute nodes set VINE_LISTEN_ADDRESS to an \
                 address they can reach (and set a password) before vine_create"
            );
        }
        // The password as it is at each submission, not now: one set later
        // reaches the jobs submitted from then on.
        let settings = self.remote_settings.clone();
        let endpoint = factory::Endpoint {
            host,
            port: addr.port(),
            password: Arc::new(move || settings.password()),
            tls_fingerprint: self
                .remote_settings
                .tls
                .get()
                .map(|t| t.fingerprint().to_owned()),
        };
        let default_dir = if kind == factory::Kind::Local {
            self.runtime_dir.clone()
        } else {
            std::env::current_dir().map_err(|e| Error::io("the current directory", e))?
        };
        let f = factory::Factory::start(kind, self.tx.clone(), endpoint, &default_dir, setup)?;
        let mut all = self.factories.lock().unwrap_or_else(|p| p.into_inner());
        // A shutdown that began meanwhile (another thread) stops the factories
        // it finds in the list; one it cannot find stops here.
        if self.is_shut_down() {
            drop(all);
            let grace = if kind == factory::Kind::Local { 5 } else { 60 };
            let _ = f.stop(Duration::from_secs(grace));
            return Err(Error::new(ErrorKind::ShutDown, "the manager has shut down"));
        }
        all.push(f.clone());
        self.factory_count.store(all.len(), Ordering::Relaxed);
        drop(all);
        Ok(f)
    }

    /// Stops factory `f` (see [`factory::Factory::stop`]) and forgets it.
    pub fn delete_factory(&self, f: &Arc<factory::Factory>) -> Result<()> {
        // Stopped while still listed: a shutdown meanwhile (another thread)
        // stops it too, and so waits until its jobs are gone.
        let stopped = f.stop(Duration::from_secs(60));
        let mut all = self.factories.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|g| !Arc::ptr_eq(g, f));
        self.factory_count.store(all.len(), Ordering::Relaxed);
        stopped
    }

    /// The last failure any of its factories reported, if any.
    pub fn factory_error(&self) -> Option<String> {
        self.factories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|f| f.last_error())
    }

    /// Sets the manager's name (what `vine_status` and the debug log show);
    /// None forgets it.
    pub fn set_name(&self, name: Option<&str>) -> Result<()> {
        if name == Some("") {
            return Err(Error::invalid("a manager name cannot be empty"));
        }
        *self.shared.name.lock().unwrap_or_else(|p| p.into_inner()) = name.map(str::to_owned);
        self.log_debug(&format!("manager named {}", self.name()));
        Ok(())
    }

    /// The manager's name, "vine" if none was set.
    pub fn name(&self) -> String {
        self.shared
            .name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "vine".into())
    }

    /// The name set, as a C string valid as long as the manager; NULL if
    /// none was set.
    pub fn name_c(&self) -> *const std::ffi::c_char {
        let Some(name) = self
            .shared
            .name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return std::ptr::null();
        };
        let mut names = self.names_c.lock().unwrap_or_else(|p| p.into_inner());
        if names.last().is_none_or(|n| n.to_bytes() != name.as_bytes()) {
            names.push(std::ffi::CString::new(name.replace('\0', " ")).unwrap_or_default());
        }
        names.last().map_or(std::ptr::null(), |n| n.as_ptr())
    }

    /// `s` as a C string kept as long as the manager (the same string is kept
    /// once, however often it is asked for).
    pub fn keep_c(&self, s: &str) -> *const std::ffi::c_char {
        let mut kept = self.names_c.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.iter().find(|k| k.to_bytes() == s.as_bytes()) {
            return k.as_ptr();
        }
        kept.push(std::ffi::CString::new(s.replace('\0', " ")).unwrap_or_default());
        kept.last().map_or(std::ptr::null(), |n| n.as_ptr())
    }

    /// Future tasks get ids of at least `min`; returns the id the next task
    /// gets (a smaller `min` changes nothing), or an error once every id a C
    /// `int` holds was given (or `min` is past them).
    pub fn set_task_id_min(&self, min: u64) -> Result<u64> {
        let before = self.shared.next_id.fetch_max(min, Ordering::Relaxed);
        let next = before.max(min);
        if next > i32::MAX as u64 {
            return Err(Error::invalid(IDS_EXHAUSTED));
        }
        Ok(next)
    }

    /// Blocks `host` (its workers' host name or address): its workers are cut
    /// off now, their tasks run elsewhere, and none may join until it is
    /// unblocked or `timeout` has passed. Returns how many were cut off.
    pub fn block_host(&self, host: &str, timeout: Option<Duration>) -> Result<usize> {
        self.ask(|reply| Message::BlockHost {
            host: host.to_owned(),
            timeout,
            reply,
        })
    }

    /// Lifts the block of `host` (every host if None).
    pub fn unblock_host(&self, host: Option<&str>) {
        self.remote_settings.unblock(host);
    }

    /// Stops (`on`) or resumes giving new tasks to the remote workers on `host`;
    /// draining workers are told to exit once they hold no task. Returns how many
    /// workers are on `host`.
    pub fn drain_host(&self, host: &str, on: bool) -> Result<usize> {
        self.ask(|reply| Message::Drain {
            host: host.to_owned(),
            on,
            reply,
        })
    }

    /// Tells up to `n` (None: every) remote worker holding no task to exit;
    /// returns how many were told.
    pub fn shutdown_workers(&self, n: Option<usize>) -> Result<usize> {
        self.ask(|reply| Message::ShutdownWorkers { n, reply })
    }

    /// Records whether peer transfers are wanted (see `vine_enable_peer_transfers`).
    pub fn set_peer_transfers(&self, on: bool) {
        self.peer_transfers.store(on, Ordering::Relaxed);
        self.remote_settings.peers.on.store(on, Ordering::Relaxed);
    }

    /// Whether peer transfers were asked for.
    pub fn peer_transfers(&self) -> bool {
        self.peer_transfers.load(Ordering::Relaxed)
    }

    /// Measures every task submitted from now on, stopping those past their
    /// memory or disk when `watchdog` (see `vine_enable_monitoring`).
    pub fn enable_monitoring(&self, watchdog: bool) -> Result<()> {
        self.change_categories(categories::Change::Monitoring(watchdog))
    }

    /// Changes how categories are sized or bounded, or turns monitoring on.
    pub fn change_categories(&self, change: categories::Change) -> Result<()> {
        // Tasks are measured or sized from now on: the manager sees every one.
        self.sizing_active.store(true, Ordering::Relaxed);
        self.ask(|reply| Message::Category { change, reply })
    }

    /// Counts what the resource summaries in `path` measured as measured by
    /// tasks of their categories (see [`summary::read_all`]), each figure
    /// bounded by `cap`; nothing changes if the file cannot be read whole.
    pub fn initialize_categories(
        &self,
        cap: categories::Partial,
        path: &std::path::Path,
    ) -> Result<()> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
        let measured = summary::read_all(file, cap)?;
        self.change_categories(categories::Change::Seed(measured))
    }

    /// True while the manager thread sleeps on its timer to collect from a
    /// deep local pool, so that submissions do not wake it (for tests).
    #[doc(hidden)]
    pub fn collects_on_timer(&self) -> bool {
        self.shared.collects_soon.load(Ordering::SeqCst)
    }

    /// Tasks submitted that the manager thread has not taken yet (direct
    /// tasks never reach it).
    #[doc(hidden)]
    pub fn unseen_submissions(&self) -> u64 {
        let s = &self.shared;
        s.completions.submitted_total().saturating_sub(
            s.processed_submits.load(Ordering::Relaxed) + s.direct.submitted_total(),
        )
    }

    /// How many tasks took the direct lane so far (for tests and benchmarks).
    #[doc(hidden)]
    pub fn direct_tasks(&self) -> u64 {
        self.shared.direct.submitted_total()
    }

    /// One category's counts, and how many of its tasks wait.
    pub fn category_stats(
        &self,
        category: &std::ffi::CStr,
    ) -> Result<(categories::CategoryStats, u64)> {
        let name = category.to_owned();
        let (mut stats, waiting) = self.ask(|reply| Message::CategoryStats {
            category: name,
            reply,
        })?;
        // Direct tasks are counted as running from their submission: the pool
        // starts them at once (it had an idle core).
        self.shared.direct.add_category_to(category, &mut stats);
        Ok((stats, waiting))
    }

    /// Takes back tasks of `category` running on a remote worker past
    /// `factor` times the category's average, as
    /// `disconnect-slow-workers-factor` does for every category (see
    /// `vine_enable_disconnect_slow_workers_category`); below 1 the category
    /// follows that setting again. The category "default" is that setting.
    pub fn set_slow_workers_category(&self, category: &std::ffi::CStr, factor: f64) -> Result<()> {
        if !factor.is_finite() || factor > settings::MAX_HUNGRY_FACTOR {
            return Err(Error::invalid(format!(
                "the multiplier must be a finite number up to {:e}, not {}",
                settings::MAX_HUNGRY_FACTOR,
                crate::error::Shown(factor)
            )));
        }
        if category.is_empty() {
            return Err(Error::invalid("the category name is empty"));
        }
        // As TaskVine's: at least 1 is the category's own, 0 turns it off
        // for the category whatever the default, any other follows the
        // default (the default category's own is then off).
        if category == crate::task::DEFAULT_CATEGORY {
            let factor = if factor >= 1.0 { factor } else { 0.0 };
            return self.tune("disconnect-slow-workers-factor", factor);
        }
        let factor = if factor >= 1.0 || factor == 0.0 {
            factor
        } else {
            -1.0
        };
        let category = category.to_owned();
        self.ask(|reply| Message::SlowWorkersCategory {
            category,
            factor,
            reply,
        })
    }

    /// Reads the password remote workers must prove they know. Local worker
    /// processes and factories, started before or after, give it to the jobs
    /// they submit from now on (see [`factory`]).
    pub fn set_password_file(&self, path: &Path) -> Result<()> {
        let pw = crate::protocol::read_password(path)?;
        self.remote_settings.set_password(pw);
        self.remote_settings.seal();
        Ok(())
    }

    /// Sets the password from memory, less trailing white space as from a file,
    /// as [`Manager::set_password_file`] does. Local worker processes and
    /// factories get it as a file, readable by this user only, in their
    /// scratch directory, never on a command line.
    pub fn set_password(&self, password: &[u8]) -> Result<()> {
        let mut pw = password.to_vec();
        while pw.last().is_some_and(|b| b.is_ascii_whitespace()) {
            pw.pop();
        }
        if pw.is_empty() {
            return Err(Error::invalid("a password cannot be empty"));
        }
        self.remote_settings.set_password(pw);
        self.remote_settings.seal();
        Ok(())
    }

    /// Directory of this run's information: its logs go to `dir/vine-logs/`
    /// (`transactions`, `performance`, `debug`, created or truncated) from now on.
    pub fn set_runtime_info_path(&self, dir: &Path) -> Result<()> {
        let logs = dir.join("vine-logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(logs.display(), e))?;
        self.sink
            .open(journal::Target::Debug, &logs.join("debug"))?;
        self.sink
            .open(journal::Target::Txn, &logs.join("transactions"))?;
        self.sink
            .open(journal::Target::Perf, &logs.join("performance"))?;
        self.log_debug(&format!(
            "manager {} started (pid {}, scratch {})",
            self.name(),
            std::process::id(),
            self.runtime_dir.display()
        ));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        self.sink.set_run_dir(&dir);
        *self.info_dir.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir);
        Ok(())
    }

    /// Writes the transactions log to `path` from now on.
    pub fn enable_transactions_log(&self, path: &Path) -> Result<()> {
        self.log_barrier();
        self.sink.open(journal::Target::Txn, path)
    }

    /// Writes the performance log to `path` from now on.
    pub fn enable_perf_log(&self, path: &Path) -> Result<()> {
        self.log_barrier();
        self.sink.open(journal::Target::Perf, path)
    }

    /// Writes the task graph log to `path` from now on: every task submitted
    /// from now on, with its files.
    pub fn enable_taskgraph_log(&self, path: &Path) -> Result<()> {
        self.log_barrier();
        self.sink.open(journal::Target::Graph, path)
    }

    /// Waits until the manager thread has recorded what was submitted before
    /// this call, so that a log opened next does not take the records of
    /// earlier events from the log they happened under (or, opened for the
    /// first time, records of tasks submitted before it). Once the manager
    /// thread has ended there is nothing left to record.
    fn log_barrier(&self) {
        let _ = self.ask(|reply| Message::LogBarrier { reply });
    }

    /// The program exits with this manager alive: its logs get what its end
    /// would have written (the last performance row, the state, the task
    /// graph's closing brace), waiting at most `limit` for the manager thread.
    /// The records still have to be written (see `journal::flush_all`).
    pub(crate) fn end_logs_at_exit(&self, limit: Duration) {
        let (reply, answer) = reply::oneshot();
        if self.tx.send(Message::AtExit { reply }).is_ok() {
            let _ = answer.recv_timeout(limit);
        }
        if self.sink.graph_on.load(Ordering::Relaxed) {
            self.sink.push(journal::Other::GraphEnd);
        }
    }

    /// Removes the scratch directory (sandboxes, temps) of a manager the
    /// program did not delete before it exited: nothing will use it.
    pub(crate) fn remove_scratch_at_exit(&self) {
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        crate::worker::guardian::keep_scratch_at_end(&self.runtime_dir);
    }

    /// Writes the debug log to `path` from now on.
    pub fn enable_debug_log(&self, path: &Path) -> Result<()> {
        self.sink.open(journal::Target::Debug, path)
    }

    /// Adds an APPLICATION record to the transactions log.
    pub fn log_txn_app(&self, text: &str) {
        if self.sink.txn_on.load(Ordering::Relaxed) {
            self.sink.push(journal::Other::App(text.to_owned()));
        }
    }

    /// Adds a line to the debug log.
    pub fn log_debug(&self, text: &str) {
        self.sink.push(journal::Other::Debug(text.to_owned()));
    }

    /// Waits until every record so far is written to the log files.
    pub fn sync_logs(&self) {
        self.sink.sync();
    }

    /// The current contents of `file` (see [`File::fetch`]); a temp kept at a
    /// remote worker is brought from it first.
    pub fn fetch_file(&self, file: &Arc<File>) -> Result<Arc<[u8]>> {
        self.check_owner(file)?;
        // Only the manager thread knows whether a worker keeps it.
        if matches!(file.kind(), crate::files::FileKind::Temp) && file.temp_location().is_none() {
            self.ask(|reply| Message::FetchTemp {
                file: file.clone(),
                reply,
            })??;
        }
        file.fetch()
    }

    /// The remote worker that keeps temp `file`, if only a worker has it (the
    /// manager has no copy, and it is not being made again).
    pub fn temp_worker(&self, file: &File) -> Option<WorkerId> {
        self.ask(|reply| Message::TempWorker {
            file_id: file.id(),
            reply,
        })
        .ok()
        .flatten()
    }

    /// Deletes the copies of `file` that workers keep (cached, kept as a temp,
    /// downloaded or made there); the manager's own data stays. Returns how
    /// many workers had one: the local pool counts when it had made the file.
    pub fn prune_file(&self, file: &Arc<File>) -> Result<usize> {
        self.check_declarer(file)?;
        let remote = self.ask(|reply| Message::Prune {
            file: file.clone(),
            reply,
        })?;
        let local = file.worker_key().is_some_and(|k| self.fetcher.forget(&k));
        Ok(remote + usize::from(local))
    }

    /// Forgets `file`: workers delete their copies (see [`Manager::prune_file`]),
    /// the manager no longer holds it, and what it keeps for it goes (a temp's
    /// data; a path declared with `FILE_UNLINK_WHEN_DONE`). Tasks holding it
    /// keep the object until they go.
    pub fn undeclare(&self, file: &Arc<File>) -> Result<()> {
        self.prune_file(file)?;
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|f| !Arc::ptr_eq(f, file));
        file.release();
        self.undeclared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(file.clone());
        Ok(())
    }

    /// An error if `file` was declared to another manager.
    /// An error if `file`, or a file it is made from, was declared to another
    /// manager.
    pub(crate) fn check_owner(&self, file: &File) -> Result<()> {
        if file.usable_by(self.owner_id) {
            Ok(())
        } else {
            Err(Error::invalid("the file was declared to another manager"))
        }
    }

    /// An error if `file` itself was declared to another manager: what only
    /// names the file (prune, undeclare, count its replicas) may be done by
    /// the manager it was declared to whatever it is made from.
    fn check_declarer(&self, file: &File) -> Result<()> {
        if file.declared_by(self.owner_id) {
            Ok(())
        } else {
            Err(Error::invalid("the file was declared to another manager"))
        }
    }

    /// Keeps `file` alive as long as the manager and returns it. The first
    /// manager a file is declared to owns it: tasks of other managers cannot
    /// use it, nor can those managers fetch, prune or undeclare it.
    pub fn declare(&self, file: Arc<File>) -> Arc<File> {
        if !file.claim(self.owner_id) {
            return file;
        }
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(file.clone());
        file
    }

    /// Stops accepting tasks, cancels those not running, lets running ones finish
    /// (up to `shutdown-timeout`, then kills them) and joins every thread. Calling
    /// it again returns the first call's result.
    pub fn shutdown(&self) -> Result<()> {
        let mut result = self
            .shutdown_result
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = result.as_ref() {
            return r.clone();
        }
        self.shared.accepting.store(false, Ordering::Release);
        for f in self
            .factories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            f.pause();
        }
        let mut outcome = self
            .ask(|reply| Message::Shutdown { reply })
            .and_then(|r| r);
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        // The workers were told to exit; the factories' jobs still there are
        // cancelled, and waited for.
        let factories =
            std::mem::take(&mut *self.factories.lock().unwrap_or_else(|p| p.into_inner()));
        self.factory_count.store(0, Ordering::Relaxed);
        for f in factories {
            let grace = if f.kind() == factory::Kind::Local {
                5
            } else {
                60
            };
            // Jobs that would not go are this call's failure too, unless it
            // failed already.
            if let (Err(e), Ok(())) = (f.stop(Duration::from_secs(grace)), &outcome) {
                outcome = Err(e);
            }
        }
        self.shared.completions.wake_all();
        let last = *self
            .shared
            .final_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.progress.finish(last.as_ref());
        self.log_debug(&match &outcome {
            Ok(()) => "manager shut down".to_owned(),
            Err(e) => format!("manager shut down: {e}"),
        });
        // Everything is written, and the transactions log ends.
        self.sink.stop();
        *result = Some(outcome.clone());
        outcome
    }

    /// True once `shutdown` has begun.
    pub fn is_shut_down(&self) -> bool {
        !self.shared.accepting.load(Ordering::Acquire)
    }

    /// Takes every finished task not yet waited for (used when deleting).
    pub fn drain_finished(&self) -> Vec<Box<Task>> {
        self.shared.completions.drain()
    }

    /// The capacity of the local pool as configured.
    pub fn local_resources(&self) -> Resources {
        self.stats().map(|s| s.total).unwrap_or_default()
    }

    /// How many remote workers hold `file` (or are being sent it): temps made
    /// or fetched there, and inputs cached there for the workflow or longer.
    pub fn file_replica_count(&self, file: &crate::files::File) -> Result<usize> {
        self.check_declarer(file)?;
        Ok(self.remote_settings.peers.replicas(file.id()))
    }

    /// Bytes of files moved between remote workers (peer transfers).
    pub fn bytes_peer(&self) -> u64 {
        self.remote_settings.peers.bytes.load(Ordering::Relaxed)
    }

    /// Bytes of input files sent to remote workers, and of outputs received.
    pub fn bytes_transferred(&self) -> (u64, u64) {
        let s = &self.remote_settings;
        (
            s.bytes_sent.load(Ordering::Relaxed),
            s.bytes_received.load(Ordering::Relaxed),
        )
    }

    /// How long files took to go to and from remote workers.
    pub fn transfer_times(&self) -> bandwidth::Times {
        self.remote_settings.transfers.times()
    }

    /// Holds the file data on each connection with a remote worker to at most
    /// `bytes_per_second` each way; 0: no limit.
    pub fn set_bandwidth_limit(&self, bytes_per_second: u64) {
        self.remote_settings.transfers.set_limit(bytes_per_second);
    }

    /// Finished tasks not yet taken by a wait.
    pub fn finished_len(&self) -> usize {
        self.shared.completions.finished_len()
    }

    /// Tasks ever taken by waits (or by `vine_delete`).
    pub fn taken_total(&self) -> u64 {
        self.shared.completions.taken_total()
    }

    /// Number of tasks submitted and not yet taken.
    pub fn outstanding(&self) -> u64 {
        self.shared.completions.outstanding()
    }

    /// The manager's scratch directory (sandboxes, temps).
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// The name of a setting, for tests and docs.
    pub fn setting_names() -> &'static [&'static str] {
        settings::NAMES
    }

    /// Looks up a C string argument as UTF-8.
    pub fn utf8(s: &CStr) -> Result<&str> {
        s.to_str()
            .map_err(|_| Error::invalid("a string argument is not valid UTF-8"))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown();
        drop(self.drain_finished());
        for f in self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            f.release();
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        crate::worker::guardian::keep_scratch_at_end(&self.runtime_dir);
    }
}

impl Manager {
    /// The files declared to this manager.
    pub fn files(&self) -> Vec<Arc<File>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_failed_manager_thread_wakes_every_waiter_with_an_error_and_refuses_tasks() {
        // A port: tasks too large for the pool wait for a remote worker, so they
        // stay outstanding without running anything.
        let m = Arc::new(Manager::new(Port::Any).unwrap());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let mut t = Task::command(c"true");
            t.set_cores(1e6).unwrap();
            ids.push(m.submit(t).unwrap());
        }
        let waiters: Vec<_> = [None, None, Some(ids[1])]
            .into_iter()
            .map(|id| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let want = id.map_or(Want::Any, Want::Id);
                    m.try_wait_for(want, None).map(|t| t.map(|t| t.id()))
                })
            })
            .collect();
        assert!(m.tx.send(Message::Crash).is_ok());
        for w in waiters {
            let e = w.join().unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Internal);
            assert!(e.message().contains("manager thread failed"), "{e}");
        }
        let (e, _) = m.submit(Task::command(c"true")).unwrap_err();
        assert!(e.message().contains("manager thread failed"), "{e}");
        assert!(m.cancel(ids[0]).unwrap_err().message().contains("failed"));
        assert!(m.try_wait_for(Want::Any, Some(Duration::ZERO)).is_err());
        assert!(m.shutdown().is_err());
    }

    #[test]
    fn a_manager_undeclares_its_mini_task_file_whatever_the_file_reads() {
        use crate::files::{CacheLevel, File};
        let a = Manager::new(Port::None).unwrap();
        let b = Manager::new(Port::None).unwrap();
        let theirs = b.declare(File::buffer(b"b's", CacheLevel::Task, 0).unwrap());
        let mut maker = Task::command(c"cat in > out");
        maker
            .add_input(crate::files::Mount::new(theirs, "in", 0).unwrap())
            .unwrap();
        let made = a.declare(File::mini_task(maker, "out", CacheLevel::Task, 0).unwrap());
        // Its tasks cannot use it, nor can it be fetched...
        let e = a.fetch_file(&made).unwrap_err();
        assert!(e.message().contains("another manager"), "{e}");
        // ...but the manager it was declared to counts, prunes and forgets it.
        assert_eq!(a.file_replica_count(&made).unwrap(), 0);
        assert_eq!(a.prune_file(&made).unwrap(), 0);
        a.undeclare(&made).unwrap();
        assert!(b.undeclare(&made).is_err(), "declared to a, not b");
        a.shutdown().unwrap();
        b.shutdown().unwrap();
    }

    #[test]
    fn a_failed_supervisor_fails_its_task_and_kills_its_command() {
        let m = Manager::new(Port::None).unwrap();
        let mut t = Task::command(c"sleep 1000");
        t.set_env_var(c"VINE_TEST_PANIC_WHEN_STARTED", Some(c"1"))
            .unwrap();
        let id = m.submit(t).unwrap();
        let back = m
            .wait_for(Want::Id(id), Some(Duration::from_secs(60)))
            .expect("the task comes back");
        assert_eq!(back.result(), crate::task::TaskResult::Unknown);
        let reason = back.reason().unwrap().to_string_lossy().into_owned();
        assert!(reason.contains("killed"), "{reason}");
        let pgid = crate::worker::process::PANICKED_ON.load(Ordering::Acquire);
        assert!(pgid > 0);
        // Killed processes may linger a moment as zombies, or until the signal
        // lands; the bound only keeps a failure from hanging the test.
        let bound = Instant::now() + Duration::from_secs(20);
        while !living_members(pgid).is_empty() && Instant::now() < bound {
            std::thread::yield_now();
        }
        assert_eq!(
            living_members(pgid),
            Vec::<i32>::new(),
            "the command runs on"
        );
        m.shutdown().unwrap();
    }

    #[test]
    fn measured_cpu_time_fits_in_wall_time_however_late_supervision_starts() {
        let m = Manager::new(Port::None).unwrap();
        m.enable_monitoring(true).unwrap();
        // One process at a time, busy for some tens of milliseconds; it has
        // ended before the worker thread starts to supervise it.
        let check = |mut t: Box<Task>| {
            t.set_env_var(c"VINE_TEST_END_BEFORE_SUPERVISED", Some(c"1"))
                .unwrap();
            let id = m.submit(t).unwrap();
            let back = m
                .wait_for(Want::Id(id), Some(Duration::from_secs(60)))
                .expect("the task comes back");
            assert_eq!(back.result(), crate::task::TaskResult::Success);
            let r = back.measured().expect("monitored");
            assert!(r.cpu_us > 0, "{r:?}");
            assert!(r.cpu_us <= r.wall_us, "{r:?}");
        };
        check(Task::command(
            c"dd if=/dev/zero of=/dev/null bs=1M count=300 2>/dev/null",
        ));

        // The same for a function run in a process of its own.
        unsafe extern "C" fn busy(
            _input: *const std::ffi::c_void,
            _len: usize,
            _output: *mut crate::ffi::vine_buffer,
            _context: *mut std::ffi::c_void,
        ) -> i32 {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(20) {}
            0
        }
        let mut t = Task::local(busy, 0, b"");
        t.set_exec_mode(crate::task::ExecMode::Process).unwrap();
        check(t);
        m.shutdown().unwrap();
    }

    /// The processes of group `pgid` that are not zombies.
    fn living_members(pgid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" {
                out.push(pid);
            }
        }
        out
    }
}
