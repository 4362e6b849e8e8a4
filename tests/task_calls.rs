//! TaskVine's task calls and mount flags, on the local worker threads and on
//! remote `vine_worker` processes: watched outputs, outputs returned on failure
//! or success only, fixed-location inputs, start and end times, forsaken
//! limits, features, where a task ran, its state, and cancelling by tag. Real
//! worker processes, real sockets, real files; every wait is on an event, with
//! a bound only against hangs.

mod common;
use common::{remote_manager, tempdir, vine_worker};

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::Path;
use std::process::Child;
use std::ptr;
use std::time::{Duration, Instant};

use vine::ffi::manager::{vine_cancel_all, vine_create, vine_delete, vine_port, vine_submit};
use vine::ffi::manager::{vine_tune, vine_wait};
use vine::ffi::task as ct;
use vine::ffi::vine_manager;
use vine::ffi::vine_task;
use vine::files::{
    CacheLevel, File, Mount, MOUNT_FAILURE_ONLY, MOUNT_FIXED_LOCATION, MOUNT_SUCCESS_ONLY,
    MOUNT_SYMLINK, MOUNT_WATCH,
};
use vine::{Manager, Port, Task, TaskResult};

/// A bound on every wait, never a pace.
const LONG: Option<Duration> = Some(Duration::from_secs(120));

fn local_manager() -> Manager {
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    m
}

fn stop(m: Manager, workers: Vec<Child>) {
    m.shutdown().unwrap();
    for mut w in workers {
        let _ = w.wait();
    }
}

fn run(m: &Manager, task: Box<Task>) -> Box<Task> {
    let id = m.submit(task).map_err(|(e, _)| e).unwrap();
    m.wait_for(vine::Want::Id(id), LONG)
        .expect("the task comes back")
}

/// Waits until `cond` holds, failing after a generous bound.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let bound = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < bound, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout(t: &Task) -> String {
    t.stdout()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

// ---- VINE_WATCH -----------------------------------------------------------

/// A task writes a line to a watched output, then waits for a marker that the
/// test creates only once it has seen that line in the manager's file: the task
/// can only finish if the output grew at the manager while it ran.
fn watched_output_grows_while_running(m: &Manager, dir: &Path) {
    let dest = dir.join("watched.txt");
    let marker = dir.join("marker");
    let file = m.declare(File::path(&dest, CacheLevel::Task, 0).unwrap());
    let cmd = format!(
        "echo first > out; while [ ! -e {} ]; do sleep 0.05; done; echo second >> out",
        marker.display()
    );
    let mut t = Task::command(&CString::new(cmd).unwrap());
    t.add_output(Mount::new(file, "out", MOUNT_WATCH).unwrap())
        .unwrap();
    let id = m.submit(t).map_err(|(e, _)| e).unwrap();
    until("the first line at the manager", || {
        std::fs::read_to_string(&dest).is_ok_and(|s| s == "first\n")
    });
    std::fs::write(&marker, b"").unwrap();
    let t = m.wait_for(vine::Want::Id(id), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "first\nsecond\n");
}

/// A watched output's declared file is emptied when the task starts, before the
/// task writes anything: what it shows is this run's.
fn watched_output_is_emptied_when_the_task_starts(m: &Manager, dir: &Path) {
    let dest = dir.join("stale.txt");
    std::fs::write(&dest, "from an earlier run\n").unwrap();
    let marker = dir.join("go");
    let file = m.declare(File::path(&dest, CacheLevel::Task, 0).unwrap());
    let cmd = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo new > out",
        marker.display()
    );
    let mut t = Task::command(&CString::new(cmd).unwrap());
    t.add_output(Mount::new(file, "out", MOUNT_WATCH).unwrap())
        .unwrap();
    let id = m.submit(t).map_err(|(e, _)| e).unwrap();
    until("the stale file to be emptied", || {
        std::fs::metadata(&dest).is_ok_and(|md| md.len() == 0)
    });
    std::fs::write(&marker, b"").unwrap();
    let t = m.wait_for(vine::Want::Id(id), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n");
}

#[test]
fn a_watched_output_is_emptied_when_a_local_task_starts() {
    let dir = tempdir();
    let m = local_manager();
    watched_output_is_emptied_when_the_task_starts(&m, &dir);
    stop(m, vec![]);
}

#[test]
fn a_watched_output_is_emptied_when_a_remote_task_starts() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    watched_output_is_emptied_when_the_task_starts(&m, &dir);
    stop(m, vec![w]);
}

