//! Running a function task in a separate process (`VINE_EXEC_PROCESS`): the pool
//! thread forks, the child calls the function and writes its return code and output
//! to a pipe, then exits without running anything else of this process. A crash,
//! an `exit()` or a leak in the function ends only the child; the task reports it.
//!
//! The child of a multi-threaded process may only rely on what fork keeps working:
//! the allocator (glibc resets its locks at fork) and plain system calls. It touches
//! no lock of the library and never returns into the parent's code.

use std::io::Write;
use std::os::fd::AsRawFd;

use crate::task::{FunctionPtr, Task, TaskResult, FLAG_MONITOR, FLAG_NO_WATCHDOG};
use crate::worker::guardian;
use crate::worker::process::{self, Limits, RunControl};

/// Set in the child only: this process is a PROCESS function's.
static IN_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True in the process of a PROCESS function, where the manager's threads do not
/// exist and its locks may be held forever: calls on a manager are refused there.
pub fn in_child() -> bool {
    IN_CHILD.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many times this process is a `fork()` away from the one that started
/// counting (0 there; each fork's child adds one). A manager made before a
/// fork cannot be used in the child: its threads are not there, and a call
/// waiting for them would wait forever.
pub fn forks() -> u64 {
    FORKS.load(std::sync::atomic::Ordering::Relaxed)
}

static FORKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts forks from now on (once per process; a child inherits the handler).
pub fn count_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn forked_child() {
        // Async-signal-safe: one atomic add.
        FORKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic; the call
        // fails only without memory, and then forks are not counted (as before).
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
}

/// Set in `vine_worker` (see [`children_take_default_signals`]).
static DEFAULT_SIGNALS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Signals whose disposition in `vine_worker` is Rust's runtime's: SIGPIPE
/// ignored, SIGSEGV and SIGBUS handled (a stack overflow then aborts).
const RUNTIME_SIGNALS: [libc::c_int; 3] = [libc::SIGPIPE, libc::SIGSEGV, libc::SIGBUS];

/// In a program whose signal dispositions are Rust's runtime's, not a C
/// program's (`vine_worker`): PROCESS functions run from now on with the
/// default action of [`RUNTIME_SIGNALS`], as in a C program that set none, so
/// that a function behaves on a remote worker as it does locally (a write to
/// a closed pipe or a stack overflow kills it with SIGPIPE or SIGSEGV). A
/// program's own dispositions are otherwise what its children inherit.
pub fn children_take_default_signals() {
    DEFAULT_SIGNALS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// In the child: the default action for [`RUNTIME_SIGNALS`] if asked for.
fn take_default_signals() {
    if DEFAULT_SIGNALS.load(std::sync::atomic::Ordering::Relaxed) {
        for sig in RUNTIME_SIGNALS {
            // SAFETY: signal is async-signal-safe; SIG_DFL is always valid.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// Fault signals a handler of the program may have taken over: Rust's runtime
/// (in `vine_worker`, or a Rust program) installs one for these.
const FAULTS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Which of [`FAULTS`] have a handler now.
fn fault_handlers() -> [bool; FAULTS.len()] {
    FAULTS.map(|sig| {
        // SAFETY: reads the disposition into a zeroed plain C struct.
        let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
        let read = unsafe { libc::sigaction(sig, std::ptr::null(), &mut now) } == 0;
        read && now.sa_sigaction != libc::SIG_DFL && now.sa_sigaction != libc::SIG_IGN
    })
}

/// A handler that resets its signal to the default and returns (Rust's does,
/// for a fault outside a stack guard, so that the fault comes again and kills
/// the process) swallows a signal that was raised rather than caused by a
/// fault: `raise(SIGSEGV)` then returns and the function goes on. A handler
/// found reset after the function returned had run: the signal is raised
/// again, now with its default action, so the task ends as the signal says.
fn reraise_swallowed_faults(before: [bool; FAULTS.len()]) {
    let after = fault_handlers();
    for ((sig, had), has) in FAULTS.into_iter().zip(before).zip(after) {
        if had && !has {
            // SAFETY: raises a signal whose disposition is now the default.
            unsafe { libc::raise(sig) };
        }
    }
}

/// What descriptor `fd` refers to (device and inode), if it is open.
fn identity(fd: std::os::fd::RawFd) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into a zeroed plain C struct; a closed descriptor
    // only makes it fail.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// The child's exit code when it cannot send its result back.
const CANNOT_SEND: i32 = 111;

/// The most output a PROCESS function may return.
const MAX_OUTPUT: usize = 1 << 30;

extern "C" {
    /// The C library's standard streams and its call that drops what a stream
    /// holds unwritten (glibc and musl both have it).
    static stdout: *mut libc::FILE;
    static stderr: *mut libc::FILE;
    fn __fpurge(stream: *mut libc::FILE);
}

/// In the child, once the function returned: what it printed reaches its
/// destination, as it would from a THREAD function; `_exit` would drop what is
/// still in a buffer (all of it, where standard output is a file or a pipe).
/// Only what the function wrote is there (see [`drop_inherited_stdio`]).
/// Other streams are not flushed: they may hold what the program wrote before
/// the fork, which it writes itself.
fn flush_stdio() {
    // SAFETY: as in `drop_inherited_stdio`; glibc's fork leaves the streams'
    // locks usable in the child.
    unsafe {
        libc::fflush(stdout);
        libc::fflush(stderr);
    }
}

/// In the child: what the program's C stdio had not yet written at the fork is
/// the program's, and the program writes it itself; an `exit()` in the function
/// would write it a second time. glibc's fork leaves the streams' locks usable
/// in the child.
fn drop_inherited_stdio() {
    // SAFETY: the standard streams are valid for the process's life; purging
    // one only resets its buffer pointers.
    unsafe {
        __fpurge(stdout);
        __fpurge(stderr);
    }
}

/// Runs `func(input, context)` in a child process and records the outcome in `task`.
pub fn run(task: &mut Task, func: FunctionPtr, context: usize, input: &[u8], control: &RunControl) {
    let (reader, mut writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            return task.finish(
                TaskResult::Forsaken,
                Some(format!("cannot create a pipe: {e}")),
            )
        }
    };
    // The task's process dies with this process, however it ends (see `guardian`).
    let enlist = guardian::Enlist::prepare();
    // Wall time counts from before the fork, as the child's CPU time does.
    let started = std::time::Instant::now();
    // SAFETY: fork has no memory-safety preconditions; the child below only calls
    // the task function, writes to its pipe and _exits (see the module comment).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(reader);
        // SAFETY: setpgid and _exit are async-signal-safe system calls.
        unsafe { libc::setpgid(0, 0) };
        if enlist.in_child().is_err() {
            // SAFETY: as below; the parent is gone, so nobody wants the result.
            unsafe { libc::_exit(CANNOT_SEND) };
        }
        enlist.close_in_child();
        IN_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
        drop_inherited_stdio();
        take_default_signals();
        let handled = fault_handlers();
        let pipe = identity(writer.as_raw_fd());
        let (rc, output) = crate::ffi::callback::call_task_function(func, input, context);
        reraise_swallowed_faults(handled);
        flush_stdio();
        // A function that closed its descriptors may have opened a file of
        // its own at the pipe's number: the result goes nowhere but the pipe.
        let ok = pipe.is_some()
            && identity(writer.as_raw_fd()) == pipe
            && writer
                .write_all(&rc.to_le_bytes())
                .and_then(|()| writer.write_all(&output))
                .is_ok();
        // SAFETY: ends the child at once, running no destructor or atexit handler of
        // the parent's program.
        unsafe { libc::_exit(if ok { 0 } else { CANNOT_SEND }) };
    }
    drop(writer);
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        return task.finish(TaskResult::Forsaken, Some(format!("cannot fork: {e}")));
    }
    // SAFETY: also set from the parent, so the group exists before any kill of it.
    unsafe { libc::setpgid(pid, pid) };
    control.set_pgid(pid);
    #[cfg(test)]
    process::test_end_before_supervised(task, pid);
    let monitor = task.flags & FLAG_MONITOR != 0;
    let limits = Limits {
        // The return value, then the output.
        cap: 4 + MAX_OUTPUT,
        deadline: process::task_deadline(task),
        memory_mb: if task.flags & FLAG_NO_WATCHDOG == 0 {
            task.request.memory_mb
        } else {
            0
        },
        sandbox: None,
        disk_mb: 0,
        monitor,
        forked: true,
    };
    let supervised = process::supervise(pid, reader, limits, control);
    let (ending, captured, usage) = match supervised {
        Ok(x) => x,
        Err(e) => return crate::worker::process::lost_child(task, "the task process", &e),
    };
    if monitor {
        task.extra_mut().measured = Some(usage.measured(started.elapsed()));
    }
    let Some(status) = ending.settle(task, "the task process") else {
        return;
    };
    let bytes = captured.bytes;
    if status.code() != Some(0) || bytes.len() < 4 {
        let code = status.code().unwrap_or(-1);
        task.exit_code = code;
        // 111 is also the child's own code when its result could not be sent.
        let unsent = if code == CANNOT_SEND {
            ", or returned but closed the descriptor its result is sent through"
        } else {
            ""
        };
        return task.finish(
            TaskResult::FunctionError,
            Some(format!(
                "the function ended its process with exit({code}) before returning{unsent}"
            )),
        );
    }
    let rc = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    task.exit_code = rc;
    if captured.truncated {
        return task.finish(
            TaskResult::OutputMissing,
            Some(format!(
                "the function returned more output than a PROCESS function may ({} MiB)",
                MAX_OUTPUT >> 20
            )),
        );
    }
    task.output = bytes[4..].to_vec();
    if rc == 0 {
        task.finish(TaskResult::Success, None);
    } else {
        task.finish(
            TaskResult::FunctionError,
            Some(format!("the function returned {rc}")),
        );
    }
}
