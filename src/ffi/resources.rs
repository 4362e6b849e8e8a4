//! Entry points on resources: what a task measured (`vine_task_get_resources`),
//! how categories are sized (`vine_set_category_*`, `vine_set_resources_*`),
//! `vine_get_stats_category`, and the summary they take and give: `struct
//! vine_resources`, TaskVine's `struct rmsummary` under vine's name (taskvine.h
//! maps the TaskVine names onto it), with the four helpers programs use to make one.

use std::ffi::{c_char, c_int, CStr};
use std::ptr;

use super::boundary::{self, c_str, guard, guard_code};
use super::handles::{self, task_summary};
use super::vine_stats;
use super::{vine_manager, vine_task};
use crate::error::{Error, Result};
use crate::manager::categories::{Bound, Change, Partial};
use crate::resources::Resources;
use crate::task::{Task, MAX_GPUS, MAX_MB};

/// A summary of resources: TaskVine's `struct rmsummary` under vine's name (a
/// program that includes `taskvine.h` can call it `struct rmsummary`, and the
/// helpers `rmsummary_create`, `_delete`, `_set` and `_get`): its fields, in its
/// order, with its units. A field that is not known or not set is -1. vine
/// fills `cores`, `gpus`, `memory` and `disk` (what a task asks for, was given
/// or used), and for measurements also `start`, `end`, `wall_time`,
/// `cpu_time`, `cores_avg`, `bytes_read`, `bytes_written`,
/// `max_concurrent_processes` and `total_processes`; the strings and pointers
/// are always NULL, `snapshots_count` 0. vine reads only `cores`, `gpus`,
/// `memory` and `disk` of a summary it is given.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vine_resources {
    /// Always NULL in vine.
    pub category: *mut c_char,
    /// Always NULL in vine.
    pub command: *mut c_char,
    /// Always NULL in vine.
    pub taskid: *mut c_char,
    /// Cores (measured: CPU time over wall time, as `cores_avg`).
    pub cores: f64,
    /// Gpus.
    pub gpus: f64,
    /// Memory, MB (measured: the peak resident memory).
    pub memory: f64,
    /// Disk, MB (measured: the peak size of the sandbox).
    pub disk: f64,
    /// Always NULL in vine.
    pub exit_type: *mut c_char,
    /// Not filled (-1).
    pub signal: i64,
    /// Not filled (-1).
    pub exit_status: i64,
    /// Not filled (-1).
    pub last_error: i64,
    /// When the attempt started, seconds since the epoch (requested: the
    /// earliest start, `vine_task_set_time_start`, whole seconds rounded up).
    pub start: f64,
    /// When it ended, seconds since the epoch (requested: the end time,
    /// `vine_task_set_time_end`, whole seconds rounded up).
    pub end: f64,
    /// CPU time over wall time.
    pub cores_avg: f64,
    /// Wall time, seconds.
    pub wall_time: f64,
    /// CPU time (user and system), seconds.
    pub cpu_time: f64,
    /// Not filled (-1).
    pub virtual_memory: f64,
    /// Not filled (-1).
    pub swap_memory: f64,
    /// MB read through system calls.
    pub bytes_read: f64,
    /// MB written through system calls.
    pub bytes_written: f64,
    /// Not filled (-1).
    pub bytes_received: f64,
    /// Not filled (-1).
    pub bytes_sent: f64,
    /// Not filled (-1).
    pub bandwidth: f64,
    /// Not filled (-1).
    pub machine_cpus: f64,
    /// Not filled (-1).
    pub machine_load: f64,
    /// Not filled (-1).
    pub context_switches: f64,
    /// Most processes of the task alive at once (as sampled).
    pub max_concurrent_processes: f64,
    /// As `max_concurrent_processes` (vine samples; it does not count every fork).
    pub total_processes: f64,
    /// Not filled (-1).
    pub total_files: f64,
    /// Not filled (-1).
    pub fs_nodes: f64,
    /// Not filled (-1).
    pub workers: f64,
    /// Always NULL in vine.
    pub limits_exceeded: *mut vine_resources,
    /// Always NULL in vine.
    pub peak_times: *mut vine_resources,
    /// Always NULL in vine.
    pub snapshot_name: *mut c_char,
    /// Always 0 in vine.
    pub snapshots_count: usize,
    /// Always NULL in vine.
    pub snapshots: *mut *mut vine_resources,
}