#[test]
fn a_watched_output_grows_at_the_manager_while_a_local_task_runs() {
    let dir = tempdir();
    let m = local_manager();
    watched_output_grows_while_running(&m, &dir);
    stop(m, vec![]);
}

#[test]
fn a_watched_output_grows_at_the_manager_while_a_remote_task_runs() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    watched_output_grows_while_running(&m, &dir);
    stop(m, vec![w]);
}

// ---- VINE_FAILURE_ONLY / VINE_SUCCESS_ONLY --------------------------------

fn outputs_follow_the_exit_code(m: &Manager, dir: &Path) {
    for code in [0, 3] {
        let log = dir.join(format!("log-{code}"));
        let res = dir.join(format!("res-{code}"));
        let cmd = format!("echo log > log; echo res > res; exit {code}");
        let mut t = Task::command(&CString::new(cmd).unwrap());
        let f = |p: &Path| m.declare(File::path(p, CacheLevel::Task, 0).unwrap());
        t.add_output(Mount::new(f(&log), "log", MOUNT_FAILURE_ONLY).unwrap())
            .unwrap();
        t.add_output(Mount::new(f(&res), "res", MOUNT_SUCCESS_ONLY).unwrap())
            .unwrap();
        let t = run(m, t);
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        assert_eq!(t.exit_code(), code);
        assert_eq!(
            log.exists(),
            code != 0,
            "the failure-only output, exit {code}"
        );
        assert_eq!(
            res.exists(),
            code == 0,
            "the success-only output, exit {code}"
        );
    }
    // Killed at its time limit, at its end time or by a signal: what it wrote
    // comes back, the failure-only output with it, as TaskVine's manager
    // fetches it. (At its end time the manager's timer and the worker's own
    // deadline both stop it, whichever comes first, alike.)
    for (i, (how, result)) in [
        ("exec sleep 30", TaskResult::MaxWallTime),
        ("exec sleep 30", TaskResult::MaxEndTime),
        ("kill -9 $$", TaskResult::Signal),
    ]
    .into_iter()
    .enumerate()
    {
        let log = dir.join(format!("killed-log-{i}"));
        let res = dir.join(format!("killed-res-{i}"));
        let plain = dir.join(format!("killed-plain-{i}"));
        let cmd = format!("echo log > log; echo res > res; echo out > plain; {how}");
        let mut t = Task::command(&CString::new(cmd).unwrap());
        if result == TaskResult::MaxEndTime {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64;
            t.set_time_end(now + 1_000_000);
        } else {
            t.set_time_max(1.0).unwrap();
        }
        let f = |p: &Path| m.declare(File::path(p, CacheLevel::Task, 0).unwrap());
        t.add_output(Mount::new(f(&log), "log", MOUNT_FAILURE_ONLY).unwrap())
            .unwrap();
        t.add_output(Mount::new(f(&res), "res", MOUNT_SUCCESS_ONLY).unwrap())
            .unwrap();
        t.add_output(Mount::new(f(&plain), "plain", 0).unwrap())
            .unwrap();
        let t = run(m, t);
        assert_eq!(t.result(), result, "{:?}", t.reason());
        assert_eq!(t.exit_code(), 9, "{how}");
        assert!(log.exists(), "the failure-only output after {how}");
        assert!(plain.exists(), "the output after {how}");
        assert!(!res.exists(), "the success-only output after {how}");
    }
    // Temps alike, as a later task reads them: what the outcome returns is
    // there; what it does not is missing, as a temp no task made.
    for (cmd, flags, time_max, returned) in [
        (c"echo t > t; exit 0", MOUNT_FAILURE_ONLY, 0.0, false),
        (c"echo t > t; exit 3", MOUNT_SUCCESS_ONLY, 0.0, false),
        (c"echo t > t; exit 3", MOUNT_FAILURE_ONLY, 0.0, true),
        (c"echo t > t; exec sleep 30", MOUNT_FAILURE_ONLY, 1.0, true),
        (c"echo t > t; exec sleep 30", 0, 1.0, true),
    ] {
        let temp = m.declare(File::temp().unwrap());
        let mut w = Task::command(cmd);
        w.add_output(Mount::new(temp.clone(), "t", flags).unwrap())
            .unwrap();
        if time_max > 0.0 {
            w.set_time_max(time_max).unwrap();
        }
        let w = run(m, w);
        assert!(w.exit_code() != -1, "{cmd:?}: {:?}", w.reason());
        let mut r = Task::command(c"cat t");
        r.add_input(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        let r = run(m, r);
        if returned {
            assert_eq!(r.result(), TaskResult::Success, "{cmd:?}: {:?}", r.reason());
            assert_eq!(r.stdout().unwrap().to_bytes(), b"t\n");
            // Linked, not copied, when asked (and so not counted in its disk).
            let mut r = Task::command(c"test -L t && cat t");
            r.add_input(Mount::new(temp.clone(), "t", MOUNT_SYMLINK).unwrap())
                .unwrap();
            let r = run(m, r);
            assert_eq!(r.result(), TaskResult::Success, "{:?}", r.reason());
            assert_eq!(r.exit_code(), 0, "a temp linked into the sandbox");
        } else {
            assert_eq!(
                r.result(),
                TaskResult::InputMissing,
                "{cmd:?} flags {flags}: {:?}",
                r.reason()
            );
            // Said as the local pool says it, not by a path of the worker's.
            let why = r.reason().unwrap().to_string_lossy().into_owned();
            assert!(why.contains("temp") && why.contains("produced"), "{why}");
        }
    }
}

#[test]
fn failure_only_and_success_only_outputs_follow_the_exit_code_locally() {
    let dir = tempdir();
    let m = local_manager();
    outputs_follow_the_exit_code(&m, &dir);
    stop(m, vec![]);
}

#[test]
fn failure_only_and_success_only_outputs_follow_the_exit_code_remotely() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    outputs_follow_the_exit_code(&m, &dir);
    stop(m, vec![w]);
}

