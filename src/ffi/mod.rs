//! The C API. Each entry point checks its pointers, runs its body inside the panic
//! guard, and turns errors into a return code plus `vine_last_error()`. All the
//! work is done by the safe modules; this layer only converts.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_int;

pub(crate) mod boundary;
pub(crate) mod callback;
pub(crate) mod constants;
pub mod factory;
pub(crate) mod files;
pub mod function;
pub(crate) mod handles;
pub mod logs;
pub mod manager;
pub mod resources;
pub mod task;

pub use constants::*;

/// A task manager. Create with `vine_create`, free with `vine_delete`. Every
/// function taking a manager may be called from any thread at any time. In a
/// process `fork()`ed after `vine_create`, the manager (and its factories) belong
/// to the parent, whose threads run it: every call on it there fails at once
/// with `VINE_ERROR_UNSUPPORTED` (`vine_delete` frees nothing); the child may
/// create managers of its own.
pub struct vine_manager {
    _opaque: [u8; 0],
}

/// A task: a function call or a command, its settings, and after it ran its
/// result. Belongs to the caller from creation until `vine_submit`, to the manager
/// until `vine_wait` returns it, then to the caller again until `vine_task_delete`.
/// One thread at a time may use a task.
pub struct vine_task {
    _opaque: [u8; 0],
}

/// A factory: worker jobs submitted to a batch system as tasks need them (see
/// `vine_factory_create`). Belongs to its manager: valid until
/// `vine_factory_delete` or `vine_delete` of that manager, whichever comes first.
pub struct vine_factory {
    _opaque: [u8; 0],
}

/// A file, buffer or temp declared to a manager. Belongs to the manager: valid
/// until `vine_delete` of that manager; never freed by the caller.
pub struct vine_file {
    _opaque: [u8; 0],
}

/// Where a task function writes its result, with `vine_buffer_append`. Valid only
/// during the call of the function it was passed to.
pub struct vine_buffer {
    pub(crate) bytes: Vec<u8>,
}

