//! Files and directory trees on their way between a manager and a worker, in
//! either direction, as a stream of [`Piece`] frames: the sender reads from disk
//! one chunk at a time, the receiver writes each chunk out as it arrives, so a
//! file of any size crosses the connection without ever being held in memory
//! whole, and no frame comes near [`crate::protocol::MAX_FRAME`].
//!
//! What arrives is built under a staging path and handed over only when the
//! transfer ended and the content hash the sender computed over what it sent
//! equals the one the receiver computed over what it wrote. A transfer that
//! fails, at either end, fails alone: its frames are dropped and the connection
//! carries on.
//!
//! The content hash of a regular file is the SHA-256 of its bytes (its name in a
//! store of files kept forever); that of a directory is the SHA-256 of one record
//! per entry, in the order sent.
//!
//! Nothing here opens a file that is not a regular file: special files (FIFOs,
//! sockets, devices) are refused at the root of a transfer and left out inside a
//! directory, and files are opened non-blocking and checked again once open.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::protocol::{Dest, Piece};

/// Bytes of file data per frame.
pub const CHUNK: usize = 1 << 20;

/// Transfers a receiver builds at once, at most: a peer opening more is broken.
const MAX_OPEN: usize = 4096;
/// Files a receiver keeps open at once, at most, whatever the number of
/// transfers: the others are closed between their pieces and opened again for
/// the next (so a peer interleaving many transfers cannot use up the
/// process's file descriptors).
const MAX_HANDLES: usize = 64;
/// Memory the directories of a receiver's open transfers may take, at most
/// (their names are kept until each transfer ends): a transfer that would
/// take more fails.
const MAX_DIR_BYTES: usize = 256 << 20;

/// What a sender reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file or directory on disk.
    Path(PathBuf),
    /// Bytes in memory (a buffer).
    Bytes(Arc<[u8]>),
}

/// What a file that cannot be a transfer's root is, for a reason sentence; None
/// for a regular file or a directory.
pub fn special_kind(ft: std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() || ft.is_dir() {
        None
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a regular file")
    }
}

/// Opens a regular file for reading without ever blocking on a special file:
/// the open does not wait for a FIFO's writer, and what was opened is checked.
pub fn open_regular(path: &Path) -> std::result::Result<std::fs::File, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match special_kind(meta.file_type()) {
        _ if meta.is_file() => Ok(f),
        Some(kind) => Err(format!(
            "{} is {kind}, not a regular file or directory",
            path.display()
        )),
        None => Err(format!("{} is a directory", path.display())),
    }
}

/// Why a file or directory cannot be an output, or Ok if it can: checked by
/// its type first, and a regular file or directory must be readable. Nothing
/// is opened that could block.
pub fn check_output(path: &Path) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Never opened: opening a device can act, a socket cannot be opened.
    if let Some(kind) = special_kind(meta.file_type()) {
        return Err(format!(
            "{} is {kind}, not a regular file or directory",
            path.display()
        ));
    }
    if meta.is_dir() {
        return std::fs::read_dir(path)
            .map(drop)
            .map_err(|e| format!("cannot read directory {}: {e}", path.display()));
    }
    open_regular(path).map(drop)
}

/// The content hash of a file on disk or in memory; Err if it is not a regular
/// file or cannot be read. Reads a chunk at a time.
pub fn hash_source(source: &Source) -> std::result::Result<[u8; 32], String> {
    match source {
        Source::Bytes(b) => Ok(Sha256::digest(b).into()),
        Source::Path(p) => {
            let mut f = open_regular(p)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => return Ok(h.finalize().into()),
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
                }
            }
        }
    }
}

/// The content hash `source` arrives with when sent with root mode `mode`
/// (see [`send`]): that of a file's bytes, or of a directory's records. Err if
/// it cannot be read whole. Reads a chunk at a time.
pub fn content_hash(source: &Source, mode: Option<u32>) -> std::result::Result<[u8; 32], String> {
    match source {
        // The mode of a file is no part of its hash.
        Source::Bytes(_) => hash_source(source),
        Source::Path(p) if !std::fs::metadata(p).is_ok_and(|m| m.is_dir()) => hash_source(source),
        Source::Path(_) => match send(0, Dest::Cache(0), source, mode, &mut |_| Ok(()), &mut 0) {
            Ok(outcome) => outcome,
            Err(e) => Err(e.to_string()),
        },
    }
}