// ---- VINE_FIXED_LOCATION --------------------------------------------------

/// `cat t`, with `file` as its input `t` read where it is.
fn reads_in_place(file: &std::sync::Arc<File>) -> Box<Task> {
    let mut t = Task::command(c"cat t");
    t.add_input(Mount::new(file.clone(), "t", MOUNT_FIXED_LOCATION).unwrap())
        .unwrap();
    t
}

#[test]
fn a_fixed_location_input_runs_where_its_temp_is_and_is_missing_where_nobody_has_it() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let workers = vec![
        vine_worker(port, &["--workdir", dir.to_str().unwrap()]),
        vine_worker(port, &["--workdir", dir.to_str().unwrap()]),
    ];
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo kept > t");
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    let made = run(&m, make);
    assert_eq!(made.result(), TaskResult::Success, "{:?}", made.reason());
    for _ in 0..3 {
        let read = run(&m, reads_in_place(&temp));
        assert_eq!(read.result(), TaskResult::Success, "{:?}", read.reason());
        assert_eq!(stdout(&read), "kept\n");
        assert_eq!(
            read.worker_id(),
            made.worker_id(),
            "it ran where the temp is"
        );
    }
    // A temp no task made is at no worker: the task cannot run anywhere.
    let nowhere = m.declare(File::temp().unwrap());
    let t = run(&m, reads_in_place(&nowhere));
    assert_eq!(t.result(), TaskResult::FixedLocationMissing);
    assert_eq!(t.result().code(), 80);
    // Where the temp is, no worker offers a feature the task needs: it can
    // never run, and says so rather than waiting.
    let mut t = reads_in_place(&temp);
    t.add_feature(c"nobody-has-this").unwrap();
    let t = run(&m, t);
    assert_eq!(
        t.result(),
        TaskResult::FixedLocationMissing,
        "{:?}",
        t.reason()
    );
    let why = t.reason().unwrap().to_string_lossy().into_owned();
    assert!(why.contains("nobody-has-this"), "{why}");
    stop(m, workers);
}

#[test]
fn a_fixed_location_file_of_the_manager_is_read_in_place_by_local_workers() {
    let dir = tempdir();
    let m = local_manager();
    let p = dir.join("in.txt");
    std::fs::write(&p, "here\n").unwrap();
    let f = m.declare(File::path(&p, CacheLevel::Task, 0).unwrap());
    let mut t = Task::command(c"cat in");
    t.add_input(Mount::new(f, "in", MOUNT_FIXED_LOCATION).unwrap())
        .unwrap();
    let t = run(&m, t);
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(stdout(&t), "here\n");
    // A temp no task made is at no worker, with or without remote workers.
    let nowhere = m.declare(File::temp().unwrap());
    let t = run(&m, reads_in_place(&nowhere));
    assert_eq!(
        t.result(),
        TaskResult::FixedLocationMissing,
        "{:?}",
        t.reason()
    );
    stop(m, vec![]);
}

// ---- temps made by tasks still running -------------------------------------

/// A command that waits for a line on fifo `gate`, then does `then`.
fn gated(gate: &Path, then: &str) -> Box<Task> {
    let made = std::process::Command::new("mkfifo").arg(gate).status();
    assert!(made.unwrap().success());
    let cmd = format!("read x < {}; {then}", gate.display());
    Task::command(&CString::new(cmd).unwrap())
}

