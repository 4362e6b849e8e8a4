//! Factories: worker jobs submitted to a batch system as waiting tasks need them,
//! and given back as they stop needing them.
//!
//! A factory's thread runs a cycle every `cycle-interval`: it asks the batch
//! system how its jobs are, asks the manager how many workers of its size the
//! waiting tasks fill and which of its workers are connected (each worker says
//! which job it runs in), then submits jobs toward that, at most
//! `workers-per-cycle` at a time and `max-workers` alive, cancels pending jobs no
//! longer wanted, and releases workers idle for `idle-timeout` beyond
//! `min-workers`. A job that ends before its worker connects is a failure: the
//! next submission waits longer each time (up to a minute), and the batch
//! system's words are kept for [`Factory::last_error`] and printed.
//!
//! The manager's password is asked at every submission, so a password set
//! after the factory started reaches the jobs submitted since; jobs submitted
//! without one are cancelled once it is set, and replaced.
//!
//! `vine_tune(m, "local-worker-processes", n)` is a local factory keeping `n`
//! one-core workers alive.

mod batch;
mod demand;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use demand::{Ask, View};

use self::batch::{Batch, JobSpec, Status};
use super::inbox;
use super::scheduler::WorkerId;
use super::Message;
use crate::error::{Error, ErrorKind, Result};
use crate::resources::{Resources, MILLI};

/// Where the worker program is: `VINE_WORKER_PATH`, else `vine_worker` beside this
/// program, else `vine_worker` on the `PATH`.
pub fn worker_program() -> PathBuf {
    if let Some(p) = std::env::var_os("VINE_WORKER_PATH") {
        return p.into();
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("vine_worker")))
        .filter(|p| p.is_file())
    {
        return beside;
    }
    PathBuf::from("vine_worker")
}

/// The batch system a factory submits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Processes on this machine.
    Local,
    /// Slurm.
    Slurm,
    /// The user's shell commands.
    Custom,
}

impl Kind {
    /// The kind named `name`.
    pub fn parse(name: &str) -> Result<Kind> {
        match name {
            "local" => Ok(Kind::Local),
            "slurm" => Ok(Kind::Slurm),
            "custom" => Ok(Kind::Custom),
            _ => Err(Error::invalid(format!(
                "unknown batch type '{name}': known are local, slurm and custom"
            ))),
        }
    }
}

/// A factory's settings (see the header for each).
#[derive(Debug, Clone)]
struct Config {
    min_workers: usize,
    max_workers: usize,
    per_cycle: usize,
    cores: u64,
    memory_mb: u64,
    disk_mb: u64,
    gpus: u32,
    idle_timeout: Duration,
    wall_time: Option<Duration>,
    cycle: Duration,
    /// How long a batch command may take.
    command_timeout: Duration,
    batch_options: Vec<String>,
    batch_options_text: String,
    worker_options: Vec<String>,
    worker_path: PathBuf,
    submit_command: Option<String>,
    status_command: Option<String>,
    cancel_command: Option<String>,
    /// Where job scripts, their output and the password copy go.
    scratch_dir: PathBuf,
    /// Changes made after the factory started: a cycle that finds it changed
    /// while it asked the manager starts again with the new settings.
    edits: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scratch_dir: PathBuf::new(),
            min_workers: 0,
            max_workers: 10,
            per_cycle: 5,
            cores: 1,
            memory_mb: 0,
            disk_mb: 0,
            gpus: 0,
            idle_timeout: Duration::from_secs(60),
            wall_time: None,
            cycle: Duration::from_secs(1),
            command_timeout: batch::COMMAND_TIMEOUT,
            batch_options: Vec::new(),
            batch_options_text: String::new(),
            worker_options: Vec::new(),
            worker_path: worker_program(),
            submit_command: None,
            status_command: None,
            cancel_command: None,
            edits: 0,
        }
    }
}

/// The names `Factory::set` knows.
const NUMBERS: &str = "min-workers, max-workers, workers-per-cycle, cores, memory, disk, gpus, \
                       idle-timeout, wall-time, cycle-interval, command-timeout";
/// The names `Factory::set_string` knows.
const STRINGS: &str = "batch-options, worker-options, worker-path, scratch-dir, \
                       submit-command, status-command, cancel-command";

/// Whole seconds before its end in which a worker takes no task (the
/// scheduler's margin).
pub(crate) const END_MARGIN_S: u64 = (super::scheduler::END_MARGIN_US / 1_000_000) as u64;

/// The shortest `wall-time`: twice the margin, so that a job has time to start
/// its worker and still run tasks.
const MIN_WALL_TIME_S: f64 = 2.0 * END_MARGIN_S as f64;

/// The largest count, and the largest number of seconds, a setting takes.
const MAX_COUNT: f64 = 1e6;
const MAX_SECONDS: f64 = 1e8;

/// What the factory thread and its owner share.
struct Shared {
    config: Mutex<Config>,
    /// The last failure to report, if any.
    last_error: Mutex<Option<String>>,
    /// No new submissions (shutting down).
    paused: AtomicBool,
    /// Set to stop the thread; it is woken through `wake`.
    stop: AtomicBool,
    /// Tasks were submitted since the last look.
    nudged: AtomicBool,
    wake: std::sync::Condvar,
    sleep: Mutex<()>,
    /// Jobs submitted so far, and submissions that failed.
    submitted: AtomicU64,
    failures: AtomicU64,
    /// How long stopping waits for jobs to go, in milliseconds.
    grace_ms: AtomicU64,
    /// The factory thread's deadline for its batch commands (see
    /// `batch::commands_watch`): set when the factory is told to stop, so that
    /// a command in flight (a status query that hangs) is given up and
    /// cancelling the jobs gets the rest of the grace.
    cut_at: batch::Watched,
    /// When the factory was told to stop: its grace counts from then.
    stop_from: Mutex<Option<Instant>>,
    /// Scratch directories the factory made (removed at the end if nothing failed).
    made_dirs: Mutex<Vec<PathBuf>>,
    /// Job scripts and outputs it wrote (removed likewise, also from a
    /// directory it did not make).
    made_files: Mutex<Vec<PathBuf>>,
    /// Parents it made for its scratch directories, deepest first (removed
    /// after them if nothing else is in them).
    made_parents: Mutex<Vec<PathBuf>>,
    /// The scratch directory when none is set.
    default_scratch: PathBuf,
}

/// The manager's password as it is now (None: it has none), and its
/// generation, which changes whenever the password is set or changed.
pub type PasswordNow = Arc<dyn Fn() -> (Option<Vec<u8>>, u64) + Send + Sync>;

/// Where the factory's workers connect, and how they prove who they are.
pub struct Endpoint {
    /// Host or address the jobs connect to, and the port.
    pub host: String,
    /// See `host`.
    pub port: u16,
    /// The manager's password, asked at every submission: a password set after
    /// the factory started reaches the jobs submitted from then on. Jobs are
    /// given a copy in the scratch directory, readable by this user only.
    pub password: PasswordNow,
    /// The manager's certificate fingerprint, when it uses TLS.
    pub tls_fingerprint: Option<String>,
}

