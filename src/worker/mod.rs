//! Workers: anything with resources that runs tasks. The local pool runs them on
//! threads of this process, through the [`WorkerLink`] interface; remote workers
//! (other processes) run [`remote`]. The scheduler never knows which kind it uses.

pub mod command;
pub mod function;
pub mod isolated;
pub mod library;
pub mod local;
pub mod machine;
pub mod process;
pub mod remote;
pub mod sandbox;
pub mod slots;

use crate::task::{Task, TaskId};

/// How the manager thread talks to one worker. Every call is made on the manager
/// thread and must not block for long.
pub trait WorkerLink: Send {
    /// Hands over tasks (already placed on this worker by the scheduler).
    fn dispatch(&mut self, tasks: &mut Vec<Box<Task>>);
    /// Stops task `id` if the worker has it; it comes back marked cancelled.
    fn cancel(&mut self, id: TaskId);
}