/// The content hash, computed over entries as they are sent or received.
struct Hasher {
    /// Set for a transfer whose root is a regular file.
    single: bool,
    records: Sha256,
    file: Option<(Sha256, Vec<u8>)>,
}

impl Hasher {
    fn new() -> Hasher {
        Hasher {
            single: false,
            records: Sha256::new(),
            file: None,
        }
    }

    fn close_file(&mut self) {
        if let Some((h, mut record)) = self.file.take() {
            record.extend_from_slice(&h.finalize());
            self.records.update(&record);
        }
    }

    fn entry(&mut self, piece: &Piece) {
        self.close_file();
        match piece {
            Piece::Dir { path, mode, .. } => {
                let mut r = b"d".to_vec();
                r.extend_from_slice(path.as_bytes());
                r.push(0);
                r.extend_from_slice(&mode.to_le_bytes());
                self.records.update(&r);
            }
            Piece::File { path, mode, .. } => {
                if path.is_empty() {
                    self.single = true;
                }
                let mut r = b"f".to_vec();
                r.extend_from_slice(path.as_bytes());
                r.push(0);
                r.extend_from_slice(&mode.to_le_bytes());
                self.file = Some((Sha256::new(), r));
            }
            Piece::Link { path, target, .. } => {
                let mut r = b"l".to_vec();
                r.extend_from_slice(path.as_bytes());
                r.push(0);
                r.extend_from_slice(target);
                r.push(0);
                self.records.update(&r);
            }
            _ => {}
        }
    }

    fn data(&mut self, bytes: &[u8]) {
        if let Some((h, _)) = &mut self.file {
            h.update(bytes);
        }
    }

    fn finish(mut self) -> [u8; 32] {
        if self.single {
            if let Some((h, _)) = self.file.take() {
                return h.finalize().into();
            }
        }
        self.close_file();
        self.records.finalize().into()
    }
}

/// Sends `source` as transfer `xfer` to `dest` through `emit` (which writes one
/// frame). The outer Err is a broken connection; the inner one a source that
/// could not be sent, after an `Abort` told the receiver so. Ok gives the
/// content hash of what was sent; `sent` counts the data bytes. `mode`, if
/// given, replaces the permission bits of the root (a buffer's default is 0755).
pub fn send(
    xfer: u64,
    dest: Dest,
    source: &Source,
    mode: Option<u32>,
    emit: &mut dyn FnMut(Piece) -> Result<()>,
    sent: &mut u64,
) -> Result<std::result::Result<[u8; 32], String>> {
    emit(Piece::Begin { xfer, dest })?;
    let mut s = Sending {
        xfer,
        emit,
        hasher: Hasher::new(),
        buf: Vec::new(),
        sent,
    };
    let outcome = match source {
        Source::Bytes(b) => s.bytes("", mode.unwrap_or(0o755) & 0o777, b),
        Source::Path(p) => s.root(p, mode),
    };
    match outcome {
        Ok(()) => {
            let hash = s.hasher.finish();
            emit(Piece::End { xfer, hash })?;
            Ok(Ok(hash))
        }
        Err(Failure::Wire(e)) => Err(e),
        Err(Failure::Source(reason)) => {
            emit(Piece::Abort {
                xfer,
                reason: reason.clone(),
            })?;
            Ok(Err(reason))
        }
    }
}

enum Failure {
    Wire(Error),
    Source(String),
}

struct Sending<'a> {
    xfer: u64,
    emit: &'a mut dyn FnMut(Piece) -> Result<()>,
    hasher: Hasher,
    buf: Vec<u8>,
    sent: &'a mut u64,
}

