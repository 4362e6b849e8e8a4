//! Supervising a child process: read its output up to a cap, notice its exit
//! without polling (a pidfd), enforce a deadline, and kill its whole process group.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Lets another thread stop a running task: the flag for functions, a kill of the
/// process group for commands.
#[derive(Debug, Default)]
pub struct RunControl {
    cancelled: AtomicBool,
    /// Stopped at its end time by the manager (see [`RunControl::expire`]).
    expired: AtomicBool,
    pgid: AtomicI32,
    /// A pidfd of the group's leader while it runs: a leader that moved to
    /// another group (`setpgid`) is killed through it, which no reuse of its
    /// pid can misdirect. Cleared before the leader is reaped.
    leader: std::sync::Mutex<Option<std::sync::Arc<OwnedFd>>>,
    /// Panic as soon as the process group is recorded, as a bug in the
    /// supervisor would (tests only).
    #[cfg(test)]
    pub(crate) panic_when_started: AtomicBool,
}

/// The process group a supervisor was made to panic on (tests only).
#[cfg(test)]
pub(crate) static PANICKED_ON: AtomicI32 = AtomicI32::new(0);

impl RunControl {
    /// Clears the control for the next task.
    pub fn reset(&self) {
        self.cancelled.store(false, Ordering::Release);
        self.expired.store(false, Ordering::Release);
        self.pgid.store(0, Ordering::Release);
        *self.leader() = None;
    }

    fn leader(&self) -> std::sync::MutexGuard<'_, Option<std::sync::Arc<OwnedFd>>> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the pidfd of the running group's leader (see `leader`).
    fn set_leader(&self, pidfd: std::sync::Arc<OwnedFd>) {
        let mut leader = self.leader();
        if self.is_cancelled() || self.is_expired() {
            signal_pidfd(&pidfd);
        }
        *leader = Some(pidfd);
    }

    /// Forgets the leader's pidfd: it is about to be reaped.
    fn clear_leader(&self) {
        *self.leader() = None;
    }

    /// Kills the group's leader, wherever it is now.
    fn kill_leader(&self) {
        if let Some(pidfd) = self.leader().as_ref() {
            signal_pidfd(pidfd);
        }
    }

    /// True once cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Records the process group of the running command.
    pub fn set_pgid(&self, pgid: i32) {
        self.pgid.store(pgid, Ordering::Release);
        if self.is_cancelled() || self.is_expired() {
            kill_group(pgid);
        }
        #[cfg(test)]
        if self.panic_when_started.load(Ordering::Acquire) {
            PANICKED_ON.store(pgid, Ordering::Release);
            panic!("the supervisor of process group {pgid} was made to panic");
        }
    }

    /// The supervisor of the task failed (a bug in the library): kills the
    /// process group it was watching, if any, and reaps its leader, so that
    /// nothing runs on unsupervised.
    pub fn abandon(&self) {
        let pgid = self.pgid.swap(0, Ordering::AcqRel);
        if pgid > 0 {
            kill_group(pgid);
            // A leader that left its group, if not reaped yet (its pidfd is
            // cleared before it is).
            self.kill_leader();
            self.clear_leader();
            let _ = Reaper(pgid).wait();
        }
    }

    /// Forgets the process group once it has been reaped.
    pub fn clear_pgid(&self) {
        self.pgid.store(0, Ordering::Release);
    }

    /// Requests cancellation; a running command's group is killed at once.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let pgid = self.pgid.load(Ordering::Acquire);
        if pgid > 0 {
            kill_group(pgid);
        }
        self.kill_leader();
    }

    /// The task's end time passed (as the manager's clock tells it): a running
    /// command's group is killed at once and ends as one killed at its end time
    /// by its own deadline does, returning what it wrote.
    pub fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        let pgid = self.pgid.load(Ordering::Acquire);
        if pgid > 0 {
            kill_group(pgid);
        }
        self.kill_leader();
    }

    /// True once [`RunControl::expire`] was called.
    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }
}