impl vine_resources {
    /// Every number `value`, every pointer NULL.
    fn filled_with(value: f64) -> vine_resources {
        let i = value as i64;
        vine_resources {
            category: ptr::null_mut(),
            command: ptr::null_mut(),
            taskid: ptr::null_mut(),
            cores: value,
            gpus: value,
            memory: value,
            disk: value,
            exit_type: ptr::null_mut(),
            signal: i,
            exit_status: i,
            last_error: i,
            start: value,
            end: value,
            cores_avg: value,
            wall_time: value,
            cpu_time: value,
            virtual_memory: value,
            swap_memory: value,
            bytes_read: value,
            bytes_written: value,
            bytes_received: value,
            bytes_sent: value,
            bandwidth: value,
            machine_cpus: value,
            machine_load: value,
            context_switches: value,
            max_concurrent_processes: value,
            total_processes: value,
            total_files: value,
            fs_nodes: value,
            workers: value,
            limits_exceeded: ptr::null_mut(),
            peak_times: ptr::null_mut(),
            snapshot_name: ptr::null_mut(),
            snapshots_count: 0,
            snapshots: ptr::null_mut(),
        }
    }

    /// Every number -1 (unknown), every pointer NULL.
    pub(crate) fn unset() -> vine_resources {
        vine_resources::filled_with(-1.0)
    }

    /// The field called `name`, if it is one of the numbers.
    fn field(&mut self, name: &[u8]) -> Option<&mut f64> {
        Some(match name {
            b"cores" => &mut self.cores,
            b"gpus" => &mut self.gpus,
            b"memory" => &mut self.memory,
            b"disk" => &mut self.disk,
            b"start" => &mut self.start,
            b"end" => &mut self.end,
            b"cores_avg" => &mut self.cores_avg,
            b"wall_time" => &mut self.wall_time,
            b"cpu_time" => &mut self.cpu_time,
            b"virtual_memory" => &mut self.virtual_memory,
            b"swap_memory" => &mut self.swap_memory,
            b"bytes_read" => &mut self.bytes_read,
            b"bytes_written" => &mut self.bytes_written,
            b"bytes_received" => &mut self.bytes_received,
            b"bytes_sent" => &mut self.bytes_sent,
            b"bandwidth" => &mut self.bandwidth,
            b"machine_cpus" => &mut self.machine_cpus,
            b"machine_load" => &mut self.machine_load,
            b"context_switches" => &mut self.context_switches,
            b"max_concurrent_processes" => &mut self.max_concurrent_processes,
            b"total_processes" => &mut self.total_processes,
            b"total_files" => &mut self.total_files,
            b"fs_nodes" => &mut self.fs_nodes,
            b"workers" => &mut self.workers,
            _ => return None,
        })
    }

    fn of(r: Resources) -> vine_resources {
        vine_resources {
            cores: r.cores(),
            gpus: f64::from(r.gpus),
            memory: r.memory_mb as f64,
            disk: r.disk_mb as f64,
            ..vine_resources::unset()
        }
    }
}

/// The cores, memory, disk and gpus of `rm` as given (a negative value: not
/// given), each checked to be a number in range; NULL gives none of them.
fn given_values(rm: *const vine_resources) -> Result<[Option<f64>; 4]> {
    if rm.is_null() {
        return Ok([None; 4]);
    }
    // SAFETY: non-NULL and pointing to a struct vine_resources by the C contract.
    let rm = unsafe { &*rm };
    let given = |v: f64, what: &str, max: f64| -> Result<Option<f64>> {
        if v.is_nan() || v.is_infinite() || v > max {
            return Err(Error::invalid(format!(
                "{what} must be a number from 0 to {max:e} (or negative: not set), not {}",
                crate::error::Shown(v)
            )));
        }
        Ok((v >= 0.0).then_some(v))
    };
    let mb = MAX_MB as f64;
    Ok([
        given(rm.cores, "cores", 1e9)?,
        given(rm.memory, "memory", mb)?,
        given(rm.disk, "disk", mb)?,
        given(rm.gpus, "gpus", f64::from(MAX_GPUS))?,
    ])
}

