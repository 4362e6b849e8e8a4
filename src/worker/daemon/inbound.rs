//! The incoming half of a session, on its reader thread: files into the cache
//! and the store, tasks onto the pool, cancellations.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::peer_fetch::{Fetch, PeerFetches};
use super::session::{send, send_file, AfterTask, Outputs, SharedInUse, TaskFiles};
use super::store::{stamp, Stamp};
use crate::channel::{FrameReader, FrameWriter};
use crate::error::{Error, Result};
use crate::files::{CacheLevel, File, Mount};
use crate::protocol::{self, Dest, Held, InputContent, TaskSpec, ToManager, ToWorker, WorkSpec};
use crate::resources::Resources;
use crate::task::{Task, FLAG_MONITOR, FLAG_NO_WATCHDOG};
use crate::worker::fetch::Fetcher;
use crate::worker::local::LocalPool;
use crate::worker::sandbox::move_file;
use crate::worker::WorkerLink;

/// Most bytes of a command's output a remote worker keeps for the manager:
/// half of what a frame holds, so that the report always fits.
const MAX_REMOTE_STDOUT: usize = protocol::MAX_TASK_BYTES / 2;

/// `bytes` from the wire as a C string; one holding a NUL byte (which the
/// command, name or variable would silently stop at) refuses the task, saying
/// what held it.
fn c_string(bytes: &[u8], what: &str, refused: &mut Option<Error>) -> CString {
    CString::new(bytes).unwrap_or_else(|_| {
        refused.get_or_insert(Error::invalid(format!("its {what} holds a NUL byte")));
        CString::default()
    })
}

/// Sets the environment variables `env` of command task `t`.
fn set_env(t: &mut Task, env: &[(Vec<u8>, Option<Vec<u8>>)], refused: &mut Option<Error>) {
    for (k, v) in env {
        let name = c_string(k, "environment variable's name", refused);
        let value = v
            .as_ref()
            .map(|v| c_string(v, "environment variable's value", refused));
        if let Err(e) = t.set_env_var(&name, value.as_deref()) {
            refused.get_or_insert(e);
        }
    }
}

/// The incoming half of a session, on the reader thread.
pub(super) struct Inbound {
    pub(super) dir: PathBuf,
    /// Files kept forever (see [`WorkerOptions::store`]), if usable.
    pub(super) store: Option<PathBuf>,
    pub(super) pool: LocalPool,
    pub(super) outputs: Outputs,
    pub(super) writer: Arc<Mutex<FrameWriter>>,
    /// Files arriving from the manager.
    pub(super) receiver: crate::transfer::Receiver,
    /// Files of the store found to hash to their names, as they were then.
    pub(super) verified: std::collections::HashMap<String, Stamp>,
    /// Ids for transfers to the manager.
    pub(super) next_xfer: Arc<AtomicU64>,
    /// URL downloads and mini-task outputs this worker made.
    pub(super) fetcher: Arc<Fetcher>,
    /// This session's number among the worker's sessions.
    pub(super) generation: u64,
    /// The names the files made here for this manager are kept under, by file id.
    pub(super) made: std::collections::HashMap<u64, String>,
    /// The cached files running tasks use.
    pub(super) in_use: SharedInUse,
    /// The transfer server: told of arrivals, and holds the peer key.
    pub(super) peer: Option<Arc<super::peer::PeerServer>>,
    /// Fetches from peers, and the tasks waiting for them.
    pub(super) fetches: Arc<PeerFetches>,
    /// Why the last copy of a file the manager sent to the cache could not be
    /// kept here (a full disk), by file id, until a copy is or the manager
    /// forgets the file: the task that then finds it missing says why.
    pub(super) unstored: std::collections::HashMap<u64, String>,
}

/// How the names of files made for one session begin.
pub(super) fn session_prefix(generation: u64) -> String {
    format!("s{generation}-")
}

