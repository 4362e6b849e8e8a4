//! Scheduling semantics on the real local pool, observed from inside the tasks
//! (how many run at once, in which order they start), never from wall time.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vine::ffi::vine_buffer;
use vine::{Manager, Port, Task, TaskResult, Want};

const LONG: Option<Duration> = Some(Duration::from_secs(60));

/// Shared by the test and its tasks: a gate they block on, and what they saw.
#[derive(Default)]
struct Probe {
    running: AtomicUsize,
    peak: AtomicUsize,
    started: Mutex<Vec<u8>>,
    open: Mutex<bool>,
    opened: Condvar,
    arrived: Condvar,
}

impl Probe {
    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
    fn wait_until_running(&self, n: usize) {
        let mut g = self.started.lock().unwrap();
        while self.running.load(Ordering::SeqCst) < n {
            g = self.arrived.wait(g).unwrap();
        }
    }
}

/// Records itself, waits at the gate, records its input byte as its start order.
unsafe extern "C" fn gated(
    input: *const c_void,
    len: usize,
    out: *mut vine_buffer,
    ctx: *mut c_void,
) -> c_int {
    let probe = unsafe { &*(ctx as *const Probe) };
    let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
    probe.peak.fetch_max(now, Ordering::SeqCst);
    {
        let mut started = probe.started.lock().unwrap();
        if len > 0 {
            started.push(unsafe { *(input as *const u8) });
        }
        probe.arrived.notify_all();
    }
    let mut open = probe.open.lock().unwrap();
    while !*open {
        open = probe.opened.wait(open).unwrap();
    }
    drop(open);
    probe.running.fetch_sub(1, Ordering::SeqCst);
    unsafe { vine::ffi::function::vine_buffer_append(out, input, len) };
    0
}

/// Does nothing, successfully.
unsafe extern "C" fn nothing(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    0
}

fn gated_task(probe: &Arc<Probe>, tag: u8) -> Box<Task> {
    Task::local(gated, Arc::as_ptr(probe) as usize, &[tag])
}

fn manager(cores: f64) -> Manager {
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", cores).unwrap();
    m
}

#[allow(clippy::vec_box)] // tasks come back boxed, as the API hands them out
fn wait_all(m: &Manager, n: usize) -> Vec<Box<Task>> {
    (0..n)
        .map(|_| m.wait(LONG).expect("a task comes back"))
        .collect()
}

#[test]
fn concurrency_never_exceeds_the_local_cores() {
    let m = manager(3.0);
    let probe = Arc::new(Probe::default());
    for i in 0..12 {
        m.submit(gated_task(&probe, i)).unwrap();
    }
    probe.wait_until_running(3);
    // Three are blocked at the gate; the others cannot start until one leaves.
    let stats = m.stats().unwrap();
    assert_eq!(stats.tasks_running, 3);
    probe.open_gate();
    let done = wait_all(&m, 12);
    assert!(done.iter().all(|t| t.result() == TaskResult::Success));
    assert_eq!(probe.peak.load(Ordering::SeqCst), 3);
}

#[test]
fn fractional_cores_run_more_tasks_at_once() {
    let m = manager(2.0);
    let probe = Arc::new(Probe::default());
    for i in 0..8 {
        let mut t = gated_task(&probe, i);
        t.set_cores(0.25).unwrap();
        m.submit(t).unwrap();
    }
    probe.wait_until_running(8);
    probe.open_gate();
    wait_all(&m, 8);
    assert_eq!(probe.peak.load(Ordering::SeqCst), 8);
}

