//! Entry points for files: declaring them to a manager and attaching them to tasks.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use super::boundary::{bytes, c_str, guard, guard_code, guard_errno};
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
/// copy into sandboxes or an output to write back. It need not exist yet; an
/// output replaces what is there when the task ends (a directory with all it
/// holds), and a task's outputs that can be stored are stored even if one of
/// them cannot (the task then ends `VINE_RESULT_OUTPUT_MISSING`). `cache`
/// is a `VINE_CACHE_LEVEL_*`, `flags` or-ed `VINE_PEER_NOSHARE` / `VINE_UNLINK_WHEN_DONE`.
/// An input file written again on this machine between tasks (vine's own
/// addition; TaskVine leaves it undefined) reaches the tasks dispatched after
/// that as it is then, on every worker: copies workers keep of the earlier
/// contents are replaced when a task there needs it and are never served to a
/// peer. A change is seen in the file's metadata (size, modification and
/// change times, inode, mode), as `make` sees one. A directory is looked at
/// for a worker that has no copy of it yet: a worker holding one keeps using
/// it (its tree is not walked for every task; declare a new file for new
/// contents).
/// The manager owns the returned file (valid until `vine_delete`); NULL on error.
#[no_mangle]
pub unsafe extern "C" fn vine_declare_file(
    m: *mut vine_manager,
    path: *const c_char,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let at = m;
        let m = handles::manager(at)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let path = Manager::utf8(unsafe { c_str(path, "the path")? })?;
        let f = File::path(
            path.as_ref(),
            CacheLevel::from_code(cache)?,
            flags_of(flags)?,
        )?;
        handles::declare_into_c(at, &m, f)
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
        let at = m;
        let m = handles::manager(at)?;
        // SAFETY: C passes `len` readable bytes or NULL with 0.
        let data = unsafe { bytes(data, len, "the data")? };
        super::boundary::can_copy(data.len(), "the data")?;
        let f = File::buffer(data, CacheLevel::from_code(cache)?, flags_of(flags)?)?;
        handles::declare_into_c(at, &m, f)
    })
}

/// Declares a temp: an output that stays where the task that made it ran, for
/// later tasks to use as an input (they are placed on the worker that holds it),
/// fetched only by `vine_fetch_file`. If that worker is lost, the task that made the
/// temp runs again (as the manager's own task, never returned by `vine_wait`) and
/// the tasks reading it wait for it. A task reading a temp that a task submitted
/// before it will write waits until that task is done, as TaskVine's do; if no
/// such task made it (none was submitted, or it failed or was cancelled), the
/// reader ends `VINE_RESULT_INPUT_MISSING`. A temp a later task writes again
/// (vine's own; TaskVine has one writer) holds what that task wrote from then
/// on, wherever it is read: the copies of what it held before are deleted.
/// Owned by the manager; NULL on error.
#[no_mangle]
pub extern "C" fn vine_declare_temp(m: *mut vine_manager) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let at = m;
        let m = handles::manager(at)?;
        handles::declare_into_c(at, &m, File::temp()?)
    })
}

/// Attaches `f` as an input of command task `t`, placed in its sandbox as
/// `remote_name` (a relative path; one with `..` or starting with `/` is refused,
/// as is one longer than 3072 bytes or with a component longer than 255).
/// `flags`: or-ed `VINE_MOUNT_MKDIR`, `VINE_MOUNT_SYMLINK`, `VINE_MOUNT_RESEND`,
/// `VINE_FIXED_LOCATION`, or `VINE_TRANSFER_ALWAYS` (0, the default); the
/// outputs' flags (`VINE_WATCH`, `VINE_FAILURE_ONLY`, `VINE_SUCCESS_ONLY`) are
/// refused.
/// A name the task has already (an input or an output), however spelled (`x`,
/// `./x`, `x/`), is refused.
/// The task gets its own copy of each input (unless `VINE_MOUNT_SYMLINK`), which
/// it may change. A name inside another input's (`d/x` beside `d`) puts that
/// file into the task's copy of `d`, which must be a directory (a buffer, or a
/// file that is not a directory now, is refused) added before it (an input
/// around one added earlier, which would replace it, is refused; so is one
/// inside an input linked with `VINE_MOUNT_SYMLINK`, which has no copy).
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
/// temp. An output not produced makes the task `VINE_RESULT_OUTPUT_MISSING`. If
/// `remote_name` is a symbolic link, the file or directory it leads to in the
/// sandbox is the output (locally and at remote workers alike); one leading out
/// of the sandbox is refused (`VINE_RESULT_OUTPUT_MISSING`), and one leading to
/// nothing is an output not produced.
/// `flags`: `VINE_MOUNT_MKDIR` makes `remote_name` an empty directory before the
/// command runs (the directory, as the command leaves it, is the output), or-ed
/// with `VINE_WATCH` and one of `VINE_FAILURE_ONLY` and `VINE_SUCCESS_ONLY`
/// (both together are refused); else 0. The inputs' flags
/// (`VINE_MOUNT_SYMLINK`, `VINE_FIXED_LOCATION`, `VINE_MOUNT_RESEND`) are refused.
/// A second output of `t` into the same file (the same `vine_file`, or another
/// declared at the same path, however spelled: relative, through `..`, or
/// through a link to its directory) is refused, and so is a URL or mini-task
/// file (they are made from their source at workers). An output is taken whole,
/// so one inside another (`d/x` beside `d`) is refused. Names follow the rules of
/// `vine_task_add_input` (relative, no `..`, at most 3072 bytes, components at
/// most 255). Returns 0 or a negative error.
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

