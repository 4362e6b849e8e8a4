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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// Where scratch directories go: `TMPDIR`, or `/tmp` where it is unset or
/// empty (as the C library's own temporary files take an empty one).
pub(crate) fn temp_root() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/tmp"),
    }
}

/// Creates a directory `parent/{prefix}-{pid}-{k}` of its own, trying k = 0, 1, ...
/// until one does not exist yet: a directory left behind by an earlier process that
/// had the same pid (a crash, a recycled container) is never taken over.
/// The path returned is absolute (a relative `parent` is taken from the
/// current directory now): sandboxes under it are named to the tasks that run
/// in them (`VINE_SANDBOX`), whose own current directory is elsewhere.
/// It is this user's alone (mode 0700, whatever the umask).
pub(crate) fn fresh_dir(parent: &Path, prefix: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let parent = &std::path::absolute(parent).map_err(|e| Error::io(parent.display(), e))?;
    let pid = std::process::id();
    loop {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("{prefix}-{pid}-{k}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
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
    /// A file the worker that needs it downloads from this `http://`, `https://`
    /// or `file://` URL.
    Url(String),
    /// A file (or directory) the worker that needs it makes by running a
    /// command task and taking its output `output`.
    MiniTask {
        /// The task, as declared (its inputs included); run as a copy.
        task: Box<crate::task::Task>,
        /// The name of its output in its sandbox.
        output: String,
    },
}

/// What `vine_file_type` says a file is: TaskVine's `vine_file_type_t` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    /// A file or directory at the manager.
    File = 1,
    /// Downloaded from a URL.
    Url = 2,
    /// A temp.
    Temp = 3,
    /// A buffer.
    Buffer = 4,
    /// Made by a mini task.
    MiniTask = 5,
}

/// A declared file. What it is never changes; what it holds (a buffer's bytes,
/// where the manager keeps a temp's data) is read by the caller and the pool
/// threads. Where a temp kept at a remote worker is, and what makes it again,
/// is scheduling state: the manager thread's table of temps holds it.
pub struct File {
    id: u64,
    kind: FileKind,
    cache: CacheLevel,
    flags: u32,
    /// What `vine_file_source` gives: the path, the URL, the mini task's output
    /// name, or "buffer" / "temp" (TaskVine's strings).
    source: std::ffi::CString,
    state: Mutex<FileState>,
    /// Something the file owns and frees when it goes (a mini task's C handle).
    owned: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// The manager it was declared to (its `Manager::owner_id`), 0 if none yet.
    owner: AtomicU64,
}

#[derive(Debug, Default)]
struct FileState {
    /// Contents of a buffer, or of a temp or path once fetched.
    contents: Option<Arc<[u8]>>,
    /// Times a task's output replaced the contents (see [`File::set_contents`]).
    rewritten: u64,
    /// Every NUL-terminated snapshot handed to C, kept alive with the file.
    fetched: Vec<Arc<[u8]>>,
    /// Where the manager keeps a temp's data: made by a local task, or
    /// fetched from the worker that made it.
    temp_location: Option<PathBuf>,
    /// For a file kept forever, its name in the workers' stores (once computed).
    content_name: Option<String>,
    /// For a declared file or buffer kept at workers: the content hash of the
    /// version the manager last sent, and how many times it found the file
    /// changed from the version before (see [`File::copies_version`]).
    copies: Option<([u8; 32], u64)>,
    /// Permission bits set by [`File::set_mode`].
    mode: Option<u32>,
    /// The name a worker keeps a URL or mini-task file under, when the default
    /// (see [`File::worker_key`]) is not unique there.
    worker_key: Option<String>,
}

impl FileState {
    /// A NUL-terminated copy of `data` for C, kept alive with the file: the
    /// last one again if it holds the same bytes, so that a file fetched again
    /// and again costs one copy per version of it, not one per call.
    fn snapshot(&mut self, data: &[u8]) -> Arc<[u8]> {
        if let Some(last) = self.fetched.last() {
            if last.len() == data.len() + 1 && last[..data.len()] == *data {
                return last.clone();
            }
        }
        let mut v = Vec::with_capacity(data.len() + 1);
        v.extend_from_slice(data);
        v.push(0);
        let snapshot: Arc<[u8]> = Arc::from(v);
        self.fetched.push(snapshot.clone());
        snapshot
    }
}

static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// Whether paths `a` and `b` name one place in the file system, however they
/// are spelled: relative to the working directory or absolute, through `..` or
/// through links to the directory they are in.
pub(crate) fn same_destination(a: &Path, b: &Path) -> bool {
    fn place(p: &Path) -> Option<PathBuf> {
        let abs = std::path::absolute(p).ok()?;
        let name = abs.file_name()?.to_owned();
        let parent = abs.parent()?;
        // The directory as the system resolves it, where it exists.
        let dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        Some(dir.join(name))
    }
    a == b || matches!((place(a), place(b)), (Some(x), Some(y)) if x == y)
}

impl File {
    fn new(kind: FileKind, cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        if flags & !FILE_FLAGS != 0 {
            return Err(Error::invalid(format!("unknown file flags {flags:#x}")));
        }
        use std::os::unix::ffi::OsStrExt;
        let source = match &kind {
            FileKind::Path(p) => p.as_os_str().as_bytes().to_vec(),
            FileKind::Buffer => b"buffer".to_vec(),
            FileKind::Temp => b"temp".to_vec(),
            FileKind::Url(u) => u.as_bytes().to_vec(),
            FileKind::MiniTask { output, .. } => output.as_bytes().to_vec(),
        };
        let source = std::ffi::CString::new(source)
            .map_err(|_| Error::invalid("a file name or URL cannot contain a NUL byte"))?;
        Ok(Arc::new(File {
            id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            cache,
            flags,
            source,
            state: Mutex::new(FileState::default()),
            owned: Mutex::new(None),
            owner: AtomicU64::new(0),
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

    /// A file downloaded from `url` by the worker that needs it.
    pub fn url(url: &str, cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        let lower = url.to_ascii_lowercase();
        if !["http://", "https://", "file://"]
            .iter()
            .any(|s| lower.starts_with(s) && lower.len() > s.len())
        {
            return Err(Error::invalid(format!(
                "{url:?} is not an http://, https:// or file:// URL"
            )));
        }
        if lower.starts_with("file://") {
            file_url_path(url).map_err(Error::invalid)?;
        }
        File::new(FileKind::Url(url.to_owned()), cache, flags)
    }

    /// A file made at the worker by running command task `task` and taking its
    /// output `output` (a name in its sandbox). Like TaskVine, never shared
    /// between workers (`FILE_PEER_NOSHARE` is added).
    pub fn mini_task(
        task: Box<crate::task::Task>,
        output: &str,
        cache: CacheLevel,
        flags: u32,
    ) -> Result<Arc<File>> {
        File::check_mini_task(&task, output)?;
        File::new(
            FileKind::MiniTask {
                task,
                output: output.to_owned(),
            },
            cache,
            flags | FILE_PEER_NOSHARE,
        )
    }

    /// Whether `task` can make a file as its output `output` (what
    /// [`File::mini_task`] checks), without taking it.
    pub fn check_mini_task(task: &crate::task::Task, output: &str) -> Result<()> {
        validate_remote_name(output)?;
        if !matches!(task.work, crate::task::Work::Command { .. }) {
            return Err(Error::invalid("a mini task must be a command task"));
        }
        // Workers refuse deeper nesting (see the protocol's bound).
        let depth = 1 + mini_task_depth(task);
        if depth > crate::protocol::MAX_MINI_TASK_DEPTH {
            return Err(Error::invalid(format!(
                "mini tasks nested {depth} deep: at most {} may be made one from another",
                crate::protocol::MAX_MINI_TASK_DEPTH
            )));
        }
        Ok(())
    }

    /// The directory made by unpacking tar archive `archive` at the worker: a
    /// mini task running `mkdir output && tar xf input -C output`.
    pub fn untar(archive: Arc<File>, cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        File::unpacking(
            archive,
            c"mkdir output && tar xf input -C output",
            "input",
            cache,
            flags,
        )
    }

    /// The environment packed in tarball `package`, unpacked at the worker: a
    /// mini task running `mkdir output && tar xf package.tar.gz -C output`.
    pub fn poncho(package: Arc<File>, cache: CacheLevel, flags: u32) -> Result<Arc<File>> {
        File::unpacking(
            package,
            c"mkdir output && tar xf package.tar.gz -C output",
            "package.tar.gz",
            cache,
            flags,
        )
    }

    fn unpacking(
        archive: Arc<File>,
        command: &std::ffi::CStr,
        input: &str,
        cache: CacheLevel,
        flags: u32,
    ) -> Result<Arc<File>> {
        let mut task = crate::task::Task::command(command);
        task.add_input(Mount::new(archive, input, 0)?)?;
        File::mini_task(task, "output", cache, flags)
    }

    /// What `vine_file_type` says it is.
    pub fn source_type(&self) -> SourceType {
        match self.kind {
            FileKind::Path(_) => SourceType::File,
            FileKind::Buffer => SourceType::Buffer,
            FileKind::Temp => SourceType::Temp,
            FileKind::Url(_) => SourceType::Url,
            FileKind::MiniTask { .. } => SourceType::MiniTask,
        }
    }

    /// What `vine_file_source` gives (see the field).
    pub fn source(&self) -> &std::ffi::CStr {
        &self.source
    }

    /// Keeps `thing` until the file goes away.
    pub(crate) fn own(&self, thing: Box<dyn std::any::Any + Send>) {
        *self.owned.lock().unwrap_or_else(|p| p.into_inner()) = Some(thing);
    }

    /// Whether a worker makes this file itself (a URL or a mini task's output).
    pub fn made_at_worker(&self) -> bool {
        matches!(self.kind, FileKind::Url(_) | FileKind::MiniTask { .. })
    }

    /// The name a worker keeps a URL or mini-task file under between tasks, or
    /// None if it keeps it for one task only (cache level TASK). A URL kept for
    /// the worker's life or longer is named by its URL, so every declaration of
    /// it shares one download there (checked again against the server's ETag or
    /// Last-Modified once per manager); anything else by the file.
    pub fn worker_key(&self) -> Option<String> {
        if self.cache == CacheLevel::Task {
            return None;
        }
        if let Some(k) = &self.state().worker_key {
            return Some(k.clone());
        }
        Some(match &self.kind {
            FileKind::Url(u) if self.cache >= CacheLevel::Worker => url_key(u),
            _ => format!("file-{}", self.id),
        })
    }

    /// Sets the name a worker keeps the file under (see [`File::worker_key`]).
    pub(crate) fn set_worker_key(&self, key: String) {
        self.state().worker_key = Some(key);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A number unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes manager `manager` the file's owner, unless another one is: true
    /// if `manager` owns it now.
    pub(crate) fn claim(&self, manager: u64) -> bool {
        match self
            .owner
            .compare_exchange(0, manager, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(owner) => owner == manager,
        }
    }

    /// False if a manager other than `manager` declared the file itself (one
    /// never declared belongs to none).
    pub(crate) fn declared_by(&self, manager: u64) -> bool {
        let owner = self.owner.load(Ordering::Acquire);
        owner == 0 || owner == manager
    }

    /// False if a manager other than `manager` declared the file (one never
    /// declared belongs to none and may go to any).
    /// A file made by a mini task is usable only where every file that task
    /// reads is.
    pub(crate) fn usable_by(&self, manager: u64) -> bool {
        self.declared_by(manager)
            && match &self.kind {
                FileKind::MiniTask { task, .. } => task
                    .extra
                    .as_ref()
                    .is_none_or(|e| e.inputs.iter().all(|m| m.file.usable_by(manager))),
                _ => true,
            }
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

    /// What the file holds in memory (a buffer's bytes, or what was last
    /// fetched), NUL-terminated, kept alive with the file; None if nothing.
    pub fn contents_c(&self) -> Option<Arc<[u8]>> {
        let mut st = self.state();
        let c = st.contents.clone()?;
        Some(st.snapshot(&c))
    }

    /// Replaces the contents (a buffer written as a task output).
    pub(crate) fn set_contents(&self, data: Vec<u8>) {
        let mut st = self.state();
        st.contents = Some(Arc::from(data));
        st.rewritten += 1;
    }

    /// The contents with how many times a task's output replaced them: what
    /// a copy made of them on disk is named by.
    pub(crate) fn contents_version(&self) -> (Option<Arc<[u8]>>, u64) {
        let st = self.state();
        (st.contents.clone(), st.rewritten)
    }

    /// For a file kept forever, its name in the workers' stores, once computed.
    pub(crate) fn content_name(&self) -> Option<String> {
        self.state().content_name.clone()
    }

    /// The file was written anew (a task's output): its content name, if
    /// computed, no longer names what it holds.
    pub(crate) fn forget_content_name(&self) {
        self.state().content_name = None;
    }

    /// The version of the file that copies made now hold, given `now`, the
    /// content hash of what the manager has: 0 until the manager finds it
    /// changed (written on its disk, a buffer's bytes replaced) from what it
    /// sent before, one more each time. True if it just found it changed:
    /// copies made before hold an older version.
    pub(crate) fn copies_version(&self, now: [u8; 32]) -> (u64, bool) {
        let mut st = self.state();
        match &mut st.copies {
            None => {
                st.copies = Some((now, 0));
                (0, false)
            }
            Some((hash, version)) if *hash == now => (*version, false),
            Some((hash, version)) => {
                *hash = now;
                *version += 1;
                (*version, true)
            }
        }
    }

    /// The version [`File::copies_version`] last gave (0 if none).
    pub(crate) fn copies_version_known(&self) -> u64 {
        self.state().copies.map_or(0, |(_, v)| v)
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

    /// A remote task wrote the temp anew: the manager's copy of what it held
    /// before is removed.
    pub(crate) fn drop_temp_location(&self) {
        if let Some(loc) = self.state().temp_location.take() {
            crate::transfer::remove_all(&loc);
        }
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
                    .with_errno(libc::ENOENT)
                })?;
                std::fs::read(&loc).map_err(|e| Error::io(loc.display(), e))?
            }
            FileKind::Url(_) | FileKind::MiniTask { .. } => {
                return Err(Error::new(
                    crate::error::ErrorKind::Unsupported,
                    "a URL or mini-task file exists only at the workers that make it",
                ))
            }
        };
        let mut st = self.state();
        let snapshot = st.snapshot(&data);
        st.contents = Some(Arc::from(data));
        Ok(snapshot)
    }

    /// Size in bytes of what the file holds now, if known.
    pub fn size(&self) -> Option<u64> {
        match &self.kind {
            FileKind::Path(p) => tree_size(p),
            FileKind::Buffer => self.contents().map(|c| c.len() as u64),
            FileKind::Temp => self.temp_location().and_then(|p| tree_size(&p)),
            FileKind::Url(_) | FileKind::MiniTask { .. } => None,
        }
    }

    /// Removes what the manager holds for the file when it goes away: a temp's
    /// data, and a path declared with `FILE_UNLINK_WHEN_DONE`.
    pub(crate) fn release(&self) {
        if let FileKind::Path(p) = &self.kind {
            if self.flags & FILE_UNLINK_WHEN_DONE != 0 {
                // A directory too, whole.
                crate::transfer::remove_all(p);
            }
        }
        if let Some(loc) = self.state().temp_location.take() {
            // A directory too, whole.
            crate::transfer::remove_all(&loc);
        }
    }
}

/// Bytes at `path`: a file's length, or the lengths of the regular files in a
/// directory and all below it (links not followed); None if nothing is there.
fn tree_size(path: &Path) -> Option<u64> {
    fn below(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => below(&e.path()),
                Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                _ => 0,
            })
            .sum()
    }
    let meta = std::fs::metadata(path).ok()?;
    Some(if meta.is_dir() {
        below(path)
    } else {
        meta.len()
    })
}

/// The name under which workers keep the download of `url` for their life.
pub(crate) fn url_key(url: &str) -> String {
    use sha2::Digest;
    let h: [u8; 32] = sha2::Sha256::digest(url.as_bytes()).into();
    format!("url-{}", crate::protocol::hex_name(&h))
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("cache", &self.cache)
            .finish()
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

/// Makes command task `task` run inside the environment `package` (a directory
/// at the worker, e.g. from [`File::poncho`]): it is linked into the sandbox as
/// `__vine_env_<file id>`, and the command first sources its `bin/activate`, or
/// without one puts its `bin` first in `PATH`.
pub fn add_poncho_package(task: &mut crate::task::Task, package: Arc<File>) -> Result<()> {
    let name = format!("__vine_env_{}", package.id());
    let mount = Mount::new(package, &name, MOUNT_SYMLINK)?;
    let crate::task::Work::Command { command } = &task.work else {
        return Err(Error::invalid("only a command task runs in an environment"));
    };
    if command.is_empty() {
        // Wrapped, it would no longer look empty, and would run the wrapper alone.
        return Err(Error::invalid(
            "the task has no command yet: set it before adding an environment",
        ));
    }
    let env = format!("\"$PWD/{name}\"");
    let mut wrapped = format!(
        "if [ -f {env}/bin/activate ]; then . {env}/bin/activate; \
         else PATH={env}/bin:\"$PATH\"; export PATH; fi\n"
    )
    .into_bytes();
    wrapped.extend_from_slice(command.to_bytes());
    let wrapped =
        std::ffi::CString::new(wrapped).map_err(|_| Error::invalid("a NUL byte in the command"))?;
    task.add_input(mount)?;
    task.work = crate::task::Work::Command { command: wrapped };
    Ok(())
}

/// The longest name of a file in a task's sandbox, in bytes: the sandbox's
/// own path and this must stay under the system's 4096.
pub const MAX_REMOTE_NAME: usize = 3072;
/// The longest component of such a name (`NAME_MAX` of Linux file systems).
pub const MAX_NAME_COMPONENT: usize = 255;

/// Accepts a relative path of normal components: no `..`, no root, no `.`-only,
/// nothing empty, none too long. Such a name cannot leave the directory it is
/// joined to, and a file system can hold it there.
pub fn validate_remote_name(name: &str) -> Result<()> {
    validate_name(name, true)
}

/// [`validate_remote_name`] without the length bounds: for the entries of a
/// directory on its way, whose depth the file system that made it allowed.
pub(crate) fn validate_entry_name(name: &str) -> Result<()> {
    validate_name(name, false)
}

fn validate_name(name: &str, bounded: bool) -> Result<()> {
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
    if bounded && name.len() > MAX_REMOTE_NAME {
        return refuse(&format!(
            "is {} bytes long: at most {MAX_REMOTE_NAME}, to leave room for the sandbox's own path",
            name.len()
        ));
    }
    let mut normal = 0;
    for c in path.components() {
        match c {
            Component::Normal(part) if bounded && part.len() > MAX_NAME_COMPONENT => {
                return refuse(&format!(
                    "has a component of {} bytes: a file system takes at most {MAX_NAME_COMPONENT}",
                    part.len()
                ))
            }
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

/// The local path a `file://` URL names: `file:///path` or
/// `file://localhost/path`, with `%XX` escapes decoded (RFC 8089). Another
/// host, a relative path, a bad escape or an escaped NUL is refused.
pub(crate) fn file_url_path(url: &str) -> std::result::Result<PathBuf, String> {
    use std::os::unix::ffi::OsStringExt;
    let rest = url.get(7..).unwrap_or_default();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
        return Err(format!("{url}: a file:// URL for another host ({host})"));
    }
    if path.is_empty() {
        return Err(format!("{url}: a file:// URL without a path"));
    }
    let mut bytes = Vec::with_capacity(path.len());
    let mut it = path.bytes();
    while let Some(b) = it.next() {
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
        match (hex(it.next()), hex(it.next())) {
            (Some(0), Some(0)) => return Err(format!("{url}: a NUL byte in the path")),
            (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
            _ => return Err(format!("{url}: a % not followed by two hex digits")),
        }
    }
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// How deep the mini tasks making `task`'s inputs go (0: none of its inputs is
/// made by a mini task).
fn mini_task_depth(task: &crate::task::Task) -> u32 {
    task.extra.as_ref().map_or(0, |e| {
        e.inputs
            .iter()
            .filter_map(|m| match &m.file.kind {
                FileKind::MiniTask { task, .. } => Some(1 + mini_task_depth(task)),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn mini_tasks_nest_as_deep_as_workers_take_them_and_no_deeper() {
        let mut file = File::buffer(b"x", CacheLevel::Task, 0).unwrap();
        for depth in 1..=crate::protocol::MAX_MINI_TASK_DEPTH + 1 {
            let mut task = crate::task::Task::command(c"cp in out");
            task.add_input(Mount::new(file.clone(), "in", 0).unwrap())
                .unwrap();
            match File::mini_task(task, "out", CacheLevel::Task, 0) {
                Ok(made) => file = made,
                Err(e) => {
                    assert_eq!(depth, crate::protocol::MAX_MINI_TASK_DEPTH + 1);
                    assert!(e.to_string().contains("nested"), "{e}");
                    return;
                }
            }
        }
        panic!("mini tasks nested past the bound were accepted");
    }

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
    fn names_no_file_system_could_hold_are_refused() {
        let part = |n: usize| "p".repeat(n);
        assert!(validate_remote_name(&part(MAX_NAME_COMPONENT)).is_ok());
        let e = validate_remote_name(&format!("d/{}", part(MAX_NAME_COMPONENT + 1))).unwrap_err();
        assert!(e.to_string().contains("component of 256 bytes"), "{e}");
        // Long, each component short: up to the bound.
        let long = |n: usize| vec!["d"; n / 2].join("/");
        assert!(validate_remote_name(&long(MAX_REMOTE_NAME)).is_ok());
        let e = validate_remote_name(&long(MAX_REMOTE_NAME + 4)).unwrap_err();
        assert!(e.to_string().contains("bytes long"), "{e}");
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
        // Fetched again unchanged: the same copy, however many times.
        for _ in 0..1000 {
            assert!(Arc::ptr_eq(&f.fetch().unwrap(), &second));
            assert!(Arc::ptr_eq(&f.contents_c().unwrap(), &second));
        }
        assert_eq!(f.state().fetched.len(), 2);
        // A path read again after it changed: a new copy, the old one intact.
        let dir = fresh_dir(&std::env::temp_dir(), "vine-fetch-test").unwrap();
        let p = File::path(&dir.join("x"), CacheLevel::Task, 0).unwrap();
        std::fs::write(dir.join("x"), b"one").unwrap();
        let one = p.fetch().unwrap();
        assert!(Arc::ptr_eq(&p.fetch().unwrap(), &one));
        std::fs::write(dir.join("x"), b"two").unwrap();
        let two = p.fetch().unwrap();
        assert_eq!((&one[..], &two[..]), (&b"one\0"[..], &b"two\0"[..]));
        assert_eq!(p.state().fetched.len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_directorys_size_is_what_its_files_hold() {
        let dir = fresh_dir(&std::env::temp_dir(), "vine-size-test").unwrap();
        std::fs::create_dir_all(dir.join("d/sub")).unwrap();
        std::fs::write(dir.join("d/a"), [0u8; 1000]).unwrap();
        std::fs::write(dir.join("d/sub/b"), [0u8; 234]).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("d/link")).unwrap();
        let f = File::path(&dir.join("d"), CacheLevel::Task, 0).unwrap();
        assert_eq!(f.size(), Some(1234));
        let none = File::path(&dir.join("nothing"), CacheLevel::Task, 0).unwrap();
        assert_eq!(none.size(), None);
        // A temp held as a directory goes whole when released.
        let t = File::temp().unwrap();
        t.set_temp_location(dir.join("d"));
        assert_eq!(t.size(), Some(1234));
        t.release();
        assert!(!dir.join("d").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unknown_flags_and_levels_are_refused() {
        assert!(File::buffer(b"", CacheLevel::Task, 64).is_err());
        assert!(CacheLevel::from_code(4).is_err());
        let f = File::temp().unwrap();
        assert!(Mount::new(f, "out", 1 << 10).is_err());
    }
}