/// The cores, memory, disk and gpus of `rm` (a negative value: not given),
/// checked: cores rounded up to thousandths of a core, memory and disk to
/// whole MB (a size computed in floating point is seldom whole), gpus whole or
/// refused; NULL gives none of them.
fn partial(rm: *const vine_resources) -> Result<Partial> {
    let [cores, memory, disk, gpus] = given_values(rm)?;
    let cores = cores
        .map(|c| Resources::millicores_from((c * 1000.0).ceil() / 1000.0, true))
        .transpose()?;
    Ok(Partial {
        millicores: cores,
        memory_mb: memory.map(|m| m.ceil() as u64),
        disk_mb: disk.map(|d| d.ceil() as u64),
        // Whole and in range (checked above): exact.
        gpus: whole(gpus, "gpus")?.map(|g| g as u32),
    })
}

/// A given memory, disk or gpus value, which must be whole (as the single
/// setters of a task take them).
fn whole(v: Option<f64>, what: &str) -> Result<Option<i64>> {
    match v {
        Some(v) if v.fract() != 0.0 => Err(Error::invalid(format!(
            "{what} must be a whole number, not {v}"
        ))),
        // In range (checked by `given_values`): exact as an i64.
        v => Ok(v.map(|v| v as i64)),
    }
}

/// A category argument where NULL stands for every category without a
/// setting of its own: None for NULL, else the name as [`category_name`]
/// checks it.
///
/// # Safety
/// `category` is NULL or a NUL-terminated string.
pub(crate) unsafe fn optional_category(
    category: *const c_char,
) -> Result<Option<std::ffi::CString>> {
    if category.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(Some(unsafe { category_name(category)? }.to_owned()))
}

pub(crate) unsafe fn category_name<'a>(category: *const c_char) -> Result<&'a CStr> {
    // SAFETY: C passes a NUL-terminated string or NULL.
    let name = unsafe { c_str(category, "the category")? };
    if name.is_empty() {
        return Err(Error::invalid("a category name cannot be empty"));
    }
    crate::manager::Manager::utf8(name)?;
    Ok(name)
}

/// A new summary with every number `default_value` (TaskVine's programs pass -1:
/// not set) and every pointer NULL, freed with `vine_resources_delete`: the
/// resource monitor's `rmsummary_create`, which `taskvine.h` maps here, so that
/// TaskVine programs that build summaries compile unchanged. NULL only if memory
/// runs out.
#[no_mangle]
pub extern "C" fn vine_resources_create(default_value: f64) -> *mut vine_resources {
    guard(ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(vine_resources::filled_with(
            default_value,
        ))))
    })
}

/// The workers connected now, by size: a NULL-terminated array with one summary
/// for each size of worker there is (`cores`, `memory` and `disk` in MB, and
/// `gpus`, the worker's whole resources) and in its `workers` field how many
/// workers have that size; every other number is -1. The local pool, when it
/// has cores, counts as one worker. Sizes come in the order the first worker
/// of each joined. With no worker, the array holds only the NULL.
///
/// The caller frees each summary with `vine_resources_delete` and then the array
/// with `free()`, as in TaskVine. NULL if `m` is not a manager, the manager has
/// shut down or memory runs out, with the reason in `vine_last_error()`.
#[no_mangle]
pub extern "C" fn vine_summarize_workers(m: *mut vine_manager) -> *mut *mut vine_resources {
    guard(ptr::null_mut(), || {
        let sizes = handles::manager(m)?.worker_sizes()?;
        let slots = sizes.len() + 1;
        // SAFETY: calloc of `slots` pointers; checked for NULL below. C frees it.
        let array = unsafe { libc::calloc(slots, std::mem::size_of::<*mut vine_resources>()) }
            as *mut *mut vine_resources;
        if array.is_null() {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                "out of memory for the workers' summaries",
            ));
        }
        for (i, (r, n)) in sizes.iter().enumerate() {
            let mut s = vine_resources::filled_with(-1.0);
            s.cores = r.cores();
            s.memory = r.memory_mb as f64;
            s.disk = r.disk_mb as f64;
            s.gpus = f64::from(r.gpus);
            s.workers = *n as f64;
            // SAFETY: `i` < `slots` - 1; the last slot stays NULL (calloc).
            unsafe { *array.add(i) = Box::into_raw(Box::new(s)) };
        }
        Ok(array)
    })
}