#[test]
fn tasks_start_by_priority_then_submission_order() {
    let m = manager(1.0);
    m.tune("prefetch", 0.0).unwrap();
    let probe = Arc::new(Probe::default());
    // The first task holds the only core while the rest queue up.
    m.submit(gated_task(&probe, 0)).unwrap();
    probe.wait_until_running(1);
    // -0.0 and 0.0 are one priority: FIFO between them.
    for (tag, prio) in [
        (1u8, 1.0),
        (2, 5.0),
        (3, 1.0),
        (4, 9.0),
        (5, 5.0),
        (6, -0.0),
        (7, 0.0),
        (8, -0.0),
    ] {
        let mut t = gated_task(&probe, tag);
        t.set_priority(prio).unwrap();
        m.submit(t).unwrap();
    }
    // Make sure the manager has queued them all before the core frees up.
    while m.stats().unwrap().tasks_waiting < 8 {
        std::thread::yield_now();
    }
    probe.open_gate();
    wait_all(&m, 9);
    assert_eq!(
        *probe.started.lock().unwrap(),
        vec![0, 4, 2, 5, 1, 3, 6, 7, 8]
    );
}

#[test]
fn a_request_larger_than_the_pool_is_unschedulable_without_remote_workers() {
    let m = manager(2.0);
    let mut t = Task::command(c"true");
    t.set_cores(4.0).unwrap();
    let id = m.submit(t).unwrap();
    let back = m.wait(LONG).unwrap();
    assert_eq!(back.id(), id);
    assert_eq!(back.result(), TaskResult::Unschedulable);
    let reason = back.reason().unwrap().to_str().unwrap();
    assert!(reason.contains("4 cores"), "{reason}");
}

#[test]
fn a_local_function_larger_than_the_pool_is_unschedulable_even_with_a_port() {
    // Remote workers may join, but a function pointer of this process never
    // runs on one: the reason says so, not that no worker may join.
    let m = Manager::new(Port::Any).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    let mut t = Task::local(nothing, 0, &[]);
    t.set_cores(4.0).unwrap();
    let id = m.submit(t).unwrap();
    let back = m.wait(LONG).unwrap();
    assert_eq!((back.id(), back.result()), (id, TaskResult::Unschedulable));
    let reason = back.reason().unwrap().to_str().unwrap();
    assert!(
        reason.contains("4 cores") && reason.contains("runs only in the local pool"),
        "{reason}"
    );
}

#[test]
fn cancelled_tasks_come_back_cancelled_and_others_run() {
    let m = manager(1.0);
    m.tune("prefetch", 0.0).unwrap();
    let probe = Arc::new(Probe::default());
    let gate = m.submit(gated_task(&probe, 0)).unwrap();
    probe.wait_until_running(1);
    let a = m.submit(gated_task(&probe, 1)).unwrap();
    let b = m.submit(gated_task(&probe, 2)).unwrap();
    m.cancel(a).unwrap();
    let first = m.wait_for(Want::Id(a), LONG).unwrap();
    assert_eq!(first.result(), TaskResult::Cancelled);
    assert!(m.cancel(a).is_err(), "already finished");
    assert!(m.cancel(12345).is_err(), "never existed");
    probe.open_gate();
    let rest = wait_all(&m, 2);
    let mut ids: Vec<_> = rest.iter().map(|t| (t.id(), t.result())).collect();
    ids.sort_by_key(|x| x.0);
    assert_eq!(
        ids,
        vec![(gate, TaskResult::Success), (b, TaskResult::Success)]
    );
    assert!(m.empty());
}

#[test]
fn shutdown_returns_every_outstanding_task_once() {
    let m = Arc::new(manager(1.0));
    let probe = Arc::new(Probe::default());
    let running = m.submit(gated_task(&probe, 0)).unwrap();
    probe.wait_until_running(1);
    let queued: Vec<_> = (1..=20)
        .map(|i| m.submit(gated_task(&probe, i)).unwrap())
        .collect();
    let m2 = m.clone();
    let shut = std::thread::spawn(move || m2.shutdown());
    // Shutdown cancels the queued tasks at once; the running one is let finish.
    let mut cancelled = Vec::new();
    for _ in 0..queued.len() {
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Cancelled);
        cancelled.push(t.id());
    }
    cancelled.sort();
    assert_eq!(cancelled, queued);
    probe.open_gate();
    assert!(shut.join().unwrap().is_ok());
    let last = m.wait(LONG).unwrap();
    assert_eq!((last.id(), last.result()), (running, TaskResult::Success));
    assert!(m.wait(LONG).is_none(), "nothing is outstanding");
    let refused = m.submit(Task::command(c"true"));
    assert!(refused.is_err());
}

