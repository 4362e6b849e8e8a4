//! TaskVine's manager calls through the C API, with real `vine_worker` processes
//! on loopback: blocking and draining hosts, shutting workers down, slow workers,
//! and the smaller settings.

mod common;
use common::{tempdir, vine_worker};

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use vine::ffi::manager::*;
use vine::ffi::task::*;
use vine::ffi::*;

/// The host name the manager knows loopback workers by (their address).
const HOST: &CStr = c"127.0.0.1";

/// A bound on waits for events, so that a failure ends the test instead of
/// hanging it; never a synchronisation.
const BOUND: Duration = Duration::from_secs(60);

struct M(*mut vine_manager);

impl M {
    /// A manager on a free loopback port with no local cores.
    fn remote() -> (M, u16) {
        let m = vine_create(0);
        assert!(!m.is_null());
        assert_eq!(unsafe { vine_tune(m, c"local-cores".as_ptr(), 0.0) }, 0);
        let port = vine_port(m);
        (M(m), port as u16)
    }

    fn stats(&self) -> vine_stats {
        let mut s = vine_stats::default();
        assert_eq!(unsafe { vine_get_stats(self.0, &mut s) }, 0);
        s
    }

    /// Polls the stats until `ok` holds (bounded).
    fn until(&self, what: &str, ok: impl Fn(&vine_stats) -> bool) -> vine_stats {
        let end = Instant::now() + BOUND;
        loop {
            let s = self.stats();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < end, "never: {what}: {s:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn submit(&self, command: &str, category: &CStr) -> i32 {
        let c = CString::new(command).unwrap();
        let t = unsafe { vine_task_create(c.as_ptr()) };
        assert_eq!(unsafe { vine_task_set_category(t, category.as_ptr()) }, 0);
        let id = vine_submit(self.0, t);
        assert!(id > 0, "{:?}", unsafe { CStr::from_ptr(vine_last_error()) });
        id
    }

    /// Waits for task `id`; returns its result and standard output.
    fn wait_for(&self, id: i32) -> (vine_result_t, String) {
        let t = vine_wait_for_task_id(self.0, id, BOUND.as_secs() as i32);
        assert!(!t.is_null(), "task {id} did not come back");
        let result = vine_task_get_result(t);
        let out = vine_task_get_stdout(t);
        let out = if out.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(out) }
                .to_string_lossy()
                .into_owned()
        };
        vine_task_delete(t);
        (result, out)
    }
}

impl Drop for M {
    fn drop(&mut self) {
        vine_delete(self.0);
    }
}

/// A command that runs until `go` exists, then prints `word`.
fn held(go: &Path, word: &str) -> String {
    format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo {word}",
        go.display()
    )
}