impl Inbound {
    /// Applies frames until the manager says exit (Ok) or the connection breaks.
    pub(super) fn run(&mut self, mut reader: FrameReader) -> Result<()> {
        loop {
            match reader.recv::<ToWorker>()? {
                ToWorker::Xfer(piece) => {
                    if let Some(arrived) = self.receiver.piece(piece)? {
                        self.arrived(arrived)?;
                    }
                }
                ToWorker::Run(spec) => {
                    if let Some((task, waits)) = self.accept_run(*spec) {
                        if waits.needs.is_empty() {
                            self.pool.dispatch(&mut vec![task]);
                        } else {
                            self.fetches.queue(waits.fetches, Some((task, waits.needs)));
                        }
                    }
                }
                ToWorker::Cancel(id) => {
                    if !self.fetches.cancel(id) {
                        self.pool.cancel(id);
                    }
                }
                // One still waiting for its inputs comes back cancelled,
                // which the manager reports as stopped at its end time.
                ToWorker::EndTime(id) => {
                    if !self.fetches.cancel(id) {
                        self.pool.end_time(id);
                    }
                }
                ToWorker::Replicate {
                    file_id,
                    host,
                    port,
                    source,
                } => {
                    // A temp, which the manager never saw: its holder is
                    // trusted as the worker that made it.
                    let fetch = Fetch {
                        file_id,
                        host,
                        port,
                        source,
                        hash: None,
                    };
                    self.fetches.queue(vec![fetch], None);
                }
                ToWorker::Forget(file_id) => {
                    self.unstored.remove(&file_id);
                    let path = self.cache_path(file_id);
                    if !self.fetches.forget(file_id) {
                        self.in_use().forget(file_id, &path);
                    }
                    if let Some(key) = self.made.remove(&file_id) {
                        self.fetcher.forget(&key);
                    }
                }
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
                | ToWorker::Proved { .. }
                | ToWorker::Welcome { .. }
                | ToWorker::Refused { .. }
                | ToWorker::Status(_) => {}
                ToWorker::Exit => return Ok(()),
            }
        }
    }

    fn in_use(&self) -> std::sync::MutexGuard<'_, super::session::InUse> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a file that arrived complete where it was sent to. One that cannot be
    /// put there is dropped: the task that needs it finds it missing.
    pub(super) fn arrived(&mut self, arrived: crate::transfer::Arrived) -> Result<()> {
        // Only a cached file is looked for as kept (see `TaskFiles::why_lost`).
        let file_id = match arrived.dest {
            Dest::Cache(id) => Some(id),
            _ => None,
        };
        let (staged, hash) = match arrived.outcome {
            Ok(x) => x,
            Err(e) => {
                self.unstored_because(file_id, e);
                return Ok(());
            }
        };
        let dest = match arrived.dest {
            Dest::Cache(file_id) => {
                self.in_use().arrived(file_id);
                self.cache_path(file_id)
            }
            Dest::Task(task, attempt, file_id) => self.task_input_path(task, attempt, file_id),
            // Named by the hash of what arrived, which the receiver computed: the
            // store never holds a file under another file's name.
            Dest::Store if arrived.is_file => {
                let name = protocol::hex_name(&hash);
                // Renamed into place whole, over what is there (in one step: a
                // worker sharing the store never sees half a file under the
                // name, nor none). Without a usable store the file is kept for
                // this worker's life only.
                let kept = self
                    .store
                    .as_ref()
                    .map(|s| s.join(&name))
                    .filter(|at| move_file(&staged, at).is_ok());
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
        if let Err(e) = move_file(&staged, &dest) {
            crate::transfer::remove_all(&staged);
            self.unstored_because(file_id, format!("{e}"));
        } else if let Some(id) = file_id {
            if self.unstored.remove(&id).is_some() {
                if let Some(peer) = &self.peer {
                    peer.coming(id);
                }
            }
        }
        if let Some(peer) = &self.peer {
            peer.arrived();
        }
        Ok(())
    }

    /// File `file_id` (if one the manager sent to the cache) arrived and could
    /// not be kept, for reason `why`: noted for the task that will miss it. A
    /// peer waiting for it is told at once that it is not here.
    fn unstored_because(&mut self, file_id: Option<u64>, why: String) {
        let Some(id) = file_id else { return };
        super::log::notice(&format!(
            "could not keep file {id} sent by the manager: {why}"
        ));
        self.unstored.insert(id, why);
        if let Some(peer) = &self.peer {
            peer.not_coming(id);
        }
    }

    /// Whether the file kept forever at `path` still hashes to `name` (checked
    /// again whenever the file changed since it last did). One that does not is
    /// removed.
    pub(super) fn verify_stored(&mut self, name: &str, path: &Path) -> bool {
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
                super::log::notice(&format!(
                    "{} does not hash to its name: removed",
                    path.display()
                ));
                self.verified.remove(name);
                crate::transfer::remove_all(path);
                false
            }
            Err(_) => false,
        }
    }

