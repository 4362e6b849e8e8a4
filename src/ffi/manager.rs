//! Entry points on the manager: lifecycle, settings, submitting and waiting.

use std::ffi::{c_char, c_int, CStr};
use std::ptr;
use std::time::Duration;

use super::boundary::{self, c_str, guard, guard_code, guard_errno};
use super::handles;
use super::{
    vine_category_mode_t, VINE_ALLOCATION_MODE_FIXED, VINE_ALLOCATION_MODE_QUANTIZED_BUCKETING,
};
use super::{vine_manager, vine_result_t, vine_stats, vine_task};
use crate::error::Error;
use crate::manager::{settings, Manager, Port, Want};
use crate::task::TaskResult;

/// Creates a manager and starts its thread and its local worker threads.
///
/// `port > 0` listens for remote workers on that port (loopback only unless an
/// address is configured), `0` on any free port (see `vine_port`), `VINE_PORT_NONE`
/// opens no socket: tasks run on local threads only, and a task too large for them
/// comes back `VINE_RESULT_UNSCHEDULABLE`. With a socket, such a task waits for a
/// worker large enough. (vine's own: TaskVine's -1 is any port, and its 0 reads
/// `VINE_PORT`; vine reads no port variable.)
///
/// The local pool has the machine's cores (those this process may use), memory
/// (less where its cgroup's limit or, inside a Slurm job, the job's memory on
/// this node says so) and free disk, changed by the
/// environment variables `VINE_LOCAL_CORES`, `VINE_LOCAL_MEMORY` (MB),
/// `VINE_LOCAL_DISK` (MB) and `VINE_LOCAL_GPUS` (default 0), or later by `vine_tune`.
/// Each manager has a pool of its own: the pools of several managers in one
/// process add up (give each its share with `"local-cores"`).
///
/// Who may connect: the manager binds its port at once, but takes no connection
/// until its authentication settings are final, so that no worker joins in the
/// window before `vine_set_password_file`. They are final at the first of
/// `vine_set_password_file`, `vine_submit`, `vine_wait` (and its variants),
/// `vine_empty`, `vine_hungry`, `vine_get_stats` and `"local-worker-processes"`;
/// until then workers wait in the kernel's queue. If `VINE_PASSWORD_FILE` names a
/// file and the manager has a port, the password is read from it here and
/// connections are taken at once (without a port no worker connects, and the
/// variable is not read). A password set later still applies to everyone:
/// workers that joined without it (or with an earlier one) are dropped then
/// (their tasks run again elsewhere).
///
/// Returns NULL on failure (a port in use, a malformed environment variable, an
/// unreadable `VINE_PASSWORD_FILE`), with the reason in `vine_last_error()` and
/// `errno` set (`EADDRINUSE` for a port in use, `EINVAL` for a bad port or
/// setting, such as a `VINE_LISTEN_ADDRESS` that is no address, the system's
/// error for other failed calls). The
/// caller owns the manager and frees it with `vine_delete`. Any thread may call this.
#[no_mangle]
pub extern "C" fn vine_create(port: c_int) -> *mut vine_manager {
    guard_errno(ptr::null_mut(), || {
        handles::manager_into_c(|| Manager::new(port_of(port)?))
    })
}

fn port_of(port: c_int) -> crate::error::Result<Port> {
    match port {
        -1 => Ok(Port::None),
        0 => Ok(Port::Any),
        1..=65535 => Ok(Port::Fixed(port as u16)),
        _ => Err(Error::invalid(format!(
            "{port} is not a port (0..65535 or VINE_PORT_NONE)"
        ))),
    }
}

/// Like `vine_create`, with remote workers connecting over TLS (rustls). `key` and
/// `cert` are PEM files: the private key and the certificate chain. As in TaskVine,
/// with both NULL this is `vine_create(port)`: no TLS. (For a certificate made by
/// the manager, see `vine_ssl_create_self_signed`.) Workers connect with `--ssl`
/// (any certificate: private against listeners, and the password proof is bound to
/// the TLS channel so a relay cannot log in), `--ssl-fingerprint FP` (see
/// `vine_ssl_fingerprint`) or `--ssl-ca PEM` (verified against the host name). Use
/// it with a password: TLS alone does not say who may join.
///
/// Returns NULL on failure, with `errno` set, as `vine_create`, or when only one of
/// `key` and `cert` is given, either is empty, or they do not make a TLS identity.
#[no_mangle]
pub unsafe extern "C" fn vine_ssl_create(
    port: c_int,
    key: *const c_char,
    cert: *const c_char,
) -> *mut vine_manager {
    guard_errno(ptr::null_mut(), || {
        let port = port_of(port)?;
        let tls = match (key.is_null(), cert.is_null()) {
            (true, true) => None,
            (false, false) => {
                // SAFETY: C passes NUL-terminated strings.
                let key = unsafe { boundary::path_of(key, "the key file")? };
                // SAFETY: as above.
                let cert = unsafe { boundary::path_of(cert, "the certificate file")? };
                Some(crate::tls::ServerTls::from_pem(
                    key.as_ref(),
                    cert.as_ref(),
                )?)
            }
            _ => {
                return Err(Error::invalid(
                    "give both the key and the certificate, or neither",
                ))
            }
        };
        if tls.is_some() && port == Port::None {
            return Err(Error::invalid("TLS needs a port, not VINE_PORT_NONE"));
        }
        handles::manager_into_c(|| Manager::with_tls(port, tls))
    })
}

/// Like `vine_ssl_create`, with a self-signed certificate the manager makes for its
/// life; `vine_ssl_fingerprint` gives its SHA-256 fingerprint for workers to pin
/// (`vine_worker --ssl-fingerprint FP`; local worker processes are given it).
/// vine's own. Returns NULL on failure, with `errno` set (`EINVAL` for
/// `VINE_PORT_NONE`).
#[no_mangle]
pub extern "C" fn vine_ssl_create_self_signed(port: c_int) -> *mut vine_manager {
    guard_errno(ptr::null_mut(), || {
        let port = port_of(port)?;
        if port == Port::None {
            return Err(Error::invalid("TLS needs a port, not VINE_PORT_NONE"));
        }
        handles::manager_into_c(|| {
            Manager::with_tls(port, Some(crate::tls::ServerTls::generate()?))
        })
    })
}

/// The SHA-256 fingerprint of the manager's TLS certificate, as 64 lowercase hex
/// digits, for `vine_worker --ssl-fingerprint`. NULL (with a message) if the
/// manager does not use TLS. The string belongs to the manager
/// and lives as long as it. vine's own.
#[no_mangle]
pub extern "C" fn vine_ssl_fingerprint(m: *const vine_manager) -> *const c_char {
    guard(ptr::null(), || {
        handles::manager(m)?
            .tls_fingerprint_c()
            .map(CStr::as_ptr)
            .ok_or_else(|| Error::invalid("the manager does not use TLS (see vine_ssl_create)"))
    })
}