/// Counters and gauges of a manager, filled by `vine_get_stats`: TaskVine's
/// `struct vine_stats`, field for field (names, types and order), then vine's own.
///
/// "Workers" are the remote `vine_worker` processes and, when it has cores, the
/// local pool, which counts as one worker. Times are microseconds. Fields vine does
/// not measure are 0: `workers_init` (a worker joins with its resources),
/// `workers_idled_out` (workers do not leave for idleness), the manager's own time
/// accounting past the transfers (`time_status_msgs` to `time_scheduling`), the
/// `capacity_*` estimates and `inuse_cache`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vine_stats {
    /// Workers connected now.
    pub workers_connected: c_int,
    /// Workers connected that have not yet reported their resources (always 0 in
    /// vine: a worker joins with them).
    pub workers_init: c_int,
    /// Workers holding no task.
    pub workers_idle: c_int,
    /// Workers holding at least one task.
    pub workers_busy: c_int,
    /// Workers that can hold the largest task submitted so far (all of them
    /// before any).
    pub workers_able: c_int,
    /// Remote worker connections ever established.
    pub workers_joined: c_int,
    /// Remote worker connections ended, for any reason.
    pub workers_removed: c_int,
    /// Remote workers the manager told to exit (`vine_workers_shutdown`, draining).
    pub workers_released: c_int,
    /// Workers that left for being idle (0: vine's do not).
    pub workers_idled_out: c_int,
    /// Workers disconnected for being slow (`vine_enable_disconnect_slow_workers`).
    pub workers_slow: c_int,
    /// Times a host was blocked (`vine_block_host`, and slow workers' hosts).
    pub workers_blocked: c_int,
    /// Remote worker connections lost unexpectedly (a worker leaving at its
    /// `--wall-time` says so first and is not counted).
    pub workers_lost: c_int,
    /// Tasks waiting for a worker.
    pub tasks_waiting: c_int,
    /// Tasks given to workers: running, or held by a worker ready to start.
    pub tasks_on_workers: c_int,
    /// Tasks running on workers.
    pub tasks_running: c_int,
    /// Finished tasks not yet returned by a wait.
    pub tasks_with_results: c_int,
    /// Tasks the manager ran itself to make again the temps of a lost worker.
    pub tasks_recovery: c_int,
    /// Tasks submitted since the manager was created.
    pub tasks_submitted: c_int,
    /// Times a task was given to a worker (retries count again).
    pub tasks_dispatched: c_int,
    /// Tasks finished, whatever the result, retrieved or not; the recovery
    /// tasks among them (`tasks_recovery`, which `tasks_submitted` does not
    /// count), so that once all are done it is `tasks_submitted +
    /// tasks_recovery`.
    pub tasks_done: c_int,
    /// Finished tasks whose result is not SUCCESS (a command that exited
    /// non-zero has result SUCCESS: it is counted successful, as in TaskVine).
    pub tasks_failed: c_int,
    /// Finished tasks with result SUCCESS, whatever their exit code
    /// (recovery tasks included, as in `tasks_done`).
    pub tasks_successful: c_int,
    /// Finished tasks that were cancelled.
    pub tasks_cancelled: c_int,
    /// Finished tasks that exhausted their resources.
    pub tasks_exhausted_attempts: c_int,
    /// When the manager started (microseconds since the epoch).
    pub time_when_started: u64,
    /// Time spent sending files to remote workers, each from its first frame
    /// to its last.
    pub time_send: u64,
    /// Time spent receiving files from remote workers.
    pub time_receive: u64,
    /// Of `time_send`, the files that arrived whole.
    pub time_send_good: u64,
    /// Of `time_receive`, the files that arrived whole.
    pub time_receive_good: u64,
    /// Not measured: 0.
    pub time_status_msgs: u64,
    /// Not measured: 0.
    pub time_internal: u64,
    /// Not measured: 0.
    pub time_polling: u64,
    /// Not measured: 0.
    pub time_application: u64,
    /// Not measured: 0.
    pub time_scheduling: u64,
    /// Time workers spent executing the tasks finished so far.
    pub time_workers_execute: u64,
    /// Of it, tasks that finished with SUCCESS.
    pub time_workers_execute_good: u64,
    /// Of it, tasks that exhausted their resources.
    pub time_workers_execute_exhaustion: u64,
    /// Bytes of input files sent to remote workers (a cached file is sent once).
    pub bytes_sent: i64,
    /// Bytes of output files received from remote workers.
    pub bytes_received: i64,
    /// MB (2^20 bytes) a second over the files sent and received: their bytes
    /// over `time_send` and `time_receive` (`vine_get_effective_bandwidth`); 0
    /// before any.
    pub bandwidth: f64,
    /// Not estimated: 0.
    pub capacity_tasks: c_int,
    /// Not estimated: 0.
    pub capacity_cores: c_int,
    /// Not estimated: 0.
    pub capacity_memory: c_int,
    /// Not estimated: 0.
    pub capacity_disk: c_int,
    /// Not estimated: 0.
    pub capacity_gpus: c_int,
    /// Not estimated: 0.
    pub capacity_instantaneous: c_int,
    /// Not estimated: 0.
    pub capacity_weighted: c_int,
    /// Cores of all workers, rounded up to whole cores (see `total_cores_exact`).
    pub total_cores: i64,
    /// Memory of all workers, MB.
    pub total_memory: i64,
    /// Disk of all workers, MB.
    pub total_disk: i64,
    /// Gpus of all workers.
    pub total_gpus: i64,
    /// Cores held by running tasks, rounded up to whole cores (see
    /// `committed_cores_exact`).
    pub committed_cores: i64,
    /// Memory held by running tasks, MB.
    pub committed_memory: i64,
    /// Disk held by running tasks, MB.
    pub committed_disk: i64,
    /// Gpus held by running tasks.
    pub committed_gpus: i64,
    /// The most cores of one worker (whole cores).
    pub max_cores: i64,
    /// The most memory of one worker, MB.
    pub max_memory: i64,
    /// The most disk of one worker, MB.
    pub max_disk: i64,
    /// The most gpus of one worker.
    pub max_gpus: i64,
    /// The fewest cores of one worker (whole cores).
    pub min_cores: i64,
    /// The least memory of one worker, MB.
    pub min_memory: i64,
    /// The least disk of one worker, MB.
    pub min_disk: i64,
    /// The fewest gpus of one worker.
    pub min_gpus: i64,
    /// Not measured: 0.
    pub inuse_cache: i64,
    /// vine's own: attempts re-run after failures that were not the task's own.
    pub tasks_retried: i64,
    /// vine's own: cores of all workers, fractions included.
    pub total_cores_exact: f64,
    /// vine's own: cores held by running tasks, fractions included.
    pub committed_cores_exact: f64,
    /// vine's own: bytes of files moved between remote workers (peer
    /// transfers), which `bytes_sent` does not count.
    pub bytes_peer: i64,
}