    pub(super) fn task_input_path(&self, task: u64, attempt: u32, file_id: u64) -> PathBuf {
        self.dir
            .join("out")
            .join(format!("in-{task}-{attempt}-{file_id}"))
    }

    /// Where a file kept forever is: in the store, or else where this worker kept
    /// it for itself.
    pub(super) fn stored_path(&self, name: &str) -> PathBuf {
        match &self.store {
            Some(store) if store.join(name).exists() => store.join(name),
            _ => self.private_stored_path(name),
        }
    }

    pub(super) fn private_stored_path(&self, name: &str) -> PathBuf {
        self.dir.join("cache").join(format!("stored-{name}"))
    }

    pub(super) fn cache_path(&self, file_id: u64) -> PathBuf {
        self.dir.join("cache").join(file_id.to_string())
    }

    /// The file a task finds input `input` of `spec` in, with the mode the
    /// manager gave it (whether this worker was sent it, made it, fetched it or
    /// kept it). A path that does not exist stands for what the manager could
    /// not send: placing it fails as INPUT_MISSING.
    fn input_file(
        &mut self,
        spec: &TaskSpec,
        input: &protocol::InputSpec,
        p: &mut Placing,
    ) -> Result<Arc<File>> {
        let file = self.input_data(spec, input, p)?;
        if let Some(mode) = input.mode {
            file.set_mode(mode);
        }
        Ok(file)
    }

    /// Where input `input` of `spec` is: sent, kept, fetched from a peer, or
    /// made here (see [`Inbound::input_file`]).
    fn input_data(
        &mut self,
        spec: &TaskSpec,
        input: &protocol::InputSpec,
        p: &mut Placing,
    ) -> Result<Arc<File>> {
        let missing = || {
            self.dir
                .join("out")
                .join(format!("missing-{}", input.file_id))
        };
        let path = match &input.content {
            InputContent::Peer { host, port, source } => {
                // Fetched before the task goes to the pool (see
                // `peer_fetch`); one that fails is an input lost, which the
                // manager sends again, from itself or another peer.
                // Checked against the hash the manager gave, when it gave
                // one: a peer serving other bytes fails the fetch.
                p.fetches.push(Fetch {
                    file_id: input.file_id,
                    host: host.clone(),
                    port: *port,
                    source: *source,
                    hash: input.hash,
                });
                p.needs.push(input.file_id);
                self.cached(input.file_id, p)
            }
            // A replica on its way is waited for, as the manager counts it
            // here: one fetched for another worker's task, or for this task
            // under another name.
            InputContent::Cached
                if self.fetches.on_the_way(input.file_id)
                    || p.fetches.iter().any(|f| f.file_id == input.file_id) =>
            {
                p.needs.push(input.file_id);
                self.cached(input.file_id, p)
            }
            InputContent::Cached => {
                // A copy to delete may hold what the file was before.
                let doomed = self.in_use().doomed(input.file_id);
                let path = self.cached(input.file_id, p);
                if doomed || std::fs::symlink_metadata(&path).is_err() {
                    p.lost.push(Held::Cached(input.file_id));
                }
                path
            }
            InputContent::Stored(name) if protocol::is_content_name(name) => {
                let path = self.stored_path(name);
                // Never serve bytes that are not the ones named.
                if !self.verify_stored(name, &path) {
                    p.lost.push(Held::Stored(name.clone()));
                }
                path
            }
            InputContent::Stored(_) => {
                return Err(Error::invalid("a stored file name that is not a hash"));
            }
            InputContent::Sent => {
                let path = self.task_input_path(spec.id, spec.attempt, input.file_id);
                p.outs
                    .push((input.file_id, path.clone(), AfterTask::Remove));
                path
            }
            InputContent::Missing => missing(),
            InputContent::Url { url, level } => {
                let level = CacheLevel::from_code(i32::from(*level))?;
                let f = File::url(url, level, 0)?;
                return Ok(self.made_here(f, input.file_id));
            }
            InputContent::MiniTask {
                task: mini,
                output,
                level,
            } => {
                let level = CacheLevel::from_code(i32::from(*level))?;
                let t = self.mini_task_from(mini, p);
                let f = File::mini_task(t, output, level, 0)?;
                return Ok(self.made_here(f, input.file_id));
            }
        };
        File::path(&path, CacheLevel::Task, 0)
    }