/// The port the manager listens on for remote workers, or `VINE_PORT_NONE` (-1) if
/// it opened no socket. A negative `vine_error_t` other than -1 on error: a NULL
/// manager, like a deleted one, is `VINE_ERROR_INVALID_HANDLE` here (its usual
/// `VINE_ERROR_NULL` is -1, which would read as no socket).
#[no_mangle]
pub extern "C" fn vine_port(m: *const vine_manager) -> c_int {
    guard_code(|| {
        if m.is_null() {
            return Err(Error::new(
                crate::error::ErrorKind::InvalidHandle,
                "the manager is NULL",
            ));
        }
        Ok(handles::manager(m)?.port().map_or(-1, c_int::from))
    })
}

/// Changes a numeric setting. Known names:
/// - `"max-retries"` (default 3): re-runs of a task whose failure was not its own
///   (its worker failed, was lost, left at its `--wall-time` or was cut off
///   by `vine_block_host`), for tasks that did not call `vine_task_set_retries`.
///   A worker the manager sends away (told to exit, or dropped when the
///   password was set) costs its tasks no attempt: they run again.
///   Here 0 means no re-run (a task's own `vine_task_set_retries(t, 0)` means
///   without limit, as in TaskVine).
/// - `"wait-for-workers"` (0): dispatch nothing until this many workers are present;
///   once they were, as in TaskVine, dispatch is not held again when workers leave
///   (until it is set again).
/// - `"keepalive-timeout"` (30 s): a remote worker silent this long is lost and its
///   tasks re-run elsewhere; 0: never for its silence alone (a closed connection
///   still loses it), and workers keep alive at their own interval unless
///   `"keepalive-interval"` is set.
/// - `"keepalive-interval"` (0 = a quarter of the timeout): how often workers send
///   keepalives, at most half the timeout. Both apply to workers that connect
///   afterwards. A timeout other than 0 is at least 0.2 s and an interval at
///   least 0.1 s (more often would be a flood of frames, not a heartbeat).
/// - `"shutdown-timeout"` (30 s): how long `vine_shutdown` lets running tasks finish
///   before killing them.
/// - `"local-cores"` (fractions allowed), `"local-memory"` (MB), `"local-disk"` (MB),
///   `"local-gpus"`: the local pool's resources; only while no task is outstanding.
///   `"local-cores"` 0 leaves execution to remote workers.
/// - `"autocategory"` (1): a function task with no category gets its function name.
/// - `"progress"` (on when standard error is a terminal, from the run's third
///   second; `VINE_PROGRESS` 1, yes, on, true or 0, no, off, false sets the
///   default): a line on standard error, redrawn at most four times a second,
///   with the tasks submitted, waiting, running, done and failed, the workers,
///   the rate and the time left; when the manager is deleted, one summary line
///   replaces it. When standard error is not a terminal, only the summary line
///   is written, and only if asked for.
/// - `"prefetch"` (automatic): tasks a worker may hold beyond what it can start now,
///   so a finishing thread finds its next task without a round trip to the manager.
///   Automatic: about 20 ms of the worker's measured task durations; none until a
///   task has run there, nor for tasks longer than that (they wait at the manager,
///   where a worker that joins, or a factory counting demand, finds them). A later
///   task of higher priority may start after those already dispatched; 0 gives
///   strict priority order among tasks that can start. A task waiting for
///   resources held by running tasks does not hold back a smaller one behind it
///   that fits now (as in TaskVine): the smaller one starts first.
/// - `"max-stdout"` (16 MiB): bytes of command output kept; past it the task ends
///   `VINE_RESULT_STDOUT_MISSING` with the first bytes kept. The command is not
///   stopped at the cap: it runs to its end (or its `time_max`), what it prints
///   past the cap read and thrown away, and its outputs are delivered.
/// - `"hungry-factor"` (2): `vine_hungry` wants this many tasks waiting per worker
///   slot.
/// - `"local-worker-processes"` (0): start and supervise this many `vine_worker`
///   processes on this machine (1 core each; the program is `$VINE_WORKER_PATH`, else
///   `vine_worker` beside this program, else on `PATH`); needs a port. Once only.
///   They get the manager's password, even one set after they started (see
///   `vine_set_password_file`).
///
/// TaskVine's names, with TaskVine's meaning (besides `"keepalive-interval"`,
/// `"keepalive-timeout"` and `"wait-for-workers"` above):
/// - `"disconnect-slow-workers-factor"` (also `"disconnect-slow-worker-factor"`;
///   0 = off): as `vine_enable_disconnect_slow_workers`.
/// - `"option-blocklist-slow-workers-timeout"` (900 s): how long a slow worker's
///   host stays blocked.
/// - `"hungry-minimum"` (10): `vine_hungry` wants at least this many tasks waiting.
/// - `"hungry-minimum-factor"` (2): `"hungry-factor"` above, by TaskVine's name.
/// - `"max-task-stdout-storage"` (16 MiB here): `"max-stdout"` above, by
///   TaskVine's name.
/// - `"proportional-resources"` (also `"force-proportional-resources"`): 1 as
///   `vine_enable_proportional_resources`, 0 as
///   `vine_disable_proportional_resources`.
/// - `"resource-submit-multiplier"` (also `"asynchrony-multiplier"`; 1 to 1e6): each
///   worker holds tasks for this many times its cores, the excess waiting there:
///   a prefetch of `(multiplier - 1) * cores` per worker (1: none). A later
///   `"prefetch"` replaces it.
/// - `"worker-source-max-transfers"` (10): the most peer transfers one worker
///   serves at once; past it (and past the next limit on every holder) an input
///   goes from the manager.
/// - `"file-source-max-transfers"` (1): the most transfers of one file one
///   worker serves at once, so that a file wanted by many workers spreads from
///   worker to worker.
/// - `"temp-replica-count"` (1): a temp is kept at this many workers: when it is
///   made, others fetch a copy from its maker, so that losing a worker costs
///   no recomputation while a copy remains (with peer transfers on).
///
/// TaskVine's other names (the resource monitor,
/// catalog updates, libraries, ...) tune machinery vine does not have: they are
/// unknown settings here.
///
/// Ranges: every value must be finite. Times (`*-timeout`, `*-interval`) are seconds
/// from 0 to 1e9; counts (`max-retries`, `wait-for-workers`, `prefetch`) whole numbers
/// from 0 to 1e9; `local-cores` from 0 to 1e9 in steps of 0.001; `local-memory` and
/// `local-disk` whole MB from 0 to 1e12; `local-gpus` 0 to 1e6; `autocategory` 0 or 1;
/// `max-stdout` 0 to 1e12 bytes; `hungry-factor` above 0 and at most 1e6;
/// `proportional-resources` 0 or 1;
/// `local-worker-processes` 0 to 4096; `disconnect-slow-workers-factor` 0 to 1e6;
/// `hungry-minimum` 0 to 1e9; the three peer-transfer settings whole numbers from 0
/// to 1e6 (0 counts as 1).
///
/// Returns 0, `VINE_ERROR_UNKNOWN_SETTING` for an unknown name, or
/// `VINE_ERROR_INVALID_ARGUMENT` for a value outside its range (NaN, infinite,
/// negative, too large); on error nothing changes.
#[no_mangle]
pub unsafe extern "C" fn vine_tune(m: *mut vine_manager, name: *const c_char, value: f64) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = Manager::utf8(unsafe { c_str(name, "the setting name")? })?;
        m.tune(name, value)?;
        Ok(0)
    })
}

