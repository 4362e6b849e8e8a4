//! Factories: a manager's workers from a batch system, as its tasks need them.

use std::ffi::{c_char, c_double, c_int};
use std::ptr;

use super::boundary::{c_str, guard, guard_code};
use super::{handles, vine_factory, vine_manager};
use crate::error::Error;
use crate::manager::Manager;

/// Creates a factory that gets workers for `m` from a batch system as its waiting
/// tasks need them, and gives them back as they stop needing them (vine's own).
///
/// `batch_type`:
/// - `"local"`: worker processes on this machine, which end with the program
///   even if it exits without deleting its manager (started directly, not
///   through a wrapper script: a wrapper's own children are not told);
/// - `"slurm"`: Slurm jobs (`sbatch`, `squeue`, `scancel` must be on the `PATH`);
/// - `"custom"`: any batch system, through three shell commands set with
///   `vine_factory_set_string` (`submit-command`, `status-command`,
///   `cancel-command`; see there). Nothing is submitted before all three are set.
///
/// The manager must have a port. The jobs connect to the address the manager
/// listens on (`VINE_LISTEN_ADDRESS` at `vine_create`; loopback by default, which
/// only workers on this machine reach: the factory says so on standard error).
/// When the manager has a password, each job is given a copy of the password file
/// in the scratch directory (readable by this user only) with `--password`, never
/// the password itself. It is the password the manager has at each submission:
/// one set or changed after the factory was created reaches the jobs submitted
/// from then on (and pending jobs that have yet to read the copy). Workers that
/// joined without one are dropped when it is set (see `vine_create`) and jobs
/// submitted without one are cancelled; jobs given the password replace them.
///
/// Every cycle (`cycle-interval`) the factory compares what the waiting tasks
/// need (their resources against its worker size) with its connected and pending
/// workers, and submits at most `workers-per-cycle` jobs, never more than
/// `max-workers` alive at once, keeping `min-workers`. When demand falls, pending
/// jobs are cancelled and workers idle for `idle-timeout` are told to exit. A job
/// that ends before its worker connects is a failure: submissions then pause
/// 1, 2, 4 ... up to 60 s, the batch system's message is printed on standard
/// error, and a `vine_wait` that returns NULL sets `vine_last_error()` to it.
/// Waiting tasks that no worker of the factory could run (more cores, memory,
/// disk or gpus than its workers have, features they lack) start no job; when
/// only such tasks are left, the factory says so the same way (again when their
/// number changes).
/// Tasks on a worker whose job ends (cancelled, out of time) run again elsewhere,
/// as for any lost worker.
///
/// Settings apply to jobs submitted after them: set them before submitting tasks.
/// The factory belongs to `m`: `vine_factory_delete` stops it, and so does
/// `vine_delete`. Returns NULL with `vine_last_error()` set on an unknown type, a
/// batch system whose commands are missing, a manager without a port, or one
/// shut down (`VINE_ERROR_SHUT_DOWN`) or deleted meanwhile
/// (`VINE_ERROR_INVALID_HANDLE`).
#[no_mangle]
pub unsafe extern "C" fn vine_factory_create(
    m: *mut vine_manager,
    batch_type: *const c_char,
) -> *mut vine_factory {
    guard(ptr::null_mut(), || {
        let mgr = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let kind = Manager::utf8(unsafe { c_str(batch_type, "the batch type")? })?;
        let f = mgr.create_factory(kind)?;
        handles::factory_into_c(m, f)
    })
}

/// Sets a numeric setting of factory `f`; 0, or a negative error code with
/// `vine_last_error()` set (unknown name, a value not finite or out of range).
///
/// - `min-workers` (default 0), `max-workers` (10): workers kept alive at least,
///   and alive at most (pending jobs count); min above max counts as max.
/// - `workers-per-cycle` (5): jobs submitted per cycle at most.
/// - `cores` (1), `memory` (MB; 0: what the job has, as the worker measures
///   it: its node's, or less where its cgroup or Slurm's memory for the job
///   says so), `disk` (MB; 0: measured), `gpus` (0): each worker job's size,
///   asked of the batch system and offered by the worker. Whole numbers: cores up to 1e6, memory and disk up to
///   1e12 MB.
/// - `idle-timeout` (seconds, 60): a worker holding no task for this long is told
///   to exit, unless that would leave fewer than `min-workers` or than the tasks need.
/// - `wall-time` (seconds, 0: none, else at least 10): each job's time limit;
///   the worker knows it and takes no task whose `vine_task_set_time_min`
///   exceeds the time it has left, nor any in its last 5 s.
/// - `cycle-interval` (seconds, 1): how often the factory looks at demand.
/// - `command-timeout` (seconds, 60): how long each batch command (`sbatch`,
///   `squeue`, `scancel`, the custom commands) may take; one still running
///   then is killed and counts as failed. A submission that failed may have
///   submitted its job all the same (a controller that answered too late):
///   for Slurm, the factory then looks for jobs of its own name it does not
///   know, for a while, and cancels them (jobs renamed by `batch-options`
///   are not found this way).
#[no_mangle]
pub unsafe extern "C" fn vine_factory_set(
    f: *mut vine_factory,
    name: *const c_char,
    value: c_double,
) -> c_int {
    guard_code(|| {
        let (_, f) = handles::factory(f)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = Manager::utf8(unsafe { c_str(name, "the setting name")? })?;
        f.set(name, value)?;
        Ok(0)
    })
}

