//! A worker process: connects to a manager, proves it knows the password (and makes
//! the manager prove it too), then runs the tasks it is sent on a [`LocalPool`] of
//! its own and sends back what became of them. `vine_worker` is this; so is any
//! program that calls `vine_worker_main`.

use std::ffi::CString;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::channel::{FrameReader, FrameWriter, Handshake};
use crate::error::{Error, ErrorKind, Result};
use crate::files::{CacheLevel, File, Mount};
use crate::protocol::{
    self, Dest, Held, InputContent, OutputStatus, TaskReport, TaskSpec, ToManager, ToWorker,
    WorkSpec,
};
use crate::resources::Resources;
use crate::task::{Task, TaskResult, FLAG_CANCELLED};
use crate::worker::command::CommandEnv;
use crate::worker::local::{LocalPool, Report};
use crate::worker::sandbox::move_file;
use crate::worker::WorkerLink;

/// How a worker is configured (the command line of `vine_worker`).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Manager host.
    pub host: String,
    /// Manager port.
    pub port: u16,
    /// Password, if the manager wants one.
    pub password: Option<Vec<u8>>,
    /// Resources offered; None = what the machine has.
    pub cores: Option<f64>,
    /// Memory MB.
    pub memory: Option<u64>,
    /// Disk MB.
    pub disk: Option<u64>,
    /// Gpus.
    pub gpus: Option<u32>,
    /// Shared libraries whose functions to register.
    pub libraries: Vec<PathBuf>,
    /// Give up when no manager is reachable for this long.
    pub timeout: Duration,
    /// Where sandboxes and the cache go.
    pub workdir: PathBuf,
    /// Seconds between keepalives.
    pub keepalive: Duration,
    /// Connect with TLS, checking the manager's certificate so.
    pub tls: Option<crate::tls::Verify>,
}

const USAGE: &str = "usage: vine_worker HOST PORT [--password FILE] [--cores N] [--memory MB] \
[--disk MB] [--gpus N] [--library LIB.so]... [--timeout S] [--workdir DIR] \
[--ssl] [--ssl-fingerprint SHA256] [--ssl-ca PEM]";

impl WorkerOptions {
    /// The store of files kept forever (cache level FOREVER): shared by this user's
    /// workers that use the same work directory, and left in place when they exit,
    /// so a later worker (for any manager) has them without a transfer.
    pub fn store(&self) -> PathBuf {
        // SAFETY: geteuid takes nothing and cannot fail.
        let uid = unsafe { libc::geteuid() };
        self.workdir.join(format!("vine-forever-{uid}"))
    }

