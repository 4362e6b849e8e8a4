//! Supervising a child process: read its output up to a cap, notice its exit
//! without polling (a pidfd), enforce a deadline, and kill its whole process group.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
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
    pgid: AtomicI32,
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
        self.pgid.store(0, Ordering::Release);
    }

    /// True once cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Records the process group of the running command.
    pub fn set_pgid(&self, pgid: i32) {
        self.pgid.store(pgid, Ordering::Release);
        if self.is_cancelled() {
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
    /// It was killed by a cancellation.
    Cancelled,
    /// It was killed for using this many MB, more than its memory.
    OverMemory(u64),
    /// It was killed, or its results refused, for writing this many MB, more than
    /// its disk.
    OverDisk(u64),
}

impl Ending {
    /// Records in `task` an ending that is not a normal exit (cancelled, killed at a
    /// limit, killed by a signal) and returns None; a normal exit's status is
    /// returned for the caller to interpret. `what` names the process in reasons.
    pub fn settle(self, task: &mut crate::task::Task, what: &str) -> Option<ExitStatus> {
        use crate::task::TaskResult;
        let (result, reason) = match self {
            Ending::Cancelled => (TaskResult::Cancelled, "the task was cancelled".to_owned()),
            Ending::TimedOut if task.time_end() > 0 && crate::task::now_us() >= task.time_end() => {
                (TaskResult::MaxEndTime, "killed at its end time".to_owned())
            }
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
    /// Killed when the files under this directory take more than this many MB.
    pub disk: Option<(&'a Path, u64)>,
}

/// How often (ms) the memory of a limited process group is measured.
const MEMORY_CHECK_MS: i32 = 20;

/// How often (ms) the disk used by a limited sandbox is measured.
const DISK_CHECK_MS: i32 = 100;

/// Bytes of disk taken by the files under `dir` (symbolic links not followed).
/// A file counts for the larger of its length and its allocated blocks: some file
/// systems allocate blocks only when data is flushed.
pub fn disk_used_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        total += (meta.blocks() * 512).max(meta.len());
        if meta.is_dir() {
            total += disk_used_bytes(&e.path());
        }
    }
    total
}

/// Whether the files under `dir` take more than `mb` MB; if so, how many MB.
pub fn over_disk(dir: &Path, mb: u64) -> Option<u64> {
    let used = disk_used_bytes(dir);
    (used > mb.saturating_mul(1 << 20)).then(|| used.div_ceil(1 << 20))
}

/// Resident memory, in MB, of every process in group `pgid`.
pub fn group_rss_mb(pgid: i32) -> u64 {
    let page_kb = 4; // Linux reports RSS in pages; x86-64 and arm64 default to 4 KiB.
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut kb = 0u64;
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
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) == Some(pgid) {
            kb += fields
                .get(21)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
                * page_kb;
        }
    }
    kb / 1024
}

/// Waits for a child by pid (the library forks some itself, so not every child is
/// a `std::process::Child`).
struct Reaper(i32);

impl Reaper {
    fn reap(&self, flags: i32) -> std::io::Result<Option<ExitStatus>> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child, writing into a local int.
            let rc = unsafe { libc::waitpid(self.0, &mut status, flags) };
            if rc == self.0 {
                return Ok(Some(ExitStatus::from_raw(status)));
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

    fn wait(&self) -> std::io::Result<ExitStatus> {
        self.reap(0)?
            .ok_or_else(|| std::io::Error::other("waitpid returned no status"))
    }

    fn try_wait(&self) -> std::io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
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

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Waits for `child` (leader of its own process group), reading `output` into at
/// most `cap` bytes, killing the group at `deadline` or when `control` is cancelled.
/// When the child exits, whatever is left of its group is killed too.
pub fn supervise(
    pid: i32,
    mut output: std::io::PipeReader,
    limits: Limits,
    control: &RunControl,
) -> std::io::Result<(Ending, Captured)> {
    let Limits {
        cap,
        deadline,
        memory_mb,
        disk,
    } = limits;
    let child = Reaper(pid);
    // Without pidfds (old kernels, tools that trace system calls) the exit is
    // noticed by checking every EXIT_CHECK_MS instead.
    let pidfd = pidfd_open(pid).ok();
    let out_fd = output.as_raw_fd();
    set_nonblocking(out_fd);
    let mut captured = Captured::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pipe_open = true;
    let mut timed_out = false;
    let mut peak_mb = None;
    let mut disk_mb = None;
    let mut next_disk_check = Instant::now();
    let status = loop {
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
        if memory_mb > 0 && !(0..=MEMORY_CHECK_MS).contains(&timeout_ms) {
            timeout_ms = MEMORY_CHECK_MS;
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
            kill_group(pid);
            let _ = child.wait();
            crate::worker::guardian::release(pid);
            return Err(err);
        }
        if pipe_open && fds[0].revents != 0 {
            pipe_open = drain(&mut output, &mut buf, &mut captured, cap);
        }
        if pidfd.is_some() {
            if fds[1].revents != 0 {
                break child.wait()?;
            }
        } else if let Some(status) = child.try_wait()? {
            break status;
        }
        if !timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            kill_group(pid);
        }
        if memory_mb > 0 && peak_mb.is_none() {
            let used = group_rss_mb(pid);
            if used > memory_mb {
                peak_mb = Some(used);
                kill_group(pid);
            }
        }
        if let Some((dir, mb)) = disk {
            if disk_mb.is_none() && Instant::now() >= next_disk_check {
                next_disk_check = Instant::now() + Duration::from_millis(DISK_CHECK_MS as u64);
                disk_mb = over_disk(dir, mb);
                if disk_mb.is_some() {
                    kill_group(pid);
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
    let ending = if control.is_cancelled() {
        Ending::Cancelled
    } else if let Some(mb) = peak_mb {
        Ending::OverMemory(mb)
    } else if let Some(mb) = disk_mb {
        Ending::OverDisk(mb)
    } else if timed_out {
        Ending::TimedOut
    } else {
        Ending::Exited(status)
    };
    Ok((ending, captured))
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