/// Frees a summary made by `vine_resources_create` or `vine_summarize_workers` (never one that
/// `vine_task_get_resources` returned: the task owns those). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn vine_resources_delete(s: *mut vine_resources) {
    guard((), || {
        if !s.is_null() {
            // SAFETY: made by `vine_resources_create` or `vine_summarize_workers`
            // (Box::into_raw), by the C contract.
            drop(unsafe { Box::from_raw(s) });
        }
        Ok(())
    })
}

/// Sets the number called `resource` (a field name: "cores", "memory", "disk",
/// "gpus", "wall_time", ...) of `s`. Returns 1, or 0 if `resource` is not a
/// number of the summary or an argument is NULL, as the resource monitor's does.
#[no_mangle]
pub unsafe extern "C" fn vine_resources_set(
    s: *mut vine_resources,
    resource: *const c_char,
    value: f64,
) -> c_int {
    guard(0, || {
        if s.is_null() {
            return Err(boundary::null("the summary"));
        }
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = unsafe { c_str(resource, "the resource name")? };
        // SAFETY: non-NULL and pointing to a struct vine_resources by the C contract.
        let s = unsafe { &mut *s };
        match s.field(name.to_bytes()) {
            Some(f) => {
                *f = value;
                Ok(1)
            }
            None => Err(Error::invalid(format!(
                "{:?} is not a number of struct vine_resources",
                name.to_string_lossy()
            ))),
        }
    })
}

/// The number called `resource` of `s`; -1 if it is not one (or an argument is
/// NULL), with the reason in `vine_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn vine_resources_get(
    s: *const vine_resources,
    resource: *const c_char,
) -> f64 {
    guard(-1.0, || {
        if s.is_null() {
            return Err(boundary::null("the summary"));
        }
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = unsafe { c_str(resource, "the resource name")? };
        // SAFETY: non-NULL and pointing to a struct vine_resources by the C contract.
        let mut copy = unsafe { *s };
        copy.field(name.to_bytes()).map(|f| *f).ok_or_else(|| {
            Error::invalid(format!(
                "{:?} is not a number of struct vine_resources",
                name.to_string_lossy()
            ))
        })
    })
}

/// The resources of a finished task the caller owns, by `name`:
/// - `"measured"`: what its last attempt used, as its worker measured it, when
///   it was monitored (`vine_enable_monitoring`, or a category with an automatic
///   allocation mode). For a command or a PROCESS function: peak resident memory
///   of its process group (sampled every 50 ms, and the kernel's peak of its
///   largest process when that is above the peak of the process that started
///   it, which a process inherits), peak sandbox size (directories the task
///   closed to itself are opened again to measure them), CPU time of the
///   processes it waited for, bytes read and written, most processes at once.
///   For a THREAD function: its thread's CPU time and wall time only; its
///   memory (-1) cannot be told apart from the rest of the process. As in
///   TaskVine, a task that ran unmonitored has what its last attempt was given
///   (as `"allocated"`), with when it started and ended and its wall time;
///   one that never ran, -1 throughout.
/// - `"allocated"`: what its last attempt was given (its request, or what its
///   category's allocation mode chose), once it has been dispatched; -1
///   throughout before.
/// - `"requested"`: what the program set (`vine_task_set_cores`, ...,
///   `vine_task_set_time_max` as `wall_time`, start and end times); what it
///   did not set is -1 (vine gives such a task one core, or none if it sets
///   gpus, and no memory, disk or gpu bound, unless its category says
///   otherwise).
///
/// Returns a summary the task owns (valid until `vine_task_delete`; the next
/// call with the same name rewrites it), or NULL on error (NULL arguments, an
/// unknown name, a task the manager holds), with the reason in
/// `vine_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn vine_task_get_resources(
    t: *mut vine_task,
    name: *const c_char,
) -> *const vine_resources {
    guard(ptr::null(), || {
        // SAFETY: C passes a NUL-terminated string or NULL.
        let name = unsafe { c_str(name, "the summary name")? };
        let which = match name.to_bytes() {
            b"measured" => 0,
            b"allocated" => 1,
            b"requested" => 2,
            _ => {
                return Err(Error::invalid(format!(
                    "{:?} is not \"measured\", \"allocated\" or \"requested\"",
                    name.to_string_lossy()
                )))
            }
        };
        task_summary(t, which, |task| {
            Ok(match which {
                0 => measured(task),
                1 if task.attempts > 0 => vine_resources::of(task.request),
                1 => vine_resources::unset(),
                _ => requested(task),
            })
        })
    })
}