/// Reads the password remote workers must prove they know (challenge and HMAC: it
/// never crosses the network). The file's trailing white space is not part of it.
/// From then on every worker must prove it, on every connection: workers that
/// joined without one, or with another password (it was changed), are dropped.
/// Local worker processes and factories, started before or after it is set, give
/// it to the workers they start from then on as a file readable by this user only
/// in their scratch directory, never on a command line; theirs that were dropped
/// are replaced (see `vine_factory_create`). Without TLS, every frame of an
/// authenticated session carries an HMAC under keys derived from the password (see
/// the README's security model). Returns 0 or a negative error (unreadable,
/// empty, not a regular file, larger than 64 KiB).
#[no_mangle]
pub unsafe extern "C" fn vine_set_password_file(
    m: *mut vine_manager,
    path: *const c_char,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let path = Manager::utf8(unsafe { c_str(path, "the password file path")? })?;
        m.set_password_file(path.as_ref())?;
        Ok(0)
    })
}

/// Sets the password remote workers must prove, as `vine_set_password_file` does,
/// from a string (TaskVine's call; trailing white space is not part of it, as from
/// a file). Local worker processes and factories, started before or after it is
/// set, give it to their workers as a file, never on a command line. Returns 0 or
/// a negative error (NULL, empty); TaskVine's returns nothing, so its callers
/// still compile.
#[no_mangle]
pub unsafe extern "C" fn vine_set_password(m: *mut vine_manager, password: *const c_char) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let pw = unsafe { c_str(password, "the password")? };
        m.set_password(pw.to_bytes())?;
        Ok(0)
    })
}

/// Sets the directory under which managers created from now on keep their
/// runtime information, as TaskVine's call does (before `vine_create`, no
/// manager). Each later manager makes a run directory there (named by
/// `vine_set_runtime_info_template`, by default its start time
/// `%Y-%m-%dT%H%M%S`, UTC), writes its logs into `RUN/vine-logs/`
/// (`transactions`, `performance`, `debug`) and points `PATH/most-recent` at
/// it. Without this call, managers with a port do the same under
/// `vine-run-info` in the current directory (as TaskVine), or under
/// `$VINE_RUNTIME_INFO_DIR` when that is set; managers without a port write no
/// logs unless this call, that variable or `vine_enable_*_log` asks. When the
/// directory was asked for and cannot be made, `vine_create` fails; the
/// default one only warns. Staging files stay in the system's temporary
/// directory. Returns 0 or a negative error (NULL); TaskVine's returns nothing,
/// so its callers still compile. For one manager's run directory, see
/// `vine_set_runtime_info_path_for`.
#[no_mangle]
pub unsafe extern "C" fn vine_set_runtime_info_path(path: *const c_char) -> c_int {
    guard_code(|| {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let path = Manager::utf8(unsafe { c_str(path, "the directory")? })?;
        if path.is_empty() {
            return Err(Error::invalid("the runtime info path cannot be empty"));
        }
        crate::manager::set_runtime_info_root(Some(path.into()));
        Ok(0)
    })
}

/// Makes `dir` manager `m`'s run directory: its logs go to `dir/vine-logs/`
/// (`transactions`, `performance`, `debug`; created or truncated) from now on.
/// vine's own (TaskVine's `vine_set_runtime_info_path` sets the root for the
/// managers created later). Returns 0 or a negative error (`""` is refused).
#[no_mangle]
pub unsafe extern "C" fn vine_set_runtime_info_path_for(
    m: *mut vine_manager,
    dir: *const c_char,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let dir = Manager::utf8(unsafe { c_str(dir, "the directory")? })?;
        if dir.is_empty() {
            // As `vine_set_runtime_info_path`: not the current directory.
            return Err(Error::invalid("the run directory cannot be empty"));
        }
        m.set_runtime_info_path(dir.as_ref())?;
        Ok(0)
    })
}

/// Names the manager; NULL forgets the name, as in TaskVine. The name is shown
/// by `vine_status` (and its `--json`, `"manager"."name"`, and the run
/// directory's `status.json`) and in the debug log; unlike TaskVine's, it is
/// not published to a catalog, nor do workers find managers by it. Returns 0
/// or a negative error (`""` is refused, as is a name that is not UTF-8).
#[no_mangle]
pub unsafe extern "C" fn vine_set_name(m: *mut vine_manager, name: *const c_char) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let name = if name.is_null() {
            None
        } else {
            // SAFETY: C passes a NUL-terminated string.
            Some(Manager::utf8(unsafe { c_str(name, "the name")? })?)
        };
        m.set_name(name)?;
        Ok(0)
    })
}

/// The manager's name: what `vine_set_name` set; NULL if none is set (as in
/// TaskVine; the debug log then says "vine"), and on error. Owned by the
/// manager and valid until `vine_delete` (a later `vine_set_name` does not
/// free it).
#[no_mangle]
pub extern "C" fn vine_get_name(m: *mut vine_manager) -> *const c_char {
    guard(ptr::null(), || Ok(handles::manager(m)?.name_c()))
}

/// Future tasks get ids of at least `minid`, as in TaskVine; a `minid` below the
/// next id changes nothing. Returns the id the next task will get, or a negative
/// error: `VINE_ERROR_INVALID_ARGUMENT` once every id up to `INT_MAX` was given
/// (`vine_submit` then refuses every task, and a refused task takes no id).
#[no_mangle]
pub extern "C" fn vine_set_task_id_min(m: *mut vine_manager, minid: c_int) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let next = m.set_task_id_min(u64::try_from(minid).unwrap_or(0))?;
        Ok(c_int::try_from(next).expect("ids given are C ints"))
    })
}

/// As `vine_enable_disconnect_slow_workers`, for the tasks of one category
/// only, as in TaskVine: a task of `category` is taken back once it runs past
/// `multiplier` times the average of its category, whatever the multiplier of
/// the other categories. As in TaskVine, a `multiplier` of 0 turns it off for
/// the category whatever the default, and any other below 1 makes the
/// category follow `vine_enable_disconnect_slow_workers` again (the default).
/// The category "default" is `vine_enable_disconnect_slow_workers` itself: it
/// sets the multiplier of every category without its own. Returns, as
/// TaskVine's, 1 for a `multiplier` of 0 and 0 for any other, or a negative
/// error: a bad manager, NULL or empty `category`, a `multiplier` that is NaN,
/// infinite or above 1e6.
#[no_mangle]
pub unsafe extern "C" fn vine_enable_disconnect_slow_workers_category(
    m: *mut vine_manager,
    category: *const c_char,
    multiplier: f64,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let category = unsafe { c_str(category, "the category")? };
        m.set_slow_workers_category(category, multiplier)?;
        Ok(c_int::from(multiplier == 0.0))
    })
}