    /// Names a file made at this worker so that it is kept apart from other
    /// managers' files, and remembers the name for `Forget`.
    fn made_here(&mut self, f: Arc<File>, file_id: u64) -> Arc<File> {
        let key = match f.worker_key() {
            // A URL kept for the worker's life is shared by every manager.
            Some(k) if k.starts_with("url-") => Some(k),
            Some(_) => {
                let k = format!("{}{file_id}", session_prefix(self.generation));
                f.set_worker_key(k.clone());
                Some(k)
            }
            None => None,
        };
        if let Some(k) = key {
            self.made.insert(file_id, k);
        }
        f
    }

    /// The task a mini task's spec describes, to run here when its output is
    /// needed. Its inputs are kept at the worker or made here.
    fn mini_task_from(&mut self, spec: &TaskSpec, p: &mut Placing) -> Box<Task> {
        let WorkSpec::Command { command, env } = &spec.work else {
            p.refused
                .get_or_insert(Error::invalid("a mini task that is not a command"));
            return Task::command(c"false");
        };
        let mut t = Task::command(&c_string(command, "command", &mut p.refused));
        let (millicores, memory_mb, disk_mb, gpus) = spec.resources;
        t.request = Resources {
            // A task always holds some of a core (as the manager gives it):
            // tasks of none would all start at once, however many; but for
            // one of gpus, which they bound.
            millicores: if gpus > 0 {
                millicores
            } else {
                millicores.max(1)
            },
            memory_mb,
            disk_mb,
            gpus,
        };
        let _ = t.set_time_max(spec.time_max);
        set_env(&mut t, env, &mut p.refused);
        // Inputs sent for one task only are never planned for a mini task; the
        // files it uses in the cache are released with the task it runs for.
        for input in &spec.inputs {
            let mount = self
                .input_file(spec, input, p)
                .and_then(|f| Mount::new(f, &input.remote_name, input.flags))
                .and_then(|m| t.add_input(m));
            if let Err(e) = mount {
                p.refused.get_or_insert(e);
            }
        }
        t
    }