/// The current contents of a buffer, temp or file, NUL-terminated (their size,
/// which excludes the NUL, from `vine_fetch_file_len`; `vine_file_size` says what
/// the file holds now, which a task or a `VINE_WATCH` output may have changed
/// since). A URL or mini-task file exists only
/// at the workers that make it: NULL (TaskVine brings it back from one). A temp kept at a remote worker is
/// brought from it first (the call waits for it). The memory belongs to the file and
/// stays valid until `vine_delete`; a fetch of contents that have not changed since
/// the last returns the same pointer (one copy per version, not per call). NULL on error (e.g. a temp no task produced yet,
/// or whose worker was lost). A file declared at a FIFO, socket or device (or at
/// a link to one) is refused without being opened, as it is as an input (reading
/// a FIFO could wait forever, `/dev/zero` never end): NULL with `VINE_ERROR_IO`
/// ("... is a FIFO, not a regular file"). On error `errno` is set too, as in
/// TaskVine: `ENOENT` for a temp no task produced yet, the system's own code
/// for a file that cannot be read, `EIO` for other failures to bring it.
#[no_mangle]
pub extern "C" fn vine_fetch_file(m: *mut vine_manager, f: *mut vine_file) -> *const c_char {
    guard_errno(ptr::null(), || {
        let m = handles::manager(m)?;
        let file = handles::file(f)?;
        refuse_special(&file)?;
        Ok(m.fetch_file(&file)?.as_ptr().cast())
    })
}

/// An error if `file` is a path at a FIFO, socket or device (links followed),
/// found by its type alone: such a file is never opened, as reading it could
/// block forever or never end. What is missing or a directory is left for the
/// fetch to report.
fn refuse_special(file: &File) -> crate::error::Result<()> {
    let crate::files::FileKind::Path(p) = file.kind() else {
        return Ok(());
    };
    match std::fs::metadata(p)
        .ok()
        .and_then(|meta| crate::transfer::special_kind(meta.file_type()))
    {
        Some(kind) => Err(crate::error::Error::new(
            crate::error::ErrorKind::Io,
            format!(
                "{} is {kind}, not a regular file: it is not read",
                p.display()
            ),
        )),
        None => Ok(()),
    }
}

/// `vine_fetch_file`, writing the size of what it returns to `*len` (the NUL
/// excluded; 0 on error): the size that goes with those bytes, however the file
/// changes meanwhile. NULL with `VINE_ERROR_NULL` for a NULL `len`, and with
/// `VINE_ERROR_IO` for a file at a FIFO, socket or device (never opened), as
/// `vine_fetch_file`. vine's own.
#[no_mangle]
pub unsafe extern "C" fn vine_fetch_file_len(
    m: *mut vine_manager,
    f: *mut vine_file,
    len: *mut usize,
) -> *const c_char {
    guard_errno(ptr::null(), || {
        if len.is_null() {
            return Err(super::boundary::null("the length"));
        }
        // SAFETY: C passes a writable size_t.
        unsafe { *len = 0 };
        let m = handles::manager(m)?;
        let file = handles::file(f)?;
        refuse_special(&file)?;
        let data = m.fetch_file(&file)?;
        // SAFETY: as above. The copy ends with the NUL it does not count.
        unsafe { *len = data.len().saturating_sub(1) };
        Ok(data.as_ptr().cast())
    })
}

