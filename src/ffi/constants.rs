//! Every constant of the C API. Values are fixed forever: new ones get new numbers.

use std::ffi::c_int;

/// How a task ended (`VINE_RESULT_*`). Values shared with TaskVine keep TaskVine's
/// numbers, so ported code that compares them keeps working.
pub type vine_result_t = c_int;
/// A negative error code returned by a failing call (`VINE_ERROR_*`), or `VINE_OK`.
pub type vine_error_t = c_int;
/// How long a worker keeps a file (`VINE_CACHE_LEVEL_*`).
pub type vine_cache_level_t = c_int;
/// Flags of a declared file (`VINE_PEER_NOSHARE`, `VINE_UNLINK_WHEN_DONE`), or-ed.
pub type vine_file_flags_t = c_int;
/// Flags of a file attached to a task (`VINE_MOUNT_*`), or-ed.
pub type vine_mount_flags_t = c_int;
/// What a file is (`VINE_FILE`, `VINE_URL`, `VINE_TEMP`, `VINE_BUFFER`,
/// `VINE_MINI_TASK`), as `vine_file_type` says.
pub type vine_file_type_t = c_int;
/// Where a function task runs (`VINE_EXEC_THREAD` or `VINE_EXEC_PROCESS`).
pub type vine_exec_mode_t = c_int;

/// Major version of the library this header belongs to.
pub const VINE_VERSION_MAJOR: c_int = 0;
/// Minor version.
pub const VINE_VERSION_MINOR: c_int = 1;
/// Patch version.
pub const VINE_VERSION_PATCH: c_int = 0;

/// The port TaskVine managers use by default.
pub const VINE_DEFAULT_PORT: c_int = 9123;
/// `vine_create(VINE_RANDOM_PORT)`: listen on any free port (as 0; see `vine_port`).
pub const VINE_RANDOM_PORT: c_int = 0;
/// `vine_create(VINE_PORT_NONE)`: open no socket; only local workers run tasks.
pub const VINE_PORT_NONE: c_int = -1;
/// `vine_wait(m, VINE_WAIT_FOREVER)`: wait with no time limit.
pub const VINE_WAIT_FOREVER: c_int = -1;

/// The task ran. A command may still have exited non-zero: see its exit code.
pub const VINE_RESULT_SUCCESS: vine_result_t = 0;
/// A declared input file, buffer or temp was not there when the task started,
/// or an input URL could not be downloaded (vine's own: TaskVine forsakes the
/// task and tries it again).
pub const VINE_RESULT_INPUT_MISSING: vine_result_t = 1;
/// A declared output was not produced.
pub const VINE_RESULT_OUTPUT_MISSING: vine_result_t = 2;
/// The command printed more than the `max-stdout` cap; what fit is kept.
pub const VINE_RESULT_STDOUT_MISSING: vine_result_t = 4;
/// The task was killed by a signal (exit code = the signal number). vine's
/// use for a command: TaskVine reports a command a signal ended as
/// `VINE_RESULT_SUCCESS` with the signal as its exit code.
pub const VINE_RESULT_SIGNAL: vine_result_t = 8;
/// The task used more memory or disk than it asked for.
pub const VINE_RESULT_RESOURCE_EXHAUSTION: vine_result_t = 16;
/// The task passed its absolute end time.
pub const VINE_RESULT_MAX_END_TIME: vine_result_t = 24;
/// The task failed for a reason the library could not classify (see the reason).
pub const VINE_RESULT_UNKNOWN: vine_result_t = 32;
/// The task's workers were lost more times than its retries allow.
pub const VINE_RESULT_FORSAKEN: vine_result_t = 40;
/// The task failed, not by its own fault, more times than its retries allow.
pub const VINE_RESULT_MAX_RETRIES: vine_result_t = 48;
/// The task ran longer than its `time_max`.
pub const VINE_RESULT_MAX_WALL_TIME: vine_result_t = 56;
/// TaskVine's result when its resource monitor wrote no report. vine never
/// gives it (it measures without a monitor process); defined, with TaskVine's
/// value, for programs that name it. Likewise the four below.
pub const VINE_RESULT_RMONITOR_ERROR: vine_result_t = 64;
/// TaskVine's result when an output could not be brought back. vine gives
/// `VINE_RESULT_OUTPUT_MISSING` instead; defined for programs that name it.
pub const VINE_RESULT_OUTPUT_TRANSFER_ERROR: vine_result_t = 72;
/// TaskVine's result for a library task that ended; vine has no library
/// tasks and never gives it.
pub const VINE_RESULT_LIBRARY_EXIT: vine_result_t = 96;
/// TaskVine's result for a task that used more disk than its sandbox was
/// allowed; vine gives `VINE_RESULT_RESOURCE_EXHAUSTION` instead.
pub const VINE_RESULT_SANDBOX_EXHAUSTION: vine_result_t = 104;
/// TaskVine's result for a function call whose library is missing; vine gives
/// `VINE_RESULT_MISSING_FUNCTION` instead.
pub const VINE_RESULT_MISSING_LIBRARY: vine_result_t = 112;
/// A `VINE_FIXED_LOCATION` input of the task is at no present worker (see
/// `VINE_FIXED_LOCATION`).
pub const VINE_RESULT_FIXED_LOCATION_MISSING: vine_result_t = 80;
/// The task was cancelled (by a cancel call or by `vine_shutdown`).
pub const VINE_RESULT_CANCELLED: vine_result_t = 88;
/// The task function returned non-zero; the exit code and any output are kept.
/// Also a PROCESS function whose process exited before it returned (an `exit()`
/// in it, even `exit(0)`), with that exit code (see `vine_task_set_exec_mode`).
pub const VINE_RESULT_FUNCTION_ERROR: vine_result_t = 1024;
/// No function is registered under the task's name where it ran.
pub const VINE_RESULT_MISSING_FUNCTION: vine_result_t = 1032;
/// No worker could ever satisfy the task's request, and none may join.
pub const VINE_RESULT_UNSCHEDULABLE: vine_result_t = 1040;

