//! Processes started for tasks die with the process that started them.
//!
//! A command or a PROCESS-mode function runs as the leader of its own process
//! group, enlisted with a guardian: a small `/bin/sh` started once per process (not
//! as its child), at the first task that needs it, reading group ids from a socket
//! whose other end only this process holds. When that socket closes (this process has ended,
//! however, even by SIGKILL, which no handler can catch), the guardian kills every
//! group still enlisted, then every process whose environment holds
//! `VINE_GUARDIAN=<its pid>`, which commands are started with: that finds what
//! left its group (`setsid`, daemons) but kept its environment, and a command
//! started just before its enlistment.
//!
//! Commands are spawned without fork (std uses `posix_spawn`: forking a process
//! of many gigabytes costs milliseconds per command) and enlisted by the parent.
//! A PROCESS function's child is forked anyway: it enlists itself, and also asks
//! the kernel for SIGKILL when its parent goes (`PR_SET_PDEATHSIG`, sent when the
//! *thread* that forked it exits: a pool thread, which stays until the task's
//! process has been reaped), so it dies even without a guardian.
//!
//! A worker also hands its guardian its directory (sandboxes, cache, outputs),
//! which the guardian removes after the processes: a worker killed by a signal
//! (a batch system's SIGTERM, SIGKILL) dies at once, as a killed process
//! should, and leaves nothing on the node's scratch space.
//!
//! Limits: a process that left the group of a PROCESS-mode function, or that left
//! a command's group and cleared its environment, is not found; nor is anything
//! but a PROCESS function's leader if the guardian itself was killed.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The guardian's script. Reads lines `+PGID` (enlist) and `-PGID` (release), keeps
/// the enlisted ids as a multiset in `g`, and `=PATH` (a directory to remove
/// last) and `~PATH` (no longer) as a list of lines in `d`, one per worker the
/// process runs; at end of input kills what is left, then the processes marked
/// with its pid (a few rounds, for what they started meanwhile), then removes
/// the directories. Terminal signals are ignored: it must outlive the process
/// it guards.
const SCRIPT: &str = r#"trap '' HUP INT TERM QUIT PIPE
g=' '
n='
'
d=$n
while IFS= read -r m; do
  p=${m#?}
  case $m in
    +*) g="$g$p " ;;
    -*) case $g in *" $p "*) g="${g%% $p *} ${g#* $p }" ;; esac ;;
    =?*) d="$d$p$n" ;;
    ~?*) case $d in *"$n$p$n"*) d="${d%%"$n$p$n"*}$n${d#*"$n$p$n"}" ;; esac ;;
  esac
