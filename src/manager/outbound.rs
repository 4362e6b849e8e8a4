//! What the manager sends one remote worker, on that connection's writer thread:
//! frames as they are, and tasks whose input files are sent first, read from
//! disk a chunk at a time there, never on the manager thread. The writer
//! decides, when it gets to a task, whether the worker already holds each input
//! (the [`Inventory`]) and what the task is told about it, from what was actually
//! sent: a file kept forever is named by the hash of the bytes that went.

use crate::channel::FrameWriter;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::remote::RemoteSettings;
use crate::files::File;
use crate::protocol::{self, Dest, InputContent, TaskSpec, ToWorker};
use crate::transfer::{self, Source};

/// What the manager thread queues for a worker's writer thread.
pub(crate) enum Outgoing {
    /// A frame sent as it is.
    Frame(ToWorker),
    /// A task: the inputs planned are resolved (sent if need be) first.
    Run(Box<TaskSpec>, Vec<Planned>),
    /// Tell the worker to delete its copy of a file (by id), in order with the
    /// tasks before it: after it, the worker holds none.
    Forget(u64),
}

/// How an input of a task reaches the worker.
pub(crate) enum Plan {
    /// Kept in its cache for later tasks; sent unless there (`always`: sent anyway).
    Keep {
        /// Send even if the worker has it.
        always: bool,
    },
    /// For this task only.
    Once,
    /// In its store of files kept forever, by content name.
    Forever,
}

/// An input whose content the writer decides (see [`Outgoing::Run`]).
pub(crate) struct Planned {
    /// For an input of a mini task, the input indices leading to that mini
    /// task; empty for the task's own inputs.
    pub nest: Vec<usize>,
    /// Its place in the inputs.
    pub index: usize,
    /// The file.
    pub file: Arc<File>,
    /// Where its data is at the manager; None if nowhere.
    pub source: Option<Source>,
    /// How it goes.
    pub plan: Plan,
    /// It may come from another worker that holds it (peer transfers on, the
    /// file not `VINE_PEER_NOSHARE`).
    pub shareable: bool,
}

/// The inputs a worker holds between tasks, as far as the manager knows.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    /// In its cache, by file id.
    pub cached: HashSet<u64>,
    /// The version of the copy in its cache (see [`crate::files::File::copies_version`]),
    /// where not 0.
    pub versions: HashMap<u64, u64>,
    /// In its store of files kept forever, by content name.
    pub stored: HashSet<String>,
    /// URLs and mini-task outputs it was told to make, by file id.
    pub made: HashSet<u64>,
    /// Why the first input of a task sent there that the manager could not
    /// read was not sent, by task id, with the attempt: the worker, which
    /// fails the task as INPUT_MISSING, knows only that it never came.
    pub unsent: crate::idmap::IdMap<(u32, String)>,
}

impl Inventory {
    /// A copy of `version` of file `id` is (or is being put) in its cache.
    pub(crate) fn cache(&mut self, id: u64, version: u64) {
        self.cached.insert(id);
        if version == 0 {
            self.versions.remove(&id);
        } else {
            self.versions.insert(id, version);
        }
    }

    /// The worker found these missing or damaged: they are sent again when needed.
    pub(crate) fn forget(&mut self, lost: &[protocol::Held]) {
        for h in lost {
            match h {
                protocol::Held::Cached(id) => {
                    self.cached.remove(id);
                    self.versions.remove(id);
                }
                protocol::Held::Stored(name) => {
                    self.stored.remove(name);
                }
            }
        }
    }
}

/// Input `index` of the mini task reached from `spec` through the input
/// indices `nest` (of `spec` itself if `nest` is empty).
fn input_at<'a>(
    spec: &'a mut TaskSpec,
    nest: &[usize],
    index: usize,
) -> Option<&'a mut protocol::InputSpec> {
    let mut inputs = &mut spec.inputs;
    for &i in nest {
        match inputs.get_mut(i).map(|x| &mut x.content) {
            Some(InputContent::MiniTask { task, .. }) => inputs = &mut task.inputs,
            _ => return None,
        }
    }
    inputs.get_mut(index)
}

/// The writer thread's state for one worker.
pub(crate) struct Outbound {
    pub inventory: Arc<Mutex<Inventory>>,
    pub settings: Arc<RemoteSettings>,
    pub next_xfer: u64,
    /// The worker it writes to (for the transactions log).
    pub worker: super::WorkerId,
}

/// A file's name in the transactions log: its kind, then its id (TaskVine's
/// tools take the kind from what precedes the first `-`).
fn log_name(file: &crate::files::File) -> String {
    use crate::files::FileKind;
    let kind = match file.kind() {
        FileKind::Path(_) => "file",
        FileKind::Buffer => "buffer",
        FileKind::Temp => "temp",
        FileKind::Url(_) => "url",
        _ => "task",
    };
    format!("{kind}-{}", file.id())
}

