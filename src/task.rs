//! A task: what to run (a registered function, a local function pointer or a shell
//! command), what it needs, and, once it has run, what came of it.
//!
//! A task is plain data. Whoever holds the `Box<Task>` owns it: the caller before
//! submission and after `wait`, the manager (and the worker the manager handed it to)
//! in between. Rarely used settings live in [`Extra`] so that the common task stays
//! small: a million queued tasks must fit in a few hundred MB.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::files::Mount;
use crate::payload::Payload;
use crate::resources::Resources;

/// A task id as the C API shows it (`int`, >= 1).
pub type TaskId = u64;

/// The C signature of a task function: reads `input`, appends its result to
/// `output` with `vine_buffer_append`, returns 0 on success.
pub type FunctionPtr = unsafe extern "C" fn(
    input: *const std::ffi::c_void,
    input_len: usize,
    output: *mut crate::ffi::vine_buffer,
    context: *mut std::ffi::c_void,
) -> std::ffi::c_int;

/// How a task ended. The numbers are the C API's `VINE_RESULT_*` values, shared
/// with TaskVine where the concept is shared, and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TaskResult {
    /// Ran to completion (a command may still have a non-zero exit code).
    Success = 0,
    /// A declared input was not there.
    InputMissing = 1,
    /// A declared output was not produced.
    OutputMissing = 2,
    /// Standard output was larger than the cap and was cut.
    StdoutMissing = 4,
    /// Killed by a signal.
    Signal = 8,
    /// Went past its memory or disk.
    ResourceExhaustion = 16,
    /// Past its absolute end time.
    MaxEndTime = 24,
    /// Failed for a reason the library could not classify.
    Unknown = 32,
    /// Its worker failed it too many times.
    Forsaken = 40,
    /// Failed on every allowed attempt for reasons not its own.
    MaxRetries = 48,
    /// Ran longer than its `time_max`.
    MaxWallTime = 56,
    /// A `VINE_FIXED_LOCATION` input is at no worker that could run the task.
    FixedLocationMissing = 80,
    /// Cancelled by the caller or by shutdown.
    Cancelled = 88,
    /// The function returned non-zero.
    FunctionError = 1024,
    /// The function name is not registered where the task ran.
    MissingFunction = 1032,
    /// No worker can ever satisfy the request.
    Unschedulable = 1040,
}

impl TaskResult {
    /// Every result, for tables and tests.
    pub(crate) const ALL: [TaskResult; 16] = [
        TaskResult::Success,
        TaskResult::InputMissing,
        TaskResult::OutputMissing,
        TaskResult::StdoutMissing,
        TaskResult::Signal,
        TaskResult::ResourceExhaustion,
        TaskResult::MaxEndTime,
        TaskResult::Unknown,
        TaskResult::Forsaken,
        TaskResult::MaxRetries,
        TaskResult::MaxWallTime,
        TaskResult::FixedLocationMissing,
        TaskResult::Cancelled,
        TaskResult::FunctionError,
        TaskResult::MissingFunction,
        TaskResult::Unschedulable,
    ];

    /// The C value.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The result with C value `code`, if there is one.
    pub fn from_code(code: i32) -> Option<TaskResult> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// A short name, as `vine_result_string` returns it (static, NUL-terminated).
    pub fn name(self) -> &'static CStr {
        match self {
            TaskResult::Success => c"SUCCESS",
            TaskResult::InputMissing => c"INPUT_MISSING",
            TaskResult::OutputMissing => c"OUTPUT_MISSING",
            TaskResult::StdoutMissing => c"STDOUT_MISSING",
            TaskResult::Signal => c"SIGNAL",
            TaskResult::ResourceExhaustion => c"RESOURCE_EXHAUSTION",
            TaskResult::MaxEndTime => c"MAX_END_TIME",
            TaskResult::Unknown => c"UNKNOWN",
            TaskResult::Forsaken => c"FORSAKEN",
            TaskResult::MaxRetries => c"MAX_RETRIES",
            TaskResult::MaxWallTime => c"MAX_WALL_TIME",
            TaskResult::FixedLocationMissing => c"FIXED_LOCATION_MISSING",
            TaskResult::Cancelled => c"CANCELLED",
            TaskResult::FunctionError => c"FUNCTION_ERROR",
            TaskResult::MissingFunction => c"MISSING_FUNCTION",
            TaskResult::Unschedulable => c"UNSCHEDULABLE",
        }
    }
}

/// Where a function task runs: on a warm worker thread, or in a separate process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    /// On a worker thread of the process that runs it.
    Thread,
    /// In a separate process, so a crash costs only the task.
    Process,
}

/// What a task runs.
pub enum Work {
    /// A function registered by name, runnable wherever that name is registered.
    Function {
        /// The registered name (also the task's automatic category).
        name: Arc<CStr>,
        /// The pointer, when the name was registered in this process at creation.
        func: Option<FunctionPtr>,
        /// The input bytes.
        input: Payload,
    },
    /// An unregistered function with a context pointer: local threads only.
    Local {
        /// The function.
        func: FunctionPtr,
        /// Opaque context, passed back to the function.
        context: usize,
        /// The input bytes.
        input: Payload,
    },
    /// A shell command, run by `/bin/sh -c` in a fresh sandbox.
    Command {
        /// The command line.
        command: CString,
    },
}

/// Times of a task, in microseconds since the Unix epoch (0 = not yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// When it was submitted.
    pub submitted: i64,
    /// When its last attempt started.
    pub started: i64,
    /// When it finished.
    pub done: i64,
    /// Microseconds spent executing, summed over attempts.
    pub execute: i64,
}