/// How many remote workers hold `f` now (or are being sent it), as TaskVine's
/// function of the same name: a temp made or fetched there, an input cached
/// there for the workflow or longer (`VINE_CACHE_LEVEL_WORKFLOW` and above),
/// and a URL or mini-task file kept there as long, once a task that reads it
/// has run there (a download that failed holds nothing). A worker that is
/// lost, or that dropped the file, no longer counts. The local pool reads the
/// manager's own copy, or its own download, and is not counted; neither are
/// inputs sent for one task only. Returns the count, or a negative error
/// (`VINE_ERROR_INVALID_ARGUMENT` for a file declared to another manager).
#[no_mangle]
pub extern "C" fn vine_file_replica_count(m: *mut vine_manager, f: *mut vine_file) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let file = handles::file(f)?;
        Ok(c_int::try_from(m.file_replica_count(&file)?).unwrap_or(c_int::MAX))
    })
}

/// The size in bytes of what the file holds now: for a directory, what the
/// regular files in it and below it hold (0 if unknown, and on error).
#[no_mangle]
pub extern "C" fn vine_file_size(f: *mut vine_file) -> usize {
    guard(0, || Ok(handles::file(f)?.size().unwrap_or(0) as usize))
}

/// Sets the Unix permission bits `f` has in a task's sandbox, locally and at remote
/// workers, whatever kind of file it is: a temp or a URL has them too, as does a
/// file a worker kept or fetched from a peer (owner read and write are always
/// added; bits past 0777 are dropped).
/// Without it, a file or directory keeps its own mode and a buffer is 0755, so a
/// script shipped as an input runs. A file linked into the sandbox
/// (`VINE_MOUNT_SYMLINK`) has the mode of what it links to: in the local pool
/// your own file, whose mode vine never changes; at a remote worker the
/// worker's copy, which has the mode set here. A directory is copied,
/// locally as at remote workers, so that a task writing in it changes only its copy.
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

/// Declares a file that each worker needing it downloads itself from `url`
/// (`http://`, `https://`, or `file://` for a path at the worker, written
/// `file:///path` or `file://localhost/path` with `%XX` escapes decoded; a
/// `file://` URL naming another host is refused), as TaskVine does. A worker downloads it once and keeps it as `cache` allows: for one task
/// (`VINE_CACHE_LEVEL_TASK`: downloaded for each task), for the workflow, or
/// (`VINE_CACHE_LEVEL_WORKER` and `_FOREVER`) for the worker's life, under the
/// URL, shared by every file declared with that URL and checked against the
/// server's `ETag` / `Last-Modified` once per manager the worker serves. (vine
/// keeps `_FOREVER` downloads for the worker's life, not after it exits.) The
/// local pool downloads into the manager's own directory in the same way. A
/// download that fails (an HTTP status other than 200, a refused connection, an
/// unknown host) makes the task that needs it `VINE_RESULT_INPUT_MISSING`, with
/// a reason naming the URL and the status. Redirects are followed, at most 5,
/// and only to `http` and `https` URLs (one to `file://`, say, is such a
/// failure). A body cut short is a failure where the server gave its length
/// (`Content-Length`); one sent in chunks and cut inside a chunk is not
/// noticed (a limit of the HTTP client vine uses). The manager never reads
/// the URL. Owned by the manager; NULL on error.
#[no_mangle]
pub unsafe extern "C" fn vine_declare_url(
    m: *mut vine_manager,
    url: *const c_char,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let at = m;
        let m = handles::manager(at)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let url = Manager::utf8(unsafe { c_str(url, "the URL")? })?;
        let f = File::url(url, CacheLevel::from_code(cache)?, flags_of(flags)?)?;
        handles::declare_into_c(at, &m, f)
    })
}

