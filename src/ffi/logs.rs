//! The logs and the runtime information directory, with TaskVine's calls.

use std::ffi::{c_char, c_int};
use std::path::Path;
use std::ptr;

use super::boundary::{c_str, guard, guard_or_code, path_of};
use super::{handles, vine_manager};
use crate::error::Error;

/// Writes manager `m`'s transactions log to `logfile` from now on (created or
/// truncated, its directory made if missing), in TaskVine's format: a header
/// block of `#` lines, then a line per event, `TIME PID MANAGER|WORKER|TASK|TRANSFER|APPLICATION ...` (TIME in
/// microseconds since the epoch). Every task goes `READY` (TaskVine's documents
/// call this state WAITING; its manager writes, and its tools read, `READY`),
/// `RUNNING`, `WAITING_RETRIEVAL`, `RETRIEVED`, and `DONE` when it is handed to
/// `vine_wait`'s queue; a retried task starts again at `READY` with the next
/// attempt number. A task whose worker was lost while it ran goes from
/// `RUNNING` straight back to `READY`, or to `DONE FORSAKEN` (as TaskVine's
/// does: nothing was retrieved). Local threads appear as the worker `worker-local`, remote
/// workers as `worker-N`. Records are written by a thread of their own, a batch
/// at a time and at idle priority: the file may lag behind the run while tasks
/// keep every core busy, and is complete once `vine_delete` returns (or at
/// `exit`). A manager with a port writes this
/// log by default in its runtime directory (see `vine_set_runtime_info_path`).
/// Enabled again with another file, the log goes on there; records of events
/// before that stay in the old file. A file that is already another log of the
/// manager (its performance or debug log) is refused. Any log may be a FIFO or
/// a pipe: opening a FIFO waits, as any open of one does, until it has a
/// reader; if its reader goes away, the log's writes fail and the program goes
/// on (no SIGPIPE reaches it).
/// Returns 1 if the file was opened, 0 if not (as TaskVine).
#[no_mangle]
pub unsafe extern "C" fn vine_enable_transactions_log(
    m: *mut vine_manager,
    logfile: *const c_char,
) -> c_int {
    guard_or_code(
        || {
            let m = handles::manager(m)?;
            // SAFETY: C passes a NUL-terminated string or NULL.
            let path = unsafe { path_of(logfile, "the log file")? };
            m.enable_transactions_log(Path::new(path)).map(|()| 1)
        },
        |_| 0,
    )
}

/// Writes manager `m`'s performance log to `logfile` from now on (created or
/// truncated, its directory made if missing): TaskVine's header row of
/// `vine_stats` field names, then a row of their values whenever one changed,
/// at most one a second (a change within the second is written when the
/// second is over), and a last row when the manager ends or the program exits
/// without deleting it (it may follow the one before within the second). Fields vine does
/// not measure (the manager's own time split past its transfers, capacity
/// estimates) are 0.
/// Returns 1 if the file was opened, 0 if not.
#[no_mangle]
pub unsafe extern "C" fn vine_enable_perf_log(
    m: *mut vine_manager,
    logfile: *const c_char,
) -> c_int {
    guard_or_code(
        || {
            let m = handles::manager(m)?;
            // SAFETY: C passes a NUL-terminated string or NULL.
            let path = unsafe { path_of(logfile, "the log file")? };
            m.enable_perf_log(Path::new(path)).map(|()| 1)
        },
        |_| 0,
    )
}

/// Writes manager `m`'s task graph log to `logfile` from now on (created or
/// truncated, its directory made if missing): a Graphviz `digraph` of every task
/// submitted from now on and the files it reads and writes. Task nodes are
/// `"task-ID"`, labelled with the task id; file nodes are `"file-N"`, boxes
/// labelled with the last part of the file's path or URL (or `buffer`, `temp`,
/// `mini task`), each written once; an edge goes from each input to its task and
/// from each task to its outputs. The closing brace is written when the
/// manager ends, when the program exits without deleting it, or when the log
/// is enabled again with another file. A file
/// that is already another log of the manager is refused. Returns 1 if the
/// file was opened, 0 if not (the reason in `vine_last_error()`), as TaskVine.
/// While it is on, local tasks all take the manager's path.
#[no_mangle]
pub unsafe extern "C" fn vine_enable_taskgraph_log(
    m: *mut vine_manager,
    logfile: *const c_char,
) -> c_int {
    guard_or_code(
        || {
            let m = handles::manager(m)?;
            // SAFETY: C passes a NUL-terminated string or NULL.
            let path = unsafe { path_of(logfile, "the log file")? };
            m.enable_taskgraph_log(Path::new(path)).map(|()| 1)
        },
        |_| 0,
    )
}