/// The settings and results most tasks never use.
#[derive(Default)]
pub struct Extra {
    /// Explicit category.
    pub category: Option<Arc<CStr>>,
    /// User tag.
    pub tag: Option<CString>,
    /// Environment for commands: (name, value or None to unset).
    pub env: Vec<(CString, Option<CString>)>,
    /// Minimum running time wanted, seconds (0 = none).
    pub time_min: f64,
    /// Maximum wall time, seconds (0 = none).
    pub time_max: f64,
    /// Declared inputs.
    pub inputs: Vec<Mount>,
    /// Declared outputs.
    pub outputs: Vec<Mount>,
    /// Captured standard output (and error) of a command.
    pub stdout: Option<CString>,
    /// Why it failed, one sentence.
    pub reason: Option<CString>,
    /// Set when a worker refused the task as sent (e.g. a file name escaping the
    /// sandbox): it is reported failed without running.
    pub refused: Option<String>,
    /// Not dispatched before this time, microseconds since the epoch (0 = none).
    pub time_start: i64,
    /// Ended `MaxEndTime` if not done by this time, microseconds since the
    /// epoch (0 = none).
    pub time_end: i64,
    /// Returned `Forsaken` once forsaken more than this many times (None: the
    /// manager's retries bound it instead).
    pub max_forsaken: Option<u32>,
    /// Times it was forsaken so far.
    pub forsaken: u32,
    /// Workers it was taken back from for running slowly there (see
    /// `vine_enable_disconnect_slow_workers`), or that could not keep an input
    /// sent for it: passed over while another worker could run it.
    pub slow_on: Vec<u32>,
    /// Features a worker must offer to run it.
    pub features: Vec<CString>,
    /// What its last attempt used, when it was monitored.
    pub measured: Option<crate::resources::Measured>,
    /// How its resources were chosen by its category (see `manager::categories`).
    pub sizing: crate::resources::Sizing,
    /// What it asked for, when its category chose other resources.
    pub asked: Option<Resources>,
    /// Where the summary of what it measured is written when it ends
    /// (`vine_task_set_monitor_output`).
    pub monitor_output: Option<std::path::PathBuf>,
    /// Bytes of its command's output kept, when its own (a remote worker's
    /// task, told with it); else the worker's setting.
    pub max_stdout: Option<usize>,
}

/// Where a task ran: the worker's host name and address, as
/// `vine_task_get_hostname` and `vine_task_get_addrport` return them.
#[derive(Debug)]
pub struct Place {
    /// The worker's host name.
    pub hostname: CString,
    /// The worker's address and port (`"local"` for the local pool).
    pub addrport: CString,
}

/// Where a task is, as `vine_task_get_state` names it (TaskVine's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Not submitted.
    Initial = 0,
    /// Waiting in the manager for a worker.
    Ready = 1,
    /// Dispatched to a worker.
    Running = 2,
    /// Results at the worker (never reported by vine: results come with the task).
    WaitingRetrieval = 3,
    /// Finished, waiting for `vine_wait`.
    Retrieved = 4,
    /// Returned by `vine_wait`.
    Done = 5,
}

impl State {
    /// The state stored as `v`.
    pub fn from_u8(v: u8) -> State {
        match v {
            1 => State::Ready,
            2 => State::Running,
            3 => State::WaitingRetrieval,
            4 => State::Retrieved,
            5 => State::Done,
            _ => State::Initial,
        }
    }

    /// TaskVine's name for the state.
    pub fn name(self) -> &'static CStr {
        match self {
            State::Initial => c"INITIAL",
            State::Ready => c"READY",
            State::Running => c"RUNNING",
            State::WaitingRetrieval => c"WAITING_RETRIEVAL",
            State::Retrieved => c"RETRIEVED",
            State::Done => c"DONE",
        }
    }
}

/// The largest number of seconds any time setting takes (about 31 years): every
/// such number becomes a deadline, which must stay representable.
pub const MAX_SECONDS: f64 = 1e9;

/// The exit code of a task that has not run to an end that gives one
/// (not run yet, cancelled, refused), as TaskVine reports it.
pub(crate) const NO_EXIT_CODE: i32 = -1;
/// The largest memory or disk, in MB (an exabyte), a task asks for or a pool offers.
pub const MAX_MB: u64 = 1_000_000_000_000;
/// The largest number of gpus a task asks for or a pool offers.
pub const MAX_GPUS: u32 = 1_000_000;

/// Sentinel for "use the manager's max-retries".
pub(crate) const RETRIES_DEFAULT: u32 = u32::MAX;
/// Retries without limit (`vine_task_set_retries(t, 0)`, as in TaskVine): more
/// attempts than a task can ever make.
pub(crate) const RETRIES_UNLIMITED: u32 = u32::MAX - 1;