/// Microseconds since the epoch as a summary's seconds (0: -1, none).
fn seconds(us: i64) -> f64 {
    if us > 0 {
        us as f64 / 1e6
    } else {
        -1.0
    }
}

fn measured(task: &Task) -> vine_resources {
    let times = task.times();
    let Some(m) = task.extra.as_ref().and_then(|e| e.measured) else {
        // Not measured: as TaskVine, when it ran, what it was given, with
        // when it ran and for how long.
        if times.started <= 0 {
            return vine_resources::unset();
        }
        return vine_resources {
            start: seconds(times.started),
            end: seconds(times.done),
            wall_time: (times.done.saturating_sub(times.started)).max(0) as f64 / 1e6,
            ..vine_resources::of(task.request)
        };
    };
    let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
    vine_resources {
        cores: m.cores(),
        cores_avg: m.cores(),
        memory: m.memory_mb.map_or(-1.0, |v| v as f64),
        disk: m.disk_mb as f64,
        start: seconds(times.started),
        end: seconds(times.done),
        wall_time: m.wall_us as f64 / 1e6,
        cpu_time: m.cpu_us as f64 / 1e6,
        bytes_read: mb(m.bytes_read),
        bytes_written: mb(m.bytes_written),
        max_concurrent_processes: f64::from(m.max_processes),
        total_processes: f64::from(m.max_processes),
        ..vine_resources::unset()
    }
}

fn requested(task: &Task) -> vine_resources {
    use crate::task::{FLAG_SET_CORES, FLAG_SET_DISK, FLAG_SET_GPUS, FLAG_SET_MEMORY};
    let all = vine_resources::of(task.asked());
    let set = |flag: u16, v: f64| if task.flags & flag != 0 { v } else { -1.0 };
    // Times as TaskVine keeps them: whole seconds, rounded up.
    let whole_seconds = |us: i64| {
        if us > 0 {
            (us as f64 / 1e6).ceil()
        } else {
            -1.0
        }
    };
    vine_resources {
        cores: set(FLAG_SET_CORES, all.cores),
        memory: set(FLAG_SET_MEMORY, all.memory),
        disk: set(FLAG_SET_DISK, all.disk),
        gpus: set(FLAG_SET_GPUS, all.gpus),
        wall_time: if task.time_max() > 0.0 {
            task.time_max()
        } else {
            -1.0
        },
        start: whole_seconds(task.time_start()),
        end: whole_seconds(task.time_end()),
        ..vine_resources::unset()
    }
}