/// Success.
pub const VINE_OK: vine_error_t = 0;
/// A required pointer argument was NULL.
pub const VINE_ERROR_NULL: vine_error_t = -1;
/// An argument was out of range or malformed; nothing was changed.
pub const VINE_ERROR_INVALID_ARGUMENT: vine_error_t = -2;
/// The handle is not one the library knows (e.g. a deleted manager).
pub const VINE_ERROR_INVALID_HANDLE: vine_error_t = -3;
/// No outstanding task has that id.
pub const VINE_ERROR_UNKNOWN_TASK: vine_error_t = -4;
/// The manager was shut down.
pub const VINE_ERROR_SHUT_DOWN: vine_error_t = -5;
/// The task belongs to a manager (submitted and not yet returned by `vine_wait`).
pub const VINE_ERROR_TASK_SUBMITTED: vine_error_t = -6;
/// `vine_tune` does not know that setting name.
pub const VINE_ERROR_UNKNOWN_SETTING: vine_error_t = -7;
/// Another function is already registered under that name.
pub const VINE_ERROR_DUPLICATE_FUNCTION: vine_error_t = -8;
/// An operating-system call failed (file, socket, thread).
pub const VINE_ERROR_IO: vine_error_t = -9;
/// Not supported by this build or configuration.
pub const VINE_ERROR_UNSUPPORTED: vine_error_t = -10;
/// A bounded operation ran out of time.
pub const VINE_ERROR_TIMEOUT: vine_error_t = -11;
/// A bug inside vine was caught; the call was abandoned.
pub const VINE_ERROR_INTERNAL: vine_error_t = -12;

/// The file is needed only by the task that uses it. (The inputs of a mini
/// task, such as an untar's archive, stay at the worker until the file is
/// undeclared: the worker may make the mini task's file again.)
pub const VINE_CACHE_LEVEL_TASK: vine_cache_level_t = 0;
/// The file may be kept at a worker for the rest of the workflow.
pub const VINE_CACHE_LEVEL_WORKFLOW: vine_cache_level_t = 1;
/// The file may be kept at a worker for the worker's life.
pub const VINE_CACHE_LEVEL_WORKER: vine_cache_level_t = 2;
/// The file may be kept at a worker even after it exits: remote workers keep such
/// files (not temps) in a store in their work directory, named by the SHA-256 of
/// the contents, where later workers find them without a transfer.
pub const VINE_CACHE_LEVEL_FOREVER: vine_cache_level_t = 3;

/// File flag: never transfer the file between workers.
pub const VINE_PEER_NOSHARE: vine_file_flags_t = 1;
/// File flag: delete the manager's copy of the file when the manager is deleted.
pub const VINE_UNLINK_WHEN_DONE: vine_file_flags_t = 2;