/// Task flag: the category comes from the function name.
pub(crate) const FLAG_AUTOCATEGORY: u16 = 1;
/// Task flag: cancellation was requested.
pub(crate) const FLAG_CANCELLED: u16 = 2;
/// Task flag: its worker started it (this attempt).
pub(crate) const FLAG_STARTED: u16 = 4;
/// Task flag: run by the manager itself (to make a lost temp again), never returned.
pub(crate) const FLAG_INTERNAL: u16 = 8;
/// Task flag: its worker measures what it uses (`vine_enable_monitoring`, or a
/// category sized from measurements).
pub(crate) const FLAG_MONITOR: u16 = 16;
/// Task flag: measured only, never stopped for using more memory or disk than
/// it was given (`vine_enable_monitoring` without its watchdog).
pub(crate) const FLAG_NO_WATCHDOG: u16 = 32;
/// Task flag: the program set its cores (else they are the default, one core).
pub(crate) const FLAG_SET_CORES: u16 = 64;
/// Task flag: the program set its memory.
pub(crate) const FLAG_SET_MEMORY: u16 = 128;
/// Task flag: the program set its disk.
pub(crate) const FLAG_SET_DISK: u16 = 256;
/// Task flag: the program set its gpus.
pub(crate) const FLAG_SET_GPUS: u16 = 512;
/// Task flag: placed on the local pool by its submitter, not by the manager
/// thread; it goes from the pool straight to the completion queue.
pub(crate) const FLAG_DIRECT: u16 = 1024;
/// A direct task the pool no longer holds and has not yet handed to the
/// completion queue (see `LocalPool::holds_direct`).
pub(crate) const FLAG_DELIVERING: u16 = 2048;
/// Its last worker could not keep an input sent for it (a full disk): its
/// next attempt passes that worker over (see `Scheduler::finished`).
pub(crate) const FLAG_UNKEPT: u16 = 4096;

/// One unit of work and its outcome.
pub struct Task {
    pub(crate) id: TaskId,
    pub(crate) work: Work,
    pub(crate) request: Resources,
    pub(crate) priority: f64,
    pub(crate) max_retries: u32,
    pub(crate) attempts: u32,
    pub(crate) mode: ExecMode,
    pub(crate) flags: u16,
    pub(crate) worker_id: u32,
    pub(crate) result: TaskResult,
    /// The command's exit status, the function's return value or the signal
    /// that ended it; -1 until the task has run to one (as in TaskVine).
    pub(crate) exit_code: i32,
    pub(crate) output: Vec<u8>,
    pub(crate) times: Times,
    /// The address of the C handle that carries this task, 0 for Rust callers.
    pub(crate) handle: usize,
    pub(crate) extra: Option<Box<Extra>>,
    /// The worker its last attempt was given to.
    pub(crate) place: Option<Arc<Place>>,
}

pub(crate) static DEFAULT_CATEGORY: &CStr = c"default";

