//! Workers: anything with resources that runs tasks. The local pool runs them on
//! threads of this process, through the [`WorkerLink`] interface; remote workers
//! (other processes) run [`remote`]. The scheduler never knows which kind it uses.

pub(crate) mod command;
pub mod daemon;
pub(crate) mod fetch;
pub(crate) mod function;
pub(crate) mod guardian;
pub(crate) mod isolated;
pub(crate) mod library;
pub(crate) mod local;
pub(crate) mod machine;
pub(crate) mod process;
pub(crate) mod sandbox;
pub(crate) mod slots;
pub(crate) mod watch;

use crate::task::{Task, TaskId};

/// How the manager thread talks to one worker. Every call is made on the manager
/// thread and must not block for long.
pub trait WorkerLink: Send {
    /// Hands over tasks (already placed on this worker by the scheduler).
    fn dispatch(&mut self, tasks: &mut Vec<Box<Task>>);
    /// Stops task `id` if the worker has it; it comes back marked cancelled.
    fn cancel(&mut self, id: TaskId);
    /// Task `id`'s end time passed: it is stopped if the worker has it, and
    /// comes back `MaxEndTime` (a command killed then returns what it wrote).
    fn end_time(&mut self, id: TaskId);
}
