//! How C holds the library's objects, and how a C pointer becomes one again.
//!
//! - A manager is an `Arc<Manager>`; C holds a handle for it (see [`fresh_handle`]).
//!   Live managers are listed in a registry, so a deleted (or never created) manager
//!   is an error, not a crash, and a call still running when another thread deletes
//!   it keeps it alive.
//! - A task is a `TaskHandle` box; C holds its address from creation to
//!   `vine_task_delete`. The `Box<Task>` inside moves to the manager at submission and
//!   back at `vine_wait`; the handle's `owner` says who has it, so touching a
//!   submitted task is an error instead of a data race. What cannot change while
//!   the manager has it (command, tag, category, id) is copied into the handle at
//!   submission, so C reads those from the handle without touching the task.
//! - A file is an `Arc<File>` owned by its manager; C holds a handle for it. Live
//!   files are listed in a registry, cleared when their manager is deleted; so are
//!   factories.
//! - A manager's, file's or factory's handle is never given twice in a process,
//!   unlike an address the allocator may hand out again: a handle kept after its
//!   object was deleted stays an error even once another object is made.

use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::resources::vine_resources;
use super::{vine_factory, vine_file, vine_manager, vine_task};
use crate::error::{Error, ErrorKind, Result};
use crate::files::File;
use crate::manager::factory::Factory;
use crate::manager::Manager;
use crate::task::Task;

/// Handles given so far (see [`fresh_handle`]).
static HANDLES_GIVEN: AtomicUsize = AtomicUsize::new(0);

/// The handle numbered `n`: 16-byte steps from 1 MiB: aligned, never NULL, and
/// it takes 2^60 handles to run out.
fn nth_handle(n: usize) -> usize {
    (1 << 20) + n.saturating_mul(16)
}

/// A handle C holds for a manager, file or factory: an address no other handle
/// of this process had or will have, and never memory (C never reads through it;
/// it is looked up in the registries).
fn fresh_handle() -> usize {
    // This process's registries exist before it gives a handle of its own, so
    // that each knows which handles it inherited (see `Generation`).
    let _ = (managers(), files(), factories());
    nth_handle(HANDLES_GIVEN.fetch_add(1, Ordering::Relaxed))
}

/// A registry of this process, made anew in a `fork()`ed child: the parent's
/// lock may have been held at the fork by a thread the child does not have, and
/// would then stay held there for good. The child's registry starts empty; the
/// parent's is left as it was (its managers' threads are not in the child, so
/// nothing of them may be freed or waited for there).
struct PerFork<T> {
    now: std::sync::atomic::AtomicPtr<Generation<T>>,
}

struct Generation<T> {
    /// `crate::worker::isolated::forks()` when it was made.
    forks: u64,
    /// Handles below this one were given before this process was forked (or
    /// none: in the process that never was).
    inherited_below: usize,
    value: T,
}