/// Sets a task's cores, memory, disk and gpus from `rm`, as the four
/// `vine_task_set_*` calls would: cores finer than a thousandth, and memory,
/// disk or gpus that are not whole, are refused (`VINE_ERROR_INVALID_ARGUMENT`).
/// As in TaskVine, each is replaced: one that is negative in `rm` (not set)
/// is unset, back to vine's default, whatever was set before; a `wall_time`
/// above 0 sets the maximum running time (seconds, as
/// `vine_task_set_time_max`), and an `end` above 0 the end time (microseconds
/// since the epoch, as `vine_task_set_time_end`, which TaskVine's passes it
/// to); 0 or less unsets them. Returns 0, or a negative error (nothing changes
/// then).
#[no_mangle]
pub unsafe extern "C" fn vine_task_set_resources(
    t: *mut vine_task,
    rm: *const vine_resources,
) -> c_int {
    guard_code(|| {
        if rm.is_null() {
            return Err(boundary::null("the summary"));
        }
        let [cores, memory, disk, gpus] = given_values(rm)?;
        let (memory, disk, gpus) = (
            whole(memory, "memory (MB)")?,
            whole(disk, "disk (MB)")?,
            whole(gpus, "gpus")?,
        );
        // SAFETY: non-NULL (checked above), a summary by the caller's contract.
        let (wall_time, end) = unsafe { ((*rm).wall_time, (*rm).end) };
        let end = match end {
            e if e.is_nan() => return Err(Error::invalid("end is NaN")),
            e if e <= 0.0 => None,
            e if e.fract() != 0.0 || e > i64::MAX as f64 => {
                return Err(Error::invalid(format!(
                    "end must be whole microseconds since the epoch, not {e}"
                )))
            }
            e => Some(e as i64),
        };
        handles::with_task_mut(t, |task| {
            use crate::task::{FLAG_SET_CORES, FLAG_SET_DISK, FLAG_SET_GPUS, FLAG_SET_MEMORY};
            const SET: u16 = FLAG_SET_CORES | FLAG_SET_MEMORY | FLAG_SET_DISK | FLAG_SET_GPUS;
            let mut copy = Task::command(c"true");
            copy.request = task.asked();
            copy.flags = task.flags & SET;
            // As TaskVine's, each of the four setters is called: a value not
            // given (negative) unsets what was set before.
            match cores {
                Some(c) => copy.set_cores(c)?,
                None => copy.unset_request(FLAG_SET_CORES),
            }
            match memory {
                Some(mb) => copy.set_memory(mb)?,
                None => copy.unset_request(FLAG_SET_MEMORY),
            }
            match disk {
                Some(mb) => copy.set_disk(mb)?,
                None => copy.unset_request(FLAG_SET_DISK),
            }
            match gpus {
                Some(g) => copy.set_gpus(g)?,
                None => copy.unset_request(FLAG_SET_GPUS),
            }
            // Checked on the copy (NaN and infinity refused); negative and 0
            // unset it.
            if wall_time > 0.0 || wall_time.is_nan() {
                copy.set_time_max(wall_time)?;
            }
            *task.asked_mut() = copy.request;
            task.flags = (task.flags & !SET) | (copy.flags & SET);
            if copy.time_max() > 0.0 || task.time_max() > 0.0 {
                task.set_time_max(copy.time_max())?;
            }
            if end.is_some() || task.time_end() > 0 {
                task.set_time_end(end.unwrap_or(0));
            }
            Ok(0)
        })
    })
}

fn set_bound(
    m: *mut vine_manager,
    category: Option<*const c_char>,
    which: Bound,
    rm: *const vine_resources,
) -> Result<c_int> {
    let m = handles::manager(m)?;
    let category = match category {
        // SAFETY: passed through from C, NUL-terminated or NULL.
        Some(c) => Some(unsafe { category_name(c)? }.to_owned()),
        None => None,
    };
    let bound = partial(rm)?;
    // A task given no cores would take none of a worker's: any number of
    // them would run at once. A minimum of 0 is no minimum.
    if which != Bound::Min && bound.millicores == Some(0) {
        return Err(Error::invalid(
            "cores must be above 0 (or negative: not set) in a maximum or a first allocation",
        ));
    }
    m.change_categories(Change::Bound(category, which, bound))?;
    Ok(0)
}

/// The most that tasks of `category` are given (TaskVine's call): a task that
/// sets none of cores, memory or disk gets these in `VINE_ALLOCATION_MODE_FIXED`,
/// an automatic mode never allocates more, and a task that exhausts an automatic
/// allocation runs once more with them. Negative fields (and NULL: all) are not
/// set, which means the largest worker's for the automatic modes. Cores are
/// rounded up to thousandths, memory and disk to whole MB; 0 cores, and gpus that
/// are not whole, are refused. Returns 0, or a negative error (TaskVine's returns
/// nothing).
#[no_mangle]
pub unsafe extern "C" fn vine_set_category_resources_max(
    m: *mut vine_manager,
    category: *const c_char,
    rm: *const vine_resources,
) -> c_int {
    guard_code(|| set_bound(m, Some(category), Bound::Max, rm))
}

