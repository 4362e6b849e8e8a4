//! The wire protocol between a manager and its remote workers.
//!
//! Every message is one frame: an 8-byte header (`b"VN"`, the protocol version as
//! a little-endian u16, the payload length as a little-endian u32) and a bincode
//! payload. Frames longer than [`MAX_FRAME`] are refused before anything is
//! allocated, and decoding is bounded by the frame's length, so no length field
//! inside a payload can make the reader allocate more than the frame holds. A frame
//! that is malformed, too long or of another version is an error for that
//! connection only.
//!
//! Authentication is by challenge and HMAC-SHA256 in both directions: each side
//! sends a random challenge and proves it knows the password by an HMAC of both
//! challenges and of the TLS channel when there is one. The password never crosses
//! the wire, and a worker runs nothing for a manager that did not prove itself.
//! The handshake runs `Hello` (manager), `Register` (worker: its proof and
//! challenge only), `Proved` (manager: its proof), `Details` (worker: what it is
//! and offers, sent only once the manager's proof holds, so a party posing as
//! the manager learns nothing of it) and `Welcome` (or `Refused`). From
//! `Details` on, frames of a connection without TLS carry an HMAC under keys
//! derived from the password and both challenges (see [`session_keys`]); until
//! the session starts, frames are held to [`MAX_HANDSHAKE_FRAME`].

use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, ErrorKind, Result};

/// The protocol version; both ends must speak the same.
pub const VERSION: u16 = 13;
/// The largest payload accepted.
pub const MAX_FRAME: u32 = 256 << 20;

/// The most bytes of a function task's input, or of its output, that travel
/// between the manager and a remote worker: a frame carries them with the
/// rest of the task (for a function task, a few hundred bytes; a megabyte is
/// left for them).
pub const MAX_TASK_BYTES: usize = (MAX_FRAME as usize) - (1 << 20);
/// The largest payload accepted from a peer that has not authenticated yet: a
/// stranger cannot make the manager allocate more than this per connection.
pub const MAX_HANDSHAKE_FRAME: u32 = 1 << 20;
const MAGIC: [u8; 2] = *b"VN";

/// A random challenge.
pub type Challenge = [u8; 32];
/// An HMAC-SHA256 proof.
pub type Proof = [u8; 32];

/// A task as a worker needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskSpec {
    /// Task id.
    pub id: u64,
    /// Attempt number (1 = first).
    pub attempt: u32,
    /// What to run.
    pub work: WorkSpec,
    /// Cores (thousandths), memory MB, disk MB, gpus.
    pub resources: (u64, u64, u64, u32),
    /// Maximum wall time in seconds (0 = none).
    pub time_max: f64,
    /// Bytes of command output kept (the manager's `max-stdout`).
    pub max_stdout: u64,
    /// Inputs: files the worker has in its cache (sent in a transfer if not).
    pub inputs: Vec<InputSpec>,
    /// Outputs the worker sends back (or keeps, for temps).
    pub outputs: Vec<OutputSpec>,
    /// The task's end time, microseconds since the epoch (0 = none): not started
    /// after it, killed at it.
    #[serde(default)]
    pub time_end: i64,
    /// Whether to measure what it uses, and whether it runs without the
    /// watchdog: the task's `FLAG_MONITOR` and `FLAG_NO_WATCHDOG` bits.
    #[serde(default)]
    pub monitor: u16,
}

/// What a remote task runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum WorkSpec {
    /// A function registered by name at the worker.
    Function {
        /// Registered name.
        name: Vec<u8>,
        /// Input bytes.
        input: Vec<u8>,
        /// Run it in a separate process.
        process: bool,
    },
    /// A shell command.
    Command {
        /// Command line.
        command: Vec<u8>,
        /// Environment: (name, value or None to unset).
        env: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
}

/// An input file of a remote task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputSpec {
    /// The file's id at the manager (its name in the worker's cache).
    pub file_id: u64,
    /// Name inside the sandbox.
    pub remote_name: String,
    /// Mount flags.
    pub flags: u32,
    /// Where the data is.
    pub content: InputContent,
    /// The permission bits it has in the sandbox (`vine_file_set_mode`), if
    /// set; else those it came with.
    #[serde(default)]
    pub mode: Option<u32>,
    /// The content hash (as a transfer's `End` carries it: the SHA-256 of a
    /// file's bytes, or of a directory's records) the data must have, when the
    /// manager knows it: a declared file or buffer, as the manager would send
    /// it. A worker that fetches the input from a peer
    /// ([`InputContent::Peer`]) takes nothing else: what hashes otherwise is a
    /// failed fetch. None for a temp, which the manager never saw: a peer's
    /// copy of one is trusted as the worker that made it.
    #[serde(default)]
    pub hash: Option<[u8; 32]>,
}