impl<T: Default> PerFork<T> {
    const fn new() -> Self {
        PerFork {
            now: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// This process's registry.
    fn get(&self) -> &Generation<T> {
        let forks = crate::worker::isolated::forks();
        loop {
            let at = self.now.load(Ordering::Acquire);
            // SAFETY: a registry once published is never freed (see below).
            if let Some(g) = unsafe { at.as_ref() } {
                if g.forks == forks {
                    return g;
                }
            }
            let fresh = Box::into_raw(Box::new(Generation {
                forks,
                inherited_below: if forks == 0 {
                    0
                } else {
                    nth_handle(HANDLES_GIVEN.load(Ordering::Relaxed))
                },
                value: T::default(),
            }));
            match self
                .now
                .compare_exchange(at, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The one replaced, if any, is the parent's: left as it is, never
                // freed, as references to it may be held.
                // SAFETY: just published, never freed.
                Ok(_) => return unsafe { &*fresh },
                Err(_) => {
                    // SAFETY: made above and never published.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

impl<T> Generation<T> {
    /// The error for `handle` of a `what`, not in this registry: made before
    /// this process was forked, or not live.
    fn missing(&self, handle: usize, what: &str, not_live: &str) -> Error {
        if handle < self.inherited_below {
            return Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{what} was made before this process was forked: it belongs to the parent \
                     (its threads are not in this process); make a new one here"
                ),
            );
        }
        Error::new(ErrorKind::InvalidHandle, not_live)
    }
}

/// Live managers, each with its handle. A registry holds only managers made in
/// its own process (see [`PerFork`]): one made before a fork is not in the
/// child's, and is refused there as the parent's.
type Managers = Vec<(usize, Arc<Manager>)>;

fn managers() -> &'static Generation<RwLock<Managers>> {
    static LIVE: PerFork<RwLock<Managers>> = PerFork::new();
    LIVE.get()
}

/// Live factories by handle, each with its manager's handle.
type Factories = BTreeMap<usize, (usize, Arc<Factory>)>;

fn factories() -> &'static Generation<Mutex<Factories>> {
    static LIVE: PerFork<Mutex<Factories>> = PerFork::new();
    LIVE.get()
}

/// Whether manager `m` is still in the registry (`vine_delete` takes it out
/// before it forgets the files and factories it finds).
fn manager_listed(m: *const vine_manager) -> bool {
    managers()
        .value
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(h, _)| *h == m as usize)
}

/// Registers factory `f` of manager `m`; the pointer C will hold. An error if
/// `vine_delete` took `m` out of the registry meanwhile (it forgets the
/// factories it finds, and this one it might not have found).
pub(crate) fn factory_into_c(m: *const vine_manager, f: Arc<Factory>) -> Result<*mut vine_factory> {
    let handle = fresh_handle();
    factories()
        .value
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(handle, (m as usize, f));
    if !manager_listed(m) {
        factory_remove(handle as *const vine_factory);
        return Err(Error::new(
            ErrorKind::InvalidHandle,
            "the manager was deleted while the factory was created",
        ));
    }
    Ok(handle as *mut vine_factory)
}

/// The live factory at `f`, with its manager's address.
pub(crate) fn factory(f: *const vine_factory) -> Result<(*mut vine_manager, Arc<Factory>)> {
    if f.is_null() {
        return Err(super::boundary::null("the factory"));
    }
    not_in_child("a factory")?;
    let live = factories();
    let (m, f) = live
        .value
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(f as usize))
        .map(|(m, f)| (*m as *mut vine_manager, f.clone()))
        .ok_or_else(|| {
            live.missing(
                f as usize,
                "the factory",
                "not a live factory (deleted already, or its manager was?)",
            )
        })?;
    // Usable where its manager is (not in a process forked since).
    manager(m)?;
    Ok((m, f))
}

/// Forgets factory `f`; false if it was not live.
pub(crate) fn factory_remove(f: *const vine_factory) -> bool {
    factories()
        .value
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(f as usize))
        .is_some()
}

/// Forgets every factory of manager `m`.
pub(crate) fn factories_forget(m: *const vine_manager) {
    factories()
        .value
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|_, (owner, _)| *owner != m as usize);
}

/// Live files by handle, and each one's handle by its address.
#[derive(Default)]
struct Files {
    by_handle: BTreeMap<usize, Arc<File>>,
    handle_of: BTreeMap<usize, usize>,
}

fn files() -> &'static Generation<Mutex<Files>> {
    static LIVE: PerFork<Mutex<Files>> = PerFork::new();
    LIVE.get()
}

/// Makes a manager with `make`, registers it and returns the pointer C will hold.
pub(crate) fn manager_into_c(make: impl FnOnce() -> Result<Manager>) -> Result<*mut vine_manager> {
    not_in_child("a manager")?;
    crate::worker::isolated::count_forks();
    let m = make()?;
    super::logs::flush_at_exit();
    let handle = fresh_handle();
    managers()
        .value
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .push((handle, Arc::new(m)));
    Ok(handle as *mut vine_manager)
}