/// A factory, owned by its manager.
pub struct Factory {
    kind: Kind,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

static NEXT_FACTORY: AtomicU64 = AtomicU64::new(1);

impl Factory {
    /// A factory of `kind` for the manager reached through `tx`, its scratch
    /// directory under `default_dir` unless set. It starts cycling at once; with
    /// its defaults it submits nothing until tasks wait.
    pub(crate) fn start(
        kind: Kind,
        tx: inbox::Sender<Message>,
        endpoint: Endpoint,
        default_dir: &Path,
        config_changes: impl FnOnce(&mut ConfigEdit) -> Result<()>,
    ) -> Result<Arc<Factory>> {
        let seq = NEXT_FACTORY.fetch_add(1, Ordering::Relaxed);
        let name = format!("vine-worker-{}-{seq}", std::process::id());
        let batch: Box<dyn Batch> = match kind {
            Kind::Local => Box::new(batch::Local::default()),
            Kind::Slurm => Box::new(batch::Slurm::new().map_err(Error::invalid)?),
            Kind::Custom => Box::new(batch::Custom {
                submit: String::new(),
                status: String::new(),
                cancel: String::new(),
                dir: PathBuf::new(),
            }),
        };
        let dir = default_dir.join(format!("vine-factory-{}-{seq}", std::process::id()));
        let mut edit = ConfigEdit {
            kind,
            config: Config {
                scratch_dir: dir.clone(),
                ..Config::default()
            },
        };
        config_changes(&mut edit)?;
        let shared = Arc::new(Shared {
            config: Mutex::new(edit.config),
            last_error: Mutex::new(None),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            nudged: AtomicBool::new(false),
            wake: std::sync::Condvar::new(),
            sleep: Mutex::new(()),
            submitted: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            grace_ms: AtomicU64::new(30_000),
            cut_at: Default::default(),
            stop_from: Mutex::new(None),
            made_dirs: Mutex::new(Vec::new()),
            made_files: Mutex::new(Vec::new()),
            made_parents: Mutex::new(Vec::new()),
            default_scratch: dir.clone(),
        });
        let mut cycle = Cycle {
            kind,
            batch,
            shared: shared.clone(),
            tx,
            name,
            // The process's id too: programs sharing a scratch directory
            // never write each other's files (the password copy above all).
            prefix: format!("vf{}-{seq}-", std::process::id()),
            next_job: 1,
            jobs: Vec::new(),
            endpoint,
            ready_dir: None,
            backoff_until: None,
            streak: 0,
            said_unfit: 0,
            password_copies: Vec::new(),
            unsure_since: None,
            unknown_cancelled: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("vine-factory-{seq}"))
            .spawn(move || cycle.run())
            .map_err(|e| Error::io("cannot start the factory thread", e))?;
        Ok(Arc::new(Factory {
            kind,
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Its batch type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Changes a numeric setting; applies to jobs submitted from now on.
    pub fn set(&self, name: &str, value: f64) -> Result<()> {
        let mut config = self.config();
        let mut edit = ConfigEdit {
            kind: self.kind,
            config: config.clone(),
        };
        edit.set(name, value)?;
        *config = edit.config;
        config.edits += 1;
        drop(config);
        self.poke();
        Ok(())
    }

    /// Changes a text setting; applies to jobs submitted from now on.
    pub fn set_string(&self, name: &str, value: &str) -> Result<()> {
        let mut edit = ConfigEdit {
            kind: self.kind,
            config: self.config().clone(),
        };
        // Checking options with the batch system may take a while: not under the lock.
        edit.set_string(name, value)?;
        let mut config = self.config();
        let c = edit.config;
        match name {
            "batch-options" => {
                config.batch_options = c.batch_options;
                config.batch_options_text = c.batch_options_text;
            }
            "worker-options" => config.worker_options = c.worker_options,
            "worker-path" => config.worker_path = c.worker_path,
            "submit-command" => config.submit_command = c.submit_command,
            "status-command" => config.status_command = c.status_command,
            "cancel-command" => config.cancel_command = c.cancel_command,
            "scratch-dir" => config.scratch_dir = c.scratch_dir,
            _ => {}
        }
        config.edits += 1;
        drop(config);
        self.poke();
        Ok(())
    }

    fn config(&self) -> std::sync::MutexGuard<'_, Config> {
        self.shared.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tasks were submitted: the thread looks now, unless it was told so since
    /// its last look. Cheap enough for every submission.
    pub(crate) fn nudge(&self) {
        if !self.shared.nudged.swap(true, Ordering::AcqRel) {
            self.poke();
        }
    }

    /// Wakes the thread for a cycle now.
    fn poke(&self) {
        let _g = self.shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.wake.notify_all();
    }

    /// What last went wrong with its jobs, if anything.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Jobs submitted so far, and submissions or jobs that failed.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.submitted.load(Ordering::Relaxed),
            self.shared.failures.load(Ordering::Relaxed),
        )
    }

    /// Its scratch directory (job scripts, their output, the password copy).
    pub fn scratch_dir(&self) -> PathBuf {
        self.config().scratch_dir.clone()
    }

    /// Submits no more jobs (the manager is shutting down).
    pub(crate) fn pause(&self) {
        self.shared.paused.store(true, Ordering::Release);
    }

    /// Stops the factory: cancels every job still pending or running and waits
    /// until the batch system says they are gone (bounded by `grace`). An error
    /// names jobs that would not go. Calling it again does nothing; a call
    /// while another runs (another thread) returns once that one is done.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        // Held to the end: a second caller waits until the jobs are gone.
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = thread.take() else {
            return Ok(());
        };
        self.pause();
        // The thread cancels its jobs as it ends, within this grace: set before
        // it is told to stop, or it could wake and read the default first.
        self.shared.grace_ms.store(
            grace.as_millis().try_into().unwrap_or(u64::MAX),
            Ordering::Release,
        );
        // What the thread is running now gets half the grace at most; the
        // grace counts from here, not from when that ends.
        let started = Instant::now();
        *self.shared.cut_at.lock().unwrap_or_else(|p| p.into_inner()) =
            started.checked_add(grace / 2);
        *self
            .shared
            .stop_from
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(started);
        {
            let _g = self.shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.stop.store(true, Ordering::Release);
            self.shared.wake.notify_all();
        }
        let _ = t.join();
        let left = self.last_error();
        let failed = self.shared.failures.load(Ordering::Relaxed) > 0;
        let stuck = left.as_deref().is_some_and(|e| e.starts_with(STUCK));
        // Kept for a look after failures.
        let keep = failed || stuck;
        let made = take_all(&self.shared.made_dirs);
        let files = take_all(&self.shared.made_files);
        if !keep {
            for f in files {
                let _ = std::fs::remove_file(f);
            }
        }
        for dir in made {
            // Not the default directory of a local factory, in the manager's
            // own, which goes with the manager (its jobs' failures were
            // printed as they came).
            let goes = self.kind == Kind::Local && dir == self.shared.default_scratch;
            if keep && !goes {
                eprintln!(
                    "vine: factory: its job scripts and output are kept in {}",
                    dir.display()
                );
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        let parents = take_all(&self.shared.made_parents);
        for p in parents {
            // Only if empty: never what another program put there.
            let _ = std::fs::remove_dir(p);
        }
        match left {
            Some(e) if stuck => Err(Error::new(ErrorKind::Timeout, e)),
            _ => Ok(()),
        }
    }
}

/// Whether the directory `r` uses, made or checked before, is still a
/// directory of this user's: not removed, nor replaced meanwhile by another
/// user's directory, nor (the private one made inside a directory others may
/// write) by a link.
fn still_ours(r: &ReadyDir) -> bool {
    use std::os::unix::fs::MetadataExt;
    let found = if r.used == r.dir {
        // The directory set, which may be reached through a link of the user's.
        std::fs::metadata(&r.used)
    } else {
        std::fs::symlink_metadata(&r.used)
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    found.is_ok_and(|m| m.is_dir() && m.uid() == unsafe { libc::geteuid() })
}

/// Empties a list of paths the factory made, giving what it held.
fn take_all(list: &Mutex<Vec<PathBuf>>) -> Vec<PathBuf> {
    std::mem::take(&mut *list.lock().unwrap_or_else(|p| p.into_inner()))
}

impl Drop for Factory {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(30));
    }
}

/// How the error about jobs that would not go begins.
const STUCK: &str = "factory jobs still present";

/// Settings being checked and changed.
pub struct ConfigEdit {
    kind: Kind,
    config: Config,
}

impl ConfigEdit {
    /// Changes a numeric setting.
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let c = &mut self.config;
        let up_to = |lo: f64, hi: f64| -> Result<u64> {
            if value.is_finite() && value >= lo && value <= hi && value.fract() == 0.0 {
                Ok(value as u64)
            } else {
                Err(Error::invalid(format!(
                    "factory setting {name} must be a whole number from {lo} to {hi}, not {}",
                    crate::error::Shown(value)
                )))
            }
        };
        let count = |lo: f64| up_to(lo, MAX_COUNT).map(|v| v as usize);
        // Memory and disk as large as a worker's may be (`local-memory`).
        let megabytes = || up_to(0.0, crate::task::MAX_MB as f64);
        let seconds = |lo: f64, zero_ok: bool| -> Result<Option<Duration>> {
            if zero_ok && value == 0.0 {
                return Ok(None);
            }
            if value.is_finite() && value >= lo && value <= MAX_SECONDS {
                Ok(Some(Duration::from_secs_f64(value)))
            } else {
                Err(Error::invalid(format!(
                    "factory setting {name} must be seconds from {lo} to {MAX_SECONDS}{}, not {}",
                    if zero_ok { " (or 0: none)" } else { "" },
                    crate::error::Shown(value)
                )))
            }
        };
        match name {
            "min-workers" => c.min_workers = count(0.0)?,
            "max-workers" => c.max_workers = count(0.0)?,
            "workers-per-cycle" => c.per_cycle = count(1.0)?,
            "cores" => c.cores = count(1.0)? as u64,
            "memory" => c.memory_mb = megabytes()?,
            "disk" => c.disk_mb = megabytes()?,
            "gpus" => c.gpus = count(0.0)? as u32,
            "idle-timeout" => c.idle_timeout = seconds(0.001, false)?.unwrap_or_default(),
            // A worker takes no task in its last END_MARGIN_S: a shorter
            // job could never run one, a slightly longer one hardly any.
            "wall-time" => c.wall_time = seconds(MIN_WALL_TIME_S, true)?,
            "cycle-interval" => c.cycle = seconds(0.01, false)?.unwrap_or_default(),
            "command-timeout" => {
                c.command_timeout = seconds(0.1, false)?.unwrap_or_default();
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::UnknownSetting,
                    format!("unknown factory setting '{name}': numbers are {NUMBERS}"),
                ))
            }
        }
        Ok(())
    }