/// Where a remote task finds an input's data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum InputContent {
    /// In the worker's cache under the file id (sent earlier to [`Dest::Cache`]).
    Cached,
    /// Sent just before the task, to [`Dest::Task`]: for this task only.
    Sent,
    /// The manager could not read it: the task fails with INPUT_MISSING.
    Missing,
    /// In the worker's store of files kept forever, under this name (sent earlier
    /// to [`Dest::Store`], or there since an earlier worker put it there).
    Stored(String),
    /// Fetched by the worker from another worker of the same manager (a peer),
    /// into its cache under the file id; then as [`InputContent::Cached`]. A
    /// fetch that fails, or brings data whose hash is not the input's
    /// [`InputSpec::hash`], is reported (`ToManager::PeerFetched`) and the task
    /// comes back as an input lost, to be sent again.
    Peer {
        /// The peer's transfer address as the manager sees it (host or IP).
        host: String,
        /// Its transfer port.
        port: u16,
        /// Its worker id at the manager.
        source: u32,
    },
    /// Downloaded by the worker from this URL, and kept as the cache level
    /// (`CacheLevel` code) allows.
    Url {
        /// The URL.
        url: String,
        /// Its cache level's code.
        level: u8,
    },
    /// Made by the worker by running a task and taking its output `output`,
    /// kept as the cache level allows.
    MiniTask {
        /// The task (its id unused; its outputs none), whose inputs may be
        /// made by mini tasks in turn, at most [`MAX_MINI_TASK_DEPTH`] deep.
        #[serde(deserialize_with = "nested_task")]
        task: Box<TaskSpec>,
        /// The name of its output in its sandbox.
        output: String,
        /// Its cache level's code.
        level: u8,
    },
}

/// The deepest a mini task may be made from inputs made by mini tasks, in
/// turn (1: its inputs are no mini tasks). A frame nesting them deeper is
/// refused when decoded, before the recursion could run out of stack.
pub const MAX_MINI_TASK_DEPTH: u32 = 16;

thread_local! {
    /// The mini tasks being decoded on this thread, one inside the other.
    static MINI_TASK_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Decodes a mini task's task, refusing one nested deeper than
/// [`MAX_MINI_TASK_DEPTH`].
fn nested_task<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Box<TaskSpec>, D::Error> {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            MINI_TASK_DEPTH.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    let depth = MINI_TASK_DEPTH.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let _leave = Leave;
    if depth > MAX_MINI_TASK_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "mini tasks nested more than {MAX_MINI_TASK_DEPTH} deep"
        )));
    }
    Box::<TaskSpec>::deserialize(d)
}

/// An output file of a remote task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputSpec {
    /// The file's id at the manager.
    pub file_id: u64,
    /// Name inside the sandbox.
    pub remote_name: String,
    /// A temp: keep it in the worker's cache instead of sending it back.
    pub keep_at_worker: bool,
    /// Its `MOUNT_*` flags (`MOUNT_MKDIR`: made before the task runs).
    #[serde(default)]
    pub flags: u32,
}

/// What became of a remote task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskReport {
    /// Task id.
    pub id: u64,
    /// Attempt it reports on.
    pub attempt: u32,
    /// `TaskResult` code.
    pub result: i32,
    /// Exit code.
    pub exit_code: i32,
    /// Function output.
    pub output: Vec<u8>,
    /// Command output.
    pub stdout: Option<Vec<u8>>,
    /// Failure reason.
    pub reason: Option<String>,
    /// Start and end, microseconds since the epoch.
    pub started: i64,
    /// End.
    pub done: i64,
    /// Output files the worker tried to send back, each in a transfer to
    /// [`Dest::Output`] before this report: (file id, what became of it).
    pub outputs: Vec<(u64, OutputStatus)>,
    /// Inputs the worker should have had but found missing or damaged: the
    /// manager sends them again to the next task that needs them.
    pub lost: Vec<Held>,
    /// The temps among its outputs that the worker holds in its cache after
    /// the task (what its outcome and the outputs' flags returned), by file id.
    pub kept: Vec<u64>,
    /// Where each sent output arrived at the manager, or why it did not: filled by
    /// the manager's connection thread, never on the wire.
    #[serde(skip)]
    pub arrived: Vec<(u64, std::result::Result<std::path::PathBuf, String>)>,
    /// What the attempt used, when it was monitored.
    #[serde(default)]
    pub measured: Option<crate::resources::Measured>,
    /// An input sent to this worker could not be kept there (its disk is
    /// full, say): the task is better run on another worker.
    pub unkept: bool,
}