done
for p in $g; do kill -9 -$p 2>/dev/null; done
for round in 1 2 3; do
  found=$(grep -lzx "VINE_GUARDIAN=$$" /proc/[0-9]*/environ 2>/dev/null)
  [ -n "$found" ] || break
  for f in $found; do p=${f#/proc/}; kill -9 "${p%/environ}" 2>/dev/null; done
done
IFS=$n
set -f
for p in $d; do rm -rf -- "$p"; done
"#;

/// Starts the guardian in the background and prints its pid, so that it is not a
/// child of this process: a program's wait for any child of its own never waits for
/// it. Its input is the launcher's (kept as fd 3 past the rule that gives a
/// background command /dev/null).
const LAUNCH: &str = "exec 3<&0 </dev/null
/bin/sh -c \"$1\" vine-guardian <&3 3<&- >/dev/null 2>&1 &
echo $!
";

struct Guardian {
    /// This process's end of the socket; close-on-exec, so no command inherits it.
    socket: OwnedFd,
    /// The guardian's pid, the value of the `VINE_GUARDIAN` mark.
    pid: u32,
}

/// This process's guardian, or when starting one last failed: a process
/// forked from this one starts its own (the one it inherited guards its
/// parent, and ends with it), and one that could not start (no process left
/// under `RLIMIT_NPROC`, a launcher reaped by the program's own wait) is tried
/// again a second later, not given up for good.
static GUARDIAN: Mutex<Option<(u32, Started)>> = Mutex::new(None);

/// A guardian started, or when starting one failed.
type Started = Result<Arc<Guardian>, Instant>;

/// How long after a failed start the next task's process tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// This process's guardian, started now if it has none yet.
fn current() -> Option<Arc<Guardian>> {
    let mut g = GUARDIAN.lock().unwrap_or_else(|p| p.into_inner());
    let me = std::process::id();
    if let Some((owner, now)) = g.as_ref() {
        if *owner == me {
            match now {
                Ok(guardian) => return Some(guardian.clone()),
                Err(failed) if failed.elapsed() < RETRY_AFTER => return None,
                Err(_) => {}
            }
        }
    }
    let started = start().map(Arc::new);
    *g = Some((me, started.clone().ok_or_else(Instant::now)));
    if let Some(guardian) = &started {
        for (_, dir) in scratch().iter().filter(|(pid, _)| *pid == me) {
            dir_line_to(guardian, b'=', dir);
        }
    }
    started
}

/// The scratch directories of this process's managers (sandboxes, temps),
/// each with the pid of the process that made it (a forked child's guardian
/// must not remove its parent's). Handed to the guardian whenever one runs:
/// a manager does not start one for them, but its first command or PROCESS
/// function does, and a program killed after that leaves none behind.
static SCRATCH: Mutex<Vec<(u32, std::path::PathBuf)>> = Mutex::new(Vec::new());

fn scratch() -> std::sync::MutexGuard<'static, Vec<(u32, std::path::PathBuf)>> {
    SCRATCH.lock().unwrap_or_else(|p| p.into_inner())
}

/// Has the guardian remove manager scratch directory `dir` once this process
/// has ended, as [`remove_at_end`] does, from when a guardian runs (none is
/// started for it).
pub fn remove_scratch_at_end(dir: &std::path::Path) {
    let Ok(dir) = std::path::absolute(dir) else {
        return;
    };
    let me = std::process::id();
    {
        let mut all = scratch();
        all.retain(|(pid, _)| *pid == me);
        all.push((me, dir.clone()));
    }
    // Also sent by a guardian starting meanwhile: twice is harmless.
    if let Some(g) = existing() {
        dir_line_to(&g, b'=', &dir);
    }
}

/// Takes back a directory given to [`remove_scratch_at_end`]: its manager
/// removed it.
pub fn keep_scratch_at_end(dir: &std::path::Path) {
    let Ok(dir) = std::path::absolute(dir) else {
        return;
    };
    let me = std::process::id();
    scratch().retain(|(pid, d)| !(*pid == me && *d == dir));
    if let Some(g) = existing() {
        dir_line_to(&g, b'~', &dir);
    }
}

/// This process's guardian if it has one now (none is started).
fn existing() -> Option<Arc<Guardian>> {
    let g = GUARDIAN.lock().unwrap_or_else(|p| p.into_inner());
    match g.as_ref() {
        Some((owner, Ok(guardian))) if *owner == std::process::id() => Some(guardian.clone()),
        _ => None,
    }
}

/// Says, the first time only, that no guardian could start (it is tried again
/// a second later, as often as it fails).
fn say_none(why: &str) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("vine: no guardian for task processes ({why}); tried again as tasks start");
    }
}