/// Tells the manager's factories (`vine_factory_create`) how many tasks the
/// program has yet to submit, as TaskVine's `vine_set_tasks_left_count` tells
/// its `vine_factory`: until the next call changes it, each counts in their
/// demand as a task of the default size (one core), with the tasks waiting, so
/// that workers are started before the tasks come and kept while they are
/// coming. The count is the program's to keep up to date; submitting does not
/// lower it. Default 0. Returns 0, or a negative error: a bad manager,
/// `VINE_ERROR_INVALID_ARGUMENT` for a negative count.
#[no_mangle]
pub extern "C" fn vine_set_tasks_left_count(m: *mut vine_manager, ntasks: c_int) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let n = u64::try_from(ntasks)
            .map_err(|_| Error::invalid(format!("the tasks left count {ntasks} is negative")))?;
        m.set_tasks_left_count(n);
        Ok(0)
    })
}

/// The host name argument of the calls below.
unsafe fn host_of<'a>(hostname: *const c_char) -> crate::error::Result<&'a str> {
    // SAFETY: C passes a NUL-terminated string or NULL, valid during the call.
    let host = Manager::utf8(unsafe { c_str(hostname, "the host name")? })?;
    if host.is_empty() {
        return Err(Error::invalid("the host name cannot be empty"));
    }
    Ok(host)
}

/// Blocks the workers of host `hostname`, as TaskVine does, until
/// `vine_unblock_host`: a host is named by the host name its workers report
/// (their `gethostname`) or by its address as the manager sees it (e.g.
/// "127.0.0.1"). Its connected workers are cut off at once and their tasks run
/// again elsewhere (a re-run counts against the task's retries); its workers
/// cannot join while it is blocked (they keep trying, within their `--timeout`).
/// Returns how many workers were cut off, or a negative error; TaskVine's returns
/// nothing, so its callers still compile.
#[no_mangle]
pub unsafe extern "C" fn vine_block_host(m: *mut vine_manager, hostname: *const c_char) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let n = m.block_host(unsafe { host_of(hostname)? }, None)?;
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

/// Like `vine_block_host`, for `seconds`; less than 1 blocks until unblocked, as
/// in TaskVine. (`seconds` is TaskVine's `time_t`, 64 bits here.)
#[no_mangle]
pub unsafe extern "C" fn vine_block_host_with_timeout(
    m: *mut vine_manager,
    hostname: *const c_char,
    seconds: i64,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let timeout = (seconds >= 1).then(|| Duration::from_secs(seconds as u64));
        let n = m.block_host(unsafe { host_of(hostname)? }, timeout)?;
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

/// Lifts the block of `hostname` (as named to `vine_block_host`): its workers may
/// join again. Returns 0 or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_unblock_host(m: *mut vine_manager, hostname: *const c_char) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        m.unblock_host(Some(unsafe { host_of(hostname)? }));
        Ok(0)
    })
}

/// Lifts every block, timed or not. Returns 0 or a negative error.
#[no_mangle]
pub extern "C" fn vine_unblock_all(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        handles::manager(m)?.unblock_host(None);
        Ok(0)
    })
}

/// Tells up to `n` remote workers that hold no task to exit (`n` < 1: all of
/// them), as TaskVine does; busy workers are left alone. The local pool is not a
/// remote worker. Returns how many were told, or a negative error.
#[no_mangle]
pub extern "C" fn vine_workers_shutdown(m: *mut vine_manager, n: c_int) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let n = usize::try_from(n).ok().filter(|&n| n >= 1);
        let told = m.shutdown_workers(n)?;
        Ok(c_int::try_from(told).unwrap_or(c_int::MAX))
    })
}

/// With `drain_flag` non-zero, the remote workers now connected from `hostname`
/// (named as for `vine_block_host`) get no new task; the tasks they hold finish,
/// and each is told to exit once it holds none. With 0 they take tasks again.
/// Workers that join later are not draining. Returns how many workers of the
/// host were set so (as in TaskVine, counting those that already were), or a
/// negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_set_draining_by_hostname(
    m: *mut vine_manager,
    hostname: *const c_char,
    drain_flag: c_int,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let n = m.drain_host(unsafe { host_of(hostname)? }, drain_flag != 0)?;
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

/// Disconnects slow workers, as TaskVine does: once 10 tasks of a category have
/// succeeded on remote workers, a task of it still running on a remote worker
/// after `multiplier` times their average (from dispatch to result) is taken back
/// and runs elsewhere (the attempt does not count against its retries; each time
/// it is taken back it is allowed one average more). vine's own: "elsewhere" is
/// kept: the task is not sent again to a worker it was taken back from while
/// another worker could run it (it waits for one to have room), and only when
/// none could does it go back to one of them. A worker that holds such a
/// task a second time is disconnected and its host blocked for
/// `option-blocklist-slow-workers-timeout` seconds (900; see `vine_tune`).
/// `multiplier` below 1 turns it off (the default). Applies to all categories.
/// Returns, as TaskVine's, 1 for a `multiplier` of 0 and 0 for any other, or a
/// negative error (NaN, infinite, above 1e6, as `vine_tune`'s
/// `disconnect-slow-workers-factor`).
#[no_mangle]
pub extern "C" fn vine_enable_disconnect_slow_workers(
    m: *mut vine_manager,
    multiplier: f64,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        if !multiplier.is_finite() || multiplier > settings::MAX_HUNGRY_FACTOR {
            return Err(Error::invalid(format!(
                "the multiplier must be a finite number up to {:e}, not {}",
                settings::MAX_HUNGRY_FACTOR,
                crate::error::Shown(multiplier)
            )));
        }
        let v = if multiplier >= 1.0 { multiplier } else { 0.0 };
        m.tune("disconnect-slow-workers-factor", v)?;
        Ok(c_int::from(multiplier == 0.0))
    })
}

/// `vine_tune(m, "keepalive-interval", interval)`. Returns 0 or a negative error
/// (TaskVine's returns nothing).
#[no_mangle]
pub extern "C" fn vine_set_keepalive_interval(m: *mut vine_manager, interval: c_int) -> c_int {
    guard_code(|| {
        handles::manager(m)?.tune("keepalive-interval", f64::from(interval))?;
        Ok(0)
    })
}

/// `vine_tune(m, "keepalive-timeout", timeout)` (0: no timeout). Returns 0 or a
/// negative error (TaskVine's returns nothing).
#[no_mangle]
pub extern "C" fn vine_set_keepalive_timeout(m: *mut vine_manager, timeout: c_int) -> c_int {
    guard_code(|| {
        handles::manager(m)?.tune("keepalive-timeout", f64::from(timeout))?;
        Ok(0)
    })
}