/// The components of a name in a sandbox, without empty ones and `.`.
fn sandbox_parts(s: &str) -> impl Iterator<Item = &str> {
    s.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// True if two names in a sandbox are one file there, however spelled: `o`,
/// `./o`, `o/` and `a//o` against `a/o` (names with `..` are refused before).
pub(crate) fn same_sandbox_name(a: &str, b: &str) -> bool {
    sandbox_parts(a).eq(sandbox_parts(b))
}

/// Whether sandbox name `inner` lies inside name `outer`: `d/x` in `d`.
pub(crate) fn sandbox_name_within(outer: &str, inner: &str) -> bool {
    let mut inner = sandbox_parts(inner);
    sandbox_parts(outer).all(|o| inner.next() == Some(o)) && inner.next().is_some()
}

impl Task {
    fn new(work: Work) -> Box<Task> {
        Box::new(Task {
            id: 0,
            work,
            request: Resources::DEFAULT_REQUEST,
            priority: 0.0,
            max_retries: RETRIES_DEFAULT,
            attempts: 0,
            mode: ExecMode::Thread,
            flags: 0,
            worker_id: 0,
            result: TaskResult::Unknown,
            exit_code: NO_EXIT_CODE,
            output: Vec::new(),
            times: Times::default(),
            handle: 0,
            extra: None,
            place: None,
        })
    }

    /// A task that calls the function registered as `name` with a copy of `input`.
    pub fn function(name: &CStr, input: &[u8]) -> Box<Task> {
        let (name, func) = crate::registry::lookup_for_task(name);
        Task::new(Work::Function {
            name,
            func,
            input: Payload::copy_from(input),
        })
    }

    /// True if the task can run only in the local pool: a function pointer of
    /// this process, or a function whose input is too large to send to a
    /// remote worker ([`crate::protocol::MAX_TASK_BYTES`]).
    pub(crate) fn local_only(&self) -> bool {
        match &self.work {
            Work::Local { .. } => true,
            Work::Function { input, .. } => {
                input.as_slice().len() > crate::protocol::MAX_TASK_BYTES
            }
            Work::Command { .. } => false,
        }
    }

    /// A task that calls `func(input, len, output, context)` on a local thread.
    pub fn local(func: FunctionPtr, context: usize, input: &[u8]) -> Box<Task> {
        Task::new(Work::Local {
            func,
            context,
            input: Payload::copy_from(input),
        })
    }

    /// A task that runs `command` with `/bin/sh -c`.
    pub fn command(command: &CStr) -> Box<Task> {
        Task::new(Work::Command {
            command: command.to_owned(),
        })
    }

    /// A fresh, unsubmitted copy of what this task runs and needs (not its results).
    pub(crate) fn recipe(&self) -> Box<Task> {
        let work = match &self.work {
            Work::Function { name, func, input } => Work::Function {
                name: name.clone(),
                func: *func,
                input: input.clone(),
            },
            Work::Local {
                func,
                context,
                input,
            } => Work::Local {
                func: *func,
                context: *context,
                input: input.clone(),
            },
            Work::Command { command } => Work::Command {
                command: command.clone(),
            },
        };
        let mut t = Task::new(work);
        t.request = self.request;
        t.priority = self.priority;
        t.max_retries = self.max_retries;
        t.mode = self.mode;
        t.flags = self.flags & FLAG_AUTOCATEGORY;
        if let Some(e) = &self.extra {
            t.extra = Some(Box::new(Extra {
                category: e.category.clone(),
                tag: e.tag.clone(),
                env: e.env.clone(),
                time_min: e.time_min,
                time_max: e.time_max,
                inputs: e.inputs.clone(),
                outputs: e.outputs.clone(),
                time_start: e.time_start,
                time_end: e.time_end,
                max_forsaken: e.max_forsaken,
                features: e.features.clone(),
                ..Extra::default()
            }));
        }
        t
    }

    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// The id given at submission (0 before).
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// What the task runs.
    pub fn work(&self) -> &Work {
        &self.work
    }

    /// True if its environment names `name`: how tests ask the runners for a
    /// fault or a delay (see `VINE_TEST_*`).
    #[cfg(test)]
    pub(crate) fn has_test_env(&self, name: &[u8]) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|e| e.env.iter().any(|(k, _)| k.as_bytes() == name))
    }

    /// What its last attempt used, when it was monitored.
    pub fn measured(&self) -> Option<crate::resources::Measured> {
        self.extra.as_ref().and_then(|e| e.measured)
    }

    /// The resources requested.
    pub fn request(&self) -> Resources {
        self.request
    }

    /// What the program asks for, to change it: the request, unless a
    /// category gave the last attempt other resources; then what the task
    /// asked for before that, which its next submission asks for again.
    pub(crate) fn asked_mut(&mut self) -> &mut Resources {
        match self.extra.as_mut().and_then(|e| e.asked.as_mut()) {
            Some(asked) => asked,
            None => &mut self.request,
        }
    }

    /// What the program asks for (see [`Task::asked_mut`]).
    pub(crate) fn asked(&self) -> Resources {
        self.extra
            .as_ref()
            .and_then(|e| e.asked)
            .unwrap_or(self.request)
    }

    /// Requests `cores` (fractions allowed, in thousandths).
    pub fn set_cores(&mut self, cores: f64) -> Result<()> {
        self.asked_mut().millicores = Resources::millicores_from(cores, false)?;
        self.flags |= FLAG_SET_CORES;
        Ok(())
    }

    /// Requests `mb` MB of memory.
    pub fn set_memory(&mut self, mb: i64) -> Result<()> {
        self.asked_mut().memory_mb = megabytes(mb, "memory")?;
        self.flags |= FLAG_SET_MEMORY;
        Ok(())
    }

    /// Requests `mb` MB of disk.
    pub fn set_disk(&mut self, mb: i64) -> Result<()> {
        self.asked_mut().disk_mb = megabytes(mb, "disk")?;
        self.flags |= FLAG_SET_DISK;
        Ok(())
    }

    /// Requests `gpus` devices.
    pub fn set_gpus(&mut self, gpus: i64) -> Result<()> {
        let n = non_negative(gpus, "gpus")?;
        self.asked_mut().gpus = u32::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_GPUS)
            .ok_or_else(|| {
                Error::invalid(format!("gpus must be at most {MAX_GPUS}, not {gpus}"))
            })?;
        self.flags |= FLAG_SET_GPUS;
        self.default_cores();
        Ok(())
    }

    /// Forgets what the program set for one of cores, memory, disk or gpus
    /// (`flag`: its `FLAG_SET_*`): the task asks for vine's default again.
    pub(crate) fn unset_request(&mut self, flag: u16) {
        self.flags &= !flag;
        match flag {
            FLAG_SET_MEMORY => self.asked_mut().memory_mb = 0,
            FLAG_SET_DISK => self.asked_mut().disk_mb = 0,
            FLAG_SET_GPUS => self.asked_mut().gpus = 0,
            _ => {}
        }
        self.default_cores();
    }

    /// Cores the program did not set: one, or none for a task that asks for
    /// gpus (as TaskVine gives it).
    fn default_cores(&mut self) {
        if self.flags & FLAG_SET_CORES == 0 {
            let asked = self.asked_mut();
            asked.millicores = if asked.gpus > 0 {
                0
            } else {
                Resources::DEFAULT_REQUEST.millicores
            };
        }
    }

    /// Sets the priority: higher runs first.
    pub fn set_priority(&mut self, priority: f64) -> Result<()> {
        if !priority.is_finite() {
            return Err(Error::invalid("priority must be a finite number"));
        }
        // -0.0 is 0.0: equal priorities keep their order.
        self.priority = priority + 0.0;
        Ok(())
    }

    /// The priority.
    pub fn priority(&self) -> f64 {
        self.priority
    }

    /// Sets the category.
    pub fn set_category(&mut self, category: &CStr) -> Result<()> {
        if category.is_empty() {
            return Err(Error::invalid("a category name cannot be empty"));
        }
        // As the calls that set and read a category's settings take it.
        if category.to_str().is_err() {
            return Err(Error::invalid("a category name must be valid UTF-8"));
        }
        self.extra_mut().category = Some(Arc::from(category));
        Ok(())
    }

    /// The category when it is not the default one: explicit, else the function
    /// name under autocategory.
    pub(crate) fn category_named(&self) -> Option<&Arc<CStr>> {
        if let Some(c) = self.extra.as_ref().and_then(|e| e.category.as_ref()) {
            return Some(c);
        }
        match &self.work {
            Work::Function { name, .. } if self.flags & FLAG_AUTOCATEGORY != 0 => Some(name),
            _ => None,
        }
    }

    /// The category as a shared string, `None` for the default one: what a C
    /// handle keeps while the task is submitted, without a copy.
    pub(crate) fn category_shared(&self) -> Option<Arc<CStr>> {
        self.category_named().cloned()
    }

    /// The category of a task that names none.
    pub(crate) fn default_category() -> &'static CStr {
        DEFAULT_CATEGORY
    }

    /// The category: explicit, else the function name under autocategory, else
    /// "default".
    pub fn category(&self) -> &CStr {
        self.category_named().map_or(DEFAULT_CATEGORY, |c| c)
    }

    /// Sets the tag.
    pub fn set_tag(&mut self, tag: &CStr) {
        self.extra_mut().tag = Some(tag.to_owned());
    }

    /// The tag, if set.
    pub fn tag(&self) -> Option<&CStr> {
        self.extra.as_ref().and_then(|e| e.tag.as_deref())
    }

    /// Sets the minimum running time wanted (seconds; 0 = none).
    pub fn set_time_min(&mut self, seconds: f64) -> Result<()> {
        self.extra_mut().time_min = seconds_setting(seconds, "time_min")?;
        Ok(())
    }

    /// Measures the task and writes what it used into directory `dir` when
    /// it ends (the manager's `summary` module).
    pub fn set_monitor_output(&mut self, dir: &std::path::Path) -> Result<()> {
        if dir.as_os_str().is_empty() {
            return Err(Error::invalid("the monitor output directory is empty"));
        }
        self.extra_mut().monitor_output = Some(dir.to_path_buf());
        Ok(())
    }

    /// Where its summary goes when it ends, if anywhere.
    pub fn monitor_output(&self) -> Option<&std::path::Path> {
        self.extra.as_ref()?.monitor_output.as_deref()
    }

    /// Sets the maximum wall time (seconds; 0 = none).
    pub fn set_time_max(&mut self, seconds: f64) -> Result<()> {
        self.extra_mut().time_max = seconds_setting(seconds, "time_max")?;
        Ok(())
    }

    /// The minimum running time wanted in seconds, 0 for none.
    pub fn time_min(&self) -> f64 {
        self.extra.as_ref().map_or(0.0, |e| e.time_min)
    }

    /// The maximum wall time in seconds, 0 for none.
    pub fn time_max(&self) -> f64 {
        self.extra.as_ref().map_or(0.0, |e| e.time_max)
    }

    /// Replaces the command line of a command task.
    pub fn set_command(&mut self, command: &CStr) -> Result<()> {
        match &mut self.work {
            Work::Command { command: c } => {
                *c = command.to_owned();
                Ok(())
            }
            _ => Err(Error::invalid(
                "only a command task has a command; this one calls a function",
            )),
        }
    }

    /// Sets the earliest time the task may be dispatched, microseconds since the
    /// epoch; less than 1: none.
    pub fn set_time_start(&mut self, us: i64) {
        self.extra_mut().time_start = us.max(0);
    }

    /// Sets the time by which the task must be done, microseconds since the
    /// epoch; less than 1: none.
    pub fn set_time_end(&mut self, us: i64) {
        self.extra_mut().time_end = us.max(0);
    }

    /// The earliest dispatch time, microseconds since the epoch (0 = none).
    pub fn time_start(&self) -> i64 {
        self.extra.as_ref().map_or(0, |e| e.time_start)
    }

    /// The end time, microseconds since the epoch (0 = none).
    pub fn time_end(&self) -> i64 {
        self.extra.as_ref().map_or(0, |e| e.time_end)
    }

    /// Sets how many times the task may be forsaken (given back by a worker that
    /// did not run it to completion, through no fault of its own) before it is
    /// returned `Forsaken`; negative: no limit of its own (the default). A
    /// count past `u32::MAX` is held there: more than any run sees.
    pub fn set_max_forsaken(&mut self, n: i64) {
        self.extra_mut().max_forsaken = (n >= 0).then(|| u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Requires a worker that offers `feature`.
    pub fn add_feature(&mut self, feature: &CStr) -> Result<()> {
        if feature.is_empty() {
            return Err(Error::invalid("a feature name cannot be empty"));
        }
        let f = &mut self.extra_mut().features;
        if !f.iter().any(|x| x.as_c_str() == feature) {
            f.push(feature.to_owned());
        }
        Ok(())
    }

    /// The features a worker must offer to run the task.
    pub fn features(&self) -> &[CString] {
        self.extra.as_ref().map_or(&[], |e| &e.features)
    }

    /// Where the last attempt was given, if it was.
    pub fn place(&self) -> Option<&Place> {
        self.place.as_deref()
    }

    /// Records where the task is now (for `vine_task_get_state`).
    pub(crate) fn publish_state(&self, state: State) {
        if self.handle != 0 {
            crate::ffi::handles::publish_state(self.handle, state);
        }
    }

    /// Sets how many times the task is re-run after failures that are not its
    /// own; 0: without limit, as in TaskVine.
    pub fn set_retries(&mut self, retries: i64) -> Result<()> {
        let n = non_negative(retries, "retries")?;
        self.max_retries = match u32::try_from(n) {
            Ok(0) => RETRIES_UNLIMITED,
            Ok(n) if n < RETRIES_UNLIMITED => n,
            _ => return Err(Error::invalid("too many retries")),
        };
        Ok(())
    }

    /// Sets (or, with `None`, unsets) an environment variable for a command.
    pub fn set_env_var(&mut self, name: &CStr, value: Option<&CStr>) -> Result<()> {
        let bytes = name.to_bytes();
        if bytes.is_empty() || bytes.contains(&b'=') {
            return Err(Error::invalid(
                "an environment variable name must be non-empty and have no '='",
            ));
        }
        let env = &mut self.extra_mut().env;
        env.retain(|(n, _)| n.as_c_str() != name);
        env.push((name.to_owned(), value.map(CStr::to_owned)));
        Ok(())
    }

    /// Chooses thread or process execution for a function task.
    pub fn set_exec_mode(&mut self, mode: ExecMode) -> Result<()> {
        if mode == ExecMode::Process && matches!(self.work, Work::Command { .. }) {
            return Err(Error::invalid("commands always run in their own processes"));
        }
        self.mode = mode;
        Ok(())
    }

    /// Adds a declared input.
    pub fn add_input(&mut self, mount: Mount) -> Result<()> {
        self.check_mount(&mount)?;
        use crate::files::{MOUNT_FAILURE_ONLY, MOUNT_SUCCESS_ONLY, MOUNT_WATCH};
        if mount.flags & (MOUNT_WATCH | MOUNT_FAILURE_ONLY | MOUNT_SUCCESS_ONLY) != 0 {
            return Err(Error::invalid(format!(
                "input {:?}: VINE_WATCH, VINE_FAILURE_ONLY and VINE_SUCCESS_ONLY are for outputs",
                mount.remote_name
            )));
        }
        // Inputs are placed in order, a later one replacing what is at its
        // name: one around an earlier one would silently remove it, and one
        // inside a file could never be placed.
        let inputs = self.extra.as_ref().map_or(&[][..], |e| &e.inputs[..]);
        for earlier in inputs {
            if sandbox_name_within(&mount.remote_name, &earlier.remote_name) {
                return Err(Error::invalid(format!(
                    "input {:?} would replace input {:?}, added before it inside it: \
                     add {:?} first",
                    mount.remote_name, earlier.remote_name, mount.remote_name
                )));
            }
            let is_file = match earlier.file.kind() {
                crate::files::FileKind::Buffer => true,
                crate::files::FileKind::Path(p) => std::fs::metadata(p).is_ok_and(|m| !m.is_dir()),
                _ => false,
            };
            if is_file && sandbox_name_within(&earlier.remote_name, &mount.remote_name) {
                return Err(Error::invalid(format!(
                    "input {:?} would be inside input {:?}, which is not a directory",
                    mount.remote_name, earlier.remote_name
                )));
            }
            let linked = earlier.flags & crate::files::MOUNT_SYMLINK != 0;
            if linked && sandbox_name_within(&earlier.remote_name, &mount.remote_name) {
                return Err(Error::invalid(format!(
                    "input {:?} would be inside input {:?}, which is linked \
                     (VINE_MOUNT_SYMLINK), not copied: nothing may be placed in it",
                    mount.remote_name, earlier.remote_name
                )));
            }
        }
        self.extra_mut().inputs.push(mount);
        Ok(())
    }

    /// Adds a declared output.
    pub fn add_output(&mut self, mount: Mount) -> Result<()> {
        self.check_mount(&mount)?;
        use crate::files::{
            MOUNT_FAILURE_ONLY, MOUNT_FIXED_LOCATION, MOUNT_RESEND, MOUNT_SUCCESS_ONLY,
            MOUNT_SYMLINK,
        };
        if mount.flags & (MOUNT_SYMLINK | MOUNT_FIXED_LOCATION | MOUNT_RESEND) != 0 {
            return Err(Error::invalid(format!(
                "output {:?}: VINE_MOUNT_SYMLINK, VINE_FIXED_LOCATION and VINE_MOUNT_RESEND \
                 are for inputs",
                mount.remote_name
            )));
        }
        let both = MOUNT_FAILURE_ONLY | MOUNT_SUCCESS_ONLY;
        if mount.flags & both == both {
            return Err(Error::invalid(format!(
                "output {:?}: VINE_FAILURE_ONLY and VINE_SUCCESS_ONLY together would never \
                 return it",
                mount.remote_name
            )));
        }
        // Refused now rather than when the task ran: nothing could receive it.
        if matches!(
            mount.file.kind(),
            crate::files::FileKind::Url(_) | crate::files::FileKind::MiniTask { .. }
        ) {
            return Err(Error::invalid(format!(
                "output {:?}: a URL or mini-task file is made at workers from its source \
                 and cannot be an output (declare a file, buffer or temp)",
                mount.remote_name
            )));
        }
        // Two outputs into one file: one would silently overwrite the other.
        let same = |m: &Mount| {
            m.file.id() == mount.file.id()
                || matches!(
                    (m.file.kind(), mount.file.kind()),
                    (crate::files::FileKind::Path(a), crate::files::FileKind::Path(b))
                        if crate::files::same_destination(a, b)
                )
        };
        if let Some(m) = self
            .extra
            .as_ref()
            .and_then(|e| e.outputs.iter().find(|m| same(m)))
        {
            return Err(Error::invalid(format!(
                "output {:?} goes to the same file as output {:?} of this task",
                mount.remote_name, m.remote_name
            )));
        }
        // An output is moved out of the sandbox whole: one inside another
        // would go with it, and taking it first would empty the other.
        let outputs = self.extra.as_ref().map_or(&[][..], |e| &e.outputs[..]);
        if let Some(m) = outputs.iter().find(|m| {
            sandbox_name_within(&m.remote_name, &mount.remote_name)
                || sandbox_name_within(&mount.remote_name, &m.remote_name)
        }) {
            return Err(Error::invalid(format!(
                "output {:?} and output {:?} of this task would be one inside the other: \
                 an output is taken whole, so declare only the outer one",
                mount.remote_name, m.remote_name
            )));
        }
        self.extra_mut().outputs.push(mount);
        Ok(())
    }

    fn check_mount(&self, mount: &Mount) -> Result<()> {
        if !matches!(self.work, Work::Command { .. }) {
            return Err(Error::new(
                crate::error::ErrorKind::Unsupported,
                "files are inputs and outputs of command tasks; function tasks take bytes",
            ));
        }
        if let Some(e) = &self.extra {
            if e.inputs
                .iter()
                .chain(e.outputs.iter())
                .any(|m| same_sandbox_name(&m.remote_name, &mount.remote_name))
            {
                return Err(Error::invalid(format!(
                    "the task already has a file named {:?}",
                    mount.remote_name
                )));
            }
        }
        Ok(())
    }

    /// How it ended.
    pub fn result(&self) -> TaskResult {
        self.result
    }

    /// The function's return value or the command's exit status.
    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }

    /// The bytes the function appended to its output buffer.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// What the command printed, if it was a command that ran.
    pub fn stdout(&self) -> Option<&CStr> {
        self.extra.as_ref().and_then(|e| e.stdout.as_deref())
    }

    /// Why it failed, one sentence.
    pub fn reason(&self) -> Option<&CStr> {
        self.extra.as_ref().and_then(|e| e.reason.as_deref())
    }

    /// The times of the task.
    pub fn times(&self) -> Times {
        self.times
    }

    /// The id of the worker that ran the last attempt.
    pub fn worker_id(&self) -> u32 {
        self.worker_id
    }

    /// Attempts beyond the first that count against the task's retries: with a
    /// `max_forsaken` of its own, the attempts its workers gave back (forsaken,
    /// lost) do not.
    pub fn retries_used(&self) -> u32 {
        let forsaken = self
            .extra
            .as_ref()
            .filter(|e| e.max_forsaken.is_some())
            .map_or(0, |e| e.forsaken);
        self.attempts.saturating_sub(1).saturating_sub(forsaken)
    }

    /// The exec mode.
    pub fn exec_mode(&self) -> ExecMode {
        self.mode
    }

    /// Records the outcome: `result`, and a reason sentence when it is a failure.
    pub(crate) fn finish(&mut self, result: TaskResult, reason: Option<String>) {
        self.result = result;
        if let Some(reason) = reason {
            let reason = CString::new(reason.replace('\0', " ")).unwrap_or_default();
            self.extra_mut().reason = Some(reason);
        }
    }

    /// Forgets the outcome of a failed attempt before it runs again.
    pub(crate) fn reset_for_retry(&mut self) {
        self.flags &= !FLAG_STARTED;
        self.result = TaskResult::Unknown;
        self.exit_code = NO_EXIT_CODE;
        self.output.clear();
        if let Some(e) = self.extra.as_mut() {
            e.stdout = None;
            e.reason = None;
        }
    }

    /// Forgets everything an earlier submission left (its outcome, attempts,
    /// times, where it ran, what it measured), so that a task submitted again
    /// starts as a fresh one with the same settings.
    pub(crate) fn reset_for_submit(&mut self) {
        self.reset_for_retry();
        // What the program set stays; what the manager decided goes (the
        // automatic category is decided again at submission).
        self.flags &= FLAG_SET_CORES | FLAG_SET_MEMORY | FLAG_SET_DISK | FLAG_SET_GPUS;
        self.attempts = 0;
        self.worker_id = 0;
        self.times = Times::default();
        self.place = None;
        if let Some(e) = self.extra.as_mut() {
            e.refused = None;
            e.forsaken = 0;
            e.slow_on = Vec::new();
            e.measured = None;
            if let Some(asked) = e.asked.take() {
                self.request = asked;
            }
            e.sizing = crate::resources::Sizing::Asked;
        }
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.flags & FLAG_CANCELLED != 0
    }

    /// True if a worker started this attempt (false: returned before it ran).
    pub(crate) fn was_started(&self) -> bool {
        self.flags & FLAG_STARTED != 0
    }
}

