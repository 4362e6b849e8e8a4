//! Files a task reads and writes: files on the manager's disk, in-memory buffers,
//! and temps (outputs that stay where they were made, for later tasks).
//!
//! A [`File`] is declared once per manager and shared by the tasks that use it;
//! a [`Mount`] attaches it to one task under the name the task sees in its sandbox.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// How long a file is kept at a worker, as TaskVine defines the levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLevel {
    /// Only for the task that uses it.
    Task = 0,
    /// For the whole workflow (until the manager is deleted).
    Workflow = 1,
    /// For the life of the worker.
    Worker = 2,
    /// Kept at the worker after it exits.
    Forever = 3,
}

impl CacheLevel {
    /// The level with C value `v`.
    pub fn from_code(v: i32) -> Result<CacheLevel> {
        Ok(match v {
            0 => CacheLevel::Task,
            1 => CacheLevel::Workflow,
            2 => CacheLevel::Worker,
            3 => CacheLevel::Forever,
            _ => return Err(Error::invalid(format!("{v} is not a cache level (0..3)"))),
        })
    }
}

/// Creates a directory `parent/{prefix}-{pid}-{k}` of its own, trying k = 0, 1, ...
/// until one does not exist yet: a directory left behind by an earlier process that
/// had the same pid (a crash, a recycled container) is never taken over.
pub(crate) fn fresh_dir(parent: &Path, prefix: &str) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("{prefix}-{pid}-{k}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(dir.display(), e)),
        }
    }
}

/// File flag: never transfer this file between workers.
pub(crate) const FILE_PEER_NOSHARE: u32 = 1;
/// File flag: delete the manager's copy when the manager is deleted.
pub(crate) const FILE_UNLINK_WHEN_DONE: u32 = 2;
const FILE_FLAGS: u32 = FILE_PEER_NOSHARE | FILE_UNLINK_WHEN_DONE;

/// Mount flag: send the file even if the worker has it cached.
pub(crate) const MOUNT_RESEND: u32 = 256;
/// Mount flag: link the input into the sandbox instead of copying it.
pub const MOUNT_SYMLINK: u32 = 32;
/// Mount flag: create the remote name as an empty directory before the task runs.
pub const MOUNT_MKDIR: u32 = 64;
/// Mount flag (inputs): run the task only where the file already is; it is
/// never transferred for it.
pub const MOUNT_FIXED_LOCATION: u32 = 1;
/// Mount flag (outputs): stream what the task appends back while it runs.
pub const MOUNT_WATCH: u32 = 2;
/// Mount flag (outputs): return the file only if the task failed.
pub const MOUNT_FAILURE_ONLY: u32 = 4;
/// Mount flag (outputs): return the file only if the task succeeded.
pub const MOUNT_SUCCESS_ONLY: u32 = 8;
const MOUNT_FLAGS: u32 = MOUNT_RESEND
    | MOUNT_MKDIR
    | MOUNT_SYMLINK
    | MOUNT_FIXED_LOCATION
    | MOUNT_WATCH
    | MOUNT_FAILURE_ONLY
    | MOUNT_SUCCESS_ONLY;

/// What a file is.
#[derive(Debug)]
pub enum FileKind {
    /// A path on the manager's file system.
    Path(PathBuf),
    /// Bytes held by the manager.
    Buffer,
    /// An output kept where it was produced.
    Temp,
}

/// A declared file. What it is never changes; what it holds (a buffer's bytes,
/// where the manager keeps a temp's data) is read by the caller and the pool
/// threads. Where a temp kept at a remote worker is, and what makes it again,
/// is scheduling state: the manager thread's table of temps holds it.
#[derive(Debug)]
pub struct File {
    id: u64,
    kind: FileKind,
    cache: CacheLevel,
    flags: u32,
    state: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    /// Contents of a buffer, or of a temp or path once fetched.
    contents: Option<Arc<[u8]>>,
    /// Every NUL-terminated snapshot handed to C, kept alive with the file.
    fetched: Vec<Arc<[u8]>>,
    /// Where the manager keeps a temp's data: made by a local task, or
    /// fetched from the worker that made it.
    temp_location: Option<PathBuf>,
    /// For a file kept forever, its name in the workers' stores (once computed).
    content_name: Option<String>,
    /// Permission bits set by [`File::set_mode`].
    mode: Option<u32>,
}

