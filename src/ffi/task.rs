//! Entry points on tasks: creating, setting, reading results, deleting.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use super::boundary::{bytes, c_str, guard, guard_code, guard_or_code};
use super::constants::*;
use super::handles::{self, task_into_c, with_task, with_task_mut};
use super::vine_task;
use crate::error::Error;
use crate::task::{ExecMode, Task};

/// Creates a task that calls the function registered as `name` (see
/// `vine_register_function`) with a copy of `input_len` bytes at `input` (NULL is
/// allowed when `input_len` is 0). The name need not be registered yet in this
/// process. The local pool runs it only if this process has registered the
/// name by then, and remote workers only if they registered it; a manager with
/// a port keeps a task of a name no worker knows waiting for one that does, and
/// one without a port (`VINE_PORT_NONE`) returns it
/// `VINE_RESULT_MISSING_FUNCTION`. Returns NULL if `name` is NULL. The caller owns
/// the task. Between the manager and a remote worker an input or an output
/// travels in one message of at most 255 MiB: a task with a larger input runs
/// only in the local pool (without one it is `VINE_RESULT_UNSCHEDULABLE`), and
/// one whose output on a remote worker is larger ends
/// `VINE_RESULT_OUTPUT_MISSING` (the local pool has no such bound, but for a
/// `VINE_EXEC_PROCESS` function's output: at most 1 GiB, or likewise
/// `VINE_RESULT_OUTPUT_MISSING`).
#[no_mangle]
pub unsafe extern "C" fn vine_task_create_function(
    name: *const c_char,
    input: *const c_void,
    input_len: usize,
) -> *mut vine_task {
    guard(ptr::null_mut(), || {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = unsafe { c_str(name, "the function name")? };
        if name.is_empty() {
            return Err(Error::invalid("the function name is empty"));
        }
        // SAFETY: C passes `input_len` readable bytes or NULL with 0.
        let input = unsafe { bytes(input, input_len, "the input")? };
        super::boundary::can_copy(input.len(), "the input")?;
        Ok(task_into_c(Task::function(name, input)))
    })
}

/// Creates a task that calls `fn(input, input_len, output, context)` on a local
/// worker thread. `fn` need not be registered; `context` is passed through untouched
/// and must stay valid until the task is returned by `vine_wait`. Such a task never
/// runs on a remote worker. Returns NULL if `fn` is NULL.
#[no_mangle]
pub unsafe extern "C" fn vine_task_create_local(
    func: super::function::vine_function_t,
    context: *mut c_void,
    input: *const c_void,
    input_len: usize,
) -> *mut vine_task {
    guard(ptr::null_mut(), || {
        let f = func.ok_or_else(|| super::boundary::null("the function"))?;
        // SAFETY: C passes `input_len` readable bytes or NULL with 0.
        let input = unsafe { bytes(input, input_len, "the input")? };
        super::boundary::can_copy(input.len(), "the input")?;
        Ok(task_into_c(Task::local(f, context as usize, input)))
    })
}

