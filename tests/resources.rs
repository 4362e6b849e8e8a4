//! Measured resources and automatic sizing through the C API: what the local pool
//! and a remote `vine_worker` measure (`vine_task_get_resources`), the watchdog
//! on and off, TaskVine's allocation modes with their retry at the maximum,
//! bounds on concurrent tasks, per-category counts, and bad summaries.
//!
//! Memory is used by `dd` with a block as large as wanted: it fills the whole
//! block, so the peak is known (and the kernel reports it even for a process too
//! quick to be sampled).

mod common;
use common::{fake_worker, next_run, tempdir, vine_worker};

use std::ffi::{c_void, CStr, CString};

use vine::ffi::manager::*;
use vine::ffi::resources::*;
use vine::ffi::task::*;
use vine::ffi::*;

struct M(*mut vine_manager);

impl Drop for M {
    fn drop(&mut self) {
        vine_delete(self.0);
    }
}

/// A manager without a port whose local pool has `cores` cores and 1 GB.
fn local(cores: f64) -> M {
    let m = vine_create(VINE_PORT_NONE);
    assert!(!m.is_null());
    unsafe {
        assert_eq!(vine_tune(m, c"local-cores".as_ptr(), cores), 0);
        assert_eq!(vine_tune(m, c"local-memory".as_ptr(), 1024.0), 0);
        assert_eq!(vine_tune(m, c"local-disk".as_ptr(), 4096.0), 0);
    }
    M(m)
}

fn command(cmd: &str, category: &CStr) -> *mut vine_task {
    let c = CString::new(cmd).unwrap();
    let t = unsafe { vine_task_create(c.as_ptr()) };
    assert!(!t.is_null());
    assert_eq!(unsafe { vine_task_set_category(t, category.as_ptr()) }, 0);
    t
}

/// Submits `t` and waits for it.
fn run(m: &M, t: *mut vine_task) -> *mut vine_task {
    assert!(vine_submit(m.0, t) > 0, "{}", last_error());
    let back = vine_wait(m.0, 120);
    assert_eq!(back, t, "{}", last_error());
    back
}

fn last_error() -> String {
    let e = vine_last_error();
    if e.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn resources(t: *mut vine_task, which: &CStr) -> Option<vine_resources> {
    let r = unsafe { vine_task_get_resources(t, which.as_ptr()) };
    (!r.is_null()).then(|| unsafe { *r })
}

fn result(t: *mut vine_task) -> (vine_result_t, String) {
    let reason = vine_task_get_reason(t);
    let reason = if reason.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(reason) }
            .to_string_lossy()
            .into_owned()
    };
    (vine_task_get_result(t), reason)
}

/// `mb` MB held by `dd`, and `disk_mb` MB written into the sandbox.
fn user(mb: u64, disk_mb: u64) -> String {
    format!(
        "dd if=/dev/zero of=/dev/null bs={mb}M count=1 2>/dev/null && \
         dd if=/dev/zero of=out bs=1M count={disk_mb} 2>/dev/null"
    )
}

#[test]
fn a_monitored_command_reports_its_peaks_and_an_unmonitored_one_nothing() {
    let m = local(2.0);
    let t = run(&m, command(&user(100, 30), c"a"));
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS);
    // Not monitored: as in TaskVine, what it was given (no memory bound),
    // nothing measured.
    let r = resources(t, c"measured").expect("a summary");
    assert_eq!((r.memory, r.cpu_time, r.bytes_read), (0.0, -1.0, -1.0));
    assert_eq!(
        unsafe { vine_task_get_metric(t, c"memory_measured".as_ptr()) },
        -1
    );
    vine_task_delete(t);

    assert_eq!(vine_enable_monitoring(m.0, 1, 0), 1);
    let t = run(&m, command(&user(100, 30), c"a"));
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    let r = resources(t, c"measured").expect("measured");
    assert!((100.0..200.0).contains(&r.memory), "memory {}", r.memory);
    assert!((30.0..40.0).contains(&r.disk), "disk {}", r.disk);
    assert!(
        r.wall_time > 0.0 && r.cpu_time >= 0.0,
        "{} {}",
        r.wall_time,
        r.cpu_time
    );
    assert!(r.bytes_read >= 100.0, "read {} MB", r.bytes_read);
    assert!(r.bytes_written >= 30.0, "wrote {} MB", r.bytes_written);
    assert!(r.max_concurrent_processes >= 1.0);
    assert!(r.start > 0.0 && r.end >= r.start);
    let metric = unsafe { vine_task_get_metric(t, c"memory_measured".as_ptr()) };
    assert_eq!(metric as f64, r.memory);
    // What it was given, and what it asked for (nothing: -1).
    let a = resources(t, c"allocated").expect("allocated");
    assert_eq!((a.cores, a.memory), (1.0, 0.0));
    let q = resources(t, c"requested").expect("requested");
    assert_eq!(
        (q.cores, q.memory, q.disk, q.gpus),
        (-1.0, -1.0, -1.0, -1.0)
    );
    // The pointer is the task's, and stays put.
    let p1 = unsafe { vine_task_get_resources(t, c"measured".as_ptr()) };
    let p2 = unsafe { vine_task_get_resources(t, c"measured".as_ptr()) };
    assert_eq!(p1, p2);
    vine_task_delete(t);
}