/// Mount flag: no flag (TaskVine's name for the default): the file is sent to a
/// worker whenever a task there needs it and the worker does not hold it.
pub const VINE_TRANSFER_ALWAYS: vine_mount_flags_t = 0;
/// Mount flag (input): the task runs only on a worker that already has the
/// file; the file is never transferred for it. In vine a worker "has" a file
/// when it is a temp that worker keeps, or, for the local worker threads, when
/// the manager holds its data (a file on the manager's disk, a buffer, a temp
/// made or fetched here): they read it in place. A file a remote worker merely
/// cached from an earlier task does not count (vine does not track those for
/// scheduling). If no worker present has every such input of the task (and none
/// is being made again after its worker was lost), the task comes back at once
/// `VINE_RESULT_FIXED_LOCATION_MISSING`, as in TaskVine.
pub const VINE_FIXED_LOCATION: vine_mount_flags_t = 1;
/// Mount flag (output): while the task runs, what it appends to the output is
/// copied to the declared file (about every half second; a remote worker sends
/// it to the manager), so a program reading that file sees it grow; at the end
/// the file is complete, as any output. The file is emptied when the task
/// starts. Only outputs declared with `vine_declare_file` are watched (for
/// others the flag is accepted and does nothing), and only command tasks have
/// outputs.
pub const VINE_WATCH: vine_mount_flags_t = 2;
/// Mount flag (output): return the output only if the task failed, that is,
/// its command exited non-zero (as TaskVine judges it: not `VINE_RESULT_SUCCESS`
/// with exit code 0). Otherwise it is not returned and not missing. As in
/// TaskVine, a command killed by a signal, at its time limit or at its end
/// time still returns what it wrote (these outputs among them; one it did not
/// write is not missing then); one killed at a resource limit or cancelled
/// returns none.
pub const VINE_FAILURE_ONLY: vine_mount_flags_t = 4;
/// Mount flag (output): return the output only if the task succeeded (its
/// command exited 0); otherwise it is not returned and not missing.
pub const VINE_SUCCESS_ONLY: vine_mount_flags_t = 8;
/// Mount flag (input): link the file into the sandbox instead of copying it.
/// The task then reads the source itself, with no copy: in the local pool the
/// program's own file, at a remote worker its cached copy, which later tasks
/// there share. A task must not write through such a link; what it writes
/// changes that source (and those later tasks' input). Without the flag the
/// task gets a copy it may change.
pub const VINE_MOUNT_SYMLINK: vine_mount_flags_t = 32;
/// Mount flag: create the remote name as an empty directory in the sandbox before
/// the task runs. On an output, the task fills it and the directory is the output;
/// on an input, the file's contents are not placed.
pub const VINE_MOUNT_MKDIR: vine_mount_flags_t = 64;
/// Mount flag (vine's own): send the file even if the worker already holds it.
pub const VINE_MOUNT_RESEND: vine_mount_flags_t = 256;

/// File type: a file or directory at the manager (`vine_declare_file`).
pub const VINE_FILE: vine_file_type_t = 1;
/// File type: downloaded from a URL by the worker (`vine_declare_url`).
pub const VINE_URL: vine_file_type_t = 2;
/// File type: a temp (`vine_declare_temp`).
pub const VINE_TEMP: vine_file_type_t = 3;
/// File type: a buffer (`vine_declare_buffer`).
pub const VINE_BUFFER: vine_file_type_t = 4;
/// File type: made at the worker by a mini task (`vine_declare_mini_task`,
/// `vine_declare_untar`, `vine_declare_poncho`).
pub const VINE_MINI_TASK: vine_file_type_t = 5;

/// Run a function task on a worker thread (the default).
pub const VINE_EXEC_THREAD: vine_exec_mode_t = 0;
/// Run a function task in a separate process, so a crash costs only the task.
pub const VINE_EXEC_PROCESS: vine_exec_mode_t = 1;