    /// The task to run for `spec`, or None if a task of that id is still
    /// here: a manager never sends one twice, and running the copy would
    /// take the first one's sandbox from under it (both are named by the id).
    pub(super) fn accept_run(&mut self, spec: TaskSpec) -> Option<(Box<Task>, Waits)> {
        let here = self
            .outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&spec.id);
        if here {
            eprintln!(
                "vine_worker: the manager sent task {} again while it is here; the copy is ignored",
                spec.id
            );
            return None;
        }
        Some(self.task_from(spec))
    }

    /// Builds the local task that runs `spec`, and what it waits for; a spec
    /// this worker cannot express becomes a task that fails with the reason
    /// when it runs.
    pub(super) fn task_from(&mut self, spec: TaskSpec) -> (Box<Task>, Waits) {
        let mut refused = None;
        let mut task = match &spec.work {
            WorkSpec::Function {
                name,
                input,
                process,
            } => {
                let name = c_string(name, "function name", &mut refused);
                let mut t = Task::function(&name, input);
                if *process {
                    let _ = t.set_exec_mode(crate::task::ExecMode::Process);
                }
                t
            }
            WorkSpec::Command { command, .. } => {
                Task::command(&c_string(command, "command", &mut refused))
            }
        };
        task.id = spec.id;
        task.attempts = spec.attempt;
        let (millicores, memory_mb, disk_mb, gpus) = spec.resources;
        task.request = Resources {
            millicores: if gpus > 0 {
                millicores
            } else {
                millicores.max(1)
            },
            memory_mb,
            disk_mb,
            gpus,
        };
        let _ = task.set_time_max(spec.time_max);
        task.flags |= spec.monitor & (FLAG_MONITOR | FLAG_NO_WATCHDOG);
        if spec.time_end > 0 {
            task.set_time_end(spec.time_end);
        }
        // This task's own cap, at most what a frame can bring back.
        task.extra_mut().max_stdout = Some(
            usize::try_from(spec.max_stdout)
                .unwrap_or(usize::MAX)
                .min(MAX_REMOTE_STDOUT),
        );
        if let WorkSpec::Command { env, .. } = &spec.work {
            set_env(&mut task, env, &mut refused);
        }
        let mut p = Placing {
            refused,
            ..Placing::default()
        };
        for input in &spec.inputs {
            let file = self.input_file(&spec, input, &mut p);
            let mount = file
                .and_then(|f| Mount::new(f, &input.remote_name, input.flags))
                .and_then(|m| task.add_input(m));
            if let Err(e) = mount {
                p.refused.get_or_insert(e);
            }
        }
        let Placing {
            mut outs,
            lost,
            mut refused,
            fetches,
            needs,
        } = p;
        for output in &spec.outputs {
            let path = if output.keep_at_worker {
                self.cache_path(output.file_id)
            } else {
                self.dir
                    .join("out")
                    .join(format!("{}-{}-{}", spec.id, spec.attempt, output.file_id))
            };
            let after = if output.keep_at_worker {
                AfterTask::Keep
            } else {
                AfterTask::Send
            };
            outs.push((output.file_id, path.clone(), after));
            let mount = File::path(&path, CacheLevel::Task, 0)
                .and_then(|f| Mount::new(f, &output.remote_name, output.flags))
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
        // A lost input that could not be kept when it came: the reason says why.
        let why_lost = lost.iter().find_map(|h| match h {
            Held::Cached(id) => self.unstored.get(id).cloned(),
            Held::Stored(_) => None,
        });
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                spec.id,
                TaskFiles {
                    files: outs,
                    lost,
                    why_lost,
                },
            );
        (task, Waits { fetches, needs })
    }

    /// The cache's copy of file `file_id`, which the task uses until it is done.
    fn cached(&self, file_id: u64, p: &mut Placing) -> PathBuf {
        let path = self.cache_path(file_id);
        self.in_use().acquire(file_id);
        p.outs.push((file_id, path.clone(), AfterTask::Release));
        path
    }
}

/// What placing a task's inputs found, as they are gathered.
#[derive(Default)]
struct Placing {
    /// Its files, and what to do with each when the task is done.
    outs: Vec<(u64, PathBuf, AfterTask)>,
    /// Inputs this worker should hold and does not.
    lost: Vec<Held>,
    /// Why the task cannot be run as sent, if it cannot.
    refused: Option<Error>,
    /// Files to fetch from peers for it.
    fetches: Vec<Fetch>,
    /// Files it must wait for (those fetched, and replicas on their way).
    needs: Vec<u64>,
}