/// What became of one output a worker sends back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum OutputStatus {
    /// Sent in a transfer that ended before the report.
    Sent,
    /// Could not be sent; why.
    Failed(String),
}

/// A copy of an input a worker keeps between tasks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Held {
    /// In its cache, by file id.
    Cached(u64),
    /// In its store of files kept forever, by content name.
    Stored(String),
}

/// Where a transfer goes (see [`Piece`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Dest {
    /// Into the worker's cache under this file id, for later tasks too.
    Cache(u64),
    /// Into the worker's store of files kept forever, under the content name of
    /// what arrives (a regular file only).
    Store,
    /// For one task only: (task id, attempt, file id).
    Task(u64, u32, u64),
    /// An output of a task, back to the manager: (task id, attempt, file id).
    Output(u64, u32, u64),
    /// A file kept at the worker, sent back on `GetFile`.
    Fetched(u64),
}

/// One frame of a file or directory tree on its way (see `transfer.rs`). A
/// transfer is `Begin`, one root entry (`File` or `Dir` with an empty path), for
/// a directory the entries inside it (each after its parent directory), the data
/// of each file in `Data` chunks right after its entry, then `End` or `Abort`.
/// Transfers carry an id, so the frames of several may interleave on one
/// connection, and no frame holds more than one chunk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Piece {
    /// A transfer starts.
    Begin {
        /// Transfer id, unique on this connection and direction.
        xfer: u64,
        /// Where it goes.
        dest: Dest,
    },
    /// A directory (path relative to the root; empty for the root).
    Dir {
        /// Transfer id.
        xfer: u64,
        /// Relative path.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// A regular file; its data follows.
    File {
        /// Transfer id.
        xfer: u64,
        /// Relative path.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link inside a directory.
    Link {
        /// Transfer id.
        xfer: u64,
        /// Relative path.
        path: String,
        /// What it points to.
        target: Vec<u8>,
    },
    /// The next bytes of the current file.
    Data {
        /// Transfer id.
        xfer: u64,
        /// At most `transfer::CHUNK` bytes.
        bytes: Vec<u8>,
    },
    /// The transfer is complete: the content hash of everything sent.
    End {
        /// Transfer id.
        xfer: u64,
        /// SHA-256 of a file's bytes, or of a directory's records.
        hash: [u8; 32],
    },
    /// The sender could not finish: what arrived is dropped.
    Abort {
        /// Transfer id.
        xfer: u64,
        /// Why.
        reason: String,
    },
}

impl Piece {
    /// The transfer this frame belongs to.
    pub fn xfer(&self) -> u64 {
        match self {
            Piece::Begin { xfer, .. }
            | Piece::Dir { xfer, .. }
            | Piece::File { xfer, .. }
            | Piece::Link { xfer, .. }
            | Piece::Data { xfer, .. }
            | Piece::End { xfer, .. }
            | Piece::Abort { xfer, .. } => *xfer,
        }
    }
}

/// Manager to worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ToWorker {
    /// First frame: the manager's challenge, and whether it wants a password.
    Hello {
        /// Random challenge the worker must answer.
        challenge: Challenge,
        /// True if the manager requires authentication.
        auth: bool,
    },
    /// Reply to `Register`: the worker proved the password (or none is
    /// needed); the manager's answer to the worker's challenge. The worker
    /// describes itself (`Details`) only once this proof holds, so a party
    /// posing as the manager learns nothing about it.
    Proved {
        /// The manager's answer to the worker's challenge.
        proof: Option<Proof>,
    },
    /// Reply to `Details`: the worker is accepted.
    Welcome {
        /// The id the manager gave it.
        worker_id: u32,
        /// How often the worker must send a keepalive, milliseconds: a fraction of
        /// the silence after which the manager declares it lost.
        keepalive_ms: u64,
        /// This manager run's random transfer token: with the password, if
        /// there is one, what a peer of the same manager proves it knows (see
        /// [`peer_key`]).
        transfer_token: [u8; 32],
    },
    /// Part of a file or directory sent to the worker.
    Xfer(Piece),
    /// Run a task.
    Run(Box<TaskSpec>),
    /// Stop a task.
    Cancel(u64),
    /// Send back a file kept in the cache (a temp): a transfer to
    /// [`Dest::Fetched`], then `FileData`.
    GetFile(u64),
    /// Still here.
    Keepalive,
    /// Exit now.
    Exit,
    /// The manager will not take this worker (wrong or missing password, no
    /// cores): the worker gives up rather than try again.
    Refused {
        /// Why.
        reason: String,
    },
    /// Delete the worker's copy of this file (cached, or made there), now or,
    /// if tasks are using it, once they are done.
    Forget(u64),
    /// The answer to a status query (`vine_status`): the manager's state as
    /// JSON. The connection ends after it.
    Status(String),
    /// Fetch a copy of this file from the peer named into the cache (a temp
    /// replicated for `temp-replica-count`); answered with `PeerFetched`.
    Replicate {
        /// File id.
        file_id: u64,
        /// The peer's transfer address.
        host: String,
        /// Its transfer port.
        port: u16,
        /// Its worker id.
        source: u32,
    },
    /// The end time of this task passed (by the manager's clock): stop it as
    /// one killed at its end time (see `Cancel` for a cancel).
    EndTime(u64),
}

