//! Remote workers as the manager sees them: an accept loop, one thread per
//! connection that authenticates the worker and then reads its frames, and a
//! [`RemoteLink`] through which the manager thread sends it tasks. The link keeps
//! every task it sent until the worker reports on it, so a worker that dies loses
//! nothing: its tasks go back to the scheduler.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::outbound::{Inventory, Outbound, Outgoing, Plan, Planned};
use super::scheduler::WorkerId;
use super::temps::Temps;
use super::Message;
use crate::channel::{FrameReader, FrameWriter, Handshake};
use crate::files::{CacheLevel, File, FileKind, MOUNT_RESEND};
use crate::idmap::IdMap;
use crate::protocol::{
    self, Dest, FrameMac, InputContent, InputSpec, OutputSpec, OutputStatus, TaskReport, TaskSpec,
    ToManager, ToWorker, WorkSpec,
};
use crate::resources::{Measured, Resources};
use crate::task::{Task, TaskId, TaskResult, Work, FLAG_MONITOR, FLAG_NO_WATCHDOG};
use crate::transfer::{self, Source};

/// `addr` with an IPv4 address mapped into IPv6 (a dual-stack socket's view
/// of an IPv4 peer, `::ffff:127.0.0.1`) as the IPv4 address it is, so that a
/// host is named alike whatever the listening address.
fn canonical(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
/// How long a connection has to finish its handshake (TLS and the password
/// proofs) before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many connections may be in their handshake at once, and at most
/// [`MAX_PENDING_PER_HOST`] from one address: strangers cannot take every thread or
/// descriptor, and one host cannot crowd out the others.
const MAX_PENDING: usize = 128;
/// File descriptors a joined worker holds in the manager's process, about
/// (its socket, the handles on it, and its session's).
const FDS_PER_WORKER: usize = 8;
/// File descriptors the manager leaves to the rest of the program, at most:
/// no worker is taken that would leave fewer (an eighth of the limit when
/// that is less).
const FD_RESERVE: usize = 128;
/// See [`MAX_PENDING`].
const MAX_PENDING_PER_HOST: usize = 32;

/// Who may join: the password, and the sessions joined under an earlier one
/// or none (dropped the moment a password is set or changed).
#[derive(Default)]
struct Auth {
    password: Option<Vec<u8>>,
    /// Counts the passwords set: a session records the one it proved.
    generation: u64,
    /// Sessions joined, with the generation of the password they proved (None:
    /// joined without one).
    sessions: Vec<(WorkerId, TcpStream, Option<u64>)>,
    /// Sessions dropped for the password set or changed: their end is the
    /// manager's doing, not a connection lost.
    revoked: Vec<WorkerId>,
}

/// Settings the connection threads read.
pub(crate) struct RemoteSettings {
    auth: Mutex<Auth>,
    /// The manager's TLS identity, if workers connect with TLS. Set before the
    /// listener starts, never changed.
    pub tls: std::sync::OnceLock<crate::tls::ServerTls>,
    /// Whether the authentication settings are final: nothing is accepted before.
    sealed: Mutex<bool>,
    sealed_cv: Condvar,
    sealed_fast: AtomicBool,
    /// Where other machines can connect, until sealing has warned of it.
    exposed: Mutex<Option<String>>,
    /// Connections in their handshake, by peer address.
    pending: Mutex<HashMap<IpAddr, usize>>,
    /// Milliseconds of silence after which a worker is declared lost.
    pub keepalive_timeout_ms: AtomicU64,
    /// Milliseconds between a worker's keepalives; 0: a quarter of the timeout.
    pub keepalive_interval_ms: AtomicU64,
    /// Bytes of files sent to workers.
    pub bytes_sent: AtomicU64,
    /// Bytes of outputs received from workers.
    pub bytes_received: AtomicU64,
    /// How long files took to go each way, and the limit on their rate.
    pub transfers: super::bandwidth::Transfers,
    /// Set when the manager shuts down: stop accepting.
    pub closing: AtomicBool,
    /// Bytes of command output a task keeps, told to workers with each task.
    pub max_stdout: AtomicU64,
    /// Where files arriving from workers are built (the manager's temp directory).
    pub staging: std::sync::OnceLock<std::path::PathBuf>,
    next_worker: AtomicU32,
    /// Hosts whose workers may not join (`vine_block_host`): by host name or
    /// address, until an instant or (None) until unblocked.
    blocked: Mutex<HashMap<String, Option<Instant>>>,
    /// Workers told to exit or disconnected on purpose: their connection's
    /// end is no news.
    told_to_exit: Mutex<HashSet<WorkerId>>,
    /// Where transfer records go.
    pub(crate) journal: std::sync::OnceLock<Arc<super::journal::Sink>>,
    /// Replicas and transfers between workers.
    pub(crate) peers: super::peers::Peers,
    /// The content hashes of inputs workers may fetch from peers.
    pub(crate) hashes: ContentHashes,
    /// The process's limit on open files (`ulimit -n`), if known.
    fd_limit: Option<usize>,
    /// When a worker was last turned away for want of descriptors (said once
    /// a minute at most).
    fd_warned: Mutex<Option<Instant>>,
}

/// The process's soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// File descriptors open in this process now.
fn open_files() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

impl RemoteSettings {
    pub(crate) fn new() -> Arc<RemoteSettings> {
        Arc::new(RemoteSettings {
            auth: Mutex::default(),
            tls: std::sync::OnceLock::new(),
            sealed: Mutex::new(false),
            sealed_cv: Condvar::new(),
            sealed_fast: AtomicBool::new(false),
            exposed: Mutex::new(None),
            pending: Mutex::default(),
            keepalive_timeout_ms: AtomicU64::new(30_000),
            keepalive_interval_ms: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            transfers: super::bandwidth::Transfers::default(),
            closing: AtomicBool::new(false),
            told_to_exit: Mutex::new(HashSet::new()),
            journal: std::sync::OnceLock::new(),
            max_stdout: AtomicU64::new(crate::worker::command::DEFAULT_MAX_STDOUT as u64),
            staging: std::sync::OnceLock::new(),
            next_worker: AtomicU32::new(1),
            blocked: Mutex::default(),
            peers: super::peers::Peers::new(),
            hashes: ContentHashes::default(),
            fd_limit: open_files_limit(),
            fd_warned: Mutex::new(None),
        })
    }

    /// False if one more worker would leave the program fewer file
    /// descriptors than it keeps for it (see [`FD_RESERVE`]); counted only
    /// once the workers joined could be near the limit.
    fn descriptors_to_spare(&self) -> bool {
        let Some(limit) = self.fd_limit else {
            return true;
        };
        let reserve = FD_RESERVE.min(limit / 8);
        let joined = self.auth().sessions.len();
        let pending: usize = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum();
        if (joined + pending + 1) * FDS_PER_WORKER * 2 + reserve < limit {
            return true;
        }
        let Some(open) = open_files() else {
            return true;
        };
        if open + FDS_PER_WORKER + reserve <= limit {
            return true;
        }
        let mut warned = self.fd_warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            eprintln!(
                "vine: turning workers away: {open} of this process's {limit} file descriptors \
                 are open (ulimit -n), and {reserve} are kept for the program; {joined} workers joined"
            );
        }
        false
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the password workers must prove. Workers that joined without one,
    /// or with another password, are dropped now (their tasks go back to the
    /// queue): a manager with a password talks only to peers that proved it,
    /// and a password changed is revoked for everyone.
    pub(crate) fn set_password(&self, password: Vec<u8>) {
        let mut auth = self.auth();
        if auth.password.as_ref() == Some(&password) {
            return;
        }
        auth.password = Some(password);
        auth.generation += 1;
        let sessions = std::mem::take(&mut auth.sessions);
        for (id, sock, proved) in sessions {
            match proved {
                None => eprintln!(
                    "vine: worker {id} joined without a password; dropping it now that one is set"
                ),
                Some(_) => eprintln!(
                    "vine: worker {id} joined with another password; dropping it now that the password changed"
                ),
            }
            crate::channel::close(&sock);
            auth.revoked.push(id);
        }
    }

    /// True (once) if worker `id`'s session was dropped when the password was
    /// set or changed.
    pub(crate) fn take_revoked(&self, id: WorkerId) -> bool {
        let mut auth = self.auth();
        let before = auth.revoked.len();
        auth.revoked.retain(|&w| w != id);
        auth.revoked.len() != before
    }

    /// Every worker whose session was dropped when the password was set or
    /// changed, and not taken yet.
    pub(crate) fn take_all_revoked(&self) -> Vec<WorkerId> {
        std::mem::take(&mut self.auth().revoked)
    }

    /// The password workers must prove now, and its generation.
    pub(super) fn password(&self) -> (Option<Vec<u8>>, u64) {
        let auth = self.auth();
        (auth.password.clone(), auth.generation)
    }

    /// The authentication settings are final: connections are accepted from now on.
    pub(crate) fn seal(&self) {
        if self.sealed_fast.load(Ordering::Acquire) {
            return;
        }
        let mut sealed = self.sealed.lock().unwrap_or_else(|p| p.into_inner());
        let exposed = self
            .exposed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(at) = exposed.filter(|_| !*sealed && self.auth().password.is_none()) {
            // Said once workers are let in without one: a password set
            // between creating the manager and this point silences it.
            eprintln!(
                "vine: listening on {at}, reachable from other machines, without a password; \
                 set one with vine_set_password_file so only your workers connect"
            );
        }
        *sealed = true;
        drop(sealed);
        self.sealed_fast.store(true, Ordering::Release);
        self.sealed_cv.notify_all();
    }

    /// The manager listens at `at`, an address other machines can reach (None:
    /// loopback only): sealing without a password warns of it.
    pub(crate) fn exposed_at(&self, at: Option<String>) {
        *self.exposed.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Waits until sealed or closing; true if sealed.
    fn wait_until_sealed(&self) -> bool {
        let mut sealed = self.sealed.lock().unwrap_or_else(|p| p.into_inner());
        while !*sealed && !self.closing.load(Ordering::Acquire) {
            sealed = self
                .sealed_cv
                .wait(sealed)
                .unwrap_or_else(|p| p.into_inner());
        }
        *sealed && !self.closing.load(Ordering::Acquire)
    }

    fn blocklist(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Instant>>> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks `host` (a worker's host name or address) for `for_how_long`, or
    /// until unblocked (None).
    pub(crate) fn block(&self, host: &str, for_how_long: Option<Duration>) {
        // A time past what an Instant holds is no limit.
        let until = for_how_long.and_then(|d| Instant::now().checked_add(d));
        self.blocklist().insert(host.to_owned(), until);
    }

    /// Unblocks `host`; every host if None.
    pub(crate) fn unblock(&self, host: Option<&str>) {
        let mut list = self.blocklist();
        match host {
            Some(h) => {
                list.remove(h);
            }
            None => list.clear(),
        }
    }

    /// True if a worker on `hostname` at `ip` may not join now. Blocks whose time
    /// is up are lifted here.
    pub(crate) fn is_blocked(&self, hostname: &str, ip: Option<IpAddr>) -> bool {
        let mut list = self.blocklist();
        if list.is_empty() {
            return false;
        }
        let now = Instant::now();
        list.retain(|_, until| until.is_none_or(|u| u > now));
        list.contains_key(hostname) || ip.is_some_and(|ip| list.contains_key(&ip.to_string()))
    }

    /// Takes a handshake slot for a connection from `ip`, if one is free.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = pending.values().sum();
        let here = pending.get(&ip).copied().unwrap_or(0);
        if total >= MAX_PENDING || here >= MAX_PENDING_PER_HOST {
            return None;
        }
        pending.insert(ip, here + 1);
        Some(PendingSlot {
            settings: self.clone(),
            ip,
        })
    }
}

/// A connection's place among those in their handshake; freed when dropped.
struct PendingSlot {
    settings: Arc<RemoteSettings>,
    ip: IpAddr,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut pending = self
            .settings
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = pending.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.ip);
            }
        }
    }
}