/// Writes the debug log of every manager of the process to `logfile` (created or
/// truncated, its directory made if missing), as TaskVine's call does (it
/// takes no manager): workers joining and leaving, shutdown, the program's `vine_log_debug_app` lines. Each line
/// is `YYYY/MM/DD HH:MM:SS.cc vine[PID] vine: TEXT` (UTC). A file a manager of
/// the process writes one of its own logs to is refused. Returns 1 if the file
/// was opened, 0 if not.
#[no_mangle]
pub unsafe extern "C" fn vine_enable_debug_log(logfile: *const c_char) -> c_int {
    guard_or_code(
        || {
            // SAFETY: C passes a NUL-terminated string or NULL.
            let path = unsafe { path_of(logfile, "the log file")? };
            crate::manager::journal::debug::enable_global(Path::new(path)).map(|()| 1)
        },
        |_| 0,
    )
}

/// Adds `APPLICATION TEXT` to manager `m`'s transactions log (line breaks in
/// `entry` become spaces). Does nothing if the log is off, or on NULL (which
/// sets `vine_last_error`).
#[no_mangle]
pub unsafe extern "C" fn vine_log_txn_app(m: *mut vine_manager, entry: *const c_char) {
    guard((), || {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let text = unsafe { c_str(entry, "the entry")? };
        m.log_txn_app(&text.to_string_lossy());
        Ok(())
    })
}

/// Adds a line of the program's own to manager `m`'s debug log (and the
/// process's, see `vine_enable_debug_log`).
#[no_mangle]
pub unsafe extern "C" fn vine_log_debug_app(m: *mut vine_manager, entry: *const c_char) {
    guard((), || {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let text = unsafe { c_str(entry, "the entry")? };
        m.log_debug(&format!("APPLICATION {}", text.to_string_lossy()));
        Ok(())
    })
}

/// Names the run directory of managers created from now on, as TaskVine's call
/// does: a template with `%Y %m %d %H %M %S` (UTC start time), under the
/// runtime info path unless absolute. NULL restores the default
/// (`%Y-%m-%dT%H%M%S`; a second manager started in the same second gets `.2`).
/// A directory named by the template is used even if it exists (its logs are
/// truncated), but not while another manager of this process writes its logs
/// there: `vine_create` then fails (`VINE_ERROR_INVALID_ARGUMENT`), as two
/// managers writing one file would lose records.
#[no_mangle]
pub unsafe extern "C" fn vine_set_runtime_info_template(dir: *const c_char) {
    guard((), || {
        let template = if dir.is_null() {
            None
        } else {
            // SAFETY: C passes a NUL-terminated string.
            Some(unsafe { path_of(dir, "the template")? }.to_owned())
        };
        crate::manager::rundir::set_template(template);
        Ok(())
    })
}

/// The absolute path of manager `m`'s run directory (its logs are in
/// `vine-logs/` there), or NULL if it writes none. The string belongs to the
/// manager and stays valid until `vine_delete`.
#[no_mangle]
pub extern "C" fn vine_get_runtime_directory(m: *mut vine_manager) -> *const c_char {
    guard(ptr::null(), || {
        let m = handles::manager(m)?;
        Ok(match m.runtime_info_dir() {
            Some(dir) => m.keep_c(&dir.to_string_lossy()),
            None => ptr::null(),
        })
    })
}

/// `RUNDIR/vine-logs/PATH` (or `RUNDIR/vine-logs` for a NULL `path`) for manager
/// `m`'s run directory, as a string the caller frees with `free()`; NULL if the
/// manager writes no logs or memory ran out. `PATH` is appended as it is, as in
/// TaskVine: an absolute one still names a place under `RUNDIR/vine-logs`.
#[no_mangle]
pub unsafe extern "C" fn vine_get_path_log(
    m: *mut vine_manager,
    path: *const c_char,
) -> *mut c_char {
    // SAFETY: C passes a NUL-terminated string or NULL.
    guard(ptr::null_mut(), || unsafe {
        path_in_run(m, "vine-logs", path)
    })
}

/// `RUNDIR/staging/PATH` (or `RUNDIR/staging`), as `vine_get_path_log`: a
/// directory of the run for the program's own staged files, as TaskVine's
/// call gives. vine stages nothing there itself; the directory is made when
/// first asked for.
#[no_mangle]
pub unsafe extern "C" fn vine_get_path_staging(
    m: *mut vine_manager,
    path: *const c_char,
) -> *mut c_char {
    // SAFETY: C passes a NUL-terminated string or NULL.
    guard(ptr::null_mut(), || unsafe {
        path_in_run(m, "staging", path)
    })
}

