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
use crate::worker::fetch::Fetcher;
use crate::worker::local::{LocalPool, Report};

/// One session with the manager. Ok when told to exit; Err when the connection broke.
///
/// The reader thread applies what the manager sends as it arrives (files into the
/// cache, tasks straight onto the pool, cancellations), so a task reaches a pool
/// thread with one hand-over; the pool thread that finishes a task reports it
/// itself; this thread sends keepalives and waits for the end. Frames from all of
/// them go out whole under one lock.
#[allow(clippy::too_many_arguments)]
pub(super) fn serve(
    opts: &WorkerOptions,
    stream: TcpStream,
    tls: Option<&crate::tls::ClientTls>,
    resources: Resources,
    dir: &Path,
    store: Option<&Path>,
    end: Option<Instant>,
    fetcher: &Arc<Fetcher>,
    peer: &Arc<super::peer::PeerServer>,
) -> std::result::Result<(), Ended> {
    let _ = stream.set_nodelay(true);
    let (reader, outgoing, sock, keepalive, token) =
        handshake(opts, stream, tls, resources, store, end, peer.port)?;
    peer.set_key(Some(crate::protocol::peer_key(
        opts.password.as_deref(),
        &token,
    )));
    // However the session ends, its key serves no peer any more.
    struct Unkey<'a>(&'a super::peer::PeerServer);
    impl Drop for Unkey<'_> {
        fn drop(&mut self) {
            self.0.set_key(None);
        }
    }
    let _unkey = Unkey(peer);
    super::log::debug(|| "session with the manager begun".into());
    let session = Session {
        keepalive,
        resources,
        dir,
        store,
        fetcher,
        end,
        peer: Some(peer.clone()),
    };
    match serve_session(reader, outgoing, sock, session) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Timeout && end.is_some_and(|t| Instant::now() >= t) => {
            Err(Ended::WallTime)
        }
        Err(e) => Err(Ended::Broken(e)),
    }
}

/// What a session works with besides its connection.
pub(super) struct Session<'a> {
    pub(super) keepalive: Duration,
    pub(super) resources: Resources,
    pub(super) dir: &'a Path,
    pub(super) store: Option<&'a Path>,
    /// URL downloads and mini-task outputs, kept across sessions as their cache
    /// levels allow.
    pub(super) fetcher: &'a Arc<Fetcher>,
    /// The worker's wall time, if it has one.
    pub(super) end: Option<Instant>,
    /// Its transfer server, which serves peers and knows the peer key.
    pub(super) peer: Option<Arc<super::peer::PeerServer>>,
}

/// Serves a session that has begun, until told to exit (Ok), the connection
/// breaks, or `end` comes (a Timeout error: the tasks it holds are stopped and
/// go back to the manager with the connection).
/// Empties the cache of files kept by id, `cache`, for a new session.
fn fresh_cache(cache: &std::path::Path) -> std::io::Result<()> {
    crate::transfer::remove_all(cache);
    std::fs::create_dir_all(cache)
}