/// Accepts workers on `listener` until the manager closes; returns the thread.
/// Nothing is accepted before the authentication settings are final (see
/// [`RemoteSettings::seal`]): until then connections wait in the kernel's queue.
pub(crate) fn start_listener(
    listener: Arc<TcpListener>,
    events: super::inbox::Sender<Message>,
    settings: Arc<RemoteSettings>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vine-listener".into())
        .spawn(move || {
            if !settings.wait_until_sealed() {
                return;
            }
            let mut backoff = Duration::ZERO;
            loop {
                let conn = listener.accept();
                if settings.closing.load(Ordering::Acquire) {
                    return;
                }
                let (stream, addr) = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors, say: wait for some to be freed rather
                        // than spin on an accept that fails at once.
                        if backoff.is_zero() {
                            eprintln!("vine: cannot accept a worker connection: {e}");
                        }
                        backoff =
                            (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        std::thread::sleep(backoff);
                        continue;
                    }
                };
                backoff = Duration::ZERO;
                if !settings.descriptors_to_spare() {
                    continue;
                }
                let Some(slot) = settings.admit(canonical(addr).ip()) else {
                    continue;
                };
                let events = events.clone();
                let settings = settings.clone();
                let spawned = std::thread::Builder::new()
                    .name("vine-conn".into())
                    .spawn(move || serve_connection(stream, events, settings, slot));
                if let Err(e) = spawned {
                    eprintln!("vine: cannot serve a worker connection: {e}");
                }
            }
        })
}

/// Wakes the accept loop on `listener` (at `addr`) so it sees `closing`.
/// Shutting the socket down ends a blocked `accept` and takes no descriptor
/// (a program out of descriptors is likely to be deleting its manager); a
/// connection of its own wakes it where that did not work.
pub(crate) fn stop_listener(
    listener: &TcpListener,
    addr: std::net::SocketAddr,
    settings: &RemoteSettings,
) {
    settings.closing.store(true, Ordering::Release);
    {
        let _sealed = settings.sealed.lock().unwrap_or_else(|p| p.into_inner());
        settings.sealed_cv.notify_all();
    }
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown on a socket this function's caller keeps open.
    if unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) } != 0 {
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    }
}