/// Worker to manager.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ToManager {
    /// Reply to `Hello`: the worker's proof and challenge, and nothing that
    /// describes it.
    Register {
        /// Answer to the manager's challenge.
        proof: Option<Proof>,
        /// The worker's own challenge.
        challenge: Challenge,
        /// Not a worker: `vine_status` asking for the manager's state, once
        /// authenticated as a worker would be.
        #[serde(default)]
        status: bool,
    },
    /// Reply to `Proved`, once the manager proved the password: what the
    /// worker is and offers.
    Details(Box<WorkerDetails>),
    /// A task finished (or was cancelled).
    Done(Box<TaskReport>),
    /// Still here.
    Keepalive,
    /// Part of a file or directory sent to the manager.
    Xfer(Piece),
    /// The answer to `GetFile`, after the transfer of the file if there was one.
    FileData {
        /// File id.
        file_id: u64,
        /// Why it could not be sent, if it could not.
        error: Option<String>,
    },
    /// What a running task appended to an output it watches (`VINE_WATCH`).
    Watch(Box<WatchUpdate>),
    /// A fetch from a peer ([`InputContent::Peer`]) ended: how many bytes came,
    /// or why it failed. Sent before the report of the task that needed it.
    PeerFetched {
        /// File id.
        file_id: u64,
        /// The worker id of the peer it came (or failed to come) from.
        source: u32,
        /// Bytes received.
        bytes: u64,
        /// Microseconds it took.
        took_us: u64,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// The worker leaves of its own accord (its wall time passed), and says
    /// so before it closes the connection: an expected departure, not a
    /// lost worker. Its tasks go back to the manager with it.
    Leaving {
        /// Why, for the manager's logs.
        reason: String,
    },
}

/// What a worker is and offers, sent once the manager proved the password.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerDetails {
    /// What the worker offers: cores (thousandths), memory MB, disk MB, gpus.
    pub resources: (u64, u64, u64, u32),
    /// Function names registered at the worker, as registered (a name need
    /// not be UTF-8; encoded as a string is, so older peers read valid ones).
    pub functions: Vec<Vec<u8>>,
    /// Host name, for logs.
    pub hostname: String,
    /// Names of the files in its store of files kept forever.
    pub stored: Vec<String>,
    /// Features it offers (`--feature`): tasks that require them may run here.
    pub features: Vec<String>,
    /// Whole seconds it has left to live, as of this message, when it knows
    /// (`--wall-time`, or its Slurm job's end): a duration rather than a time,
    /// so that the manager needs no clock agreement with the worker's host.
    pub time_left_s: Option<u64>,
    /// The factory job it runs in, when a factory started it.
    pub factory_job: Option<String>,
    /// The port the worker serves its files to peers on (0: none).
    pub transfer_port: u16,
}

/// A transfer between two workers of one manager, on the serving worker's
/// transfer port. The server speaks first (`Hello`); the fetching peer answers
/// with its own challenge, its proof and the file it wants (`Ask`); the server
/// answers with its proof (`Welcome`) or `Refused`, then sends the file as one
/// transfer (`Xfer` pieces) and closes. After `Welcome` every frame carries an
/// HMAC under session keys derived as for a manager link (see [`session_keys`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum PeerMsg {
    /// Server: its challenge.
    Hello {
        /// Challenge the fetching peer must answer.
        challenge: Challenge,
    },
    /// Fetching peer: its challenge, its proof, and the file wanted.
    Ask {
        /// Its challenge.
        challenge: Challenge,
        /// Proof of the peer key ([`ROLE_PEER_FETCH`]).
        proof: Proof,
        /// The file id at the manager.
        file_id: u64,
    },
    /// Server: accepted; its own proof ([`ROLE_PEER_SERVE`]).
    Welcome {
        /// Proof of the peer key.
        proof: Proof,
    },
    /// Server: not served, and why.
    Refused {
        /// Why.
        reason: String,
    },
    /// A piece of the file.
    Xfer(Piece),
}