/// Run by the test below in a process started by a larger one.
#[test]
fn zz_started_by_a_larger_program_entry() {
    match std::env::var("VINE_TEST_STAGE").as_deref() {
        // The larger program: 300 MB touched, then this binary started again.
        Ok("launcher") => {
            let big = vec![1u8; 300 << 20];
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "zz_started_by_a_larger_program_entry"])
                .args(["--nocapture", "--test-threads=1"])
                .env("VINE_TEST_STAGE", "program")
                .status()
                .unwrap();
            std::hint::black_box(&big);
            std::process::exit(status.code().unwrap_or(1));
        }
        // The program: its command's 100 MB, too quick to be sampled reliably,
        // and a 50 MB limit passed.
        Ok("program") => {
            let m = local(1.0);
            assert_eq!(vine_enable_monitoring(m.0, 1, 0), 1);
            let t = run(&m, command(&user(100, 1), c"a"));
            let r = resources(t, c"measured").expect("measured");
            assert!((100.0..200.0).contains(&r.memory), "memory {}", r.memory);
            vine_task_delete(t);
            let t = command(&user(100, 1), c"a");
            assert_eq!(vine_task_set_memory(t, 50), 0);
            let t = run(&m, t);
            assert_eq!(
                result(t).0,
                VINE_RESULT_RESOURCE_EXHAUSTION,
                "{}",
                result(t).1
            );
            vine_task_delete(t);
            drop(m);
            std::process::exit(0);
        }
        _ => {}
    }
}

#[test]
fn a_command_peak_is_measured_when_the_program_was_started_by_a_larger_one() {
    // A process inherits the peak of the one that started it (at exec); a
    // launcher larger than the tasks must not hide theirs.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "zz_started_by_a_larger_program_entry"])
        .args(["--nocapture", "--test-threads=1"])
        .env("VINE_TEST_STAGE", "launcher")
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
}

unsafe extern "C" fn spin(
    _input: *const c_void,
    _len: usize,
    _output: *mut vine_buffer,
    _context: *mut c_void,
) -> i32 {
    // Until this thread has used 30 ms more CPU.
    let cpu_ns = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let start = cpu_ns();
    while cpu_ns() - start < 30_000_000 {}
    0
}

#[test]
fn a_thread_function_reports_its_cpu_time_and_no_memory() {
    let m = local(1.0);
    assert_eq!(vine_enable_monitoring(m.0, 1, 0), 1);
    let t =
        unsafe { vine_task_create_local(Some(spin), std::ptr::null_mut(), std::ptr::null(), 0) };
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS);
    let r = resources(t, c"measured").expect("measured");
    assert_eq!(r.memory, -1.0, "a thread's memory is not told apart");
    assert!(r.cpu_time >= 0.029, "cpu {}", r.cpu_time);
    assert!(
        r.cpu_time <= r.wall_time + 0.01,
        "{} > {}",
        r.cpu_time,
        r.wall_time
    );
    vine_task_delete(t);
}

#[test]
fn without_the_watchdog_a_task_past_its_memory_is_measured_not_stopped() {
    let m = local(1.0);
    let over = |m: &M| {
        let t = command(&user(100, 1), c"a");
        assert_eq!(vine_task_set_memory(t, 50), 0);
        run(m, t)
    };
    let t = over(&m);
    assert_eq!(
        result(t).0,
        VINE_RESULT_RESOURCE_EXHAUSTION,
        "{}",
        result(t).1
    );
    vine_task_delete(t);
    assert_eq!(vine_enable_monitoring(m.0, 0, 0), 1);
    let t = over(&m);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    assert!(resources(t, c"measured").unwrap().memory >= 100.0);
    vine_task_delete(t);
}

#[test]
fn an_automatic_category_runs_whole_workers_until_steady_then_what_its_tasks_use() {
    let m = local(4.0);
    unsafe {
        assert_eq!(vine_tune(m.0, c"category-steady-n-tasks".as_ptr(), 2.0), 0);
        assert_eq!(
            vine_set_category_mode(m.0, c"auto".as_ptr(), VINE_ALLOCATION_MODE_MAX),
            1
        );
    }
    for _ in 0..2 {
        let t = run(&m, command(&user(100, 1), c"auto"));
        assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
        let a = resources(t, c"allocated").unwrap();
        assert_eq!(
            (a.cores, a.memory, a.disk),
            (4.0, 1024.0, 4096.0),
            "whole worker"
        );
        // The command runs one process at a time: its CPU time fits in its wall
        // time, which counts from before it was started.
        let r = resources(t, c"measured").unwrap();
        assert!(r.cores <= 1.0, "measured {} cores", r.cores);
        vine_task_delete(t);
    }
    let t = run(&m, command(&user(100, 1), c"auto"));
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    let a = resources(t, c"allocated").unwrap();
    let r = resources(t, c"measured").unwrap();
    assert_eq!(a.cores, 1.0);
    assert!(
        a.memory >= 100.0 && a.memory <= 120.0,
        "memory {}",
        a.memory
    );
    assert!(a.memory >= r.memory);
    vine_task_delete(t);

    // A task that sets its own memory keeps it.
    let t = command(&user(10, 1), c"auto");
    assert_eq!(vine_task_set_memory(t, 300), 0);
    let t = run(&m, t);
    assert_eq!(resources(t, c"allocated").unwrap().memory, 300.0);
    assert_eq!(resources(t, c"requested").unwrap().memory, 300.0);
    vine_task_delete(t);

    // One that needs more than the computed allocation runs again with the
    // maximum, even with no retries of its own.
    let t = command(&user(300, 1), c"auto");
    assert_eq!(vine_task_set_retries(t, 0), 0);
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    assert_eq!(resources(t, c"allocated").unwrap().memory, 1024.0);
    vine_task_delete(t);

    let mut s = vine_stats::default();
    assert_eq!(
        unsafe { vine_get_stats_category(m.0, c"auto".as_ptr(), &mut s) },
        0
    );
    assert_eq!(s.tasks_submitted, 5);
    assert_eq!(s.tasks_done, 5);
    assert_eq!(s.tasks_successful, 5);
    assert_eq!(s.tasks_exhausted_attempts, 1);
    assert_eq!(s.tasks_dispatched, 6);
    assert_eq!(s.tasks_waiting, 0);
    let mut other = vine_stats::default();
    assert_eq!(
        unsafe { vine_get_stats_category(m.0, c"never".as_ptr(), &mut other) },
        0
    );
    assert_eq!(other.tasks_submitted, 0);
}