/// Lets remote workers send each other files (peer transfers), as TaskVine
/// does; on by default. A worker that needs a cached input (declared
/// `VINE_CACHE_LEVEL_WORKFLOW` or longer) or a temp that another worker of this
/// manager holds fetches it from that worker's transfer port instead of from the
/// manager, which sends each such file to one worker and lets it spread. Peers
/// prove to each other that they belong to this manager: an HMAC challenge and
/// response over the manager's password, when it has one, and a random token of
/// this manager run that each worker gets when it joins; peer links are
/// under TLS when the manager's links are (each worker serves with a
/// self-signed certificate, the proofs bound to the channel), in the clear
/// with an HMAC on every frame otherwise. A failed fetch is sent again, from the manager
/// or another peer; a temp (which only workers have) is first brought to the
/// manager from the worker keeping it, over that worker's own connection, and
/// its readers wait for it. Tasks that read a temp may run at any remote worker. Files
/// declared `VINE_PEER_NOSHARE` never travel between workers; the local pool
/// always reads the manager's own files. Tuned by `vine_tune`'s
/// `"worker-source-max-transfers"` (default 10), `"file-source-max-transfers"`
/// (default 1) and `"temp-replica-count"` (default 1); bytes moved between
/// workers are `bytes_peer` in `vine_stats`. Returns 1, or a negative error.
#[no_mangle]
pub extern "C" fn vine_enable_peer_transfers(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        handles::manager(m)?.set_peer_transfers(true);
        Ok(1)
    })
}

/// Stops transfers between workers: from now on every input goes to a remote
/// worker from the manager, and tasks that read a temp run where it is kept (see
/// `vine_enable_peer_transfers`). Returns 1, or a negative error.
#[no_mangle]
pub extern "C" fn vine_disable_peer_transfers(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        handles::manager(m)?.set_peer_transfers(false);
        Ok(1)
    })
}

/// Measures what every task submitted from now on uses (see
/// `vine_task_get_resources(t, "measured")`): its worker samples the task's
/// process group (every 50 ms) and sandbox, and times a THREAD function's
/// thread. With `watchdog` (non-zero), a task that uses more memory or disk
/// than it was given is stopped and comes back `VINE_RESULT_RESOURCE_EXHAUSTION`,
/// as without this call; with 0, tasks are measured only, never stopped for
/// that. A time series (`time_series`) is not written. Categories with an
/// automatic allocation mode are measured without this call. Returns 1, or a
/// negative error.
#[no_mangle]
pub extern "C" fn vine_enable_monitoring(
    m: *mut vine_manager,
    watchdog: c_int,
    time_series: c_int,
) -> c_int {
    guard_code(|| {
        let _ = time_series;
        let change = crate::manager::categories::Change::Monitoring(watchdog != 0);
        handles::manager(m)?.change_categories(change)?;
        Ok(1)
    })
}

/// Sets how tasks of `category` are sized (NULL: the default for every category
/// without its own), with TaskVine's `VINE_ALLOCATION_MODE_*`:
/// - `FIXED` (the default): a task gets what it asks for; what it does not set
///   is the category's maximum (`vine_set_category_resources_max`) if set, else
///   vine's default: one core (none for a task with gpus), no memory, disk or
///   gpu bound.
/// - `MAX`, `MIN_WASTE`, `MAX_THROUGHPUT`: the category's tasks are measured.
///   What a task sets is kept; the rest of what these modes size (cores,
///   memory and disk; gpus as FIXED sizes them; see
///   `vine_enable_category_resource` to change which) is,
///   until `"category-steady-n-tasks"` (`vine_tune`, default 25) of them have
///   succeeded, the category's first allocation guess, else its maximum, else
///   the largest worker's whole size; then computed from their measured peaks:
///   the largest (`MAX`), the allocation that wastes least over the measured
///   tasks weighted by their run time, counting a failed attempt as waste
///   (`MIN_WASTE`), or the one that completes most tasks per worker, counting
///   what a worker cannot pack (`MAX_THROUGHPUT`). A resource none of them had
///   measured (the memory and disk of `VINE_EXEC_THREAD` functions) is then
///   given as `FIXED` gives it, so that such tasks pack. Memory and disk are rounded up
///   by at most 1/16, cores to whole cores; always within the category's minimum
///   and maximum. A task that exhausts such an allocation runs once more with
///   the maximum (the category's, else the largest worker's), an attempt that
///   does not count against its retries; exhausting that ends it
///   `VINE_RESULT_RESOURCE_EXHAUSTION`.
/// - The bucketing modes are sized as `MIN_WASTE`.
///
/// Tasks already waiting are sized by the new mode when they are dispatched.
/// Returns 1 for a valid mode, 0 for another value (nothing changes), as TaskVine
/// does; a negative error for a bad manager or category name.
#[no_mangle]
pub unsafe extern "C" fn vine_set_category_mode(
    m: *mut vine_manager,
    category: *const c_char,
    mode: vine_category_mode_t,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let category = unsafe { super::resources::optional_category(category)? };
        if !(VINE_ALLOCATION_MODE_FIXED..=VINE_ALLOCATION_MODE_QUANTIZED_BUCKETING).contains(&mode)
        {
            boundary::record(&Error::invalid(format!(
                "{mode} is not a VINE_ALLOCATION_MODE_*"
            )));
            return Ok(0);
        }
        m.change_categories(crate::manager::categories::Change::Mode(category, mode))?;
        Ok(1)
    })
}

/// Turns the automatic sizing of one resource on (`autolabel` 1) or off (0)
/// for the tasks of `category` (NULL: every category without a setting of its
/// own; a category's first setting starts from those), as TaskVine's function
/// of the same name: `resource` is `"cores"`, `"memory"`, `"disk"` or
/// `"gpus"`. The automatic modes (see `vine_set_category_mode`) size cores,
/// memory and disk, and not gpus, unless told otherwise. A resource they do not
/// size is sized as `FIXED` sizes it: what the task set, else the category's
/// maximum, else vine's default. Gpus, when sized, are the first allocation
/// guess's until the category is steady, then (never measured) its maximum,
/// else the largest worker's. Tasks already waiting are sized anew when they
/// are dispatched.
/// Returns 1 if `resource` is one of those four and `autolabel` is 0 or 1, 0
/// otherwise (nothing changes), as TaskVine does; a negative error for a bad
/// manager, category or a NULL resource.
#[no_mangle]
pub unsafe extern "C" fn vine_enable_category_resource(
    m: *mut vine_manager,
    category: *const c_char,
    resource: *const c_char,
    autolabel: c_int,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let category = unsafe { super::resources::optional_category(category)? };
        // SAFETY: C passes a NUL-terminated string or NULL.
        let resource = unsafe { c_str(resource, "the resource")? };
        let which = resource
            .to_str()
            .ok()
            .and_then(crate::manager::categories::Labeled::from_name);
        let Some(which) = which else {
            boundary::record(&Error::invalid(format!(
                "{resource:?} is not a resource vine sizes (cores, memory, disk or gpus)"
            )));
            return Ok(0);
        };
        if !(0..=1).contains(&autolabel) {
            boundary::record(&Error::invalid(format!(
                "autolabel must be 0 (off) or 1 (on), not {autolabel}"
            )));
            return Ok(0);
        }
        m.change_categories(crate::manager::categories::Change::Label(
            category,
            which,
            autolabel == 1,
        ))?;
        Ok(1)
    })
}