#[test]
fn many_threads_submit_and_wait_and_every_task_returns_once() {
    unsafe extern "C" fn echo(
        input: *const c_void,
        len: usize,
        out: *mut vine_buffer,
        _: *mut c_void,
    ) -> c_int {
        unsafe { vine::ffi::function::vine_buffer_append(out, input, len) }
    }
    vine::registry::register(c"integration_echo", echo).unwrap();
    let m = Arc::new(manager(2.0));
    let per_thread = 5000u32;
    // `wait` returns nothing at once when nothing is outstanding, which can
    // happen between two submissions: a waiter stops only once every
    // submitter has finished and nothing is left.
    let submitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..4u32)
        .map(|k| {
            let m = m.clone();
            let submitted = submitted.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let v = k * per_thread + i;
                    m.submit(Task::function(c"integration_echo", &v.to_le_bytes()))
                        .unwrap();
                }
                submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        })
        .collect();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            let submitted = submitted.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    let all_in = submitted.load(std::sync::atomic::Ordering::SeqCst) == 4;
                    match m.wait(LONG) {
                        Some(t) => {
                            assert_eq!(t.result(), TaskResult::Success);
                            seen.push(u32::from_le_bytes(t.output().try_into().unwrap()));
                        }
                        None if all_in => break,
                        None => std::thread::yield_now(),
                    }
                }
                seen
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut all: Vec<u32> = waiters
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..4 * per_thread).collect::<Vec<_>>());
    assert!(m.empty());
}

#[test]
fn local_resources_cannot_change_under_outstanding_tasks() {
    let m = manager(1.0);
    let probe = Arc::new(Probe::default());
    m.submit(gated_task(&probe, 0)).unwrap();
    assert!(m.tune("local-cores", 4.0).is_err());
    probe.open_gate();
    m.wait(LONG).unwrap();
    assert!(m.tune("local-cores", 4.0).is_ok());
    assert_eq!(m.stats().unwrap().total.millicores, 4000);
}

#[test]
fn hungry_while_few_tasks_wait_and_not_once_enough_do() {
    let m = manager(1.0);
    m.tune("prefetch", 0.0).unwrap();
    assert!(m.hungry(), "an idle manager wants work");
    // hungry-factor (2) tasks per slot of the pool, none waiting.
    let idle = m.hungry_for();
    assert!(idle >= 2 && idle.is_multiple_of(2), "{idle}");
    let probe = Arc::new(Probe::default());
    m.submit(gated_task(&probe, 0)).unwrap();
    probe.wait_until_running(1);
    for i in 1..=10 {
        m.submit(gated_task(&probe, i)).unwrap();
    }
    while m.stats().unwrap().tasks_waiting < 10 {
        std::thread::yield_now();
    }
    // One slot, hungry-factor 2: ten waiting is plenty.
    assert!(!m.hungry());
    assert_eq!(m.hungry_for(), 0);
    m.tune("hungry-factor", 13.0).unwrap();
    let want = m.hungry_for();
    assert!(
        want > 0 && (want + 10).is_multiple_of(13),
        "13 per slot, 10 waiting: {want}"
    );
    m.tune("hungry-factor", 2.0).unwrap();
    probe.open_gate();
    wait_all(&m, 11);
    assert!(m.hungry());
    m.shutdown().unwrap();
    assert!(!m.hungry(), "a shut-down manager wants nothing");
}