/// Refused in a PROCESS function's process: the manager's threads are not
/// there, and a lock another thread held at the fork stays held.
pub(crate) fn not_in_child(what: &str) -> Result<()> {
    if crate::worker::isolated::in_child() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "a VINE_EXEC_PROCESS function runs in a process of its own, where {what} \
                 cannot be used: run it as VINE_EXEC_THREAD to call the manager"
            ),
        ));
    }
    Ok(())
}

/// The live manager at `m`.
pub(crate) fn manager(m: *const vine_manager) -> Result<Arc<Manager>> {
    if m.is_null() {
        return Err(super::boundary::null("the manager"));
    }
    not_in_child("the manager")?;
    let registry = managers();
    let live = registry.value.read().unwrap_or_else(|p| p.into_inner());
    let (_, a) = live.iter().find(|(h, _)| *h == m as usize).ok_or_else(|| {
        registry.missing(
            m as usize,
            "the manager",
            "not a live manager (deleted already?)",
        )
    })?;
    Ok(a.clone())
}

/// The live managers of this process, for the exit hook; none if another
/// thread holds the registry for writing (the hook does not wait for it).
pub(crate) fn live_managers() -> Vec<Arc<Manager>> {
    match managers().value.try_read() {
        Ok(live) => live.iter().map(|(_, m)| m.clone()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Removes the manager at `m` from the registry; it is freed when the last call
/// using it returns.
pub(crate) fn manager_remove(m: *const vine_manager) -> Result<Arc<Manager>> {
    let registry = managers();
    let mut live = registry.value.write().unwrap_or_else(|p| p.into_inner());
    let at = live
        .iter()
        .position(|(h, _)| *h == m as usize)
        .ok_or_else(|| {
            registry.missing(
                m as usize,
                "the manager",
                "not a live manager (deleted already?)",
            )
        })?;
    // In a forked child the parent's manager is not in this registry, so it
    // stays: its drop would wait for threads that are not here.
    let (_, m) = live.swap_remove(at);
    if live.is_empty() {
        // Nothing of the registry outlives the last manager (a leak checker
        // run at exit finds no block of the library's at all).
        *live = Vec::new();
    }
    Ok(m)
}

/// Registers a file declared by a manager and returns the pointer C will hold.
/// The same file registered again keeps its handle.
pub(crate) fn file_into_c(f: Arc<File>) -> *mut vine_file {
    let mut live = files().value.lock().unwrap_or_else(|p| p.into_inner());
    let at = Arc::as_ptr(&f) as usize;
    if let Some(&h) = live.handle_of.get(&at) {
        return h as *mut vine_file;
    }
    let handle = fresh_handle();
    live.handle_of.insert(at, handle);
    live.by_handle.insert(handle, f);
    handle as *mut vine_file
}

/// Declares `f` to manager `m`, whose handle is `at`, and gives C a handle
/// for it. A manager `vine_delete` takes away meanwhile forgets the files it
/// had when it went; a file declared after that is forgotten here, and the
/// call fails, rather than outlive its manager.
pub(crate) fn declare_into_c(
    at: *const vine_manager,
    m: &Manager,
    f: Arc<File>,
) -> Result<*mut vine_file> {
    let f = m.declare(f);
    let handle = file_into_c(f.clone());
    if !manager_listed(at) {
        files_forget(&[f]);
        return Err(Error::new(
            ErrorKind::InvalidHandle,
            "the manager was deleted while the file was declared",
        ));
    }
    Ok(handle)
}

/// The live file at `f`.
pub(crate) fn file(f: *const vine_file) -> Result<Arc<File>> {
    if f.is_null() {
        return Err(super::boundary::null("the file"));
    }
    not_in_child("a file")?;
    let registry = files();
    let found = registry
        .value
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .by_handle
        .get(&(f as usize))
        .cloned();
    found.ok_or_else(|| {
        registry.missing(
            f as usize,
            "the file",
            "not a file declared by a live manager",
        )
    })
}

/// Forgets the files of a manager being deleted.
pub(crate) fn files_forget(list: &[Arc<File>]) {
    let mut live = files().value.lock().unwrap_or_else(|p| p.into_inner());
    for f in list {
        if let Some(h) = live.handle_of.remove(&(Arc::as_ptr(f) as usize)) {
            live.by_handle.remove(&h);
        }
    }
}

const OWNER_CALLER: u8 = 1;
const OWNER_MANAGER: u8 = 2;
/// `vine_submit` has handed the task to the manager and has not yet recorded its
/// id in the handle: the task may already be finished, but the handle is not
/// given back (nor freed) until the id is there.
const OWNER_SUBMITTING: u8 = 3;
/// A mini task: its file owns it for good (see `task_take_for_file`).
const OWNER_FILE: u8 = 4;

/// What a `struct vine_task *` points to.
pub(crate) struct TaskHandle {
    owner: AtomicU8,
    id: AtomicI32,
    /// Accessed only by the thread that owns the handle: the caller while `owner` is
    /// CALLER, the code moving the task in or out while it is MANAGER.
    task: UnsafeCell<Option<Box<Task>>>,
    /// The task's immutable strings as of its last submission, read by the caller
    /// while the manager owns the task. Written only by `vine_submit`.
    fields: Mutex<Fields>,
    /// Where the task is (a `task::State`), written by whoever moves it along.
    state: AtomicU8,
    /// What `vine_task_get_resources` returned ("measured", "allocated",
    /// "requested"): kept here so the pointers stay valid; used by the caller only.
    summaries: UnsafeCell<Option<Box<[vine_resources; 3]>>>,
}

/// A task's strings that the manager never changes. Small, since every handle
/// has it: the category is shared with the task (`None`: the default one), and
/// the command and tag, which most function tasks lack, are boxed.
struct Fields {
    category: Option<Arc<std::ffi::CStr>>,
    strings: Option<Box<Strings>>,
}

/// A submitted task's command and tag, if it has either.
struct Strings {
    command: Option<CString>,
    tag: Option<CString>,
}

/// Which of a task's immutable strings to read.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Command,
    Tag,
    Category,
}

fn field_of(task: &Task, field: Field) -> *const c_char {
    match field {
        Field::Command => match task.work() {
            crate::task::Work::Command { command } if !command.is_empty() => command.as_ptr(),
            _ => std::ptr::null(),
        },
        Field::Tag => task.tag().map_or(std::ptr::null(), |s| s.as_ptr()),
        Field::Category => task.category().as_ptr(),
    }
}

/// One of the task's immutable strings (NULL if it has none), whoever owns the
/// task: from the task while the caller owns it, else from the copy made at
/// submission (valid until the task is submitted again or deleted).
pub(crate) fn task_field(t: *const vine_task, field: Field) -> Result<*const c_char> {
    let h = handle(t)?;
    if h.owner.load(Ordering::Acquire) == OWNER_CALLER {
        return with_task(t, |task| Ok(field_of(task, field)));
    }
    // Written by `vine_submit` before the handle left the caller.
    let f = h.fields.lock().unwrap_or_else(|p| p.into_inner());
    let string = |s: Option<&CString>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    Ok(match field {
        Field::Command => string(f.strings.as_ref().and_then(|s| s.command.as_ref())),
        Field::Tag => string(f.strings.as_ref().and_then(|s| s.tag.as_ref())),
        Field::Category => f
            .category
            .as_deref()
            .unwrap_or(Task::default_category())
            .as_ptr(),
    })
}

// SAFETY: `task` is only touched under the ownership protocol above; the atomics
// publish each hand-over (Release on store, Acquire on load).
unsafe impl Sync for TaskHandle {}

/// Wraps a new task for C.
pub(crate) fn task_into_c(task: Box<Task>) -> *mut vine_task {
    let h = Box::new(TaskHandle {
        owner: AtomicU8::new(OWNER_CALLER),
        id: AtomicI32::new(0),
        task: UnsafeCell::new(Some(task)),
        fields: Mutex::new(Fields {
            category: None,
            strings: None,
        }),
        state: AtomicU8::new(crate::task::State::Initial as u8),
        summaries: UnsafeCell::new(None),
    });
    Box::into_raw(h).cast()
}

fn handle<'a>(t: *const vine_task) -> Result<&'a TaskHandle> {
    if t.is_null() {
        return Err(super::boundary::null("the task"));
    }
    // SAFETY: C holds this pointer from `task_into_c` until `vine_task_delete`;
    // using it after that is the one misuse the library cannot detect.
    Ok(unsafe { &*t.cast::<TaskHandle>() })
}

/// Why the caller cannot use a task it does not own, by who owns it.
fn not_callers(owner: u8) -> Error {
    Error::new(
        ErrorKind::TaskSubmitted,
        if owner == OWNER_FILE {
            "the task is a mini task: its file (vine_declare_mini_task) owns it \
             until the manager is deleted"
        } else {
            "the task belongs to the manager until vine_wait returns it"
        },
    )
}

fn submitted() -> Error {
    not_callers(OWNER_MANAGER)
}

/// Reads a task the caller owns.
pub(crate) fn with_task<R>(t: *const vine_task, f: impl FnOnce(&Task) -> Result<R>) -> Result<R> {
    let h = handle(t)?;
    let owner = h.owner.load(Ordering::Acquire);
    if owner != OWNER_CALLER {
        return Err(not_callers(owner));
    }
    // SAFETY: the caller owns the handle, so no other thread touches `task`.
    let task = unsafe { &*h.task.get() };
    f(task.as_deref().ok_or_else(submitted)?)
}

/// Fills summary `which` (0..3) of a task the caller owns with what `make` gives,
/// and returns where it is (valid until the task is deleted; the next call for
/// the same summary rewrites it in place), or NULL if `make` gives none.
pub(crate) fn task_summary(
    t: *const vine_task,
    which: usize,
    make: impl FnOnce(&Task) -> Result<vine_resources>,
) -> Result<*const vine_resources> {
    let value = with_task(t, make)?;
    let h = handle(t)?;
    // SAFETY: `with_task` just checked that the caller owns the handle, so no
    // other thread touches `summaries`.
    let slots = unsafe { &mut *h.summaries.get() };
    let slots = slots.get_or_insert_with(|| Box::new([vine_resources::unset(); 3]));
    slots[which] = value;
    Ok(&slots[which])
}

/// Changes a task the caller owns.
pub(crate) fn with_task_mut<R>(
    t: *mut vine_task,
    f: impl FnOnce(&mut Task) -> Result<R>,
) -> Result<R> {
    let h = handle(t)?;
    let owner = h.owner.load(Ordering::Acquire);
    if owner != OWNER_CALLER {
        return Err(not_callers(owner));
    }
    // SAFETY: as in `with_task`; the C contract gives one thread at a time a task.
    let task = unsafe { &mut *h.task.get() };
    f(task.as_deref_mut().ok_or_else(submitted)?)
}

/// The task's id (0 before submission); readable whoever owns the task.
pub(crate) fn task_id(t: *const vine_task) -> Result<i32> {
    Ok(handle(t)?.id.load(Ordering::Acquire))
}

/// Moves the task out of its handle for submission; `give_back` if that fails.
pub(crate) fn task_take_for_submit(
    t: *mut vine_task,
    prepare: impl FnOnce(&mut Task),
) -> Result<Box<Task>> {
    let h = handle(t)?;
    h.owner
        .compare_exchange(
            OWNER_CALLER,
            OWNER_SUBMITTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map_err(|owner| match owner {
            OWNER_FILE => not_callers(owner),
            _ => Error::new(ErrorKind::TaskSubmitted, "the task was already submitted"),
        })?;
    // SAFETY: this thread just won ownership of the handle.
    let mut task = unsafe { (*h.task.get()).take() }.ok_or_else(submitted)?;
    task.handle = t as usize;
    prepare(&mut task);
    h.state
        .store(crate::task::State::Ready as u8, Ordering::Release);
    let command = match task.work() {
        crate::task::Work::Command { command } => Some(command.to_owned()),
        _ => None,
    };
    let tag = task.tag().map(ToOwned::to_owned);
    let strings = (command.is_some() || tag.is_some()).then(|| Box::new(Strings { command, tag }));
    *h.fields.lock().unwrap_or_else(|p| p.into_inner()) = Fields {
        category: task.category_shared(),
        strings,
    };
    Ok(task)
}

/// Records the id of a task just submitted, then lets the manager give it back.
pub(crate) fn task_submitted(t: *mut vine_task, id: i32) {
    if let Ok(h) = handle(t) {
        h.id.store(id, Ordering::Release);
        h.owner.store(OWNER_MANAGER, Ordering::Release);
    }
}

/// Puts back a task whose submission failed: the caller owns it again.
pub(crate) fn task_not_submitted(task: Box<Task>) {
    let t = task.handle as *mut vine_task;
    // SAFETY: the handle was made by `task_into_c`; `vine_submit`, on this thread,
    // moved the task out of it and is the only one that can touch it now.
    let h = unsafe { &*t.cast::<TaskHandle>() };
    // SAFETY: as above.
    unsafe { *h.task.get() = Some(task) };
    h.state
        .store(crate::task::State::Initial as u8, Ordering::Release);
    h.owner.store(OWNER_CALLER, Ordering::Release);
}

/// Puts a task back into its handle and gives the handle to the caller.
pub(crate) fn task_give_back(task: Box<Task>) -> *mut vine_task {
    let t = task.handle as *mut vine_task;
    if t.is_null() {
        // Submitted through the Rust API: it gets a handle of its own.
        let id = task.id as i32;
        let t = task_into_c(task);
        if let Ok(h) = handle(t) {
            h.id.store(id, Ordering::Release);
            h.state
                .store(crate::task::State::Done as u8, Ordering::Release);
        }
        return t;
    }
    // SAFETY: the handle was made by `task_into_c` and, while the manager owns it,
    // C may not delete it (vine_task_delete refuses) nor touch `task`.
    let h = unsafe { &*t.cast::<TaskHandle>() };
    // A task can finish before `vine_submit` has recorded its id: wait for that
    // (a few instructions of the submitting thread).
    while h.owner.load(Ordering::Acquire) == OWNER_SUBMITTING {
        std::thread::yield_now();
    }
    // SAFETY: the manager owns the handle; only this thread moves the task back.
    unsafe { *h.task.get() = Some(task) };
    h.state
        .store(crate::task::State::Done as u8, Ordering::Release);
    h.owner.store(OWNER_CALLER, Ordering::Release);
    t
}

/// Records the state of a task the manager owns, in its handle (the address
/// `task.handle` holds; 0 for tasks submitted through the Rust API).
pub(crate) fn publish_state(handle: usize, state: crate::task::State) {
    if handle == 0 {
        return;
    }
    // SAFETY: a task carries the address of its handle only while the manager
    // owns it, and C cannot delete a handle the manager owns (vine_task_delete
    // refuses), so the handle is alive; `state` is an atomic.
    let h = unsafe { &*(handle as *const TaskHandle) };
    h.state.store(state as u8, Ordering::Release);
}

/// The state of the task at `t`, whoever owns it.
pub(crate) fn task_state(t: *const vine_task) -> Result<crate::task::State> {
    let h = handle(t)?;
    Ok(crate::task::State::from_u8(h.state.load(Ordering::Acquire)))
}

/// Frees a task the caller owns.
pub(crate) fn task_delete(t: *mut vine_task) -> Result<()> {
    let h = handle(t)?;
    let owner = h.owner.load(Ordering::Acquire);
    if owner != OWNER_CALLER {
        return Err(not_callers(owner));
    }
    // SAFETY: the caller owns the handle, made by `task_into_c`; after this C must
    // not use the pointer again.
    drop(unsafe { Box::from_raw(t.cast::<TaskHandle>()) });
    Ok(())
}

/// Frees a finished task that was never waited for, and its handle.
pub(crate) fn task_free_unretrieved(task: Box<Task>) {
    let t = task.handle as *mut TaskHandle;
    drop(task);
    if !t.is_null() {
        // SAFETY: the manager owned this handle; nobody else may touch it, and the
        // manager is being deleted, so nothing will hand it back to C.
        drop(unsafe { Box::from_raw(t) });
    }
}

/// A task handle a file took over (a mini task's): freed when the file goes.
pub(crate) struct TakenHandle(usize);

impl Drop for TakenHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was made by `task_into_c` and given up by the caller
        // to the file that owns this (see `task_take_for_file`); only this frees it.
        drop(unsafe { Box::from_raw(self.0 as *mut TaskHandle) });
    }
}

/// Takes a task out of its handle for good, for a file that a worker makes by
/// running it. The handle stays valid until the file goes, read as a submitted
/// task's (its command, tag, category); it cannot be changed, submitted or deleted.
pub(crate) fn task_take_for_file(t: *mut vine_task) -> Result<(Box<Task>, TakenHandle)> {
    let mut task = task_take_for_submit(t, |_| ())?;
    task.handle = 0;
    if let Ok(h) = handle(t) {
        h.owner.store(OWNER_FILE, Ordering::Release);
    }
    Ok((task, TakenHandle(t as usize)))
}

#[cfg(test)]
mod test {
    use super::*;

    /// Waits for child `pid`; its wait status.
    fn child_status(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waits for this process's own child, into a local.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(got, pid);
        status
    }

    #[test]
    fn a_child_forked_while_the_registries_are_locked_has_its_own() {
        crate::worker::isolated::count_forks();
        let m = manager_into_c(|| Manager::new(crate::manager::Port::None)).unwrap();
        // Held at the fork, as by another thread in a vine call: in the child
        // nobody will ever release them.
        let managers_held = managers().value.write().unwrap();
        let files_held = files().value.lock().unwrap();
        let factories_held = factories().value.lock().unwrap();
        // SAFETY: the child only calls the library and async-signal-safe
        // functions, then `_exit`s; `alarm` turns a hang into a failure.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: plain system calls in the child.
            unsafe { libc::alarm(20) };
            let refused = manager(m).err().map(|e| e.kind());
            let fresh = manager_into_c(|| Manager::new(crate::manager::Port::None));
            let fresh_usable = fresh.as_ref().is_ok_and(|&h| manager(h).is_ok());
            let file_refused = file(m.cast()).err().map(|e| e.kind());
            let code = match (refused, fresh_usable, file_refused) {
                (Some(ErrorKind::Unsupported), true, Some(ErrorKind::Unsupported)) => 0,
                (Some(ErrorKind::Unsupported), true, _) => 3,
                (Some(ErrorKind::Unsupported), false, _) => 2,
                _ => 1,
            };
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        drop((managers_held, files_held, factories_held));
        // 0: it exited 0 (not killed by its alarm, not failed).
        assert_eq!(child_status(pid), 0, "the child hung or failed");
        // The parent's registry is its own still.
        assert!(manager(m).is_ok());
        manager_remove(m).unwrap().shutdown().unwrap();
    }
}
