//! Transfers between workers (peer transfers): which remote workers hold which
//! files (replicas), where each worker serves its files, and which transfers
//! each source is serving now. The connection threads read and write it (a
//! writer choosing a source for an input, a reader hearing how a fetch went,
//! a session ending); the manager thread adds the temps its workers make.
//!
//! A worker is counted as holding a file from the moment it is sent it (by the
//! manager or a peer), not once it has it all: a peer asking for a file still
//! on its way is served once it arrives. A source serves at most
//! `worker-source-max-transfers` fetches at once, and at most
//! `file-source-max-transfers` of one file; past both, the input goes from the
//! manager as it would without peers. A fetch that fails drops both ends'
//! replicas of the file, so the retry of its task is not sent there again; a
//! temp, which only workers have, is then brought to the manager from the
//! worker keeping it (over that worker's own connection) and sent from there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::scheduler::WorkerId;

/// TaskVine's default `worker-source-max-transfers`.
pub const WORKER_SOURCE_MAX_TRANSFERS: usize = 10;
/// TaskVine's default `file-source-max-transfers`.
pub const FILE_SOURCE_MAX_TRANSFERS: usize = 1;

/// A source chosen for a worker's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// The serving worker.
    pub source: WorkerId,
    /// Its transfer address.
    pub host: String,
    /// Its transfer port.
    pub port: u16,
}

#[derive(Default)]
struct Table {
    /// Where each worker serves its files: (host, port).
    addrs: HashMap<WorkerId, (String, u16)>,
    /// Workers holding each file, oldest first.
    holders: HashMap<u64, Vec<WorkerId>>,
    /// Fetches each source is serving now.
    serving: HashMap<WorkerId, usize>,
    /// Fetches of one file from one source now.
    serving_file: HashMap<(WorkerId, u64), usize>,
    /// Fetches under way: (fetching worker, file) to its source.
    under_way: HashMap<(WorkerId, u64), WorkerId>,
    /// Workers holding a file kept forever in their store (by its content,
    /// not its id, so never a peer source): counted as replicas only.
    stored: HashMap<u64, Vec<WorkerId>>,
}

/// The manager's table of replicas and peer transfers.
pub(crate) struct Peers {
    /// Peer transfers on (`vine_enable_peer_transfers`, the default) or off.
    pub on: Arc<AtomicBool>,
    /// The manager run's transfer token, given to each worker at `Welcome`.
    pub token: [u8; 32],
    /// `worker-source-max-transfers`.
    pub worker_max: AtomicU64,
    /// `file-source-max-transfers`.
    pub file_max: AtomicU64,
    /// Bytes moved between workers (vine's own counter).
    pub bytes: AtomicU64,
    /// `temp-replica-count`: workers each temp is kept at (1: where it is made).
    pub temp_replicas: AtomicU64,
    table: Mutex<Table>,
}