    /// Changes a text setting.
    pub fn set_string(&mut self, name: &str, value: &str) -> Result<()> {
        let words = |v: &str| {
            shlex::split(v).ok_or_else(|| {
                Error::invalid(format!(
                    "factory setting {name}: unbalanced quotes in {v:?}"
                ))
            })
        };
        let command = |v: &str| -> Result<Option<String>> {
            if self.kind != Kind::Custom {
                return Err(Error::invalid(format!(
                    "factory setting {name} is for the custom batch type only"
                )));
            }
            if v.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "factory setting {name} cannot be empty"
                )));
            }
            Ok(Some(v.to_owned()))
        };
        let c = &mut self.config;
        match name {
            "batch-options" => {
                let w = words(value)?;
                if self.kind == Kind::Slurm {
                    batch::Slurm::check_options(&w).map_err(Error::invalid)?;
                }
                c.batch_options = w;
                c.batch_options_text = value.to_owned();
            }
            "worker-options" => c.worker_options = words(value)?,
            "worker-path" => {
                if value.is_empty() {
                    return Err(Error::invalid(
                        "factory setting worker-path cannot be empty",
                    ));
                }
                if self.kind == Kind::Local && !batch::on_path(value) {
                    return Err(Error::invalid(format!(
                        "factory setting worker-path: {value} is not an executable file"
                    )));
                }
                c.worker_path = PathBuf::from(value);
            }
            "scratch-dir" => {
                if value.is_empty() {
                    return Err(Error::invalid(
                        "factory setting scratch-dir cannot be empty",
                    ));
                }
                let dir = std::path::absolute(value).map_err(|e| Error::io(value, e))?;
                c.scratch_dir = dir;
            }
            "submit-command" => c.submit_command = command(value)?,
            "status-command" => c.status_command = command(value)?,
            "cancel-command" => c.cancel_command = command(value)?,
            _ => {
                return Err(Error::new(
                    ErrorKind::UnknownSetting,
                    format!("unknown factory setting '{name}': strings are {STRINGS}"),
                ))
            }
        }
        Ok(())
    }
}

/// One job the factory submitted.
struct Job {
    /// The token its worker gives the manager.
    token: String,
    /// Its id at the batch system.
    id: String,
    status: Status,
    /// Its worker, while connected.
    worker: Option<WorkerId>,
    /// True once its worker connected (it may have left since).
    joined: bool,
    /// Since when its worker holds no task.
    idle_since: Option<Instant>,
    /// Its output file.
    output: PathBuf,
    /// Cancelled by the factory.
    cancelled: bool,
    /// The generation of the password it was given (None: it was given none).
    password: Option<u64>,
}

impl Job {
    /// Counts toward the workers alive: pending, or running and not yet gone.
    fn alive(&self) -> bool {
        self.status != Status::Ended && !self.cancelled && (!self.joined || self.worker.is_some())
    }
}

/// A scratch directory made ready (see `Cycle::prepare_dir`).
struct ReadyDir {
    /// The `scratch-dir` setting.
    dir: PathBuf,
    /// The directory jobs' files go in.
    used: PathBuf,
    /// The password copy, and the generation of the password it holds.
    password: Option<(PathBuf, u64)>,
}