/// The largest password file read, in bytes.
pub const PASSWORD_FILE_MAX: u64 = 64 * 1024;

/// A password from its file: the file's bytes less trailing white space; never
/// empty (an empty password would let anyone in, so it is refused, on the
/// manager's side and the worker's alike). Only a regular file of at most
/// [`PASSWORD_FILE_MAX`] bytes is read: a device or a FIFO would never end
/// (or never open).
pub fn read_password(path: &std::path::Path) -> crate::error::Result<Vec<u8>> {
    use crate::error::Error;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::io(path.display(), e);
    // Opened without waiting for a writer, should it be a FIFO.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(Error::invalid(format!(
            "password file {} is not a regular file",
            path.display()
        )));
    }
    let mut pw = Vec::new();
    file.take(PASSWORD_FILE_MAX + 1)
        .read_to_end(&mut pw)
        .map_err(io)?;
    if pw.len() as u64 > PASSWORD_FILE_MAX {
        return Err(Error::invalid(format!(
            "password file {} is larger than {PASSWORD_FILE_MAX} bytes",
            path.display()
        )));
    }
    while pw.last().is_some_and(|b| b.is_ascii_whitespace()) {
        pw.pop();
    }
    if pw.is_empty() {
        return Err(Error::invalid(format!(
            "password file {} is empty",
            path.display()
        )));
    }
    Ok(pw)
}

/// The key peers prove they know: the password, when the manager has one, and
/// the manager run's transfer token, handed to each worker at `Welcome` over its
/// authenticated link. A worker of another manager (or of an earlier run of
/// this one) does not know the token; a stranger without the password cannot
/// join to learn it.
pub fn peer_key(password: Option<&[u8]>, token: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(b"vine peers\0");
    key.extend_from_slice(token);
    if let Some(pw) = password {
        key.extend_from_slice(pw);
    }
    key
}

/// Role of a peer fetching a file (see [`ROLE_WORKER`]).
pub const ROLE_PEER_FETCH: &[u8] = b"vine-peer-fetch";
/// Role of a worker serving a file to a peer.
pub const ROLE_PEER_SERVE: &[u8] = b"vine-peer-serve";

/// Bytes of a watched output of a running task: the file at the manager gets
/// them at `offset` and ends after them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchUpdate {
    /// Task id.
    pub id: u64,
    /// Attempt.
    pub attempt: u32,
    /// The output's name in the sandbox.
    pub remote_name: String,
    /// Where the bytes go in the file.
    pub offset: u64,
    /// The bytes (at most [`WATCH_CHUNK`]).
    pub bytes: Vec<u8>,
}

/// The most bytes of a watched output sent in one frame.
pub const WATCH_CHUNK: usize = 1 << 20;

/// The name a file kept forever has in workers' stores: the SHA-256 of its
/// contents in lowercase hex, so that a later manager declaring the same contents
/// finds it there.
pub fn content_name(data: &[u8]) -> String {
    use sha2::Digest;
    hex_name(&Sha256::digest(data).into())
}