impl Peers {
    pub(crate) fn new() -> Peers {
        Peers {
            on: Arc::new(AtomicBool::new(true)),
            token: crate::protocol::challenge(),
            worker_max: AtomicU64::new(WORKER_SOURCE_MAX_TRANSFERS as u64),
            file_max: AtomicU64::new(FILE_SOURCE_MAX_TRANSFERS as u64),
            bytes: AtomicU64::new(0),
            temp_replicas: AtomicU64::new(1),
            table: Mutex::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether peer transfers are on.
    pub(crate) fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// `worker` joined, serving its files at `host:port` (port 0: it serves none).
    pub(crate) fn joined(&self, worker: WorkerId, host: String, port: u16) {
        if port != 0 {
            self.table().addrs.insert(worker, (host, port));
        }
    }

    /// `worker` is gone with every file it held; fetches it served end.
    pub(crate) fn gone(&self, worker: WorkerId) {
        let mut t = self.table();
        t.addrs.remove(&worker);
        let Table {
            holders, stored, ..
        } = &mut *t;
        for held in [holders, stored] {
            held.retain(|_, ws| {
                ws.retain(|w| *w != worker);
                !ws.is_empty()
            });
        }
        let ended: Vec<((WorkerId, u64), WorkerId)> = t
            .under_way
            .iter()
            .filter(|(&(dest, _), &src)| dest == worker || src == worker)
            .map(|(&k, &src)| (k, src))
            .collect();
        let mut not_coming: Vec<(WorkerId, u64)> = Vec::new();
        for ((dest, file), src) in ended {
            end(&mut t, (dest, file));
            if src == worker {
                not_coming.push((dest, file));
            }
        }
        // A copy that was coming from the worker gone will not come, nor one
        // coming from such a copy, and so on: their workers hold nothing to
        // serve (a peer sent there would wait for it in vain). Their fetches
        // still count until they are reported.
        while let Some((dest, file)) = not_coming.pop() {
            let Some(ws) = t.holders.get_mut(&file) else {
                continue;
            };
            let held = ws.len();
            ws.retain(|w| *w != dest);
            let dropped = ws.len() < held;
            if ws.is_empty() {
                t.holders.remove(&file);
            }
            // Each holder is dropped once: the walk ends even on a loop.
            if !dropped {
                continue;
            }
            not_coming.extend(
                t.under_way
                    .iter()
                    .filter(|(&(_, f), &src)| f == file && src == dest)
                    .map(|(&k, _)| k),
            );
        }
        t.serving.remove(&worker);
        t.serving_file.retain(|(w, _), _| *w != worker);
    }

    /// `worker` holds (or is being sent) `file`.
    pub(crate) fn add(&self, file: u64, worker: WorkerId) {
        let mut t = self.table();
        let ws = t.holders.entry(file).or_default();
        if !ws.contains(&worker) {
            ws.push(worker);
        }
    }

    /// `worker` no longer holds `file`.
    pub(crate) fn remove(&self, file: u64, worker: WorkerId) {
        let mut t = self.table();
        if let Some(ws) = t.holders.get_mut(&file) {
            ws.retain(|w| *w != worker);
            if ws.is_empty() {
                t.holders.remove(&file);
            }
        }
    }

    /// The copies workers hold of `file` are of an older version: none is a
    /// replica any more (each worker is sent the new one when a task there
    /// needs it). Fetches under way end as they do.
    pub(crate) fn outdated(&self, file: u64) {
        let mut t = self.table();
        t.holders.remove(&file);
        t.stored.remove(&file);
    }

    /// Whether `worker` holds `file` (or is being sent it).
    pub(crate) fn holds(&self, file: u64, worker: WorkerId) -> bool {
        self.table()
            .holders
            .get(&file)
            .is_some_and(|ws| ws.contains(&worker))
    }

    /// How many workers hold `file` (or are being sent it).
    pub(crate) fn replicas(&self, file: u64) -> usize {
        let t = self.table();
        let stored = t.stored.get(&file).map_or(&[][..], Vec::as_slice);
        let held = t.holders.get(&file).map_or(&[][..], Vec::as_slice);
        held.len() + stored.iter().filter(|w| !held.contains(w)).count()
    }

    /// `worker` holds file kept forever `file` in its store.
    pub(crate) fn stored(&self, file: u64, worker: WorkerId) {
        let mut t = self.table();
        let ws = t.stored.entry(file).or_default();
        if !ws.contains(&worker) {
            ws.push(worker);
        }
    }

    /// File `file` was written anew: what workers store of it is its old content.
    pub(crate) fn unstored(&self, file: u64) {
        self.table().stored.remove(&file);
    }

    /// Chooses a peer for `dest` to fetch `file` from: a holder other than
    /// `dest` that serves transfers and is under both limits (`limits` false:
    /// any holder, for a file only workers have). The transfer counts against
    /// the source, and `dest` counts as a holder, until [`Peers::finished`].
    pub(crate) fn choose(&self, file: u64, dest: WorkerId, limits: bool) -> Option<Chosen> {
        if !self.enabled() {
            return None;
        }
        self.choose_in(&mut self.table(), file, dest, limits)
    }

    /// As [`Peers::choose`]; when no peer is chosen, `dest` is counted as
    /// holding `file` in the same step (the manager is about to send it
    /// there). Two workers' connections choosing a source for one file at
    /// once then never both find no holder: the second fetches from the
    /// first, once the file is there, and the manager sends it once.
    pub(crate) fn choose_or_hold(&self, file: u64, dest: WorkerId, limits: bool) -> Option<Chosen> {
        let mut t = self.table();
        let chosen = if self.enabled() {
            self.choose_in(&mut t, file, dest, limits)
        } else {
            None
        };
        if chosen.is_none() {
            let ws = t.holders.entry(file).or_default();
            if !ws.contains(&dest) {
                ws.push(dest);
            }
        }
        chosen
    }

    fn choose_in(&self, t: &mut Table, file: u64, dest: WorkerId, limits: bool) -> Option<Chosen> {
        let worker_max = self.worker_max.load(Ordering::Relaxed) as usize;
        let file_max = self.file_max.load(Ordering::Relaxed) as usize;
        let candidates = t.holders.get(&file)?.clone();
        let mut best: Option<(usize, WorkerId)> = None;
        for w in candidates {
            if w == dest || !t.addrs.contains_key(&w) || waits_on(t, w, file, dest) {
                continue;
            }
            let busy = t.serving.get(&w).copied().unwrap_or(0);
            let busy_file = t.serving_file.get(&(w, file)).copied().unwrap_or(0);
            if limits && (busy >= worker_max || busy_file >= file_max) {
                continue;
            }
            if best.is_none_or(|(b, _)| busy < b) {
                best = Some((busy, w));
            }
        }
        let (_, source) = best?;
        let (host, port) = t.addrs.get(&source).cloned()?;
        *t.serving.entry(source).or_default() += 1;
        *t.serving_file.entry((source, file)).or_default() += 1;
        if let Some(old) = t.under_way.insert((dest, file), source) {
            release(t, old, file);
        }
        let ws = t.holders.entry(file).or_default();
        if !ws.contains(&dest) {
            ws.push(dest);
        }
        Some(Chosen { source, host, port })
    }

    /// `dest`'s fetch of `file` from `source` ended; `ok` false: neither end
    /// is counted as holding it any more. False, and nothing changes, if
    /// `dest` was not fetching `file` from `source` (a worker's word about a
    /// fetch it was never told to make is not taken).
    pub(crate) fn finished(&self, dest: WorkerId, file: u64, source: WorkerId, ok: bool) -> bool {
        let mut t = self.table();
        if t.under_way.get(&(dest, file)) != Some(&source) {
            return false;
        }
        end(&mut t, (dest, file));
        if !ok {
            if let Some(ws) = t.holders.get_mut(&file) {
                ws.retain(|w| *w != dest && *w != source);
                if ws.is_empty() {
                    t.holders.remove(&file);
                }
            }
        }
        true
    }

    /// Fetches `source` is serving now (for tests and status).
    #[cfg(test)]
    fn serving(&self, source: WorkerId) -> usize {
        self.table().serving.get(&source).copied().unwrap_or(0)
    }
}

/// True if `w`'s copy of `file` is still coming, through fetches under way,
/// from `dest`: `dest` fetching from `w` would then wait for itself.
fn waits_on(t: &Table, mut w: WorkerId, file: u64, dest: WorkerId) -> bool {
    // A chain is never longer than the workers fetching; the bound only
    // guards against a loop the table should never hold.
    for _ in 0..=t.under_way.len() {
        match t.under_way.get(&(w, file)) {
            Some(&source) if source == dest => return true,
            Some(&source) => w = source,
            None => return false,
        }
    }
    true
}

fn end(t: &mut Table, key: (WorkerId, u64)) {
    if let Some(source) = t.under_way.remove(&key) {
        release(t, source, key.1);
    }
}

fn release(t: &mut Table, source: WorkerId, file: u64) {
    if let Some(n) = t.serving.get_mut(&source) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            t.serving.remove(&source);
        }
    }
    if let Some(n) = t.serving_file.get_mut(&(source, file)) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            t.serving_file.remove(&(source, file));
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn peers() -> Peers {
        let p = Peers::new();
        for w in 1..=4 {
            p.joined(w, "127.0.0.1".into(), 9000 + w as u16);
        }
        p
    }