/// The factory's thread.
struct Cycle {
    kind: Kind,
    batch: Box<dyn Batch>,
    shared: Arc<Shared>,
    tx: inbox::Sender<Message>,
    /// Every job's name at the batch system.
    name: String,
    /// Every job token begins with it.
    prefix: String,
    next_job: u64,
    jobs: Vec<Job>,
    endpoint: Endpoint,
    /// The scratch directory jobs are submitted from now, once made ready.
    ready_dir: Option<ReadyDir>,
    /// No submission before then (after failures).
    backoff_until: Option<Instant>,
    /// Failures in a row.
    streak: u32,
    /// How many unfit tasks were last reported (0: none since there were
    /// none): said again when their number changes.
    said_unfit: usize,
    /// Every password copy written (one per scratch directory used).
    password_copies: Vec<PathBuf>,
    /// When a submission last failed: a submit command that failed (killed at
    /// `command-timeout`, say) may have submitted its job all the same, a job
    /// this factory does not know. Until a look at the batch system's jobs of
    /// this factory's name made well after it, unknown ones are cancelled
    /// (see [`Cycle::cancel_unknown`]).
    unsure_since: Option<Instant>,
    /// Jobs cancelled as unknown.
    unknown_cancelled: Vec<String>,
}

/// How long after a failed submission the batch system may still list its
/// job for the first time.
const UNSURE_FOR: Duration = Duration::from_secs(10);

