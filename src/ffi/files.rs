//! Entry points for files: declaring them to a manager and attaching them to tasks.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use super::boundary::{bytes, c_str, guard, guard_code};
use super::handles::{self, with_task_mut};
use super::{
    vine_cache_level_t, vine_file, vine_file_flags_t, vine_manager, vine_mount_flags_t, vine_task,
};
use crate::files::{CacheLevel, File, Mount};
use crate::manager::Manager;

fn flags_of(flags: c_int) -> crate::error::Result<u32> {
    u32::try_from(flags)
        .map_err(|_| crate::error::Error::invalid(format!("flags {flags} are negative")))
}

/// Declares the file (or directory) at `path` on this machine, as an input to
/// copy into sandboxes or an output to write back. It need not exist yet. `cache`
/// is a `VINE_CACHE_LEVEL_*`, `flags` or-ed `VINE_PEER_NOSHARE` / `VINE_UNLINK_WHEN_DONE`.
/// The manager owns the returned file (valid until `vine_delete`); NULL on error.
#[no_mangle]
pub unsafe extern "C" fn vine_declare_file(
    m: *mut vine_manager,
    path: *const c_char,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let path = Manager::utf8(unsafe { c_str(path, "the path")? })?;
        let f = File::path(
            path.as_ref(),
            CacheLevel::from_code(cache)?,
            flags_of(flags)?,
        )?;
        Ok(handles::file_into_c(m.declare(f)))
    })
}

/// Declares an in-memory file holding a copy of `len` bytes at `data` (NULL allowed
/// when `len` is 0). As an input it is written into the sandbox; as an output it
/// receives what the task wrote (read it with `vine_fetch_file`). Owned by the
/// manager; NULL on error.
#[no_mangle]
pub unsafe extern "C" fn vine_declare_buffer(
    m: *mut vine_manager,
    data: *const c_void,
    len: usize,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let m = handles::manager(m)?;
        // SAFETY: C passes `len` readable bytes or NULL with 0.
        let data = unsafe { bytes(data, len, "the data")? };
        let f = File::buffer(data, CacheLevel::from_code(cache)?, flags_of(flags)?)?;
        Ok(handles::file_into_c(m.declare(f)))
    })
}

/// Declares a temp: an output that stays where the task that made it ran, for
/// later tasks to use as an input (they are placed on the worker that holds it),
/// fetched only by `vine_fetch_file`. If that worker is lost, the task that made the
/// temp runs again (as the manager's own task, never returned by `vine_wait`) and
/// the tasks reading it wait for it. Owned by the manager; NULL on error.
#[no_mangle]
pub extern "C" fn vine_declare_temp(m: *mut vine_manager) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let m = handles::manager(m)?;
        Ok(handles::file_into_c(m.declare(File::temp()?)))
    })
}

/// Attaches `f` as an input of command task `t`, placed in its sandbox as
/// `remote_name` (a relative path; one with `..` or starting with `/` is refused).
/// `flags`: or-ed `VINE_MOUNT_MKDIR`, `VINE_MOUNT_SYMLINK`, `VINE_MOUNT_RESEND`, or
/// `VINE_TRANSFER_ALWAYS` (0, the default).
/// An input missing when the task starts makes it `VINE_RESULT_INPUT_MISSING`.
/// Returns 0 or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_task_add_input(
    t: *mut vine_task,
    f: *mut vine_file,
    remote_name: *const c_char,
    flags: vine_mount_flags_t,
) -> c_int {
    guard_code(|| {
        let file = handles::file(f)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = Manager::utf8(unsafe { c_str(remote_name, "the remote name")? })?;
        let mount = Mount::new(file, name, flags_of(flags)?)?;
        with_task_mut(t, |t| t.add_input(mount))?;
        Ok(0)
    })
}

/// Attaches `f` as an output of command task `t`: after the command, the sandbox's
/// `remote_name` is moved to the file's path, read into the buffer, or kept as the
/// temp. An output not produced makes the task `VINE_RESULT_OUTPUT_MISSING`.
/// `flags`: `VINE_MOUNT_MKDIR` makes `remote_name` an empty directory before the
/// command runs (the directory, as the command leaves it, is the output); else 0.
/// Returns 0 or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_task_add_output(
    t: *mut vine_task,
    f: *mut vine_file,
    remote_name: *const c_char,
    flags: vine_mount_flags_t,
) -> c_int {
    guard_code(|| {
        let file = handles::file(f)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = Manager::utf8(unsafe { c_str(remote_name, "the remote name")? })?;
        let mount = Mount::new(file, name, flags_of(flags)?)?;
        with_task_mut(t, |t| t.add_output(mount))?;
        Ok(0)
    })
}

/// The current contents of a buffer, temp or file, NUL-terminated (the size, which
/// excludes the NUL, from `vine_file_size`). A temp kept at a remote worker is
/// brought from it first (the call waits for it). The memory belongs to the file and
/// stays valid until `vine_delete`. NULL on error (e.g. a temp no task produced yet,
/// or whose worker was lost).
#[no_mangle]
pub extern "C" fn vine_fetch_file(m: *mut vine_manager, f: *mut vine_file) -> *const c_char {
    guard(ptr::null(), || {
        let m = handles::manager(m)?;
        let file = handles::file(f)?;
        Ok(m.fetch_file(&file)?.as_ptr().cast())
    })
}

/// The size in bytes of what the file holds now (0 if unknown, and on error).
#[no_mangle]
pub extern "C" fn vine_file_size(f: *mut vine_file) -> usize {
    guard(0, || Ok(handles::file(f)?.size().unwrap_or(0) as usize))
}

/// Sets the Unix permission bits `f` has in a task's sandbox, locally and at remote
/// workers (owner read and write are always added; bits past 0777 are dropped).
/// Without it, a file or directory keeps its own mode and a buffer is 0755, so a
/// script shipped as an input runs. A file linked into the sandbox
/// (`VINE_MOUNT_SYMLINK`, or a directory on local workers) keeps its source's mode.
/// Returns 0 or a negative error (TaskVine's function of the same name returns nothing).
#[no_mangle]
pub extern "C" fn vine_file_set_mode(f: *mut vine_file, mode: c_int) -> c_int {
    guard_code(|| {
        let file = handles::file(f)?;
        let mode = u32::try_from(mode)
            .map_err(|_| crate::error::Error::invalid(format!("mode {mode} is negative")))?;
        file.set_mode(mode);
        Ok(0)
    })
}
