//! Local function tasks on a manager with no remote workers take the direct
//! lane (submitter to pool to waiter, without the manager thread). Many threads
//! submit, wait, cancel and shut down at once; whatever the interleaving, every
//! accepted task comes back exactly once, and a cancel that succeeded means the
//! task comes back cancelled.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use vine::ffi::function::*;
use vine::ffi::manager::*;
use vine::ffi::resources::vine_set_category_max_concurrent;
use vine::ffi::task::*;
use vine::ffi::*;
use vine::ffi::{vine_buffer, vine_stats};
use vine::{Manager, Port, Task, TaskResult, Want};

const SUBMITTERS: usize = 8;
const PER_THREAD: usize = 3000;

/// A little work (input byte: how much), so tasks are running when cancels and
/// the shutdown land; never sleeps.
unsafe extern "C" fn churn(
    input: *const c_void,
    len: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    let rounds = if len > 0 {
        u64::from(unsafe { *(input as *const u8) })
    } else {
        0
    };
    let mut x = 1u64;
    for i in 0..rounds * 200 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    std::hint::black_box(x);
    0
}

fn manager() -> Manager {
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 2.0).unwrap();
    m
}

#[derive(Default)]
struct Seen {
    /// Ids accepted by submit.
    accepted: Vec<u64>,
    /// Ids whose cancel returned Ok.
    cancelled: HashSet<u64>,
    /// Tasks taken by wait, with their result.
    back: Vec<(u64, TaskResult)>,
}

#[test]
fn eight_threads_with_cancels_and_shutdown_racing_completions_get_every_id_once() {
    let m = Arc::new(manager());
    let seen = Arc::new(Mutex::new(Seen::default()));
    // The submitters, a canceller by tag and the shutdown start together.
    let go = Arc::new(Barrier::new(SUBMITTERS + 2));
    let threads: Vec<_> = (0..SUBMITTERS)
        .map(|k| {
            let (m, seen, go) = (m.clone(), seen.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let mut mine = Seen::default();
                for i in 0..PER_THREAD {
                    let mut t = Task::local(churn, 0, &[(i % 7) as u8]);
                    t.set_priority((i % 3) as f64).unwrap();
                    if i % 5 == 0 {
                        t.set_tag(c"fifth");
                    }
                    if i % 4 == 0 {
                        t.set_cores(0.5).unwrap();
                    }
                    let id = match m.submit(t) {
                        Ok(id) => id,
                        // Refused after the shutdown: handed back whole.
                        Err((_, t)) => {
                            assert_eq!(t.id(), 0);
                            continue;
                        }
                    };
                    mine.accepted.push(id);
                    if (i + k) % 3 == 0 {
                        // Waiting, running, just finished or long finished.
                        if m.cancel(id).is_ok() {
                            mine.cancelled.insert(id);
                        }
                    }
                    if i % 2 == 0 {
                        if let Some(t) = m.wait(Some(Duration::ZERO)) {
                            mine.back.push((t.id(), t.result()));
                        }
                    }
                }
                let mut s = seen.lock().unwrap();
                s.accepted.extend(mine.accepted);
                s.cancelled.extend(mine.cancelled);
                s.back.extend(mine.back);
            })
        })
        .collect();
    // A waiter with no deadline, which runs direct tasks itself when it finds
    // one not started, until the shutdown has come and gone.
    let shut_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiter = {
        let (m, seen, shut_down) = (m.clone(), seen.clone(), shut_down.clone());
        std::thread::spawn(move || {
            let mut back = Vec::new();
            loop {
                match m.wait(None) {
                    Some(t) => back.push((t.id(), t.result())),
                    None if shut_down.load(std::sync::atomic::Ordering::Acquire) => break,
                    // Nothing outstanding for now.
                    None => std::thread::yield_now(),
                }
            }
            seen.lock().unwrap().back.extend(back);
        })
    };
    let tagger = {
        let (m, go) = (m.clone(), go.clone());
        std::thread::spawn(move || {
            go.wait();
            // Each cancelled task counts; the shutdown may already be under way.
            for _ in 0..50 {
                let _ = m.cancel_all_by_tag(Some(c"fifth"));
            }
        })
    };
    go.wait();
    // Half-way through, roughly: no sleep, just a number of tasks seen.
    while m.stats().unwrap().tasks_submitted < (SUBMITTERS * PER_THREAD / 2) as u64 {
        std::thread::yield_now();
    }
    let shut = m.shutdown();
    assert!(shut.is_ok(), "{shut:?}");
    for t in threads {
        t.join().unwrap();
    }
    shut_down.store(true, std::sync::atomic::Ordering::Release);
    waiter.join().unwrap();
    tagger.join().unwrap();
    let mut s = seen.lock().unwrap();
    while let Some(t) = m.wait(Some(Duration::ZERO)) {
        s.back.push((t.id(), t.result()));
    }
    assert!(m.empty());
    let mut times: HashMap<u64, usize> = HashMap::new();
    for (id, _) in &s.back {
        *times.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "returned more than once: {twice:?}");
    let mut accepted = s.accepted.clone();
    accepted.sort_unstable();
    let mut back: Vec<u64> = s.back.iter().map(|(id, _)| *id).collect();
    back.sort_unstable();
    assert_eq!(back.len(), accepted.len());
    assert_eq!(back, accepted, "every accepted task comes back");
    for (id, result) in &s.back {
        assert!(
            matches!(result, TaskResult::Success | TaskResult::Cancelled),
            "task {id}: {result:?}"
        );
        if s.cancelled.contains(id) {
            assert_eq!(*result, TaskResult::Cancelled, "task {id} was cancelled");
        }
    }
    let stats = m.stats().unwrap();
    assert_eq!(stats.tasks_submitted, accepted.len() as u64);
    assert_eq!(stats.tasks_done, accepted.len() as u64);
    assert_eq!(stats.tasks_waiting + stats.tasks_running, 0);
    // Both lanes were taken: the first submission found the pool idle.
    assert!(m.direct_tasks() >= 1);
}

