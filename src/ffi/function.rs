//! Entry points for task functions: registering them, writing their output, and
//! what they can ask about the task they run.

use std::ffi::{c_char, c_int, c_void};

use super::boundary::{bytes, c_str, guard_code, null};
use super::vine_buffer;
use crate::error::Error;

/// A task function. Reads `input_len` bytes at `input` (not NULL even when empty),
/// appends its result to `output` with `vine_buffer_append`, and returns 0 on
/// success; any other value is the task's exit code and the task ends
/// `VINE_RESULT_FUNCTION_ERROR` (output kept). `context` is NULL for registered
/// functions and the caller's pointer for `vine_task_create_local`.
///
/// It runs on a worker thread, possibly many at once: it must be thread-safe. It may
/// create and submit tasks to a manager, but must not wait for them (every worker
/// thread could end up waiting), nor shut down or delete the manager. Run as
/// `VINE_EXEC_PROCESS`, it cannot use a manager, file or factory at all (such
/// calls fail with `VINE_ERROR_UNSUPPORTED`; see `vine_task_set_exec_mode`).
pub type vine_function_t = Option<
    unsafe extern "C" fn(
        input: *const c_void,
        input_len: usize,
        output: *mut vine_buffer,
        context: *mut c_void,
    ) -> c_int,
>;

/// Registers `fn` as `name` in this process, so tasks created with
/// `vine_task_create_function(name, ...)` can run here. Every process that may run
/// such tasks (this one, and workers started from the same program or library)
/// registers the same names. Registering the same pair again is harmless; the name
/// with a different pointer returns `VINE_ERROR_DUPLICATE_FUNCTION`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn vine_register_function(
    name: *const c_char,
    func: vine_function_t,
) -> c_int {
    guard_code(|| {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = unsafe { c_str(name, "the function name")? };
        let f = func.ok_or_else(|| null("the function"))?;
        super::handles::not_in_child("the function registry")?;
        crate::registry::register(name, f)?;
        Ok(0)
    })
}

/// Appends `len` bytes at `data` to a task's output. Only valid on the `output`
/// a task function was given, during that call. Returns 0 or a negative error
/// (NULL buffer, NULL data with `len` > 0).
#[no_mangle]
pub unsafe extern "C" fn vine_buffer_append(
    out: *mut vine_buffer,
    data: *const c_void,
    len: usize,
) -> c_int {
    guard_code(|| {
        if out.is_null() {
            return Err(null("the output buffer"));
        }
        // SAFETY: C passes `len` readable bytes, or NULL with 0.
        let data = unsafe { bytes(data, len, "the data")? };
        // SAFETY: `out` is the buffer the library passed to the running function.
        let out = unsafe { &mut (*out).bytes };
        // Reserved first: a failed allocation would abort the program.
        out.try_reserve(data.len()).map_err(|_| {
            Error::invalid(format!(
                "cannot append {} bytes to the {} the output holds: not enough memory",
                data.len(),
                out.len()
            ))
        })?;
        out.extend_from_slice(data);
        Ok(0)
    })
}

/// From inside a task function: writes up to `max` of the task's gpu device ids to
/// `ids` and returns how many the task has (which may exceed `max`). 0 outside a
/// task or for a task without gpus; a negative error if `ids` is NULL with `max` > 0.
#[no_mangle]
pub unsafe extern "C" fn vine_task_gpu_ids(ids: *mut c_int, max: c_int) -> c_int {
    guard_code(|| {
        let gpus = crate::worker::function::current_gpu_ids();
        let max = usize::try_from(max).unwrap_or(0);
        if max > 0 {
            if ids.is_null() {
                return Err(null("ids"));
            }
            for (i, g) in gpus.iter().take(max).enumerate() {
                // SAFETY: `ids` has room for `max` ints by the C contract; i < max.
                unsafe { ids.add(i).write(*g as c_int) };
            }
        }
        Ok(gpus.len() as c_int)
    })
}

/// Makes this program a worker: `./app --vine-worker HOST PORT [options]` with the
/// options of `vine_worker` (`--password FILE`, `--cores N`, `--memory MB`,
/// `--disk MB`, `--gpus N`, `--library LIB.so`, `--timeout S`, `--workdir DIR`;
/// `--vine-worker` itself is optional). Register the program's functions before
/// calling it: the worker runs those, so an SPMD code started by `srun` or `mpirun`
/// serves its own functions. A library given with `--library` exports
/// `int vine_register_functions(int (*register_function)(const char *, vine_function_t))`
/// and calls `register_function` for each of its functions.
///
/// Returns 0 when the manager tells the worker to exit, 1 when no manager could be
/// reached or authenticated within `--timeout` (default 900 s) or the worker
/// cannot start as asked (a `--library` that does not load, a workspace,
/// transfer port or TLS file it cannot have), 2 for a command line it cannot
/// take (an unknown option, a bad number, an unreadable password file); the
/// reason on standard error.
#[no_mangle]
pub unsafe extern "C" fn vine_worker_main(argc: c_int, argv: *const *mut c_char) -> c_int {
    guard_code(|| {
        if argv.is_null() {
            return Err(null("argv"));
        }
        let n =
            usize::try_from(argc).map_err(|_| crate::error::Error::invalid("argc is negative"))?;
        let mut args = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: argv has argc entries by the C contract.
            let a = unsafe { *argv.add(i) };
            // SAFETY: each entry is a NUL-terminated string or NULL.
            let a = unsafe { c_str(a, "an argv entry")? };
            args.push(a.to_string_lossy().into_owned());
        }
        Ok(crate::worker::daemon::main_with_args(args))
    })
}