/// Submits a task. Returns its id (>= 1); from then on the manager owns the task
/// until `vine_wait` (or `vine_wait_for_*`) returns it: do not touch or delete it
/// meanwhile (such calls fail with `VINE_ERROR_TASK_SUBMITTED`).
///
/// Returns 0 on error, and the caller still owns the task: a NULL argument, a task
/// already submitted, a manager shut down. A task too large for every worker when no
/// remote workers may join is accepted and comes back `VINE_RESULT_UNSCHEDULABLE`.
/// Any thread may call this, concurrently with others.
#[no_mangle]
pub extern "C" fn vine_submit(m: *mut vine_manager, t: *mut vine_task) -> c_int {
    guard(0, || {
        let m = handles::manager(m)?;
        let task = handles::task_take_for_submit(t, |task| m.prepare_submission(task))?;
        match m.submit_prepared(task) {
            Ok(id) => {
                handles::task_submitted(t, id as c_int);
                Ok(id as c_int)
            }
            Err((e, task)) => {
                handles::task_not_submitted(task);
                Err(e)
            }
        }
    })
}

fn timeout_of(timeout_s: c_int) -> crate::error::Result<Option<Duration>> {
    match timeout_s {
        -1 => Ok(None),
        0.. => Ok(Some(Duration::from_secs(timeout_s as u64))),
        _ => Err(Error::invalid(format!(
            "timeout {timeout_s} is neither seconds >= 0 nor VINE_WAIT_FOREVER"
        ))),
    }
}

fn wait_common(
    m: *mut vine_manager,
    timeout_s: c_int,
    want: Want<'_>,
) -> crate::error::Result<*mut vine_task> {
    let m = handles::manager(m)?;
    let timeout = timeout_of(timeout_s)?;
    match m.try_wait_for(want, timeout)? {
        Some(t) => Ok(handles::task_give_back(t)),
        // Nothing came back: if a factory cannot get workers, say why.
        None => match m.factory_error() {
            Some(e) => Err(Error::new(
                crate::error::ErrorKind::Io,
                format!("no task finished; {e}"),
            )),
            // Say why, so that `vine_last_error_code()` tells a timeout from
            // nothing outstanding and no error of an earlier call remains.
            None => Err(m.why_nothing(want, timeout)),
        },
    }
}

/// Returns the next finished task, in the order finished tasks reached the
/// manager (completion order but for the batches below), as soon as one finishes;
/// `timeout_s` only bounds the wait (0 = do not block, `VINE_WAIT_FOREVER` = no
/// bound). NULL on timeout or when no task is outstanding (then it returns at once);
/// `vine_last_error_code()` then says which: `VINE_ERROR_TIMEOUT` or
/// `VINE_ERROR_UNKNOWN_TASK` (and never an earlier call's error). A timeout below
/// -1 is refused at once (`VINE_ERROR_INVALID_ARGUMENT`).
/// If the manager's thread failed (a bug inside the library), every wait returns
/// NULL at once with `vine_last_error()` saying so (the tasks it held are lost),
/// and `vine_submit` refuses new tasks.
/// The caller owns the returned task and frees it with `vine_task_delete`. Any
/// number of threads may wait at once; each finished task goes to exactly one.
/// While the local pool holds more queued tasks than it has cores, it reports
/// finished tasks in batches, at most about 5 ms after they finish, so that
/// delivering results takes no cores from running tasks; otherwise a task is
/// reported the moment it finishes. So a task may come back after one that
/// finished up to about 5 ms after it.
/// vine's own: a wait with `VINE_WAIT_FOREVER` that finds nothing finished, a
/// core of the local pool free and the pool's next task a function task that
/// took the direct lane (see the README) runs that task on the calling
/// thread, as OpenMP's taskwait and oneTBB's wait do, instead of sleeping until
/// a pool thread has. The task holds its share of the pool's cores meanwhile, so
/// the pool's limits hold, and cancel finds it as anywhere else; its function
/// then runs on the caller's stack. A wait with a timeout never does this.
#[no_mangle]
pub extern "C" fn vine_wait(m: *mut vine_manager, timeout_s: c_int) -> *mut vine_task {
    guard(ptr::null_mut(), || wait_common(m, timeout_s, Want::Any))
}

/// Like `vine_wait`, for the task with id `id`. NULL at once if no such task is
/// outstanding or finished-and-unretrieved (`VINE_ERROR_UNKNOWN_TASK`); NULL on
/// timeout (`VINE_ERROR_TIMEOUT`); if another thread takes that task first, this
/// waits until its timeout or until nothing is outstanding.
#[no_mangle]
pub extern "C" fn vine_wait_for_task_id(
    m: *mut vine_manager,
    id: c_int,
    timeout_s: c_int,
) -> *mut vine_task {
    guard(ptr::null_mut(), || {
        if id <= 0 {
            return Err(Error::invalid(format!("{id} is not a task id")));
        }
        wait_common(m, timeout_s, Want::Id(id as u64))
    })
}

/// Like `vine_wait`, for the next finished task whose tag is `tag` (NULL: any task).
#[no_mangle]
pub unsafe extern "C" fn vine_wait_for_tag(
    m: *mut vine_manager,
    tag: *const c_char,
    timeout_s: c_int,
) -> *mut vine_task {
    guard(ptr::null_mut(), || {
        if tag.is_null() {
            return wait_common(m, timeout_s, Want::Any);
        }
        // SAFETY: non-NULL and NUL-terminated by the C contract.
        let tag = unsafe { CStr::from_ptr(tag) };
        wait_common(m, timeout_s, Want::Tag(tag))
    })
}

/// 1 when no task is outstanding (every submitted task was returned by a wait),
/// 0 otherwise, a negative error for a bad manager.
#[no_mangle]
pub extern "C" fn vine_empty(m: *mut vine_manager) -> c_int {
    guard_code(|| Ok(c_int::from(handles::manager(m)?.empty())))
}