impl Sending<'_> {
    fn put(&mut self, piece: Piece) -> std::result::Result<(), Failure> {
        self.hasher.entry(&piece);
        (self.emit)(piece).map_err(Failure::Wire)
    }

    fn data(&mut self, bytes: Vec<u8>) -> std::result::Result<Vec<u8>, Failure> {
        self.hasher.data(&bytes);
        *self.sent += bytes.len() as u64;
        let n = bytes.len();
        (self.emit)(Piece::Data {
            xfer: self.xfer,
            bytes,
        })
        .map_err(Failure::Wire)?;
        Ok(Vec::with_capacity(n))
    }

    fn bytes(&mut self, path: &str, mode: u32, b: &[u8]) -> std::result::Result<(), Failure> {
        self.put(Piece::File {
            xfer: self.xfer,
            path: path.into(),
            mode,
        })?;
        for chunk in b.chunks(CHUNK) {
            self.data(chunk.to_vec())?;
        }
        Ok(())
    }

    fn root(&mut self, p: &Path, mode: Option<u32>) -> std::result::Result<(), Failure> {
        // The root is followed if it is a link, as a task reading it would.
        let meta =
            std::fs::metadata(p).map_err(|e| Failure::Source(format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            self.put(Piece::Dir {
                xfer: self.xfer,
                path: String::new(),
                mode: mode.unwrap_or(meta.permissions().mode()) & 0o777,
            })?;
            self.dir(p, "")
        } else {
            let f = open_regular(p).map_err(Failure::Source)?;
            self.file("", f, mode)
        }
    }

    fn file(
        &mut self,
        path: &str,
        mut f: std::fs::File,
        mode: Option<u32>,
    ) -> std::result::Result<(), Failure> {
        let mode = mode.unwrap_or_else(|| {
            f.metadata()
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o644)
        }) & 0o777;
        self.put(Piece::File {
            xfer: self.xfer,
            path: path.into(),
            mode,
        })?;
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            buf.resize(CHUNK, 0);
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Source(format!("cannot read {path:?}: {e}"))),
            };
            buf.truncate(n);
            buf = self.data(buf)?;
        }
        self.buf = buf;
        Ok(())
    }

    /// The entries of directory `dir` (at `rel` in the tree), sorted by name.
    fn dir(&mut self, dir: &Path, rel: &str) -> std::result::Result<(), Failure> {
        let cannot = |e: std::io::Error| Failure::Source(format!("{}: {e}", dir.display()));
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(cannot)? {
            names.push(e.map_err(cannot)?.file_name());
        }
        names.sort();
        for name in names {
            let Some(name) = name.to_str() else {
                return Err(Failure::Source(format!(
                    "{}: a file name that is not UTF-8",
                    dir.display()
                )));
            };
            let path = dir.join(name);
            let child = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(&path).map_err(cannot)?;
            let ft = meta.file_type();
            if ft.is_dir() {
                self.put(Piece::Dir {
                    xfer: self.xfer,
                    path: child.clone(),
                    mode: meta.permissions().mode() & 0o777,
                })?;
                self.dir(&path, &child)?;
            } else if ft.is_symlink() {
                use std::os::unix::ffi::OsStrExt;
                let target = std::fs::read_link(&path).map_err(cannot)?;
                self.put(Piece::Link {
                    xfer: self.xfer,
                    path: child,
                    target: target.as_os_str().as_bytes().to_vec(),
                })?;
            } else if ft.is_file() {
                let f = open_regular(&path).map_err(Failure::Source)?;
                self.file(&child, f, None)?;
            }
            // Special files inside a directory are left out: nothing reads them.
        }
        Ok(())
    }
}

/// A transfer that ended.
#[derive(Debug)]
pub struct Arrived {
    /// Its id.
    pub xfer: u64,
    /// Where it was going.
    pub dest: Dest,
    /// The staging path it was built at and its content hash, or why it failed.
    /// The receiver owns the staging path from here on.
    pub outcome: std::result::Result<(PathBuf, [u8; 32]), String>,
    /// Data bytes received.
    pub bytes: u64,
    /// True if the root is a regular file.
    pub is_file: bool,
    /// From its first frame to its last.
    pub took: std::time::Duration,
}

