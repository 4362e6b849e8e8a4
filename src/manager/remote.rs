//! Remote workers as the manager sees them: an accept loop, one thread per
//! connection that authenticates the worker and then reads its frames, and a
//! [`RemoteLink`] through which the manager thread sends it tasks. The link keeps
//! every task it sent until the worker reports on it, so a worker that dies loses
//! nothing: its tasks go back to the scheduler.

use std::collections::HashSet;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::scheduler::WorkerId;
use super::Message;
use crate::files::{CacheLevel, File, FileKind, MOUNT_TRANSFER_ALWAYS};
use crate::idmap::IdMap;
use crate::protocol::{
    self, InputContent, InputSpec, OutputSpec, TaskReport, TaskSpec, ToManager, ToWorker, WorkSpec,
};
use crate::resources::Resources;
use crate::task::{Task, TaskId, TaskResult, Work};
use crate::worker::WorkerLink;

/// Settings the connection threads read.
pub(crate) struct RemoteSettings {
    /// The password workers must prove, if any.
    pub password: Mutex<Option<Vec<u8>>>,
    /// Milliseconds of silence after which a worker is declared lost.
    pub keepalive_timeout_ms: AtomicU64,
    /// Milliseconds between a worker's keepalives; 0: a quarter of the timeout.
    pub keepalive_interval_ms: AtomicU64,
    /// Bytes of files sent to workers.
    pub bytes_sent: AtomicU64,
    /// Bytes of outputs received from workers.
    pub bytes_received: AtomicU64,
    /// Set when the manager shuts down: stop accepting.
    pub closing: AtomicBool,
    next_worker: AtomicU32,
}

impl RemoteSettings {
    pub(crate) fn new() -> Arc<RemoteSettings> {
        Arc::new(RemoteSettings {
            password: Mutex::new(None),
            keepalive_timeout_ms: AtomicU64::new(30_000),
            keepalive_interval_ms: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            next_worker: AtomicU32::new(1),
        })
    }
}

/// Accepts workers on `listener` until the manager closes; returns the thread.
pub(crate) fn start_listener(
    listener: TcpListener,
    events: Sender<Message>,
    settings: Arc<RemoteSettings>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vine-listener".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if settings.closing.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = conn else { continue };
                let events = events.clone();
                let settings = settings.clone();
                let spawned = std::thread::Builder::new()
                    .name("vine-conn".into())
                    .spawn(move || serve_connection(stream, events, settings));
                if let Err(e) = spawned {
                    eprintln!("vine: cannot serve a worker connection: {e}");
                }
            }
        })
}

/// Wakes the accept loop so it sees `closing`.
pub(crate) fn stop_listener(addr: std::net::SocketAddr, settings: &RemoteSettings) {
    settings.closing.store(true, Ordering::Release);
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
}