/// Creates a task that runs `command` with `/bin/sh -c` in a fresh sandbox
/// directory (its inputs placed there), with standard output and standard error
/// captured together (`vine_task_get_stdout`) and `VINE_SANDBOX` set to the
/// sandbox. The sandbox is removed afterwards. As TaskVine's worker does, vine
/// tells the command what it holds: its whole cores in `CORES`,
/// `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `VECLIB_NUM_THREADS`,
/// `MKL_NUM_THREADS` and `NUMEXPR_NUM_THREADS`; its memory and disk (MB) in
/// `MEMORY` and `DISK` and its gpus in `GPUS` (with their numbers in
/// `CUDA_VISIBLE_DEVICES` and `ROCR_VISIBLE_DEVICES`) when it holds any. What
/// `vine_task_set_env_var` sets is applied after these and may replace them.
/// `TMPDIR`, `TMP` and `TEMP` name `.vine.tmp` in the sandbox (unless an input
/// or output has that name), so that temporary files count in the task's disk
/// and go with the sandbox.
/// The command and what it starts die with the worker that runs it, even if that
/// worker is SIGKILLed (see the README for the limits); `VINE_GUARDIAN` in their
/// environment is how what leaves the command's process group is found.
/// `command` may be NULL, as in TaskVine: the command is then given later with
/// `vine_task_set_command` (`vine_submit` refuses a task that still has none,
/// and `vine_task_get_command` returns NULL for it). A command longer than the
/// kernel takes as one argument (128 KiB on Linux) cannot start anywhere: the
/// task ends `VINE_RESULT_SUCCESS` with exit code 126, as a command the shell
/// cannot execute does, and is not retried. In the local pool a command (as a
/// `VINE_EXEC_PROCESS` function) is a child process of the program, which must
/// therefore not ignore SIGCHLD (`SIG_IGN` or `SA_NOCLDWAIT`), nor reap children
/// it did not start (a SIGCHLD handler looping on `waitpid(-1, ...)`): the
/// system, or that wait, would take its exit status before vine reads it, and
/// the task comes back `VINE_RESULT_UNKNOWN` saying so. It ran: it is not run
/// again. Such a command starts with the program's environment as it is at
/// that moment, read from a library thread: the program must not call
/// `setenv`, `unsetenv` or `putenv` while a manager may start commands (the C
/// library does not make them safe against a concurrent reader; set what a
/// command needs with `vine_task_set_env_var`). It also inherits every
/// descriptor the program left open without close-on-exec, as a child of
/// `system()` does: open files with `O_CLOEXEC` to keep them from commands.
/// An empty command is no command, as NULL is.
#[no_mangle]
pub unsafe extern "C" fn vine_task_create(command: *const c_char) -> *mut vine_task {
    guard(ptr::null_mut(), || {
        if command.is_null() {
            return Ok(task_into_c(Task::command(c"")));
        }
        // SAFETY: C passes a NUL-terminated string or NULL.
        let cmd = unsafe { c_str(command, "the command")? };
        Ok(task_into_c(Task::command(cmd)))
    })
}

/// Sets (or replaces) the command line of a command task (see
/// `vine_task_create`); the string is copied. Returns 0, or an error code: NULL
/// arguments, a function task (it has no command), a submitted task. TaskVine's
/// returns nothing; the int can be ignored.
#[no_mangle]
pub unsafe extern "C" fn vine_task_set_command(t: *mut vine_task, cmd: *const c_char) -> c_int {
    set(t, |t| {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let cmd = unsafe { c_str(cmd, "the command") };
        t.set_command(cmd?)
    })
}

/// The earliest time the task may be dispatched to a worker, in microseconds
/// since the epoch (as TaskVine's); less than 1: none (the default). Until
/// then it waits in the manager (`vine_task_get_state` says `READY`). Returns 0
/// or an error code (NULL, a submitted task).
#[no_mangle]
pub extern "C" fn vine_task_set_time_start(t: *mut vine_task, useconds: i64) -> c_int {
    set(t, |t| {
        t.set_time_start(useconds);
        Ok(())
    })
}

/// The time by which the task must be done, in microseconds since the epoch (as
/// TaskVine's); less than 1: none (the default). A task still waiting then comes
/// back `VINE_RESULT_MAX_END_TIME` at that time, whether at the manager or in
/// a busy worker's queue; one that reaches its worker later is not run; a
/// running command (or `VINE_EXEC_PROCESS` function) is killed then and comes
/// back `VINE_RESULT_MAX_END_TIME`. A THREAD function
/// cannot be stopped: it comes back `VINE_RESULT_MAX_END_TIME` when it returns
/// late. Remote workers compare it with their own clock. Returns 0 or an error
/// code (NULL, a submitted task).
#[no_mangle]
pub extern "C" fn vine_task_set_time_end(t: *mut vine_task, useconds: i64) -> c_int {
    set(t, |t| {
        t.set_time_end(useconds);
        Ok(())
    })
}

