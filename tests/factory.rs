//! Factories on this machine: the local batch type, and the custom type driven by
//! small shell scripts acting as a batch system. Real `vine_worker` processes.
//! (Slurm: tests/factory_slurm.rs.)

mod common;
use common::{remote_manager, tempdir};

use std::time::{Duration, Instant};

use std::sync::Arc;

use vine::manager::factory::Factory;
use vine::{Manager, Task, TaskResult, Want};

const WORKER: &str = env!("CARGO_BIN_EXE_vine_worker");

/// Waits (at most a minute) until `ok` holds, looking again every 20 ms.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn done(m: &Manager, id: u64) -> Box<Task> {
    let t = m
        .wait_for(Want::Id(id), Some(Duration::from_secs(120)))
        .unwrap_or_else(|| panic!("task {id} did not finish: {:?}", m.factory_error()));
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.stdout());
    t
}

/// Live processes whose command line holds `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            if state == 'Z' || state == 'X' {
                return None;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd).contains(marker).then_some(())
        })
        .count()
}

/// A local factory whose workers run this build's `vine_worker` offering
/// feature `marker` (so a test finds its workers' processes), cycling every
/// 50 ms.
fn marked_local_factory(m: &Manager, marker: &str) -> Arc<Factory> {
    let f = m.create_factory("local").unwrap();
    f.set_string("worker-path", WORKER).unwrap();
    f.set_string("worker-options", &format!("--feature={marker}"))
        .unwrap();
    f.set("cycle-interval", 0.05).unwrap();
    f
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "")
}

#[test]
fn a_local_factory_starts_no_more_than_max_workers_and_releases_idle_ones() {
    let (m, _) = remote_manager();
    let marker = unique("local-max");
    let f = marked_local_factory(&m, &marker);
    // Its scripts and their output go where the manager's sandboxes are.
    assert!(
        f.scratch_dir().starts_with(m.runtime_dir()),
        "{:?} is not in {:?}",
        f.scratch_dir(),
        m.runtime_dir()
    );
    f.set("max-workers", 2.0).unwrap();
    let ids: Vec<u64> = (0..8)
        .map(|i| {
            m.submit(Task::command(
                &std::ffi::CString::new(format!("echo {i}")).unwrap(),
            ))
            .unwrap()
        })
        .collect();
    for (i, id) in ids.into_iter().enumerate() {
        let t = done(&m, id);
        assert_eq!(t.stdout().unwrap().to_str().unwrap(), format!("{i}\n"));
    }
    // Eight tasks, two workers at most: two jobs, kept while tasks came.
    assert_eq!(f.counts(), (2, 0));
    assert!(m.stats().unwrap().workers_connected <= 2);
    // No demand: idle workers go once idle long enough, and none comes back.
    f.set("idle-timeout", 0.05).unwrap();
    eventually("the idle workers leave", || {
        m.stats().unwrap().workers_connected == 0 && processes_with(&marker) == 0
    });
    assert_eq!(m.stats().unwrap().workers_released, 2);
    assert_eq!(f.counts(), (2, 0));
    m.delete_factory(&f).unwrap();
    m.shutdown().unwrap();
}

#[test]
fn tasks_left_to_submit_start_workers_before_the_tasks_come() {
    let (m, _) = remote_manager();
    let marker = unique("local-left");
    let f = marked_local_factory(&m, &marker);
    f.set("max-workers", 3.0).unwrap();
    f.set("idle-timeout", 0.01).unwrap();
    // No task submitted: the count alone is the demand, one worker (of one
    // core) for each task to come.
    m.set_tasks_left_count(2);
    eventually("two workers join for the tasks to come", || {
        m.stats().unwrap().workers_connected == 2
    });
    assert_eq!(f.counts(), (2, 0));
    // The tasks came: they run on those workers.
    let ids: Vec<u64> = (0..2)
        .map(|_| m.submit(Task::command(c"echo came")).unwrap())
        .collect();
    m.set_tasks_left_count(0);
    for id in ids {
        done(&m, id);
    }
    // None left to come: the idle workers are given back.
    eventually("the idle workers leave", || {
        m.stats().unwrap().workers_connected == 0 && processes_with(&marker) == 0
    });
    // Between the submissions and the count set to 0, the two tasks and the
    // two still to come made a demand of four: a third worker (the factory's
    // most) may have started then. Never more, and none failed.
    let (started, failed) = f.counts();
    assert!(
        (2..=3).contains(&started) && failed == 0,
        "{:?}",
        f.counts()
    );
    m.delete_factory(&f).unwrap();
    m.shutdown().unwrap();
}