/// The instant `seconds` from now; None when that is past what an `Instant` can
/// hold (a deadline that would never come).
pub fn deadline_in(seconds: f64) -> Option<Instant> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
}

/// When a process running `task` must be killed: at its time_max from now or
/// at its end time, whichever comes first (None: neither is set).
pub fn task_deadline(task: &crate::task::Task) -> Option<Instant> {
    let time_max = task.time_max();
    let by_max = (time_max > 0.0).then(|| deadline_in(time_max)).flatten();
    let end = task.time_end();
    let by_end = (end > 0)
        .then(|| {
            let left = (end - crate::task::now_us()).max(0) as u64;
            Instant::now().checked_add(Duration::from_micros(left))
        })
        .flatten();
    match (by_max, by_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sends SIGKILL to the process `pidfd` names, if it is still there.
fn signal_pidfd(pidfd: &OwnedFd) {
    // SAFETY: the syscall takes a descriptor, a signal number, a null info
    // pointer and flags; a process gone already only makes it fail.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// Kills leader `pid` of group `pid` and the group: the leader may have left
/// it. Only for a leader not yet reaped (its pid cannot have been reused).
fn kill_leader_and_group(pid: i32) {
    kill_group(pid);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Sends SIGKILL to every process of group `pgid`.
pub fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill has no memory-safety preconditions; a negative pid names a group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// How the supervision ended.
#[derive(Debug)]
pub enum Ending {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// It was killed at its deadline.
    TimedOut,
    /// It was killed at its end time, which the manager told passed.
    EndTime,
    /// It was killed by a cancellation.
    Cancelled,
    /// It was killed for using this many MB, more than its memory.
    OverMemory(u64),
    /// It was killed, or its results refused, for writing this many MB, more than
    /// its disk.
    OverDisk(u64),
    /// It was killed, or its results refused, for nesting directories in its
    /// sandbox deeper than can be measured (this many MB counted), while
    /// limited to a disk size.
    TooDeep(u64),
}

impl Ending {
    /// Records in `task` an ending that is not a normal exit (cancelled, killed at a
    /// limit, killed by a signal) and returns None; a normal exit's status is
    /// returned for the caller to interpret. `what` names the process in reasons.
    pub fn settle(self, task: &mut crate::task::Task, what: &str) -> Option<ExitStatus> {
        use crate::task::TaskResult;
        // Killed at a limit: its exit code is the signal that ended it (SIGKILL),
        // as TaskVine reports it.
        if matches!(
            self,
            Ending::TimedOut | Ending::EndTime | Ending::OverMemory(_)
        ) {
            task.exit_code = libc::SIGKILL;
        }
        let (result, reason) = match self {
            Ending::Cancelled => (TaskResult::Cancelled, "the task was cancelled".to_owned()),
            Ending::TimedOut if task.time_end() > 0 && crate::task::now_us() >= task.time_end() => {
                (TaskResult::MaxEndTime, "killed at its end time".to_owned())
            }
            Ending::EndTime => (TaskResult::MaxEndTime, "killed at its end time".to_owned()),
            Ending::TimedOut => (
                TaskResult::MaxWallTime,
                format!("killed after its time_max of {} s", task.time_max()),
            ),
            Ending::OverMemory(mb) => (
                TaskResult::ResourceExhaustion,
                format!(
                    "used {mb} MB, more than its {} MB of memory",
                    task.request.memory_mb
                ),
            ),
            Ending::OverDisk(mb) => (
                TaskResult::ResourceExhaustion,
                format!(
                    "its sandbox took {mb} MB, more than its {} MB of disk",
                    task.request.disk_mb
                ),
            ),
            Ending::TooDeep(mb) => (
                TaskResult::ResourceExhaustion,
                format!(
                    "its sandbox nests directories past the system's path limit, too deep \
                     to measure against its {} MB of disk ({mb} MB counted)",
                    task.request.disk_mb
                ),
            ),
            Ending::Exited(status) => match signal_of(&status) {
                Some(sig) => {
                    task.exit_code = sig;
                    (
                        TaskResult::Signal,
                        format!("{what} was killed by signal {sig}"),
                    )
                }
                None => return Some(status),
            },
        };
        task.finish(result, Some(reason));
        None
    }
}

/// The bounds a supervised process runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    /// Bytes of output kept.
    pub cap: usize,
    /// Killed at this time.
    pub deadline: Option<Instant>,
    /// Killed when its process group's resident memory passes this (0 = no limit).
    pub memory_mb: u64,
    /// Its sandbox, if it has one: measured for `disk_mb` and when monitored.
    pub sandbox: Option<&'a Path>,
    /// Killed when the files under the sandbox take more than this many MB
    /// (0 = no limit).
    pub disk_mb: u64,
    /// Measure what it uses (see [`Usage`]).
    pub monitor: bool,
    /// The process is a fork of this one (a PROCESS function): the pages it
    /// still shares with this process are this process's, not the task's, so
    /// its memory is what its group holds privately.
    pub forked: bool,
}

/// What a supervised process group used, when it was monitored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Peak resident memory of the group, MB: the larger of the sampled sum over
    /// the group and the kernel's peak for the largest process waited for.
    pub memory_mb: u64,
    /// Peak size of the sandbox, MB.
    pub disk_mb: u64,
    /// User and system CPU time of the leader and the descendants it waited for.
    pub cpu_us: u64,
    /// Bytes read through system calls, summed over the processes seen.
    pub bytes_read: u64,
    /// Bytes written through system calls, summed over the processes seen.
    pub bytes_written: u64,
    /// Most processes of the group seen at once.
    pub max_processes: u32,
}

impl Usage {
    /// As a task's measurement, for an attempt that took `wall`.
    pub fn measured(&self, wall: Duration) -> crate::resources::Measured {
        crate::resources::Measured {
            wall_us: wall.as_micros() as u64,
            cpu_us: self.cpu_us,
            memory_mb: Some(self.memory_mb),
            disk_mb: self.disk_mb,
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
            max_processes: self.max_processes,
        }
    }
}

/// How often (ms) a monitored process group is sampled.
const MONITOR_MS: i32 = 50;

/// How often (ms) the memory of a limited process group is measured.
const MEMORY_CHECK_MS: i32 = 20;

/// How often (ms) the disk used by a limited sandbox is measured.
const DISK_CHECK_MS: i32 = 100;

/// Bytes of disk taken by the files under `dir` (symbolic links not followed),
/// and whether every directory could be measured: one nested so deep that its
/// path passes the system's limit (`PATH_MAX`) cannot be listed by name, and
/// what it holds is not counted (false then). A file counts for the larger of
/// its length and its allocated blocks: some file systems allocate blocks only
/// when data is flushed.
///
/// A task may take its own permissions away from a directory of its sandbox
/// (`chmod 000`): what is in it would then not count, and the limit could be
/// passed. Such a directory gets the owner's read and search permissions back.
pub fn disk_use(dir: &Path) -> (u64, bool) {
    // Directories still to list. Each is listed whole and closed before the
    // next is opened, so a deep tree holds one descriptor at a time, and no
    // recursion follows its depth.
    let mut to_list = vec![dir.to_path_buf()];
    let mut total = 0;
    let mut whole = true;
    while let Some(dir) = to_list.pop() {
        let listed = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && let_owner_in(&dir) => {
                std::fs::read_dir(&dir)
            }
            listed => listed,
        };
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) => {
                whole &= !too_long(&e);
                continue;
            }
        };
        let mut repaired = false;
        for e in entries.flatten() {
            let meta = match e.metadata() {
                Ok(meta) => meta,
                // Listed but not searchable (read without execute permission).
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied && !repaired => {
                    repaired = true;
                    let_owner_in(&dir);
                    match e.metadata() {
                        Ok(meta) => meta,
                        Err(_) => continue,
                    }
                }
                Err(_) => continue,
            };
            total += (meta.blocks() * 512).max(meta.len());
            if meta.is_dir() {
                to_list.push(e.path());
            }
        }
    }
    (total, whole)
}