struct Incoming {
    dest: Dest,
    root: PathBuf,
    bytes: u64,
    is_file: bool,
    /// Why it failed, once it did: later frames are dropped until the end.
    failed: Option<String>,
    /// Directories made so far (relative paths), with their modes to set at the end.
    dirs: HashSet<String>,
    /// What its directories count against [`MAX_DIR_BYTES`].
    dir_bytes: usize,
    modes: Vec<(PathBuf, u32)>,
    started: bool,
    /// The file being written: its handle (None while it is closed between
    /// pieces, see [`MAX_HANDLES`]), path and mode.
    file: Option<(Option<std::fs::File>, PathBuf, u32)>,
    hasher: Hasher,
    began: std::time::Instant,
}

/// Builds the transfers arriving on one connection under a staging directory.
pub struct Receiver {
    staging: PathBuf,
    prefix: String,
    open: HashMap<u64, Incoming>,
    /// Transfers that may hold an open file, oldest first.
    handles: std::collections::VecDeque<u64>,
    /// What the directories of the open transfers take, and the most they may
    /// (see [`MAX_DIR_BYTES`]).
    dir_bytes: usize,
    dir_limit: usize,
}

impl Receiver {
    /// Transfers are built at `staging/{prefix}{id}`.
    pub fn new(staging: PathBuf, prefix: &str) -> Receiver {
        Receiver {
            staging,
            prefix: prefix.to_owned(),
            open: HashMap::new(),
            handles: std::collections::VecDeque::new(),
            dir_bytes: 0,
            dir_limit: MAX_DIR_BYTES,
        }
    }

    /// Transfer `xfer` may hold an open file: the oldest others are closed
    /// while more than [`MAX_HANDLES`] are open.
    fn opened(&mut self, xfer: u64) {
        if !self.handles.contains(&xfer) {
            self.handles.push_back(xfer);
        }
        while self.handles.len() > MAX_HANDLES {
            let oldest = self.handles.pop_front().expect("more than none");
            if oldest == xfer {
                self.handles.push_back(oldest);
                continue;
            }
            if let Some((handle, _, _)) = self.open.get_mut(&oldest).and_then(|t| t.file.as_mut()) {
                *handle = None;
            }
        }
    }

    /// Whether transfer `xfer` has begun and not ended.
    pub fn is_open(&self, xfer: u64) -> bool {
        self.open.contains_key(&xfer)
    }