fn serve_connection(
    stream: TcpStream,
    events: super::inbox::Sender<Message>,
    settings: Arc<RemoteSettings>,
    slot: PendingSlot,
) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| canonical(a).to_string());
    let _ = stream.set_nodelay(true);
    let joined = handshake(stream, &settings, &events);
    drop(slot);
    let (joined, mut incoming, outgoing, sock) = match joined {
        Ok(x) => x,
        Err(e) => {
            // A blocked host's workers retry until it is unblocked: not news.
            if !settings.closing.load(Ordering::Acquire)
                && e.message() != BLOCKED
                && e.message() != STATUS_SERVED
            {
                eprintln!("vine: dropped connection from {peer}: {e}");
            }
            return;
        }
    };
    let Joined {
        id,
        resources,
        functions,
        stored,
        features,
        hostname,
        end_us,
        factory_job,
        transfer_port,
    } = joined;
    let (Ok(writer_sock), Ok(link_sock)) = (sock.try_clone(), sock.try_clone()) else {
        settings.forget(id);
        return;
    };
    if let Ok(addr) = sock.peer_addr().map(canonical) {
        // Peers reach it where the manager sees its connection come from.
        settings
            .peers
            .joined(id, addr.ip().to_string(), transfer_port);
    }
    let mut departure = Departure {
        id,
        settings: settings.clone(),
        sock,
        events: None,
    };
    let (out_tx, out_rx) = crossbeam_channel::unbounded::<Outgoing>();
    let inventory = Arc::new(Mutex::new(Inventory {
        cached: HashSet::new(),
        versions: Default::default(),
        stored,
        made: HashSet::new(),
        unsent: Default::default(),
    }));
    let expected = Arc::new(Mutex::new(Expected::default()));
    let outbound = Outbound {
        inventory: inventory.clone(),
        settings: settings.clone(),
        next_xfer: 0,
        worker: id,
    };
    let w = std::thread::Builder::new()
        .name("vine-conn-writer".into())
        .spawn(move || write_loop(outgoing, out_rx, outbound, writer_sock));
    if w.is_err() {
        return;
    }
    let place = crate::task::Place {
        hostname: std::ffi::CString::new(hostname.clone()).unwrap_or_default(),
        addrport: std::ffi::CString::new(peer.clone()).unwrap_or_default(),
    };
    let link = RemoteLink {
        id,
        out: out_tx,
        in_flight: IdMap::default(),
        settings: settings.clone(),
        functions,
        hostname,
        ip: link_sock.peer_addr().ok().map(|a| canonical(a).ip()),
        sock: link_sock,
        inventory: inventory.clone(),
        expected: expected.clone(),
        features,
        place: Arc::new(place),
        end_us,
        factory_job,
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
    departure.events = Some(events.clone());
    let sock = &departure.sock;
    // 0: a worker is never lost for its silence alone.
    let timeout = match settings.keepalive_timeout_ms.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let _ = sock.set_read_timeout(timeout);
    let mut files = Arrivals::new(id, &settings, expected);
    let mut pace = super::bandwidth::Pace::default();
    loop {
        match incoming.recv::<ToManager>() {
            Ok(ToManager::Done(mut report)) => {
                files.attach(&mut report);
                {
                    // Under the inventory's lock, so that a copy the writer
                    // sends again meanwhile is counted again after this.
                    let mut inv = inventory.lock().unwrap_or_else(|p| p.into_inner());
                    // Not a copy peers may fetch from any more.
                    for h in &report.lost {
                        if let protocol::Held::Cached(file) = h {
                            settings.peers.remove(*file, id);
                        }
                    }
                    inv.forget(&report.lost);
                }
                if events
                    .send(Message::RemoteDone { worker: id, report })
                    .is_err()
                {
                    break;
                }
            }
            Ok(ToManager::Keepalive) => {}
            Ok(ToManager::Watch(update)) => {
                if update.bytes.len() > protocol::WATCH_CHUNK {
                    eprintln!(
                        "vine: worker {id} ({peer}) sent an oversized watch update; dropping it"
                    );
                    break;
                }
                if events
                    .send(Message::RemoteWatch { worker: id, update })
                    .is_err()
                {
                    break;
                }
            }
            Ok(ToManager::Xfer(piece)) => {
                let at = Instant::now();
                let data = match &piece {
                    protocol::Piece::Data { bytes, .. } => bytes.len(),
                    _ => 0,
                };
                if let Err(e) = files.piece(piece, &settings) {
                    eprintln!("vine: worker {id} ({peer}) dropped: {e}");
                    break;
                }
                pace.went(at, data, settings.transfers.limit(), &settings.closing);
            }
            Ok(ToManager::FileData { file_id, error }) => {
                files.answered(file_id);
                let data = match error {
                    Some(e) => Err(e),
                    None => files
                        .fetched
                        .remove(&file_id)
                        .unwrap_or_else(|| Err("the worker sent no file".into())),
                };
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
            Ok(ToManager::PeerFetched {
                file_id,
                source,
                bytes,
                took_us,
                error,
            }) => {
                let ok = error.is_none();
                if !settings.peers.finished(id, file_id, source, ok) {
                    // Not a fetch this worker was told to make.
                    continue;
                }
                if !ok {
                    inventory
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .cached
                        .remove(&file_id);
                }
                if events
                    .send(Message::PeerFetched {
                        worker: id,
                        file_id,
                        ok,
                    })
                    .is_err()
                {
                    break;
                }
                settings.peers.bytes.fetch_add(bytes, Ordering::Relaxed);
                if let Some(e) = &error {
                    eprintln!(
                        "vine: worker {id} ({peer}) could not fetch file {file_id} from worker {source}: {e}"
                    );
                }
                if let (true, Some(sink)) = (ok, settings.journal.get()) {
                    if sink.txn_on.load(Ordering::Relaxed) {
                        let now = super::journal::now_us();
                        let took = i64::try_from(took_us).unwrap_or(i64::MAX);
                        sink.push(super::journal::Other::CacheUpdate {
                            worker: id,
                            name: format!("file-{file_id}"),
                            bytes,
                            took_us: took,
                            start_us: now.saturating_sub(took),
                        });
                    }
                }
            }
            Ok(ToManager::Leaving { reason }) => {
                // Said before the worker closes: not a lost worker. What it
                // says goes to a log: one line, of bounded length.
                let reason: String = reason.chars().take(200).collect();
                let reason = super::journal::line(&reason);
                let _ = events.send(Message::WorkerLeft { worker: id, reason });
                break;
            }
            Ok(ToManager::Register { .. } | ToManager::Details(_)) => {
                eprintln!("vine: worker {id} ({peer}) registered twice; dropping it");
                break;
            }
            Err(e) => {
                let told = settings
                    .told_to_exit
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if !told && !settings.closing.load(Ordering::Acquire) {
                    eprintln!("vine: worker {id} ({peer}) lost: {e}");
                }
                break;
            }
        }
    }
}

/// Ends a session however its thread ends, a panic included: the socket is closed,
/// and once the worker has joined the manager always hears that it is gone, so
/// its tasks run elsewhere.
struct Departure {
    id: WorkerId,
    settings: Arc<RemoteSettings>,
    sock: TcpStream,
    /// Set once the manager knows the worker.
    events: Option<super::inbox::Sender<Message>>,
}

impl Drop for Departure {
    fn drop(&mut self) {
        crate::channel::close(&self.sock);
        self.settings.forget(self.id);
        self.settings.peers.gone(self.id);
        if let Some(events) = &self.events {
            let _ = events.send(Message::WorkerLost { worker: self.id });
        }
    }
}

impl RemoteSettings {
    /// Registers a session that just joined, having proved the password of
    /// generation `proved` (None: it proved none). It is kept on a list so that
    /// setting or changing the password drops it; it is refused if the password
    /// was set or changed while it was in its handshake, or if the system
    /// gives no handle on its socket (too many open files).
    fn register(
        &self,
        id: WorkerId,
        sock: &TcpStream,
        proved: Option<u64>,
    ) -> crate::error::Result<()> {
        let mut auth = self.auth();
        let current = auth.password.is_some().then_some(auth.generation);
        if proved != current {
            return Err(crate::error::Error::invalid(
                "the password was set or changed while it joined",
            ));
        }
        let s = sock
            .try_clone()
            .map_err(|e| crate::error::Error::io("cannot keep its connection", e))?;
        auth.sessions.push((id, s, proved));
        Ok(())
    }

    /// A session ended.
    fn forget(&self, id: WorkerId) {
        self.auth().sessions.retain(|(w, _, _)| *w != id);
    }
}

/// What a worker may send the manager: the outputs of the tasks sent to it
/// and not yet reported on, and the temps asked of it and not yet answered.
/// The manager thread adds to it before it sends the task or the request; the
/// connection's reader takes away as the worker reports or answers.
#[derive(Default)]
struct Expected {
    /// The file ids of the outputs of each task in flight, by (task id, attempt).
    outputs: HashMap<(u64, u32), Vec<u64>>,
    /// Temps asked for (`GetFile`), with how many requests are unanswered.
    asked: HashMap<u64, usize>,
}

/// Transfers refused at once, at most, whose frames are being skipped: a
/// worker opening more is broken.
const MAX_REFUSED: usize = 4096;

/// Files arriving from one worker: outputs wait here for the report of their
/// task, temps for the answer to the request that fetched them. Nothing else
/// is taken: a transfer to anywhere but an output of a task the worker has, or
/// a temp asked of it, is refused at its `Begin`, before a byte is stored.
struct Arrivals {
    worker: WorkerId,
    receiver: transfer::Receiver,
    /// Outputs, by (task id, attempt, file id).
    outputs: HashMap<(u64, u32, u64), Result<std::path::PathBuf, String>>,
    /// Temps fetched, by file id.
    fetched: HashMap<u64, Result<std::path::PathBuf, String>>,
    /// What the worker may send, shared with its link.
    expected: Arc<Mutex<Expected>>,
    /// Transfers of temps not asked for (or no longer): their frames are
    /// dropped until their end.
    refused: HashSet<u64>,
}

impl Arrivals {
    fn new(
        worker: WorkerId,
        settings: &RemoteSettings,
        expected: Arc<Mutex<Expected>>,
    ) -> Arrivals {
        let staging = settings
            .staging
            .get()
            .cloned()
            .unwrap_or_else(std::env::temp_dir);
        Arrivals {
            worker,
            receiver: transfer::Receiver::new(staging, &format!("from-{worker}-")),
            outputs: HashMap::new(),
            fetched: HashMap::new(),
            expected,
            refused: HashSet::new(),
        }
    }

    fn expected(&self) -> std::sync::MutexGuard<'_, Expected> {
        self.expected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a transfer to `dest` is one the worker may send now: Ok(true)
    /// to take it, Ok(false) to drop its frames (a temp not asked for: another
    /// worker's answer, say, or a second one), Err if no worker sends there.
    fn admit(&self, dest: &Dest) -> crate::error::Result<bool> {
        use crate::error::Error;
        match *dest {
            Dest::Output(task, attempt, file) => {
                let given = self
                    .expected()
                    .outputs
                    .get(&(task, attempt))
                    .is_some_and(|files| files.contains(&file));
                if given {
                    Ok(true)
                } else {
                    Err(Error::invalid(format!(
                        "it sent file {file} as an output of task {task} (attempt {attempt}), \
                         which it was not given"
                    )))
                }
            }
            Dest::Fetched(file) => Ok(self.expected().asked.contains_key(&file)),
            Dest::Cache(_) | Dest::Store | Dest::Task(..) => Err(Error::invalid(
                "a worker sent a file where only the manager sends",
            )),
        }
    }

    /// Takes one frame of a transfer; Err if the worker broke the protocol.
    fn piece(
        &mut self,
        piece: protocol::Piece,
        settings: &RemoteSettings,
    ) -> crate::error::Result<()> {
        use protocol::Piece;
        let xfer = piece.xfer();
        if self.refused.contains(&xfer) {
            return match piece {
                Piece::Begin { .. } => Err(crate::error::Error::invalid(
                    "a transfer began twice, or too many at once",
                )),
                Piece::End { .. } | Piece::Abort { .. } => {
                    self.refused.remove(&xfer);
                    Ok(())
                }
                _ => Ok(()),
            };
        }
        if let Piece::Begin { dest, .. } = &piece {
            if !self.admit(dest)? {
                if self.receiver.is_open(xfer) || self.refused.len() >= MAX_REFUSED {
                    return Err(crate::error::Error::invalid(
                        "a transfer began twice, or too many at once",
                    ));
                }
                self.refused.insert(xfer);
                return Ok(());
            }
        }
        let Some(arrived) = self.receiver.piece(piece)? else {
            return Ok(());
        };
        settings
            .bytes_received
            .fetch_add(arrived.bytes, Ordering::Relaxed);
        settings
            .transfers
            .received(arrived.took, arrived.outcome.is_ok());
        if let Some(sink) = settings.journal.get() {
            let name = match &arrived.dest {
                Dest::Output(_, _, file) => Some(format!("file-{file}")),
                Dest::Fetched(file) => Some(format!("temp-{file}")),
                _ => None,
            };
            if let (Some(name), true, true) = (
                name,
                arrived.outcome.is_ok(),
                sink.txn_on.load(Ordering::Relaxed),
            ) {
                let took_us = i64::try_from(arrived.took.as_micros()).unwrap_or(i64::MAX);
                let now = super::journal::now_us();
                sink.push(super::journal::Other::Transfer {
                    worker: self.worker,
                    input: false,
                    name,
                    bytes: arrived.bytes,
                    took_us,
                    start_us: now.saturating_sub(took_us),
                });
            }
        }
        let outcome = arrived.outcome.map(|(path, _)| path);
        let old = match arrived.dest {
            Dest::Output(task, attempt, file) => {
                self.outputs.insert((task, attempt, file), outcome)
            }
            Dest::Fetched(file) => self.fetched.insert(file, outcome),
            _ => {
                if let Ok(path) = &outcome {
                    transfer::remove_all(path);
                }
                return Err(crate::error::Error::invalid(
                    "a worker sent a file where only the manager sends",
                ));
            }
        };
        if let Some(Ok(path)) = old {
            transfer::remove_all(&path);
        }
        Ok(())
    }

    /// Gives a report where each output it says was sent arrived. The task
    /// sends no more: what else came of it is dropped.
    fn attach(&mut self, report: &mut TaskReport) {
        let key = (report.id, report.attempt);
        let files = self.expected().outputs.remove(&key).unwrap_or_default();
        for (file_id, status) in &report.outputs {
            let got = match status {
                OutputStatus::Sent => self
                    .outputs
                    .remove(&(report.id, report.attempt, *file_id))
                    .unwrap_or_else(|| Err("it never arrived".into())),
                OutputStatus::Failed(why) => Err(why.clone()),
            };
            report.arrived.push((*file_id, got));
        }
        for file in files {
            if let Some(Ok(path)) = self.outputs.remove(&(key.0, key.1, file)) {
                transfer::remove_all(&path);
            }
        }
    }

    /// The worker answered a request for temp `file_id`.
    fn answered(&mut self, file_id: u64) {
        let mut expected = self.expected();
        if let Some(n) = expected.asked.get_mut(&file_id) {
            *n -= 1;
            if *n == 0 {
                expected.asked.remove(&file_id);
            }
        }
    }
}

impl Drop for Arrivals {
    fn drop(&mut self) {
        let outputs = self.outputs.drain().map(|(_, got)| got);
        for path in outputs
            .chain(self.fetched.drain().map(|(_, got)| got))
            .flatten()
        {
            transfer::remove_all(&path);
        }
    }
}

/// What a worker told about itself when it joined.
struct Joined {
    id: WorkerId,
    resources: Resources,
    functions: Vec<Box<[u8]>>,
    /// Names of the files in its store of files kept forever.
    stored: HashSet<String>,
    /// Features it offers.
    features: Vec<Box<[u8]>>,
    /// Its host name, as it says.
    hostname: String,
    /// When it will end, microseconds since the epoch, if it knows.
    end_us: Option<i64>,
    /// The factory job it runs in, if a factory started it.
    factory_job: Option<String>,
    /// The port it serves files to peers on (0: none).
    transfer_port: u16,
}

/// Why a worker of a blocked host is turned away (it retries; it is not told).
const BLOCKED: &str = "its host is blocked";

/// Runs a worker's handshake: TLS if on, the challenges, the password proofs (bound
/// to the TLS channel when there is one), then registration. A peer that fails
/// is told why (`Refused`) and dropped.
/// How `handshake` ends for a status query it answered.
const STATUS_SERVED: &str = "a status query was answered";

fn handshake(
    sock: TcpStream,
    settings: &RemoteSettings,
    events: &super::inbox::Sender<Message>,
) -> crate::error::Result<(Joined, FrameReader, FrameWriter, TcpStream)> {
    use crate::error::Error;
    let until = Instant::now() + HANDSHAKE_TIMEOUT;
    let tls = settings.tls.get().map(|t| t.accept()).transpose()?;
    let mut h = Handshake::start(sock, tls, until)?;
    let (password, generation) = settings.password();
    let challenge = protocol::challenge();
    h.send(&ToWorker::Hello {
        challenge,
        auth: password.is_some(),
    })?;
    let ToManager::Register {
        proof,
        challenge: theirs,
        status,
    } = h.recv(protocol::MAX_HANDSHAKE_FRAME)?
    else {
        return Err(Error::invalid("the first frame was not Register"));
    };
    let refuse = |h: &mut Handshake, reason: &str, mac: Option<&mut FrameMac>| {
        let _ = h.send_sealed(
            &ToWorker::Refused {
                reason: reason.to_owned(),
            },
            mac,
        );
        crate::channel::close(h.socket());
        Err(Error::invalid(reason.to_owned()))
    };
    let binding = h.binding()?;
    let context = protocol::ProofContext {
        manager: &challenge,
        worker: &theirs,
        binding: &binding,
    };
    let (answer, keys) = match &password {
        Some(pw) => {
            let ok =
                proof.is_some_and(|p| protocol::verify(pw, &context, protocol::ROLE_WORKER, &p));
            if !ok {
                return refuse(&mut h, "wrong or missing password", None);
            }
            // Without TLS, every later frame is authenticated under session keys.
            let keys = (!h.is_tls()).then(|| protocol::session_keys(pw, &challenge, &theirs));
            (
                Some(protocol::prove(pw, &context, protocol::ROLE_MANAGER)),
                keys,
            )
        }
        None => (None, None),
    };
    h.send(&ToWorker::Proved { proof: answer })?;
    if status {
        // Authenticated as a worker would be; answered, and never a worker.
        let (_incoming, mut outgoing, sock) = h.into_session(keys)?;
        let (reply, answer) = super::reply::oneshot();
        let json = match events.send(Message::Status { reply }) {
            Ok(()) => answer
                .recv()
                .unwrap_or_else(|_| r#"{"error":"the manager has stopped"}"#.into()),
            Err(_) => r#"{"error":"the manager has stopped"}"#.into(),
        };
        if outgoing.send(&ToWorker::Status(json)).is_ok() {
            let _ = outgoing.flush();
        }
        drop(outgoing);
        crate::channel::close(&sock);
        return Err(Error::invalid(STATUS_SERVED));
    }
    // From here on, without TLS, frames carry tags under the session's keys.
    let (mut send_mac, mut recv_mac) = match keys {
        Some((s, r)) => (Some(s), Some(r)),
        None => (None, None),
    };
    let ToManager::Details(details) =
        h.recv_sealed(protocol::MAX_HANDSHAKE_FRAME, recv_mac.as_mut())?
    else {
        return Err(Error::invalid("the worker did not describe itself"));
    };
    let protocol::WorkerDetails {
        resources,
        functions,
        hostname,
        stored,
        features,
        time_left_s,
        factory_job,
        transfer_port,
    } = *details;
    let ip = h.socket().peer_addr().ok().map(|a| canonical(a).ip());
    if settings.is_blocked(&hostname, ip) {
        // Dropped without a word, as an unreachable manager: the worker tries
        // again, and joins once the block is lifted.
        crate::channel::close(h.socket());
        return Err(Error::invalid(BLOCKED));
    }
    let (millicores, memory_mb, disk_mb, gpus) = resources;
    if millicores == 0 {
        return refuse(&mut h, "a worker with no cores", send_mac.as_mut());
    }
    let id = settings.next_worker.fetch_add(1, Ordering::Relaxed);
    let timeout_ms = settings.keepalive_timeout_ms.load(Ordering::Relaxed);
    h.send_sealed(
        &ToWorker::Welcome {
            worker_id: id,
            keepalive_ms: keepalive_interval(
                timeout_ms,
                settings.keepalive_interval_ms.load(Ordering::Relaxed),
            ),
            // Over a link authenticated by the password when there is one.
            transfer_token: settings.peers.token,
        },
        send_mac.as_mut(),
    )?;
    let keys = send_mac.zip(recv_mac);
    // The manager sends with the manager-to-worker key.
    let (incoming, outgoing, sock) = h.into_session(keys)?;
    if let Err(e) = settings.register(id, &sock, password.is_some().then_some(generation)) {
        crate::channel::close(&sock);
        return Err(e);
    }
    let functions = functions.into_iter().map(Vec::into_boxed_slice).collect();
    Ok((
        Joined {
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
            features: features
                .into_iter()
                .map(|f| f.into_bytes().into_boxed_slice())
                .collect(),
            hostname,
            // Seconds past any real end are no end at all.
            end_us: time_left_s
                .and_then(|s| i64::try_from(s).ok()?.checked_mul(1_000_000))
                .and_then(|us| crate::task::now_us().checked_add(us)),
            factory_job,
            transfer_port,
        },
        incoming,
        outgoing,
        sock,
    ))
}

/// The content hashes of the inputs workers may fetch from peers, as the
/// manager would send them, each kept with what it was worked out from: a file
/// is read again only once it changed.
#[derive(Default)]
pub(crate) struct ContentHashes {
    table: Mutex<HashTable>,
}

#[derive(Default)]
struct HashTable {
    known: HashMap<u64, KnownHash>,
    /// The entries of files gone are dropped once there are this many.
    prune_at: usize,
}

struct KnownHash {
    file: std::sync::Weak<File>,
    of: Stamp,
    hash: [u8; 32],
}

/// What a content hash was worked out from.
enum Stamp {
    /// A buffer's bytes: the very allocation (a buffer written anew is
    /// another; held weakly, it is never reused for another while here).
    Bytes(std::sync::Weak<[u8]>),
    /// A path: the SHA-256 of the metadata of its tree, and the mode sent.
    Path([u8; 32]),
}

impl Stamp {
    fn of(source: &Source, mode: Option<u32>) -> Option<Stamp> {
        match source {
            Source::Bytes(b) => Some(Stamp::Bytes(Arc::downgrade(b))),
            Source::Path(p) => tree_stamp(p, mode).map(Stamp::Path),
        }
    }

    fn same(&self, other: &Stamp) -> bool {
        match (self, other) {
            (Stamp::Bytes(a), Stamp::Bytes(b)) => std::sync::Weak::ptr_eq(a, b),
            (Stamp::Path(a), Stamp::Path(b)) => a == b,
            _ => false,
        }
    }
}

impl ContentHashes {
    /// The content hash of `file`, whose data the manager has at `source`;
    /// None if it cannot be read.
    pub(crate) fn of(&self, file: &Arc<File>, source: &Source) -> Option<[u8; 32]> {
        let mode = file.delivered_mode();
        let stamp = Stamp::of(source, mode)?;
        {
            let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = table.known.get(&file.id()) {
                if k.of.same(&stamp) {
                    return Some(k.hash);
                }
            }
        }
        let hash = transfer::content_hash(source, mode).ok()?;
        // Kept only if nothing changed while it was read.
        if Stamp::of(source, mode).is_some_and(|after| after.same(&stamp)) {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            if table.known.len() >= table.prune_at {
                table.known.retain(|_, k| k.file.strong_count() > 0);
                table.prune_at = (2 * table.known.len()).max(64);
            }
            table.known.insert(
                file.id(),
                KnownHash {
                    file: Arc::downgrade(file),
                    of: stamp,
                    hash,
                },
            );
        }
        Some(hash)
    }
}

/// The SHA-256 of the metadata of every entry of the tree at `path` (followed
/// if a link, as it is sent) and of `mode`: any change to the tree changes it.
fn tree_stamp(path: &std::path::Path, mode: Option<u32>) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    fn entry(h: &mut Sha256, name: &[u8], m: &std::fs::Metadata) {
        h.update(name);
        h.update([0]);
        for v in [
            m.dev(),
            m.ino(),
            u64::from(m.mode()),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
            m.ctime() as u64,
            m.ctime_nsec() as u64,
        ] {
            h.update(v.to_le_bytes());
        }
    }
    fn below(h: &mut Sha256, dir: &std::path::Path) -> Option<()> {
        let mut names = std::fs::read_dir(dir)
            .ok()?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()
            .ok()?;
        names.sort();
        for name in names {
            let at = dir.join(&name);
            let m = std::fs::symlink_metadata(&at).ok()?;
            entry(h, name.as_bytes(), &m);
            if m.is_dir() {
                below(h, &at)?;
            }
        }
        Some(())
    }
    let mut h = Sha256::new();
    h.update(mode.map_or([0xff; 5], |m| {
        let mut b = [0; 5];
        b[1..].copy_from_slice(&m.to_le_bytes());
        b
    }));
    let m = std::fs::metadata(path).ok()?;
    entry(&mut h, b"", &m);
    if m.is_dir() {
        below(&mut h, path)?;
    }
    Some(h.finalize().into())
}

fn write_loop(
    frames: FrameWriter,
    out: Receiver<Outgoing>,
    mut outbound: Outbound,
    sock: TcpStream,
) {
    let mut buf = frames.buffered(64 * 1024);
    while let Ok(msg) = out.recv() {
        let exit = matches!(msg, Outgoing::Frame(ToWorker::Exit));
        let mut ok = outbound.write(&mut buf, msg).is_ok();
        // Send what queued up together, then flush once.
        while ok {
            match out.try_recv() {
                Ok(m) => ok = outbound.write(&mut buf, m).is_ok(),
                Err(_) => break,
            }
        }
        if !ok || buf.flush().is_err() || exit {
            break;
        }
    }
    let _ = sock.shutdown(Shutdown::Write);
}

/// The manager's end of one remote worker.
pub struct RemoteLink {
    id: WorkerId,
    out: Sender<Outgoing>,
    in_flight: IdMap<Box<Task>>,
    settings: Arc<RemoteSettings>,
    functions: Vec<Box<[u8]>>,
    /// The host name the worker reported.
    hostname: String,
    /// Its address as the manager sees it.
    ip: Option<IpAddr>,
    /// Its connection, to cut it.
    sock: TcpStream,
    /// What the worker holds, shared with the connection's writer thread.
    inventory: Arc<Mutex<Inventory>>,
    /// What it may send, shared with the connection's reader.
    expected: Arc<Mutex<Expected>>,
    /// The features it offers.
    features: Vec<Box<[u8]>>,
    /// Its host name and address, given to the tasks it runs.
    place: Arc<crate::task::Place>,
    /// When it will end, microseconds since the epoch, if it said.
    end_us: Option<i64>,
    /// The factory job it runs in, if a factory started it.
    factory_job: Option<String>,
}

impl RemoteLink {
    /// True if `host` names this worker's host: the host name it reported, or
    /// its address.
    pub(crate) fn is_on(&self, host: &str) -> bool {
        self.hostname == host || self.ip.is_some_and(|ip| ip.to_string() == host)
    }

    /// The name its host is blocked by: the host name it reported.
    pub(crate) fn host_key(&self) -> String {
        self.hostname.clone()
    }

    /// True if the worker's host is blocked now.
    pub(crate) fn is_blocked(&self) -> bool {
        self.settings.is_blocked(&self.hostname, self.ip)
    }

    /// Cuts the connection without telling the worker to exit: it tries to join
    /// again (and is turned away while its host is blocked).
    pub(crate) fn disconnect(&self) {
        // Let go of on purpose (a blocked host, a slow worker): not lost.
        self.settings
            .told_to_exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.id);
        crate::channel::close(&self.sock);
    }

    /// The function names the worker registered.
    pub(crate) fn functions(&self) -> &[Box<[u8]>] {
        &self.functions
    }

    /// The features the worker offers.
    pub(crate) fn features(&self) -> &[Box<[u8]>] {
        &self.features
    }

    /// When the worker will end (microseconds since the epoch), if it said.
    pub(crate) fn end_us(&self) -> Option<i64> {
        self.end_us
    }

    /// The factory job the worker runs in, if a factory started it.
    pub(crate) fn factory_job(&self) -> Option<&str> {
        self.factory_job.as_deref()
    }

    /// The worker's host name and address.
    pub(crate) fn place(&self) -> Arc<crate::task::Place> {
        self.place.clone()
    }

    /// A task sent to the worker and not reported on.
    pub(crate) fn task(&self, id: TaskId) -> Option<&Task> {
        self.in_flight.get(&id).map(|t| &**t)
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

    /// The worker keeps `file_id` in its cache (a temp made or replicated
    /// there, which the manager now has too): a task there is not sent it.
    pub(crate) fn holds_in_cache(&self, file_id: u64) {
        self.inventory().cached.insert(file_id);
    }

    /// Asks the worker for a file it keeps (answered with `RemoteFileData`).
    pub(crate) fn get_file(&self, file_id: u64) {
        *self.expected().asked.entry(file_id).or_insert(0) += 1;
        let _ = self.out.send(Outgoing::Frame(ToWorker::GetFile(file_id)));
    }

    fn expected(&self) -> std::sync::MutexGuard<'_, Expected> {
        self.expected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the worker to fetch a replica of `file_id` from the peer chosen.
    pub(crate) fn replicate(&self, file_id: u64, from: super::peers::Chosen) {
        self.inventory().cached.insert(file_id);
        let _ = self.out.send(Outgoing::Frame(ToWorker::Replicate {
            file_id,
            host: from.host,
            port: from.port,
            source: from.source,
        }));
    }

    /// Tells the worker to exit.
    pub(crate) fn exit(&self) {
        self.settings
            .told_to_exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.id);
        let _ = self.out.send(Outgoing::Frame(ToWorker::Exit));
    }

    /// The task as the worker gets it, and the inputs whose content the writer
    /// thread decides (sending them first if need be).
    fn spec_of(&mut self, task: &Task, temps: &Temps) -> Result<(TaskSpec, Vec<Planned>), String> {
        let work = match &task.work {
            Work::Function { name, input, .. } => WorkSpec::Function {
                name: name.to_bytes().to_vec(),
                input: input.as_slice().to_vec(),
                process: task.mode == crate::task::ExecMode::Process,
            },
            Work::Command { command } => WorkSpec::Command {
                command: command.to_bytes().to_vec(),
                env: command_env(task),
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
            max_stdout: self.settings.max_stdout.load(Ordering::Relaxed),
            inputs: Vec::new(),
            outputs: Vec::new(),
            time_end: task.time_end(),
            monitor: task.flags & (FLAG_MONITOR | FLAG_NO_WATCHDOG),
        };
        let mut planned = Vec::new();
        if let Some(extra) = &task.extra {
            spec.inputs = self.input_specs(&extra.inputs, temps, &[], &mut planned);
            for m in &extra.outputs {
                spec.outputs.push(OutputSpec {
                    file_id: m.file.id(),
                    remote_name: m.remote_name.clone(),
                    // Temps stay where they are made.
                    keep_at_worker: matches!(m.file.kind(), FileKind::Temp),
                    flags: m.flags,
                });
            }
        }
        Ok((spec, planned))
    }
}

impl RemoteLink {
    /// The inputs `mounts` as the worker gets them (those of a mini task at
    /// `nest`, the path of input indices leading to it; `[]` for the task's
    /// own), and the inputs whose content the writer decides.
    fn input_specs(
        &self,
        mounts: &[crate::files::Mount],
        temps: &Temps,
        nest: &[usize],
        planned: &mut Vec<Planned>,
    ) -> Vec<InputSpec> {
        let mut specs = Vec::new();
        for (index, m) in mounts.iter().enumerate() {
            let id = m.file.id();
            let always = m.flags & MOUNT_RESEND != 0;
            let level = m.file.cache_level() as u8;
            let content = match m.file.kind() {
                // Made by the worker itself.
                FileKind::Url(url) => {
                    self.inventory().made.insert(id);
                    InputContent::Url {
                        url: url.clone(),
                        level,
                    }
                }
                FileKind::MiniTask { task, output } => {
                    self.inventory().made.insert(id);
                    let mut inner = nest.to_vec();
                    inner.push(index);
                    let inputs = task
                        .extra
                        .as_ref()
                        .map(|e| self.input_specs(&e.inputs, temps, &inner, planned))
                        .unwrap_or_default();
                    let r = task.request;
                    InputContent::MiniTask {
                        task: Box::new(TaskSpec {
                            id: 0,
                            attempt: 0,
                            work: WorkSpec::Command {
                                command: match &task.work {
                                    Work::Command { command } => command.to_bytes().to_vec(),
                                    _ => b"false".to_vec(),
                                },
                                env: command_env(task),
                            },
                            resources: (r.millicores, r.memory_mb, r.disk_mb, r.gpus),
                            time_max: task.time_max(),
                            max_stdout: self.settings.max_stdout.load(Ordering::Relaxed),
                            time_end: 0,
                            monitor: 0,
                            inputs,
                            outputs: Vec::new(),
                        }),
                        output: output.clone(),
                        level,
                    }
                }
                // A temp this worker keeps is already there.
                _ if temps.held_by(id, self.id) => InputContent::Cached,
                _ => {
                    let source = source(&m.file);
                    let shareable = self.settings.peers.enabled()
                        && m.file.flags() & crate::files::FILE_PEER_NOSHARE == 0
                        && !always;
                    let plan = match m.file.cache_level() {
                        // A temp only workers have comes from one of them, and
                        // stays here as a replica.
                        _ if shareable
                            && source.is_none()
                            && matches!(m.file.kind(), FileKind::Temp) =>
                        {
                            Plan::Keep { always: false }
                        }
                        // A mini task's inputs are kept: it may run again there.
                        CacheLevel::Task if nest.is_empty() => Plan::Once,
                        CacheLevel::Forever
                            if !matches!(m.file.kind(), FileKind::Temp) && !always =>
                        {
                            Plan::Forever
                        }
                        // Kept at the worker: sent once, used by later tasks too.
                        _ => Plan::Keep { always },
                    };
                    planned.push(Planned {
                        nest: nest.to_vec(),
                        index,
                        file: m.file.clone(),
                        shareable: shareable && matches!(plan, Plan::Keep { always: false }),
                        source,
                        plan,
                    });
                    // Decided by the writer when it sends the task.
                    InputContent::Missing
                }
            };
            // A file kept forever is stored under its contents' name alone, with
            // the mode it first came with: the mode it has now is sent too, so
            // that a changed one is what the task sees.
            let mode = m.file.delivered_mode().or_else(|| match m.file.kind() {
                FileKind::Path(p) if m.file.cache_level() == CacheLevel::Forever => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::metadata(p)
                        .ok()
                        .filter(|md| md.is_file())
                        .map(|md| md.permissions().mode() & 0o777)
                }
                _ => None,
            });
            specs.push(InputSpec {
                file_id: id,
                remote_name: m.remote_name.clone(),
                flags: m.flags,
                content,
                mode,
                // Filled in by the writer, for an input a peer may send.
                hash: None,
            });
        }
        specs
    }

    fn inventory(&self) -> std::sync::MutexGuard<'_, Inventory> {
        self.inventory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the worker to delete its copy of `file`, if it may have one (in
    /// its cache, kept as a temp, or made there); true if it was told.
    pub(crate) fn forget_file(&self, file: &File, temps: &Temps) -> bool {
        let id = file.id();
        // The writer thread updates the inventory when it sends the frame, after
        // the tasks queued before it (which may still send the file).
        let held = {
            let inv = self.inventory();
            inv.cached.contains(&id) || inv.made.contains(&id)
        };
        let queued = self.in_flight.values().any(|t| uses(t, id));
        // A temp made or fetched here is in the replica table even once the
        // manager has its own copy (and the temps table has forgotten it).
        let replica = self.settings.peers.holds(id, self.id);
        if held || queued || replica || temps.worker_of(id) == Some(self.id) {
            // No longer counted from now on; a task queued before the frame
            // that sends the file counts it again until the frame is written.
            self.settings.peers.remove(id, self.id);
            let _ = self.out.send(Outgoing::Forget(id));
            return true;
        }
        false
    }

    /// Why an input of attempt `attempt` of `task` (back from this
    /// worker) was not sent, if the manager could not read one; what was
    /// kept for the task is forgotten once asked.
    pub(crate) fn why_unsent(&self, task: &Task, attempt: u32) -> Option<String> {
        // A task without inputs had none to send: the lock is not taken.
        task.extra.as_ref()?;
        let (of, why) = self.inventory().unsent.remove(&task.id)?;
        (of == attempt).then_some(why)
    }

    /// `task` came back from this worker: if it ran with every input in
    /// place, the URL and mini-task files among its inputs (and its mini
    /// tasks'), which the worker made, are held there as replicas while the
    /// worker keeps them (for the workflow or longer) and has not been told
    /// to drop them since.
    pub(crate) fn made_inputs_kept(&self, task: &Task) {
        if task.extra.is_none()
            || !task.was_started()
            || matches!(
                task.result,
                TaskResult::InputMissing | TaskResult::Cancelled
            )
        {
            return;
        }
        fn walk(link: &RemoteLink, inv: &Inventory, task: &Task) {
            let Some(extra) = &task.extra else { return };
            for m in &extra.inputs {
                let made = match m.file.kind() {
                    FileKind::Url(_) => true,
                    FileKind::MiniTask { task, .. } => {
                        walk(link, inv, task);
                        true
                    }
                    _ => false,
                };
                let id = m.file.id();
                if made && m.file.cache_level() != CacheLevel::Task && inv.made.contains(&id) {
                    link.settings.peers.add(id, link.id);
                }
            }
        }
        walk(self, &self.inventory(), task);
    }
}

/// Whether `task` has file `id` among its inputs (or its mini tasks' inputs).
fn uses(task: &Task, id: u64) -> bool {
    task.extra.as_ref().is_some_and(|e| {
        e.inputs.iter().any(|m| {
            m.file.id() == id
                || matches!(m.file.kind(), FileKind::MiniTask { task, .. } if uses(task, id))
        })
    })
}

/// A command task's environment as the wire carries it.
fn command_env(task: &Task) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    task.extra
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
        .unwrap_or_default()
}