/// Measures sandbox `dir` into `usage`; its MB and whether it was measured
/// whole if it passes `limit` (MB; 0: none) or cannot be measured against it.
fn over_disk(dir: &Path, limit: u64, usage: &mut Usage) -> Option<(u64, bool)> {
    let (bytes, whole) = disk_use(dir);
    let used = bytes.div_ceil(1 << 20);
    usage.disk_mb = usage.disk_mb.max(used);
    (limit > 0 && (used > limit || !whole)).then_some((used, whole))
}

/// True for an error that says a path is longer than the system takes.
fn too_long(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENAMETOOLONG)
}

/// Adds the owner's read and search permissions to directory `dir`; whether
/// it could.
fn let_owner_in(dir: &Path) -> bool {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode() | 0o500;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).is_ok()
        }
        _ => false,
    }
}

/// Resident memory (MB) and number of the processes in group `pgid`; with `io`,
/// also records each one's bytes read and written (by pid) there. With
/// `private`, a process's memory is what it holds alone (see
/// [`Limits::forked`]).
fn sample_group(
    pgid: i32,
    mut io: Option<&mut HashMap<i32, (u64, u64)>>,
    private: bool,
) -> (u64, u32) {
    let page_kb = 4; // Linux reports RSS in pages; x86-64 and arm64 default to 4 KiB.
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut kb = 0u64;
    let mut count = 0u32;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces) start at ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): pgrp is field 5, rss field 24.
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        count += 1;
        let rss_kb = || {
            fields
                .get(21)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
                * page_kb
        };
        kb += if private {
            private_kb(name).unwrap_or_else(rss_kb)
        } else {
            rss_kb()
        };
        if let (Some(io), Ok(pid)) = (io.as_deref_mut(), name.parse::<i32>()) {
            if let Some(rw) = read_io(name) {
                io.insert(pid, rw);
            }
        }
    }
    (kb / 1024, count)
}