    /// Takes one frame. Err is a peer that breaks the protocol (the connection
    /// should end); a transfer that fails here comes out as an `Arrived` with an
    /// Err outcome at its end.
    pub fn piece(&mut self, piece: Piece) -> Result<Option<Arrived>> {
        let xfer = piece.xfer();
        if let Piece::Begin { dest, .. } = piece {
            if self.open.contains_key(&xfer) || self.open.len() >= MAX_OPEN {
                return Err(Error::invalid(
                    "a transfer began twice, or too many at once",
                ));
            }
            let root = self.staging.join(format!("{}{xfer}", self.prefix));
            remove_all(&root);
            self.open.insert(
                xfer,
                Incoming {
                    dest,
                    root,
                    bytes: 0,
                    is_file: false,
                    failed: None,
                    dirs: HashSet::new(),
                    dir_bytes: 0,
                    modes: Vec::new(),
                    started: false,
                    file: None,
                    hasher: Hasher::new(),
                    began: std::time::Instant::now(),
                },
            );
            return Ok(None);
        }
        let Some(t) = self.open.get_mut(&xfer) else {
            return Err(Error::invalid("a frame of a transfer that was not begun"));
        };
        match piece {
            Piece::Begin { .. } => unreachable!("handled above"),
            Piece::End { hash, .. } => {
                let mut t = self.open.remove(&xfer).expect("looked up above");
                self.handles.retain(|x| *x != xfer);
                self.dir_bytes -= t.dir_bytes;
                let outcome = t.end(hash);
                if outcome.is_err() {
                    remove_all(&t.root);
                }
                Ok(Some(Arrived {
                    xfer,
                    dest: t.dest,
                    outcome,
                    bytes: t.bytes,
                    is_file: t.is_file,
                    took: t.began.elapsed(),
                }))
            }
            Piece::Abort { reason, .. } => {
                let t = self.open.remove(&xfer).expect("looked up above");
                self.handles.retain(|x| *x != xfer);
                self.dir_bytes -= t.dir_bytes;
                drop(t.file);
                remove_all(&t.root);
                Ok(Some(Arrived {
                    xfer,
                    dest: t.dest,
                    outcome: Err(reason),
                    bytes: t.bytes,
                    is_file: t.is_file,
                    took: t.began.elapsed(),
                }))
            }
            piece => {
                if let (Piece::Dir { path, .. }, None) = (&piece, &t.failed) {
                    // A name is kept twice (the set and the modes), with overhead.
                    let cost = 2 * path.len() + 128;
                    if self.dir_bytes + cost > self.dir_limit {
                        t.file = None;
                        t.failed = Some("more directories than a receiver keeps at once".into());
                        return Ok(None);
                    }
                    self.dir_bytes += cost;
                    t.dir_bytes += cost;
                }
                if t.failed.is_none() {
                    if let Err(e) = t.take(piece) {
                        t.file = None;
                        t.failed = Some(e);
                    }
                }
                if t.file.as_ref().is_some_and(|(h, _, _)| h.is_some()) {
                    self.opened(xfer);
                }
                Ok(None)
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for (_, t) in self.open.drain() {
            drop(t.file);
            remove_all(&t.root);
        }
    }
}

impl Incoming {
    /// Where the entry at relative `path` goes, if `path` is a name that stays
    /// inside the tree and its parent is a directory this transfer made.
    fn place(&self, path: &str) -> std::result::Result<PathBuf, String> {
        if path.is_empty() {
            return if self.started {
                Err("a second root".into())
            } else {
                Ok(self.root.clone())
            };
        }
        if !self.started || !self.dirs.contains("") {
            return Err("an entry outside a directory".into());
        }
        crate::files::validate_entry_name(path).map_err(|e| e.to_string())?;
        let parent = match path.rfind('/') {
            Some(at) => &path[..at],
            None => "",
        };
        if !self.dirs.contains(parent) || path.contains("//") || path.ends_with('/') {
            return Err(format!("{path:?} is not inside a directory sent before it"));
        }
        Ok(self.root.join(path))
    }

    fn close_file(&mut self) -> std::result::Result<(), String> {
        if let Some((f, path, mode)) = self.file.take() {
            let f = match f {
                Some(f) => f,
                None => reopen(&path)?,
            };
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn take(&mut self, piece: Piece) -> std::result::Result<(), String> {
        if !matches!(piece, Piece::Data { .. }) {
            self.hasher.entry(&piece);
            self.close_file()?;
        }
        match piece {
            Piece::Dir { path, mode, .. } => {
                let at = self.place(&path)?;
                std::fs::create_dir(&at).map_err(|e| format!("{}: {e}", at.display()))?;
                self.started = true;
                self.modes.push((at, mode & 0o777));
                self.dirs.insert(path);
            }
            Piece::File { path, mode, .. } => {
                let at = self.place(&path)?;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&at)
                    .map_err(|e| format!("{}: {e}", at.display()))?;
                if path.is_empty() {
                    self.is_file = true;
                }
                self.started = true;
                self.file = Some((Some(f), at, mode & 0o777));
            }
            Piece::Link { path, target, .. } => {
                use std::os::unix::ffi::OsStrExt;
                let at = self.place(&path)?;
                if path.is_empty() {
                    return Err("a link as the root".into());
                }
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &at)
                    .map_err(|e| format!("{}: {e}", at.display()))?;
            }
            Piece::Data { bytes, .. } => {
                self.hasher.data(&bytes);
                self.bytes += bytes.len() as u64;
                let Some((f, at, _)) = &mut self.file else {
                    return Err("data outside a file".into());
                };
                if f.is_none() {
                    *f = Some(reopen(at)?);
                }
                f.as_mut()
                    .expect("opened above")
                    .write_all(&bytes)
                    .map_err(|e| format!("{}: {e}", at.display()))?;
            }
            Piece::Begin { .. } | Piece::End { .. } | Piece::Abort { .. } => {}
        }
        Ok(())
    }

    fn end(&mut self, hash: [u8; 32]) -> std::result::Result<(PathBuf, [u8; 32]), String> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.close_file()?;
        if !self.started {
            return Err("an empty transfer".into());
        }
        // Deepest first, so a directory without write permission is set last.
        for (at, mode) in self.modes.iter().rev() {
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| format!("{}: {e}", at.display()))?;
        }
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new());
        let got = hasher.finish();
        if got != hash {
            return Err("the data arrived damaged (its hash does not match)".into());
        }
        Ok((self.root.clone(), got))
    }
}

