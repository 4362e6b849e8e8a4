//! vine: a task executor with a C ABI.
//!
//! A program creates a [`Manager`], submits tasks (registered functions, local
//! function pointers, shell commands) with resource requests, and waits for them.
//! Tasks run on threads of the same process by default. See `include/vine.h` for the
//! C API, which is the main interface; the Rust types are public for tests and for
//! Rust programs that embed vine.
#![deny(unsafe_op_in_unsafe_fn)]
// Tasks stay boxed wherever they go: a task moves between the caller, the manager
// and workers many times, and its C handle refers to one allocation throughout.
#![allow(clippy::vec_box)]
#![deny(missing_docs)]

pub mod channel;
mod dial;
pub mod error;
pub mod ffi;
pub mod files;
mod idmap;
pub mod manager;
pub(crate) mod padded;
pub(crate) mod payload;
pub mod protocol;
pub mod registry;
pub(crate) mod resources;
mod spin;
pub mod task;
pub mod tls;
pub mod transfer;
pub mod worker;

pub use error::{Error, ErrorKind, Result};
pub use manager::{Manager, Port, Want};
pub use resources::{Measured, Resources};
pub use task::{Task, TaskResult};