/// How many times the task may be forsaken (its worker gave it back unfinished
/// through no fault of the task, e.g. the worker was lost) and still be run
/// again; forsaken once more, it comes back `VINE_RESULT_FORSAKEN`. As in
/// TaskVine, forsaken attempts then do not count against its retries. Less than
/// zero (the default): no such limit, and, unlike TaskVine (which then retries
/// forever), vine counts forsaken attempts against the task's retries
/// (`vine_task_set_retries`, default the manager's `max-retries`), after which
/// it comes back `VINE_RESULT_FORSAKEN` if its last worker was lost, else
/// `VINE_RESULT_MAX_RETRIES`. A task given back because its worker could not
/// keep an input sent for it (its disk was full) is not sent there again while
/// another worker could run it (vine's own). A count above 4294967295 counts as
/// that many (forever, in practice). Returns 0 or an error code.
#[no_mangle]
pub extern "C" fn vine_task_set_max_forsaken(t: *mut vine_task, max_forsaken: i64) -> c_int {
    set(t, |t| {
        t.set_max_forsaken(max_forsaken);
        Ok(())
    })
}

/// Requires a worker offering the feature `name` (a `vine_worker` started with
/// `--feature name`; the option repeats). A task with features runs only on a
/// worker offering all of them. The local worker threads offer no features, so
/// such a task always runs on a remote worker; if the manager allows none
/// (`VINE_PORT_NONE`), it comes back `VINE_RESULT_UNSCHEDULABLE`. Adding a feature
/// twice is adding it once. Returns 0 or an error code (NULL or empty name, a
/// submitted task).
#[no_mangle]
pub unsafe extern "C" fn vine_task_add_feature(t: *mut vine_task, name: *const c_char) -> c_int {
    set(t, |t| {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = unsafe { c_str(name, "the feature") };
        t.add_feature(name?)
    })
}

/// The host name of the worker the task's last attempt was given to: a remote
/// worker's own host name, or this machine's for the local worker threads. NULL
/// if it was never given to a worker, and on error (NULL, or the task belongs to
/// the manager: read it after `vine_wait`). Owned by the task: valid until it is
/// submitted again or deleted.
#[no_mangle]
pub extern "C" fn vine_task_get_hostname(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || {
        with_task(t, |t| {
            Ok(t.place().map_or(ptr::null(), |p| p.hostname.as_ptr()))
        })
    })
}

/// The address and port of the worker the task's last attempt was given to, as
/// `"ADDRESS:PORT"` of its connection for a remote worker, `"local"` for the
/// local worker threads (vine's own). NULL as for `vine_task_get_hostname`.
/// Owned by the task: valid until it is submitted again or deleted.
#[no_mangle]
pub extern "C" fn vine_task_get_addrport(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || {
        with_task(t, |t| {
            Ok(t.place().map_or(ptr::null(), |p| p.addrport.as_ptr()))
        })
    })
}

/// Where the task is, as TaskVine names it: `"INITIAL"` (not submitted),
/// `"READY"` (waiting in the manager), `"RUNNING"` (given to a worker),
/// `"RETRIEVED"` (finished, not yet returned by `vine_wait`), `"DONE"` (returned
/// by `vine_wait`). vine never reports TaskVine's `"WAITING_RETRIEVAL"`: a
/// task's results come back with it. Readable whoever owns the task; a static
/// string. `"UNKNOWN"` on error (NULL).
#[no_mangle]
pub extern "C" fn vine_task_get_state(t: *const vine_task) -> *const c_char {
    guard(c"UNKNOWN".as_ptr(), || {
        Ok(handles::task_state(t)?.name().as_ptr())
    })
}

/// Cancels the submitted task tagged `tag` (see `vine_task_set_tag`) that is
/// still waiting or running, as `vine_cancel_by_task_id` does: it comes back
/// from `vine_wait` as `VINE_RESULT_CANCELLED`. As TaskVine's, returns 1 if a task
/// was found and cancelled, 0 otherwise (also for a NULL tag); a negative error
/// code for a bad manager. If several tasks have the tag, the first submitted
/// is cancelled (TaskVine picks any one).
#[no_mangle]
pub unsafe extern "C" fn vine_cancel_by_task_tag(
    m: *mut super::vine_manager,
    tag: *const c_char,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        if tag.is_null() {
            return Ok(0);
        }
        // SAFETY: C passes a NUL-terminated string.
        let tag = unsafe { c_str(tag, "the tag")? };
        Ok(c_int::from(m.cancel_by_tag(Some(tag))?))
    })
}