/// Sets a text setting of factory `f`; 0, or a negative error code with
/// `vine_last_error()` set.
///
/// - `batch-options`: options given to the batch system's submit command, split
///   into words as a shell would (e.g. `"--partition=debug --account=x"`). For
///   Slurm they are checked at once with `sbatch --test-only`: options Slurm
///   refuses are an error here, with Slurm's message, and so are those that
///   make a submission other than one job of one worker that starts when Slurm
///   can (`--array`, `--wrap`, `--test-only`, `--help`, `--usage`,
///   `--version`, `--wait`, `--hold`, their abbreviations such as `--arr`, and
///   `-a`, `-h`, `-V`, `-W`, `-H`, also bundled as in `-Qa`). The variables
///   `SBATCH_ARRAY_INX` and `SBATCH_WAIT`, which Slurm reads as `--array` and
///   `--wait`, are not passed on to `sbatch`.
/// - `worker-options`: more `vine_worker` options (e.g. `"--feature big"`).
/// - `worker-path`: the worker program (default: `VINE_WORKER_PATH`, else
///   `vine_worker` beside this program, else on the `PATH`); it must exist where
///   the jobs run.
/// - `scratch-dir`: where job scripts, their output and the password copy go
///   (default: `vine-factory-PID-N` in the current directory; for `"local"`, in
///   the manager's own scratch directory under `TMPDIR`, where its sandboxes
///   are, not its run directory of `vine_get_runtime_directory`, and gone
///   with the manager). It must be visible to the jobs. Made readable by this
///   user only (with the parents it lacks), and made again if it is removed
///   meanwhile; removed at the end unless a job failed, with the parents made
///   for it that hold nothing else (a directory of this user's that was there
///   already stays, and only the job files vine wrote in it are removed). An
///   existing directory others may write (`/tmp`, a group's) is not used as
///   it is: the files go in a private directory made
///   inside it, `vine-worker-PID-N-files`. The password's copy is removed at the
///   end in any case.
/// - `submit-command`, `status-command`, `cancel-command` (`"custom"` only): run
///   by `/bin/sh -c` in the scratch directory.
///   - submit: gets the worker's whole command line in `VINE_WORKER_COMMAND`
///     (quoted for the shell), and `VINE_JOB_NAME`, `VINE_JOB_CORES`,
///     `VINE_JOB_MEMORY`, `VINE_JOB_DISK`, `VINE_JOB_GPUS` (0: unset),
///     `VINE_JOB_WALL_TIME` (seconds, 0: none), `VINE_JOB_OUTPUT` (a file for the
///     job's output) and `VINE_BATCH_OPTIONS`; it must exit 0 and print the job id
///     as the last non-empty line of its standard output.
///   - status: gets `VINE_JOB_ID`; prints `pending` or `running` while the job
///     lives, anything else (or nothing) once it has ended; a non-zero exit means
///     "unknown this time".
///   - cancel: gets `VINE_JOB_ID`.
#[no_mangle]
pub unsafe extern "C" fn vine_factory_set_string(
    f: *mut vine_factory,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    guard_code(|| {
        let (_, f) = handles::factory(f)?;
        // SAFETY: C passes NUL-terminated strings or NULL.
        let (name, value) = unsafe {
            (
                Manager::utf8(c_str(name, "the setting name")?)?,
                Manager::utf8(c_str(value, "the value")?)?,
            )
        };
        f.set_string(name, value)?;
        Ok(0)
    })
}

/// Stops factory `f`: it submits nothing more, cancels every job it submitted
/// that is still pending or running (their tasks run again elsewhere, or wait),
/// and waits until the batch system says they are gone, at most 60 s; jobs still
/// there then are named in `vine_last_error()` and on standard error. NULL, or a
/// factory already deleted (also by `vine_delete` of its manager), sets
/// `vine_last_error()` and does nothing else.
#[no_mangle]
pub extern "C" fn vine_factory_delete(f: *mut vine_factory) {
    guard((), || {
        let (m, factory) = handles::factory(f)?;
        if !handles::factory_remove(f) {
            return Err(Error::invalid("the factory was deleted by another thread"));
        }
        match handles::manager(m) {
            Ok(mgr) => mgr.delete_factory(&factory),
            Err(_) => factory.stop(std::time::Duration::from_secs(60)),
        }
    })
}
