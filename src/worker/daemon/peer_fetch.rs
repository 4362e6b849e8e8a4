//! Fetches from peers, off the reader thread: a peer that is slow or never
//! answers holds up only the tasks that need its file, never what the manager
//! sends meanwhile (other tasks, cancellations, exit).
//!
//! The reader thread queues each fetch (a `Replicate`, or a task's
//! [`InputContent::Peer`] input) and goes on. A few threads of the session's
//! own fetch them, each into the cache, telling the manager how it went
//! (`PeerFetched`). A task that needs a file still on its way (fetched for it,
//! or a replica the manager counts as here already) is held back until every
//! such file has come or failed, then dispatched to the pool; one whose file
//! did not come goes as a task that lost an input, as it did when the reader
//! fetched. A cancel reaches a task held back here too.
//!
//! [`InputContent::Peer`]: crate::protocol::InputContent::Peer

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::session::{send, Outputs, SharedInUse};
use crate::channel::FrameWriter;
use crate::protocol::{Held, ToManager};
use crate::task::{Task, TaskId, FLAG_CANCELLED};
use crate::worker::local::LocalPool;
use crate::worker::sandbox::move_file;
use crate::worker::WorkerLink;

/// Fetches running at once, at most: more wait their turn.
const MAX_FETCHING: usize = 8;

/// One file to fetch from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fetch {
    pub(super) file_id: u64,
    pub(super) host: String,
    pub(super) port: u16,
    /// The peer's worker id at the manager.
    pub(super) source: u32,
    /// The content hash what comes must have, when the manager knows it.
    pub(super) hash: Option<[u8; 32]>,
}

/// A task held back until the files it needs are no longer on their way.
struct Waiting {
    task: Box<Task>,
    needs: Vec<u64>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Fetch>,
    /// Fetches queued or running, by file id.
    on_the_way: HashMap<u64, usize>,
    held: Vec<Waiting>,
    /// Files the manager said to forget while on their way.
    forgotten: HashSet<u64>,
    threads: usize,
    /// Threads fetching now (the others are about to take from the queue).
    fetching: usize,
    /// The session is over: nothing more goes into the cache or the pool.
    closed: bool,
}

/// The session's fetches from peers (see the module's documentation).
pub(super) struct PeerFetches {
    state: Mutex<State>,
    /// The transfer server, whose peer key proves this worker to its peers.
    peer: Option<Arc<super::peer::PeerServer>>,
    /// The worker's directory (`cache` and `out` under it).
    dir: PathBuf,
    writer: Arc<Mutex<FrameWriter>>,
    pool: LocalPool,
    outputs: Outputs,
    in_use: SharedInUse,
}