/// Cancels every submitted task tagged `tag` that is still waiting or running,
/// each as `vine_cancel_by_task_id` does. A NULL tag cancels the tasks that have
/// no tag (as TaskVine's does). Returns how many, or a negative error code.
#[no_mangle]
pub unsafe extern "C" fn vine_cancel_all_by_tag(
    m: *mut super::vine_manager,
    tag: *const c_char,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let tag = if tag.is_null() {
            None
        } else {
            // SAFETY: C passes a NUL-terminated string.
            Some(unsafe { c_str(tag, "the tag")? })
        };
        let n = m.cancel_all_by_tag(tag)?;
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

/// Frees a task the caller owns. Returns 0; `VINE_ERROR_TASK_SUBMITTED` (and frees
/// nothing) if the task belongs to a manager; `VINE_ERROR_NULL` for NULL. Deleting
/// the same task twice is undefined: the library cannot know freed memory.
#[no_mangle]
pub extern "C" fn vine_task_delete(t: *mut vine_task) -> c_int {
    guard_code(|| handles::task_delete(t).map(|()| 0))
}

/// The panic guard of the setters: `f`, the whole body of the entry point, runs
/// inside it.
fn set(t: *mut vine_task, f: impl FnOnce(&mut Task) -> crate::error::Result<()>) -> c_int {
    guard_code(|| with_task_mut(t, f).map(|()| 0))
}

/// Cores the task needs (default 1; fractions down to 0.001 allowed, e.g. 0.5 lets
/// two such tasks share a core; at most 1e9). Returns 0 or
/// `VINE_ERROR_INVALID_ARGUMENT` for values <= 0, above 1e9, not finite, or finer
/// than 0.001.
#[no_mangle]
pub extern "C" fn vine_task_set_cores(t: *mut vine_task, cores: f64) -> c_int {
    set(t, |t| t.set_cores(cores))
}

/// Memory the task needs, in MB (default 0: no limit), at most 1e12. Negative or
/// larger values are refused. Enforced for commands and `VINE_EXEC_PROCESS` tasks (see
/// `vine_task_set_exec_mode`).
#[no_mangle]
pub extern "C" fn vine_task_set_memory(t: *mut vine_task, mb: i64) -> c_int {
    set(t, |t| t.set_memory(mb))
}

/// Disk the task needs, in MB (default 0: no limit), at most 1e12. Negative or
/// larger values are refused.
/// Enforced for commands: the files in the command's sandbox (inputs included,
/// each counted at the larger of its length and its allocated blocks) are
/// measured every 100 ms and when it ends; past the request the command is killed
/// and comes back `VINE_RESULT_RESOURCE_EXHAUSTION`. So does one that nests
/// directories so deep that their paths pass the system's limit (`PATH_MAX`):
/// what they hold cannot be measured. A file with several names (hard links)
/// counts once per name.
#[no_mangle]
pub extern "C" fn vine_task_set_disk(t: *mut vine_task, mb: i64) -> c_int {
    set(t, |t| t.set_disk(mb))
}

/// Gpus the task needs (default 0). As in TaskVine, a task that asks for gpus
/// and sets no cores (`vine_task_set_cores`) asks for no core: its gpus bound
/// how many run at once. The task gets distinct device ids: a command sees
/// them in `CUDA_VISIBLE_DEVICES` and `ROCR_VISIBLE_DEVICES`, a function reads them
/// with `vine_task_gpu_ids`. At most 1e6; negative or larger values are refused.
#[no_mangle]
pub extern "C" fn vine_task_set_gpus(t: *mut vine_task, gpus: c_int) -> c_int {
    set(t, |t| t.set_gpus(i64::from(gpus)))
}

/// Priority: higher runs first, FIFO among equals (default 0), among the tasks
/// that fit the resources free (see `"prefetch"` in `vine_tune`). Must be finite.
#[no_mangle]
pub extern "C" fn vine_task_set_priority(t: *mut vine_task, priority: f64) -> c_int {
    set(t, |t| t.set_priority(priority))
}

/// Category (default: the function name under autocategory, else "default"):
/// a UTF-8 name, not empty (else `VINE_ERROR_INVALID_ARGUMENT`), as the calls
/// that set a category's bounds and read its stats take it (a function name
/// that is not UTF-8 makes a category under autocategory that they cannot name).
/// A category is a group of tasks sized and counted together: the manager
/// keeps each category it has seen (its settings and stats, some hundreds of
/// bytes) until `vine_delete`, as TaskVine does. Use a tag
/// (`vine_task_set_tag`), not a category, to name a task of its own.
#[no_mangle]
pub unsafe extern "C" fn vine_task_set_category(
    t: *mut vine_task,
    category: *const c_char,
) -> c_int {
    set(t, |t| {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let c = unsafe { c_str(category, "the category") };
        t.set_category(c?)
    })
}

/// A free-form tag, returned by `vine_task_get_tag` and matched by `vine_wait_for_tag`.
#[no_mangle]
pub unsafe extern "C" fn vine_task_set_tag(t: *mut vine_task, tag: *const c_char) -> c_int {
    set(t, |t| {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let tag = unsafe { c_str(tag, "the tag") };
        t.set_tag(tag?);
        Ok(())
    })
}

/// The minimum running time the task should be given, in seconds (0 = none): a
/// worker that will not live that long is not given the task. From 0 to 1e9;
/// anything else (negative, NaN, infinite, larger) is refused with
/// `VINE_ERROR_INVALID_ARGUMENT`. In vine, a worker's end is known from its
/// `--wall-time` or, run in a Slurm job, from that job's end (`squeue`), whichever
/// is earlier, as told when it joins; a worker with no known end (and the local
/// pool) takes any task. Independently of this setting, a worker within 5 s of its
/// end takes no new task. A task no worker has the time for waits for one that
/// has; it does not fail.
#[no_mangle]
pub extern "C" fn vine_task_set_time_min(t: *mut vine_task, seconds: f64) -> c_int {
    set(t, |t| t.set_time_min(seconds))
}

/// The maximum wall time in seconds (0 = none), from 0 to 1e9 (about 31 years);
/// anything else (negative, NaN, infinite, larger) is refused with
/// `VINE_ERROR_INVALID_ARGUMENT`. A command past it is killed
/// (its whole process group) and comes back `VINE_RESULT_MAX_WALL_TIME`. A THREAD
/// function cannot be killed: it is reported `VINE_RESULT_MAX_WALL_TIME` when it
/// returns late.
#[no_mangle]
pub extern "C" fn vine_task_set_time_max(t: *mut vine_task, seconds: f64) -> c_int {
    set(t, |t| t.set_time_max(seconds))
}

/// Measures the task (see `vine_task_get_resources`) and, when it ends, writes
/// what it used into directory `dir`, as TaskVine's function of the same name:
/// the file `DIR/vine-task-ID.summary` (ID its task id; `dir` is made if missing;
/// a file of that name is replaced), one JSON object whose figures are
/// `[value, "unit"]` pairs, e.g. `"memory": [52, "MB"]`: `wall_time`, `cpu_time`
/// (s), `cores`, `memory` (absent for a THREAD function), `disk`,
/// `bytes_read`, `bytes_written` (MB), `max_concurrent_processes`, `start`,
/// `end` (us since the epoch), and `task_id`, `category`, `result`,
/// `exit_status`. Memory limits are enforced as for any task. A task that
/// never ran (cancelled while waiting, say) measured nothing and gets no file;
/// one whose summary cannot be written ends as it would have, the reason in
/// the debug log. The setting stays with the task when it is resubmitted.
/// Returns 1, or 0 on error (NULL or empty `dir`, a bad or submitted task) with
/// the reason in `vine_last_error()`, as TaskVine returns 1 or 0.
#[no_mangle]
pub unsafe extern "C" fn vine_task_set_monitor_output(
    t: *mut vine_task,
    dir: *const c_char,
) -> c_int {
    guard_or_code(
        || {
            // SAFETY: C passes a NUL-terminated string or NULL.
            let dir = unsafe { super::boundary::path_of(dir, "the monitor output directory")? };
            with_task_mut(t, |t| t.set_monitor_output(std::path::Path::new(dir)))?;
            Ok(1)
        },
        |_| 0,
    )
}

/// How many times the task is re-run after failures that are not its own (its
/// worker failed or was lost); 0: without limit, as in TaskVine. Default: the
/// manager's `max-retries` (vine's; TaskVine's default is no limit). Negative
/// values are refused (TaskVine reads them as 0). Out of retries, a task whose
/// last worker was lost comes back `VINE_RESULT_FORSAKEN`, one whose last
/// worker gave it back unfinished `VINE_RESULT_MAX_RETRIES`. As in TaskVine
/// the count is an `int64_t`; counts of 2^32 - 2 and more are refused
/// (`VINE_ERROR_INVALID_ARGUMENT`), not cut short.
#[no_mangle]
pub extern "C" fn vine_task_set_retries(t: *mut vine_task, retries: i64) -> c_int {
    set(t, |t| t.set_retries(retries))
}

/// Sets an environment variable for a command (`value` NULL: unset it).
#[no_mangle]
pub unsafe extern "C" fn vine_task_set_env_var(
    t: *mut vine_task,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    set(t, |t| {
        // SAFETY: C passes NUL-terminated strings or NULL.
        let (name, value) = unsafe {
            (
                c_str(name, "the variable name"),
                (!value.is_null()).then(|| c_str(value, "value")),
            )
        };
        t.set_env_var(name?, value.transpose()?)
    })
}

/// Where a function task runs: `VINE_EXEC_THREAD` (default), on a warm worker
/// thread, or `VINE_EXEC_PROCESS`, in a separate process, so that a crash, an
/// `exit()` or a leak costs only the task (`VINE_RESULT_SIGNAL`, or
/// `VINE_RESULT_FUNCTION_ERROR` with the exit code, and no output: what it
/// appended before the `exit()` is lost with the process), never the caller.
/// Its result travels back through a descriptor the child inherits: a function
/// that closes every descriptor ends `VINE_RESULT_FUNCTION_ERROR` with exit
/// code 111 (the reason says so).
///
/// How: the worker running the task (a local worker thread of this program, or a
/// remote worker) forks its process; the child calls the function, sends back its
/// return value and output, and exits at once. The program needs no set-up, but the
/// function runs in a copy of the process: it sees the memory as it was at the fork
/// and its changes to it are lost; it must not rely on other threads (they do not
/// exist in the child) or on locks they might hold. So calls on a manager (its
/// threads are not in the child), a file, a factory, and `vine_register_function`
/// fail there with `VINE_ERROR_UNSUPPORTED` (`vine_buffer_append` works). An `exit()` in the function
/// runs the program's own `atexit` handlers in the child, as after any `fork`.
/// What the program's C `stdout` and `stderr` had not written at the fork (C++
/// streams synced with them included) is dropped in the child, so an `exit()`
/// there does not write it a second time; other buffers, a file's the program
/// opened with `fopen` or a Fortran unit's, would be: flush them before
/// submitting. vine's own exit handler does nothing there. What the
/// function wrote to C's `stdout` and `stderr` is flushed when it returns, as the
/// program would flush it (a Fortran unit's is not: flush it in the function, or
/// it is lost where the unit is a file or a pipe). A memory request
/// (`vine_task_set_memory`) is enforced for PROCESS tasks and commands: past it the
/// task is killed and ends `VINE_RESULT_RESOURCE_EXHAUSTION`; `time_max` kills it.
/// The child keeps the program's signal dispositions; on `vine_worker` it runs
/// with SIGPIPE, SIGSEGV and SIGBUS at their default action, as in a C program
/// that set none (a write to a closed pipe or a stack overflow ends it
/// `VINE_RESULT_SIGNAL`, as locally).
/// Commands always run in their own processes: setting PROCESS on one is refused.
#[no_mangle]
pub extern "C" fn vine_task_set_exec_mode(t: *mut vine_task, mode: vine_exec_mode_t) -> c_int {
    set(t, |t| match mode {
        VINE_EXEC_THREAD => t.set_exec_mode(ExecMode::Thread),
        VINE_EXEC_PROCESS => t.set_exec_mode(ExecMode::Process),
        _ => Err(Error::invalid(format!("{mode} is not an exec mode"))),
    })
}

/// How the task ended (`VINE_RESULT_*`). `VINE_RESULT_UNKNOWN` for a task that has
/// not run, and on error (NULL, or the task belongs to a manager).
#[no_mangle]
pub extern "C" fn vine_task_get_result(t: *const vine_task) -> vine_result_t {
    guard(VINE_RESULT_UNKNOWN, || {
        with_task(t, |t| Ok(t.result().code()))
    })
}

/// The command's exit status, the function's return value, or the signal number
/// for `VINE_RESULT_SIGNAL`. As in TaskVine, a command (or PROCESS function)
/// killed at its time limit, its end time or its memory limit has the signal
/// that killed it: 9 (`SIGKILL`). -1, as in TaskVine, for a task that has
/// none: one not run (yet), or one that ended without an exit (cancelled
/// before it ended, refused, its results refused for the disk it took); and on
/// error.
#[no_mangle]
pub extern "C" fn vine_task_get_exit_code(t: *const vine_task) -> c_int {
    guard(-1, || with_task(t, |t| Ok(t.exit_code())))
}

/// What the command printed (standard output and error), NUL-terminated, NUL bytes
/// removed. NULL for function tasks, commands that did not run, and on error. Owned
/// by the task: valid until it is submitted again (a new run, a new output) or
/// deleted, as in TaskVine.
#[no_mangle]
pub extern "C" fn vine_task_get_stdout(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || {
        with_task(t, |t| Ok(t.stdout().map_or(ptr::null(), |s| s.as_ptr())))
    })
}