pub(super) fn serve_session(
    reader: FrameReader,
    outgoing: FrameWriter,
    sock: TcpStream,
    session: Session<'_>,
) -> Result<()> {
    let Session {
        keepalive,
        resources,
        dir,
        store,
        fetcher,
        end,
        peer,
    } = session;
    // What this manager's files are called here: its file ids are its own.
    let generation = fetcher.new_generation();
    // So are the files cached under them: what an earlier manager (or an
    // earlier connection, whose files the manager counts as lost) left there
    // would be given to this one's tasks under its own ids.
    fresh_cache(&dir.join("cache")).map_err(|e| Error::io("clearing the cache", e))?;
    let max_stdout = Arc::new(AtomicUsize::new(crate::worker::command::DEFAULT_MAX_STDOUT));
    let writer = Arc::new(Mutex::new(outgoing));
    let watch_writer = writer.clone();
    let env = CommandEnv {
        sandbox_root: dir.join("sandbox"),
        temp_root: dir.join("cache"),
        max_stdout: max_stdout.clone(),
        fetcher: fetcher.clone(),
        // What watched outputs grow by goes to the manager as it happens.
        watch: Some(crate::worker::watch::WatchHook(Arc::new(move |update| {
            send(&watch_writer, &ToManager::Watch(Box::new(update))).is_ok()
        }))),
    };
    let outputs: Outputs = Default::default();
    let (end_tx, end_rx) = crossbeam_channel::bounded::<Result<()>>(2);
    let next_xfer = Arc::new(AtomicU64::new(0));
    let in_use = SharedInUse::default();
    let reporter = Reporter {
        writer: writer.clone(),
        outputs: outputs.clone(),
        in_use: in_use.clone(),
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
    let fetches = super::peer_fetch::PeerFetches::new(
        peer.clone(),
        dir.to_path_buf(),
        writer.clone(),
        pool.share(),
        outputs.clone(),
        in_use.clone(),
    );
    let mut inbound = Inbound {
        dir: dir.to_path_buf(),
        store: store.map(Path::to_path_buf),
        pool: pool.share(),
        outputs: outputs.clone(),
        writer: writer.clone(),
        receiver: crate::transfer::Receiver::new(dir.join("out"), "xfer-"),
        verified: Default::default(),
        next_xfer,
        fetcher: fetcher.clone(),
        generation,
        made: Default::default(),
        in_use,
        peer,
        fetches: fetches.clone(),
        unstored: Default::default(),
    };
    std::thread::Builder::new()
        .name("vine-worker-reader".into())
        .spawn(move || {
            let end = inbound.run(reader);
            let _ = end_tx.send(end);
        })
        .map_err(|e| Error::io("cannot start a thread", e))?;
    let outcome = keep_alive(&writer, &end_rx, keepalive, end);
    ended.store(true, std::sync::atomic::Ordering::Release);
    fetches.close();
    pool.cancel_waiting();
    pool.cancel_running();
    pool.stop(Instant::now() + Duration::from_secs(5));
    // What was made for this manager alone goes with it.
    fetcher.forget_prefix(&super::inbound::session_prefix(generation));
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
    /// Why one of them could not be kept when it came, if that is known.
    pub(super) why_lost: Option<String>,
}

/// The files in the cache that running tasks use, by file id: one the manager
/// says to forget while a task uses it is removed when the last such task is done.
#[derive(Default)]
pub(super) struct InUse {
    count: std::collections::HashMap<u64, usize>,
    doomed: std::collections::HashSet<u64>,
}

/// See [`InUse`].
pub(super) type SharedInUse = Arc<Mutex<InUse>>;

impl InUse {
    /// A task uses file `id`.
    pub(super) fn acquire(&mut self, id: u64) {
        *self.count.entry(id).or_insert(0) += 1;
    }

    /// A task that used file `id`, at `path`, is done.
    pub(super) fn release(&mut self, id: u64, path: &Path) {
        let Some(n) = self.count.get_mut(&id) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.count.remove(&id);
            if self.doomed.remove(&id) {
                crate::transfer::remove_all(path);
            }
        }
    }

    /// The manager says to delete file `id`, at `path`.
    pub(super) fn forget(&mut self, id: u64, path: &Path) {
        if self.count.contains_key(&id) {
            self.doomed.insert(id);
        } else {
            crate::transfer::remove_all(path);
        }
    }

    /// A new copy of file `id` arrived: it stays.
    pub(super) fn arrived(&mut self, id: u64) {
        self.doomed.remove(&id);
    }

    /// True if the copy of file `id` in the cache is one to delete, kept only
    /// for the tasks that used it already: no other task may use it.
    pub(super) fn doomed(&self, id: u64) -> bool {
        self.doomed.contains(&id)
    }
}

pub(super) fn send(writer: &Mutex<FrameWriter>, frame: &ToManager) -> Result<()> {
    writer.lock().unwrap_or_else(|p| p.into_inner()).send(frame)
}