#[test]
fn a_category_maximum_bounds_fixed_tasks_and_the_retry() {
    let m = local(4.0);
    let max = vine_resources_create(-1.0);
    unsafe {
        assert_eq!(vine_resources_set(max, c"cores".as_ptr(), 2.0), 1);
        assert_eq!(vine_resources_set(max, c"memory".as_ptr(), 200.0), 1);
        assert_eq!(vine_resources_get(max, c"memory".as_ptr()), 200.0);
        assert_eq!(
            vine_set_category_resources_max(m.0, c"capped".as_ptr(), max),
            0
        );
    }
    // FIXED: what a task leaves unset is the category's maximum.
    let t = run(&m, command("true", c"capped"));
    let a = resources(t, c"allocated").unwrap();
    assert_eq!((a.cores, a.memory), (2.0, 200.0));
    vine_task_delete(t);
    // Past it: exhausted, and FIXED does not retry.
    let t = run(&m, command(&user(300, 1), c"capped"));
    assert_eq!(
        result(t).0,
        VINE_RESULT_RESOURCE_EXHAUSTION,
        "{}",
        result(t).1
    );
    vine_task_delete(t);
    unsafe { vine_resources_delete(max) };
}

#[test]
fn what_the_program_sets_on_a_task_its_category_sized_is_what_its_next_submission_asks() {
    let m = local(4.0);
    let max = vine_resources_create(-1.0);
    unsafe {
        assert_eq!(vine_resources_set(max, c"memory".as_ptr(), 500.0), 1);
        assert_eq!(
            vine_set_category_resources_max(m.0, c"sized".as_ptr(), max),
            0
        );
    }
    // First run: the category gives the unset memory its maximum.
    let t = run(&m, command(&user(300, 1), c"sized"));
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    assert_eq!(resources(t, c"allocated").unwrap().memory, 500.0);
    // Set now, before the next submission: asked for, and enforced.
    assert_eq!(vine_task_set_cores(t, 0.25), 0);
    assert_eq!(vine_task_set_memory(t, 100), 0);
    let r = resources(t, c"requested").unwrap();
    assert_eq!((r.cores, r.memory), (0.25, 100.0));
    // What the last attempt was given is still what it was.
    assert_eq!(resources(t, c"allocated").unwrap().memory, 500.0);
    let t = run(&m, t);
    let a = resources(t, c"allocated").unwrap();
    assert_eq!((a.cores, a.memory), (0.25, 100.0));
    assert_eq!(
        result(t).0,
        VINE_RESULT_RESOURCE_EXHAUSTION,
        "{}",
        result(t).1
    );
    // Unset again (negative values), then resubmitted: the category's
    // maximum once more, and the task fits in it.
    let none = vine_resources_create(-1.0);
    unsafe {
        assert_eq!(vine_task_set_resources(t, none), 0);
        vine_resources_delete(none);
    }
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    let a = resources(t, c"allocated").unwrap();
    assert_eq!((a.cores, a.memory), (1.0, 500.0));
    vine_task_delete(t);
    unsafe { vine_resources_delete(max) };
}

#[test]
fn a_task_its_category_makes_larger_than_the_pool_comes_back_unschedulable() {
    let m = local(2.0);
    let big = vine_resources_create(-1.0);
    unsafe {
        assert_eq!(vine_resources_set(big, c"cores".as_ptr(), 64.0), 1);
        // FIXED: a task that sets nothing gets the maximum, 64 cores.
        assert_eq!(
            vine_set_category_resources_max(m.0, c"wide".as_ptr(), big),
            0
        );
        // An automatic mode that starts at a minimum of 64 cores.
        assert_eq!(
            vine_set_category_resources_min(m.0, c"atleast".as_ptr(), big),
            0
        );
        assert_eq!(
            vine_set_category_mode(m.0, c"atleast".as_ptr(), VINE_ALLOCATION_MODE_MAX),
            1
        );
    }
    for category in [c"wide", c"atleast"] {
        let t = run(&m, command("true", category));
        let (r, why) = result(t);
        assert_eq!(r, VINE_RESULT_UNSCHEDULABLE, "{category:?}: {why}");
        assert!(why.contains("64 cores"), "{why}");
        vine_task_delete(t);
    }
    // A task that sets its cores is sized by them, and runs.
    let t = command("true", c"wide");
    assert_eq!(vine_task_set_cores(t, 1.0), 0);
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    vine_task_delete(t);
    unsafe { vine_resources_delete(big) };
}

#[test]
fn at_most_max_concurrent_tasks_of_a_category_run_at_once() {
    let dir = tempdir();
    let m = local(4.0);
    unsafe { assert_eq!(vine_set_category_max_concurrent(m.0, c"one".as_ptr(), 1), 0) };
    // Each holds a lock directory while it runs; a second one at once would fail.
    let lock = dir.join("lock");
    let cmd = format!(
        "mkdir {0} || exit 3; for i in 1 2 3 4 5 6 7 8; do test -d {0} || exit 4; done; rmdir {0}",
        lock.display()
    );
    let n = 12;
    for _ in 0..n {
        assert!(vine_submit(m.0, command(&cmd, c"one")) > 0);
    }
    // Others run alongside.
    assert!(vine_submit(m.0, command("true", c"other")) > 0);
    for _ in 0..=n {
        let t = vine_wait(m.0, 120);
        assert!(!t.is_null());
        assert_eq!(result(t).0, VINE_RESULT_SUCCESS);
        assert_eq!(
            vine_task_get_exit_code(t),
            0,
            "two tasks of the category at once"
        );
        vine_task_delete(t);
    }
}