    /// Parses `argv` (program name first; an optional `--vine-worker` after it).
    pub fn parse(args: &[String]) -> Result<WorkerOptions> {
        let mut it = args
            .iter()
            .skip(1)
            .filter(|a| a.as_str() != "--vine-worker");
        let mut positional = Vec::new();
        let mut o = WorkerOptions {
            host: String::new(),
            port: 0,
            password: None,
            cores: None,
            memory: None,
            disk: None,
            gpus: None,
            libraries: Vec::new(),
            timeout: Duration::from_secs(900),
            workdir: std::env::temp_dir(),
            keepalive: Duration::from_secs(5),
            tls: None,
        };
        let bad =
            |what: &str, v: &str| Error::invalid(format!("{what} {v:?} is not valid\n{USAGE}"));
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::invalid(format!("{name} needs a value\n{USAGE}")))
            };
            match a.as_str() {
                "--password" => {
                    let path = value(a)?;
                    let mut pw = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                    while pw.last().is_some_and(|b| b.is_ascii_whitespace()) {
                        pw.pop();
                    }
                    o.password = Some(pw);
                }
                "--cores" => {
                    let v = value(a)?;
                    o.cores = Some(v.parse().map_err(|_| bad("--cores", &v))?);
                }
                "--memory" => {
                    let v = value(a)?;
                    o.memory = Some(v.parse().map_err(|_| bad("--memory", &v))?);
                }
                "--disk" => {
                    let v = value(a)?;
                    o.disk = Some(v.parse().map_err(|_| bad("--disk", &v))?);
                }
                "--gpus" => {
                    let v = value(a)?;
                    o.gpus = Some(v.parse().map_err(|_| bad("--gpus", &v))?);
                }
                "--library" => o.libraries.push(value(a)?.into()),
                "--timeout" => {
                    let v = value(a)?;
                    let s: f64 = v.parse().map_err(|_| bad("--timeout", &v))?;
                    // Up to a year: past that it is a typo, and Instant arithmetic
                    // on it must not overflow.
                    if !s.is_finite() || !(0.0..=365.0 * 86400.0).contains(&s) {
                        return Err(bad("--timeout", &v));
                    }
                    o.timeout = Duration::from_secs_f64(s);
                }
                "--workdir" => o.workdir = value(a)?.into(),
                "--ssl" => {
                    o.tls.get_or_insert(crate::tls::Verify::Any);
                }
                "--ssl-fingerprint" => {
                    o.tls = Some(crate::tls::Verify::fingerprint(&value(a)?)?);
                }
                "--ssl-ca" => o.tls = Some(crate::tls::Verify::Ca(value(a)?.into())),
                "--keepalive-interval" => {
                    let v = value(a)?;
                    let s: f64 = v.parse().map_err(|_| bad("--keepalive-interval", &v))?;
                    if !s.is_finite() || s <= 0.0 || s > 86400.0 {
                        return Err(bad("--keepalive-interval", &v));
                    }
                    o.keepalive = Duration::from_secs_f64(s);
                }
                s if s.starts_with("--") => {
                    return Err(Error::invalid(format!("unknown option {s}\n{USAGE}")))
                }
                _ => positional.push(a.clone()),
            }
        }
        match positional.as_slice() {
            [host, port] => {
                o.host = host.clone();
                o.port = port.parse().map_err(|_| bad("port", port))?;
            }
            _ => return Err(Error::invalid(USAGE)),
        }
        Ok(o)
    }

    fn resources(&self, workdir: &Path) -> Result<Resources> {
        let mut r = Resources {
            millicores: crate::worker::machine::cores() * 1000,
            memory_mb: crate::worker::machine::memory_mb(),
            disk_mb: crate::worker::machine::disk_free_mb(workdir),
            gpus: 0,
        };
        if let Some(c) = self.cores {
            r.millicores = Resources::millicores_from(c, false)?;
        }
        if let Some(m) = self.memory {
            r.memory_mb = m;
        }
        if let Some(d) = self.disk {
            r.disk_mb = d;
        }
        if let Some(g) = self.gpus {
            r.gpus = g;
        }
        Ok(r)
    }
}

/// Runs a worker with `args` as its command line; returns the process exit code:
/// 0 when the manager told it to exit, 1 when no manager could be reached or
/// authenticated within the timeout, 2 for a bad command line.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let opts = match WorkerOptions::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vine_worker: {e}");
            return 2;
        }
    };
    match run(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vine_worker: {e}");
            1
        }
    }
}

/// Connects, serves, reconnects while the manager is reachable within the timeout;
/// returns when the manager says to exit.
pub fn run(opts: &WorkerOptions) -> Result<()> {
    for lib in &opts.libraries {
        crate::worker::library::load(lib)?;
    }
    remove_dead_workers_dirs(&opts.workdir);
    let store = open_store(&opts.store());
    let dir = crate::files::fresh_dir(&opts.workdir, "vine-worker")?;
    let _cleanup = DirGuard(dir.clone());
    for sub in ["cache", "sandbox", "out"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| Error::io(dir.display(), e))?;
    }
    let resources = opts.resources(&dir)?;
    let tls = opts
        .tls
        .as_ref()
        .map(crate::tls::ClientTls::new)
        .transpose()?;
    // The timeout counts from the last session the manager accepted: connections
    // that fail their handshake do not count as contact.
    let mut last_contact = Instant::now();
    loop {
        match TcpStream::connect((opts.host.as_str(), opts.port)) {
            Ok(stream) => {
                match serve(
                    opts,
                    stream,
                    tls.as_ref(),
                    resources,
                    &dir,
                    store.as_deref(),
                ) {
                    Ok(()) => return Ok(()),
                    Err(Ended::Refused(e)) => return Err(e),
                    Err(Ended::BeforeSession(e)) => {
                        if last_contact.elapsed() >= opts.timeout {
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                format!(
                                    "no session with the manager at {}:{} for {:?}: {e}",
                                    opts.host, opts.port, opts.timeout
                                ),
                            ));
                        }
                    }
                    Err(Ended::Broken(e)) => {
                        eprintln!("vine_worker: connection to the manager ended: {e}");
                        last_contact = Instant::now();
                    }
                }
            }
            Err(e) => {
                if last_contact.elapsed() >= opts.timeout {
                    return Err(Error::io(
                        format!(
                            "no manager at {}:{} for {:?}",
                            opts.host, opts.port, opts.timeout
                        ),
                        e,
                    ));
                }
            }
        }
        if last_contact.elapsed() >= opts.timeout {
            return Err(Error::new(
                ErrorKind::Timeout,
                "the manager went away and did not come back",
            ));
        }
        // Retry pacing for reconnection, not synchronisation.
        std::thread::sleep(Duration::from_millis(200).min(opts.timeout));
    }
}

