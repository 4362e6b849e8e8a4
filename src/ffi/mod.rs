//! The C API. Each entry point checks its pointers, runs its body inside the panic
//! guard, and turns errors into a return code plus `vine_last_error()`. All the
//! work is done by the safe modules; this layer only converts.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

pub(crate) mod boundary;
pub(crate) mod callback;
pub(crate) mod constants;
pub(crate) mod files;
pub mod function;
pub(crate) mod handles;
pub mod manager;
pub mod task;

pub use constants::*;

/// A task manager. Create with `vine_create`, free with `vine_delete`. Every
/// function taking a manager may be called from any thread at any time.
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

/// Counters and gauges of a manager, filled by `vine_get_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vine_stats {
    /// Tasks submitted since the manager was created.
    pub tasks_submitted: i64,
    /// Tasks waiting for a worker.
    pub tasks_waiting: i64,
    /// Tasks given to workers: running, or held by a worker ready to start.
    pub tasks_on_workers: i64,
    /// Tasks running on workers.
    pub tasks_running: i64,
    /// Tasks finished (whatever the result), retrieved or not.
    pub tasks_done: i64,
    /// Finished tasks whose result is not SUCCESS or whose exit code is not 0.
    pub tasks_failed: i64,
    /// Finished tasks that were cancelled.
    pub tasks_cancelled: i64,
    /// Attempts re-run after failures that were not the task's own.
    pub tasks_retried: i64,
    /// Workers connected (the local pool counts as one when it has cores).
    pub workers_connected: i64,
    /// Cores of all workers.
    pub total_cores: f64,
    /// Memory of all workers, MB.
    pub total_memory: i64,
    /// Disk of all workers, MB.
    pub total_disk: i64,
    /// Gpus of all workers.
    pub total_gpus: i64,
    /// Cores held by running tasks.
    pub committed_cores: f64,
    /// Memory held by running tasks, MB.
    pub committed_memory: i64,
    /// Disk held by running tasks, MB.
    pub committed_disk: i64,
    /// Gpus held by running tasks.
    pub committed_gpus: i64,
    /// Bytes of input files sent to remote workers (a cached file is sent once).
    pub bytes_sent: i64,
    /// Bytes of output files received from remote workers.
    pub bytes_received: i64,
}