impl Outbound {
    fn inventory(&self) -> std::sync::MutexGuard<'_, Inventory> {
        self.inventory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `msg` (and for a task, its inputs first). Err: the connection broke.
    pub(crate) fn write(&mut self, w: &mut FrameWriter, msg: Outgoing) -> crate::error::Result<()> {
        match msg {
            Outgoing::Frame(f) => w.send(&f),
            Outgoing::Forget(id) => {
                {
                    let mut inv = self.inventory();
                    inv.cached.remove(&id);
                    inv.versions.remove(&id);
                    inv.made.remove(&id);
                }
                self.settings.peers.remove(id, self.worker);
                w.send(&ToWorker::Forget(id))
            }
            Outgoing::Run(mut spec, planned) => {
                for p in planned {
                    let mut why = None;
                    let content = self.resolve(w, &spec, &p, &mut why)?;
                    // From a peer, a declared file or a buffer comes with the
                    // hash the manager's copy has, which the worker checks; a
                    // temp's bytes the manager never saw.
                    let hash = match (&content, &p.source, p.file.kind()) {
                        (
                            InputContent::Peer { .. },
                            Some(source),
                            crate::files::FileKind::Path(_) | crate::files::FileKind::Buffer,
                        ) => self.settings.hashes.of(&p.file, source),
                        _ => None,
                    };
                    if let Some(input) = input_at(&mut spec, &p.nest, p.index) {
                        input.content = content;
                        input.hash = hash;
                        // The worker knows only that it is missing: the
                        // manager tells the task why when it comes back.
                        if let Some(why) = why {
                            let why = format!("input {}: {why}", input.remote_name);
                            // The first of this attempt's (what an earlier
                            // attempt left is stale).
                            let mut inv = self.inventory();
                            if inv
                                .unsent
                                .get(&spec.id)
                                .is_none_or(|(a, _)| *a != spec.attempt)
                            {
                                inv.unsent.insert(spec.id, (spec.attempt, why));
                            }
                        }
                    }
                }
                w.send(&ToWorker::Run(spec))
            }
        }
    }

    /// The version of input `p` that a copy at a worker must hold to be used
    /// (see [`File::copies_version`]): for a declared file or a buffer kept at
    /// workers, the manager's own data is looked at (its metadata; its bytes
    /// hashed again only when they changed), and when it changed since it
    /// was last sent, every copy made before is of an older version, which no
    /// task is given again and no peer serves. 0 for the rest (temps, and
    /// files sent for one task only).
    fn version_of(&self, p: &Planned) -> u64 {
        let (Plan::Keep { always: false }, Some(source)) = (&p.plan, &p.source) else {
            return 0;
        };
        if !matches!(
            p.file.kind(),
            crate::files::FileKind::Path(_) | crate::files::FileKind::Buffer
        ) {
            return 0;
        }
        // Unreadable now (removed since, say): the copies made are used.
        self.looked_at(p, source)
            .map_or_else(|| p.file.copies_version_known(), |(version, _)| version)
    }

    /// True if the data of a file kept forever changed since its content
    /// name was worked out (the name then names an older version).
    fn changed_since_named(&self, p: &Planned, source: &Source) -> bool {
        self.looked_at(p, source)
            .is_some_and(|(_, changed)| changed)
    }

    /// Looks at the manager's data of input `p` at `source`: its version (see
    /// [`File::copies_version`]) and whether it just changed, in which case
    /// no copy made before is a replica any more. None if it cannot be read.
    fn looked_at(&self, p: &Planned, source: &Source) -> Option<(u64, bool)> {
        let hash = self.settings.hashes.of(&p.file, source)?;
        let (version, changed) = p.file.copies_version(hash);
        if changed {
            self.settings.peers.outdated(p.file.id());
        }
        Some((version, changed))
    }

    /// Sends `source` to `dest`; Ok(Err) if the source could not be sent.
    fn send(
        &mut self,
        w: &mut FrameWriter,
        dest: Dest,
        source: &Source,
        mode: Option<u32>,
        name: Option<String>,
    ) -> crate::error::Result<Result<[u8; 32], String>> {
        self.next_xfer += 1;
        let mut sent = 0;
        let to_task = matches!(dest, Dest::Task(..));
        let start = crate::manager::journal::now_us();
        let began = std::time::Instant::now();
        let transfers = &self.settings.transfers;
        let mut pace = crate::manager::bandwidth::Pace::default();
        let outcome = transfer::send(
            self.next_xfer,
            dest,
            source,
            mode,
            &mut |piece| {
                let at = std::time::Instant::now();
                let data = match &piece {
                    crate::protocol::Piece::Data { bytes, .. } => bytes.len(),
                    _ => 0,
                };
                w.send(&ToWorker::Xfer(piece))?;
                pace.went(at, data, transfers.limit(), &self.settings.closing);
                Ok(())
            },
            &mut sent,
        );
        transfers.sent(began.elapsed(), matches!(outcome, Ok(Ok(_))));
        self.settings.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        if let (Some(sink), Some(name), Ok(Ok(_))) =
            (self.settings.journal.get(), name, outcome.as_ref())
        {
            if sink.txn_on.load(Ordering::Relaxed) {
                use crate::manager::journal::Other;
                let took_us = crate::manager::journal::now_us() - start;
                sink.push(Other::Transfer {
                    worker: self.worker,
                    input: true,
                    name: name.clone(),
                    bytes: sent,
                    took_us,
                    start_us: start,
                });
                if !to_task {
                    sink.push(Other::CacheUpdate {
                        worker: self.worker,
                        name,
                        bytes: sent,
                        took_us,
                        start_us: start,
                    });
                }
            }
        }
        outcome
    }