/// `RUNDIR/library-logs/PATH` (or `RUNDIR/library-logs`), as
/// `vine_get_path_log`: where TaskVine keeps its libraries' logs. vine's
/// libraries (`vine_worker --library`) log with their worker, so vine writes
/// nothing there; the directory is made when first asked for.
#[no_mangle]
pub unsafe extern "C" fn vine_get_path_library_log(
    m: *mut vine_manager,
    path: *const c_char,
) -> *mut c_char {
    // SAFETY: C passes a NUL-terminated string or NULL.
    guard(ptr::null_mut(), || unsafe {
        path_in_run(m, "library-logs", path)
    })
}

/// `RUNDIR/../vine-cache/PATH` (or `RUNDIR/../vine-cache`), as
/// `vine_get_path_log` and as TaskVine's call gives: a directory next to the
/// run directories of `vine_set_runtime_info_path`, which outlives each run, for
/// the program's own cached files. vine keeps nothing there itself (workers keep
/// their caches in their own workspaces); the directory is made when first asked
/// for.
#[no_mangle]
pub unsafe extern "C" fn vine_get_path_cache(
    m: *mut vine_manager,
    path: *const c_char,
) -> *mut c_char {
    // SAFETY: C passes a NUL-terminated string or NULL.
    guard(ptr::null_mut(), || unsafe {
        path_under_run(
            m,
            |run| run.parent().unwrap_or(run).join("vine-cache"),
            path,
        )
    })
}

/// `RUNDIR/sub/PATH` (`RUNDIR/sub` for NULL) as a string for `free()`, the
/// directory `RUNDIR/sub` made if missing.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
unsafe fn path_in_run(
    m: *mut vine_manager,
    sub: &str,
    path: *const c_char,
) -> crate::error::Result<*mut c_char> {
    // SAFETY: as this function's.
    unsafe { path_under_run(m, |run| run.join(sub), path) }
}

/// `DIR/PATH` (`DIR` for NULL) as a string for `free()`, where `dir_of` gives
/// DIR from the run directory; DIR is made if missing.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
unsafe fn path_under_run(
    m: *mut vine_manager,
    dir_of: impl FnOnce(&std::path::Path) -> std::path::PathBuf,
    path: *const c_char,
) -> crate::error::Result<*mut c_char> {
    let m = handles::manager(m)?;
    let Some(dir) = m.runtime_info_dir() else {
        return Err(Error::invalid("the manager writes no logs"));
    };
    let dir = dir_of(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut full = dir.into_os_string().into_encoded_bytes();
    if !path.is_null() {
        // SAFETY: C passes a NUL-terminated string.
        full.push(b'/');
        full.extend_from_slice(unsafe { c_str(path, "the path")? }.to_bytes());
    }
    if full.contains(&0) {
        return Err(Error::invalid("the path holds a NUL byte"));
    }
    // SAFETY: a fresh allocation of len + 1 bytes, filled and terminated
    // below; the caller owns it and frees it with free().
    unsafe {
        let out = libc::malloc(full.len() + 1).cast::<u8>();
        if out.is_null() {
            return Err(Error::invalid("out of memory"));
        }
        ptr::copy_nonoverlapping(full.as_ptr(), out, full.len());
        *out.add(full.len()) = 0;
        Ok(out.cast::<c_char>())
    }
}

/// The process that registered [`flush_logs_at_exit`].
static REGISTERED_BY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn flush_logs_at_exit() {
    guard((), || {
        // A child forked to run a PROCESS function that calls exit() has none
        // of the log writer threads: waiting for them would never end.
        if std::process::id() == REGISTERED_BY.load(std::sync::atomic::Ordering::Relaxed) {
            // What a manager's end would have written, for those the program
            // did not delete (a manager thread that does not answer within a
            // second is not waited for).
            let live = super::handles::live_managers();
            for m in &live {
                m.end_logs_at_exit(std::time::Duration::from_secs(1));
            }
            crate::manager::journal::flush_all();
            // Nor would their scratch directories be removed.
            for m in &live {
                m.remove_scratch_at_exit();
            }
        }
        Ok(())
    })
}

/// Has `exit` write out every manager's pending log records (once per process).
pub(crate) fn flush_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        REGISTERED_BY.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: registers a function with no arguments that never unwinds.
        unsafe {
            libc::atexit(flush_logs_at_exit);
        }
    });
}