fn open_gate(gate: &Path) {
    use std::io::Write;
    let mut w = std::fs::OpenOptions::new().write(true).open(gate).unwrap();
    w.write_all(b"go\n").unwrap();
}

/// Submits a task that reads `temp` as "t" (`cat t`); returns its id.
fn submit_reader(m: &Manager, temp: &std::sync::Arc<File>) -> u64 {
    let mut read = Task::command(c"cat t");
    read.add_input(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    m.submit(read).map_err(|(e, _)| e).unwrap()
}

fn wait_id(m: &Manager, id: u64) -> Box<Task> {
    m.wait_for(vine::Want::Id(id), LONG)
        .expect("the task comes back")
}

/// Submits `make` with a new temp as its output "t", then a task that reads
/// that temp; returns their ids.
fn submit_maker_and_reader(m: &Manager, mut make: Box<Task>) -> (u64, u64) {
    let temp = m.declare(File::temp().unwrap());
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    let maker = m.submit(make).map_err(|(e, _)| e).unwrap();
    (maker, submit_reader(m, &temp))
}

/// A task that reads a temp, submitted while the task making it still runs
/// (there is a core for both), waits for it and reads what it made. Readers of
/// a temp whose maker failed or was cancelled find it missing, never wait on.
fn readers_wait_for_the_temp_being_made(m: &Manager, dir: &Path) {
    let make = gated(&dir.join("gate"), "echo made > t");
    let (maker, reader) = submit_maker_and_reader(m, make);
    open_gate(&dir.join("gate"));
    let made = wait_id(m, maker);
    assert_eq!(made.result(), TaskResult::Success, "{:?}", made.reason());
    let read = wait_id(m, reader);
    assert_eq!(read.result(), TaskResult::Success, "{:?}", read.reason());
    assert_eq!(stdout(&read), "made\n");

    // A maker that fails to write it.
    let make = gated(&dir.join("gate2"), "exit 3");
    let (maker, reader) = submit_maker_and_reader(m, make);
    open_gate(&dir.join("gate2"));
    let made = wait_id(m, maker);
    assert_ne!(made.result(), TaskResult::Success);
    let read = wait_id(m, reader);
    assert_eq!(
        read.result(),
        TaskResult::InputMissing,
        "{:?}",
        read.reason()
    );

    // A maker cancelled while it runs.
    let started = dir.join("started");
    let cmd = format!("touch {}; sleep 1000; echo late > t", started.display());
    let make = Task::command(&CString::new(cmd).unwrap());
    let (maker, reader) = submit_maker_and_reader(m, make);
    until("the maker to start", || started.exists());
    m.cancel(maker).unwrap();
    assert_eq!(wait_id(m, maker).result(), TaskResult::Cancelled);
    let read = wait_id(m, reader);
    assert_eq!(
        read.result(),
        TaskResult::InputMissing,
        "{:?}",
        read.reason()
    );
}

#[test]
fn a_reader_of_a_temp_waits_for_the_local_task_making_it() {
    let dir = tempdir();
    let m = local_manager();
    m.tune("local-cores", 2.0).unwrap();
    readers_wait_for_the_temp_being_made(&m, &dir);
    stop(m, vec![]);
}

#[test]
fn a_reader_of_a_temp_waits_for_the_remote_task_making_it() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let workers = vec![vine_worker(port, &[]), vine_worker(port, &[])];
    readers_wait_for_the_temp_being_made(&m, &dir);
    stop(m, workers);
}

// ---- start and end times --------------------------------------------------

#[test]
fn a_task_is_not_started_before_its_start_time() {
    let m = local_manager();
    let start = now_us() + 1_500_000;
    let mut t = Task::command(c"true");
    t.set_time_start(start);
    let t = run(&m, t);
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert!(
        t.times().started >= start,
        "started {} before {start}",
        t.times().started
    );
    stop(m, vec![]);
}

fn end_times(m: &Manager, dir: &Path) {
    // Past already: it never runs.
    let ran = dir.join("ran");
    let mut t = Task::command(&CString::new(format!("touch {}", ran.display())).unwrap());
    t.set_time_end(now_us() - 1);
    let t = run(m, t);
    assert_eq!(t.result(), TaskResult::MaxEndTime, "{:?}", t.reason());
    assert!(!ran.exists(), "a task past its end time ran");
    assert_eq!(t.exit_code(), -1, "never ran: no exit code");
    // Running at its end time: killed then, and its exit code is the signal
    // (as in TaskVine).
    let mut t = Task::command(c"sleep 1000");
    t.set_time_end(now_us() + 1_500_000);
    let t = run(m, t);
    assert_eq!(t.result(), TaskResult::MaxEndTime, "{:?}", t.reason());
    assert_eq!(t.exit_code(), 9, "{:?}", t.reason());
}