/// The least that tasks of `category` are given (fields as in
/// `vine_set_category_resources_max`), in every allocation mode, as in
/// TaskVine: what a task does not set itself is raised to it. Returns 0, or a
/// negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_set_category_resources_min(
    m: *mut vine_manager,
    category: *const c_char,
    rm: *const vine_resources,
) -> c_int {
    guard_code(|| set_bound(m, Some(category), Bound::Min, rm))
}

/// What an automatic mode gives tasks of `category` before it has measured
/// enough of them (`"category-steady-n-tasks"`), instead of the maximum (fields as
/// in `vine_set_category_resources_max`). Returns 0, or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_set_category_first_allocation_guess(
    m: *mut vine_manager,
    category: *const c_char,
    rm: *const vine_resources,
) -> c_int {
    guard_code(|| set_bound(m, Some(category), Bound::FirstGuess, rm))
}

/// `vine_set_category_resources_max` for every category, resource by
/// resource: for each of cores, memory, disk and gpus, a category's own
/// maximum wins where it gives that resource, and this one holds where it
/// does not (a category that bounds only its cores keeps this memory bound).
/// vine's own: TaskVine's bounds only the "default" category.
/// Returns 0, or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_set_resources_max(
    m: *mut vine_manager,
    rm: *const vine_resources,
) -> c_int {
    guard_code(|| set_bound(m, None, Bound::Max, rm))
}

/// Turns on TaskVine's proportional resources: a task sized by what it asks
/// for (`VINE_ALLOCATION_MODE_FIXED`, the default) gets, of what it leaves
/// unset, its share of a worker: the largest share of the worker that what it
/// set (or its category's maximum) makes up, rounded up to 1/2, 1/3, 1/4... so
/// that a whole number of such tasks fit; its unset cores (whole, at least
/// one), memory and disk are that share of the worker's. One that sets nothing
/// takes a whole worker; one that sets cores, memory and disk is unchanged;
/// unset gpus stay 0. E.g. one core of a 4-core, 16 GB worker also gets 4 GB.
/// The worker is the largest connected (the local pool counts as one), so on
/// workers of one size it is each worker, as in TaskVine; TaskVine takes the
/// share of the worker a task is placed on. Automatic modes size as before,
/// but a resource they do not size (see `vine_enable_category_resource`) gets
/// its share. Memory and disk so given are limits as if set.
/// vine's own: off by default (TaskVine's is on), so a task that asks for
/// nothing gets one core and no memory or disk bound. Tasks already waiting are
/// sized anew when dispatched. Returns 0, or a negative error (TaskVine's
/// returns 1, as it does through `taskvine.h`).
#[no_mangle]
pub extern "C" fn vine_enable_proportional_resources(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        handles::manager(m)?.change_categories(Change::Proportional(true))?;
        Ok(0)
    })
}

/// Turns TaskVine's proportional resources off (see
/// `vine_enable_proportional_resources`): what a task leaves unset is sized as
/// if they had never been on. Returns 0, or a negative error (TaskVine's
/// returns 1, as it does through `taskvine.h`).
#[no_mangle]
pub extern "C" fn vine_disable_proportional_resources(m: *mut vine_manager) -> c_int {
    guard_code(|| {
        handles::manager(m)?.change_categories(Change::Proportional(false))?;
        Ok(0)
    })
}

