//! Running a function task on the current thread.

use std::cell::RefCell;
use std::time::Instant;

use crate::payload::Payload;
use crate::task::{Task, TaskResult, Work};

thread_local! {
    static CURRENT_GPUS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// The gpu ids given to the task running on this thread (empty outside a task).
pub fn current_gpu_ids() -> Vec<u32> {
    CURRENT_GPUS.with(|g| g.borrow().clone())
}

/// The alignment a function's input has: that of C's `max_align_t` on the
/// platforms this runs on.
const ALIGN: usize = 16;

/// Room for a short input at an address aligned to [`ALIGN`].
#[repr(C, align(16))]
struct Aligned([u8; Payload::INLINE]);

/// Runs the task's function with its input and records output, exit code and result.
pub fn run(task: &mut Task, gpus: &[u32], control: &crate::worker::process::RunControl) {
    let (func, context, input) = match &task.work {
        Work::Function { name, func, input } => {
            let f = func.or_else(|| crate::registry::lookup(name));
            match f {
                Some(f) => (f, 0usize, input),
                None => {
                    let reason = format!(
                        "no function is registered as {:?} in this process",
                        name.to_string_lossy()
                    );
                    task.finish(TaskResult::MissingFunction, Some(reason));
                    return;
                }
            }
        }
        Work::Local {
            func,
            context,
            input,
        } => (*func, *context, input),
        Work::Command { .. } => unreachable!("commands are not functions"),
    };
    if !gpus.is_empty() {
        CURRENT_GPUS.with(|g| g.borrow_mut().extend_from_slice(gpus));
    }
    if task.mode == crate::task::ExecMode::Process {
        let input = input.as_slice().to_vec();
        crate::worker::isolated::run(task, func, context, &input, control);
        if !gpus.is_empty() {
            CURRENT_GPUS.with(|g| g.borrow_mut().clear());
        }
        return;
    }
    let time_max = task.time_max();
    let monitor = task.flags & crate::task::FLAG_MONITOR != 0;
    let start = (time_max > 0.0 || monitor).then(Instant::now);
    let cpu_before = if monitor { thread_cpu_us() } else { 0 };
    let mut stack = Aligned([0; Payload::INLINE]);
    let copy: Vec<u8>;
    let bytes = input.as_slice();
    // At an address aligned for any C type, as malloc's memory is: a function
    // may read its input through a pointer to a double or a struct. (A short
    // input is kept inside the task, at whatever offset that has.)
    let bytes = if (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
        bytes
    } else if bytes.len() <= stack.0.len() {
        stack.0[..bytes.len()].copy_from_slice(bytes);
        &stack.0[..bytes.len()]
    } else {
        // The allocator's blocks are aligned so.
        copy = bytes.to_vec();
        &copy
    };
    let (rc, output) = crate::ffi::callback::call_task_function(func, bytes, context);
    // CPU time is read before the wall clock, so it never covers more.
    let cpu_us = if monitor {
        thread_cpu_us().saturating_sub(cpu_before)
    } else {
        0
    };
    let elapsed = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    if monitor {
        task.extra_mut().measured = Some(crate::resources::Measured {
            wall_us: (elapsed * 1e6) as u64,
            cpu_us,
            ..Default::default()
        });
    }
    if !gpus.is_empty() {
        CURRENT_GPUS.with(|g| g.borrow_mut().clear());
    }
    task.output = output;
    task.exit_code = rc;
    let end = task.time_end();
    if end > 0 && crate::task::now_us() > end {
        let reason = "returned after its end time (a THREAD function cannot be stopped)";
        task.finish(TaskResult::MaxEndTime, Some(reason.into()));
    } else if time_max > 0.0 && elapsed > time_max {
        let reason = format!("ran {elapsed:.3} s, past its time_max of {time_max} s");
        task.finish(TaskResult::MaxWallTime, Some(reason));
    } else if rc == 0 {
        task.finish(TaskResult::Success, None);
    } else {
        task.finish(
            TaskResult::FunctionError,
            Some(format!("the function returned {rc}")),
        );
    }
}

/// CPU time of the calling thread so far, microseconds.
fn thread_cpu_us() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the local struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return 0;
    }
    crate::worker::process::cpu_us(&usage)
}