/// Declares a file (or directory) that each worker needing it makes by running
/// command task `mini_task` in a sandbox of its own (with the task's inputs) and
/// taking its output `name`, as TaskVine does. A worker makes it once, when a
/// task first needs it, and keeps it as `cache` allows (`VINE_CACHE_LEVEL_TASK`:
/// made for each task; any other level: for the workflow; vine names the file
/// by its declaration, so a later manager makes it again). If the mini task
/// fails (does not exit 0 or does not make `name`), the tasks needing the file
/// end `VINE_RESULT_INPUT_MISSING` with its reason. It runs within the
/// resources of the task that needs it. The file takes `mini_task` over: do not
/// change, submit or delete it afterwards (`vine_task_delete` refuses); it is
/// freed with the file. `VINE_PEER_NOSHARE` is added to `flags`, as in TaskVine.
/// Mini tasks whose inputs are made by mini tasks nest at most 16 deep (vine's
/// bound; workers refuse deeper ones); deeper is `VINE_ERROR_INVALID_ARGUMENT`.
/// Owned by the manager; NULL on error (and the task stays the caller's; but if
/// another thread deletes the manager meanwhile, `VINE_ERROR_INVALID_HANDLE`, the
/// task goes with it). A task reading a file of another manager is refused.
#[no_mangle]
pub unsafe extern "C" fn vine_declare_mini_task(
    m: *mut vine_manager,
    mini_task: *mut vine_task,
    name: *const c_char,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let at = m;
        let m = handles::manager(at)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = Manager::utf8(unsafe { c_str(name, "the output name")? })?;
        let cache = CacheLevel::from_code(cache)?;
        let flags = flags_of(flags)?;
        crate::files::validate_remote_name(name)?;
        // Everything that can refuse it is checked before the task is taken:
        // refused, it stays the caller's.
        handles::with_task(mini_task, |t| {
            File::check_mini_task(t, name)?;
            match t
                .extra
                .as_ref()
                .and_then(|e| e.inputs.iter().find(|i| m.check_owner(&i.file).is_err()))
            {
                Some(i) => Err(crate::error::Error::invalid(format!(
                    "the file of input {:?} was declared to another manager",
                    i.remote_name
                ))),
                None => Ok(()),
            }
        })?;
        let (task, owner) = handles::task_take_for_file(mini_task)?;
        let f = match File::mini_task(task, name, cache, flags) {
            Ok(f) => f,
            Err(e) => {
                // Only if another thread changed the task meanwhile: its
                // handle, owned by no file now, is left as it is, not freed
                // under the caller.
                std::mem::forget(owner);
                return Err(e);
            }
        };
        f.own(Box::new(owner));
        handles::declare_into_c(at, &m, f)
    })
}

/// Declares the directory obtained by unpacking tar archive `f` (compressed or
/// not, as the worker's `tar` recognises: gzip, bzip2, xz, ...) at each worker
/// that needs it: a mini task (see `vine_declare_mini_task`) running
/// `mkdir output && tar xf input -C output` with `f` as `input`, as TaskVine
/// does. `f` may be any file, e.g. from `vine_declare_url`, but not one declared
/// to another manager. Owned by the manager; NULL on error.
#[no_mangle]
pub extern "C" fn vine_declare_untar(
    m: *mut vine_manager,
    f: *mut vine_file,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let at = m;
        let m = handles::manager(at)?;
        let source = handles::file(f)?;
        m.check_owner(&source)?;
        let f = File::untar(source, CacheLevel::from_code(cache)?, flags_of(flags)?)?;
        handles::declare_into_c(at, &m, f)
    })
}

/// Declares the environment packed in tarball `f` (a poncho or conda-pack
/// package), unpacked at each worker that needs it: a mini task running
/// `mkdir output && tar xf package.tar.gz -C output` with `f` as
/// `package.tar.gz`. TaskVine's mini task also runs the package's
/// `bin/run_in_env` (a Python tool); vine does not: it only unpacks. Use it
/// with `vine_task_add_poncho_package`. `f` may not be a file declared to another
/// manager. Owned by the manager; NULL on error.
#[no_mangle]
pub extern "C" fn vine_declare_poncho(
    m: *mut vine_manager,
    f: *mut vine_file,
    cache: vine_cache_level_t,
    flags: vine_file_flags_t,
) -> *mut vine_file {
    guard(ptr::null_mut(), || {
        let at = m;
        let m = handles::manager(at)?;
        let source = handles::file(f)?;
        m.check_owner(&source)?;
        let f = File::poncho(source, CacheLevel::from_code(cache)?, flags_of(flags)?)?;
        handles::declare_into_c(at, &m, f)
    })
}