#[test]
fn min_workers_are_kept_alive_and_deleting_the_factory_ends_them() {
    let (m, _) = remote_manager();
    let marker = unique("local-min");
    let f = marked_local_factory(&m, &marker);
    f.set("idle-timeout", 0.01).unwrap();
    f.set("min-workers", 2.0).unwrap();
    eventually("two workers join", || {
        m.stats().unwrap().workers_connected == 2
    });
    // Idle, but the minimum: kept.
    assert_eq!(m.stats().unwrap().workers_released, 0);
    // A worker killed is replaced.
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .contains(&marker)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pids[0]])
        .status()
        .unwrap()
        .success());
    eventually("a third job replaces the killed one", || {
        f.counts().0 == 3 && m.stats().unwrap().workers_connected == 2
    });
    m.delete_factory(&f).unwrap();
    assert_eq!(processes_with(&marker), 0);
    m.shutdown().unwrap();
}

#[test]
fn tasks_no_worker_of_the_factory_can_hold_start_no_job() {
    let (m, _) = remote_manager();
    let f = m.create_factory("local").unwrap();
    f.set_string("worker-path", WORKER).unwrap();
    f.set("cycle-interval", 0.05).unwrap();
    f.set("cores", 1.0).unwrap();
    let mut big = Task::command(c"true");
    big.set_cores(4.0).unwrap();
    let mut featured = Task::command(c"true");
    featured.add_feature(c"nowhere").unwrap();
    m.submit(big).unwrap();
    eventually(
        "the factory names the task that fits none of its workers",
        || {
            f.last_error()
                .is_some_and(|e| e.contains("1 waiting task(s) fit no worker"))
        },
    );
    // Said again when their number changes.
    m.submit(featured).unwrap();
    // A task that fits comes after them: its job is the only one.
    let id = m.submit(Task::command(c"echo fits")).unwrap();
    done(&m, id);
    assert_eq!(f.counts(), (1, 0));
    // The two left are named where a program looks: a wait that gives
    // nothing says why (not only standard error).
    eventually(
        "the factory names the tasks that fit none of its workers",
        || {
            f.last_error()
                .is_some_and(|e| e.contains("2 waiting task(s) fit no worker"))
        },
    );
    assert!(m.wait(Some(Duration::from_millis(1))).is_none());
    let why = m.factory_error().unwrap_or_default();
    assert!(why.contains("fit no worker"), "{why}");
    m.shutdown().unwrap();
}

/// A batch system made of three shell commands: a job is a process in a session
/// of its own (its id the pid), alive while that process is.
fn fake_batch(
    m: &Manager,
    dir: &std::path::Path,
) -> std::sync::Arc<vine::manager::factory::Factory> {
    let f = m.create_factory("custom").unwrap();
    f.set_string("scratch-dir", dir.to_str().unwrap()).unwrap();
    f.set_string("worker-path", WORKER).unwrap();
    f.set("cycle-interval", 0.05).unwrap();
    f.set_string(
        "submit-command",
        "FAKE_JOB=yes setsid sh -c \"$VINE_WORKER_COMMAND\" >\"$VINE_JOB_OUTPUT\" 2>&1 </dev/null & \
         echo \"$VINE_JOB_CORES core(s)\"; echo $!",
    )
    .unwrap();
    f.set_string(
        "status-command",
        "s=$(sed 's/.*) //' /proc/$VINE_JOB_ID/stat 2>/dev/null | cut -c1); \
         case \"$s\" in ''|Z|X) echo done;; *) echo running;; esac",
    )
    .unwrap();
    f.set_string("cancel-command", "/bin/kill -KILL -- -\"$VINE_JOB_ID\"")
        .unwrap();
    f
}