/// Opens the file a transfer is writing at `path` again, to go on at its end;
/// never through a link.
fn reopen(path: &Path) -> std::result::Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Removes a file or a directory tree, whatever is at `path`; directories
/// without write permission inside it are opened up first.
pub fn remove_all(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if std::fs::remove_dir_all(path).is_err() {
                open_up(path);
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

fn open_up(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_directories_of_open_transfers_take_bounded_memory() {
        let staging = tmp("vine-xfer-dirs");
        let mut r = Receiver::new(staging.clone(), "d-");
        r.dir_limit = 100 * (2 * 8 + 128);
        let dir = |xfer, path: String| Piece::Dir {
            xfer,
            path,
            mode: 0o755,
        };
        let end = |r: &mut Receiver, xfer| {
            r.piece(Piece::End {
                xfer,
                hash: [0; 32],
            })
            .unwrap()
            .expect("it ended")
            .outcome
        };
        r.piece(Piece::Begin {
            xfer: 1,
            dest: Dest::Cache(1),
        })
        .unwrap();
        r.piece(dir(1, String::new())).unwrap();
        for i in 0..200 {
            r.piece(dir(1, format!("d{i:07}"))).unwrap();
        }
        let why = end(&mut r, 1).unwrap_err();
        assert!(why.contains("more directories"), "{why}");
        assert!(r.dir_bytes == 0, "given back when it ended");
        // A transfer within the bound, after it, is built (its hash aside).
        r.piece(Piece::Begin {
            xfer: 2,
            dest: Dest::Cache(2),
        })
        .unwrap();
        r.piece(dir(2, String::new())).unwrap();
        for i in 0..50 {
            r.piece(dir(2, format!("d{i:07}"))).unwrap();
        }
        let why = end(&mut r, 2).unwrap_err();
        assert!(why.contains("hash"), "{why}");
        let _ = std::fs::remove_dir_all(&staging);
    }

    #[test]
    fn many_transfers_at_once_keep_few_files_open_and_arrive_whole() {
        let staging = tmp("vine-xfer-many");
        let mut r = Receiver::new(staging.clone(), "m-");
        let n = 3 * MAX_HANDLES as u64;
        // Each transfer's pieces, its data split in two to be interleaved.
        let mut pieces: Vec<Vec<Piece>> = Vec::new();
        for x in 0..n {
            let content: Arc<[u8]> = format!("transfer {x}\n").repeat(3).into_bytes().into();
            let mut mine = Vec::new();
            send(
                x,
                Dest::Cache(x),
                &Source::Bytes(content),
                None,
                &mut |p| {
                    match p {
                        Piece::Data { xfer, bytes } => {
                            let (a, b) = bytes.split_at(bytes.len() / 2);
                            mine.push(Piece::Data {
                                xfer,
                                bytes: a.to_vec(),
                            });
                            mine.push(Piece::Data {
                                xfer,
                                bytes: b.to_vec(),
                            });
                        }
                        p => mine.push(p),
                    }
                    Ok(())
                },
                &mut 0,
            )
            .unwrap()
            .unwrap();
            pieces.push(mine);
        }
        let open = |r: &Receiver| {
            r.open
                .values()
                .filter(|t| t.file.as_ref().is_some_and(|(h, _, _)| h.is_some()))
                .count()
        };
        // Round by round: every transfer's next piece.
        let mut arrived = Vec::new();
        let longest = pieces.iter().map(Vec::len).max().unwrap();
        for round in 0..longest {
            for mine in &pieces {
                if let Some(p) = mine.get(round) {
                    if let Some(a) = r.piece(p.clone()).unwrap() {
                        arrived.push(a);
                    }
                }
                assert!(open(&r) <= MAX_HANDLES, "{} files open", open(&r));
            }
        }
        assert_eq!(arrived.len() as u64, n);
        for a in arrived {
            let (path, _) = a.outcome.expect("arrived whole");
            let Dest::Cache(x) = a.dest else { panic!() };
            let got = std::fs::read_to_string(&path).unwrap();
            assert_eq!(got, format!("transfer {x}\n").repeat(3));
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755);
        }
        let _ = std::fs::remove_dir_all(&staging);
    }

    fn tmp(name: &str) -> PathBuf {
        crate::files::fresh_dir(&std::env::temp_dir(), name).unwrap()
    }

    /// Sends `source` and feeds every frame through the wire format into a receiver.
    fn round_trip(source: &Source, staging: &Path) -> Arrived {
        let mut frames = Vec::new();
        let mut sent = 0;
        let hash = send(
            7,
            Dest::Cache(1),
            source,
            None,
            &mut |p| crate::protocol::write_frame(&mut frames, &p),
            &mut sent,
        )
        .unwrap();
        let mut r = Receiver::new(staging.to_owned(), "t-");
        let mut input = &frames[..];
        let mut last = None;
        while !input.is_empty() {
            let p: Piece = crate::protocol::read_frame(&mut input).unwrap();
            if let Some(a) = r.piece(p).unwrap() {
                last = Some(a);
            }
        }
        let a = last.expect("the transfer ended");
        if let (Ok(h), Ok((_, got))) = (&hash, &a.outcome) {
            assert_eq!(h, got);
        }
        a
    }

    #[test]
    fn a_directory_tree_arrives_whole_with_its_modes_and_links() {
        let dir = tmp("vine-xfer-tree");
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::write(src.join("a.txt"), b"alpha").unwrap();
        std::fs::write(src.join("sub/run.sh"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join("sub/run.sh"), PermissionsExt::from_mode(0o751)).unwrap();
        std::fs::write(src.join("sub/deeper/big"), vec![9u8; CHUNK * 2 + 3]).unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        std::fs::set_permissions(src.join("sub"), PermissionsExt::from_mode(0o750)).unwrap();
        let staging = dir.join("staging");
        std::fs::create_dir(&staging).unwrap();
        let a = round_trip(&Source::Path(src.clone()), &staging);
        let (got, _) = a.outcome.unwrap();
        assert!(!a.is_file);
        assert_eq!(std::fs::read(got.join("a.txt")).unwrap(), b"alpha");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&got.join("sub/run.sh")), 0o751);
        assert_eq!(mode(&got.join("sub")), 0o750);
        assert_eq!(
            std::fs::read(got.join("sub/deeper/big")).unwrap(),
            vec![9u8; CHUNK * 2 + 3]
        );
        assert_eq!(
            std::fs::read_link(got.join("link")).unwrap(),
            Path::new("a.txt")
        );
        remove_all(&dir);
    }

    /// What a peer checks a fetched input against: the hash the manager
    /// computes without sending is the one the receiver computes, and the one
    /// the receiver's copy has when it is served on.
    #[test]
    fn a_content_hash_is_what_arrives_and_what_a_copy_serves_on() {
        let dir = tmp("vine-xfer-content");
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a"), b"alpha").unwrap();
        std::fs::write(src.join("sub/b"), vec![3u8; CHUNK + 5]).unwrap();
        std::os::unix::fs::symlink("a", src.join("l")).unwrap();
        let staging = dir.join("staging");
        std::fs::create_dir(&staging).unwrap();
        let relay = |source: &Source, mode: Option<u32>, prefix: &str| {
            let mut frames = Vec::new();
            send(
                1,
                Dest::Cache(1),
                source,
                mode,
                &mut |p| {
                    frames.push(p);
                    Ok(())
                },
                &mut 0,
            )
            .unwrap()
            .unwrap();
            let mut r = Receiver::new(staging.clone(), prefix);
            let mut last = None;
            for p in frames {
                last = r.piece(p).unwrap().or(last);
            }
            last.expect("it ended").outcome.unwrap()
        };
        for (source, mode) in [
            (Source::Path(src.clone()), Some(0o750)),
            (Source::Path(src.clone()), None),
            (Source::Path(src.join("a")), Some(0o700)),
            (Source::Bytes(b"a buffer".to_vec().into()), Some(0o755)),
        ] {
            let expected = content_hash(&source, mode).unwrap();
            let (copy, got) = relay(&source, mode, "m-");
            assert_eq!(got, expected);
            let (again, served) = relay(&Source::Path(copy.clone()), None, "p-");
            assert_eq!(served, expected, "a copy serves what it got");
            remove_all(&copy);
            remove_all(&again);
        }
        let other = content_hash(&Source::Bytes(b"another".to_vec().into()), None).unwrap();
        assert_ne!(
            other,
            content_hash(&Source::Bytes(b"a buffer".to_vec().into()), None).unwrap()
        );
        assert!(content_hash(&Source::Path(dir.join("none")), None).is_err());
        remove_all(&dir);
    }

    #[test]
    fn a_file_hashes_to_its_content_name_and_special_files_are_refused() {
        let dir = tmp("vine-xfer-file");
        let f = dir.join("f");
        std::fs::write(&f, b"contents").unwrap();
        let a = round_trip(&Source::Path(f.clone()), &dir);
        let (got, hash) = a.outcome.unwrap();
        assert!(a.is_file);
        assert_eq!(
            crate::protocol::hex_name(&hash),
            crate::protocol::content_name(b"contents")
        );
        assert_eq!(hash_source(&Source::Path(f)).unwrap(), hash);
        assert_eq!(std::fs::read(got).unwrap(), b"contents");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let why = check_output(&fifo).unwrap_err();
        assert!(why.contains("FIFO"), "{why}");
        let a = round_trip(&Source::Path(fifo), &dir);
        assert!(a.outcome.unwrap_err().contains("FIFO"));
        remove_all(&dir);
    }

    #[test]
    fn entries_that_would_leave_the_tree_fail_only_their_transfer() {
        let dir = tmp("vine-xfer-escape");
        let mut r = Receiver::new(dir.clone(), "t-");
        let steps = [
            Piece::Begin {
                xfer: 1,
                dest: Dest::Cache(1),
            },
            Piece::Dir {
                xfer: 1,
                path: String::new(),
                mode: 0o755,
            },
            Piece::Link {
                xfer: 1,
                path: "l".into(),
                target: b"/".to_vec(),
            },
            Piece::File {
                xfer: 1,
                path: "l/etc/evil".into(),
                mode: 0o644,
            },
            Piece::Data {
                xfer: 1,
                bytes: b"x".to_vec(),
            },
        ];
        for p in steps {
            assert!(r.piece(p).unwrap().is_none());
        }
        let end = r
            .piece(Piece::End {
                xfer: 1,
                hash: [0; 32],
            })
            .unwrap()
            .unwrap();
        assert!(end.outcome.is_err());
        assert!(!dir.join("t-1").exists(), "what arrived is dropped");
        // A frame of a transfer never begun breaks the protocol.
        assert!(r
            .piece(Piece::Data {
                xfer: 9,
                bytes: vec![]
            })
            .is_err());
        remove_all(&dir);
    }
}