/// Runs command task `t` inside the environment `pkg` (from
/// `vine_declare_poncho`, or any file that is a directory at the worker): the
/// directory is placed in the sandbox as `__vine_env_<n>` (linked, as
/// `VINE_MOUNT_SYMLINK`), and the command becomes
/// `if [ -f "$PWD/__vine_env_<n>/bin/activate" ]; then . "$PWD/__vine_env_<n>/bin/activate";`
/// `else PATH="$PWD/__vine_env_<n>/bin:$PATH"; export PATH; fi` followed, on a
/// new line, by the command as it was (what `vine_task_get_command` then
/// returns). TaskVine instead runs the command through the package's
/// `bin/run_in_env`, a Python tool. Call it after setting the command (on a
/// task with none yet it fails); calling it twice nests the environments.
/// Returns 1 on success and 0 on error, as TaskVine does.
#[no_mangle]
pub extern "C" fn vine_task_add_poncho_package(t: *mut vine_task, pkg: *mut vine_file) -> c_int {
    guard(0, || {
        let file = handles::file(pkg)?;
        with_task_mut(t, |t| crate::files::add_poncho_package(t, file))?;
        Ok(1)
    })
}

/// The contents of `f` as the manager holds them in memory, NUL-terminated: a
/// buffer's bytes (an output buffer's once its task is done), or what
/// `vine_fetch_file` last brought. NULL if the manager holds none (e.g. a file
/// never fetched), as in TaskVine. The memory belongs to the file.
#[no_mangle]
pub extern "C" fn vine_file_contents(f: *mut vine_file) -> *const c_char {
    guard(ptr::null(), || {
        Ok(handles::file(f)?
            .contents_c()
            .map_or(ptr::null(), |c| c.as_ptr().cast()))
    })
}

/// What `f` is: `VINE_FILE`, `VINE_URL`, `VINE_TEMP`, `VINE_BUFFER` or
/// `VINE_MINI_TASK` (untar and poncho files are mini tasks); 0 for a NULL or
/// unknown file.
#[no_mangle]
pub extern "C" fn vine_file_type(f: *mut vine_file) -> super::vine_file_type_t {
    guard(0, || Ok(handles::file(f)?.source_type() as c_int))
}

/// Where `f` comes from, as TaskVine says: the path of a `VINE_FILE`, the URL of
/// a `VINE_URL`, the output name of a `VINE_MINI_TASK` (`"output"` for untar and
/// poncho files), `"buffer"` or `"temp"`. The string belongs to the file and
/// stays valid until `vine_delete`; NULL for a NULL or unknown file.
#[no_mangle]
pub extern "C" fn vine_file_source(f: *mut vine_file) -> *const c_char {
    guard(ptr::null(), || Ok(handles::file(f)?.source().as_ptr()))
}

/// Deletes the copies of `f` that workers keep (in their caches, kept there as
/// a temp, downloaded or made there): at once, or, where running tasks use
/// one, when the last of them is done (a remote worker is told by a message;
/// the call does not wait for it). The manager's own data stays, and a later
/// task needing `f` has it sent, downloaded or made again, except a temp that
/// only a worker held, which is then missing (TaskVine could make it again with
/// a recovery task; vine does not). Files kept forever in a worker's store are
/// not deleted. Returns how many workers had a copy (the local pool counts when
/// it had downloaded or made `f`), 0 on error, as TaskVine.
#[no_mangle]
pub extern "C" fn vine_prune_file(m: *mut vine_manager, f: *mut vine_file) -> c_int {
    guard(0, || {
        let m = handles::manager(m)?;
        let file = handles::file(f)?;
        Ok(c_int::try_from(m.prune_file(&file)?).unwrap_or(c_int::MAX))
    })
}

/// Forgets `f`, as TaskVine: workers delete their copies (see
/// `vine_prune_file`), the manager lets go of it, deleting what it keeps for
/// it (a temp's data, and the file of one declared `VINE_UNLINK_WHEN_DONE`),
/// and `f` may no longer be used in calls (they fail as with a file never
/// declared). No task should need it any more: the handles of tasks that were
/// given it stay valid until they are deleted, but a task not yet run finds
/// the file of one declared `VINE_UNLINK_WHEN_DONE` gone, and a temp gone
/// from the workers (it ends `VINE_RESULT_INPUT_MISSING`; a buffer's data it
/// is still sent, and a temp's copy the manager kept).
/// Undeclare such a file after the tasks reading it came back. What
/// `vine_fetch_file` and `vine_file_source` returned for it stays valid until
/// `vine_delete`.
#[no_mangle]
pub extern "C" fn vine_undeclare_file(m: *mut vine_manager, f: *mut vine_file) {
    guard((), || {
        let m = handles::manager(m)?;
        let file = handles::file(f)?;
        m.undeclare(&file)?;
        handles::files_forget(&[file]);
        Ok(())
    })
}