/// The bytes the function appended to its output; their count in `*len` (`len` may
/// be NULL). NULL (and `*len` = 0) when there are none or on error. Owned by the
/// task: valid until it is submitted again (a new run, a new output) or deleted.
#[no_mangle]
pub unsafe extern "C" fn vine_task_get_output(
    t: *const vine_task,
    len: *mut usize,
) -> *const c_void {
    guard(ptr::null(), || {
        if !len.is_null() {
            // SAFETY: non-NULL and writable by the C contract.
            unsafe { len.write(0) };
        }
        let (p, n) = with_task(t, |t| {
            let out = t.output();
            Ok(if out.is_empty() {
                (ptr::null(), 0)
            } else {
                (out.as_ptr().cast(), out.len())
            })
        })?;
        if !len.is_null() {
            // SAFETY: non-NULL and writable by the C contract.
            unsafe { len.write(n) };
        }
        Ok(p)
    })
}

/// The task's id: 0 before `vine_submit`, then the id it returned. Readable even
/// while the manager owns the task. 0 on error.
#[no_mangle]
pub extern "C" fn vine_task_get_id(t: *const vine_task) -> c_int {
    guard(0, || handles::task_id(t))
}

/// The tag, or NULL if none was set (or on error). Owned by the task. Readable
/// while the manager owns the task too (as are the category and the command):
/// the string then stays valid until the task is submitted again or deleted.
#[no_mangle]
pub extern "C" fn vine_task_get_tag(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || handles::task_field(t, handles::Field::Tag))
}