/// How tasks of a category are sized (`VINE_ALLOCATION_MODE_*`, TaskVine's
/// values), for `vine_set_category_mode`.
pub type vine_category_mode_t = c_int;
/// Tasks get what they ask for (the default).
pub const VINE_ALLOCATION_MODE_FIXED: vine_category_mode_t = 0;
/// The largest measured use of the category's tasks (see `vine_set_category_mode`).
pub const VINE_ALLOCATION_MODE_MAX: vine_category_mode_t = 1;
/// The allocation that wastes least over the category's measured tasks.
pub const VINE_ALLOCATION_MODE_MIN_WASTE: vine_category_mode_t = 2;
/// The allocation that completes most of the category's tasks per worker.
pub const VINE_ALLOCATION_MODE_MAX_THROUGHPUT: vine_category_mode_t = 3;
/// TaskVine: greedy bucketing. Sized as `MIN_WASTE` in vine.
pub const VINE_ALLOCATION_MODE_GREEDY_BUCKETING: vine_category_mode_t = 4;
/// TaskVine: exhaustive bucketing. Sized as `MIN_WASTE` in vine.
pub const VINE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING: vine_category_mode_t = 5;
/// TaskVine: deterministic greedy bucketing. Sized as `MIN_WASTE` in vine.
pub const VINE_ALLOCATION_MODE_DET_GREEDY_BUCKETING: vine_category_mode_t = 6;
/// TaskVine: deterministic exhaustive bucketing. Sized as `MIN_WASTE` in vine.
pub const VINE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING: vine_category_mode_t = 7;
/// TaskVine: quantized bucketing. Sized as `MIN_WASTE` in vine.
pub const VINE_ALLOCATION_MODE_QUANTIZED_BUCKETING: vine_category_mode_t = 8;

#[cfg(test)]
mod test {
    use super::*;
    use crate::files;
    use crate::task::TaskResult;

    #[test]
    fn c_constants_match_the_library() {
        let pairs = [
            (VINE_RESULT_SUCCESS, TaskResult::Success),
            (VINE_RESULT_INPUT_MISSING, TaskResult::InputMissing),
            (VINE_RESULT_OUTPUT_MISSING, TaskResult::OutputMissing),
            (VINE_RESULT_STDOUT_MISSING, TaskResult::StdoutMissing),
            (VINE_RESULT_SIGNAL, TaskResult::Signal),
            (
                VINE_RESULT_RESOURCE_EXHAUSTION,
                TaskResult::ResourceExhaustion,
            ),
            (VINE_RESULT_MAX_END_TIME, TaskResult::MaxEndTime),
            (VINE_RESULT_UNKNOWN, TaskResult::Unknown),
            (VINE_RESULT_FORSAKEN, TaskResult::Forsaken),
            (VINE_RESULT_MAX_RETRIES, TaskResult::MaxRetries),
            (VINE_RESULT_MAX_WALL_TIME, TaskResult::MaxWallTime),
            (
                VINE_RESULT_FIXED_LOCATION_MISSING,
                TaskResult::FixedLocationMissing,
            ),
            (VINE_RESULT_CANCELLED, TaskResult::Cancelled),
            (VINE_RESULT_FUNCTION_ERROR, TaskResult::FunctionError),
            (VINE_RESULT_MISSING_FUNCTION, TaskResult::MissingFunction),
            (VINE_RESULT_UNSCHEDULABLE, TaskResult::Unschedulable),
        ];
        assert_eq!(pairs.len(), TaskResult::ALL.len());
        for (c, r) in pairs {
            assert_eq!(c, r.code());
        }
        assert_eq!(VINE_PEER_NOSHARE as u32, files::FILE_PEER_NOSHARE);
        assert_eq!(VINE_UNLINK_WHEN_DONE as u32, files::FILE_UNLINK_WHEN_DONE);
        assert_eq!(VINE_MOUNT_RESEND as u32, files::MOUNT_RESEND);
        assert_eq!(VINE_MOUNT_MKDIR as u32, files::MOUNT_MKDIR);
        assert_eq!(VINE_MOUNT_SYMLINK as u32, files::MOUNT_SYMLINK);
        use files::SourceType;
        for (c, t) in [
            (VINE_FILE, SourceType::File),
            (VINE_URL, SourceType::Url),
            (VINE_TEMP, SourceType::Temp),
            (VINE_BUFFER, SourceType::Buffer),
            (VINE_MINI_TASK, SourceType::MiniTask),
        ] {
            assert_eq!(c, t as c_int);
        }
        assert_eq!(VINE_FIXED_LOCATION as u32, files::MOUNT_FIXED_LOCATION);
        assert_eq!(VINE_WATCH as u32, files::MOUNT_WATCH);
        assert_eq!(VINE_FAILURE_ONLY as u32, files::MOUNT_FAILURE_ONLY);
        assert_eq!(VINE_SUCCESS_ONLY as u32, files::MOUNT_SUCCESS_ONLY);
    }

    #[test]
    fn version_macros_match_the_crate() {
        let v = format!("{VINE_VERSION_MAJOR}.{VINE_VERSION_MINOR}.{VINE_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}