    #[test]
    fn a_file_fans_out_along_a_chain_under_the_per_file_limit() {
        let p = peers();
        assert_eq!(p.choose(7, 1, true), None, "nobody holds it yet");
        p.add(7, 1);
        assert_eq!(p.choose(7, 2, true).unwrap().source, 1);
        // Worker 1 serves its one transfer of file 7: the next goes from 2.
        assert_eq!(p.choose(7, 3, true).unwrap().source, 2);
        assert_eq!(p.choose(7, 4, true).unwrap().source, 3);
        assert_eq!(p.replicas(7), 4);
        p.finished(2, 7, 1, true);
        assert_eq!(p.serving(1), 0);
    }

    #[test]
    fn a_worker_the_manager_will_send_a_file_to_is_its_holder_before_the_next_choice() {
        // Two connections choose a source for one file, one after the other
        // as their lock allows: the first finds none and the manager sends it
        // there, so the second must find the first (not the manager again).
        let p = peers();
        assert_eq!(p.choose_or_hold(7, 1, true), None);
        assert!(p.holds(7, 1));
        assert_eq!(p.choose_or_hold(7, 2, true).unwrap().source, 1);
        // With peer transfers off, each is sent it by the manager and counted.
        p.on.store(false, Ordering::Relaxed);
        assert_eq!(p.choose_or_hold(8, 1, true), None);
        assert_eq!(p.choose_or_hold(8, 2, true), None);
        assert_eq!(p.replicas(8), 2);
    }