#[test]
fn direct_tasks_are_counted_cancelled_by_id_and_waited_for_by_id() {
    let m = manager();
    let ids: Vec<u64> = (0..200)
        .map(|i| m.submit(Task::local(churn, 0, &[(i % 4) as u8])).unwrap())
        .collect();
    // The last one is waited for by id, whether it has finished or not.
    let last = *ids.last().unwrap();
    let t = m
        .wait_for(vine::Want::Id(last), Some(Duration::from_secs(60)))
        .expect("the task comes back");
    assert_eq!(t.id(), last);
    let mut n = 1;
    while let Some(t) = m.wait(Some(Duration::from_secs(60))) {
        assert_eq!(t.result(), TaskResult::Success);
        n += 1;
    }
    assert_eq!(n, ids.len());
    let stats = m.stats().unwrap();
    assert_eq!(stats.tasks_submitted, 200);
    assert_eq!(stats.tasks_done, 200);
    assert_eq!(stats.tasks_successful, 200);
    assert!(
        m.cancel(ids[0]).is_err(),
        "a finished task cannot be cancelled"
    );
    assert!(m.empty());
}

#[test]
fn a_task_submitted_while_the_pool_is_idle_takes_the_lane_and_counts_in_its_category() {
    let m = manager();
    for i in 0..50u8 {
        let mut t = Task::local(churn, 0, &[i % 3]);
        t.set_category(c"mine").unwrap();
        let id = m.submit(t).unwrap();
        let t = m
            .wait(Some(Duration::from_secs(60)))
            .expect("it comes back");
        assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    }
    // Nothing was running or queued at any submission: every one went direct.
    assert_eq!(m.direct_tasks(), 50);
    let (mine, waiting) = m.category_stats(c"mine").unwrap();
    assert_eq!(
        (
            mine.submitted,
            mine.done,
            mine.successful,
            mine.running,
            waiting
        ),
        (50, 50, 50, 0, 0)
    );
    let (default, _) = m.category_stats(c"default").unwrap();
    assert_eq!(default.submitted, 0);
    assert_eq!(m.stats().unwrap().tasks_done, 50);
}