/// Unlike the local pool, a remote link describes each task to its worker,
/// which takes the manager's table of temps (an input this worker keeps is not
/// sent): the manager thread calls these directly, not as a `WorkerLink`.
impl RemoteLink {
    /// Hands over tasks (already placed on this worker by the scheduler).
    pub(crate) fn dispatch(&mut self, tasks: &mut Vec<Box<Task>>, temps: &Temps) {
        for mut task in tasks.drain(..) {
            empty_watched_outputs(&task);
            match self.spec_of(&task, temps) {
                Ok((spec, planned)) => {
                    // The outputs it may send back, known before it can.
                    let outputs = spec.outputs.iter().map(|o| o.file_id).collect();
                    self.expected()
                        .outputs
                        .insert((spec.id, spec.attempt), outputs);
                    let _ = self.out.send(Outgoing::Run(Box::new(spec), planned));
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

    /// Stops task `id` if the worker has it; it comes back marked cancelled.
    pub(crate) fn cancel(&mut self, id: TaskId) {
        self.stop(id, false);
    }

    /// Stops task `id` at the worker: cancels it, or when `end_time` stops it
    /// at its end time.
    pub(crate) fn stop(&mut self, id: TaskId, end_time: bool) {
        let frame = if end_time {
            ToWorker::EndTime(id)
        } else {
            ToWorker::Cancel(id)
        };
        let _ = self.out.send(Outgoing::Frame(frame));
    }
}

/// Empties the declared files of `task`'s `VINE_WATCH` outputs as it goes to
/// its worker (emptied, not removed, so a reader following one keeps it): what
/// they show from then on is this run's.
fn empty_watched_outputs(task: &Task) {
    let Some(extra) = &task.extra else { return };
    for m in &extra.outputs {
        if m.flags & crate::files::MOUNT_WATCH != 0 {
            if let FileKind::Path(dest) = m.file.kind() {
                let _ = crate::worker::watch::write_update(dest, 0, &[]);
            }
        }
    }
}

/// Where the manager has an input's data (read later, by the writer thread).
fn source(file: &File) -> Option<Source> {
    match file.kind() {
        FileKind::Path(p) => Some(Source::Path(p.clone())),
        FileKind::Buffer => file.contents().map(Source::Bytes),
        FileKind::Temp => file.temp_location().map(Source::Path),
        FileKind::Url(_) | FileKind::MiniTask { .. } => None,
    }
}

/// Copies a worker's report into the task it is about, and the output files to
/// where they were declared. Returns false if the report is stale (another attempt).
pub(crate) fn apply_report(
    task: &mut Task,
    mut report: TaskReport,
    temp_root: &std::path::Path,
    cancelled: bool,
) -> bool {
    // Of another attempt: nothing of it is kept. Of a task cancelled
    // meanwhile (which comes back cancelled): what it wrote is not stored, so
    // a file it declared keeps what it held.
    let stale = report.attempt != task.attempts;
    if stale || cancelled {
        for (_, arrived) in std::mem::take(&mut report.arrived) {
            if let Ok(path) = arrived {
                transfer::remove_all(&path);
            }
        }
    }
    if stale {
        return false;
    }
    task.exit_code = report.exit_code;
    task.output = report.output;
    // The worker's word: never before the epoch, never ending before it began.
    let started = report.started.max(0);
    let done = report.done.max(started);
    task.times.started = started;
    task.times.done = done;
    task.times.execute = task.times.execute.saturating_add(done - started);
    if report.measured.is_some() || task.extra.as_ref().is_some_and(|e| e.measured.is_some()) {
        task.extra_mut().measured = report.measured.map(Measured::bounded);
    }
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
    if report.unkept {
        task.flags |= crate::task::FLAG_UNKEPT;
    }
    for (file_id, arrived) in report.arrived {
        let m = task
            .extra
            .as_ref()
            .and_then(|e| e.outputs.iter().find(|m| m.file.id() == file_id));
        let Some(m) = m else {
            if let Ok(path) = arrived {
                transfer::remove_all(&path);
            }
            continue;
        };
        let stored = arrived.and_then(|path| store_output(&m.file, &path, temp_root));
        if let Err(e) = stored {
            // A result that already says the task failed stays.
            if matches!(result, TaskResult::Success | TaskResult::StdoutMissing) {
                result = TaskResult::OutputMissing;
                reason = Some(format!("cannot store output {}: {e}", m.remote_name));
            }
        }
    }
    task.finish(result, reason);
    true
}

/// Puts an output that arrived at `path` where it was declared, as a local
/// worker would have: moved to its path, read into its buffer, or kept as a temp.
fn store_output(
    file: &File,
    path: &std::path::Path,
    temp_root: &std::path::Path,
) -> Result<(), String> {
    let stored = match file.kind() {
        FileKind::Path(dest) => {
            crate::worker::sandbox::move_file(path, dest).map_err(|e| e.to_string())
        }
        FileKind::Buffer => std::fs::read(path)
            .map(|data| file.set_contents(data))
            .map_err(|e| e.to_string()),
        // Sent back only when asked for; normally kept at the worker.
        FileKind::Temp => return keep_temp(file, path, temp_root),
        FileKind::Url(_) | FileKind::MiniTask { .. } => {
            Err("a URL or mini-task file cannot be an output".into())
        }
    };
    transfer::remove_all(path);
    stored
}

/// Keeps what arrived at `path` as temp `file`'s data, under `temp_root` in a
/// name of its own (never at a staging path that a later transfer reuses).
pub(crate) fn keep_temp(
    file: &File,
    path: &std::path::Path,
    temp_root: &std::path::Path,
) -> Result<(), String> {
    let dest = temp_root.join(file.id().to_string());
    transfer::remove_all(&dest);
    crate::worker::sandbox::move_file(path, &dest)
        .map(|()| file.set_temp_location(dest))
        .map_err(|e| e.to_string())
}

/// The interval a worker is told to send keepalives at: the one set, else a
/// quarter of the timeout; never more than half the timeout, so that one late
/// keepalive does not lose a live worker. With no timeout (0), the one set,
/// else the worker's own.
fn keepalive_interval(timeout_ms: u64, set_ms: u64) -> u64 {
    if timeout_ms == 0 {
        return if set_ms == 0 { u64::MAX } else { set_ms };
    }
    let auto = timeout_ms / 4;
    let chosen = if set_ms == 0 { auto } else { set_ms };
    chosen.min(timeout_ms / 2).max(1)
}

#[cfg(test)]
mod test {
    use super::{keepalive_interval, RemoteSettings, MAX_PENDING, MAX_PENDING_PER_HOST};

    #[test]
    fn handshakes_are_capped_per_host_and_in_all() {
        let s = RemoteSettings::new();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let mut held: Vec<_> = (0..MAX_PENDING_PER_HOST)
            .map(|_| s.admit(a).expect("under the cap"))
            .collect();
        assert!(s.admit(a).is_none(), "one host is capped");
        held.pop();
        held.push(s.admit(a).expect("a freed slot is reused"));
        // Other hosts still get in, up to the total.
        let mut n = MAX_PENDING_PER_HOST;
        for host in 2u8.. {
            let ip = std::net::IpAddr::from([10, 0, 0, host]);
            while n < MAX_PENDING {
                match s.admit(ip) {
                    Some(slot) => {
                        held.push(slot);
                        n += 1;
                    }
                    None => break,
                }
            }
            if n >= MAX_PENDING {
                break;
            }
        }
        assert!(
            s.admit("10.0.1.1".parse().unwrap()).is_none(),
            "the total is capped"
        );
        held.clear();
        assert!(s.pending.lock().unwrap().is_empty(), "every slot is freed");
    }

    #[test]
    fn workers_are_told_the_interval_set_within_half_the_timeout() {
        assert_eq!(keepalive_interval(30_000, 0), 7_500, "a quarter by default");
        assert_eq!(keepalive_interval(30_000, 2_000), 2_000);
        assert_eq!(
            keepalive_interval(0, 0),
            u64::MAX,
            "no timeout: the worker's own"
        );
        assert_eq!(keepalive_interval(0, 2_000), 2_000);
        assert_eq!(keepalive_interval(30_000, 60_000), 15_000, "at most half");
        assert_eq!(keepalive_interval(1, 0), 1, "never zero");
    }
}