/// How many more tasks the manager wants to keep its workers busy:
/// `hungry-factor` times the workers' slots, but at least `hungry-minimum` (10),
/// less the tasks waiting; 0 when it is
/// not hungry (and after shutdown); a negative error for a bad manager. Feed it
/// while it is hungry (`while (vine_hungry(m) > 0)`) to bound memory. The use
/// is TaskVine's; the count is vine's own: TaskVine's divides what its
/// workers have left over (times the factor) by the size of the tasks waiting
/// or running, so the two may give different numbers for one state.
#[no_mangle]
pub extern "C" fn vine_hungry(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        let n = handles::manager(m)?.hungry_for();
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

/// Cancels task `id`. A waiting task comes back from `vine_wait` as
/// `VINE_RESULT_CANCELLED` at once; a running command is killed; a running THREAD
/// function cannot be stopped, so it is marked and comes back cancelled when it
/// returns. Returns 0, and then the task always comes back `VINE_RESULT_CANCELLED`
/// (even if it was finishing as the cancel arrived, when the outputs a remote
/// worker sends back are not stored: a declared file keeps what it held; a
/// second cancel of a task still on its way back also returns 0), or
/// `VINE_ERROR_UNKNOWN_TASK` if
/// it has already finished (it comes back as it finished; `vine_last_error()` says
/// so) or no task `id` was submitted; `VINE_ERROR_INVALID_ARGUMENT` for an `id`
/// below 1, `VINE_ERROR_SHUT_DOWN` after `vine_shutdown` (which has cancelled
/// what had not started).
#[no_mangle]
pub extern "C" fn vine_cancel_by_task_id(m: *mut vine_manager, id: c_int) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        if id <= 0 {
            return Err(Error::invalid(format!("{id} is not a task id")));
        }
        m.cancel(id as u64)?;
        Ok(0)
    })
}

/// Cancels every waiting and running task, as `vine_cancel_by_task_id` does one.
/// Returns how many, or a negative error.
#[no_mangle]
pub extern "C" fn vine_cancel_all(m: *mut vine_manager) -> c_int {
    guard_code(|| Ok(handles::manager(m)?.cancel_all()?.min(c_int::MAX as usize) as c_int))
}

/// Fills `*s` with the manager's counters. Returns 0 or a negative error (then `*s`
/// is unchanged).
#[no_mangle]
pub unsafe extern "C" fn vine_get_stats(m: *mut vine_manager, s: *mut vine_stats) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        if s.is_null() {
            return Err(boundary::null("the stats pointer"));
        }
        let st = m.stats()?;
        // Every task counted done is returned by a wait once (but those the
        // manager ran itself): counted so rather than by the tasks that reached
        // the queue, which a snapshot would find behind the count of those done.
        let with_results = (st.tasks_done - st.tasks_done_internal).saturating_sub(m.taken_total());
        let (sent, received) = m.bytes_transferred();
        let times = m.transfer_times();
        let int = |n: u64| c_int::try_from(n).unwrap_or(c_int::MAX);
        let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let cores = |r: &crate::resources::Resources| big(r.millicores.div_ceil(1000));
        let out = vine_stats {
            workers_connected: int(st.workers_connected),
            workers_init: 0,
            workers_idle: int(st.workers_idle),
            workers_busy: int(st.workers_busy),
            workers_able: int(st.workers_able),
            workers_joined: int(st.workers_joined),
            workers_removed: int(st.workers_removed),
            workers_released: int(st.workers_released),
            workers_idled_out: 0,
            workers_slow: int(st.workers_slow),
            workers_blocked: int(st.workers_blocked),
            workers_lost: int(st.workers_lost),
            tasks_waiting: int(st.tasks_waiting),
            tasks_on_workers: int(st.tasks_on_workers),
            tasks_running: int(st.tasks_running),
            tasks_with_results: int(with_results),
            tasks_recovery: int(st.tasks_recovery),
            tasks_submitted: int(st.tasks_submitted),
            tasks_dispatched: int(st.tasks_dispatched),
            tasks_done: int(st.tasks_done),
            tasks_failed: int(st.tasks_failed),
            tasks_successful: int(st.tasks_successful),
            tasks_cancelled: int(st.tasks_cancelled),
            tasks_exhausted_attempts: int(st.tasks_exhausted),
            time_when_started: st.time_when_started,
            time_workers_execute: st.time_execute,
            time_workers_execute_good: st.time_execute_good,
            time_workers_execute_exhaustion: st.time_execute_exhaustion,
            time_send: times.send_us,
            time_receive: times.receive_us,
            time_send_good: times.send_good_us,
            time_receive_good: times.receive_good_us,
            bytes_sent: big(sent),
            bytes_received: big(received),
            bandwidth: effective_bandwidth(sent, received, &times),
            total_cores: cores(&st.total),
            total_memory: big(st.total.memory_mb),
            total_disk: big(st.total.disk_mb),
            total_gpus: i64::from(st.total.gpus),
            committed_cores: cores(&st.committed),
            committed_memory: big(st.committed.memory_mb),
            committed_disk: big(st.committed.disk_mb),
            committed_gpus: i64::from(st.committed.gpus),
            max_cores: cores(&st.max),
            max_memory: big(st.max.memory_mb),
            max_disk: big(st.max.disk_mb),
            max_gpus: i64::from(st.max.gpus),
            min_cores: cores(&st.min),
            min_memory: big(st.min.memory_mb),
            min_disk: big(st.min.disk_mb),
            min_gpus: i64::from(st.min.gpus),
            tasks_retried: big(st.tasks_retried),
            total_cores_exact: st.total.cores(),
            committed_cores_exact: st.committed.cores(),
            bytes_peer: big(m.bytes_peer()),
            ..vine_stats::default()
        };
        // SAFETY: non-NULL and pointing to a vine_stats by the C contract.
        unsafe { s.write(out) };
        Ok(0)
    })
}

/// MB/s over every file sent to and received from remote workers.
fn effective_bandwidth(sent: u64, received: u64, t: &crate::manager::bandwidth::Times) -> f64 {
    crate::manager::bandwidth::mb_per_second(
        sent.saturating_add(received),
        t.send_us.saturating_add(t.receive_us),
    )
}

/// The average rate, in MB (2^20 bytes) a second, of the files the manager
/// has sent to and received from remote workers: their bytes over the time
/// they took, from each transfer's first frame to its last. 0 before any file
/// has gone either way; -1 if `m` is not a manager (the reason in
/// `vine_last_error()`). Peer transfers between workers are not counted. As
/// TaskVine's; also `bandwidth` in `vine_get_stats`.
#[no_mangle]
pub extern "C" fn vine_get_effective_bandwidth(m: *mut vine_manager) -> f64 {
    guard(-1.0, || {
        let m = handles::manager(m)?;
        let (sent, received) = m.bytes_transferred();
        Ok(effective_bandwidth(sent, received, &m.transfer_times()))
    })
}