static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

impl File {
    fn new(kind: FileKind, cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        if flags & !FILE_FLAGS != 0 {
            return Err(Error::invalid(format!("unknown file flags {flags:#x}")));
        }
        Ok(Arc::new(File {
            id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            cache,
            flags,
            state: Mutex::new(FileState::default()),
        }))
    }

    /// A file at `path` on the manager's disk.
    pub fn path(path: &Path, cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("a file path cannot be empty"));
        }
        File::new(FileKind::Path(path.to_owned()), cache, flags)
    }

    /// A buffer holding a copy of `data`.
    pub fn buffer(data: &[u8], cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        let f = File::new(FileKind::Buffer, cache, flags)?;
        f.state().contents = Some(Arc::from(data));
        Ok(f)
    }

    /// A temp: an output that stays where it was produced.
    pub fn temp() -> Result<Arc<File>> {
        File::new(FileKind::Temp, CacheLevel::Workflow, 0)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A number unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What kind of file it is.
    pub fn kind(&self) -> &FileKind {
        &self.kind
    }

    /// Its cache level.
    pub fn cache_level(&self) -> CacheLevel {
        self.cache
    }

    /// Its flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Sets the permission bits the file has in a task's sandbox; owner read
    /// and write are always added, bits past 0777 dropped.
    pub fn set_mode(&self, mode: u32) {
        self.state().mode = Some((mode | 0o600) & 0o777);
    }

    /// The permission bits the file gets in a sandbox, where they are not its
    /// own: those set by [`File::set_mode`], else 0755 for a buffer (so a
    /// script shipped as a buffer runs). `None`: the source's own mode.
    pub fn delivered_mode(&self) -> Option<u32> {
        let set = self.state().mode;
        set.or(match self.kind {
            FileKind::Buffer => Some(0o755),
            _ => None,
        })
    }

    /// The bytes of a buffer (or of anything fetched), if known.
    pub fn contents(&self) -> Option<Arc<[u8]>> {
        self.state().contents.clone()
    }

    /// Replaces the contents (a buffer written as a task output).
    pub(crate) fn set_contents(&self, data: Vec<u8>) {
        self.state().contents = Some(Arc::from(data));
    }

    /// For a file kept forever, its name in the workers' stores, once computed.
    pub(crate) fn content_name(&self) -> Option<String> {
        self.state().content_name.clone()
    }

    /// Records the name computed for a file kept forever; returns it.
    pub(crate) fn set_content_name(&self, name: String) -> String {
        self.state().content_name.get_or_insert(name).clone()
    }

    /// Where the manager keeps a temp's data, if it does (a temp kept at a
    /// remote worker is brought here by [`crate::manager::Manager::fetch_file`]).
    pub fn temp_location(&self) -> Option<PathBuf> {
        self.state().temp_location.clone()
    }

    pub(crate) fn set_temp_location(&self, path: PathBuf) {
        self.state().temp_location = Some(path);
    }

    /// Reads the file's current contents and keeps a NUL-terminated snapshot alive
    /// for as long as the file lives (pointers handed to C stay valid).
    pub fn fetch(&self) -> Result<Arc<[u8]>> {
        let data: Vec<u8> = match &self.kind {
            FileKind::Buffer => self.contents().map(|c| c.to_vec()).unwrap_or_default(),
            FileKind::Path(p) => std::fs::read(p).map_err(|e| Error::io(p.display(), e))?,
            FileKind::Temp => {
                let loc = self.temp_location().ok_or_else(|| {
                    Error::new(
                        crate::error::ErrorKind::Io,
                        "the temp has not been produced by any task yet",
                    )
                })?;
                std::fs::read(&loc).map_err(|e| Error::io(loc.display(), e))?
            }
        };
        let mut with_nul = data.clone();
        with_nul.push(0);
        let snapshot: Arc<[u8]> = Arc::from(with_nul);
        let mut st = self.state();
        st.contents = Some(Arc::from(data));
        st.fetched.push(snapshot.clone());
        Ok(snapshot)
    }

    /// Size in bytes of what the file holds now, if known.
    pub fn size(&self) -> Option<u64> {
        match &self.kind {
            FileKind::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            FileKind::Buffer => self.contents().map(|c| c.len() as u64),
            FileKind::Temp => self
                .temp_location()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len()),
        }
    }

    /// Removes what the manager holds for the file when it goes away: a temp's
    /// data, and a path declared with `FILE_UNLINK_WHEN_DONE`.
    pub(crate) fn release(&self) {
        if let FileKind::Path(p) = &self.kind {
            if self.flags & FILE_UNLINK_WHEN_DONE != 0 {
                let _ = std::fs::remove_file(p);
            }
        }
        if let Some(loc) = self.state().temp_location.take() {
            let _ = std::fs::remove_file(loc);
        }
    }
}

