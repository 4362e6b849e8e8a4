//! Calling a task function: the one place the library calls into user code.

use std::ffi::c_void;

use super::vine_buffer;
use crate::task::FunctionPtr;

/// Calls `f(input, len, &output, context)` and returns its return value and the
/// bytes it appended. A Rust panic from the function is caught and reported as the
/// exit code -1.
pub fn call_task_function(f: FunctionPtr, input: &[u8], context: usize) -> (i32, Vec<u8>) {
    let mut out = vine_buffer { bytes: Vec::new() };
    // Never hand the function a NULL input pointer, even for zero bytes.
    static EMPTY: [u8; 1] = [0];
    let ptr: *const c_void = if input.is_empty() {
        EMPTY.as_ptr().cast()
    } else {
        input.as_ptr().cast()
    };
    let rc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `f` was given by the user as a task function with this signature;
        // `ptr` points to `input.len()` bytes (or one readable byte for none) valid
        // for the call, `out` is a live buffer, `context` is the user's own pointer.
        unsafe { f(ptr, input.len(), &mut out, context as *mut c_void) }
    }))
    .unwrap_or(-1);
    (rc, out.bytes)
}
