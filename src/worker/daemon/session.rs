//! One session with the manager: the pool that runs its tasks, the thread that
//! keeps it alive, and how finished tasks and their files go back.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::handshake::handshake;
use super::inbound::Inbound;
use super::options::WorkerOptions;
use super::Ended;
use crate::channel::{FrameReader, FrameWriter};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Dest, Held, OutputStatus, TaskReport, ToManager};
use crate::resources::Resources;
use crate::task::{Task, TaskResult, FLAG_CANCELLED};
use crate::worker::command::CommandEnv;
use crate::worker::local::{LocalPool, Report};

/// One session with the manager. Ok when told to exit; Err when the connection broke.
///
/// The reader thread applies what the manager sends as it arrives (files into the
/// cache, tasks straight onto the pool, cancellations), so a task reaches a pool
/// thread with one hand-over; the pool thread that finishes a task reports it
/// itself; this thread sends keepalives and waits for the end. Frames from all of
/// them go out whole under one lock.
pub(super) fn serve(
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
pub(super) fn serve_session(
    reader: FrameReader,
    outgoing: FrameWriter,
    sock: TcpStream,
    keepalive: Duration,
    resources: Resources,
    dir: &Path,
    store: Option<&Path>,
) -> Result<()> {
    let max_stdout = Arc::new(AtomicUsize::new(crate::worker::command::DEFAULT_MAX_STDOUT));
    let writer = Arc::new(Mutex::new(outgoing));
    let watch_writer = writer.clone();
    let env = CommandEnv {
        sandbox_root: dir.join("sandbox"),
        temp_root: dir.join("cache"),
        max_stdout: max_stdout.clone(),
        // What watched outputs grow by goes to the manager as it happens.
        watch: Some(crate::worker::watch::WatchHook(Arc::new(move |update| {
            send(&watch_writer, &ToManager::Watch(Box::new(update))).is_ok()
        }))),
    };
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
pub(super) type Outputs = Arc<Mutex<std::collections::HashMap<u64, TaskFiles>>>;

/// The files of one task at this worker.
#[derive(Default)]
pub(super) struct TaskFiles {
    /// (file id, path, what to do with it when the task is done).
    pub(super) files: Vec<(u64, PathBuf, AfterTask)>,
    /// Inputs this worker should have held but found missing or damaged.
    pub(super) lost: Vec<Held>,
}

pub(super) fn send(writer: &Mutex<FrameWriter>, frame: &ToManager) -> Result<()> {
    writer.lock().unwrap_or_else(|p| p.into_inner()).send(frame)
}

/// Reports finished tasks to the manager.
pub(super) struct Reporter {
    pub(super) writer: Arc<Mutex<FrameWriter>>,
    pub(super) outputs: Outputs,
    pub(super) next_xfer: Arc<AtomicU64>,
}

/// Sends a file or directory to the manager as a transfer to `dest`, one frame
/// at a time (other frames go between them). The outer Err: the connection broke.
pub(super) fn send_file(
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
        None,
        &mut |piece| send(writer, &ToManager::Xfer(piece)),
        &mut sent,
    )?;
    Ok(outcome.map(drop))
}

/// What happens to a task's file when the task is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterTask {
    /// An output: send it to the manager, then remove it.
    Send,
    /// An input sent with this task only: remove it.
    Remove,
}

/// Sends keepalives until the session ends: Ok when the manager said exit, Err
/// when the connection broke (on either thread).
pub(super) fn keep_alive(
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
    pub(super) fn send(&self, task: &Task) -> Result<()> {
        let report = self.report(task)?;
        send(&self.writer, &ToManager::Done(Box::new(report)))
    }

    /// The report on `task`, after its outputs were sent (each in its own
    /// transfer, so one that cannot be sent fails only this task).
    pub(super) fn report(&self, task: &Task) -> Result<TaskReport> {
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