#[test]
fn a_task_finished_behind_a_deep_queue_still_comes_back() {
    // Two cores, seven tasks handed over at once: five wait in the pool, more
    // than it has cores. When the first finishes, the pool keeps it back for a
    // batch; both threads then block in gated tasks, so only the manager's own
    // collection can return it. (A transactions log keeps the tasks on the
    // manager's path, where that batching is.)
    let m = manager(2.0);
    let log = std::env::temp_dir().join(format!("vine-deep-queue-{}.log", std::process::id()));
    m.enable_transactions_log(&log).unwrap();
    m.tune("prefetch", 8.0).unwrap();
    let quick = Arc::new(Probe::default());
    let blocked = Arc::new(Probe::default());
    let first = m.submit(gated_task(&quick, 0)).unwrap();
    for i in 1..=6 {
        m.submit(gated_task(&blocked, i)).unwrap();
    }
    quick.wait_until_running(1);
    blocked.wait_until_running(1);
    while m.stats().unwrap().tasks_on_workers < 7 {
        std::thread::yield_now();
    }
    quick.open_gate();
    let back = m.wait(LONG).expect("the finished task comes back");
    assert_eq!((back.id(), back.result()), (first, TaskResult::Success));
    assert_eq!(
        blocked.running.load(Ordering::SeqCst),
        2,
        "the rest are still held"
    );
    blocked.open_gate();
    assert_eq!(wait_all(&m, 6).len(), 6);
    assert!(m.wait(LONG).is_none());
    drop(m);
    let _ = std::fs::remove_file(log);
}

#[test]
fn a_submission_made_while_the_manager_collects_on_its_timer_is_taken_without_a_wake_up() {
    // Two cores, ten gated tasks with a prefetch of 8: eight wait in the pool,
    // more than it has cores, and none finishes. The manager thread then sleeps
    // on its collection timer, and a submission does not wake it: nothing but
    // that timer may bring the task in, and the test makes no call that reaches
    // the manager thread until it has. (A transactions log keeps the tasks on
    // the manager's path.)
    let m = manager(2.0);
    let log = std::env::temp_dir().join(format!("vine-timer-take-{}.log", std::process::id()));
    m.enable_transactions_log(&log).unwrap();
    m.tune("prefetch", 8.0).unwrap();
    let blocked = Arc::new(Probe::default());
    let mut ids: Vec<u64> = (0..10)
        .map(|i| m.submit(gated_task(&blocked, i)).unwrap())
        .collect();
    blocked.wait_until_running(2);
    while m.stats().unwrap().tasks_on_workers < 10 {
        std::thread::yield_now();
    }
    while !m.collects_on_timer() {
        std::thread::yield_now();
    }
    ids.push(m.submit(Task::local(nothing, 0, b"")).unwrap());
    let give_up = std::time::Instant::now() + LONG.unwrap();
    while m.unseen_submissions() > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the manager thread never took the submission"
        );
        std::thread::yield_now();
    }
    blocked.open_gate();
    let mut back: Vec<u64> = wait_all(&m, 11).iter().map(|t| t.id()).collect();
    back.sort_unstable();
    assert_eq!(back, ids, "every task comes back once");
    assert!(m.wait(LONG).is_none());
    drop(m);
    let _ = std::fs::remove_file(log);
}

#[test]
fn a_burst_of_submissions_all_comes_back() {
    // Far more than the manager takes per round, submitted while it works
    // through earlier ones: none may be left behind in the submission queue.
    let m = manager(2.0);
    let n = 300_000;
    for i in 0..n {
        m.submit(Task::local(nothing, 0, &(i as u32).to_le_bytes()))
            .unwrap();
    }
    let mut seen = vec![false; n + 1];
    for _ in 0..n {
        let t = m.wait(LONG).expect("every task comes back");
        assert_eq!(t.result(), TaskResult::Success);
        assert!(!std::mem::replace(&mut seen[t.id() as usize], true));
    }
    assert!(m.wait(LONG).is_none());
}

#[test]
fn submissions_racing_shutdown_are_each_refused_or_returned_once() {
    let m = Arc::new(manager(2.0));
    let go = Arc::new(std::sync::Barrier::new(5));
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let (m, go) = (m.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let mut accepted = Vec::new();
                for _ in 0..20_000 {
                    match m.submit(Task::local(nothing, 0, b"")) {
                        Ok(id) => accepted.push(id),
                        // Refused: the task is handed back, never half-taken.
                        Err((_, task)) => assert_eq!(task.id(), 0),
                    }
                }
                accepted
            })
        })
        .collect();
    go.wait();
    m.shutdown().unwrap();
    let mut accepted: Vec<u64> = submitters
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    accepted.sort_unstable();
    let mut back = Vec::new();
    while let Some(t) = m.wait(Some(Duration::ZERO)) {
        assert!(matches!(
            t.result(),
            TaskResult::Success | TaskResult::Cancelled
        ));
        back.push(t.id());
    }
    back.sort_unstable();
    assert_eq!(
        back, accepted,
        "every accepted task comes back exactly once"
    );
}