impl PeerFetches {
    pub(super) fn new(
        peer: Option<Arc<super::peer::PeerServer>>,
        dir: PathBuf,
        writer: Arc<Mutex<FrameWriter>>,
        pool: LocalPool,
        outputs: Outputs,
        in_use: SharedInUse,
    ) -> Arc<PeerFetches> {
        Arc::new(PeerFetches {
            state: Mutex::default(),
            peer,
            dir,
            writer,
            pool,
            outputs,
            in_use,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_use(&self) -> MutexGuard<'_, super::session::InUse> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_path(&self, file_id: u64) -> PathBuf {
        self.dir.join("cache").join(file_id.to_string())
    }

    /// True if file `file_id` is on its way into the cache.
    pub(super) fn on_the_way(&self, file_id: u64) -> bool {
        self.state().on_the_way.contains_key(&file_id)
    }

    /// Queues `fetches`; `task`, if given, is dispatched once none of the
    /// files in `needs` (which `fetches` adds to) is on its way any more.
    pub(super) fn queue(
        self: &Arc<Self>,
        fetches: Vec<Fetch>,
        task: Option<(Box<Task>, Vec<u64>)>,
    ) {
        let mut st = self.state();
        if st.closed {
            return;
        }
        for f in fetches {
            if let Some(peer) = &self.peer {
                peer.coming(f.file_id);
            }
            *st.on_the_way.entry(f.file_id).or_insert(0) += 1;
            st.queue.push_back(f);
        }
        if let Some((task, needs)) = task {
            st.held.push(Waiting { task, needs });
        }
        self.dispatch_ready(&mut st);
        while st.threads < MAX_FETCHING && st.threads - st.fetching < st.queue.len() {
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("vine-peer-fetch".into())
                .spawn(move || me.fetch_all());
            match spawned {
                Ok(_) => st.threads += 1,
                Err(e) if st.threads == 0 => {
                    // Nothing would ever fetch them: every one fails now.
                    let why = format!("cannot start a thread: {e}");
                    let failed: Vec<Fetch> = st.queue.drain(..).collect();
                    drop(st);
                    for f in failed {
                        let _ = self.tell(&f, 0, 0, Some(why.clone()));
                        self.done(&f);
                    }
                    return;
                }
                Err(_) => break,
            }
        }
    }

    /// Cancels task `id` if it is held back here (it goes to the pool at once,
    /// to come back cancelled); false if it is not here.
    pub(super) fn cancel(&self, id: TaskId) -> bool {
        let mut st = self.state();
        let Some(at) = st.held.iter().position(|h| h.task.id == id) else {
            return false;
        };
        let mut held = st.held.remove(at);
        held.task.flags |= FLAG_CANCELLED;
        held.task.extra_mut().refused = Some("the task was cancelled".into());
        if !st.closed {
            self.pool.share().dispatch(&mut vec![held.task]);
        }
        true
    }

    /// The manager says to forget file `file_id`: true if it is on its way,
    /// to be forgotten once it has come.
    pub(super) fn forget(&self, file_id: u64) -> bool {
        let mut st = self.state();
        let coming = st.on_the_way.contains_key(&file_id);
        if coming {
            st.forgotten.insert(file_id);
        }
        coming
    }

    /// The session is over: what is queued or held back is dropped, and what
    /// is being fetched is thrown away when it comes.
    pub(super) fn close(&self) {
        let mut st = self.state();
        st.closed = true;
        st.queue.clear();
        st.held.clear();
    }

    /// Fetches queued files until there are none.
    fn fetch_all(&self) {
        loop {
            let next = {
                let mut st = self.state();
                match st.queue.pop_front() {
                    Some(f) => {
                        st.fetching += 1;
                        f
                    }
                    None => {
                        st.threads -= 1;
                        return;
                    }
                }
            };
            self.fetch_one(&next);
            self.state().fetching -= 1;
        }
    }

    fn fetch_one(&self, f: &Fetch) {
        let start = std::time::Instant::now();
        let fetched = match &self.peer {
            Some(peer) => peer.fetch(
                &f.host,
                f.port,
                f.file_id,
                f.hash.as_ref(),
                &self.dir.join("out"),
            ),
            None => Err("this worker has no transfer server".into()),
        };
        let (bytes, error) = match fetched {
            Ok(got) => {
                // Into the cache only while the session lasts: the next one
                // starts with an empty cache (its file ids are another
                // manager's), and nothing may come into it afterwards.
                let st = self.state();
                let dest = self.cache_path(f.file_id);
                let put = if st.closed {
                    Err("the session ended".to_owned())
                } else {
                    crate::transfer::remove_all(&dest);
                    move_file(&got.staged, &dest)
                        .map_err(|e| format!("cannot put it in the cache: {e}"))
                };
                if put.is_ok() {
                    // A copy the manager said to delete while a task used it
                    // is replaced by this one, which stays.
                    self.in_use().arrived(f.file_id);
                }
                drop(st);
                match put {
                    Ok(()) => (got.bytes, None),
                    Err(e) => {
                        crate::transfer::remove_all(&got.staged);
                        (0, Some(e))
                    }
                }
            }
            Err(e) => (0, Some(e)),
        };
        if let Some(peer) = &self.peer {
            match &error {
                None => peer.arrived(),
                Some(_) => peer.not_coming(f.file_id),
            }
        }
        if let Some(e) = &error {
            super::log::notice(&format!(
                "fetching file {} from the worker at {}:{} failed: {e}",
                f.file_id, f.host, f.port
            ));
            // A copy here is not the one the manager asked for (it asks only
            // for what this worker lacks): what the file was before it
            // changed. No task may read it; it goes once those using it are
            // done.
            let st = self.state();
            if !st.closed {
                self.in_use().forget(f.file_id, &self.cache_path(f.file_id));
            }
        }
        let took = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A broken connection ends the session; the reader finds out.
        let _ = self.tell(f, bytes, took, error);
        self.done(f);
    }

    /// Tells the manager how fetching `f` went, unless the session is over.
    fn tell(
        &self,
        f: &Fetch,
        bytes: u64,
        took_us: u64,
        error: Option<String>,
    ) -> crate::error::Result<()> {
        if self.state().closed {
            return Ok(());
        }
        send(
            &self.writer,
            &ToManager::PeerFetched {
                file_id: f.file_id,
                source: f.source,
                bytes,
                took_us,
                error,
            },
        )
    }

    /// `f` came or failed: the tasks that waited only for it go to the pool.
    fn done(&self, f: &Fetch) {
        let mut st = self.state();
        let last = match st.on_the_way.get_mut(&f.file_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                st.on_the_way.remove(&f.file_id);
                true
            }
            None => false,
        };
        if last && st.forgotten.remove(&f.file_id) {
            let path = self.cache_path(f.file_id);
            self.in_use().forget(f.file_id, &path);
        }
        self.dispatch_ready(&mut st);
    }

    /// Dispatches the tasks held back whose files have all come or failed
    /// (under the state's lock, so that a cancel finds each task either here
    /// or in the pool). A file that is not in the cache is an input lost.
    fn dispatch_ready(&self, st: &mut State) {
        if st.closed {
            return;
        }
        // In the order they came, as the pool would have had them.
        let on_the_way = &st.on_the_way;
        let (ready, waiting): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut st.held)
            .into_iter()
            .partition(|w| !w.needs.iter().any(|f| on_the_way.contains_key(f)));
        st.held = waiting;
        if ready.is_empty() {
            return;
        }
        let mut tasks = Vec::with_capacity(ready.len());
        for Waiting { mut task, needs } in ready {
            let missing: Vec<u64> = {
                let in_use = self.in_use();
                needs
                    .into_iter()
                    .filter(|&f| {
                        in_use.doomed(f) || std::fs::symlink_metadata(self.cache_path(f)).is_err()
                    })
                    .collect()
            };
            if !missing.is_empty() {
                if let Some(files) = self
                    .outputs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&task.id)
                {
                    files.lost.extend(missing.into_iter().map(Held::Cached));
                }
                let extra = task.extra_mut();
                if extra.refused.is_none() {
                    extra.refused = Some("an input it kept was missing or damaged".into());
                }
            }
            tasks.push(task);
        }
        self.pool.share().dispatch(&mut tasks);
    }
}