/// Limits the rate of file data between the manager and each remote worker, in
/// each direction, to `bandwidth` bytes a second: a number, optionally followed
/// by K, M, G, T or P (powers of 1024) and B, such as `"10MB"` or `"500K"`;
/// `"0"` removes the limit (the default). The limit holds each connection
/// separately, and applies at once, to transfers under way too; data moves in
/// pieces of up to 1 MiB, each followed by the wait the limit asks for. Peer
/// transfers between workers are not limited. Returns 0, or
/// `VINE_ERROR_INVALID_ARGUMENT` for a rate that is negative, not finite or
/// not a rate (`VINE_ERROR_NULL` for NULL), with the reason in
/// `vine_last_error()`. vine's: TaskVine's returns nothing.
#[no_mangle]
pub unsafe extern "C" fn vine_set_bandwidth_limit(
    m: *mut vine_manager,
    bandwidth: *const c_char,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let text = unsafe { c_str(bandwidth, "the bandwidth")? };
        m.set_bandwidth_limit(crate::manager::bandwidth::parse_rate(
            &text.to_string_lossy(),
        )?);
        Ok(0)
    })
}

/// Stops the manager: no more submissions (`vine_submit` fails with
/// `VINE_ERROR_SHUT_DOWN`); waiting tasks come back from `vine_wait` as
/// `VINE_RESULT_CANCELLED`; running tasks may finish within `shutdown-timeout`, then
/// commands are killed and come back cancelled; remote workers are told to exit;
/// every thread of the manager is joined. Finished tasks stay retrievable with
/// `vine_wait` until `vine_delete`.
///
/// Returns 0 when all of that happened. At the timeout, killed commands and
/// the workers told to cancel get 2 s more to bring their tasks back, and a
/// THREAD function 2 s more to return. A THREAD function still running then
/// cannot be killed: it is abandoned (its thread detached) and this returns
/// `VINE_ERROR_TIMEOUT`, about 2 s after `shutdown-timeout`. Its task stays
/// outstanding (`vine_empty` is 0, and `vine_wait` waits for it up to its
/// timeout): if the function returns before `vine_delete`, the task comes back
/// from `vine_wait` as `VINE_RESULT_CANCELLED`; if not, it never comes back and
/// its handle (a few dozen bytes) is not freed, as the function may still read
/// its input. (So a wait without a timeout then waits as long as the function
/// runs.) A factory's jobs
/// still listed by the batch system after 60 s (5 s for a local factory) also
/// make it `VINE_ERROR_TIMEOUT`, naming them.
/// Calling it again returns the first result. Do not call it from inside a task
/// function (it would wait for itself).
#[no_mangle]
pub extern "C" fn vine_shutdown(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        handles::manager(m)?.shutdown()?;
        Ok(0)
    })
}

/// Shuts the manager down if needed and frees it, its files, and every finished
/// task not retrieved (their handles become invalid). After it returns no thread of
/// the manager remains. A deleted manager is detected: later calls with it fail with
/// `VINE_ERROR_INVALID_HANDLE`. NULL is ignored. Do not call it from inside a task.
/// When the shutdown did not all happen (see `vine_shutdown`: an abandoned THREAD
/// function, or a factory's jobs that would not go), the manager is freed all the
/// same and `vine_last_error()` says what did not happen. A file another thread
/// declares while this runs is refused (`VINE_ERROR_INVALID_HANDLE`) or freed
/// with the manager, as is a mini task's task with its file; so is a factory
/// another thread creates meanwhile (refused, or stopped and freed).
#[no_mangle]
pub extern "C" fn vine_delete(m: *mut vine_manager) {
    guard((), || {
        if m.is_null() {
            return Ok(());
        }
        let mgr = handles::manager(m)?;
        let down = mgr.shutdown();
        for task in mgr.drain_finished() {
            handles::task_free_unretrieved(task);
        }
        let removed = handles::manager_remove(m);
        // Once no call can find the manager: a file declared (or factory
        // created) by a call that found it before is either found here or
        // forgotten by that call (see `handles::declare_into_c`).
        handles::factories_forget(m);
        handles::files_forget(&mgr.files());
        removed?;
        // Freed all the same; what did not happen is said.
        down
    })
}

/// The message of this thread's most recent failed call (never NULL; "" if none).
/// Successful calls leave it unchanged. Valid until this thread's next failing call.
#[no_mangle]
pub extern "C" fn vine_last_error() -> *const c_char {
    guard(c"".as_ptr(), || Ok(boundary::last_error()))
}

/// vine's own: the `vine_error_t` code (negative) of this thread's most recent
/// failed call, the one `vine_last_error()` describes; 0 if no call of this
/// thread has failed. For calls that report failure by a NULL or 0 result, this
/// says which error it was. Successful calls leave it unchanged.
#[no_mangle]
pub extern "C" fn vine_last_error_code() -> c_int {
    guard(0, || Ok(boundary::last_error_code()))
}

/// The library version as TaskVine's call gives it: a string in static storage,
/// "MAJOR.MINOR.PATCH" as `vine_version`. Do not modify or free it.
#[no_mangle]
pub extern "C" fn vine_version_string() -> *mut c_char {
    guard(ptr::null_mut(), || Ok(vine_version().cast_mut()))
}

/// The library version, "MAJOR.MINOR.PATCH" (static storage).
#[no_mangle]
pub extern "C" fn vine_version() -> *const c_char {
    guard(c"".as_ptr(), || {
        static VERSION: &CStr =
            match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
                Ok(v) => v,
                Err(_) => panic!("version string"),
            };
        Ok(VERSION.as_ptr())
    })
}

/// The name of a result, e.g. "SUCCESS" or "FUNCTION_ERROR" (static storage),
/// as TaskVine names it (`VINE_RESULT_RMONITOR_ERROR` is "MONITOR_ERROR").
/// "UNKNOWN_RESULT" for a value that is not a `VINE_RESULT_*` (vine's own:
/// TaskVine's returns NULL).
#[no_mangle]
pub extern "C" fn vine_result_string(result: vine_result_t) -> *const c_char {
    guard(c"UNKNOWN_RESULT".as_ptr(), || {
        use super::constants::{
            VINE_RESULT_LIBRARY_EXIT, VINE_RESULT_MISSING_LIBRARY,
            VINE_RESULT_OUTPUT_TRANSFER_ERROR, VINE_RESULT_RMONITOR_ERROR,
            VINE_RESULT_SANDBOX_EXHAUSTION,
        };
        let name = match TaskResult::from_code(result) {
            Some(r) => r.name(),
            // TaskVine's, which vine never gives: named all the same.
            None => match result {
                VINE_RESULT_RMONITOR_ERROR => c"MONITOR_ERROR",
                VINE_RESULT_OUTPUT_TRANSFER_ERROR => c"OUTPUT_TRANSFER_ERROR",
                VINE_RESULT_LIBRARY_EXIT => c"LIBRARY_EXIT",
                VINE_RESULT_SANDBOX_EXHAUSTION => c"SANDBOX_EXHAUSTION",
                VINE_RESULT_MISSING_LIBRARY => c"MISSING_LIBRARY",
                _ => c"UNKNOWN_RESULT",
            },
        };
        Ok(name.as_ptr())
    })
}