fn start() -> Option<Guardian> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two new descriptors into the 2-element array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        say_none(&format!("socketpair: {}", std::io::Error::last_os_error()));
        return None;
    }
    // SAFETY: both descriptors were just created and nothing else owns them.
    let (mine, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The guardian is in a group of its own, so a signal to this process's group
    // (a terminal's ^C) does not reach it.
    let mut launcher = Command::new("/bin/sh");
    launcher
        .arg("-c")
        .arg(LAUNCH)
        .arg("sh")
        .arg(SCRIPT)
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its tools are found whatever the program's PATH.
        .env("PATH", "/usr/bin:/bin")
        .process_group(0);
    // SAFETY: between fork and exec only close_range and fcntl run, which are
    // async-signal-safe.
    unsafe {
        launcher.pre_exec(|| {
            // It holds nothing of the program's but its socket (now its
            // standard input): a pipe, lock or listening socket the program
            // left inheritable would otherwise stay open for the program's
            // whole life, in the guardian. Closed at exec, not now: the
            // spawn's own error pipe is among them.
            let cloexec = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
            if libc::close_range(3, libc::c_uint::MAX, cloexec) != 0 {
                for fd in 3..1024 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    let spawned = launcher.spawn();
    let launched = spawned.and_then(|mut launcher| {
        let mut said = String::new();
        if let Some(mut out) = launcher.stdout.take() {
            out.read_to_string(&mut said)?;
        }
        launcher.wait()?;
        said.trim()
            .parse::<u32>()
            .map_err(|_| std::io::Error::other(format!("the launcher said {said:?}")))
    });
    match launched {
        Ok(pid) => Some(Guardian { socket: mine, pid }),
        Err(e) => {
            say_none(&format!("/bin/sh: {e}"));
            None
        }
    }
}

/// Sends one short line to the guardian. Async-signal-safe: it is also called
/// between fork and exec. A guardian that is gone is ignored (no SIGPIPE).
fn send(fd: RawFd, sign: u8, pgid: i32) {
    // "+2147483647\n" fits in 16 bytes; formatted by hand, with no allocation.
    let mut line = [0u8; 16];
    let mut digits = [0u8; 10];
    let mut n = pgid.unsigned_abs();
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line[0] = sign;
    for i in 0..d {
        line[1 + i] = digits[d - 1 - i];
    }
    line[1 + d] = b'\n';
    // SAFETY: sends `2 + d` initialised bytes of `line`; MSG_NOSIGNAL turns a closed
    // peer into EPIPE instead of a signal. A line this short goes out whole.
    unsafe {
        libc::send(fd, line.as_ptr().cast(), 2 + d, libc::MSG_NOSIGNAL);
    }
}

/// What a process about to fork a task's leader needs to hand the child: taken in
/// the parent before fork, used in the child by [`Enlist::in_child`].
#[derive(Debug, Clone, Copy)]
pub struct Enlist {
    parent: i32,
    socket: RawFd,
    guardian: Option<u32>,
}

impl Enlist {
    /// Prepares to start a task's process, starting the guardian the first time.
    pub fn prepare() -> Enlist {
        let guardian = current();
        let guardian = guardian.as_deref();
        Enlist {
            parent: std::process::id() as i32,
            socket: guardian.map_or(-1, |g| g.socket.as_raw_fd()),
            guardian: guardian.map(|g| g.pid),
        }
    }

    /// Marks a command, so that the guardian finds it and what it starts even
    /// outside its process group.
    pub fn mark(&self, cmd: &mut Command) {
        if let Some(pid) = self.guardian {
            cmd.env("VINE_GUARDIAN", pid.to_string());
        }
    }

    /// Enlists the process group `pgid` of a command just spawned (by this
    /// process, which has not reaped it yet).
    pub fn group(&self, pgid: i32) {
        if self.socket >= 0 {
            send(self.socket, b'+', pgid);
        }
    }

    /// In the child, after fork and once it leads its own process group: asks to be
    /// killed with its parent and enlists its group with the guardian. Fails if the
    /// parent is already gone (the child must then exit). Async-signal-safe.
    pub fn in_child(&self) -> std::io::Result<()> {
        // SAFETY: prctl with integer arguments only; getppid and getpid cannot fail.
        unsafe {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the request was made.
            if libc::getppid() != self.parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            if self.socket >= 0 {
                send(self.socket, b'+', libc::getpgid(0));
            }
        }
        Ok(())
    }

    /// In a child that will not exec: closes its copy of the guardian's socket, so
    /// that nothing it starts keeps the guardian from seeing this process end.
    pub fn close_in_child(&self) {
        if self.socket >= 0 {
            // SAFETY: closes this child's own copy of the descriptor; async-signal-safe.
            unsafe {
                libc::close(self.socket);
            }
        }
    }
}

/// Has the guardian remove directory `dir` once this process has ended,
/// after its tasks' processes, however the process ended: by a signal with no
/// handler (a batch system cancelling a worker's job sends SIGTERM) or one no
/// handler can catch (SIGKILL) as well as by a return. Each worker of the
/// process (a program may run several through `vine_worker_main`) gives its
/// own; [`keep_at_end`] takes one back. Starts the guardian if it is not
/// running; false if there is none, or the name has a newline (the guardian
/// reads lines).
pub fn remove_at_end(dir: &std::path::Path) -> bool {
    dir_line(b'=', dir)
}

/// The guardian no longer removes `dir` (given to [`remove_at_end`]): the
/// process removed it itself, and a later worker may take the name.
pub fn keep_at_end(dir: &std::path::Path) -> bool {
    dir_line(b'~', dir)
}

/// Sends the guardian `sign` and the absolute name of `dir` as one line. A
/// line of a name's length (at most `PATH_MAX`) goes into the socket whole, in
/// one buffer, so that it never mixes with the lines other threads send
/// meanwhile.
fn dir_line(sign: u8, dir: &std::path::Path) -> bool {
    let Some(g) = current() else {
        return false;
    };
    // Absolute: the guardian's working directory is this process's when it
    // started.
    let Ok(dir) = std::path::absolute(dir) else {
        return false;
    };
    dir_line_to(&g, sign, &dir)
}

/// Sends guardian `g` the line [`dir_line`] sends, for absolute `dir`.
fn dir_line_to(g: &Guardian, sign: u8, dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let name = dir.as_os_str().as_bytes();
    if name.is_empty() || name.contains(&b'\n') {
        return false;
    }
    let mut line = Vec::with_capacity(name.len() + 2);
    line.push(sign);
    line.extend_from_slice(name);
    line.push(b'\n');
    let mut sent = &line[..];
    while !sent.is_empty() {
        // SAFETY: sends initialised bytes of `line`; MSG_NOSIGNAL as in `send`.
        let n = unsafe {
            libc::send(
                g.socket.as_raw_fd(),
                sent.as_ptr().cast(),
                sent.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        match n {
            n if n > 0 => sent = &sent[n as usize..],
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
    true
}

/// Releases group `pgid` from the guardian, once per enlistment: its leader has
/// ended and the group has been killed. The guardian counts enlistments of an id,
/// so a group id reused by the next task before this release stays enlisted.
pub fn release(pgid: i32) {
    if let Some(g) = existing() {
        send(g.socket.as_raw_fd(), b'-', pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::SCRIPT;
    use std::io::Write;

    /// Runs the guardian's script on `lines` as its whole input.
    fn guard(lines: &str) {
        let mut sh = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        sh.stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(sh.wait().unwrap().success());
    }

    #[test]
    fn the_guardian_removes_every_directory_given_and_not_taken_back() {
        let base = std::env::temp_dir().join(format!("vine-guardian-test-{}", std::process::id()));
        // Names with spaces and glob characters are taken as they are.
        let names = ["a", "b c", "d*", "e", "e2"];
        for n in names {
            std::fs::create_dir_all(base.join(n)).unwrap();
        }
        let p = |n: &str| base.join(n).display().to_string();
        guard(&format!(
            "={a}\n={bc}\n={d}\n={e}\n={e2}\n~{a}\n~{d}\n~{e}\n~{missing}\n=\n~\n",
            a = p("a"),
            bc = p("b c"),
            d = p("d*"),
            e = p("e"),
            e2 = p("e2"),
            missing = p("missing"),
        ));
        let left: Vec<bool> = names.iter().map(|n| base.join(n).exists()).collect();
        let _ = std::fs::remove_dir_all(&base);
        // Kept: a, d*, e (taken back); removed: "b c", e2.
        assert_eq!(left, [true, false, true, true, false]);
    }
}