#[test]
fn a_cancel_that_succeeds_always_brings_the_task_back_cancelled() {
    // Each cancel races its task's completion: it lands while the task waits,
    // runs, has just finished on its thread, or waits in the pool's outbox.
    // Whatever the timing, a cancel that returned Ok means CANCELLED, and one
    // that failed says the task had finished, which then comes back SUCCESS.
    let m = Arc::new(manager(2.0));
    let per_thread = 2500;
    let submitters: Vec<_> = (0..3)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for _ in 0..per_thread {
                    let id = m.submit(Task::local(nothing, 0, b"")).unwrap();
                    match m.cancel(id) {
                        Ok(()) => accepted.push(id),
                        Err(e) => assert!(e.message().contains("already finished"), "{e}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let accepted: std::collections::HashSet<_> = submitters
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    let mut wrong = Vec::new();
    for t in wait_all(&m, 3 * per_thread) {
        let want = if accepted.contains(&t.id()) {
            TaskResult::Cancelled
        } else {
            TaskResult::Success
        };
        if t.result() != want {
            wrong.push((t.id(), t.result()));
        }
    }
    assert_eq!(wrong, vec![], "{} cancels accepted", accepted.len());
    assert!(m.empty());
}

#[test]
fn small_tasks_behind_many_that_need_a_larger_worker_still_run() {
    // A port: tasks larger than the pool wait for a remote worker instead of
    // being refused; none joins, so they wait, 200 deep, ahead of the small ones.
    let m = Manager::new(Port::Any).unwrap();
    m.tune("local-cores", 2.0).unwrap();
    let large: Vec<_> = (0..200)
        .map(|_| {
            let mut t = Task::command(c"true");
            t.set_cores(3.0).unwrap();
            m.submit(t).unwrap()
        })
        .collect();
    let small: Vec<_> = (0..50)
        .map(|_| m.submit(Task::local(nothing, 0, b"")).unwrap())
        .collect();
    for id in small {
        let t = m.wait_for(Want::Id(id), LONG).expect("a small task runs");
        assert_eq!(t.result(), TaskResult::Success);
    }
    assert_eq!(m.stats().unwrap().tasks_waiting, 200);
    m.shutdown().unwrap();
    for _ in &large {
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Cancelled);
    }
}

#[test]
fn a_function_shutdown_abandoned_comes_back_when_it_returns_on_either_lane() {
    // A plain local function takes the direct lane; one with an environment
    // variable the manager's path. Either way, shutdown gives up on it (it
    // ignores cancellation), and a wait that follows gets it once it returns.
    for by_manager in [false, true] {
        let m = Arc::new(manager(1.0));
        m.tune("shutdown-timeout", 0.0).unwrap();
        let probe = Arc::new(Probe::default());
        let mut t = gated_task(&probe, 0);
        if by_manager {
            t.set_env_var(c"VINE_TEST", Some(c"1")).unwrap();
        }
        let id = m.submit(t).unwrap();
        probe.wait_until_running(1);
        let e = m.shutdown().unwrap_err();
        assert!(e.to_string().contains("abandoned"), "{e}");
        // Still outstanding: a wait waits for it rather than giving up at once.
        let m2 = m.clone();
        let waiter = std::thread::spawn(move || m2.wait(LONG));
        probe.open_gate();
        let back = waiter.join().unwrap().expect("the task comes back");
        assert_eq!(
            (back.id(), back.result()),
            (id, TaskResult::Cancelled),
            "by the manager's path: {by_manager}"
        );
        assert!(m.wait(LONG).is_none(), "nothing is outstanding");
    }
}