/// The memory process `pid` holds alone, KiB: its private pages, clean and
/// dirty (a page it shares with the process it was forked from, until either
/// writes it, is not among them). None where the kernel does not say.
fn private_kb(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(field("Private_Clean:")? + field("Private_Dirty:")?)
}

/// A process's bytes read and written through system calls (`rchar`, `wchar`).
fn read_io(pid: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("rchar:")?, field("wchar:")?))
}

/// Waits for a child by pid (the library forks some itself, so not every child is
/// a `std::process::Child`).
struct Reaper(i32);

impl Reaper {
    /// The child's status and resource use once it has exited.
    fn reap(&self, flags: i32) -> std::io::Result<Option<(ExitStatus, libc::rusage)>> {
        let mut status = 0;
        loop {
            // SAFETY: an all-zero rusage is a valid value of the plain C struct.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: wait4 on our own child, writing into a local int and struct.
            let rc = unsafe { libc::wait4(self.0, &mut status, flags, &mut usage) };
            if rc == self.0 {
                return Ok(Some((ExitStatus::from_raw(status), usage)));
            }
            if rc == 0 {
                return Ok(None);
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    fn wait(&self) -> std::io::Result<(ExitStatus, libc::rusage)> {
        self.reap(0)?
            .ok_or_else(|| std::io::Error::other("waitpid returned no status"))
    }

    fn try_wait(&self) -> std::io::Result<Option<(ExitStatus, libc::rusage)>> {
        self.reap(libc::WNOHANG)
    }
}

/// The peak resident memory of this process's own memory, MB: what a process
/// it starts inherits as its peak at exec (`VmHWM`). Not `getrusage`'s
/// figure, which also holds the peak this process itself inherited from the
/// one that started it: a launcher larger than the tasks would hide every
/// task's peak.
fn own_peak_mb() -> u64 {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            return kb.div_ceil(1024);
        }
    }
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the local struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return u64::MAX;
    }
    (usage.ru_maxrss.max(0) as u64).div_ceil(1024)
}