#[test]
fn a_custom_batch_system_runs_the_workers_and_cancels_them_at_the_end() {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let f = fake_batch(&m, &dir);
    f.set("max-workers", 3.0).unwrap();
    let ids: Vec<u64> = (0..6)
        .map(|_| m.submit(Task::command(c"echo $FAKE_JOB")).unwrap())
        .collect();
    for id in ids {
        // The task ran inside a job of the fake batch system.
        assert_eq!(done(&m, id).stdout().unwrap().to_bytes(), b"yes\n");
    }
    let (submitted, failed) = f.counts();
    assert!(
        (1..=3).contains(&submitted) && failed == 0,
        "{submitted} {failed}"
    );
    m.delete_factory(&f).unwrap();
    // Every job is gone: no worker process of this manager is left.
    let port = m.port().unwrap().to_string();
    assert_eq!(
        processes_with(&format!("vine_worker\0127.0.0.1\0{port}\0")),
        0
    );
    // Nothing failed: the job files are gone from the scratch directory,
    // which was there before and stays.
    let left: Vec<_> = std::fs::read_dir(&*dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            let n = n.to_string_lossy();
            n.ends_with(".sh") || n.ends_with(".out")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(dir.is_dir());
    m.shutdown().unwrap();
}

#[test]
fn a_scratch_directory_made_with_its_parents_goes_with_them() {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let f = fake_batch(&m, &dir);
    let nested = dir.join("p1/p2/scratch");
    f.set_string("scratch-dir", nested.to_str().unwrap())
        .unwrap();
    let id = m.submit(Task::command(c"echo $FAKE_JOB")).unwrap();
    assert_eq!(done(&m, id).stdout().unwrap().to_bytes(), b"yes\n");
    assert!(nested.is_dir());
    m.delete_factory(&f).unwrap();
    assert!(!dir.join("p1").exists(), "the parents made for it are gone");
    // A parent that holds something else by then stays.
    let f = fake_batch(&m, &dir);
    let other = dir.join("q1/scratch");
    f.set_string("scratch-dir", other.to_str().unwrap())
        .unwrap();
    let id = m.submit(Task::command(c"echo $FAKE_JOB")).unwrap();
    assert_eq!(done(&m, id).stdout().unwrap().to_bytes(), b"yes\n");
    std::fs::write(dir.join("q1/mine"), b"").unwrap();
    m.delete_factory(&f).unwrap();
    assert!(!other.exists());
    assert!(dir.join("q1/mine").exists(), "what else was there stays");
    m.shutdown().unwrap();
}

#[test]
fn a_scratch_directory_removed_while_a_job_runs_is_made_again_for_its_status() {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let f = fake_batch(&m, &dir);
    let scratch = dir.join("scratch");
    f.set_string("scratch-dir", scratch.to_str().unwrap())
        .unwrap();
    f.set("max-workers", 1.0).unwrap();
    f.set("idle-timeout", 1.0).unwrap();
    let id = m.submit(Task::command(c"echo $FAKE_JOB")).unwrap();
    assert_eq!(done(&m, id).stdout().unwrap().to_bytes(), b"yes\n");
    // A cleaner of old files removes it while the job runs; the job ends.
    std::fs::remove_dir_all(&scratch).unwrap();
    eventually("the idle worker leaves", || {
        m.stats().unwrap().workers_connected == 0
    });
    // The status command tells the job ended, so the next one is submitted.
    let id = m.submit(Task::command(c"echo $FAKE_JOB")).unwrap();
    assert_eq!(done(&m, id).stdout().unwrap().to_bytes(), b"yes\n");
    assert!(scratch.is_dir());
    m.delete_factory(&f).unwrap();
    m.shutdown().unwrap();
}

#[test]
fn a_factory_stopped_while_its_status_query_hangs_still_cancels_within_its_grace() {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let f = fake_batch(&m, &dir);
    f.set("max-workers", 1.0).unwrap();
    // The batch system runs jobs but never answers a status query (a
    // slurmctld that hangs); the factory is asking when it is stopped.
    let asked = dir.join("asked");
    f.set_string(
        "status-command",
        &format!("touch {}; exec sleep 600", asked.display()),
    )
    .unwrap();
    let id = m.submit(Task::command(c"true")).unwrap();
    done(&m, id);
    eventually("a status query hangs", || asked.exists());
    let started = Instant::now();
    let stopped = f.stop(Duration::from_secs(4));
    let took = started.elapsed();
    // The query in flight is given up: the grace is not added to the 60 s
    // a batch command may take.
    assert!(took < Duration::from_secs(30), "stopping took {took:?}");
    // Its job was cancelled all the same; the batch system never said so.
    let e = stopped.expect_err("the jobs' end was never confirmed");
    assert!(e.message().contains("still present"), "{e}");
    let port = m.port().unwrap().to_string();
    eventually("the job's worker is gone", || {
        processes_with(&format!("vine_worker\0127.0.0.1\0{port}\0")) == 0
    });
    m.shutdown().unwrap();
}

#[test]
fn a_submit_command_that_fails_is_reported_and_not_retried_in_a_loop() {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let f = fake_batch(&m, &dir);
    f.set_string(
        "submit-command",
        "echo 'qsub: Unknown queue nosuch' >&2; exit 3",
    )
    .unwrap();
    m.submit(Task::command(c"true")).unwrap();
    let started = Instant::now();
    eventually("the failure is reported", || m.factory_error().is_some());
    let e = m.factory_error().unwrap();
    assert!(
        e.contains("Unknown queue nosuch") && e.contains("exit status 3"),
        "{e}"
    );
    // The next attempts wait 1, 2, 4 ... s: after a second failure, still a
    // handful of attempts, not one per cycle (20 a second).
    eventually("a second attempt", || f.counts().1 >= 2);
    let (submitted, failed) = f.counts();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(submitted, failed);
    assert!(
        (submitted as f64) <= 3.0 + secs.log2().max(0.0),
        "{submitted} submissions in {secs} s"
    );
    m.shutdown().unwrap();
}

#[test]
fn a_job_that_ends_before_its_worker_connects_is_reported_with_its_output() {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let f = fake_batch(&m, &dir);
    f.set_string("worker-path", "/nonexistent/vine_worker")
        .unwrap();
    f.set("max-workers", 1.0).unwrap();
    m.submit(Task::command(c"true")).unwrap();
    eventually("the failure is reported", || m.factory_error().is_some());
    let e = m.factory_error().unwrap();
    assert!(
        e.contains("ended before its worker connected") && e.contains("nonexistent"),
        "{e}"
    );
    // With a worker that works, the task runs and the error is history.
    f.set_string("worker-path", WORKER).unwrap();
    let t = m
        .wait_for(Want::Any, Some(Duration::from_secs(120)))
        .expect("the task runs once the worker path is right");
    assert_eq!(t.result(), TaskResult::Success);
    eventually("the error is forgotten", || m.factory_error().is_none());
    m.shutdown().unwrap();
}

#[test]
fn bad_settings_are_refused_with_a_message() {
    let (m, _) = remote_manager();
    let e = m.create_factory("pbs").err().unwrap();
    assert!(e.message().contains("unknown batch type 'pbs'"), "{e}");
    let f = m.create_factory("local").unwrap();
    for (name, v) in [
        ("max-workers", -1.0),
        ("max-workers", 1.5),
        ("max-workers", f64::NAN),
        ("cores", 0.0),
        ("cores", f64::INFINITY),
        ("memory", 1e300),
        ("idle-timeout", 0.0),
        ("wall-time", -5.0),
        // A worker takes no task in its last 5 s: a job this short runs none.
        ("wall-time", 5.0),
        ("wall-time", 9.0),
        ("cycle-interval", 0.0),
        ("no-such-thing", 1.0),
    ] {
        assert!(f.set(name, v).is_err(), "{name} = {v} accepted");
    }
    assert!(f.set("wall-time", 10.0).is_ok());
    assert!(f.set("wall-time", 0.0).is_ok(), "0: none");
    for (name, v) in [
        ("worker-options", "--feature 'unbalanced"),
        ("worker-path", ""),
        ("worker-path", "/nonexistent/vine_worker"),
        ("submit-command", "true"),
        ("scratch-dir", ""),
        ("nothing", "x"),
    ] {
        assert!(f.set_string(name, v).is_err(), "{name} = {v:?} accepted");
    }
    let c = m.create_factory("custom").unwrap();
    assert!(c.set_string("submit-command", "  ").is_err());
    // A manager without a port has nowhere for workers to connect.
    let none = Manager::new(vine::Port::None).unwrap();
    let e = none.create_factory("local").err().unwrap();
    assert!(e.message().contains("port"), "{e}");
    m.shutdown().unwrap();
}

/// Run by the next test in a process of its own: a program with a local
/// factory whose worker has joined, which then exits without deleting its
/// manager or its factory.
#[test]
fn zz_exit_without_delete_entry() {
    let Ok(marker) = std::env::var("VINE_TEST_EXIT_MARKER") else {
        return;
    };
    let (m, _) = remote_manager();
    let f = marked_local_factory(&m, &marker);
    f.set("min-workers", 1.0).unwrap();
    eventually("the worker joins", || {
        m.stats().unwrap().workers_connected == 1
    });
    assert_eq!(processes_with(&marker), 1);
    std::process::exit(0);
}

#[test]
fn a_program_that_exits_without_deleting_its_manager_leaves_no_local_worker() {
    let marker = unique("exit-no-delete");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "zz_exit_without_delete_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VINE_TEST_EXIT_MARKER", &marker)
        .status()
        .unwrap();
    assert!(status.success(), "the program failed: {status}");
    // A worker that outlived it would wait for its manager for a minute
    // (its --timeout) before giving up.
    let until = Instant::now() + Duration::from_secs(20);
    while processes_with(&marker) > 0 {
        assert!(
            Instant::now() < until,
            "a worker of the factory outlived its program"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// When a test sets the manager's password, against its local workers' start.
#[derive(Clone, Copy, Debug)]
enum PasswordSet {
    /// Before the workers are set up.
    Before,
    /// Right after they are set up, before any task.
    After,
    /// Once a worker that joined without a password has run a task: it is
    /// connected when the password is set.
    AfterATask,
}

/// A manager whose local workers are set up by `start` gets its password (from
/// a string, or from a file) `when` told: the task submitted after both runs,
/// on a worker that proved the password. What `start` returns is checked last.
fn the_password_reaches_local_workers<T>(
    start: impl Fn(&Manager) -> T,
    check: impl Fn(&T),
    when: PasswordSet,
    from_file: bool,
) {
    let dir = tempdir();
    let (m, _) = remote_manager();
    let set = || {
        if from_file {
            let pw = dir.join("password");
            std::fs::write(&pw, "open sesame\n").unwrap();
            m.set_password_file(&pw).unwrap();
        } else {
            m.set_password(b"open sesame").unwrap();
        }
    };
    if let PasswordSet::Before = when {
        set();
    }
    let started = start(&m);
    match when {
        PasswordSet::Before => {}
        PasswordSet::After => set(),
        PasswordSet::AfterATask => {
            let id = m.submit(Task::command(c"echo before")).unwrap();
            assert_eq!(done(&m, id).stdout().unwrap().to_bytes(), b"before\n");
            set();
        }
    }
    let id = m.submit(Task::command(c"echo with-password")).unwrap();
    let t = done(&m, id);
    assert_eq!(
        t.stdout().unwrap().to_bytes(),
        b"with-password\n",
        "{when:?}, from a file: {from_file}"
    );
    check(&started);
    m.shutdown().unwrap();
}

const PASSWORD_CASES: [(PasswordSet, bool); 6] = [
    (PasswordSet::Before, false),
    (PasswordSet::Before, true),
    (PasswordSet::After, false),
    (PasswordSet::After, true),
    (PasswordSet::AfterATask, false),
    (PasswordSet::AfterATask, true),
];

#[test]
fn local_worker_processes_get_a_password_set_before_or_after_they_start() {
    for (when, from_file) in PASSWORD_CASES {
        the_password_reaches_local_workers(
            |m| {
                m.start_local_workers(1, Some(std::path::Path::new(WORKER)))
                    .unwrap()
            },
            |_| {},
            when,
            from_file,
        );
    }
}

#[test]
fn a_local_factory_gets_a_password_set_before_or_after_it_starts() {
    for (when, from_file) in PASSWORD_CASES {
        the_password_reaches_local_workers(
            |m| {
                let f = marked_local_factory(m, &unique("password"));
                f.set("max-workers", 1.0).unwrap();
                f
            },
            // Its jobs were all given the password they needed: none failed.
            |f| assert_eq!(f.counts().1, 0, "{when:?}: {:?}", f.last_error()),
            when,
            from_file,
        );
    }
}