/// A SHA-256 as a content name (lowercase hex).
pub fn hex_name(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` can be a [`content_name`]: only such names are used as paths.
pub fn is_content_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Per-direction key and sequence number of an authenticated session (see
/// [`session_keys`]): every frame carries the HMAC-SHA256 of its sequence number,
/// header and payload, so a frame cannot be forged, altered, reordered or replayed
/// by anyone without the password.
pub struct FrameMac {
    key: [u8; 32],
    seq: u64,
}

impl FrameMac {
    fn tag(&self, header: &[u8], payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length works");
        mac.update(&self.seq.to_le_bytes());
        mac.update(header);
        mac.update(payload);
        mac
    }
}

/// The length of a frame's authentication tag, after its payload.
const TAG_LEN: usize = 32;

/// The frame keys of a session: (manager to worker, worker to manager), derived with
/// HKDF-SHA256 from the password and both challenges, so every session has its own.
pub fn session_keys(
    password: &[u8],
    manager_challenge: &Challenge,
    worker_challenge: &Challenge,
) -> (FrameMac, FrameMac) {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(manager_challenge);
    salt[32..].copy_from_slice(worker_challenge);
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&salt), password);
    let key = |info: &[u8]| {
        let mut k = [0u8; 32];
        hk.expand(info, &mut k)
            .expect("32 bytes is a valid HKDF length");
        FrameMac { key: k, seq: 0 }
    };
    (
        key(b"vine frames manager to worker"),
        key(b"vine frames worker to manager"),
    )
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<()> {
    write_frame_sealed(w, msg, None)
}

/// Writes one frame, followed by its tag when the session is authenticated.
pub fn write_frame_sealed<T: Serialize>(
    w: &mut impl Write,
    msg: &T,
    mac: Option<&mut FrameMac>,
) -> Result<()> {
    let mut frame = vec![0u8; 8];
    bincode::serialize_into(&mut frame, msg)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot encode a frame: {e}")))?;
    let payload_len = frame.len() - 8;
    let len = u32::try_from(payload_len)
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or_else(|| {
            Error::invalid(format!("a frame of {payload_len} bytes is over the limit"))
        })?;
    frame[..2].copy_from_slice(&MAGIC);
    frame[2..4].copy_from_slice(&VERSION.to_le_bytes());
    frame[4..8].copy_from_slice(&len.to_le_bytes());
    if let Some(mac) = mac {
        let tag = mac.tag(&frame[..8], &frame[8..]).finalize().into_bytes();
        mac.seq += 1;
        frame.extend_from_slice(&tag);
    }
    w.write_all(&frame)
        .map_err(|e| Error::io("sending a frame", e))
}

/// Reads one frame; any malformation is an error (the caller drops the connection).
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T> {
    read_frame_within(r, MAX_FRAME, None)
}

/// Reads one frame of at most `limit` bytes, checking its tag when the session is
/// authenticated. Nothing is allocated for a frame over the limit.
pub fn read_frame_within<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
    limit: u32,
    mac: Option<&mut FrameMac>,
) -> Result<T> {
    let mut header = [0u8; 8];
    r.read_exact(&mut header)
        .map_err(|e| Error::io("reading a frame", e))?;
    if header[..2] != MAGIC {
        if header[..2] == [0x16, 0x03] {
            // A TLS record carrying a handshake message: a ClientHello.
            return Err(Error::invalid(
                "not a vine frame but the start of a TLS handshake: the other side uses TLS \
                 and this one does not (a worker started with --ssl against a manager made by \
                 vine_create, not vine_ssl_create?)",
            ));
        }
        return Err(Error::invalid("not a vine frame (bad magic)"));
    }
    let version = u16::from_le_bytes([header[2], header[3]]);
    if version != VERSION {
        return Err(Error::invalid(format!(
            "protocol version {version}, expected {VERSION}"
        )));
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > limit.min(MAX_FRAME) {
        return Err(Error::invalid(format!(
            "a frame of {len} bytes is over the limit"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)
        .map_err(|e| Error::io("reading a frame", e))?;
    if let Some(mac) = mac {
        let mut tag = [0u8; TAG_LEN];
        r.read_exact(&mut tag)
            .map_err(|e| Error::io("reading a frame", e))?;
        mac.tag(&header, &payload)
            .verify_slice(&tag)
            .map_err(|_| Error::invalid("a frame failed authentication"))?;
        mac.seq += 1;
    }
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(u64::from(len))
        .deserialize(&payload)
        .map_err(|e| Error::invalid(format!("a frame does not decode: {e}")))
}

/// A fresh random challenge.
pub fn challenge() -> Challenge {
    let mut c = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut c).is_ok() {
            return c;
        }
    }
    // /dev/urandom missing: mix the clock and addresses; weaker, but never fixed.
    let seed = format!(
        "{:?}{:p}{}",
        std::time::SystemTime::now(),
        &c,
        std::process::id()
    );
    let mut h =
        <Hmac<Sha256> as Mac>::new_from_slice(seed.as_bytes()).expect("any key length works");
    h.update(b"vine challenge");
    c.copy_from_slice(&h.finalize().into_bytes());
    c
}

/// What a proof covers: who says it, both challenges, and the TLS channel it is
/// said on (empty without TLS), so that it is good for this one connection only.
pub struct ProofContext<'a> {
    /// The manager's challenge.
    pub manager: &'a Challenge,
    /// The worker's challenge.
    pub worker: &'a Challenge,
    /// TLS keying material of the connection, or empty.
    pub binding: &'a [u8],
}

impl ProofContext<'_> {
    fn mac(&self, password: &[u8], role: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(password).expect("any key length works");
        mac.update(role);
        mac.update(self.manager);
        mac.update(self.worker);
        mac.update(&(self.binding.len() as u64).to_le_bytes());
        mac.update(self.binding);
        mac
    }
}

/// The proof that one knows `password`, said by `role` in `context`.
pub fn prove(password: &[u8], context: &ProofContext<'_>, role: &[u8]) -> Proof {
    context.mac(password, role).finalize().into_bytes().into()
}

/// Checks a proof in constant time.
pub fn verify(password: &[u8], context: &ProofContext<'_>, role: &[u8], proof: &Proof) -> bool {
    context.mac(password, role).verify_slice(proof).is_ok()
}

/// Role strings, so a proof made by one side cannot be replayed as the other's.
pub const ROLE_WORKER: &[u8] = b"vine-worker";
/// See [`ROLE_WORKER`].
pub const ROLE_MANAGER: &[u8] = b"vine-manager";

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msg = ToWorker::Run(Box::new(TaskSpec {
            id: 7,
            attempt: 1,
            work: WorkSpec::Function {
                name: b"f".to_vec(),
                input: vec![1, 2, 3],
                process: false,
            },
            resources: (1000, 0, 0, 0),
            time_max: 0.0,
            max_stdout: 1 << 20,
            inputs: vec![],
            outputs: vec![],
            time_end: 0,
            monitor: 0,
        }));
        let mut buf = Vec::new();
        write_frame(&mut buf, &msg).unwrap();
        let back: ToWorker = read_frame(&mut &buf[..]).unwrap();
        assert_eq!(back, msg);
    }

    /// A command task whose one input is made by mini tasks `depth` deep.
    fn nested(depth: u32) -> TaskSpec {
        let mut spec = TaskSpec {
            id: 1,
            attempt: 1,
            work: WorkSpec::Command {
                command: b"true".to_vec(),
                env: vec![],
            },
            resources: (1000, 0, 0, 0),
            time_max: 0.0,
            max_stdout: 1 << 20,
            inputs: vec![],
            outputs: vec![],
            time_end: 0,
            monitor: 0,
        };
        for _ in 0..depth {
            let inner = std::mem::take(&mut spec.inputs);
            let mut task = spec.clone();
            task.inputs = inner;
            spec.inputs = vec![InputSpec {
                file_id: 2,
                remote_name: "in".into(),
                flags: 0,
                content: InputContent::MiniTask {
                    task: Box::new(task),
                    output: "out".into(),
                    level: 0,
                },
                mode: None,
                hash: None,
            }];
        }
        spec
    }

    #[test]
    fn mini_tasks_nested_past_the_bound_are_refused_without_running_out_of_stack() {
        let frame = |depth: u32| {
            let mut buf = Vec::new();
            write_frame(&mut buf, &ToWorker::Run(Box::new(nested(depth)))).unwrap();
            buf
        };
        let ok: ToWorker = read_frame(&mut &frame(MAX_MINI_TASK_DEPTH)[..]).unwrap();
        assert!(matches!(ok, ToWorker::Run(_)));
        let e = read_frame::<ToWorker>(&mut &frame(MAX_MINI_TASK_DEPTH + 1)[..]).unwrap_err();
        assert!(e.to_string().contains("nested more than"), "{e}");
        // Deep enough to overflow a reader thread's stack if decoded whole:
        // built and dropped on a large stack, decoded on a small one.
        let deep = std::thread::Builder::new()
            .stack_size(512 << 20)
            .spawn(move || frame(20_000))
            .unwrap()
            .join()
            .unwrap();
        let decoded = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                read_frame::<ToWorker>(&mut &deep[..])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(decoded.unwrap_err().contains("nested more than"));
        // The bound is per frame: the next frame on the thread starts at 0.
        let again: ToWorker = read_frame(&mut &frame(MAX_MINI_TASK_DEPTH)[..]).unwrap();
        assert!(matches!(again, ToWorker::Run(_)));
    }

    #[test]
    fn bad_frames_are_errors_not_allocations() {
        let mut good = Vec::new();
        write_frame(&mut good, &ToManager::Keepalive).unwrap();
        // Garbage.
        assert!(read_frame::<ToManager>(&mut &b"garbage bytes here"[..]).is_err());
        // Truncated.
        assert!(read_frame::<ToManager>(&mut &good[..good.len() - 1]).is_err());
        // Another version.
        let mut other = good.clone();
        other[2] = 99;
        assert!(read_frame::<ToManager>(&mut &other[..]).is_err());
        // A length far past the limit is refused before reading.
        let mut huge = good[..8].to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_frame::<ToManager>(&mut &huge[..]).is_err());
        // A payload whose inner length claims more than the frame holds.
        let mut lying = Vec::new();
        write_frame(
            &mut lying,
            &ToWorker::Xfer(Piece::Data {
                xfer: 1,
                bytes: vec![0; 16],
            }),
        )
        .unwrap();
        let at = lying.len() - 16 - 8;
        lying[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(read_frame::<ToWorker>(&mut &lying[..]).is_err());
    }

    #[test]
    fn proofs_need_the_password_the_role_and_the_channel() {
        let (cm, cw) = (challenge(), challenge());
        assert_ne!(cm, cw);
        let ctx = |m, w, b| ProofContext {
            manager: m,
            worker: w,
            binding: b,
        };
        let here = ctx(&cm, &cw, b"channel one");
        let p = prove(b"secret", &here, ROLE_WORKER);
        assert!(verify(b"secret", &here, ROLE_WORKER, &p));
        assert!(!verify(b"wrong", &here, ROLE_WORKER, &p));
        assert!(!verify(b"secret", &here, ROLE_MANAGER, &p));
        let other = challenge();
        assert!(!verify(
            b"secret",
            &ctx(&other, &cw, b"channel one"),
            ROLE_WORKER,
            &p
        ));
        assert!(!verify(
            b"secret",
            &ctx(&cm, &other, b"channel one"),
            ROLE_WORKER,
            &p
        ));
        assert!(!verify(
            b"secret",
            &ctx(&cm, &cw, b"channel two"),
            ROLE_WORKER,
            &p
        ));
    }

    #[test]
    fn authenticated_frames_refuse_forgery_tampering_and_replay() {
        let (cm, cw) = (challenge(), challenge());
        let (mut m_send, _) = session_keys(b"secret", &cm, &cw);
        // The worker receives with the manager-to-worker key.
        let (mut w_recv, _) = session_keys(b"secret", &cm, &cw);
        let mut wire = Vec::new();
        write_frame_sealed(&mut wire, &ToWorker::Cancel(7), Some(&mut m_send)).unwrap();
        write_frame_sealed(&mut wire, &ToWorker::Cancel(8), Some(&mut m_send)).unwrap();
        let one = wire[..wire.len() / 2].to_vec();
        let mut r = &wire[..];
        let a: ToWorker = read_frame_within(&mut r, MAX_FRAME, Some(&mut w_recv)).unwrap();
        let b: ToWorker = read_frame_within(&mut r, MAX_FRAME, Some(&mut w_recv)).unwrap();
        assert_eq!((a, b), (ToWorker::Cancel(7), ToWorker::Cancel(8)));
        // Replaying the first frame: its sequence number is past.
        assert!(
            read_frame_within::<ToWorker>(&mut &one[..], MAX_FRAME, Some(&mut w_recv)).is_err()
        );
        // A frame made without the password.
        let (mut forger, _) = session_keys(b"guess", &cm, &cw);
        let (mut fresh, _) = session_keys(b"secret", &cm, &cw);
        let mut forged = Vec::new();
        write_frame_sealed(&mut forged, &ToWorker::Exit, Some(&mut forger)).unwrap();
        assert!(
            read_frame_within::<ToWorker>(&mut &forged[..], MAX_FRAME, Some(&mut fresh)).is_err()
        );
        // One bit changed in the payload.
        let (mut s, _) = session_keys(b"secret", &cm, &cw);
        let (mut fresh, _) = session_keys(b"secret", &cm, &cw);
        let mut tampered = Vec::new();
        write_frame_sealed(&mut tampered, &ToWorker::Cancel(7), Some(&mut s)).unwrap();
        tampered[9] ^= 1;
        assert!(
            read_frame_within::<ToWorker>(&mut &tampered[..], MAX_FRAME, Some(&mut fresh)).is_err()
        );
        // A frame with no tag at all.
        let (mut fresh, _) = session_keys(b"secret", &cm, &cw);
        let mut bare = Vec::new();
        write_frame(&mut bare, &ToWorker::Cancel(7)).unwrap();
        assert!(
            read_frame_within::<ToWorker>(&mut &bare[..], MAX_FRAME, Some(&mut fresh)).is_err()
        );
    }

    #[test]
    fn a_frame_over_the_handshake_limit_is_refused_before_allocation() {
        let mut big = Vec::new();
        write_frame(
            &mut big,
            &ToManager::FileData {
                file_id: 1,
                error: Some("x".repeat(2 << 20)),
            },
        )
        .unwrap();
        // Only the header is there: the reader must refuse on the length alone.
        let header = &big[..8];
        assert!(
            read_frame_within::<ToManager>(&mut &header[..], MAX_HANDSHAKE_FRAME, None).is_err()
        );
        assert!(read_frame_within::<ToManager>(&mut &big[..], MAX_FRAME, None).is_ok());
    }
}