/// Counts what earlier tasks measured, as TaskVine's function of the same name:
/// each resource summary in `summaries_file` counts for its category (its
/// `"category"`; none: `"default"`) as a task of that category that succeeded
/// with those measurements, so the automatic modes (`vine_set_category_mode`)
/// size from them at once instead of from whole workers until 25 tasks have
/// run. The file holds JSON objects one after another, as
/// `vine_task_set_monitor_output` writes them (`cat DIR/*.summary > FILE`) and
/// TaskVine's resource monitor does: of each, `cores`, `memory` and `disk`
/// (MB), `wall_time` and `cpu_time` (s) are read, each a number or a
/// `[number, "unit"]` pair in that unit; other fields are ignored. Without
/// `cores`, cores are `cpu_time` over `wall_time`; without `wall_time`, 1 s.
/// `max` (NULL: none) bounds what the summaries say: a figure above one it
/// sets (>= 0) counts as that figure (then rounded up as any measurement is;
/// `vine_set_category_resources_max` bounds allocations).
/// Returns 0, or a negative error and nothing counts: `VINE_ERROR_IO` if the file
/// cannot be read, `VINE_ERROR_INVALID_ARGUMENT` for one that is not such
/// summaries (which one, in `vine_last_error()`), holds more than 1,000,000 of
/// them, or a bad `max`. (TaskVine's
/// returns nothing.)
#[no_mangle]
pub unsafe extern "C" fn vine_initialize_categories(
    m: *mut vine_manager,
    max: *const vine_resources,
    summaries_file: *const c_char,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        let cap = partial(max)?;
        // SAFETY: C passes a NUL-terminated string or NULL.
        let path = unsafe { boundary::path_of(summaries_file, "the summaries file")? };
        m.initialize_categories(cap, std::path::Path::new(path))?;
        Ok(0)
    })
}

/// `vine_set_category_resources_min` for every category, resource by
/// resource, as `vine_set_resources_max` is for the maximum. vine's own:
/// TaskVine's applies to the "default" category only.
/// Returns 0, or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_set_resources_min(
    m: *mut vine_manager,
    rm: *const vine_resources,
) -> c_int {
    guard_code(|| set_bound(m, None, Bound::Min, rm))
}

/// At most `max_concurrent` tasks of `category` run at once, on all workers
/// together; a negative value removes the bound (the default). The others wait,
/// and tasks of other categories go ahead of them. Returns 0, or a negative error.
#[no_mangle]
pub unsafe extern "C" fn vine_set_category_max_concurrent(
    m: *mut vine_manager,
    category: *const c_char,
    max_concurrent: c_int,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: passed through from C, NUL-terminated or NULL.
        let category = unsafe { category_name(category)? }.to_owned();
        let n = u64::try_from(max_concurrent).ok();
        m.change_categories(Change::MaxConcurrent(category, n))?;
        Ok(0)
    })
}

/// Fills `s` with the counts of `category`'s tasks: `tasks_waiting`,
/// `tasks_running` and `tasks_on_workers` (both: its tasks on workers now),
/// `tasks_submitted`, `tasks_dispatched`, `tasks_done`, `tasks_failed`,
/// `tasks_successful`, `tasks_cancelled`, `tasks_exhausted_attempts` (attempts
/// that exhausted their resources, including those run again with the
/// maximum), and the `time_workers_execute*` sums; every other field is 0. An
/// unknown category has all 0. Returns 0, or a negative error (TaskVine's
/// returns nothing).
#[no_mangle]
pub unsafe extern "C" fn vine_get_stats_category(
    m: *mut vine_manager,
    category: *const c_char,
    s: *mut vine_stats,
) -> c_int {
    guard_code(|| {
        let m = handles::manager(m)?;
        // SAFETY: passed through from C, NUL-terminated or NULL.
        let category = unsafe { category_name(category)? };
        if s.is_null() {
            return Err(boundary::null("the stats pointer"));
        }
        let (c, waiting) = m.category_stats(category)?;
        let int = |n: u64| c_int::try_from(n).unwrap_or(c_int::MAX);
        let out = vine_stats {
            tasks_waiting: int(waiting),
            tasks_on_workers: int(c.running),
            tasks_running: int(c.running),
            tasks_submitted: int(c.submitted),
            tasks_dispatched: int(c.dispatched),
            tasks_done: int(c.done),
            tasks_failed: int(c.failed),
            tasks_successful: int(c.successful),
            tasks_cancelled: int(c.cancelled),
            tasks_exhausted_attempts: int(c.exhausted + c.exhausted_retried),
            time_workers_execute: c.time_execute,
            time_workers_execute_good: c.time_execute_good,
            time_workers_execute_exhaustion: c.time_execute_exhaustion,
            ..vine_stats::default()
        };
        // SAFETY: non-NULL and pointing to a vine_stats by the C contract.
        unsafe { s.write(out) };
        Ok(0)
    })
}