impl Cycle {
    fn run(&mut self) {
        batch::commands_watch(self.shared.cut_at.clone());
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            if !self.once() {
                // The manager is gone: nothing to do but clean up.
                break;
            }
            let cycle = self.config().cycle;
            let g = self.shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
            if self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            // Nudged during the look: look again at once.
            if !self.shared.nudged.load(Ordering::Acquire) {
                let _ = self.shared.wake.wait_timeout(g, cycle);
            }
        }
        let grace = Duration::from_millis(self.shared.grace_ms.load(Ordering::Acquire));
        self.cancel_all(grace);
        // The password's copies never outlive the factory, even where its job
        // files are kept, in every scratch directory it used.
        for pw in &self.password_copies {
            let _ = std::fs::remove_file(pw);
        }
    }

    fn config(&self) -> Config {
        self.shared
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fail(&mut self, message: String) {
        eprintln!("vine: factory: {message}");
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(message);
    }

    /// One cycle; false if the manager is gone.
    fn once(&mut self) -> bool {
        self.shared.nudged.store(false, Ordering::Release);
        let config = self.config();
        batch::commands_timeout(config.command_timeout);
        self.refresh_status();
        self.cancel_unknown();
        let size = Resources {
            millicores: config.cores * MILLI,
            memory_mb: config.memory_mb,
            disk_mb: config.disk_mb,
            gpus: config.gpus,
        };
        let features = config
            .worker_options
            .windows(2)
            .filter(|w| w[0] == "--feature")
            .map(|w| w[1].clone())
            .chain(
                config
                    .worker_options
                    .iter()
                    .filter_map(|o| o.strip_prefix("--feature=").map(str::to_owned)),
            )
            .collect();
        let ask = Ask {
            prefix: self.prefix.clone(),
            size,
            features,
            wall_time_s: config.wall_time.map(|w| w.as_secs_f64()),
            limit: config.max_workers as f64 + 1.0,
        };
        let Some(view) = self.look(ask.clone()) else {
            return false;
        };
        self.take_view(&view);
        self.cancel_left_behind();
        let (password, generation) = (self.endpoint.password)();
        let current = password.is_some().then_some(generation);
        self.cancel_without_password(current);
        self.refresh_password_copy(current);
        self.reap(current);
        let edits = self
            .shared
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .edits;
        if edits != config.edits {
            // Settings changed while the manager was asked (a program sets them
            // right after creating the factory, then submits): no job goes out
            // with the old ones. Look again at once.
            self.shared.nudged.store(true, Ordering::Release);
            return true;
        }
        if view.unfit == 0 {
            self.said_unfit = 0;
        }
        if view.unfit > 0 && view.demand == 0.0 && self.said_unfit != view.unfit {
            self.said_unfit = view.unfit;
            // Also what a wait that gives nothing names as the reason.
            self.fail(format!(
                "{} waiting task(s) fit no worker of this factory \
                 ({} cores, {} MB memory, {} MB disk, {} gpus, features {:?}{})",
                view.unfit,
                config.cores,
                config.memory_mb,
                config.disk_mb,
                config.gpus,
                ask.features,
                config.wall_time.map_or(String::new(), |w| format!(
                    ", wall-time {} s: tasks of a time_min above {} s",
                    w.as_secs(),
                    w.as_secs().saturating_sub(END_MARGIN_S)
                ))
            ));
        }
        let busy = self
            .jobs
            .iter()
            .filter(|j| {
                j.worker.is_some()
                    && view
                        .workers
                        .iter()
                        .any(|(_, t, held)| *t == j.token && *held > 0)
            })
            .count();
        let target = demand::target(config.min_workers, config.max_workers, busy, view.demand);
        let alive = self.jobs.iter().filter(|j| j.alive()).count();
        // Jobs the batch system still lists, cancelled ones too: never more
        // than max-workers of them.
        let listed = self
            .jobs
            .iter()
            .filter(|j| j.status != Status::Ended)
            .count();
        let paused = self.shared.paused.load(Ordering::Acquire);
        let backing_off = self.backoff_until.is_some_and(|t| Instant::now() < t);
        if !paused && !backing_off {
            let n = demand::to_submit(target, alive, config.per_cycle, config.max_workers)
                .min(config.max_workers.saturating_sub(listed));
            for _ in 0..n {
                if !self.submit(&config) {
                    break;
                }
            }
        }
        let alive = self.jobs.iter().filter(|j| j.alive()).count();
        if alive > target {
            self.shrink(alive - target, &config, target);
        }
        true
    }

    /// Asks the manager how many workers the waiting tasks need and which of
    /// this factory's workers are connected; None if the manager is gone.
    fn look(&self, ask: Ask) -> Option<View> {
        let (reply, answer) = super::reply::oneshot();
        self.tx.send(Message::FactoryView { ask, reply }).ok()?;
        answer.recv().ok()
    }

    /// Records which jobs' workers joined, are connected, and since when idle.
    fn take_view(&mut self, view: &View) {
        let now = Instant::now();
        let mut worked = false;
        for job in &mut self.jobs {
            let connected = view.workers.iter().find(|(_, t, _)| *t == job.token);
            if !job.joined && (connected.is_some() || view.joined.contains(&job.token)) {
                job.joined = true;
                worked = true;
            }
            match connected {
                Some(&(w, _, held)) => {
                    job.worker = Some(w);
                    if held > 0 {
                        job.idle_since = None;
                    } else if job.idle_since.is_none() {
                        job.idle_since = Some(now);
                    }
                }
                None => job.worker = None,
            }
        }
        if worked {
            // A job that works: failures before it are history.
            self.streak = 0;
            self.backoff_until = None;
            *self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Asks the batch system about the jobs not known to have ended.
    fn refresh_status(&mut self) {
        // Its commands, and those cancelling jobs after it, run in the scratch
        // directory: made again if it was removed (a cleaner of old files).
        if let Some(r) = self.ready_dir.as_ref().filter(|r| !still_ours(r)) {
            let dir = r.dir.clone();
            if let Err(e) = self.prepare_dir(&dir) {
                self.fail(e);
            }
        }
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.status != Status::Ended)
            .map(|j| j.id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        match self.batch.status(&refs) {
            Ok(known) => {
                let mut stuck = Vec::new();
                for j in &mut self.jobs {
                    match known.get(&j.id) {
                        Some(&Status::Stuck(why)) => {
                            j.status = Status::Pending;
                            if !j.cancelled {
                                stuck.push((j.id.clone(), why));
                            }
                        }
                        Some(&s) => j.status = s,
                        None => {}
                    }
                }
                self.give_up_stuck(stuck);
            }
            Err(e) => eprintln!("vine: factory: cannot learn its jobs' status: {e}"),
        }
    }

    /// Cancels the jobs the batch system keeps queued for a reason that does
    /// not pass by itself (`stuck`: id and what the reason means), each a
    /// failure: their workers would never come, and the factory's demand
    /// would count them as on their way.
    fn give_up_stuck(&mut self, stuck: Vec<(String, &'static str)>) {
        if stuck.is_empty() {
            return;
        }
        // One cancel for them all.
        self.cancel_where(|j| stuck.iter().any(|(id, _)| *id == j.id));
        for (id, why) in stuck {
            self.failed(format!(
                "the batch system will not start worker job {id}: {why}; it was cancelled"
            ));
        }
    }

    /// Forgets ended jobs; one whose worker never connected is a failure,
    /// unless the manager's password, of generation `current` now, was set or
    /// changed since it was submitted (its worker was refused for the password
    /// it had: the jobs submitted since have the right one).
    fn reap(&mut self, current: Option<u64>) {
        let mut ended = Vec::new();
        self.jobs.retain_mut(|j| {
            let gone = j.status == Status::Ended && j.worker.is_none();
            if gone {
                let fine = j.joined || j.cancelled || j.password != current;
                ended.push((fine, j.id.clone(), j.output.clone()));
            }
            !gone
        });
        for (fine, id, output) in ended {
            if fine {
                continue;
            }
            let tail = std::fs::read_to_string(&output)
                .map(|s| {
                    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
                    lines[lines.len().saturating_sub(5)..].join("\n")
                })
                .unwrap_or_default();
            self.failed(format!(
                "worker job {id} ended before its worker connected{}",
                if tail.is_empty() {
                    format!(" (no output in {})", output.display())
                } else {
                    format!("; its output ({}) ends:\n{tail}", output.display())
                }
            ));
        }
    }

    /// Records a failure and backs off: 1, 2, 4 ... up to 60 s without submitting.
    fn failed(&mut self, message: String) {
        self.shared.failures.fetch_add(1, Ordering::Relaxed);
        self.streak = self.streak.saturating_add(1);
        let wait = Duration::from_secs(1 << self.streak.saturating_sub(1).min(6))
            .min(Duration::from_secs(60));
        self.backoff_until = Some(Instant::now() + wait);
        self.fail(format!(
            "{message} (next submission in {} s at the earliest)",
            wait.as_secs()
        ));
    }

    /// Makes the scratch directory `dir` ready: the directory jobs' files go in,
    /// and the copy of the manager's password as it is now (its path, and the
    /// password's generation). A directory that does not exist is made,
    /// readable by this user only. One that exists and that others may write
    /// (`/tmp`, a group's directory) gets a private directory of the factory's
    /// own inside it, since another user could replace a job's script there.
    /// Checked for every submission: a directory removed meanwhile (a cleaner
    /// of old files, say) is made again, and a password set or changed since
    /// the last submission replaces the copy (pending jobs that read it later
    /// get the new one).
    fn prepare_dir(
        &mut self,
        dir: &Path,
    ) -> std::result::Result<(PathBuf, Option<(PathBuf, u64)>), String> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let (password, generation) = (self.endpoint.password)();
        let current = password.is_some().then_some(generation);
        if let Some(r) = &self.ready_dir {
            let copy_ok = match &r.password {
                Some((p, g)) => Some(*g) == current && p.is_file(),
                None => current.is_none(),
            };
            if r.dir == dir && still_ours(r) && copy_ok {
                return Ok((r.used.clone(), r.password.clone()));
            }
        }
        let used = match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(format!(
                    "the scratch directory {} is not a directory",
                    dir.display()
                ))
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            Ok(m) if m.mode() & 0o022 == 0 && m.uid() == unsafe { libc::geteuid() } => {
                dir.to_owned()
            }
            Ok(_) => {
                let own = dir.join(format!("{}-files", self.name));
                if !own.is_dir() {
                    self.make_dir(&own, false)?;
                }
                // Made by someone else between the look and the make: not ours.
                let m = std::fs::symlink_metadata(&own)
                    .map_err(|e| format!("{}: {e}", own.display()))?;
                // SAFETY: as above.
                if !m.is_dir() || m.uid() != unsafe { libc::geteuid() } || m.mode() & 0o077 != 0 {
                    return Err(format!(
                        "{} is not a directory of this user's only: not used for job files",
                        own.display()
                    ));
                }
                own
            }
            Err(_) => {
                self.make_dir(dir, true)?;
                dir.to_owned()
            }
        };
        let pw = match password {
            Some(data) => {
                // Written beside it and renamed over it: a job reading the copy
                // meanwhile finds the old password or the new, never none.
                let copy = used.join(format!("{}password", self.prefix));
                let new = used.join(format!("{}password.new", self.prefix));
                let _ = std::fs::remove_file(&new);
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&new)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
                    .and_then(|()| std::fs::rename(&new, &copy))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&new);
                        format!("cannot write {}: {e}", copy.display())
                    })?;
                if !self.password_copies.contains(&copy) {
                    self.password_copies.push(copy.clone());
                }
                Some((copy, generation))
            }
            None => None,
        };
        self.ready_dir = Some(ReadyDir {
            dir: dir.to_owned(),
            used: used.clone(),
            password: pw.clone(),
        });
        Ok((used, pw))
    }

    /// Makes `dir` readable by this user only (with its parents if `parents`),
    /// to be removed when the factory stops unless a job failed.
    fn make_dir(&self, dir: &Path, parents: bool) -> std::result::Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        // The parents made for it, deepest first: removed with it if empty.
        let parents_made: Vec<PathBuf> = if parents {
            dir.ancestors()
                .skip(1)
                .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                .map(Path::to_path_buf)
                .collect()
        } else {
            Vec::new()
        };
        std::fs::DirBuilder::new()
            .recursive(parents)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot make the scratch directory {}: {e}", dir.display()))?;
        let mut made = self
            .shared
            .made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !made.iter().any(|d| d == dir) {
            made.push(dir.to_owned());
        }
        drop(made);
        self.shared
            .made_parents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(parents_made);
        Ok(())
    }

    /// Submits one job; false if it failed.
    fn submit(&mut self, config: &Config) -> bool {
        let (dir, password) = match self.prepare_dir(&config.scratch_dir) {
            Ok(p) => p,
            Err(e) => {
                self.failed(e);
                return false;
            }
        };
        if self.kind == Kind::Custom {
            let (Some(s), Some(st), Some(c)) = (
                &config.submit_command,
                &config.status_command,
                &config.cancel_command,
            ) else {
                // Nothing can be submitted before the commands are set.
                return false;
            };
            self.batch = Box::new(batch::Custom {
                submit: s.clone(),
                status: st.clone(),
                cancel: c.clone(),
                dir: dir.clone(),
            });
        }
        let token = format!("{}{}", self.prefix, self.next_job);
        self.next_job += 1;
        let output = dir.join(format!("{token}.out"));
        let script = dir.join(format!("{token}.sh"));
        self.shared
            .made_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([output.clone(), script.clone()]);
        let argv = self.worker_argv(config, &token, password.as_ref().map(|(p, _)| p.as_path()));
        let spec = JobSpec {
            name: &self.name,
            argv: &argv,
            output: &output,
            script: &script,
            cores: config.cores,
            memory_mb: config.memory_mb,
            disk_mb: config.disk_mb,
            gpus: config.gpus,
            wall_time: config.wall_time,
            options: &config.batch_options,
            options_text: &config.batch_options_text,
        };
        self.shared.submitted.fetch_add(1, Ordering::Relaxed);
        match self.batch.submit(&spec) {
            Ok(id) => {
                self.jobs.push(Job {
                    token,
                    id,
                    status: Status::Pending,
                    worker: None,
                    joined: false,
                    idle_since: None,
                    output,
                    cancelled: false,
                    password: password.map(|(_, g)| g),
                });
                true
            }
            Err(e) => {
                self.unsure_since = Some(Instant::now());
                self.failed(format!("cannot submit a worker job: {e}"));
                false
            }
        }
    }

    fn worker_argv(&self, config: &Config, token: &str, password: Option<&Path>) -> Vec<String> {
        let e = &self.endpoint;
        let mut v = vec![
            config.worker_path.display().to_string(),
            e.host.clone(),
            e.port.to_string(),
            "--cores".into(),
            config.cores.to_string(),
        ];
        if config.memory_mb > 0 {
            v.extend(["--memory".into(), config.memory_mb.to_string()]);
        }
        if config.disk_mb > 0 {
            v.extend(["--disk".into(), config.disk_mb.to_string()]);
        }
        v.extend(["--gpus".into(), config.gpus.to_string()]);
        if let Some(p) = password {
            v.extend(["--password".into(), p.display().to_string()]);
        }
        if let Some(f) = &e.tls_fingerprint {
            v.extend(["--ssl-fingerprint".into(), f.clone()]);
        }
        // A worker whose manager is gone for a minute gives up and ends its job.
        v.extend(["--timeout".into(), "60".into()]);
        if let Some(w) = config.wall_time.filter(|_| self.kind != Kind::Slurm) {
            v.extend(["--wall-time".into(), w.as_secs().max(1).to_string()]);
        }
        v.extend(["--factory-job".into(), token.to_owned()]);
        v.extend(config.worker_options.iter().cloned());
        v
    }

    /// Writes the password copy again when the manager's password, of generation
    /// `current` now, was set or changed since it was written: jobs yet to start
    /// read the password the manager has now.
    fn refresh_password_copy(&mut self, current: Option<u64>) {
        let Some(r) = &self.ready_dir else {
            return;
        };
        if r.password.as_ref().map(|(_, g)| *g) == current {
            return;
        }
        let dir = r.dir.clone();
        if let Err(e) = self.prepare_dir(&dir) {
            self.fail(e);
        }
    }

    /// After a failed submission (see `unsure_since`): cancels the jobs of
    /// this factory's name that the batch system lists and the factory does
    /// not know. Jobs renamed by the batch options are not found this way.
    fn cancel_unknown(&mut self) {
        let Some(since) = self.unsure_since else {
            return;
        };
        let listed = match self.batch.named(&self.name) {
            // The batch system cannot tell: nothing to look for.
            None => {
                self.unsure_since = None;
                return;
            }
            Some(Err(e)) => {
                eprintln!("vine: factory: cannot look for jobs a failed submission left: {e}");
                return;
            }
            Some(Ok(ids)) => ids,
        };
        let unknown: Vec<String> = listed
            .into_iter()
            .filter(|id| {
                !self.jobs.iter().any(|j| j.id == *id) && !self.unknown_cancelled.contains(id)
            })
            .collect();
        if !unknown.is_empty() {
            eprintln!(
                "vine: factory: cancelling job(s) {} that a failed submission left behind",
                unknown.join(" ")
            );
            let refs: Vec<&str> = unknown.iter().map(String::as_str).collect();
            match self.batch.cancel(&refs) {
                Ok(()) => self.unknown_cancelled.extend(unknown),
                Err(e) => eprintln!("vine: factory: {e}"),
            }
        }
        if since.elapsed() >= UNSURE_FOR {
            self.unsure_since = None;
        }
    }

    /// Cancels the jobs whose worker came and went while the batch system
    /// still runs them (its host was blocked, it was cut off, its job was
    /// suspended): they serve no more, and count against `max-workers` until
    /// the batch system says they ended.
    fn cancel_left_behind(&mut self) {
        self.cancel_where(|j| j.joined && j.worker.is_none());
    }

    /// Cancels the jobs not cancelled nor known to have ended that `which`
    /// picks.
    fn cancel_where(&mut self, which: impl Fn(&Job) -> bool) {
        let mut cancel = Vec::new();
        for j in &mut self.jobs {
            if !j.cancelled && j.status != Status::Ended && which(j) {
                j.cancelled = true;
                cancel.push(j.id.clone());
            }
        }
        if !cancel.is_empty() {
            let refs: Vec<&str> = cancel.iter().map(String::as_str).collect();
            if let Err(e) = self.batch.cancel(&refs) {
                eprintln!("vine: factory: {e}");
            }
        }
    }

    /// Cancels the jobs submitted without a password, now that the manager has
    /// one: their workers would be refused (one that joined before was dropped
    /// when the password was set), and the jobs submitted from now on, with
    /// the password, replace them. Jobs given an earlier password are left:
    /// one that has yet to start reads the copy, which holds the new one.
    fn cancel_without_password(&mut self, current: Option<u64>) {
        if current.is_none() {
            return;
        }
        self.cancel_where(|j| j.password.is_none());
    }

    /// Gives back `surplus` workers: pending jobs first, newest first, then
    /// workers idle for the idle timeout, never below `min-workers`.
    fn shrink(&mut self, mut surplus: usize, config: &Config, target: usize) {
        let mut cancel = Vec::new();
        for j in self.jobs.iter_mut().rev() {
            if surplus == 0 {
                break;
            }
            if j.alive() && !j.joined {
                j.cancelled = true;
                cancel.push(j.id.clone());
                surplus -= 1;
            }
        }
        if !cancel.is_empty() {
            let refs: Vec<&str> = cancel.iter().map(String::as_str).collect();
            if let Err(e) = self.batch.cancel(&refs) {
                eprintln!("vine: factory: {e}");
            }
        }
        let keep = target.max(config.min_workers.min(config.max_workers));
        let mut connected = self.jobs.iter().filter(|j| j.worker.is_some()).count();
        let now = Instant::now();
        let idle: Vec<WorkerId> = self
            .jobs
            .iter()
            .filter(|j| {
                j.idle_since
                    .is_some_and(|t| now.duration_since(t) >= config.idle_timeout)
            })
            .filter_map(|j| j.worker)
            .collect();
        for w in idle {
            if surplus == 0 || connected <= keep {
                break;
            }
            let (reply, answer) = super::reply::oneshot();
            if self
                .tx
                .send(Message::ReleaseWorker { worker: w, reply })
                .is_err()
            {
                return;
            }
            if answer.recv().unwrap_or(false) {
                surplus -= 1;
                connected -= 1;
                if let Some(j) = self.jobs.iter_mut().find(|j| j.worker == Some(w)) {
                    j.worker = None;
                    j.idle_since = None;
                }
            }
        }
    }

    /// Cancels every job not known to have ended and waits, up to `grace`, until
    /// the batch system says they are gone.
    fn cancel_all(&mut self, grace: Duration) {
        // The grace counts from when the factory was told to stop.
        let start = self
            .shared
            .stop_from
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now);
        let deadline = start + grace;
        // No batch command outlasts the grace either (this replaces the cut
        // for the command that was in flight); a status query, which only
        // saves cancelling jobs that ended, gets an eighth of it, so that one
        // that hangs leaves time to cancel.
        let refresh = |c: &mut Self| {
            batch::commands_end_by(Some(deadline.min(Instant::now() + grace / 8)));
            c.refresh_status();
            batch::commands_end_by(Some(deadline));
        };
        refresh(self);
        self.cancel_unknown();
        let ask = Ask {
            prefix: self.prefix.clone(),
            size: Resources::default(),
            features: Vec::new(),
            wall_time_s: None,
            limit: 0.0,
        };
        if let Some(view) = self.look(ask) {
            self.take_view(&view);
        }
        // Idle workers are told to exit, and their jobs end by themselves;
        // the others are cancelled (their tasks run again elsewhere).
        let mut released = Vec::new();
        for j in &self.jobs {
            let Some(w) = j.worker.filter(|_| j.status != Status::Ended) else {
                continue;
            };
            let (reply, answer) = super::reply::oneshot();
            if self
                .tx
                .send(Message::ReleaseWorker { worker: w, reply })
                .is_ok()
                && answer.recv().unwrap_or(false)
            {
                released.push(j.id.clone());
            }
        }
        let mut pause = Duration::from_millis(10);
        let mut asked = std::collections::HashSet::new();
        loop {
            refresh(self);
            let left: Vec<String> = self
                .jobs
                .iter()
                .filter(|j| j.status != Status::Ended)
                .map(|j| j.id.clone())
                .collect();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let message = format!(
                    "{STUCK} after {} s: {} (cancel them by hand)",
                    grace.as_secs(),
                    left.join(" ")
                );
                eprintln!("vine: factory: {message}");
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(message);
                return;
            }
            // Released workers get half the grace to end on their own.
            let patient = start.elapsed() < grace / 2;
            let now: Vec<String> = left
                .into_iter()
                .filter(|id| !(asked.contains(id) || (patient && released.contains(id))))
                .collect();
            if !now.is_empty() {
                for j in &mut self.jobs {
                    if now.contains(&j.id) {
                        j.cancelled = true;
                    }
                }
                let refs: Vec<&str> = now.iter().map(String::as_str).collect();
                if let Err(e) = self.batch.cancel(&refs) {
                    eprintln!("vine: factory: {e}");
                }
                asked.extend(now);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// The factory's next question to the manager, answered with `demand`.
    fn answer(rx: &inbox::Receiver<Message>, demand: f64) {
        match rx.recv() {
            Ok(Message::FactoryView { reply, .. }) => {
                let _ = reply.send(View {
                    demand,
                    unfit: 0,
                    workers: Vec::new(),
                    joined: Vec::new(),
                });
            }
            Ok(_) => panic!("a factory sends only FactoryView here"),
            Err(e) => panic!("the factory stopped asking: {e:?}"),
        }
    }

    fn outputs(dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let p = e.ok()?.path();
                (p.extension()? == "out").then(|| std::fs::read_to_string(p).unwrap())
            })
            .collect()
    }

    /// A custom factory under `dir` whose jobs write their worker's command
    /// line to their output file and stay pending until cancelled, cycling every
    /// 10 ms: the
    /// factory and where it asks the manager.
    fn pending_jobs(
        dir: &Path,
        scratch: &Path,
        password: Option<&[u8]>,
    ) -> (Arc<Factory>, inbox::Receiver<Message>) {
        let (tx, rx) = inbox::unbounded();
        let password = password.map(<[u8]>::to_vec);
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9,
            password: Arc::new(move || (password.clone(), 1)),
            tls_fingerprint: None,
        };
        let scratch = scratch.to_str().unwrap().to_owned();
        let f = Factory::start(Kind::Custom, tx, endpoint, dir, |e| {
            e.set_string(
                "submit-command",
                "printf '%s\\n' \"$VINE_WORKER_COMMAND\" > \"$VINE_JOB_OUTPUT\" && echo job",
            )?;
            // Cancelled, the jobs end.
            e.set_string(
                "status-command",
                "test -e cancelled && echo done || echo pending",
            )?;
            e.set_string("cancel-command", "touch cancelled")?;
            e.set_string("scratch-dir", &scratch)?;
            e.set("cycle-interval", 0.01)
        })
        .unwrap();
        (f, rx)
    }

    /// Each `.out` file under `dir` (one level down too), with its text.
    fn outputs_below(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                found.extend(outputs_below(&p));
            } else if p.extension().is_some_and(|x| x == "out") {
                found.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
        found
    }

    #[test]
    fn a_scratch_directory_removed_meanwhile_is_made_again() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-factory-test").unwrap();
        let scratch = dir.join("scratch");
        let (f, rx) = pending_jobs(&dir, &scratch, None);
        answer(&rx, 1.0);
        answer(&rx, 1.0);
        // One job is out; a cleaner of old files removes the directory.
        assert_eq!(outputs_below(&scratch).len(), 1);
        std::fs::remove_dir_all(&scratch).unwrap();
        answer(&rx, 2.0);
        answer(&rx, 2.0);
        assert_eq!(f.counts(), (2, 0), "{:?}", f.last_error());
        assert_eq!(outputs_below(&scratch).len(), 1);
        drop(rx);
        f.stop(Duration::from_secs(60)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn jobs_that_would_not_go_are_named_in_a_timeout_error() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-factory-test").unwrap();
        let scratch = dir.join("scratch");
        let (f, rx) = pending_jobs(&dir, &scratch, None);
        f.set_string("cancel-command", "true").unwrap();
        // A settings change during a look makes the factory look again before
        // it submits: answered until its job is out, and once more, so that the
        // cycle that submitted it is over.
        let out = || scratch.exists() && !outputs_below(&scratch).is_empty();
        for looks in 0.. {
            if out() {
                break;
            }
            assert!(looks < 1000, "no job went out");
            answer(&rx, 1.0);
        }
        answer(&rx, 1.0);
        drop(rx);
        let e = f.stop(Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(
            e.to_string().contains("still present") && e.to_string().contains("job"),
            "{e}"
        );
        // Kept for a look, as the jobs may still use them.
        assert!(dir.join("scratch").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_scratch_directory_others_may_write_gets_a_private_one_inside() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-factory-test").unwrap();
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(shared.join("password"), "mine").unwrap();
        let (f, rx) = pending_jobs(&dir, &shared, Some(b"sesame"));
        answer(&rx, 1.0);
        answer(&rx, 1.0);
        let jobs = outputs_below(&shared);
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let (out, line) = &jobs[0];
        let own = out.parent().unwrap();
        assert_ne!(
            own, shared,
            "job files straight in a directory others write"
        );
        let mode = std::fs::metadata(own).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // The job's password copy is in the private directory; the user's own
        // file of that name is untouched.
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "--password").unwrap();
        let copy = PathBuf::from(words[at + 1]);
        assert_eq!(copy.parent().unwrap(), own);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "sesame");
        assert_eq!(
            std::fs::read_to_string(shared.join("password")).unwrap(),
            "mine"
        );
        drop(rx);
        f.stop(Duration::from_secs(60)).unwrap();
        // Nothing of the factory's is left, the password's copy least of all.
        assert!(!copy.exists() && !own.exists());
        assert!(shared.join("password").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_private_directory_replaced_by_a_link_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-factory-test").unwrap();
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (f, rx) = pending_jobs(&dir, &shared, None);
        answer(&rx, 1.0);
        answer(&rx, 1.0);
        let jobs = outputs_below(&shared);
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let own = jobs[0].0.parent().unwrap().to_owned();
        // Another user of the shared directory puts a link of theirs in its
        // place (here: to a directory of this test's).
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::remove_dir_all(&own).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &own).unwrap();
        answer(&rx, 2.0);
        answer(&rx, 2.0);
        assert_eq!(
            outputs_below(&elsewhere),
            Vec::new(),
            "job files through the link"
        );
        let e = f.last_error().unwrap_or_default();
        assert!(e.contains("not a directory of this user's only"), "{e}");
        drop(rx);
        let _ = f.stop(Duration::from_secs(60));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A password set after the factory started: the jobs submitted without one
    /// are cancelled and replaced by jobs given it; one changed later replaces
    /// the copy that the jobs yet to start read, and no job given an earlier
    /// password is cancelled for it.
    #[test]
    fn a_password_set_later_reaches_the_jobs_and_replaces_those_without_one() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-factory-test").unwrap();
        let scratch = dir.join("scratch");
        let now = Arc::new(Mutex::new((None::<Vec<u8>>, 0)));
        let (tx, rx) = inbox::unbounded();
        let seen = now.clone();
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9,
            password: Arc::new(move || seen.lock().unwrap().clone()),
            tls_fingerprint: None,
        };
        // Each job's worker command goes to its output file, its id is its
        // token, and it stays pending until cancelled.
        let f = Factory::start(Kind::Custom, tx, endpoint, &dir, |e| {
            e.set_string(
                "submit-command",
                "printf '%s\\n' \"$VINE_WORKER_COMMAND\" > \"$VINE_JOB_OUTPUT\" && \
                 basename \"$VINE_JOB_OUTPUT\" .out",
            )?;
            e.set_string(
                "status-command",
                "test -e \"cancelled-$VINE_JOB_ID\" && echo done || echo pending",
            )?;
            e.set_string("cancel-command", "touch \"cancelled-$VINE_JOB_ID\"")?;
            e.set_string("scratch-dir", scratch.to_str().unwrap())?;
            e.set("cycle-interval", 0.01)
        })
        .unwrap();
        // Job n's worker command, and whether it was cancelled (its token is
        // vfSEQ-n).
        let job = |n: u64| {
            outputs_below(&scratch)
                .into_iter()
                .find(|(p, _)| p.to_string_lossy().ends_with(&format!("-{n}.out")))
                .map(|(_, line)| line)
        };
        let cancelled = |n: u64| {
            std::fs::read_dir(&scratch).unwrap().flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("cancelled-vf") && name.ends_with(&format!("-{n}"))
            })
        };
        // No password: the first job is given none.
        answer(&rx, 1.0);
        answer(&rx, 1.0);
        let first = job(1).expect("a first job");
        assert!(!first.contains("--password"), "{first}");
        // Set now: the next cycle cancels it, and submits one given the password.
        *now.lock().unwrap() = (Some(b"sesame".to_vec()), 1);
        answer(&rx, 1.0);
        answer(&rx, 1.0);
        assert!(cancelled(1));
        let second = job(2).expect("a job to replace the first");
        let words: Vec<&str> = second.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "--password").unwrap();
        let copy = PathBuf::from(words[at + 1]);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "sesame");
        // Changed: the copy holds the new one; the pending job stays.
        *now.lock().unwrap() = (Some(b"open".to_vec()), 2);
        answer(&rx, 1.0);
        answer(&rx, 1.0);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "open");
        assert!(!cancelled(2));
        assert!(job(3).is_none(), "a job beyond the demand");
        assert_eq!(f.counts(), (2, 0), "{:?}", f.last_error());
        drop(rx);
        f.stop(Duration::from_secs(60)).unwrap();
        assert!(!copy.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A program sets a factory up right after creating it, then submits; the
    /// factory's first look at the manager may be under way all that time. No
    /// job goes out with the settings from before.
    #[test]
    fn settings_changed_while_a_cycle_asks_the_manager_apply_to_its_jobs() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-factory-test").unwrap();
        let (tx, rx) = inbox::unbounded();
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9,
            password: Arc::new(|| (None, 0)),
            tls_fingerprint: None,
        };
        // Each job's worker command goes to its output file; the jobs stay pending.
        let f = Factory::start(Kind::Custom, tx, endpoint, &dir, |e| {
            e.set_string(
                "submit-command",
                "printf '%s\\n' \"$VINE_WORKER_COMMAND\" > \"$VINE_JOB_OUTPUT\"; echo job",
            )?;
            e.set_string("status-command", "echo pending")?;
            e.set_string("cancel-command", "true")
        })
        .unwrap();
        let first = f.scratch_dir();
        // The first look is under way: the factory waits for the manager.
        let Ok(Message::FactoryView { reply, .. }) = rx.recv() else {
            panic!("the factory did not look");
        };
        let later = dir.join("later");
        f.set_string("scratch-dir", later.to_str().unwrap())
            .unwrap();
        f.set_string("worker-path", "/bin/true").unwrap();
        f.set("max-workers", 1.0).unwrap();
        // Tasks came meanwhile.
        let _ = reply.send(View {
            demand: 4.0,
            unfit: 0,
            workers: Vec::new(),
            joined: Vec::new(),
        });
        answer(&rx, 4.0);
        // A third look means the cycle before it has submitted.
        f.nudge();
        answer(&rx, 4.0);
        drop(rx);
        let _ = f.stop(Duration::ZERO);
        assert_eq!(
            outputs(&first),
            Vec::<String>::new(),
            "jobs with old settings"
        );
        let jobs = outputs(&later);
        assert_eq!(jobs.len(), 1, "max-workers 1: {jobs:?}");
        assert!(jobs[0].starts_with("/bin/true "), "{jobs:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