/// What a task must wait for before it goes to the pool.
pub(super) struct Waits {
    pub(super) fetches: Vec<Fetch>,
    pub(super) needs: Vec<u64>,
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::channel::Handshake;
    use crate::protocol::{InputSpec, OutputSpec};
    use crate::worker::command::CommandEnv;
    use crate::worker::local::Report;
    use std::net::TcpStream;
    use std::time::Instant;

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
            fetcher: std::sync::Arc::new(crate::worker::fetch::Fetcher::new(dir.join("fetched"))),
            watch: None,
        };
        let pool = LocalPool::new(Resources::default(), env, Report::Outbox(Box::new(|| {})));
        let outputs: Outputs = Default::default();
        let writer = Arc::new(Mutex::new(outgoing));
        let in_use = SharedInUse::default();
        Inbound {
            dir: dir.to_path_buf(),
            store: None,
            pool: pool.share(),
            outputs: outputs.clone(),
            writer: writer.clone(),
            receiver: crate::transfer::Receiver::new(dir.join("out"), "xfer-"),
            verified: Default::default(),
            next_xfer: Default::default(),
            fetcher: Arc::new(Fetcher::new(dir.join("fetched"))),
            generation: 1,
            made: Default::default(),
            in_use: in_use.clone(),
            peer: None,
            fetches: super::PeerFetches::new(
                None,
                dir.to_path_buf(),
                writer,
                pool.share(),
                outputs.clone(),
                in_use,
            ),
            unstored: Default::default(),
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
                mode: None,
                hash: None,
            }],
            outputs: vec![OutputSpec {
                file_id: 2,
                remote_name: output.into(),
                keep_at_worker: false,
                flags: 0,
            }],
            time_end: 0,
            monitor: 0,
        }
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
            let (task, _) = s.task_from(spec(input, output));
            let refused = task.extra.as_ref().and_then(|e| e.refused.clone());
            assert!(refused.is_some(), "{input:?} / {output:?} accepted");
        }
        let mut stored = spec("ok", "ok");
        stored.inputs[0].content = InputContent::Stored("../../etc/passwd".into());
        let (task, _) = s.task_from(stored);
        assert!(task.extra.as_ref().unwrap().refused.is_some());
        let (fine, _) = s.task_from(spec("in/x", "out/y"));
        assert!(fine.extra.as_ref().unwrap().refused.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_nul_byte_in_a_command_name_or_variable_refuses_the_task() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-wire-nul").unwrap();
        std::fs::create_dir(dir.join("out")).unwrap();
        let mut s = inbound(&dir);
        let refused = |s: &mut Inbound, work: WorkSpec| {
            let mut sp = spec("in", "out");
            sp.work = work;
            let (task, _) = s.task_from(sp);
            task.extra.as_ref().and_then(|e| e.refused.clone())
        };
        let command = |command: &[u8], env: Vec<(Vec<u8>, Option<Vec<u8>>)>| WorkSpec::Command {
            command: command.to_vec(),
            env,
        };
        let why = refused(&mut s, command(b"exit 7\0rm -rf x", vec![])).expect("refused");
        assert!(why.contains("command holds a NUL"), "{why}");
        let bad_value = vec![(b"FOO".to_vec(), Some(b"a\0b".to_vec()))];
        let why = refused(&mut s, command(b"true", bad_value)).expect("refused");
        assert!(why.contains("value holds a NUL"), "{why}");
        let bad_name = vec![(b"F\0O".to_vec(), None)];
        assert!(refused(&mut s, command(b"true", bad_name)).is_some());
        let function = WorkSpec::Function {
            name: b"f\0g".to_vec(),
            input: vec![],
            process: false,
        };
        let why = refused(&mut s, function).expect("refused");
        assert!(why.contains("function name holds a NUL"), "{why}");
        let good = vec![
            (b"FOO".to_vec(), Some(b"bar".to_vec())),
            (b"GONE".to_vec(), None),
        ];
        assert_eq!(refused(&mut s, command(b"echo $FOO", good)), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_task_sent_again_while_it_is_here_is_ignored() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-wire-twice").unwrap();
        std::fs::create_dir(dir.join("out")).unwrap();
        let mut s = inbound(&dir);
        assert!(s.accept_run(spec("in", "out")).is_some());
        assert!(s.accept_run(spec("in", "out")).is_none());
        let mut other = spec("in", "out");
        other.id = 2;
        assert!(s.accept_run(other).is_some());
        // Reported (its files taken): the id may come again, as a retry would.
        s.outputs.lock().unwrap().remove(&1);
        assert!(s.accept_run(spec("in", "out")).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_task_keeps_its_own_output_cap_and_none_past_what_a_frame_holds() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-wire-cap").unwrap();
        std::fs::create_dir(dir.join("out")).unwrap();
        let mut s = inbound(&dir);
        let mut first = spec("in", "out");
        first.max_stdout = 1 << 20;
        let (first, _) = s.task_from(first);
        let mut second = spec("in", "out");
        second.id = 2;
        second.max_stdout = 0;
        let (second, _) = s.task_from(second);
        let mut third = spec("in", "out");
        third.id = 3;
        third.max_stdout = u64::MAX;
        let (third, _) = s.task_from(third);
        let cap = |t: &Task| t.extra.as_ref().and_then(|e| e.max_stdout);
        assert_eq!(cap(&first), Some(1 << 20));
        assert_eq!(cap(&second), Some(0));
        assert_eq!(cap(&third), Some(MAX_REMOTE_STDOUT));
        // A task asking for no core holds a thousandth of one.
        let mut none = spec("in", "out");
        none.id = 4;
        none.resources = (0, 0, 0, 0);
        assert_eq!(s.task_from(none).0.request.millicores, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