/// Set when the blockers may end.
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Holds its core until RELEASE is set.
unsafe extern "C" fn blocker(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    while !RELEASE.load(std::sync::atomic::Ordering::Acquire) {
        std::thread::yield_now();
    }
    0
}

#[test]
fn while_every_core_is_busy_tasks_take_the_managers_path_and_every_one_comes_back() {
    let m = manager();
    // Each blocker is submitted once the one before runs, and the two hold
    // both cores. The first goes direct (nothing else was outstanding); the
    // second, submitted while the first is, takes the manager's path.
    let mut blockers = Vec::new();
    for running in 1..=2 {
        blockers.push(m.submit(Task::local(blocker, 0, &[])).unwrap());
        while m.stats().unwrap().tasks_running < running {
            std::thread::yield_now();
        }
    }
    assert_eq!(m.direct_tasks(), 1);
    let n = 500u64;
    for i in 0..n {
        m.submit(Task::local(churn, 0, &[(i % 5) as u8])).unwrap();
    }
    assert_eq!(m.direct_tasks(), 1, "no core was idle: none went direct");
    RELEASE.store(true, std::sync::atomic::Ordering::Release);
    let mut back = HashSet::new();
    while let Some(t) = m.wait(Some(Duration::from_secs(60))) {
        assert_eq!(t.result(), TaskResult::Success);
        assert!(back.insert(t.id()), "{} came back twice", t.id());
    }
    assert_eq!(back.len() as u64, n + 2);
    assert!(blockers.iter().all(|id| back.contains(id)));
    let s = m.stats().unwrap();
    assert_eq!((s.tasks_submitted, s.tasks_done), (n + 2, n + 2));
}

/// Thousandths of a core in use by `packed` tasks, and the most seen.
static PACKED_IN_USE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PACKED_MOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts its share of a core (input: thousandths, as 2 bytes) while it runs.
unsafe extern "C" fn packed(
    input: *const c_void,
    len: usize,
    out: *mut vine_buffer,
    ctx: *mut c_void,
) -> c_int {
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(len, 2);
    let milli = u64::from(u16::from_le_bytes(unsafe { *(input as *const [u8; 2]) }));
    let now = PACKED_IN_USE.fetch_add(milli, SeqCst) + milli;
    PACKED_MOST.fetch_max(now, SeqCst);
    let work = [3u8];
    unsafe { churn(work.as_ptr().cast(), 1, out, ctx) };
    PACKED_IN_USE.fetch_sub(milli, SeqCst);
    0
}

#[test]
fn a_waiter_that_runs_a_direct_task_itself_keeps_the_pools_packing() {
    // A wait with no deadline runs a direct task that has not started on the
    // waiting thread. The task took its share of the pool when it became
    // startable, so with the manager's tasks on the pool threads at the same
    // time the cores in use never pass the pool's: whichever thread ran what.
    let m = manager();
    let mut ids = HashSet::new();
    for round in 0..300u16 {
        // Nothing outstanding: the first goes direct; the rest take the
        // manager's path to the same pool.
        for milli in [1000u16, 500 + (round % 2) * 500, 1000, 500] {
            let mut t = Task::local(packed, 0, &milli.to_le_bytes());
            t.set_cores(f64::from(milli) / 1000.0).unwrap();
            ids.insert(m.submit(t).unwrap());
        }
        for _ in 0..4 {
            let t = m.wait(None).expect("each comes back");
            assert_eq!(t.result(), TaskResult::Success);
            assert!(ids.remove(&t.id()), "{} came back twice", t.id());
        }
    }
    assert!(ids.is_empty());
    assert!(m.wait(None).is_none(), "nothing outstanding: wait returns");
    assert!(m.direct_tasks() >= 300);
    let most = PACKED_MOST.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= 2000, "{most} thousandths of a core in use at once");
    let s = m.stats().unwrap();
    assert_eq!((s.tasks_done, s.tasks_running), (1200, 0));
}