#[test]
fn a_remote_worker_measures_what_its_tasks_use() {
    let m = vine_create(0);
    assert!(!m.is_null());
    let m = M(m);
    unsafe { assert_eq!(vine_tune(m.0, c"local-cores".as_ptr(), 0.0), 0) };
    assert_eq!(vine_enable_monitoring(m.0, 1, 0), 1);
    let port = vine_port(m.0) as u16;
    let mut w = vine_worker(port, &["--memory", "1024", "--disk", "4096"]);
    let t = run(&m, command(&user(100, 20), c"remote"));
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    let r = resources(t, c"measured").expect("measured at the worker");
    assert!((100.0..200.0).contains(&r.memory), "memory {}", r.memory);
    assert!((20.0..30.0).contains(&r.disk), "disk {}", r.disk);
    vine_task_delete(t);
    drop(m);
    let _ = w.kill();
    let _ = w.wait();
}

#[test]
fn bad_summaries_and_names_are_refused() {
    let m = local(1.0);
    let s = vine_resources_create(-1.0);
    unsafe {
        for bad in [f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(vine_resources_set(s, c"memory".as_ptr(), bad), 1);
            assert!(vine_set_category_resources_max(m.0, c"a".as_ptr(), s) < 0);
            assert!(vine_task_set_resources(command("true", c"a"), s) < 0);
        }
        assert_eq!(vine_resources_set(s, c"memory".as_ptr(), -1.0), 1);
        assert_eq!(vine_resources_set(s, c"cores".as_ptr(), 0.0005), 1);
        // Rounded up to a thousandth of a core.
        assert_eq!(vine_set_resources_min(m.0, s), 0);
        assert_eq!(vine_resources_set(s, c"no such field".as_ptr(), 1.0), 0);
        assert_eq!(vine_resources_get(s, c"no such field".as_ptr()), -1.0);
        assert_eq!(
            vine_resources_set(std::ptr::null_mut(), c"cores".as_ptr(), 1.0),
            0
        );
        assert!(vine_set_category_resources_max(m.0, std::ptr::null(), s) < 0);
        assert!(vine_set_category_resources_max(m.0, c"".as_ptr(), s) < 0);
        assert!(vine_set_category_max_concurrent(std::ptr::null_mut(), c"a".as_ptr(), 1) < 0);
        assert!(vine_get_stats_category(m.0, c"a".as_ptr(), std::ptr::null_mut()) < 0);
        // 0 cores: no minimum, but never a maximum or a first allocation (a
        // task given no cores would take none, any number running at once).
        let zero = vine_resources_create(-1.0);
        assert_eq!(vine_resources_set(zero, c"cores".as_ptr(), 0.0), 1);
        assert_eq!(vine_set_category_resources_min(m.0, c"z".as_ptr(), zero), 0);
        assert_eq!(
            vine_set_category_resources_max(m.0, c"z".as_ptr(), zero),
            VINE_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            vine_set_category_first_allocation_guess(m.0, c"z".as_ptr(), zero),
            VINE_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            vine_set_resources_max(m.0, zero),
            VINE_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(vine_resources_set(zero, c"cores".as_ptr(), 0.0001), 1);
        assert_eq!(
            vine_set_category_resources_max(m.0, c"z".as_ptr(), zero),
            0,
            "rounded up to a thousandth"
        );
        vine_resources_delete(zero);
        // NULL: no bound at all.
        assert_eq!(vine_set_resources_max(m.0, std::ptr::null()), 0);
        let t = command("true", c"a");
        assert!(vine_task_get_resources(t, c"weird".as_ptr()).is_null());
        assert!(vine_task_get_resources(t, std::ptr::null()).is_null());
        assert!(vine_task_get_resources(std::ptr::null_mut(), c"measured".as_ptr()).is_null());
        assert_eq!(
            resources(t, c"allocated").map(|a| a.cores),
            Some(-1.0),
            "not run yet"
        );
        // Set from a summary: cores and gpus, the rest untouched.
        let r = vine_resources_create(-1.0);
        (*r).cores = 2.5;
        (*r).gpus = 0.0;
        assert_eq!(vine_task_set_resources(t, r), 0);
        let q = resources(t, c"requested").unwrap();
        assert_eq!((q.cores, q.memory, q.gpus), (2.5, -1.0, 0.0));
        // What a single setter refuses is refused here too, not rounded, and
        // nothing changes.
        for (field, bad) in [
            (c"cores", 1.0004),
            (c"memory", 100.7),
            (c"disk", 0.2),
            (c"gpus", 0.5),
        ] {
            let b = vine_resources_create(-1.0);
            assert_eq!(vine_resources_set(b, field.as_ptr(), bad), 1);
            assert_eq!(vine_task_set_resources(t, b), VINE_ERROR_INVALID_ARGUMENT);
            let q = resources(t, c"requested").unwrap();
            assert_eq!((q.cores, q.memory, q.disk, q.gpus), (2.5, -1.0, -1.0, 0.0));
            vine_resources_delete(b);
        }
        assert_eq!(vine_task_set_cores(t, 1.0004), VINE_ERROR_INVALID_ARGUMENT);
        assert!(vine_submit(m.0, t) > 0);
        assert!(
            vine_task_get_resources(t, c"requested".as_ptr()).is_null(),
            "the manager's"
        );
        let back = vine_wait(m.0, 60);
        assert_eq!(back, t);
        vine_task_delete(t);
        vine_resources_delete(r);
        vine_resources_delete(s);
        vine_resources_delete(std::ptr::null_mut());
    }
}

#[test]
fn a_forged_measurement_cannot_size_a_category_past_the_largest_worker() {
    use vine::protocol::{TaskReport, ToManager};
    use vine::Measured;
    let m = vine_create(0);
    assert!(!m.is_null());
    let m = M(m);
    unsafe {
        assert_eq!(vine_tune(m.0, c"local-cores".as_ptr(), 0.0), 0);
        assert_eq!(vine_tune(m.0, c"category-steady-n-tasks".as_ptr(), 1.0), 0);
        assert_eq!(
            vine_set_category_mode(m.0, c"forged".as_ptr(), VINE_ALLOCATION_MODE_MAX),
            1
        );
    }
    assert_eq!(vine_enable_monitoring(m.0, 0, 0), 1);
    let t = command("true", c"forged");
    assert!(vine_submit(m.0, t) > 0, "{}", last_error());
    // (A manager made from C takes workers once it is first used.)
    let (mut r, mut w) = fake_worker(vine_port(m.0) as u16, &[]);
    let spec = next_run(&mut r);
    w.send(&ToManager::Done(Box::new(TaskReport {
        id: spec.id,
        attempt: spec.attempt,
        result: 0,
        exit_code: 0,
        output: Vec::new(),
        stdout: Some(Vec::new()),
        reason: None,
        started: 1,
        done: 2,
        outputs: Vec::new(),
        lost: Vec::new(),
        unkept: false,
        kept: Vec::new(),
        arrived: Vec::new(),
        measured: Some(Measured {
            wall_us: 1,
            cpu_us: u64::MAX,
            memory_mb: Some(u64::MAX),
            disk_mb: u64::MAX,
            bytes_read: u64::MAX,
            bytes_written: u64::MAX,
            max_processes: u32::MAX,
        }),
    })))
    .unwrap();
    assert_eq!(vine_wait(m.0, 120), t, "{}", last_error());
    let got = resources(t, c"measured").expect("measured");
    for v in [got.memory, got.disk, got.cores, got.wall_time, got.cpu_time] {
        assert!(v.is_finite() && v >= 0.0, "{got:?}");
    }
    assert!(got.memory <= vine::task::MAX_MB as f64, "{}", got.memory);
    vine_task_delete(t);
    // The category is steady on that one figure; its next task is still sized
    // to fit the largest worker, and runs.
    let t = command("true", c"forged");
    assert!(vine_submit(m.0, t) > 0, "{}", last_error());
    let spec = next_run(&mut r);
    let (cores, memory, disk, _) = spec.resources;
    assert!(
        cores <= 4000 && memory <= 1024 && disk <= 4096,
        "{:?}",
        spec.resources
    );
}

/// The summary `vine_task_set_monitor_output` asked for, parsed.
fn summary(dir: &std::path::Path, id: i32) -> serde_json::Value {
    let path = dir.join(format!("vine-task-{id}.summary"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn a_task_given_a_monitor_output_is_measured_and_its_summary_written_there() {
    let m = local(1.0);
    let tmp = tempdir();
    // Made when the first summary is written.
    let dir = tmp.join("summaries/of/tasks");
    let c_dir = CString::new(dir.to_str().unwrap()).unwrap();
    // Monitoring is not on: the task alone is measured.
    let t = command(&user(100, 30), c"a");
    assert_eq!(
        unsafe { vine_task_set_monitor_output(t, c_dir.as_ptr()) },
        1
    );
    let id = vine_submit(m.0, t);
    assert!(id > 0, "{}", last_error());
    assert_eq!(vine_wait(m.0, 120), t, "{}", last_error());
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    let r = resources(t, c"measured").expect("measured");
    let s = summary(&dir, id);
    assert_eq!(s["task_id"], id);
    assert_eq!(s["category"], "a");
    assert_eq!(s["result"], "SUCCESS");
    assert_eq!(s["exit_status"], 0);
    assert_eq!(s["memory"][0].as_f64(), Some(r.memory));
    assert_eq!(s["memory"][1], "MB");
    assert!((100.0..200.0).contains(&r.memory), "memory {}", r.memory);
    assert_eq!(s["disk"][0].as_f64(), Some(r.disk));
    assert_eq!(s["wall_time"][0].as_f64(), Some(r.wall_time));
    assert_eq!(s["wall_time"][1], "s");
    assert!(s["bytes_read"][0].as_f64().unwrap() >= 100.0, "{s}");
    // Resubmitted, it keeps the setting; the file of its new id is written.
    assert_eq!(vine_submit(m.0, t), id + 1, "{}", last_error());
    assert_eq!(vine_wait(m.0, 120), t);
    assert_eq!(summary(&dir, id + 1)["task_id"], id + 1);
    vine_task_delete(t);

    // A THREAD function: no memory of its own to report.
    let t =
        unsafe { vine_task_create_local(Some(spin), std::ptr::null_mut(), std::ptr::null(), 0) };
    assert_eq!(
        unsafe { vine_task_set_monitor_output(t, c_dir.as_ptr()) },
        1
    );
    let id = vine_submit(m.0, t);
    assert_eq!(vine_wait(m.0, 120), t);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS);
    let s = summary(&dir, id);
    assert!(s.get("memory").is_none(), "{s}");
    assert!(s["cpu_time"][0].as_f64().unwrap() > 0.0, "{s}");
    vine_task_delete(t);

    // Cancelled before it ran: nothing measured, no file.
    let blocker = command("sleep 60", c"b");
    let blocked = vine_submit(m.0, blocker);
    let t = command("true", c"a");
    unsafe { vine_task_set_monitor_output(t, c_dir.as_ptr()) };
    let id = vine_submit(m.0, t);
    assert_eq!(vine_cancel_by_task_id(m.0, id), 0, "{}", last_error());
    assert_eq!(vine_wait_for_task_id(m.0, id, 60), t);
    assert_eq!(result(t).0, VINE_RESULT_CANCELLED);
    assert!(!dir.join(format!("vine-task-{id}.summary")).exists());
    vine_task_delete(t);
    assert_eq!(vine_cancel_by_task_id(m.0, blocked), 0);
    assert_eq!(vine_wait(m.0, 60), blocker);
    vine_task_delete(blocker);
    // Only the summaries: no partial file left behind.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with(".summary")), "{names:?}");

    // Refused: NULL and empty directories, a NULL task.
    let t = command("true", c"a");
    assert_eq!(
        unsafe { vine_task_set_monitor_output(t, std::ptr::null()) },
        0
    );
    assert!(last_error().contains("NULL"), "{}", last_error());
    assert_eq!(unsafe { vine_task_set_monitor_output(t, c"".as_ptr()) }, 0);
    assert!(last_error().contains("empty"), "{}", last_error());
    assert_eq!(
        unsafe { vine_task_set_monitor_output(std::ptr::null_mut(), c_dir.as_ptr()) },
        0
    );
    vine_task_delete(t);
}

#[test]
fn summaries_of_an_earlier_run_size_a_category_from_its_first_task() {
    let tmp = tempdir();
    let file = tmp.join("earlier.summaries");
    // Two tasks of "s" used 200 and 180 MB; one of "other", 900 MB.
    std::fs::write(
        &file,
        "{\"category\":\"s\",\"memory\":[200,\"MB\"],\"disk\":[3,\"MB\"],\"cores\":[1,\"cores\"],\"wall_time\":[2,\"s\"]}\n\
         {\"category\":\"s\",\"memory\":180,\"disk\":2,\"cpu_time\":1,\"wall_time\":1}\n\
         {\"category\":\"other\",\"memory\":900}\n",
    )
    .unwrap();
    let c_file = CString::new(file.to_str().unwrap()).unwrap();
    let sized = |max: Option<f64>| {
        let m = local(1.0);
        unsafe {
            assert_eq!(vine_tune(m.0, c"category-steady-n-tasks".as_ptr(), 2.0), 0);
            assert_eq!(
                vine_set_category_mode(m.0, c"s".as_ptr(), VINE_ALLOCATION_MODE_MAX),
                1
            );
        }
        let cap = max.map(|mb| {
            let r = vine_resources_create(-1.0);
            unsafe { (*r).memory = mb };
            r
        });
        let rc = unsafe {
            vine_initialize_categories(m.0, cap.unwrap_or(std::ptr::null_mut()), c_file.as_ptr())
        };
        assert_eq!(rc, 0, "{}", last_error());
        if let Some(r) = cap {
            unsafe { vine_resources_delete(r) };
        }
        let t = run(&m, command("true", c"s"));
        assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
        let a = resources(t, c"allocated").expect("allocated");
        vine_task_delete(t);
        a
    };
    // Steady from the start: the largest measured (in its bucket), not the
    // whole pool (1024 MB).
    let a = sized(None);
    assert!((200.0..216.0).contains(&a.memory), "memory {}", a.memory);
    assert_eq!(a.cores, 1.0);
    // What the summaries say is bounded by the max given (then rounded up to
    // its bucket, as any measurement).
    let a = sized(Some(150.0));
    assert!((150.0..160.0).contains(&a.memory), "memory {}", a.memory);

    // Nothing counts from a file that is not all summaries; what is wrong is said.
    let m = local(1.0);
    let bad = tmp.join("bad.summaries");
    std::fs::write(&bad, "{\"memory\":1}\n{\"memory\":[1,\"GB\"]}").unwrap();
    let c_bad = CString::new(bad.to_str().unwrap()).unwrap();
    let rc = unsafe { vine_initialize_categories(m.0, std::ptr::null(), c_bad.as_ptr()) };
    assert_eq!(rc, VINE_ERROR_INVALID_ARGUMENT);
    assert!(last_error().contains("summary 2"), "{}", last_error());
    let missing = CString::new(tmp.join("none").to_str().unwrap()).unwrap();
    let rc = unsafe { vine_initialize_categories(m.0, std::ptr::null(), missing.as_ptr()) };
    assert_eq!(rc, VINE_ERROR_IO, "{}", last_error());
    let rc = unsafe { vine_initialize_categories(m.0, std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, VINE_ERROR_NULL);
    let r = vine_resources_create(-1.0);
    unsafe { (*r).memory = f64::NAN };
    let rc = unsafe { vine_initialize_categories(m.0, r, c_file.as_ptr()) };
    assert_eq!(rc, VINE_ERROR_INVALID_ARGUMENT);
    unsafe { vine_resources_delete(r) };
    let rc = unsafe {
        vine_initialize_categories(std::ptr::null_mut(), std::ptr::null(), c_file.as_ptr())
    };
    assert_eq!(rc, VINE_ERROR_NULL);
}

#[test]
fn proportional_resources_give_a_task_its_share_of_the_pool() {
    // 2 cores, 1024 MB, 4096 MB of disk.
    let m = local(2.0);
    let allocated = |t: *mut vine_task| {
        let t = run(&m, t);
        assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
        let a = resources(t, c"allocated").expect("allocated");
        vine_task_delete(t);
        (a.cores, a.memory, a.disk)
    };
    let one_core = || {
        let t = command("true", c"p");
        assert_eq!(vine_task_set_cores(t, 1.0), 0);
        t
    };
    // Off (vine's default): what it asked for, no memory or disk bound.
    assert_eq!(allocated(one_core()), (1.0, 0.0, 0.0));
    assert_eq!(vine_enable_proportional_resources(m.0), 0);
    assert_eq!(allocated(one_core()), (1.0, 512.0, 2048.0));
    // Asking for nothing: the whole pool.
    assert_eq!(allocated(command("true", c"p")), (2.0, 1024.0, 4096.0));
    // A memory limit given as a share is enforced as one that was set.
    let t = command(&user(600, 0), c"p");
    assert_eq!(vine_task_set_cores(t, 1.0), 0);
    assert_eq!(vine_enable_monitoring(m.0, 1, 0), 1);
    let t = run(&m, t);
    assert_eq!(
        result(t).0,
        VINE_RESULT_RESOURCE_EXHAUSTION,
        "{}",
        result(t).1
    );
    vine_task_delete(t);
    assert_eq!(vine_disable_proportional_resources(m.0), 0);
    assert_eq!(allocated(one_core()), (1.0, 0.0, 0.0));
    // TaskVine's tune names for the same switch: 1 on, 0 off.
    let tune = |name: &std::ffi::CStr, v: f64| unsafe { vine_tune(m.0, name.as_ptr(), v) };
    assert_eq!(tune(c"proportional-resources", 1.0), 0);
    assert_eq!(allocated(one_core()), (1.0, 512.0, 2048.0));
    assert_eq!(tune(c"proportional-resources", 0.0), 0);
    assert_eq!(allocated(one_core()), (1.0, 0.0, 0.0));
    assert_eq!(tune(c"force-proportional-resources", 1.0), 0);
    assert_eq!(allocated(one_core()), (1.0, 512.0, 2048.0));
    for bad in [f64::NAN, -1.0, 2.0, 0.5] {
        assert_eq!(
            tune(c"proportional-resources", bad),
            VINE_ERROR_INVALID_ARGUMENT,
            "{bad}"
        );
    }
    // Refused, nothing changed: still on.
    assert_eq!(allocated(one_core()), (1.0, 512.0, 2048.0));
    assert_eq!(tune(c"force-proportional-resources", 0.0), 0);
    assert_eq!(allocated(one_core()), (1.0, 0.0, 0.0));
    assert_eq!(
        vine_enable_proportional_resources(std::ptr::null_mut()),
        VINE_ERROR_NULL
    );
    assert_eq!(
        vine_disable_proportional_resources(std::ptr::null_mut()),
        VINE_ERROR_NULL
    );
}

#[test]
fn a_summarys_wall_time_and_end_bound_the_task_as_in_taskvine() {
    let m = local(2.0);
    // wall_time: the most seconds the task may run.
    let t = command("exec sleep 30", c"w");
    let r = vine_resources_create(-1.0);
    unsafe { (*r).wall_time = 1.0 };
    assert_eq!(unsafe { vine_task_set_resources(t, r) }, 0);
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_MAX_WALL_TIME, "{}", result(t).1);
    // Killed: the signal is its exit code, as in TaskVine.
    assert_eq!(vine_task_get_exit_code(t), 9);
    vine_task_delete(t);
    // end: microseconds since the epoch, here already past.
    let t = command("true", c"w");
    unsafe {
        (*r).wall_time = -1.0;
        (*r).end = 1_000_000.0;
    }
    assert_eq!(unsafe { vine_task_set_resources(t, r) }, 0);
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_MAX_END_TIME, "{}", result(t).1);
    vine_task_delete(t);
    // Refused, changing nothing: the task still runs to its end.
    for (wall_time, end) in [
        (f64::NAN, -1.0),
        (f64::INFINITY, -1.0),
        (-1.0, f64::NAN),
        (-1.0, 0.5),
    ] {
        let t = command("true", c"w");
        unsafe {
            (*r).wall_time = wall_time;
            (*r).end = end;
            (*r).cores = 1.0;
        }
        assert_eq!(
            unsafe { vine_task_set_resources(t, r) },
            VINE_ERROR_INVALID_ARGUMENT,
            "wall_time {wall_time}, end {end}"
        );
        let t = run(&m, t);
        assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
        vine_task_delete(t);
    }
    unsafe { vine_resources_delete(r) };
}

#[test]
fn a_retry_at_the_category_maximum_is_logged_as_max_resources_with_the_limit_it_went_past() {
    let dir = tempdir();
    let log = CString::new(dir.join("txn").to_str().unwrap()).unwrap();
    let m = local(2.0);
    let max = vine_resources_create(-1.0);
    let guess = vine_resources_create(-1.0);
    unsafe {
        assert_eq!(
            vine::ffi::logs::vine_enable_transactions_log(m.0, log.as_ptr()),
            1
        );
        assert_eq!(
            vine_set_category_mode(m.0, c"big".as_ptr(), VINE_ALLOCATION_MODE_MAX),
            1
        );
        assert_eq!(vine_resources_set(max, c"memory".as_ptr(), 500.0), 1);
        assert_eq!(vine_resources_set(guess, c"memory".as_ptr(), 100.0), 1);
        assert_eq!(
            vine_set_category_resources_max(m.0, c"big".as_ptr(), max),
            0
        );
        assert_eq!(
            vine_set_category_first_allocation_guess(m.0, c"big".as_ptr(), guess),
            0
        );
    }
    // 300 MB: past the first guess, within the maximum.
    let t = run(&m, command(&user(300, 1), c"big"));
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    assert_eq!(resources(t, c"allocated").unwrap().memory, 500.0);
    vine_task_delete(t);
    drop(m);
    unsafe {
        vine_resources_delete(max);
        vine_resources_delete(guess);
    }
    let text = std::fs::read_to_string(dir.join("txn")).unwrap();
    // Each line's words after the time and pid.
    let lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').skip(2).collect())
        .filter(|w: &Vec<&str>| w.len() > 2 && w[0] == "TASK" && w[1] == "1")
        .collect();
    let states: Vec<String> = lines
        .iter()
        .filter(|w| w[2] != "WAITING_RETRIEVAL" && w[2] != "DONE")
        .map(|w| match w[2] {
            "READY" => format!("READY {} {}", w[4], w[5]),
            "RUNNING" => format!("RUNNING {}", w[4]),
            "RETRIEVED" => format!("RETRIEVED {} {}", w[3], w[5]),
            s => s.to_string(),
        })
        .collect();
    assert_eq!(
        states,
        [
            "READY FIRST_RESOURCES 1",
            "RUNNING FIRST_RESOURCES",
            "RETRIEVED RESOURCE_EXHAUSTION {\"memory\":[100,\"MB\"]}",
            "READY MAX_RESOURCES 2",
            "RUNNING MAX_RESOURCES",
            "RETRIEVED SUCCESS {}",
        ],
        "{text}"
    );
    // What each attempt measured is in its record.
    for w in lines.iter().filter(|w| w[2] == "RETRIEVED") {
        let measured: serde_json::Value = serde_json::from_str(&w[6..].join(" ")).unwrap();
        let mb = measured["memory"][0].as_f64().unwrap_or(0.0);
        assert!(mb >= 100.0, "measured {mb} MB: {text}");
        assert!(measured["cores"][0].is_number(), "{text}");
    }
}

#[test]
fn a_task_that_asks_for_gpus_and_no_cores_takes_no_core_as_in_taskvine() {
    // One core, two gpus: two 1-gpu tasks run at once, as in TaskVine (each
    // waits for the other to have started; one core each would run them one
    // after the other, and the first would give up).
    let m = local(1.0);
    assert_eq!(unsafe { vine_tune(m.0, c"local-gpus".as_ptr(), 2.0) }, 0);
    let dir = tempdir();
    let meet = |me: &str, other: &str| {
        format!(
            "touch {d}/{me}; i=0; while [ ! -e {d}/{other} ]; do \
             i=$((i+1)); [ $i -gt 6000 ] && exit 7; sleep 0.01; done",
            d = dir.display()
        )
    };
    let a = command(&meet("a", "b"), c"g");
    let b = command(&meet("b", "a"), c"g");
    for t in [a, b] {
        assert_eq!(vine_task_set_gpus(t, 1), 0);
        assert!(vine_submit(m.0, t) > 0, "{}", last_error());
    }
    for _ in 0..2 {
        let t = vine_wait(m.0, 120);
        assert!(!t.is_null(), "{}", last_error());
        assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
        assert_eq!(vine_task_get_exit_code(t), 0, "the two did not run at once");
        let a = resources(t, c"allocated").unwrap();
        assert_eq!((a.cores, a.gpus), (0.0, 1.0));
        let q = resources(t, c"requested").unwrap();
        assert_eq!((q.cores, q.gpus), (-1.0, 1.0));
        vine_task_delete(t);
    }
    // Cores set are kept; gpus set back to none give the one core again.
    let t = command("true", c"g");
    assert_eq!(vine_task_set_cores(t, 0.5), 0);
    assert_eq!(vine_task_set_gpus(t, 1), 0);
    let t = run(&m, t);
    assert_eq!(resources(t, c"allocated").unwrap().cores, 0.5);
    vine_task_delete(t);
    let t = command("true", c"g");
    assert_eq!(vine_task_set_gpus(t, 1), 0);
    assert_eq!(vine_task_set_gpus(t, 0), 0);
    let t = run(&m, t);
    assert_eq!(resources(t, c"allocated").unwrap().cores, 1.0);
    vine_task_delete(t);
}

#[test]
fn summaries_are_there_before_a_run_and_without_monitoring_as_in_taskvine() {
    let m = local(2.0);
    let t = command("sleep 0.2", c"s");
    assert_eq!(vine_task_set_time_max(t, 30.0), 0);
    // Before a run: every field -1, not NULL (a TaskVine program reads them).
    for which in [c"measured", c"allocated"] {
        let r = resources(t, which).expect("a summary before the run");
        assert_eq!(
            (r.cores, r.memory, r.wall_time, r.start),
            (-1.0, -1.0, -1.0, -1.0)
        );
    }
    let q = resources(t, c"requested").unwrap();
    assert_eq!(q.wall_time, 30.0);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let t = run(&m, t);
    assert_eq!(result(t).0, VINE_RESULT_SUCCESS, "{}", result(t).1);
    // Not monitored: what it was given, when it ran (seconds since the
    // epoch) and for how long.
    let r = resources(t, c"measured").expect("measured");
    assert_eq!((r.cores, r.memory, r.disk), (1.0, 0.0, 0.0));
    assert!(
        r.wall_time >= 0.2 && r.wall_time < 60.0,
        "wall {}",
        r.wall_time
    );
    assert!(
        r.start >= before.floor() && r.start < before + 60.0,
        "start {}",
        r.start
    );
    assert!(r.end >= r.start + 0.2, "end {} start {}", r.end, r.start);
    vine_task_delete(t);
}

#[test]
fn a_summary_replaces_each_resource_as_in_taskvine() {
    let t = command("true", c"r");
    assert_eq!(vine_task_set_cores(t, 2.0), 0);
    assert_eq!(vine_task_set_disk(t, 50), 0);
    assert_eq!(vine_task_set_time_max(t, 50.0), 0);
    let r = vine_resources_create(-1.0);
    unsafe { (*r).memory = 10.0 };
    assert_eq!(unsafe { vine_task_set_resources(t, r) }, 0);
    // Only memory given: the cores, disk and time limit set before are unset.
    let q = resources(t, c"requested").unwrap();
    assert_eq!(
        (q.cores, q.memory, q.disk, q.gpus, q.wall_time),
        (-1.0, 10.0, -1.0, -1.0, -1.0)
    );
    unsafe { vine_resources_delete(r) };
    vine_task_delete(t);
}

#[test]
fn a_category_minimum_holds_in_the_fixed_mode_as_in_taskvine() {
    let m = local(4.0);
    let min = vine_resources_create(-1.0);
    unsafe {
        (*min).cores = 3.0;
        (*min).memory = 100.0;
        assert_eq!(vine_set_category_resources_min(m.0, c"lo".as_ptr(), min), 0);
    }
    // FIXED, the default: what the task leaves unset is raised to the
    // minimum; what it sets is kept.
    let t = run(&m, command("true", c"lo"));
    let a = resources(t, c"allocated").unwrap();
    assert_eq!((a.cores, a.memory), (3.0, 100.0));
    vine_task_delete(t);
    let t = command("true", c"lo");
    assert_eq!(vine_task_set_cores(t, 1.0), 0);
    let t = run(&m, t);
    let a = resources(t, c"allocated").unwrap();
    assert_eq!((a.cores, a.memory), (1.0, 100.0));
    vine_task_delete(t);
    unsafe { vine_resources_delete(min) };
}