/// How a connection to the manager ended, when not told to exit.
#[derive(Debug)]
enum Ended {
    /// The manager refused this worker, or failed to prove the password: trying
    /// again would fail again.
    Refused(Error),
    /// Before a session began (refused connection, handshake cut off).
    BeforeSession(Error),
    /// A session that had begun.
    Broken(Error),
}

/// Creates or opens the store of files kept forever. A directory that another user
/// owns or could write to is not used (it could hold anything under a name), nor
/// one that cannot be made: the worker then keeps such files for its life only.
fn open_store(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let made = std::fs::DirBuilder::new().mode(0o700).create(path);
    if let Err(e) = made {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            eprintln!(
                "vine_worker: no store of files kept forever at {}: {e}",
                path.display()
            );
            return None;
        }
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0 => Some(path.to_owned()),
        _ => {
            eprintln!(
                "vine_worker: not using {} for files kept forever: not a directory of \
                 this user's that only it can write",
                path.display()
            );
            None
        }
    }
}

/// The names of the files in a store of files kept forever.
fn stored_names(store: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| protocol::is_content_name(n))
        .collect()
}

/// Removes the directories of workers that were killed before they could clean up.
fn remove_dead_workers_dirs(workdir: &Path) {
    let Ok(entries) = std::fs::read_dir(workdir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("vine-worker-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        let Some(pid) = pid else { continue };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

struct DirGuard(PathBuf);
impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the handshake: TLS if asked for, then registration with the password
/// proofs both ways, bound to the TLS channel when there is one. Returns the
/// session's halves, its socket and how often to send keepalives.
fn handshake(
    opts: &WorkerOptions,
    stream: TcpStream,
    tls: Option<&crate::tls::ClientTls>,
    resources: Resources,
    store: Option<&Path>,
) -> std::result::Result<(FrameReader, FrameWriter, TcpStream, Duration), Ended> {
    use Ended::{BeforeSession, Refused};
    // Long enough for a manager that holds connections until it is configured.
    let until = Instant::now() + Duration::from_secs(30);
    let conn = tls
        .map(|t| t.connect(&opts.host))
        .transpose()
        .map_err(Refused)?;
    let mut h = Handshake::start(stream, conn, until).map_err(|e| {
        if e.kind() == ErrorKind::InvalidHandle {
            Refused(e)
        } else {
            BeforeSession(e)
        }
    })?;
    let hello: ToWorker = h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(BeforeSession)?;
    let ToWorker::Hello { challenge, auth } = hello else {
        return Err(BeforeSession(Error::invalid(
            "the manager did not start with Hello",
        )));
    };
    if auth && opts.password.is_none() {
        return Err(Refused(crate::channel::refused(
            "the manager requires a password (--password FILE)",
        )));
    }
    let mine = protocol::challenge();
    let binding = h.binding().map_err(BeforeSession)?;
    let context = protocol::ProofContext {
        manager: &challenge,
        worker: &mine,
        binding: &binding,
    };
    let proof = opts
        .password
        .as_ref()
        .map(|pw| protocol::prove(pw, &context, protocol::ROLE_WORKER));
    let r = resources;
    h.send(&ToManager::Register {
        resources: (r.millicores, r.memory_mb, r.disk_mb, r.gpus),
        functions: crate::registry::names(),
        hostname: hostname(),
        proof,
        challenge: mine,
        stored: store.map(stored_names).unwrap_or_default(),
    })
    .map_err(BeforeSession)?;
    let welcome: ToWorker = h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(BeforeSession)?;
    let (proof, keepalive_ms) = match welcome {
        ToWorker::Welcome {
            proof,
            keepalive_ms,
            ..
        } => (proof, keepalive_ms),
        ToWorker::Refused { reason } => {
            return Err(Refused(crate::channel::refused(&format!(
                "the manager refused this worker: {reason}"
            ))))
        }
        _ => {
            return Err(BeforeSession(Error::invalid(
                "the manager did not welcome this worker",
            )))
        }
    };
    let mut keys = None;
    if let Some(pw) = &opts.password {
        // Never run anything for a manager that cannot prove it knows the password.
        let ok = proof.is_some_and(|p| protocol::verify(pw, &context, protocol::ROLE_MANAGER, &p));
        if !ok {
            return Err(Refused(crate::channel::refused(
                "the manager failed authentication",
            )));
        }
        if !h.is_tls() {
            // The worker sends with the worker-to-manager key.
            let (m2w, w2m) = protocol::session_keys(pw, &challenge, &mine);
            keys = Some((w2m, m2w));
        }
    }
    let (incoming, outgoing, sock) = h.into_session(keys).map_err(BeforeSession)?;
    // Keep alive as often as the manager needs, or more often if asked to.
    let keepalive = opts
        .keepalive
        .min(Duration::from_millis(keepalive_ms.max(1)));
    Ok((incoming, outgoing, sock, keepalive))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// One session with the manager. Ok when told to exit; Err when the connection broke.
///
/// The reader thread applies what the manager sends as it arrives (files into the
/// cache, tasks straight onto the pool, cancellations), so a task reaches a pool
/// thread with one hand-over; the pool thread that finishes a task reports it
/// itself; this thread sends keepalives and waits for the end. Frames from all of
/// them go out whole under one lock.
fn serve(
    opts: &WorkerOptions,
    stream: TcpStream,
    tls: Option<&crate::tls::ClientTls>,
    resources: Resources,
    dir: &Path,
    store: Option<&Path>,
) -> std::result::Result<(), Ended> {
    let _ = stream.set_nodelay(true);
    let (reader, outgoing, sock, keepalive) = handshake(opts, stream, tls, resources, store)?;
    serve_session(reader, outgoing, sock, keepalive, resources, dir, store).map_err(Ended::Broken)
}

/// Serves a session that has begun, until told to exit (Ok) or the connection breaks.
fn serve_session(
    reader: FrameReader,
    outgoing: FrameWriter,
    sock: TcpStream,
    keepalive: Duration,
    resources: Resources,
    dir: &Path,
    store: Option<&Path>,
) -> Result<()> {
    let max_stdout = Arc::new(AtomicUsize::new(crate::worker::command::DEFAULT_MAX_STDOUT));
    let env = CommandEnv {
        sandbox_root: dir.join("sandbox"),
        temp_root: dir.join("cache"),
        max_stdout: max_stdout.clone(),
    };
    let writer = Arc::new(Mutex::new(outgoing));
    let outputs: Outputs = Default::default();
    let (end_tx, end_rx) = crossbeam_channel::bounded::<Result<()>>(2);
    let next_xfer = Arc::new(AtomicU64::new(0));
    let reporter = Reporter {
        writer: writer.clone(),
        outputs: outputs.clone(),
        next_xfer: next_xfer.clone(),
    };
    let broken = end_tx.clone();
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let over = ended.clone();
    // A finished task is reported by the pool thread that ran it; once the
    // session is over, what the pool gives back (cancelled) is not reported.
    let report = Report::Each(Box::new(move |task| {
        if over.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        if let Err(e) = reporter.send(&task) {
            let _ = broken.try_send(Err(e));
        }
    }));
    let pool = LocalPool::new(resources, env, report);
    let mut inbound = Inbound {
        dir: dir.to_path_buf(),
        store: store.map(Path::to_path_buf),
        pool: pool.share(),
        outputs: outputs.clone(),
        writer: writer.clone(),
        receiver: crate::transfer::Receiver::new(dir.join("out"), "xfer-"),
        verified: Default::default(),
        max_stdout,
        next_xfer,
    };
    std::thread::Builder::new()
        .name("vine-worker-reader".into())
        .spawn(move || {
            let end = inbound.run(reader);
            let _ = end_tx.send(end);
        })
        .map_err(|e| Error::io("cannot start a thread", e))?;
    let outcome = keep_alive(&writer, &end_rx, keepalive);
    ended.store(true, std::sync::atomic::Ordering::Release);
    pool.cancel_waiting();
    pool.cancel_running();
    pool.stop(Instant::now() + Duration::from_secs(5));
    crate::channel::close(&sock);
    outcome
}

/// Per running task: what to do with its files once it is done.
type Outputs = Arc<Mutex<std::collections::HashMap<u64, TaskFiles>>>;

/// The files of one task at this worker.
#[derive(Default)]
struct TaskFiles {
    /// (file id, path, what to do with it when the task is done).
    files: Vec<(u64, PathBuf, AfterTask)>,
    /// Inputs this worker should have held but found missing or damaged.
    lost: Vec<Held>,
}

fn send(writer: &Mutex<FrameWriter>, frame: &ToManager) -> Result<()> {
    writer.lock().unwrap_or_else(|p| p.into_inner()).send(frame)
}

/// Reports finished tasks to the manager.
struct Reporter {
    writer: Arc<Mutex<FrameWriter>>,
    outputs: Outputs,
    next_xfer: Arc<AtomicU64>,
}

/// Sends a file or directory to the manager as a transfer to `dest`, one frame
/// at a time (other frames go between them). The outer Err: the connection broke.
fn send_file(
    writer: &Mutex<FrameWriter>,
    next_xfer: &AtomicU64,
    dest: Dest,
    path: &Path,
) -> Result<std::result::Result<(), String>> {
    let xfer = next_xfer.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    let source = crate::transfer::Source::Path(path.to_owned());
    let outcome = crate::transfer::send(
        xfer,
        dest,
        &source,
        &mut |piece| send(writer, &ToManager::Xfer(piece)),
        &mut sent,
    )?;
    Ok(outcome.map(drop))
}

/// What happens to a task's file when the task is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterTask {
    /// An output: send it to the manager, then remove it.
    Send,
    /// An input sent with this task only: remove it.
    Remove,
}

/// Sends keepalives until the session ends: Ok when the manager said exit, Err
/// when the connection broke (on either thread).
fn keep_alive(
    writer: &Mutex<FrameWriter>,
    end: &Receiver<Result<()>>,
    keepalive: Duration,
) -> Result<()> {
    loop {
        match end.recv_timeout(keepalive) {
            Ok(why) => return why,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                send(writer, &ToManager::Keepalive)?
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(Error::new(ErrorKind::Io, "connection closed"))
            }
        }
    }
}

impl Reporter {
    fn send(&self, task: &Task) -> Result<()> {
        let report = self.report(task)?;
        send(&self.writer, &ToManager::Done(Box::new(report)))
    }

    /// The report on `task`, after its outputs were sent (each in its own
    /// transfer, so one that cannot be sent fails only this task).
    fn report(&self, task: &Task) -> Result<TaskReport> {
        let mut outputs = Vec::new();
        let TaskFiles { files, lost } = self
            .outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task.id)
            .unwrap_or_default();
        for (file_id, path, after) in files {
            // Not produced: the task's result already says so.
            if after == AfterTask::Send && std::fs::symlink_metadata(&path).is_ok() {
                let dest = Dest::Output(task.id, task.attempts, file_id);
                let status = match send_file(&self.writer, &self.next_xfer, dest, &path)? {
                    Ok(()) => OutputStatus::Sent,
                    Err(why) => OutputStatus::Failed(why),
                };
                outputs.push((file_id, status));
            }
            crate::transfer::remove_all(&path);
        }
        let mut reason = task.reason().map(|r| r.to_string_lossy().into_owned());
        let result = if task.flags & FLAG_CANCELLED != 0 {
            TaskResult::Cancelled
        } else if !lost.is_empty() {
            // Not the task's fault: it runs again, and the manager sends the
            // inputs again.
            reason = Some("an input this worker kept was missing or damaged".into());
            TaskResult::Forsaken
        } else {
            task.result()
        };
        Ok(TaskReport {
            id: task.id,
            attempt: task.attempts,
            result: result.code(),
            exit_code: task.exit_code(),
            output: task.output().to_vec(),
            stdout: task.stdout().map(|s| s.to_bytes().to_vec()),
            reason,
            started: task.times().started,
            done: task.times().done,
            outputs,
            lost,
            arrived: Vec::new(),
        })
    }
}

/// The incoming half of a session, on the reader thread.
struct Inbound {
    dir: PathBuf,
    /// Files kept forever (see [`WorkerOptions::store`]), if usable.
    store: Option<PathBuf>,
    pool: LocalPool,
    outputs: Outputs,
    writer: Arc<Mutex<FrameWriter>>,
    /// Files arriving from the manager.
    receiver: crate::transfer::Receiver,
    /// Files of the store found to hash to their names, as they were then.
    verified: std::collections::HashMap<String, Stamp>,
    /// The cap on command output the manager set, told with each task.
    max_stdout: Arc<AtomicUsize>,
    /// Ids for transfers to the manager.
    next_xfer: Arc<AtomicU64>,
}

/// What identifies one version of a file on disk: any write changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())?;
    Some(Stamp(
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

impl Inbound {
    /// Applies frames until the manager says exit (Ok) or the connection breaks.
    fn run(&mut self, mut reader: FrameReader) -> Result<()> {
        loop {
            match reader.recv::<ToWorker>()? {
                ToWorker::Xfer(piece) => {
                    if let Some(arrived) = self.receiver.piece(piece)? {
                        self.arrived(arrived)?;
                    }
                }
                ToWorker::Run(spec) => {
                    let task = self.task_from(*spec);
                    self.pool.dispatch(&mut vec![task]);
                }
                ToWorker::Cancel(id) => self.pool.cancel(id),
                ToWorker::GetFile(file_id) => {
                    let path = self.cache_path(file_id);
                    let error = if std::fs::symlink_metadata(&path).is_ok() {
                        let dest = Dest::Fetched(file_id);
                        send_file(&self.writer, &self.next_xfer, dest, &path)?.err()
                    } else {
                        Some("the worker no longer has it".into())
                    };
                    send(&self.writer, &ToManager::FileData { file_id, error })?;
                }
                ToWorker::Keepalive
                | ToWorker::Hello { .. }
                | ToWorker::Welcome { .. }
                | ToWorker::Refused { .. } => {}
                ToWorker::Exit => return Ok(()),
            }
        }
    }

    /// Puts a file that arrived complete where it was sent to. One that cannot be
    /// put there is dropped: the task that needs it finds it missing.
    fn arrived(&mut self, arrived: crate::transfer::Arrived) -> Result<()> {
        let (staged, hash) = match arrived.outcome {
            Ok(x) => x,
            Err(_) => return Ok(()),
        };
        let dest = match arrived.dest {
            Dest::Cache(file_id) => self.cache_path(file_id),
            Dest::Task(task, attempt, file_id) => self.task_input_path(task, attempt, file_id),
            // Named by the hash of what arrived, which the receiver computed: the
            // store never holds a file under another file's name.
            Dest::Store if arrived.is_file => {
                let name = protocol::hex_name(&hash);
                // Renamed into place whole: a worker sharing the store never sees
                // half a file under the name. Without a usable store the file is
                // kept for this worker's life only.
                let kept = self.store.as_ref().map(|s| s.join(&name)).filter(|at| {
                    crate::transfer::remove_all(at);
                    move_file(&staged, at).is_ok()
                });
                let at = match kept {
                    Some(at) => at,
                    None => {
                        let private = self.private_stored_path(&name);
                        crate::transfer::remove_all(&private);
                        if move_file(&staged, &private).is_err() {
                            crate::transfer::remove_all(&staged);
                            return Ok(());
                        }
                        private
                    }
                };
                if let Some(s) = stamp(&at) {
                    self.verified.insert(name, s);
                }
                return Ok(());
            }
            Dest::Store => {
                crate::transfer::remove_all(&staged);
                return Ok(());
            }
            Dest::Output(..) | Dest::Fetched(_) => {
                crate::transfer::remove_all(&staged);
                return Err(Error::invalid("the manager sent a file only workers send"));
            }
        };
        crate::transfer::remove_all(&dest);
        if move_file(&staged, &dest).is_err() {
            crate::transfer::remove_all(&staged);
        }
        Ok(())
    }

    /// Whether the file kept forever at `path` still hashes to `name` (checked
    /// again whenever the file changed since it last did). One that does not is
    /// removed.
    fn verify_stored(&mut self, name: &str, path: &Path) -> bool {
        let Some(now) = stamp(path) else {
            return false;
        };
        if self.verified.get(name) == Some(&now) {
            return true;
        }
        let source = crate::transfer::Source::Path(path.to_owned());
        match crate::transfer::hash_source(&source) {
            Ok(h) if protocol::hex_name(&h) == name => {
                self.verified.insert(name.to_owned(), now);
                true
            }
            Ok(_) => {
                eprintln!(
                    "vine_worker: {} does not hash to its name: removed",
                    path.display()
                );
                self.verified.remove(name);
                crate::transfer::remove_all(path);
                false
            }
            Err(_) => false,
        }
    }

    fn task_input_path(&self, task: u64, attempt: u32, file_id: u64) -> PathBuf {
        self.dir
            .join("out")
            .join(format!("in-{task}-{attempt}-{file_id}"))
    }

    /// Where a file kept forever is: in the store, or else where this worker kept
    /// it for itself.
    fn stored_path(&self, name: &str) -> PathBuf {
        match &self.store {
            Some(store) if store.join(name).exists() => store.join(name),
            _ => self.private_stored_path(name),
        }
    }

    fn private_stored_path(&self, name: &str) -> PathBuf {
        self.dir.join("cache").join(format!("stored-{name}"))
    }

    fn cache_path(&self, file_id: u64) -> PathBuf {
        self.dir.join("cache").join(file_id.to_string())
    }

    /// Builds the local task that runs `spec`; a spec this worker cannot express
    /// becomes a task that fails with the reason when it runs.
    fn task_from(&mut self, spec: TaskSpec) -> Box<Task> {
        let mut task = match &spec.work {
            WorkSpec::Function {
                name,
                input,
                process,
            } => {
                let name = CString::new(name.clone()).unwrap_or_default();
                let mut t = Task::function(&name, input);
                if *process {
                    let _ = t.set_exec_mode(crate::task::ExecMode::Process);
                }
                t
            }
            WorkSpec::Command { command, .. } => {
                Task::command(&CString::new(command.clone()).unwrap_or_default())
            }
        };
        task.id = spec.id;
        task.attempts = spec.attempt;
        let (millicores, memory_mb, disk_mb, gpus) = spec.resources;
        task.request = Resources {
            millicores,
            memory_mb,
            disk_mb,
            gpus,
        };
        let _ = task.set_time_max(spec.time_max);
        self.max_stdout.store(
            usize::try_from(spec.max_stdout).unwrap_or(usize::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        if let WorkSpec::Command { env, .. } = &spec.work {
            for (k, v) in env {
                if let (Ok(k), Ok(v)) = (
                    CString::new(k.clone()),
                    v.clone().map(CString::new).transpose(),
                ) {
                    let _ = task.set_env_var(&k, v.as_deref());
                }
            }
        }
        let mut outs = Vec::new();
        let mut lost = Vec::new();
        let mut refused = None;
        for input in &spec.inputs {
            let path = match &input.content {
                InputContent::Cached => {
                    let p = self.cache_path(input.file_id);
                    if std::fs::symlink_metadata(&p).is_err() {
                        lost.push(Held::Cached(input.file_id));
                    }
                    p
                }
                InputContent::Stored(name) if protocol::is_content_name(name) => {
                    let p = self.stored_path(name);
                    // Never serve bytes that are not the ones named.
                    if !self.verify_stored(name, &p) {
                        lost.push(Held::Stored(name.clone()));
                    }
                    p
                }
                InputContent::Stored(_) => {
                    refused.get_or_insert(Error::invalid("a stored file name that is not a hash"));
                    continue;
                }
                InputContent::Sent => {
                    let p = self.task_input_path(spec.id, spec.attempt, input.file_id);
                    outs.push((input.file_id, p.clone(), AfterTask::Remove));
                    p
                }
                // A path that does not exist: placing it fails as INPUT_MISSING.
                InputContent::Missing => self
                    .dir
                    .join("out")
                    .join(format!("missing-{}", input.file_id)),
            };
            let mount = File::path(&path, CacheLevel::Task, 0)
                .and_then(|f| Mount::new(f, &input.remote_name, input.flags))
                .and_then(|m| task.add_input(m));
            if let Err(e) = mount {
                refused.get_or_insert(e);
            }
        }
        for output in &spec.outputs {
            let path = if output.keep_at_worker {
                self.cache_path(output.file_id)
            } else {
                self.dir
                    .join("out")
                    .join(format!("{}-{}-{}", spec.id, spec.attempt, output.file_id))
            };
            if !output.keep_at_worker {
                outs.push((output.file_id, path.clone(), AfterTask::Send));
            }
            let mount = File::path(&path, CacheLevel::Task, 0)
                .and_then(|f| Mount::new(f, &output.remote_name, 0))
                .and_then(|m| task.add_output(m));
            if let Err(e) = mount {
                refused.get_or_insert(e);
            }
        }
        if let Some(e) = refused {
            // A name from the wire that would leave the sandbox is never used: the
            // task is not run, and the manager hears why.
            task.extra_mut().refused = Some(e.to_string());
        } else if !lost.is_empty() {
            // Not run: reported as the worker's failure (see `Reporter::report`).
            task.extra_mut().refused = Some("an input it kept was missing or damaged".into());
        }
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.id, TaskFiles { files: outs, lost });
        task
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::protocol::{InputSpec, OutputSpec};

    fn inbound(dir: &Path) -> Inbound {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_, outgoing, _) = Handshake::start(stream, None, Instant::now())
            .unwrap()
            .into_session(None)
            .unwrap();
        let env = CommandEnv {
            sandbox_root: dir.join("sandbox"),
            temp_root: dir.join("cache"),
            max_stdout: Default::default(),
        };
        Inbound {
            dir: dir.to_path_buf(),
            store: None,
            pool: LocalPool::new(Resources::default(), env, Report::Outbox(Box::new(|| {}))),
            outputs: Default::default(),
            writer: Arc::new(Mutex::new(outgoing)),
            receiver: crate::transfer::Receiver::new(dir.join("out"), "xfer-"),
            verified: Default::default(),
            max_stdout: Default::default(),
            next_xfer: Default::default(),
        }
    }

    fn spec(input: &str, output: &str) -> TaskSpec {
        TaskSpec {
            id: 1,
            attempt: 1,
            work: WorkSpec::Command {
                command: b"true".to_vec(),
                env: vec![],
            },
            resources: (1000, 0, 0, 0),
            time_max: 0.0,
            max_stdout: 1 << 20,
            inputs: vec![InputSpec {
                file_id: 1,
                remote_name: input.into(),
                flags: 0,
                content: InputContent::Sent,
            }],
            outputs: vec![OutputSpec {
                file_id: 2,
                remote_name: output.into(),
                keep_at_worker: false,
            }],
        }
    }

    #[test]
    fn a_store_others_can_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-store-test").unwrap();
        let mine = dir.join("mine");
        assert_eq!(open_store(&mine), Some(mine.clone()));
        assert_eq!(open_store(&mine), Some(mine.clone()), "opened again");
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(open_store(&shared), None);
        let file = dir.join("file");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(open_store(&file), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_from_the_wire_that_leave_the_sandbox_are_refused() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-wire-names").unwrap();
        std::fs::create_dir(dir.join("out")).unwrap();
        let mut s = inbound(&dir);
        for (input, output) in [
            ("../../etc/x", "ok"),
            ("ok", "/etc/passwd"),
            ("a/../../b", "ok"),
        ] {
            let task = s.task_from(spec(input, output));
            let refused = task.extra.as_ref().and_then(|e| e.refused.clone());
            assert!(refused.is_some(), "{input:?} / {output:?} accepted");
        }
        let mut stored = spec("ok", "ok");
        stored.inputs[0].content = InputContent::Stored("../../etc/passwd".into());
        let task = s.task_from(stored);
        assert!(task.extra.as_ref().unwrap().refused.is_some());
        let fine = s.task_from(spec("in/x", "out/y"));
        assert!(fine.extra.as_ref().unwrap().refused.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