/// Set by `held` once it runs; it returns once HELD_GO is set.
static HELD_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static HELD_GO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The thread `held` ran on.
static HELD_ON: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);

unsafe extern "C" fn held(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    use std::sync::atomic::Ordering::SeqCst;
    *HELD_ON.lock().unwrap() = Some(std::thread::current().id());
    HELD_RUNNING.store(true, SeqCst);
    while !HELD_GO.load(SeqCst) {
        std::thread::yield_now();
    }
    0
}

#[test]
fn a_direct_task_cancelled_while_it_runs_comes_back_cancelled_whichever_thread_ran_it() {
    use std::sync::atomic::Ordering::SeqCst;
    let m = Arc::new(manager());
    let id = m.submit(Task::local(held, 0, &[])).unwrap();
    assert_eq!(
        m.direct_tasks(),
        1,
        "nothing was outstanding: it went direct"
    );
    // Another thread cancels it once it runs (on a pool thread, or on the
    // waiting thread below), then lets it return.
    let canceller = {
        let m = m.clone();
        std::thread::spawn(move || {
            while !HELD_RUNNING.load(SeqCst) {
                std::thread::yield_now();
            }
            m.cancel(id).expect("a running task can be cancelled");
            HELD_GO.store(true, SeqCst);
        })
    };
    let t = m.wait(None).expect("it comes back");
    canceller.join().unwrap();

    assert_eq!((t.id(), t.result()), (id, TaskResult::Cancelled));
    assert!(HELD_ON.lock().unwrap().is_some());
    assert!(m.wait(None).is_none());
    let s = m.stats().unwrap();
    assert_eq!(
        (s.tasks_done, s.tasks_cancelled, s.tasks_running),
        (1, 1, 0)
    );
}

#[test]
fn a_wait_for_the_id_of_a_direct_task_that_just_ended_finds_it() {
    // A direct task leaves the pool's books a moment before it reaches the
    // completion queue; a wait by id asking the manager in that moment must
    // still get it, not NULL.
    let m = manager();
    for i in 0..3000u32 {
        let id = m.submit(Task::local(churn, 0, &[(i % 3) as u8])).unwrap();
        let t = m
            .wait_for(Want::Id(id), Some(Duration::from_secs(60)))
            .unwrap_or_else(|| panic!("task {id} (round {i}) did not come back"));
        assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    }
    assert!(m.direct_tasks() >= 1);
}

static HOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs until the test lets it go; says when it started.
unsafe extern "C" fn held_until_let_go(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    use std::sync::atomic::Ordering::SeqCst;
    STARTED.store(true, SeqCst);
    while HOLD.load(SeqCst) {
        std::thread::yield_now();
    }
    0
}

#[test]
fn a_running_thread_function_is_cancelled_once_however_often_it_is_asked() {
    use std::sync::atomic::Ordering::SeqCst;
    // The direct lane (no port), then the manager's path (a port closes the lane).
    for port in [Port::None, Port::Any] {
        let m = Manager::new(port).unwrap();
        m.tune("local-cores", 1.0).unwrap();
        HOLD.store(true, SeqCst);
        STARTED.store(false, SeqCst);
        let mut t = Task::local(held_until_let_go, 0, &[]);
        t.set_tag(c"A");
        let id = m.submit(t).unwrap();
        while !STARTED.load(SeqCst) {
            std::thread::yield_now();
        }
        m.cancel(id).unwrap();
        // It cannot be stopped, so it is still running: asked again by id, it
        // is cancelled already (it comes back so; not "finished"), and the
        // calls that count find nothing left to cancel.
        m.cancel(id).unwrap();
        assert!(!m.cancel_by_tag(Some(c"A")).unwrap());
        assert_eq!(m.cancel_all_by_tag(Some(c"A")).unwrap(), 0);
        assert_eq!(m.cancel_all().unwrap(), 0);
        HOLD.store(false, SeqCst);
        let t = m.wait(Some(Duration::from_secs(120))).unwrap();
        assert_eq!((t.id(), t.result()), (id, TaskResult::Cancelled));
        m.shutdown().unwrap();
    }
}