fn micros(t: libc::timeval) -> u64 {
    (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64
}

/// CPU time, microseconds, that `usage` reports.
pub fn cpu_us(usage: &libc::rusage) -> u64 {
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// For a task whose environment names `VINE_TEST_END_BEFORE_SUPERVISED`, waits
/// until its process `pid`, a child not yet waited for, has ended (it is a
/// zombie): the widest form of the runner's thread being off the core between
/// starting a process and supervising it. A bound of 60 s keeps a failure from
/// hanging the test.
#[cfg(test)]
pub(crate) fn test_end_before_supervised(task: &crate::task::Task, pid: i32) {
    if !task.has_test_env(b"VINE_TEST_END_BEFORE_SUPERVISED") {
        return;
    }
    let bound = Instant::now() + Duration::from_secs(60);
    while Instant::now() < bound {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) state ...": comm may hold spaces and parentheses.
        match stat.rsplit_once(')') {
            Some((_, rest)) if rest.trim_start().starts_with('Z') => return,
            _ => std::thread::yield_now(),
        }
    }
}

/// What the child printed.
#[derive(Debug, Default)]
pub struct Captured {
    /// Up to the cap.
    pub bytes: Vec<u8>,
    /// True if more than the cap was printed.
    pub truncated: bool,
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: the syscall takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub(crate) fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Waits for `child` (leader of its own process group), reading `output` into at
/// most `cap` bytes, killing the group at `deadline`, past its memory or disk
/// limit, or when `control` is cancelled, and measuring what it uses when
/// `limits.monitor` says so. When the child exits, whatever is left of its group
/// is killed too.
pub fn supervise(
    pid: i32,
    mut output: std::io::PipeReader,
    limits: Limits,
    control: &RunControl,
) -> std::io::Result<(Ending, Captured, Usage)> {
    let Limits {
        cap,
        deadline,
        memory_mb,
        sandbox,
        disk_mb: disk_limit,
        monitor,
        forked,
    } = limits;
    let disk = sandbox.filter(|_| disk_limit > 0 || monitor);
    let sample_memory = memory_mb > 0 || monitor;
    let child = Reaper(pid);
    // Without pidfds (old kernels, tools that trace system calls) the exit is
    // noticed by checking every EXIT_CHECK_MS instead.
    let pidfd = pidfd_open(pid).ok().map(std::sync::Arc::new);
    if let Some(fd) = &pidfd {
        control.set_leader(fd.clone());
    }
    let out_fd = output.as_raw_fd();
    set_nonblocking(out_fd);
    let mut captured = Captured::default();
    let mut usage = Usage::default();
    let mut io = HashMap::new();
    let mut leader_io = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pipe_open = true;
    let mut timed_out = false;
    let mut peak_mb = None;
    let mut disk_mb = None;
    let mut next_disk_check = Instant::now();
    let memory_every = if memory_mb > 0 {
        MEMORY_CHECK_MS
    } else {
        MONITOR_MS
    };
    let (status, rusage) = loop {
        let mut timeout_ms = match deadline {
            Some(d) if !timed_out => {
                let left = d.saturating_duration_since(Instant::now());
                let ms = left.as_millis().min(i32::MAX as u128 - 1) as i32;
                ms + i32::from(left.subsec_micros() % 1000 != 0)
            }
            _ => -1,
        };
        if pidfd.is_none() && !(0..=EXIT_CHECK_MS).contains(&timeout_ms) {
            timeout_ms = EXIT_CHECK_MS;
        }
        if sample_memory && !(0..=memory_every).contains(&timeout_ms) {
            timeout_ms = memory_every;
        }
        if disk.is_some() && !(0..=DISK_CHECK_MS).contains(&timeout_ms) {
            timeout_ms = DISK_CHECK_MS;
        }
        let mut fds = [
            libc::pollfd {
                fd: if pipe_open { out_fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of 2 pollfd structs for the call's duration;
        // poll ignores entries whose fd is negative.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            kill_leader_and_group(pid);
            control.clear_leader();
            let _ = child.wait();
            crate::worker::guardian::release(pid);
            return Err(err);
        }
        if pipe_open && fds[0].revents != 0 {
            pipe_open = drain(&mut output, &mut buf, &mut captured, cap);
        }
        if pidfd.is_some() {
            if fds[1].revents != 0 {
                if monitor {
                    // Until reaped, the leader's counts include those of the
                    // children it reaped.
                    leader_io = read_io(&pid.to_string());
                }
                control.clear_leader();
                break child.wait()?;
            }
        } else if let Some(done) = child.try_wait()? {
            break done;
        }
        if !timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            kill_leader_and_group(pid);
        }
        if sample_memory && peak_mb.is_none() {
            let (used, procs) = sample_group(pid, monitor.then_some(&mut io), forked);
            usage.memory_mb = usage.memory_mb.max(used);
            usage.max_processes = usage.max_processes.max(procs);
            if memory_mb > 0 && used > memory_mb {
                peak_mb = Some(used);
                kill_leader_and_group(pid);
            }
        }
        if let Some(dir) = disk {
            if disk_mb.is_none() && Instant::now() >= next_disk_check {
                next_disk_check = Instant::now() + Duration::from_millis(DISK_CHECK_MS as u64);
                disk_mb = over_disk(dir, disk_limit, &mut usage);
                if disk_mb.is_some() {
                    kill_leader_and_group(pid);
                }
            }
        }
    };
    // The leader is gone; anything it left in its group goes too, so the pipe's
    // writers close and what they wrote can be read to the end.
    kill_group(pid);
    crate::worker::guardian::release(pid);
    control.clear_pgid();
    while pipe_open {
        let mut fds = [libc::pollfd {
            fd: out_fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd. A short bound: a process that escaped the group
        // could hold the pipe open forever.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) };
        if rc <= 0 {
            break;
        }
        pipe_open = drain(&mut output, &mut buf, &mut captured, cap);
    }
    // The kernel's peak of the largest process catches what was too quick for
    // the samples (ru_maxrss, in KiB). But a process started by this one begins
    // with this one's peak (the kernel carries it over at exec, and a fork
    // copies the pages), so that figure says something only above this
    // process's own peak.
    let kernel_peak = (rusage.ru_maxrss.max(0) as u64).div_ceil(1024);
    let own_peak = own_peak_mb();
    let kernel_peak = if kernel_peak <= own_peak {
        0
    } else if forked {
        // A fork's peak counts the pages it shared with this process, which
        // were at most this process's peak: only what is above that is surely
        // its own.
        kernel_peak - own_peak
    } else {
        kernel_peak
    };
    if memory_mb > 0 && peak_mb.is_none() && kernel_peak > memory_mb {
        peak_mb = Some(kernel_peak);
    }
    if monitor {
        usage.memory_mb = usage.memory_mb.max(kernel_peak);
        usage.cpu_us = cpu_us(&rusage);
        usage.max_processes = usage.max_processes.max(1);
        for (r, w) in io.values() {
            usage.bytes_read += r;
            usage.bytes_written += w;
        }
        if let Some((r, w)) = leader_io {
            usage.bytes_read = usage.bytes_read.max(r);
            usage.bytes_written = usage.bytes_written.max(w);
        }
    }
    // What was written just before the process ended is measured here.
    if let Some(dir) = disk {
        let over = over_disk(dir, disk_limit, &mut usage);
        if disk_mb.is_none() && !timed_out {
            disk_mb = over;
        }
    }
    let ending = if control.is_cancelled() {
        Ending::Cancelled
    } else if let Some(mb) = peak_mb {
        Ending::OverMemory(mb)
    } else if let Some((mb, whole)) = disk_mb {
        if whole {
            Ending::OverDisk(mb)
        } else {
            Ending::TooDeep(mb)
        }
    } else if timed_out {
        Ending::TimedOut
    } else if control.is_expired() {
        Ending::EndTime
    } else {
        Ending::Exited(status)
    };
    Ok((ending, captured, usage))
}

/// Without a pidfd, how often (ms) the child's exit is checked.
const EXIT_CHECK_MS: i32 = 20;

/// Reads what is available; false at end of file.
fn drain(
    output: &mut std::io::PipeReader,
    buf: &mut [u8],
    captured: &mut Captured,
    cap: usize,
) -> bool {
    loop {
        match output.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                let room = cap.saturating_sub(captured.bytes.len());
                if n > room {
                    captured.truncated = true;
                }
                captured.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// The signal that ended `status`, if any.
pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    status.signal()
}

/// Opens `/dev/null` on whichever of descriptors 0, 1 and 2 is closed, before
/// the library opens descriptors of its own: in a program started with one
/// closed, a socket or pipe of the library's would otherwise take its number,
/// and what the program writes to stderr (say) would go into it.
pub(crate) fn open_standard_fds() {
    for fd in 0..3 {
        // SAFETY: fcntl F_GETFD only asks whether `fd` is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        {
            // SAFETY: opens /dev/null: the lowest free number, `fd` or below.
            let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if got > 2 {
                // Another thread took the number meanwhile: not ours to fill.
                // SAFETY: closes the descriptor just opened.
                unsafe { libc::close(got) };
            }
        }
    }
}

/// How a task ends whose child process could not be waited for: one whose
/// child was reaped by someone else (`ECHILD`) ran, so it is not run again
/// (`Unknown`); any other error is its worker's fault (`Forsaken`: it may run
/// again), with [`lost_track`]'s reason.
pub(crate) fn lost_child(task: &mut crate::task::Task, what: &str, e: &std::io::Error) {
    let result = if e.raw_os_error() == Some(libc::ECHILD) {
        crate::task::TaskResult::Unknown
    } else {
        crate::task::TaskResult::Forsaken
    };
    task.finish(result, Some(lost_track(what, e)));
}

/// Why a child process could not be waited for, as a task's reason: `what`
/// and the error, and when the program ignores SIGCHLD (which makes the
/// system reap children before anyone can read how they ended), that cause;
/// when it does not, another wait of the program's took the status.
pub(crate) fn lost_track(what: &str, e: &std::io::Error) -> String {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`.
    let ok = unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), old.as_mut_ptr()) } == 0;
    // SAFETY: zeroed is a valid sigaction, and sigaction filled it on success.
    let old = unsafe { old.assume_init() };
    let reaped =
        ok && (old.sa_sigaction == libc::SIG_IGN || old.sa_flags & libc::SA_NOCLDWAIT != 0);
    if reaped && e.raw_os_error() == Some(libc::ECHILD) {
        format!(
            "lost track of {what}: this program ignores SIGCHLD (SIG_IGN or SA_NOCLDWAIT), \
             so the system reaps child processes before their exit status can be read; \
             leave SIGCHLD at its default to run commands and PROCESS functions here"
        )
    } else if e.raw_os_error() == Some(libc::ECHILD) {
        format!(
            "lost track of {what}: its exit status was taken by another wait in this program \
             (a SIGCHLD handler or a waitpid(-1) that reaps children it did not start); it ran, \
             and is not run again; wait only for this program's own children \
             (waitpid with their pids) to run commands and PROCESS functions here"
        )
    } else {
        format!("lost track of {what}: {e}")
    }
}