fn serve_connection(mut stream: TcpStream, events: Sender<Message>, settings: Arc<RemoteSettings>) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let link = match handshake(&mut stream, &settings) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("vine: dropped connection from {peer}: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    };
    let Joined {
        id,
        resources,
        functions,
        stored,
    } = link;
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let (out_tx, out_rx) = crossbeam_channel::unbounded::<ToWorker>();
    let w = std::thread::Builder::new()
        .name("vine-conn-writer".into())
        .spawn(move || write_loop(writer, out_rx));
    if w.is_err() {
        return;
    }
    let link = RemoteLink {
        id,
        out: out_tx,
        in_flight: IdMap::default(),
        cached: HashSet::new(),
        stored,
        settings: settings.clone(),
        functions,
    };
    if events
        .send(Message::WorkerJoined {
            worker: id,
            resources,
            link: Box::new(link),
        })
        .is_err()
    {
        return;
    }
    let timeout =
        Duration::from_millis(settings.keepalive_timeout_ms.load(Ordering::Relaxed).max(1));
    let _ = stream.set_read_timeout(Some(timeout));
    loop {
        match protocol::read_frame::<ToManager>(&mut stream) {
            Ok(ToManager::Done(report)) => {
                let n: usize = report.outputs.iter().map(|(_, d)| d.len()).sum();
                settings
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                if events
                    .send(Message::RemoteDone { worker: id, report })
                    .is_err()
                {
                    break;
                }
            }
            Ok(ToManager::Keepalive) => {}
            Ok(ToManager::FileData { file_id, data }) => {
                let n = data.as_ref().map_or(0, Vec::len);
                settings
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                if events
                    .send(Message::RemoteFileData {
                        worker: id,
                        file_id,
                        data,
                    })
                    .is_err()
                {
                    break;
                }
            }
            Ok(ToManager::Register { .. }) => {
                eprintln!("vine: worker {id} ({peer}) registered twice; dropping it");
                break;
            }
            Err(e) => {
                if !settings.closing.load(Ordering::Acquire) {
                    eprintln!("vine: worker {id} ({peer}) lost: {e}");
                }
                break;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let _ = events.send(Message::WorkerLost { worker: id });
}

/// What a worker told about itself when it joined.
struct Joined {
    id: WorkerId,
    resources: Resources,
    functions: Vec<Box<[u8]>>,
    /// Names of the files in its store of files kept forever.
    stored: HashSet<String>,
}

fn handshake(stream: &mut TcpStream, settings: &RemoteSettings) -> crate::error::Result<Joined> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| crate::error::Error::io("socket", e))?;
    let password = settings
        .password
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let challenge = protocol::challenge();
    protocol::write_frame(
        stream,
        &ToWorker::Hello {
            challenge,
            auth: password.is_some(),
        },
    )?;
    let ToManager::Register {
        resources,
        proof,
        challenge: theirs,
        functions,
        stored,
        ..
    } = protocol::read_frame(stream)?
    else {
        return Err(crate::error::Error::invalid(
            "the first frame was not Register",
        ));
    };
    let answer = match &password {
        Some(pw) => {
            let ok =
                proof.is_some_and(|p| protocol::verify(pw, &challenge, protocol::ROLE_WORKER, &p));
            if !ok {
                return Err(crate::error::Error::invalid("wrong or missing password"));
            }
            Some(protocol::prove(pw, &theirs, protocol::ROLE_MANAGER))
        }
        None => None,
    };
    let (millicores, memory_mb, disk_mb, gpus) = resources;
    if millicores == 0 {
        return Err(crate::error::Error::invalid("a worker with no cores"));
    }
    let id = settings.next_worker.fetch_add(1, Ordering::Relaxed);
    let timeout_ms = settings.keepalive_timeout_ms.load(Ordering::Relaxed).max(1);
    protocol::write_frame(
        stream,
        &ToWorker::Welcome {
            worker_id: id,
            proof: answer,
            keepalive_ms: keepalive_interval(
                timeout_ms,
                settings.keepalive_interval_ms.load(Ordering::Relaxed),
            ),
        },
    )?;
    let functions = functions
        .into_iter()
        .map(|f| f.into_bytes().into_boxed_slice())
        .collect();
    Ok(Joined {
        id,
        resources: Resources {
            millicores,
            memory_mb,
            disk_mb,
            gpus,
        },
        functions,
        stored: stored
            .into_iter()
            .filter(|n| protocol::is_content_name(n))
            .collect(),
    })
}

fn write_loop(stream: TcpStream, out: Receiver<ToWorker>) {
    let mut buf = std::io::BufWriter::with_capacity(
        64 * 1024,
        stream.try_clone().expect("clone of a live socket"),
    );
    while let Ok(msg) = out.recv() {
        let exit = msg == ToWorker::Exit;
        let mut ok = protocol::write_frame(&mut buf, &msg).is_ok();
        // Send what queued up together, then flush once.
        while ok {
            match out.try_recv() {
                Ok(m) => ok = protocol::write_frame(&mut buf, &m).is_ok(),
                Err(_) => break,
            }
        }
        if !ok || std::io::Write::flush(&mut buf).is_err() || exit {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// The manager's end of one remote worker.
pub struct RemoteLink {
    id: WorkerId,
    out: Sender<ToWorker>,
    in_flight: IdMap<Box<Task>>,
    cached: HashSet<u64>,
    /// Files in the worker's store of files kept forever, by content name.
    stored: HashSet<String>,
    settings: Arc<RemoteSettings>,
    functions: Vec<Box<[u8]>>,
}

impl RemoteLink {
    /// The function names the worker registered.
    pub(crate) fn functions(&self) -> &[Box<[u8]>] {
        &self.functions
    }

    /// Puts back a task a stale report was about.
    pub(crate) fn keep(&mut self, task: Box<Task>) {
        self.in_flight.insert(task.id, task);
    }

    /// Takes back the task a report is about, if this link sent it.
    pub(crate) fn take(&mut self, id: TaskId) -> Option<Box<Task>> {
        self.in_flight.remove(&id)
    }

    /// Every task sent and not reported on.
    pub(crate) fn take_all(&mut self) -> Vec<Box<Task>> {
        let mut v: Vec<_> = self.in_flight.drain().map(|(_, t)| t).collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Asks the worker for a file it keeps (answered with `RemoteFileData`).
    pub(crate) fn get_file(&self, file_id: u64) {
        let _ = self.out.send(ToWorker::GetFile(file_id));
    }

    /// Tells the worker to exit.
    pub(crate) fn exit(&self) {
        let _ = self.out.send(ToWorker::Exit);
    }

    /// An input kept forever: found in the worker's store by its content name, or
    /// sent there first.
    fn stored_input(&mut self, file: &File) -> InputContent {
        let mut data = None;
        let name = match file.content_name() {
            Some(name) => name,
            None => {
                let Some(d) = contents(file) else {
                    return InputContent::Missing;
                };
                let name = file.set_content_name(protocol::content_name(&d));
                data = Some(d);
                name
            }
        };
        if !self.stored.contains(&name) {
            let Some(data) = data.or_else(|| contents(file)) else {
                return InputContent::Missing;
            };
            self.settings
                .bytes_sent
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let _ = self.out.send(ToWorker::Store {
                name: name.clone(),
                data,
            });
            self.stored.insert(name.clone());
        }
        InputContent::Stored(name)
    }

    fn spec_of(&mut self, task: &Task) -> Result<TaskSpec, String> {
        let work = match &task.work {
            Work::Function { name, input, .. } => WorkSpec::Function {
                name: name.to_bytes().to_vec(),
                input: input.as_slice().to_vec(),
                process: task.mode == crate::task::ExecMode::Process,
            },
            Work::Command { command } => WorkSpec::Command {
                command: command.to_bytes().to_vec(),
                env: task
                    .extra
                    .as_ref()
                    .map(|e| {
                        e.env
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.to_bytes().to_vec(),
                                    v.as_ref().map(|v| v.to_bytes().to_vec()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            Work::Local { .. } => {
                return Err("a local function task cannot run on a remote worker".into())
            }
        };
        let r = task.request;
        let mut spec = TaskSpec {
            id: task.id,
            attempt: task.attempts,
            work,
            resources: (r.millicores, r.memory_mb, r.disk_mb, r.gpus),
            time_max: task.time_max(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        if let Some(extra) = &task.extra {
            for m in &extra.inputs {
                let id = m.file.id();
                let keep = m.file.cache_level() != CacheLevel::Task;
                // A temp this worker keeps is already there.
                let kept_here = m.file.temp_worker() == Some(self.id);
                let cached = kept_here
                    || (self.cached.contains(&id) && m.flags & MOUNT_TRANSFER_ALWAYS == 0);
                let forever = m.file.cache_level() == CacheLevel::Forever
                    && !matches!(m.file.kind(), FileKind::Temp)
                    && m.flags & MOUNT_TRANSFER_ALWAYS == 0;
                let content = if cached {
                    InputContent::Cached
                } else if forever {
                    self.stored_input(&m.file)
                } else {
                    let data = contents(&m.file);
                    let n = data.as_ref().map_or(0, Vec::len);
                    self.settings
                        .bytes_sent
                        .fetch_add(n as u64, Ordering::Relaxed);
                    match data {
                        None => InputContent::Missing,
                        // Kept at the worker: sent once, used by later tasks too.
                        Some(data) if keep => {
                            let _ = self.out.send(ToWorker::PutFile {
                                file_id: id,
                                data: Some(data),
                            });
                            self.cached.insert(id);
                            InputContent::Cached
                        }
                        Some(data) => InputContent::Inline(data),
                    }
                };
                spec.inputs.push(InputSpec {
                    file_id: id,
                    remote_name: m.remote_name.clone(),
                    flags: m.flags,
                    content,
                });
            }
            for m in &extra.outputs {
                spec.outputs.push(OutputSpec {
                    file_id: m.file.id(),
                    remote_name: m.remote_name.clone(),
                    // Temps stay where they are made.
                    keep_at_worker: matches!(m.file.kind(), FileKind::Temp),
                });
            }
        }
        Ok(spec)
    }
}

impl WorkerLink for RemoteLink {
    fn dispatch(&mut self, tasks: &mut Vec<Box<Task>>) {
        for mut task in tasks.drain(..) {
            match self.spec_of(&task) {
                Ok(spec) => {
                    let _ = self.out.send(ToWorker::Run(Box::new(spec)));
                }
                Err(reason) => {
                    // Cannot happen for tasks the scheduler places here; report it
                    // as the worker would rather than lose the task.
                    task.finish(TaskResult::Unknown, Some(reason));
                }
            }
            self.in_flight.insert(task.id, task);
        }
    }

    fn cancel(&mut self, id: TaskId) {
        let _ = self.out.send(ToWorker::Cancel(id));
    }
}

/// The contents of an input file, read from where the manager has them.
fn contents(file: &File) -> Option<Vec<u8>> {
    match file.kind() {
        FileKind::Path(p) => std::fs::read(p).ok(),
        FileKind::Buffer => file.contents().map(|c| c.to_vec()),
        FileKind::Temp => file.temp_location().and_then(|p| std::fs::read(p).ok()),
    }
}

/// Copies a worker's report into the task it is about, and the output files to
/// where they were declared. Returns false if the report is stale (another attempt).
pub(crate) fn apply_report(
    task: &mut Task,
    report: TaskReport,
    temp_root: &std::path::Path,
) -> bool {
    if report.attempt != task.attempts {
        return false;
    }
    task.exit_code = report.exit_code;
    task.output = report.output;
    task.times.started = report.started;
    task.times.done = report.done;
    task.times.execute += (report.done - report.started).max(0);
    // A task the worker gave back before starting it (a cancel) never held its
    // resources there: it leaves the worker's queue instead.
    if report.started > 0 {
        task.flags |= crate::task::FLAG_STARTED;
    }
    if let Some(out) = report.stdout {
        task.extra_mut().stdout = std::ffi::CString::new(out).ok();
    }
    let mut result = TaskResult::from_code(report.result).unwrap_or(TaskResult::Unknown);
    let mut reason = report.reason;
    if result == TaskResult::Cancelled {
        task.flags |= crate::task::FLAG_CANCELLED;
    }
    if let Some(extra) = &task.extra {
        for (file_id, data) in report.outputs {
            let Some(m) = extra.outputs.iter().find(|m| m.file.id() == file_id) else {
                continue;
            };
            let stored = match m.file.kind() {
                FileKind::Path(p) => std::fs::write(p, &data).map_err(|e| e.to_string()),
                FileKind::Buffer => {
                    m.file.set_contents(data);
                    Ok(())
                }
                FileKind::Temp => {
                    // Sent back only when asked for; normally kept at the worker.
                    let dest = temp_root.join(file_id.to_string());
                    std::fs::write(&dest, &data)
                        .map(|()| m.file.set_temp_location(dest))
                        .map_err(|e| e.to_string())
                }
            };
            if let Err(e) = stored {
                result = TaskResult::OutputMissing;
                reason = Some(format!("cannot store output {}: {e}", m.remote_name));
            }
        }
    }
    task.finish(result, reason);
    if result == TaskResult::Success {
        // Temps it made stay at its worker, which can make them again if lost.
        if let Some(extra) = &task.extra {
            for m in &extra.outputs {
                if matches!(m.file.kind(), FileKind::Temp) && m.file.temp_location().is_none() {
                    m.file.set_at_worker(task.worker_id, task.recipe());
                }
            }
        }
    }
    true
}

/// The interval a worker is told to send keepalives at: the one set, else a
/// quarter of the timeout; never more than half the timeout, so that one late
/// keepalive does not lose a live worker.
fn keepalive_interval(timeout_ms: u64, set_ms: u64) -> u64 {
    let auto = timeout_ms / 4;
    let chosen = if set_ms == 0 { auto } else { set_ms };
    chosen.min(timeout_ms / 2).max(1)
}

#[cfg(test)]
mod test {
    use super::keepalive_interval;

    #[test]
    fn workers_are_told_the_interval_set_within_half_the_timeout() {
        assert_eq!(keepalive_interval(30_000, 0), 7_500, "a quarter by default");
        assert_eq!(keepalive_interval(30_000, 2_000), 2_000);
        assert_eq!(keepalive_interval(30_000, 60_000), 15_000, "at most half");
        assert_eq!(keepalive_interval(1, 0), 1, "never zero");
    }
}