/// Set when the tagged tasks may end.
static TAGGED_GO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Holds its core until TAGGED_GO is set.
unsafe extern "C" fn tagged(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    while !TAGGED_GO.load(std::sync::atomic::Ordering::Acquire) {
        std::thread::yield_now();
    }
    0
}

#[test]
fn cancelling_by_tag_cancels_the_first_submitted_whichever_lane_it_took() {
    let m = manager();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut t = Task::local(tagged, 0, &[]);
        t.set_tag(c"T");
        ids.push(m.submit(t).unwrap());
        // The first runs before the others are submitted: it took the lane.
        while m.stats().unwrap().tasks_running < 1 {
            std::thread::yield_now();
        }
        if ids.len() == 1 {
            // It holds its core, and the local worker is busy with it.
            let s = m.stats().unwrap();
            assert_eq!(s.committed.millicores, 1000, "{:?}", s.committed);
            assert_eq!((s.workers_busy, s.workers_idle), (1, 0));
        }
    }
    assert_eq!(m.direct_tasks(), 1);
    assert!(m.cancel_by_tag(Some(c"T")).unwrap());
    TAGGED_GO.store(true, std::sync::atomic::Ordering::Release);
    let mut results = std::collections::BTreeMap::new();
    while let Some(t) = m.wait(Some(Duration::from_secs(60))) {
        results.insert(t.id(), t.result());
    }
    use TaskResult::{Cancelled, Success};
    let want: std::collections::BTreeMap<u64, TaskResult> = ids
        .iter()
        .copied()
        .zip([Cancelled, Success, Success])
        .collect();
    assert_eq!(results, want, "the first submitted was cancelled");
}

/// Tasks of `bounded` running now, the most seen at once, and their gate.
static BOUND_NOW: AtomicU64 = AtomicU64::new(0);
static BOUND_MOST: AtomicU64 = AtomicU64::new(0);
static BOUND_GO: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn bounded(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    let now = BOUND_NOW.fetch_add(1, SeqCst) + 1;
    BOUND_MOST.fetch_max(now, SeqCst);
    while !BOUND_GO.load(SeqCst) {
        std::thread::yield_now();
    }
    BOUND_NOW.fetch_sub(1, SeqCst);
    0
}

/// A manager of the C API with two local cores.
struct CManager(*mut vine::ffi::vine_manager);

impl CManager {
    fn new() -> CManager {
        let m = vine_create(VINE_PORT_NONE);
        assert!(!m.is_null());
        unsafe { assert_eq!(vine_tune(m, c"local-cores".as_ptr(), 2.0), 0) };
        CManager(m)
    }

    fn stats(&self) -> vine_stats {
        let mut s: vine_stats = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { vine_get_stats(self.0, &mut s) }, 0);
        s
    }
}

// SAFETY: the C API's manager is thread-safe (vine.h).
unsafe impl Sync for CManager {}

impl Drop for CManager {
    fn drop(&mut self) {
        vine_delete(self.0);
    }
}

#[test]
fn a_bound_on_concurrent_tasks_set_while_a_direct_task_runs_counts_that_task() {
    let m = CManager::new();
    unsafe {
        assert_eq!(
            vine_register_function(c"bounded".as_ptr(), Some(bounded)),
            0
        );
        let first = vine_task_create_function(c"bounded".as_ptr(), std::ptr::null(), 0);
        assert_eq!(vine_task_set_category(first, c"one".as_ptr()), 0);
        assert!(vine_submit(m.0, first) > 0);
    }
    // It runs, on the direct lane (nothing else is outstanding, a core is idle).
    while BOUND_NOW.load(SeqCst) < 1 {
        std::thread::yield_now();
    }
    unsafe {
        assert_eq!(vine_set_category_max_concurrent(m.0, c"one".as_ptr(), 1), 0);
        let second = vine_task_create_function(c"bounded".as_ptr(), std::ptr::null(), 0);
        assert_eq!(vine_task_set_category(second, c"one".as_ptr()), 0);
        assert!(vine_submit(m.0, second) > 0);
    }
    // The manager has seen the second and had a round to place it since.
    m.stats();
    let s = m.stats();
    assert_eq!(
        (s.tasks_waiting, s.tasks_on_workers),
        (1, 1),
        "the second waits for the first"
    );
    BOUND_GO.store(true, SeqCst);
    for _ in 0..2 {
        let t = vine_wait(m.0, 60);
        assert!(!t.is_null());
        assert_eq!(vine_task_get_result(t), VINE_RESULT_SUCCESS);
        vine_task_delete(t);
    }
    assert_eq!(
        BOUND_MOST.load(SeqCst),
        1,
        "two of the category ran at once"
    );
}