/// Reports finished tasks to the manager.
pub(super) struct Reporter {
    pub(super) writer: Arc<Mutex<FrameWriter>>,
    pub(super) outputs: Outputs,
    pub(super) in_use: SharedInUse,
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
    /// An input in the cache: the task no longer uses it (see [`InUse`]).
    Release,
    /// A temp output, written into the cache: the manager hears whether the
    /// task left it there.
    Keep,
}

/// Sends keepalives until the session ends: Ok when the manager said exit, Err
/// when the connection broke (on either thread).
pub(super) fn keep_alive(
    writer: &Mutex<FrameWriter>,
    end: &Receiver<Result<()>>,
    keepalive: Duration,
    wall: Option<Instant>,
) -> Result<()> {
    loop {
        let now = Instant::now();
        let next = now.checked_add(keepalive).unwrap_or(now);
        let at = wall.map_or(next, |w| w.min(next));
        match end.recv_deadline(at) {
            Ok(why) => return why,
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
                if wall.is_some_and(|w| Instant::now() >= w) =>
            {
                // Said before the connection closes, so the manager counts an
                // expected departure; a manager gone already hears nothing.
                let reason = "it reached its wall time".to_owned();
                let _ = send(writer, &ToManager::Leaving { reason });
                return Err(Error::new(ErrorKind::Timeout, "the wall time passed"));
            }
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
        let mut kept = Vec::new();
        let TaskFiles {
            files,
            lost,
            why_lost,
        } = self
            .outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task.id)
            .unwrap_or_default();
        for (file_id, path, after) in files {
            if after == AfterTask::Release {
                self.in_use
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .release(file_id, &path);
                continue;
            }
            if after == AfterTask::Keep {
                if std::fs::symlink_metadata(&path).is_ok() {
                    kept.push(file_id);
                }
                continue;
            }
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
        let mut unkept = false;
        let mut output = task.output();
        let result = if task.flags & FLAG_CANCELLED != 0 {
            TaskResult::Cancelled
        } else if output.len() > crate::protocol::MAX_TASK_BYTES {
            // More than a frame can bring back: the task's own doing, and it
            // must not cost the link (and the other tasks on it).
            reason = Some(format!(
                "the function's output of {} bytes is more than a remote worker sends back ({} bytes)",
                output.len(),
                crate::protocol::MAX_TASK_BYTES
            ));
            output = &[];
            TaskResult::OutputMissing
        } else if !lost.is_empty() {
            // Not the task's fault: it runs again, and the manager sends the
            // inputs again.
            unkept = why_lost.is_some();
            reason = Some(match why_lost {
                Some(why) => format!(
                    "an input this worker kept was missing or damaged: it could not be kept \
                     when it came ({why})"
                ),
                None => "an input this worker kept was missing or damaged".into(),
            });
            TaskResult::Forsaken
        } else {
            task.result()
        };
        Ok(TaskReport {
            id: task.id,
            attempt: task.attempts,
            result: result.code(),
            exit_code: task.exit_code(),
            output: output.to_vec(),
            stdout: task.stdout().map(|s| s.to_bytes().to_vec()),
            reason,
            started: task.times().started,
            done: task.times().done,
            outputs,
            lost,
            unkept,
            kept,
            arrived: Vec::new(),
            measured: task.extra.as_ref().and_then(|e| e.measured),
        })
    }
}

#[cfg(test)]
mod test {
    #[test]
    fn a_new_session_starts_with_nothing_cached_under_the_old_ids() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-session-cache").unwrap();
        let cache = dir.join("cache");
        std::fs::create_dir_all(cache.join("8")).unwrap();
        std::fs::write(cache.join("7"), "an earlier manager's file").unwrap();
        super::fresh_cache(&cache).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
        // And a worker that never had one.
        std::fs::remove_dir_all(&cache).unwrap();
        super::fresh_cache(&cache).unwrap();
        assert!(cache.is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