fn non_negative(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::invalid(format!("{what} cannot be negative ({v})")))
}

fn megabytes(v: i64, what: &str) -> Result<u64> {
    let mb = non_negative(v, what)?;
    if mb > MAX_MB {
        return Err(Error::invalid(format!(
            "{what} must be at most {MAX_MB} MB, not {v}"
        )));
    }
    Ok(mb)
}

fn seconds_setting(seconds: f64, what: &str) -> Result<f64> {
    if !seconds.is_finite() || !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(Error::invalid(format!(
            "{what} must be a number of seconds from 0 to {MAX_SECONDS:e}, not {}",
            crate::error::Shown(seconds)
        )));
    }
    Ok(seconds)
}

/// Microseconds since the Unix epoch (0 for a clock set before it).
// `time_t` and `long` are i64 here, not on every target.
#[allow(clippy::useless_conversion)]
pub(crate) fn now_us() -> i64 {
    // Read straight from the system clock: called two or three times for every
    // task (submitted, started, done), where `SystemTime`'s checked difference
    // and normalisation cost more than the read itself.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the local struct it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 || ts.tv_sec < 0 {
        return 0;
    }
    i64::from(ts.tv_sec)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.tv_nsec) / 1000)
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("category", &self.category())
            .field("request", &self.request)
            .field("result", &self.result)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn sandbox_names_are_compared_by_their_components() {
        assert!(same_sandbox_name("a//o/", "./a/o"));
        assert!(!same_sandbox_name("a/o", "a"));
        for (outer, inner) in [("d", "d/x"), ("./d/", "d//x/y"), ("d/e", "d/e/f")] {
            assert!(sandbox_name_within(outer, inner), "{inner} in {outer}");
        }
        for (outer, inner) in [("d", "d"), ("d/x", "d"), ("d", "dx/y"), ("d/e", "d/f/g")] {
            assert!(!sandbox_name_within(outer, inner), "{inner} not in {outer}");
        }
    }

    #[test]
    fn a_common_task_stays_small() {
        // The per-queued-task memory budget depends on this.
        assert!(
            std::mem::size_of::<Task>() <= 200,
            "{}",
            std::mem::size_of::<Task>()
        );
    }

    #[test]
    fn attempts_given_back_count_against_the_retries_only_without_a_max_forsaken() {
        let mut t = Task::command(c"true");
        t.attempts = 3;
        t.extra_mut().forsaken = 2;
        assert_eq!(t.retries_used(), 2, "no max_forsaken: every attempt counts");
        t.set_max_forsaken(5);
        assert_eq!(t.retries_used(), 0, "forsaken attempts do not count");
    }

    #[test]
    fn now_us_is_the_system_clock_in_microseconds() {
        let us = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
        };
        let before = us(std::time::SystemTime::now());
        let now = now_us();
        let after = us(std::time::SystemTime::now());
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }

    #[test]
    fn result_codes_round_trip_and_have_names() {
        for r in TaskResult::ALL {
            assert_eq!(TaskResult::from_code(r.code()), Some(r));
            assert!(!r.name().is_empty());
        }
        assert_eq!(TaskResult::from_code(12345), None);
    }

    #[test]
    fn settings_refuse_bad_values_and_keep_the_old_ones() {
        let mut t = Task::command(c"true");
        assert!(t.set_memory(-1).is_err());
        assert!(t.set_priority(f64::INFINITY).is_err());
        assert!(t.set_time_max(-3.0).is_err());
        assert!(t.set_env_var(c"A=B", None).is_err());
        assert_eq!(t.request(), Resources::DEFAULT_REQUEST);
        for v in [1e300, 1e19, f64::NAN, f64::INFINITY, -1.0] {
            assert!(t.set_time_max(v).is_err(), "time_max {v}");
            assert!(t.set_time_min(v).is_err(), "time_min {v}");
            assert!(t.set_cores(v).is_err(), "cores {v}");
        }
        assert!(t.set_priority(f64::NAN).is_err());
        assert!(t.set_memory(i64::MAX).is_err() && t.set_disk(i64::MAX).is_err());
        assert!(t.set_gpus(i64::from(i32::MAX)).is_err());
        assert_eq!(t.time_max(), 0.0);
        t.set_time_max(MAX_SECONDS).unwrap();
        t.set_memory(MAX_MB as i64).unwrap();
        t.request.memory_mb = 0;
        t.set_env_var(c"X", Some(c"1")).unwrap();
        t.set_env_var(c"X", Some(c"2")).unwrap();
        assert_eq!(t.extra.as_ref().unwrap().env.len(), 1);
    }

    #[test]
    fn two_outputs_into_one_file_are_refused() {
        use crate::files::{CacheLevel, File, Mount};
        let dir = std::env::temp_dir().join("vine-task-test-out");
        let (a, b) = (
            File::path(&dir, CacheLevel::Task, 0).unwrap(),
            File::path(&dir, CacheLevel::Task, 0).unwrap(),
        );
        let other = File::buffer(b"", CacheLevel::Task, 0).unwrap();
        let mut t = Task::command(c"true");
        t.add_output(Mount::new(a.clone(), "x", 0).unwrap())
            .unwrap();
        // The same file again, or another declared at the same path.
        assert!(t
            .add_output(Mount::new(a.clone(), "y", 0).unwrap())
            .is_err());
        assert!(t.add_output(Mount::new(b, "z", 0).unwrap()).is_err());
        // An input and an output of one file, and other files, are fine.
        t.add_input(Mount::new(a, "in", 0).unwrap()).unwrap();
        t.add_output(Mount::new(other, "w", 0).unwrap()).unwrap();
        assert_eq!(t.extra.as_ref().unwrap().outputs.len(), 2);
        // Other spellings of one path: through "..", through a link to its
        // directory, and relative to the working directory.
        let root = std::env::temp_dir().join(format!("vine-task-test-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let _ = std::fs::remove_file(root.join("link"));
        std::os::unix::fs::symlink(root.join("sub"), root.join("link")).unwrap();
        let here = std::env::current_dir().unwrap();
        for (one, other) in [
            (root.join("same"), root.join("sub/../same")),
            (root.join("sub/same"), root.join("link/same")),
            (here.join("vine-task-test-out"), "vine-task-test-out".into()),
        ] {
            let mut t = Task::command(c"true");
            let f = |p: &std::path::Path| File::path(p, CacheLevel::Task, 0).unwrap();
            t.add_output(Mount::new(f(&one), "x", 0).unwrap()).unwrap();
            assert!(
                t.add_output(Mount::new(f(&other), "y", 0).unwrap())
                    .is_err(),
                "{} and {} are one file",
                one.display(),
                other.display()
            );
        }
        let mut t = Task::command(c"true");
        let f = |p: std::path::PathBuf| File::path(&p, CacheLevel::Task, 0).unwrap();
        t.add_output(Mount::new(f(root.join("sub/a")), "x", 0).unwrap())
            .unwrap();
        t.add_output(Mount::new(f(root.join("sub/b")), "y", 0).unwrap())
            .unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn category_defaults() {
        let t = Task::command(c"true");
        assert_eq!(t.category(), c"default");
        let mut f = Task::function(c"some_function", b"");
        assert_eq!(f.category(), c"default");
        f.flags |= FLAG_AUTOCATEGORY;
        assert_eq!(f.category(), c"some_function");
        f.set_category(c"mine").unwrap();
        assert_eq!(f.category(), c"mine");
    }
}