unsafe extern "C" fn nothing(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    0
}

#[test]
fn every_stats_sample_taken_while_direct_tasks_run_adds_up() {
    let m = CManager::new();
    unsafe {
        assert_eq!(
            vine_register_function(c"nothing".as_ptr(), Some(nothing)),
            0
        )
    };
    let stop = AtomicBool::new(false);
    let n = 3000;
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = 0u64;
            while !stop.load(SeqCst) {
                let s = m.stats();
                assert_eq!(
                    s.tasks_submitted,
                    s.tasks_waiting + s.tasks_on_workers + s.tasks_done,
                    "submitted is waiting + on workers + done in one sample"
                );
                assert!(
                    s.tasks_with_results <= s.tasks_done,
                    "more with results than done"
                );
                assert!(
                    s.tasks_running <= s.tasks_on_workers,
                    "more running than on workers"
                );
                samples += 1;
            }
            samples
        });
        // Submitted one at a time, each waited for: most take the direct lane.
        for _ in 0..n {
            unsafe {
                let t = vine_task_create_function(c"nothing".as_ptr(), std::ptr::null(), 0);
                assert!(vine_submit(m.0, t) > 0);
            }
            let t = vine_wait(m.0, 60);
            assert!(!t.is_null());
            vine_task_delete(t);
        }
        stop.store(true, SeqCst);
        assert!(sampler.join().unwrap() > 0);
    });
    let s = m.stats();
    assert_eq!((s.tasks_submitted, s.tasks_done), (n, n));
}

/// Set by `announce` when it runs; `ANNOUNCED_CV` is told.
static ANNOUNCED: Mutex<bool> = Mutex::new(false);
static ANNOUNCED_CV: std::sync::Condvar = std::sync::Condvar::new();

unsafe extern "C" fn announce(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    *ANNOUNCED.lock().unwrap() = true;
    ANNOUNCED_CV.notify_all();
    0
}

#[test]
fn after_a_submit_and_wait_loop_a_direct_task_nobody_waits_for_starts_by_itself() {
    let m = manager();
    // Each task is run by its submitter's wait; a pool thread then dozes, and
    // later submissions are left to it rather than wake it.
    for _ in 0..2000 {
        let id = m.submit(Task::local(churn, 0, &[0])).unwrap();
        let t = m.wait(None).expect("it comes back");
        assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    }
    for round in 0..20 {
        *ANNOUNCED.lock().unwrap() = false;
        let id = m.submit(Task::local(announce, 0, &[])).unwrap();
        // No call into vine until the task has run: only a pool thread can
        // start it. (A bound that never passes in a working pool.)
        let started = ANNOUNCED.lock().unwrap();
        let (started, waited) = ANNOUNCED_CV
            .wait_timeout_while(started, Duration::from_secs(120), |s| !*s)
            .unwrap();
        assert!(
            *started && !waited.timed_out(),
            "round {round}: the task never started"
        );
        drop(started);
        let t = m.wait(None).expect("it comes back");
        assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
        // And the loop again, so the next one finds a dozing thread.
        for _ in 0..50 {
            m.submit(Task::local(churn, 0, &[0])).unwrap();
            assert!(m.wait(None).is_some());
        }
    }
    assert!(m.direct_tasks() > 2000);
}