fn exits_with(w: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + BOUND;
    loop {
        if let Some(st) = w.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < end, "the worker did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_blocked_host_loses_its_workers_and_none_joins_until_it_is_unblocked() {
    let dir = tempdir();
    let go = dir.join("go");
    let (m, port) = M::remote();
    let mut w = vine_worker(port, &[]);
    let id = m.submit(&held(&go, "ran"), c"held");
    m.until("the task runs", |s| s.tasks_running == 1);

    // Its worker is cut off and the task waits again.
    assert_eq!(unsafe { vine_block_host(m.0, HOST.as_ptr()) }, 1);
    let s = m.stats();
    assert_eq!((s.workers_connected, s.tasks_waiting), (0, 1), "{s:?}");
    assert_eq!((s.workers_blocked, s.workers_removed), (1, 1), "{s:?}");

    // A worker of the blocked host never gets in: it gives up at its timeout.
    let mut late = vine_worker(port, &["--timeout", "2"]);
    assert!(!exits_with(&mut late).success());
    assert_eq!(m.stats().workers_connected, 0);

    // Unblocked, the first worker (still trying) joins and runs the task.
    assert_eq!(unsafe { vine_unblock_host(m.0, HOST.as_ptr()) }, 0);
    std::fs::write(&go, "").unwrap();
    assert_eq!(m.wait_for(id), (VINE_RESULT_SUCCESS, "ran\n".into()));
    assert_eq!(vine_shutdown(m.0), 0);
    assert!(exits_with(&mut w).success());
}

#[test]
fn a_host_blocked_for_a_while_is_let_back_in_after_it() {
    let (m, port) = M::remote();
    let mut w = vine_worker(port, &[]);
    m.until("the worker joins", |s| s.workers_connected == 1);
    assert_eq!(
        unsafe { vine_block_host_with_timeout(m.0, HOST.as_ptr(), 1) },
        1
    );
    let id = m.submit("echo back", c"default");
    // No unblock: the block ends by itself and the worker comes back.
    assert_eq!(m.wait_for(id), (VINE_RESULT_SUCCESS, "back\n".into()));
    assert!(m.stats().workers_joined >= 2);
    assert_eq!(vine_unblock_all(m.0), 0);
    assert_eq!(vine_shutdown(m.0), 0);
    assert!(exits_with(&mut w).success());
}

#[test]
fn vine_workers_shutdown_tells_idle_workers_to_exit_and_leaves_busy_ones() {
    let dir = tempdir();
    let go = dir.join("go");
    let (m, port) = M::remote();
    let mut workers: Vec<Child> = (0..3).map(|_| vine_worker(port, &[])).collect();
    m.until("three workers", |s| s.workers_connected == 3);
    let id = m.submit(&held(&go, "busy"), c"held");
    m.until("the task runs", |s| s.tasks_running == 1);

    assert_eq!(vine_workers_shutdown(m.0, 1), 1);
    assert_eq!(vine_workers_shutdown(m.0, 0), 1, "only idle workers go");
    let s = m.stats();
    assert_eq!((s.workers_connected, s.workers_released), (1, 2), "{s:?}");
    // Two processes exit, told to (status 0); the busy one stays.
    let end = Instant::now() + BOUND;
    let mut gone = 0;
    while gone < 2 {
        gone = 0;
        for w in &mut workers {
            if let Some(st) = w.try_wait().unwrap() {
                assert!(st.success(), "{st}");
                gone += 1;
            }
        }
        assert!(Instant::now() < end, "the idle workers did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }

    std::fs::write(&go, "").unwrap();
    assert_eq!(m.wait_for(id), (VINE_RESULT_SUCCESS, "busy\n".into()));
    assert_eq!(vine_workers_shutdown(m.0, 0), 1);
    for w in &mut workers {
        assert!(exits_with(w).success());
    }
    assert_eq!(m.stats().workers_lost, 0);
}

#[test]
fn the_workers_are_summarized_by_size() {
    let (m, port) = M::remote();
    let mut workers: Vec<Child> = [
        ["--cores", "1", "--memory", "100", "--disk", "200"],
        ["--cores", "2", "--memory", "300", "--disk", "400"],
        ["--cores", "1", "--memory", "100", "--disk", "200"],
    ]
    .iter()
    .map(|size| vine_worker(port, size))
    .collect();
    m.until("three workers", |s| s.workers_connected == 3);
    let sizes = vine::ffi::resources::vine_summarize_workers(m.0);
    assert!(!sizes.is_null());
    let mut got = Vec::new();
    for i in 0.. {
        let s = unsafe { *sizes.add(i) };
        if s.is_null() {
            break;
        }
        let r = unsafe { &*s };
        got.push((r.cores, r.memory, r.disk, r.gpus, r.workers));
        assert_eq!(r.wall_time, -1.0);
        unsafe { vine::ffi::resources::vine_resources_delete(s) };
    }
    unsafe { libc::free(sizes.cast()) };
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        got,
        [(1.0, 100.0, 200.0, 0.0, 2.0), (2.0, 300.0, 400.0, 0.0, 1.0)]
    );
    assert_eq!(vine_workers_shutdown(m.0, 0), 3);
    for w in &mut workers {
        assert!(exits_with(w).success());
    }
}

#[test]
fn a_draining_host_finishes_its_tasks_takes_no_new_one_and_is_let_go() {
    let dir = tempdir();
    let go = dir.join("go");
    let (m, port) = M::remote();
    let mut first = vine_worker(port, &["--cores", "2"]);
    let running = m.submit(&held(&go, "finished"), c"held");
    m.until("the task runs", |s| s.tasks_running == 1);

    assert_eq!(
        unsafe { vine_set_draining_by_hostname(m.0, HOST.as_ptr(), 1) },
        1
    );
    assert_eq!(
        unsafe { vine_set_draining_by_hostname(m.0, c"no.such.host".as_ptr(), 1) },
        0
    );
    // A core is free there, but the new task is not sent.
    let later = m.submit("echo later", c"default");
    std::fs::write(&go, "").unwrap();
    assert_eq!(
        m.wait_for(running),
        (VINE_RESULT_SUCCESS, "finished\n".into())
    );
    // Holding nothing, the draining worker is told to exit.
    assert!(exits_with(&mut first).success());
    let s = m.stats();
    assert_eq!((s.tasks_waiting, s.tasks_dispatched), (1, 1), "{s:?}");

    // A worker that joins later is not draining.
    let mut second = vine_worker(port, &[]);
    assert_eq!(m.wait_for(later), (VINE_RESULT_SUCCESS, "later\n".into()));
    assert_eq!(vine_shutdown(m.0), 0);
    assert!(exits_with(&mut second).success());
}

#[test]
fn a_worker_slow_twice_is_disconnected_and_its_host_blocked() {
    a_worker_slow_twice_is_found(|m| {
        assert_eq!(
            vine_enable_disconnect_slow_workers(m.0, 0.5),
            0,
            "off below 1; 1 only for 0, as TaskVine's"
        );
        assert_eq!(vine_enable_disconnect_slow_workers(m.0, 2.0), 0);
    });
}

#[test]
fn a_category_with_its_own_multiplier_finds_a_slow_worker_while_the_default_is_off() {
    a_worker_slow_twice_is_found(|m| {
        let own = |c: &CStr, f: f64| unsafe {
            vine_enable_disconnect_slow_workers_category(m.0, c.as_ptr(), f)
        };
        assert_eq!(own(c"c", 0.5), 0, "below 1: the default's, which is off");
        assert_eq!(own(c"c", 0.0), 1, "0: off for the category, as TaskVine's");
        assert_eq!(own(c"c", 2.0), 0);
        // "default" is the default's: turned on, then off again.
        assert_eq!(own(c"default", 2.0), 0);
        assert_eq!(vine_enable_disconnect_slow_workers(m.0, 0.0), 1);
        assert_eq!(own(c"", 2.0), VINE_ERROR_INVALID_ARGUMENT);
        assert_eq!(own(c"c", f64::NAN), VINE_ERROR_INVALID_ARGUMENT);
        assert_eq!(
            unsafe { vine_enable_disconnect_slow_workers_category(m.0, std::ptr::null(), 2.0) },
            VINE_ERROR_NULL
        );
    });
}

/// Tasks of category "c" on one remote worker, with the slow-worker rule set
/// by `enable`: ten quick ones, then two that hang until told to go.
fn a_worker_slow_twice_is_found(enable: impl FnOnce(&M)) {
    let dir = tempdir();
    let go = dir.join("go");
    let (m, port) = M::remote();
    enable(&m);
    let mut w = vine_worker(port, &["--cores", "2"]);
    // Ten quick tasks give the category its average.
    let quick: Vec<i32> = (0..10).map(|_| m.submit("true", c"c")).collect();
    for id in quick {
        assert_eq!(m.wait_for(id).0, VINE_RESULT_SUCCESS);
    }
    // Two tasks far slower than that: the first marks the worker, the second
    // has it disconnected and its host blocked.
    let a = m.submit(&held(&go, "a"), c"c");
    let b = m.submit(&held(&go, "b"), c"c");
    let s = m.until("the worker is found slow", |s| s.workers_slow == 1);
    assert!(s.workers_blocked >= 1, "{s:?}");
    m.until("the worker is gone", |s| s.workers_connected == 0);

    // Unblocked, it joins again and both tasks finish, none of them failed.
    assert_eq!(vine_unblock_all(m.0), 0);
    std::fs::write(&go, "").unwrap();
    assert_eq!(m.wait_for(a), (VINE_RESULT_SUCCESS, "a\n".into()));
    assert_eq!(m.wait_for(b), (VINE_RESULT_SUCCESS, "b\n".into()));
    assert_eq!(vine_shutdown(m.0), 0);
    assert!(exits_with(&mut w).success());
}

#[test]
fn a_task_taken_back_for_being_slow_runs_on_another_worker_not_again_where_it_was_slow() {
    let dir = tempdir();
    let go = dir.join("go");
    let (m, port) = M::remote();
    assert_eq!(vine_enable_disconnect_slow_workers(m.0, 2.0), 0);
    // A command that hangs (until `go`) only in a sandbox of the first worker.
    let slow_side = dir.join("slow-side");
    let fast_side = dir.join("fast-side");
    for d in [&slow_side, &fast_side] {
        std::fs::create_dir(d).unwrap();
    }
    let slow_there = format!(
        "case \"$PWD\" in {}/*) while [ ! -e {} ]; do sleep 0.02; done ;; esac; echo ran",
        slow_side.display(),
        go.display()
    );
    let mut first = vine_worker(port, &["--workdir", slow_side.to_str().unwrap()]);
    // Ten quick tasks give the category its average.
    let quick: Vec<i32> = (0..10).map(|_| m.submit("true", c"c")).collect();
    for id in quick {
        assert_eq!(m.wait_for(id).0, VINE_RESULT_SUCCESS);
    }
    // Dispatched to the only worker, where it is slow.
    let id = m.submit(&slow_there, c"c");
    m.until("the task runs", |s| s.tasks_running == 1);
    let mut second = vine_worker(port, &["--workdir", fast_side.to_str().unwrap()]);
    m.until("the second worker joins", |s| s.workers_connected == 2);
    // Taken back from the first worker, it runs on the second, not on the
    // first again (whose core is free first, and which joined first).
    assert_eq!(m.wait_for(id), (VINE_RESULT_SUCCESS, "ran\n".into()));
    let s = m.stats();
    assert_eq!((s.workers_slow, s.workers_connected), (0, 2), "{s:?}");
    std::fs::write(&go, "").unwrap();
    assert_eq!(vine_shutdown(m.0), 0);
    assert!(exits_with(&mut first).success());
    assert!(exits_with(&mut second).success());
}

#[test]
fn the_smaller_manager_calls_do_what_taskvine_documents() {
    let m = M(vine_create(VINE_PORT_NONE));
    // Names: none by default (NULL, as in TaskVine), then one set; an
    // earlier pointer stays readable; NULL forgets the name.
    assert!(vine_get_name(m.0).is_null());
    assert_eq!(unsafe { vine_set_name(m.0, c"first".as_ptr()) }, 0);
    let first = vine_get_name(m.0);
    assert_eq!(unsafe { CStr::from_ptr(first) }, c"first");
    assert_eq!(unsafe { vine_set_name(m.0, c"sweep".as_ptr()) }, 0);
    assert_eq!(unsafe { CStr::from_ptr(vine_get_name(m.0)) }, c"sweep");
    assert_eq!(unsafe { CStr::from_ptr(first) }, c"first");
    assert_eq!(unsafe { vine_set_name(m.0, std::ptr::null()) }, 0);
    assert!(vine_get_name(m.0).is_null());
    assert_eq!(
        unsafe { vine_set_name(m.0, c"".as_ptr()) },
        VINE_ERROR_INVALID_ARGUMENT
    );
    assert!(vine_get_name(std::ptr::null_mut()).is_null());

    // Task ids from a minimum; a smaller one changes nothing.
    assert_eq!(vine_set_task_id_min(m.0, 100), 100);
    assert_eq!(m.submit("true", c"default"), 100);
    assert_eq!(vine_set_task_id_min(m.0, 5), 101);
    assert_eq!(m.wait_for(100).0, VINE_RESULT_SUCCESS);
    // No local worker processes, the default, needs no port and may be said again.
    for _ in 0..2 {
        assert_eq!(
            unsafe { vine_tune(m.0, c"local-worker-processes".as_ptr(), 0.0) },
            0
        );
    }
    assert!(unsafe { vine_tune(m.0, c"local-worker-processes".as_ptr(), 1.0) } < 0);
    let why = unsafe { CStr::from_ptr(vine_last_error()) }.to_string_lossy();
    assert!(why.contains("VINE_PORT_NONE"), "{why}");
    // Ids up to the largest C int; past it, submit refuses and says why.
    {
        let m = M(vine_create(VINE_PORT_NONE));
        assert_eq!(vine_set_task_id_min(m.0, i32::MAX), i32::MAX);
        assert_eq!(m.submit("true", c"default"), i32::MAX);
        let t = unsafe { vine_task_create(c"true".as_ptr()) };
        // Refused as often as it is tried, and a refused task takes no id.
        for _ in 0..3 {
            assert_eq!(vine_submit(m.0, t), 0);
            let why = unsafe { CStr::from_ptr(vine_last_error()) }.to_string_lossy();
            assert!(
                why.contains("exhausted") && why.contains("vine_set_task_id_min"),
                "{why}"
            );
        }
        assert_eq!(vine_task_delete(t), 0);
        // No id is left to name as the next one: an error, not an id given.
        assert_eq!(vine_set_task_id_min(m.0, 1), VINE_ERROR_INVALID_ARGUMENT);
        let why = unsafe { CStr::from_ptr(vine_last_error()) }.to_string_lossy();
        assert!(why.contains("exhausted"), "{why}");
        assert_eq!(m.wait_for(i32::MAX).0, VINE_RESULT_SUCCESS);
    }

    let v = vine_version_string() as *const c_char;
    assert_eq!(unsafe { CStr::from_ptr(v) }, unsafe {
        CStr::from_ptr(vine_version())
    });

    // TaskVine's tune names.
    for (name, value) in [
        (c"keepalive-interval", 10.0),
        (c"keepalive-timeout", 60.0),
        (c"wait-for-workers", 0.0),
        (c"disconnect-slow-workers-factor", 0.0),
        (c"disconnect-slow-worker-factor", 3.0),
        (c"option-blocklist-slow-workers-timeout", 60.0),
        (c"hungry-minimum", 10.0),
        (c"hungry-minimum-factor", 2.0),
        (c"max-task-stdout-storage", 16.0 * 1024.0 * 1024.0),
    ] {
        assert_eq!(
            unsafe { vine_tune(m.0, name.as_ptr(), value) },
            0,
            "{name:?}"
        );
    }
    assert_eq!(
        unsafe { vine_tune(m.0, c"no-such-setting".as_ptr(), 1.0) },
        VINE_ERROR_UNKNOWN_SETTING
    );
    assert_eq!(vine_set_keepalive_interval(m.0, 5), 0);
    assert_eq!(vine_set_keepalive_timeout(m.0, 30), 0);
    assert_eq!(
        vine_set_keepalive_timeout(m.0, -1),
        VINE_ERROR_INVALID_ARGUMENT
    );

    // hungry-minimum: wanted however few slots there are.
    assert_eq!(
        unsafe { vine_tune(m.0, c"hungry-minimum".as_ptr(), 1000.0) },
        0
    );
    assert!(vine_hungry(m.0) >= 1000);

    // TaskVine's return values; a task of an automatically sized category runs.
    assert_eq!(vine_enable_peer_transfers(m.0), 1);
    assert_eq!(vine_disable_peer_transfers(m.0), 1);
    assert_eq!(vine_enable_monitoring(m.0, 1, 0), 1);
    assert_eq!(
        unsafe { vine_set_category_mode(m.0, std::ptr::null(), VINE_ALLOCATION_MODE_MAX) },
        1
    );
    assert_eq!(
        unsafe { vine_set_category_mode(m.0, c"c".as_ptr(), VINE_ALLOCATION_MODE_MIN_WASTE) },
        1
    );
    assert_eq!(
        unsafe { vine_set_category_mode(m.0, c"c".as_ptr(), 99) },
        0,
        "not a mode"
    );
    let id = m.submit("echo same", c"c");
    assert_eq!(m.wait_for(id), (VINE_RESULT_SUCCESS, "same\n".into()));
}

#[test]
fn the_runtime_info_path_set_before_vine_create_holds_the_next_managers_logs() {
    let dir = tempdir();
    let root = dir.join("runs");
    let c = CString::new(root.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { vine_set_runtime_info_path(c.as_ptr()) }, 0);
    assert_eq!(
        unsafe { vine_set_runtime_info_path(std::ptr::null()) },
        VINE_ERROR_NULL
    );
    let m = M(vine_create(VINE_PORT_NONE));
    assert!(!m.0.is_null());
    // Other tests' managers are not affected for long.
    vine::manager::set_runtime_info_root(None);
    let logs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("vine-logs/transactions"))
        .filter(|l| l.exists())
        .collect();
    assert!(!logs.is_empty(), "no log under {}", root.display());

    // One manager's own directory.
    let own = dir.join("own");
    let c = CString::new(own.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { vine_set_runtime_info_path_for(m.0, c.as_ptr()) },
        0
    );
    assert!(own.join("vine-logs/transactions").exists());
}

#[test]
fn vine_get_stats_fills_taskvines_fields() {
    let m = M(vine_create(VINE_PORT_NONE));
    assert_eq!(unsafe { vine_tune(m.0, c"local-cores".as_ptr(), 2.0) }, 0);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let ids = [
        m.submit("true", c"default"),
        m.submit("sleep 0.01", c"default"),
        m.submit("exit 3", c"default"),
    ];
    let s = m.until("all done", |s| s.tasks_done == 3);
    assert_eq!(s.tasks_with_results, 3, "finished, not yet waited for");
    assert_eq!((s.tasks_submitted, s.tasks_dispatched), (3, 3));
    // As TaskVine counts them: by result, so `exit 3` (result SUCCESS, exit
    // code 3) is a successful task.
    assert_eq!((s.tasks_successful, s.tasks_failed), (3, 0));
    assert_eq!((s.tasks_waiting, s.tasks_running), (0, 0));
    assert!(s.time_when_started > 0 && s.time_when_started <= before);
    assert!(s.time_workers_execute >= 10_000, "{s:?}");
    assert!(s.time_workers_execute_good <= s.time_workers_execute);
    assert_eq!(
        (s.workers_connected, s.workers_idle, s.workers_able),
        (1, 1, 1)
    );
    assert_eq!((s.total_cores, s.max_cores, s.min_cores), (2, 2, 2));
    assert_eq!(s.total_cores_exact, 2.0);
    assert_eq!(s.max_memory, s.total_memory);
    for id in ids {
        m.wait_for(id);
    }
    assert_eq!(m.stats().tasks_with_results, 0);
}

#[test]
fn resource_submit_multiplier_lets_each_worker_hold_that_many_times_its_cores() {
    let dir = tempdir();
    let go = dir.join("go");
    for (multiplier, on_workers) in [(2.0, 4), (1.0, 2)] {
        let m = M(vine_create(VINE_PORT_NONE));
        assert_eq!(unsafe { vine_tune(m.0, c"local-cores".as_ptr(), 2.0) }, 0);
        let name = c"resource-submit-multiplier";
        assert_eq!(unsafe { vine_tune(m.0, name.as_ptr(), multiplier) }, 0);
        assert_eq!(
            unsafe { vine_tune(m.0, name.as_ptr(), 0.5) },
            VINE_ERROR_INVALID_ARGUMENT
        );
        let ids: Vec<i32> = (0..6)
            .map(|i| m.submit(&held(&go, &i.to_string()), c"h"))
            .collect();
        // Given to the pool first, then started by its threads: both seen.
        let s = m.until("tasks go to the pool and two start", |s| {
            s.tasks_on_workers >= on_workers && s.tasks_running >= 2
        });
        assert_eq!(
            (s.tasks_on_workers, s.tasks_running, s.tasks_waiting),
            (on_workers, 2, 6 - on_workers),
            "multiplier {multiplier}"
        );
        std::fs::write(&go, "").unwrap();
        for id in ids {
            assert_eq!(m.wait_for(id).0, VINE_RESULT_SUCCESS);
        }
        std::fs::remove_file(&go).unwrap();
    }
}