    /// Where the worker finds input `p` of `spec`, sending it first if need
    /// be. `Missing` if the manager could not read it, with the reason in
    /// `why` when the manager knows it.
    fn resolve(
        &mut self,
        w: &mut FrameWriter,
        spec: &TaskSpec,
        p: &Planned,
        why: &mut Option<String>,
    ) -> crate::error::Result<InputContent> {
        let id = p.file.id();
        let settings = self.settings.clone();
        let peers = &settings.peers;
        let is_dir = matches!(&p.source, Some(Source::Path(path)) if path.is_dir());
        // A directory's tree is not walked for a worker holding a copy.
        let version = if is_dir && self.inventory().cached.contains(&id) {
            None
        } else {
            Some(self.version_of(p))
        };
        let fresh = |inv: &Inventory| {
            inv.cached.contains(&id)
                && version.is_none_or(|v| inv.versions.get(&id).copied().unwrap_or(0) == v)
        };
        let version = version.unwrap_or(0);
        if p.shareable && matches!(p.plan, Plan::Keep { always: false }) {
            if fresh(&self.inventory()) {
                return Ok(InputContent::Cached);
            }
            // A file only workers have (a temp) is fetched from one whatever
            // the limits; one the manager has too, from a peer under them,
            // else this worker is its holder from now on (the manager sends
            // it below), before another connection looks for one.
            let chosen = if p.source.is_some() {
                peers.choose_or_hold(id, self.worker, true)
            } else {
                peers.choose(id, self.worker, false)
            };
            if let Some(c) = chosen {
                self.inventory().cache(id, version);
                return Ok(InputContent::Peer {
                    host: c.host,
                    port: c.port,
                    source: c.source,
                });
            }
        }
        let Some(source) = &p.source else {
            if matches!(p.file.kind(), crate::files::FileKind::Temp) {
                *why = Some("a temp no task has produced (or whose copies were lost)".into());
            }
            return Ok(InputContent::Missing);
        };
        let logging = self
            .settings
            .journal
            .get()
            .is_some_and(|s| s.txn_on.load(Ordering::Relaxed));
        let name = logging.then(|| log_name(&p.file));
        match p.plan {
            // A directory has no content name: it is kept like a file kept
            // for the worker's life.
            Plan::Forever if !is_dir => {
                if self.changed_since_named(p, source) {
                    p.file.forget_content_name();
                }
                let content = match p.file.content_name() {
                    Some(name) => name,
                    None => match transfer::hash_source(source) {
                        Ok(h) => p.file.set_content_name(protocol::hex_name(&h)),
                        Err(e) => {
                            *why = Some(e);
                            return Ok(InputContent::Missing);
                        }
                    },
                };
                if self.inventory().stored.contains(&content) {
                    peers.stored(id, self.worker);
                    return Ok(InputContent::Stored(content));
                }
                // The task is told the name of what was sent, whatever the file
                // held when it was named.
                Ok(
                    match self.send(w, Dest::Store, source, p.file.delivered_mode(), name)? {
                        Ok(hash) => {
                            let name = protocol::hex_name(&hash);
                            self.inventory().stored.insert(name.clone());
                            peers.stored(id, self.worker);
                            InputContent::Stored(name)
                        }
                        Err(e) => {
                            *why = Some(e);
                            InputContent::Missing
                        }
                    },
                )
            }
            Plan::Forever | Plan::Keep { .. } => {
                let always = matches!(p.plan, Plan::Keep { always: true });
                if !always && fresh(&self.inventory()) {
                    return Ok(InputContent::Cached);
                }
                // Counted as a replica from now on: a peer asking for it while
                // it is on its way is served once it is here. (A file that may
                // not travel is counted too, for vine_file_replica_count; no
                // peer is ever sent to fetch it.)
                peers.add(id, self.worker);
                Ok(
                    match self.send(w, Dest::Cache(id), source, p.file.delivered_mode(), name)? {
                        Ok(_) => {
                            self.inventory().cache(id, version);
                            InputContent::Cached
                        }
                        Err(e) => {
                            peers.remove(id, self.worker);
                            let mut inv = self.inventory();
                            inv.cached.remove(&id);
                            inv.versions.remove(&id);
                            drop(inv);
                            *why = Some(e);
                            InputContent::Missing
                        }
                    },
                )
            }
            Plan::Once => Ok(
                match self.send(
                    w,
                    Dest::Task(spec.id, spec.attempt, id),
                    source,
                    p.file.delivered_mode(),
                    name,
                )? {
                    Ok(_) => InputContent::Sent,
                    Err(e) => {
                        *why = Some(e);
                        InputContent::Missing
                    }
                },
            ),
        }
    }
}