/// The category (see `vine_task_set_category`); NULL on error. Owned by the task;
/// readable after `vine_submit` as the tag is.
#[no_mangle]
pub extern "C" fn vine_task_get_category(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || {
        handles::task_field(t, handles::Field::Category)
    })
}

/// The command line of a command task; NULL for function tasks and on error.
/// Owned by the task; readable after `vine_submit` as the tag is.
#[no_mangle]
pub extern "C" fn vine_task_get_command(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || {
        handles::task_field(t, handles::Field::Command)
    })
}

/// One human sentence on why the task failed; NULL if it succeeded or has not run.
#[no_mangle]
pub extern "C" fn vine_task_get_reason(t: *const vine_task) -> *const c_char {
    guard(ptr::null(), || {
        with_task(t, |t| Ok(t.reason().map_or(ptr::null(), |s| s.as_ptr())))
    })
}

/// A metric of a finished task, by TaskVine's names (times in microseconds;
/// `time_when_*` since the epoch):
/// - `"time_when_submitted"`, `"time_when_done"`;
/// - `"time_when_commit_start"`, `"time_when_commit_end"`: when the last attempt
///   started at its worker (vine hands a task over as one message, so both are
///   that instant);
/// - `"time_when_retrieval"`: when its result reached the manager (as `time_when_done`);
/// - `"time_workers_execute_last"`: execution of the last attempt;
///   `"time_workers_execute_all"`: of all attempts;
///   `"time_workers_execute_exhaustion"`: of the last attempt if it exhausted its
///   resources; `"time_workers_execute_failure"`: of the attempts that failed
///   (an attempt lost with its worker counts from its hand-over to the loss,
///   as in TaskVine);
/// - `"bytes_received"`, `"bytes_sent"`, `"bytes_transferred"`: not counted per
///   task by vine: 0 (see `vine_get_stats` for the manager's totals).
///
/// vine's own: `"time_when_started"`, `"time_workers_execute"` (as
/// `"time_workers_execute_all"`), `"worker_id"`, `"retries"` (attempts beyond the
/// first that count against `vine_task_set_retries`: not a run again with the
/// category's maximum after an automatic allocation was exhausted), `"cores"` (in thousandths), `"memory"`, `"disk"`, `"gpus"` (as given to
/// its last attempt); and what its last attempt used, when it was monitored (-1
/// if not; see `vine_task_get_resources`): `"memory_measured"` and
/// `"disk_measured"` (peak MB), `"cores_measured"` (CPU over wall time, in
/// thousandths), `"cpu_time"` and `"wall_time"` (microseconds), `"bytes_read"`
/// and `"bytes_written"`.
///
/// An unknown name gives 0, as in TaskVine (and `vine_last_error()` says so); a
/// NULL name or a bad task a negative `vine_error_t`.
#[no_mangle]
pub unsafe extern "C" fn vine_task_get_metric(t: *const vine_task, name: *const c_char) -> i64 {
    guard_or_code(
        || {
            // SAFETY: C passes a NUL-terminated string or NULL.
            let name = unsafe { c_str(name, "the metric name")? };
            with_task(t, |t| {
                let times = t.times();
                let req = t.request();
                let last = if times.started > 0 && times.done >= times.started {
                    times.done - times.started
                } else {
                    0
                };
                let failed = t.result() != crate::task::TaskResult::Success;
                Ok(match name.to_bytes() {
                    b"time_when_submitted" => times.submitted,
                    b"time_when_started" | b"time_when_commit_start" | b"time_when_commit_end" => {
                        times.started
                    }
                    b"time_when_done" | b"time_when_retrieval" => times.done,
                    b"time_workers_execute" | b"time_workers_execute_all" => times.execute,
                    b"time_workers_execute_last" => last,
                    b"time_workers_execute_exhaustion" => {
                        if t.result() == crate::task::TaskResult::ResourceExhaustion {
                            last
                        } else {
                            0
                        }
                    }
                    b"time_workers_execute_failure" => {
                        let earlier = (times.execute - last).max(0);
                        earlier + if failed { last } else { 0 }
                    }
                    b"bytes_received" | b"bytes_sent" | b"bytes_transferred" => 0,
                    b"worker_id" => i64::from(t.worker_id()),
                    b"retries" => i64::from(t.retries_used()),
                    b"cores" => req.millicores as i64,
                    b"memory" => req.memory_mb as i64,
                    b"disk" => req.disk_mb as i64,
                    b"gpus" => i64::from(req.gpus),
                    b"memory_measured" | b"disk_measured" | b"cores_measured" | b"cpu_time"
                    | b"wall_time" | b"bytes_read" | b"bytes_written" => {
                        let m = t.extra.as_ref().and_then(|e| e.measured);
                        let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                        m.map_or(-1, |m| match name.to_bytes() {
                            b"memory_measured" => m.memory_mb.map_or(-1, big),
                            b"disk_measured" => big(m.disk_mb),
                            b"cores_measured" => (m.cores() * 1000.0).round() as i64,
                            b"cpu_time" => big(m.cpu_us),
                            b"wall_time" => big(m.wall_us),
                            b"bytes_read" => big(m.bytes_read),
                            _ => big(m.bytes_written),
                        })
                    }
                    _ => {
                        super::boundary::record(&Error::invalid(format!(
                            "unknown metric {:?}; its value is 0",
                            name.to_string_lossy()
                        )));
                        0
                    }
                })
            })
        },
        i64::from,
    )
}