#[test]
fn a_task_not_done_by_its_end_time_ends_max_end_time_locally() {
    let dir = tempdir();
    let m = local_manager();
    end_times(&m, &dir);
    stop(m, vec![]);
}

#[test]
fn a_task_not_done_by_its_end_time_ends_max_end_time_remotely() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    end_times(&m, &dir);
    stop(m, vec![w]);
}

/// A task sent to a worker whose one core is held by another ends at its end
/// time, not once the core frees up.
fn queued_end_time(m: &Manager, dir: &Path) {
    // A task waits at the worker behind a running one only with a prefetch
    // (automatic prefetch holds none before a duration is known).
    m.tune("prefetch", 1.0).unwrap();
    let gate = dir.join("gate");
    let mut busy = gated(&gate, "true");
    busy.set_cores(1.0).unwrap();
    let busy = m.submit(busy).map_err(|(e, _)| e).unwrap();
    let mut queued = Task::command(c"true");
    queued.set_cores(1.0).unwrap();
    queued.set_time_end(now_us() + 2_000_000);
    let queued = m.submit(queued).map_err(|(e, _)| e).unwrap();
    until("both tasks at the worker", || {
        m.stats().unwrap().tasks_on_workers == 2
    });
    let t = m.wait(LONG).expect("a task comes back");
    assert_eq!(t.id(), queued, "the queued task came back first");
    assert_eq!(t.result(), TaskResult::MaxEndTime, "{:?}", t.reason());
    open_gate(&gate);
    let t = wait_id(m, busy);
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
}

#[test]
fn a_task_queued_at_a_busy_worker_ends_at_its_end_time_locally() {
    let dir = tempdir();
    let m = local_manager();
    queued_end_time(&m, &dir);
    stop(m, vec![]);
}

#[test]
fn a_task_queued_at_a_busy_worker_ends_at_its_end_time_remotely() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    queued_end_time(&m, &dir);
    stop(m, vec![w]);
}

#[test]
fn a_waiting_task_past_its_end_time_comes_back_without_a_worker() {
    // No worker ever joins: the task waits, then its end time passes.
    let (m, _port) = remote_manager();
    let mut t = Task::command(c"true");
    t.set_time_end(now_us() + 300_000);
    let t = run(&m, t);
    assert_eq!(t.result(), TaskResult::MaxEndTime, "{:?}", t.reason());
    stop(m, vec![]);
}

// ---- max_forsaken ---------------------------------------------------------

#[test]
fn a_task_forsaken_more_than_its_max_forsaken_comes_back_forsaken() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let started = dir.join("started");
    let cmd = format!("touch {}; sleep 1000", started.display());
    let mut t = Task::command(&CString::new(cmd).unwrap());
    t.set_max_forsaken(0);
    let id = m.submit(t).map_err(|(e, _)| e).unwrap();
    let mut w = vine_worker(port, &[]);
    until("the task to start", || started.exists());
    w.kill().unwrap();
    let _ = w.wait();
    let t = m.wait_for(vine::Want::Id(id), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Forsaken, "{:?}", t.reason());
    stop(m, vec![]);
}