/// A file attached to a task under the name the task sees.
#[derive(Debug, Clone)]
pub struct Mount {
    /// The file.
    pub file: Arc<File>,
    /// Relative path inside the sandbox.
    pub remote_name: String,
    /// `MOUNT_*` flags.
    pub flags: u32,
}

impl Mount {
    /// Attaches `file` as `remote_name`, refusing names that would leave the sandbox.
    pub fn new(file: Arc<File>, remote_name: &str, flags: u32) -> Result<Mount> {
        validate_remote_name(remote_name)?;
        if flags & !MOUNT_FLAGS != 0 {
            return Err(Error::invalid(format!("unknown mount flags {flags:#x}")));
        }
        Ok(Mount {
            file,
            remote_name: remote_name.to_owned(),
            flags,
        })
    }
}

/// Accepts a relative path of normal components: no `..`, no root, no `.`-only,
/// nothing empty. Such a name cannot leave the directory it is joined to.
pub fn validate_remote_name(name: &str) -> Result<()> {
    let refuse = |why: &str| Err(Error::invalid(format!("file name {name:?} {why}")));
    if name.is_empty() {
        return refuse("is empty");
    }
    if name.contains('\0') {
        return refuse("contains a NUL byte");
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return refuse("is absolute: names are relative to the task's sandbox");
    }
    let mut normal = 0;
    for c in path.components() {
        match c {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir => return refuse("contains '..' and could leave the sandbox"),
            Component::RootDir | Component::Prefix(_) => return refuse("is not relative"),
        }
    }
    if normal == 0 {
        return refuse("names no file");
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_that_escape_the_sandbox_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "./",
            "a\0b",
        ] {
            assert!(validate_remote_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["x", "a/b/c.txt", "./x", "a..b", "..x"] {
            assert!(validate_remote_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn fetched_snapshots_are_nul_terminated_and_stay_alive() {
        let f = File::buffer(b"abc", CacheLevel::Task, 0).unwrap();
        let first = f.fetch().unwrap();
        f.set_contents(b"longer".to_vec());
        let second = f.fetch().unwrap();
        assert_eq!(&first[..], b"abc\0");
        assert_eq!(&second[..], b"longer\0");
        assert_eq!(f.size(), Some(6));
    }

    #[test]
    fn unknown_flags_and_levels_are_refused() {
        assert!(File::buffer(b"", CacheLevel::Task, 64).is_err());
        assert!(CacheLevel::from_code(4).is_err());
        let f = File::temp().unwrap();
        assert!(Mount::new(f, "out", 1 << 10).is_err());
    }
}