    #[test]
    fn copies_that_were_coming_from_a_lost_worker_serve_no_one() {
        let p = peers();
        p.add(7, 1);
        // 2 fetches file 7 from 1 and 3 from 2 (a chain), then 1 is lost
        // mid-transfer: neither 2 nor 3 has a copy to give anyone.
        assert_eq!(p.choose(7, 2, true).unwrap().source, 1);
        assert_eq!(p.choose(7, 3, true).unwrap().source, 2);
        p.gone(1);
        assert_eq!(p.replicas(7), 0);
        assert_eq!(p.choose(7, 4, true), None);
        // Their fetches are still reported as they end.
        assert!(p.finished(3, 7, 2, false));
    }

    #[test]
    fn a_worker_is_never_sent_to_fetch_a_copy_that_is_coming_from_itself() {
        let p = peers();
        p.file_max.store(10, Ordering::Relaxed);
        p.add(7, 1);
        // 2 fetches from 1, 3 from 2 (a chain); 1's copy is then dropped (a
        // fetch from it failed for one of them) while 2 and 3 are still
        // counted holders.
        assert_eq!(p.choose(7, 2, true).unwrap().source, 1);
        p.remove(7, 1);
        assert_eq!(p.choose(7, 3, true).unwrap().source, 2);
        // 2's fetch is tried again: 3 holds a copy only through 2, so 2 is
        // not sent there (each would wait for the other); nobody else has it.
        assert_eq!(p.choose(7, 2, true), None);
        // 4 may fetch from 2 or 3, whose copies are coming from elsewhere.
        assert!(p.choose(7, 4, true).is_some());
    }

    #[test]
    fn a_fetch_a_worker_was_never_told_to_make_changes_nothing() {
        let p = peers();
        p.add(7, 1);
        assert_eq!(p.choose(7, 2, true).unwrap().source, 1);
        // Worker 3 fetched nothing; worker 2 fetched from 1, not from 4.
        assert!(!p.finished(3, 7, 1, false));
        assert!(!p.finished(2, 7, 4, false));
        assert!(p.holds(7, 1) && p.holds(7, 2));
        assert_eq!(p.serving(1), 1);
        assert!(p.finished(2, 7, 1, true));
        assert_eq!(p.serving(1), 0);
        // Once reported, the same report again is not taken either.
        assert!(!p.finished(2, 7, 1, false));
        assert!(p.holds(7, 1) && p.holds(7, 2));
    }

    #[test]
    fn limits_turn_to_the_manager_and_a_failure_drops_both_ends() {
        let p = peers();
        p.file_max.store(10, Ordering::Relaxed);
        p.worker_max.store(1, Ordering::Relaxed);
        p.add(7, 1);
        p.add(8, 1);
        assert_eq!(p.choose(7, 2, true).unwrap().source, 1);
        assert_eq!(p.choose(8, 3, true), None, "worker 1 serves one at a time");
        assert!(p.choose(8, 3, false).is_some(), "limits off for temps");
        p.finished(2, 7, 1, false);
        assert_eq!(p.replicas(7), 0);
        p.on.store(false, Ordering::Relaxed);
        p.add(7, 1);
        assert_eq!(p.choose(7, 2, true), None, "off");
    }

    #[test]
    fn a_lost_worker_holds_and_serves_nothing() {
        let p = peers();
        p.add(7, 1);
        assert_eq!(p.choose(7, 2, true).unwrap().source, 1);
        p.gone(1);
        assert_eq!(p.serving(1), 0);
        // Worker 2's copy was coming from 1: it will not come, so nobody is
        // sent to 2 for it (they would wait for it in vain).
        assert_eq!(p.replicas(7), 0);
        assert_eq!(p.choose(7, 3, true), None);
    }
}