#[test]
fn a_max_forsaken_past_what_a_count_holds_means_run_again_not_no_limit_of_its_own() {
    // No retries: only a limit of its own runs it again once its worker is lost.
    for limit in [i64::MAX, 1 << 32] {
        let dir = tempdir();
        let (m, port) = remote_manager();
        let mut w = vine_worker(port, &[]);
        let mut t = Task::command(&lost_until_done(&dir, 1));
        t.set_retries(0).unwrap();
        t.set_max_forsaken(limit);
        let id = m.submit(t).map_err(|(e, _)| e).unwrap();
        lose_worker_when(&mut w, &dir.join("run0"), port);
        let t = m.wait_for(vine::Want::Id(id), LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{limit}: {:?}", t.reason());
        assert_eq!(stdout(&t), "done\n");
        let _ = w.kill();
        stop(m, vec![w]);
    }
}

/// A command that sleeps (until its worker is killed) on its first `losses`
/// runs, each marked by a file `run<i>` in `dir`, and then prints "done".
fn lost_until_done(dir: &Path, losses: usize) -> CString {
    let mark = |i: usize| dir.join(format!("run{i}")).display().to_string();
    let mut cmd = format!("if [ -e {} ]; then echo done", mark(losses - 1));
    for i in (1..losses).rev() {
        cmd += &format!(
            "; elif [ -e {} ]; then touch {}; sleep 1000",
            mark(i - 1),
            mark(i)
        );
    }
    cmd += &format!("; else touch {}; sleep 1000; fi", mark(0));
    CString::new(cmd).unwrap()
}

/// Kills the worker once the run marked `mark` has started, and starts another.
fn lose_worker_when(w: &mut Child, mark: &Path, port: u16) {
    until("the attempt to start", || mark.exists());
    w.kill().unwrap();
    let _ = w.wait();
    *w = vine_worker(port, &[]);
}

#[test]
fn a_task_submitted_again_starts_afresh_with_all_its_retries() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let mut w = vine_worker(port, &[]);
    let mut t = Task::command(c"exit 0");
    t.set_retries(1).unwrap();
    t.set_time_max(1000.0).unwrap();
    let t = run(&m, t);
    assert_eq!(t.result(), TaskResult::Success);
    assert_eq!(t.retries_used(), 0);
    // The same task again: its one retry is still there for a lost worker.
    let mut t = t;
    t.set_command(&lost_until_done(&dir, 1)).unwrap();
    let id = m.submit(t).map_err(|(e, _)| e).unwrap();
    lose_worker_when(&mut w, &dir.join("run0"), port);
    let t = m.wait_for(vine::Want::Id(id), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(stdout(&t), "done\n");
    assert_eq!(t.retries_used(), 1);
    let _ = w.kill();
    stop(m, vec![w]);
}

#[test]
fn zero_retries_means_without_limit_as_in_taskvine() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    m.tune("max-retries", 1.0).unwrap();
    let mut w = vine_worker(port, &[]);
    let mut t = Task::command(&lost_until_done(&dir, 3));
    t.set_retries(0).unwrap();
    let id = m.submit(t).map_err(|(e, _)| e).unwrap();
    for i in 0..3 {
        lose_worker_when(&mut w, &dir.join(format!("run{i}")), port);
    }
    let t = m.wait_for(vine::Want::Id(id), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(stdout(&t), "done\n");
    assert_eq!(t.retries_used(), 3);
    let _ = w.kill();
    stop(m, vec![w]);
}

// ---- the C calls ------------------------------------------------------------

struct CManager(*mut vine_manager);

impl CManager {
    /// A manager on a free port with `cores` local cores.
    fn new(cores: f64) -> CManager {
        let m = vine_create(0);
        assert!(!m.is_null());
        // SAFETY: a live manager and a NUL-terminated name.
        assert_eq!(unsafe { vine_tune(m, c"local-cores".as_ptr(), cores) }, 0);
        CManager(m)
    }

    fn port(&self) -> u16 {
        vine_port(self.0) as u16
    }

    fn submit(&self, t: *mut vine_task) -> c_int {
        let id = vine_submit(self.0, t);
        assert!(id > 0);
        id
    }

    fn wait(&self) -> *mut vine_task {
        let t = vine_wait(self.0, 120);
        assert!(!t.is_null(), "a task comes back");
        t
    }
}

impl Drop for CManager {
    fn drop(&mut self) {
        vine_delete(self.0);
    }
}

fn command(cmd: &str) -> *mut vine_task {
    let c = CString::new(cmd).unwrap();
    // SAFETY: a NUL-terminated string.
    unsafe { ct::vine_task_create(c.as_ptr()) }
}

fn text(p: *const c_char) -> Option<String> {
    // SAFETY: the library returns NULL or a NUL-terminated string it keeps alive.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn state(t: *mut vine_task) -> String {
    text(ct::vine_task_get_state(t)).unwrap()
}

fn tag(t: *mut vine_task, tag: &str) {
    let c = CString::new(tag).unwrap();
    // SAFETY: a live task and a NUL-terminated string.
    assert_eq!(unsafe { ct::vine_task_set_tag(t, c.as_ptr()) }, 0);
}

#[test]
fn a_task_created_without_a_command_is_given_one_later() {
    let m = CManager::new(1.0);
    // SAFETY: NULL is allowed, as in TaskVine.
    let t = unsafe { ct::vine_task_create(ptr::null()) };
    assert!(!t.is_null());
    assert!(ct::vine_task_get_command(t).is_null());
    assert_eq!(vine_submit(m.0, t), 0, "a task with no command is refused");
    // SAFETY: a live task and a NUL-terminated string.
    assert_eq!(
        unsafe { ct::vine_task_set_command(t, c"echo later".as_ptr()) },
        0
    );
    m.submit(t);
    let t = m.wait();
    assert_eq!(text(ct::vine_task_get_stdout(t)).unwrap(), "later\n");
    assert_eq!(text(ct::vine_task_get_command(t)).unwrap(), "echo later");
    ct::vine_task_delete(t);
    // SAFETY: a function task has no command to set.
    let f = unsafe { ct::vine_task_create_function(c"f".as_ptr(), ptr::null(), 0) };
    // SAFETY: as above.
    assert!(unsafe { ct::vine_task_set_command(f, c"true".as_ptr()) } < 0);
    ct::vine_task_delete(f);
}

#[test]
fn a_task_state_follows_it_from_submission_to_wait() {
    // No local cores and no worker: submitted tasks wait.
    let m = CManager::new(0.0);
    let t = command("true");
    assert_eq!(state(t), "INITIAL");
    let id = m.submit(t);
    assert_eq!(state(t), "READY");
    assert_eq!(vine_cancel_all(m.0), 1);
    assert_eq!(state(t), "RETRIEVED");
    let back = m.wait();
    assert_eq!(back, t);
    assert_eq!(ct::vine_task_get_id(back), id);
    assert_eq!(state(back), "DONE");
    assert!(ct::vine_task_get_hostname(back).is_null(), "it never ran");
    ct::vine_task_delete(back);
    assert_eq!(
        text(ct::vine_task_get_state(ptr::null())).unwrap(),
        "UNKNOWN"
    );
}

#[test]
fn a_running_task_says_so_and_is_cancelled_by_its_tag() {
    let m = CManager::new(1.0);
    let t = command("sleep 1000");
    tag(t, "long");
    m.submit(t);
    until("the task to run", || state(t) == "RUNNING");
    // SAFETY: a live manager and a NUL-terminated tag.
    assert_eq!(
        unsafe { ct::vine_cancel_by_task_tag(m.0, c"long".as_ptr()) },
        1
    );
    let back = m.wait();
    assert_eq!(
        ct::vine_task_get_result(back),
        vine::ffi::VINE_RESULT_CANCELLED
    );
    // SAFETY: as above.
    assert_eq!(
        unsafe { ct::vine_cancel_by_task_tag(m.0, c"long".as_ptr()) },
        0
    );
    ct::vine_task_delete(back);
}

#[test]
fn cancel_by_tag_takes_the_first_and_cancel_all_by_tag_the_rest() {
    let m = CManager::new(0.0);
    let mut ids = Vec::new();
    for name in ["a", "a", "b", "a"] {
        let t = command("true");
        tag(t, name);
        ids.push(m.submit(t));
    }
    let untagged = m.submit(command("true"));
    // SAFETY: a live manager and NUL-terminated tags (or NULL).
    unsafe {
        assert_eq!(ct::vine_cancel_by_task_tag(m.0, c"a".as_ptr()), 1);
        assert_eq!(ct::vine_cancel_by_task_tag(m.0, c"zzz".as_ptr()), 0);
        assert_eq!(ct::vine_cancel_by_task_tag(m.0, ptr::null()), 0);
    }
    let first = m.wait();
    assert_eq!(ct::vine_task_get_id(first), ids[0], "the first submitted");
    ct::vine_task_delete(first);
    // SAFETY: as above.
    assert_eq!(unsafe { ct::vine_cancel_all_by_tag(m.0, c"a".as_ptr()) }, 2);
    let mut back: Vec<c_int> = (0..2)
        .map(|_| {
            let t = m.wait();
            let id = ct::vine_task_get_id(t);
            ct::vine_task_delete(t);
            id
        })
        .collect();
    back.sort();
    assert_eq!(back, [ids[1], ids[3]]);
    // NULL: the tasks with no tag, as in TaskVine.
    // SAFETY: as above.
    assert_eq!(unsafe { ct::vine_cancel_all_by_tag(m.0, ptr::null()) }, 1);
    let t = m.wait();
    assert_eq!(ct::vine_task_get_id(t), untagged);
    ct::vine_task_delete(t);
    assert_eq!(vine_cancel_all(m.0), 1, "only b is left");
    ct::vine_task_delete(m.wait());
}

#[test]
fn a_task_with_features_runs_only_on_a_worker_offering_them_all() {
    let dir = tempdir();
    let plain = dir.join("plain");
    let featured = dir.join("featured");
    std::fs::create_dir(&plain).unwrap();
    std::fs::create_dir(&featured).unwrap();
    let m = CManager::new(0.0);
    let workers = [
        vine_worker(m.port(), &["--workdir", plain.to_str().unwrap()]),
        vine_worker(
            m.port(),
            &[
                "--workdir",
                featured.to_str().unwrap(),
                "--feature",
                "big",
                "--feature",
                "fast",
            ],
        ),
    ];
    for _ in 0..4 {
        let t = command("pwd");
        // SAFETY: a live task and NUL-terminated names.
        unsafe {
            assert_eq!(ct::vine_task_add_feature(t, c"big".as_ptr()), 0);
            assert_eq!(ct::vine_task_add_feature(t, c"fast".as_ptr()), 0);
        }
        m.submit(t);
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for _ in 0..4 {
        let t = m.wait();
        assert_eq!(ct::vine_task_get_result(t), 0);
        let pwd = text(ct::vine_task_get_stdout(t)).unwrap();
        assert!(pwd.starts_with(featured.to_str().unwrap()), "ran in {pwd}");
        assert_eq!(
            text(ct::vine_task_get_hostname(t)).unwrap(),
            hostname.trim()
        );
        let addr = text(ct::vine_task_get_addrport(t)).unwrap();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        ct::vine_task_delete(t);
    }
    drop(m);
    for mut w in workers {
        let _ = w.wait();
    }
}

#[test]
fn a_task_with_a_feature_no_worker_can_offer_is_unschedulable_without_a_port() {
    let m = Manager::new(Port::None).unwrap();
    let mut t = Task::command(c"true");
    t.add_feature(c"big").unwrap();
    assert_eq!(run(&m, t).result(), TaskResult::Unschedulable);
    // A task the local workers run says where.
    let t = run(&m, Task::command(c"true"));
    let place = t.place().expect("it ran somewhere");
    assert_eq!(place.addrport.to_str().unwrap(), "local");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(place.hostname.to_str().unwrap(), hostname.trim());
    stop(m, vec![]);
}

/// Returns its input's first byte as its exit code.
unsafe extern "C" fn exit_with_input(
    input: *const std::ffi::c_void,
    len: usize,
    _: *mut vine::ffi::vine_buffer,
    _: *mut std::ffi::c_void,
) -> c_int {
    if len == 0 {
        return 0;
    }
    // SAFETY: the library passes `len` readable bytes.
    c_int::from(unsafe { *(input as *const u8) })
}

#[test]
fn a_returned_task_submitted_again_forgets_its_last_outcome() {
    let m = CManager::new(1.0);
    let t = command("sleep 100");
    assert_eq!(ct::vine_task_set_time_max(t, 0.5), 0);
    m.submit(t);
    let t = m.wait();
    assert_eq!(
        ct::vine_task_get_result(t),
        vine::ffi::VINE_RESULT_MAX_WALL_TIME
    );
    assert!(text(ct::vine_task_get_reason(t)).is_some());
    // SAFETY: a live, returned task and a NUL-terminated command.
    assert_eq!(
        unsafe { ct::vine_task_set_command(t, c"echo ok".as_ptr()) },
        0
    );
    assert_eq!(ct::vine_task_set_time_max(t, 0.0), 0);
    m.submit(t);
    let t = m.wait();
    assert_eq!(ct::vine_task_get_result(t), vine::ffi::VINE_RESULT_SUCCESS);
    assert_eq!(text(ct::vine_task_get_stdout(t)).unwrap(), "ok\n");
    assert_eq!(text(ct::vine_task_get_reason(t)), None);
    ct::vine_task_delete(t);
}

#[test]
fn a_submitted_function_task_shows_the_category_it_is_counted_in() {
    // SAFETY: a NUL-terminated name and a function of the right type.
    let r = unsafe {
        vine::ffi::function::vine_register_function(
            c"exit_with_input".as_ptr(),
            Some(exit_with_input),
        )
    };
    assert_eq!(r, 0);
    let m = CManager::new(1.0);
    // A task that cannot start (it asks for more cores than there are) stays
    // submitted while its category is read.
    // SAFETY: a NUL-terminated name and no input.
    let t = unsafe { ct::vine_task_create_function(c"exit_with_input".as_ptr(), ptr::null(), 0) };
    assert_eq!(text(ct::vine_task_get_category(t)).unwrap(), "default");
    assert_eq!(ct::vine_task_set_cores(t, 2.0), 0);
    m.submit(t);
    assert_eq!(
        text(ct::vine_task_get_category(t)).unwrap(),
        "exit_with_input"
    );
    vine_cancel_all(m.0);
    let t = m.wait();
    assert_eq!(
        text(ct::vine_task_get_category(t)).unwrap(),
        "exit_with_input"
    );
    ct::vine_task_delete(t);
}
