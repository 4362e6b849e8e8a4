//! The Slurm factory against a real Slurm (`make slurm-up` brings up a
//! single-node cluster). Each test asks Slurm itself (`squeue`, the jobs' own
//! `SLURM_JOB_ID`) what happened. Without a working Slurm every test says loudly
//! that it was skipped.
//!
//! The tests share the one node, so they run one at a time (a lock).

mod common;
use common::remote_manager;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vine::manager::factory::Factory;
use vine::{Manager, Task, TaskResult, Want};

const WORKER: &str = env!("CARGO_BIN_EXE_vine_worker");

/// The node's CPUs, or None (with a loud message) when there is no Slurm to use.
fn slurm() -> Option<(MutexGuard<'static, ()>, u32)> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = Command::new("sinfo")
        .args(["--noheader", "--format=%c %t"])
        .output();
    let cpus = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("idle") || l.contains("mix") || l.contains("alloc"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok()),
        _ => None,
    };
    match cpus {
        Some(c) => Some((guard, c)),
        None => {
            eprintln!(
                "\n*** SKIPPED: no working Slurm here (sinfo shows no usable node); \
                 `make slurm-up` starts one ***\n"
            );
            None
        }
    }
}

/// Waits (at most two minutes) until `ok` holds, looking again every 50 ms.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !ok() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// This process's factory jobs in Slurm: (id, state).
fn jobs() -> Vec<(String, String)> {
    common::slurm_jobs(None)
}

/// A Slurm factory whose scratch directory is `dir`.
fn factory(m: &Manager, max: f64, dir: &std::path::Path) -> Arc<Factory> {
    let f = m.create_factory("slurm").unwrap();
    f.set_string("scratch-dir", dir.to_str().unwrap()).unwrap();
    f.set_string("worker-path", WORKER).unwrap();
    f.set("max-workers", max).unwrap();
    f.set("cycle-interval", 0.1).unwrap();
    f
}

fn job_id_of(t: &Task) -> String {
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.stdout());
    let id = t.stdout().unwrap().to_str().unwrap().trim().to_owned();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "not in a Slurm job: {id:?}"
    );
    id
}

fn wait(m: &Manager) -> Box<Task> {
    m.wait(Some(Duration::from_secs(180)))
        .unwrap_or_else(|| panic!("no task came back: {:?}", m.factory_error()))
}

#[test]
fn tasks_run_inside_slurm_jobs_never_more_than_max_workers_and_none_is_left() {
    let Some(_slurm) = slurm() else { return };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    m.set_password(b"slurm-suite-secret").unwrap();
    let f = factory(&m, 2.0, &dir);
    let n = 30;
    for _ in 0..n {
        m.submit(Task::command(c"echo $SLURM_JOB_ID")).unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut most = 0;
    for _ in 0..n {
        seen.insert(job_id_of(&wait(&m)));
        most = most.max(jobs().len());
    }
    // Thirty tasks, two workers at most: two jobs, each ran some of them.
    assert!(
        most <= 2 && seen.len() <= 2,
        "{most} jobs at once, ran in {seen:?}"
    );
    assert_eq!(f.counts(), (2, 0));
    // The password reached the jobs as a file, never on their command line.
    let scripts: Vec<String> = std::fs::read_dir(f.scratch_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "sh").then(|| std::fs::read_to_string(p).unwrap())
        })
        .collect();
    assert_eq!(scripts.len(), 2);
    assert!(scripts
        .iter()
        .all(|s| s.contains("--password") && !s.contains("slurm-suite-secret")));
    m.shutdown().unwrap();
    // Shut down: no job of this factory remains in Slurm.
    assert_eq!(jobs(), vec![]);
}

#[test]
fn a_worker_job_cancelled_mid_run_loses_no_task() {
    let Some(_slurm) = slurm() else { return };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    let f = factory(&m, 1.0, &dir);
    // The workers' directories, as on a node's scratch space.
    let scratch = dir.join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    f.set_string(
        "worker-options",
        &format!("--workdir {}", scratch.display()),
    )
    .unwrap();
    let go = dir.join("go");
    let cmd = format!(
        "echo $SLURM_JOB_ID >> {d}/ran; while [ ! -e {go} ]; do sleep 0.05; done; echo $SLURM_JOB_ID",
        d = dir.display(),
        go = go.display()
    );
    let id = m
        .submit(Task::command(&std::ffi::CString::new(cmd).unwrap()))
        .unwrap();
    let ran = dir.join("ran");
    eventually("the task starts", || ran.exists());
    let first = std::fs::read_to_string(&ran).unwrap().trim().to_owned();
    let workers_dirs = || -> Vec<_> {
        std::fs::read_dir(&scratch)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("vine-worker-"))
            .collect()
    };
    let first_dir = workers_dirs();
    assert_eq!(first_dir.len(), 1, "{first_dir:?}");
    assert!(Command::new("scancel")
        .arg(&first)
        .status()
        .unwrap()
        .success());
    // The task runs again, in another job the factory submits.
    eventually("the task starts again", || {
        std::fs::read_to_string(&ran).unwrap().lines().count() == 2
    });
    // The cancelled worker's directory does not stay behind.
    eventually("the cancelled worker's directory goes", || {
        !first_dir[0].exists()
    });
    std::fs::write(&go, "").unwrap();
    let t = m
        .wait_for(Want::Id(id), Some(Duration::from_secs(180)))
        .unwrap();
    let second = job_id_of(&t);
    assert_ne!(first, second);
    assert_eq!(m.stats().unwrap().workers_lost, 1);
    // The cancelled job had its worker: no failure.
    assert_eq!(f.counts(), (2, 0));
    m.delete_factory(&f).unwrap();
    assert_eq!(jobs(), vec![]);
    m.shutdown().unwrap();
}

#[test]
fn jobs_pending_on_a_full_node_are_tolerated_and_cancelled_when_demand_falls() {
    let Some((_slurm, cpus)) = slurm() else {
        return;
    };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    // Automatic prefetch knows no task duration here: the worker holds only
    // the task it runs, and the short ones wait at the manager, counted as
    // demand.
    // Each job takes the whole node: one runs, the others wait in the queue.
    let f = factory(&m, 3.0, &dir);
    f.set("cores", f64::from(cpus)).unwrap();
    let go = dir.join("go");
    let cmd = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; echo $SLURM_JOB_ID",
        go = go.display()
    );
    let mut t = Task::command(&std::ffi::CString::new(cmd).unwrap());
    t.set_cores(f64::from(cpus)).unwrap();
    m.submit(t).unwrap();
    let short: Vec<u64> = (0..3)
        .map(|_| {
            let mut t = Task::command(c"echo $SLURM_JOB_ID");
            t.set_cores(f64::from(cpus)).unwrap();
            m.submit(t).unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    eventually("one job runs and two are pending", || {
        let j = jobs();
        j.len() == 3
            && j.iter().filter(|(_, s)| s == "RUNNING").count() == 1
            && j.iter().filter(|(_, s)| s == "PENDING").count() == 2
    });
    // The three short tasks are cancelled: demand falls to the one running.
    for id in short {
        m.cancel(id).unwrap();
    }
    eventually("the pending jobs are cancelled", || {
        let j = jobs();
        j.len() == 1 && j[0].1 == "RUNNING"
    });
    std::fs::write(&go, "").unwrap();
    let mut ok = 0;
    for _ in 0..4 {
        let t = wait(&m);
        if t.result() == TaskResult::Success {
            job_id_of(&t);
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    m.delete_factory(&f).unwrap();
    assert_eq!(jobs(), vec![]);
    m.shutdown().unwrap();
}

#[test]
fn bad_batch_options_are_refused_at_once_and_failing_jobs_back_off() {
    let Some(_slurm) = slurm() else { return };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    let f = factory(&m, 2.0, &dir);
    let e = f
        .set_string("batch-options", "--partition=no-such-partition")
        .unwrap_err();
    assert!(e.message().contains("partition"), "{e}");
    // A job Slurm accepts but whose worker cannot start: reported with its
    // output, and not resubmitted in a loop.
    f.set_string("worker-path", "/nonexistent/vine_worker")
        .unwrap();
    m.submit(Task::command(c"true")).unwrap();
    let started = Instant::now();
    eventually("the failure is reported", || m.factory_error().is_some());
    let e = m.factory_error().unwrap();
    assert!(
        e.contains("before its worker connected") && e.contains("nonexistent"),
        "{e}"
    );
    eventually("a second round of attempts", || f.counts().1 >= 3);
    let (submitted, failed) = f.counts();
    let secs = started.elapsed().as_secs_f64();
    assert!(
        (submitted as f64) <= 2.0 * (3.0 + secs.log2().max(0.0)),
        "{submitted} submissions ({failed} failed) in {secs} s"
    );
    m.delete_factory(&f).unwrap();
    assert_eq!(jobs(), vec![]);
    m.shutdown().unwrap();
}

#[test]
fn jobs_renamed_by_the_batch_options_are_still_followed_and_cancelled() {
    let Some(_slurm) = slurm() else { return };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    let f = factory(&m, 1.0, &dir);
    let name = format!("vine-renamed-{}", std::process::id());
    f.set_string("batch-options", &format!("--job-name={name}"))
        .unwrap();
    f.set("min-workers", 1.0).unwrap();
    for _ in 0..3 {
        m.submit(Task::command(c"echo $SLURM_JOB_ID")).unwrap();
    }
    for _ in 0..3 {
        job_id_of(&wait(&m));
    }
    // One job, known by its id whatever its name, and gone after the delete.
    assert_eq!(f.counts(), (1, 0));
    let named = || {
        let o = Command::new("squeue")
            .args(["--noheader", "--format=%i", "--name", &name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert_eq!(named(), 1);
    m.delete_factory(&f).unwrap();
    assert_eq!(named(), 0);
    m.shutdown().unwrap();
}

/// Every file under `dir` whose name ends with `password`.
fn password_copies(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with("password") {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_scratch_directory_named_with_what_slurm_misreads_works_and_no_password_copy_is_left() {
    let Some(_slurm) = slurm() else { return };
    let base = common::tempdir();
    // A space, a `#`, Slurm's `%j` and `\`, a quote, a newline: each broke
    // the job's output directive.
    let odd = base.join("a b#c%j\\d'e\nf");
    let second = base.join("second");
    let (m, _) = remote_manager();
    m.set_password(b"odd-scratch-secret").unwrap();
    let f = factory(&m, 1.0, &odd);
    f.set("idle-timeout", 0.5).unwrap();
    // What makes more than one worker job of a submission is refused; memory
    // and disk as large as a worker may have are not.
    assert!(f.set_string("batch-options", "--array=0-3").is_err());
    assert!(f.set_string("batch-options", "-a 0-3").is_err());
    // However spelled: Slurm takes abbreviations and bundled short options.
    // A job that waits to be released, or a submission that returns only
    // once its job ended, is refused too.
    for bad in ["--arr=0-3", "-Qa 0-3", "--wait", "-W", "--hold", "--te"] {
        let e = f.set_string("batch-options", bad).unwrap_err();
        assert!(e.to_string().contains("not for a worker job"), "{bad}: {e}");
    }
    f.set("memory", 2e6).unwrap();
    f.set("memory", 0.0).unwrap();
    m.submit(Task::command(c"echo $SLURM_JOB_ID")).unwrap();
    job_id_of(&wait(&m));
    // The job's output is in the directory, under its own name; nothing
    // went beside it.
    let outs: Vec<_> = std::fs::read_dir(&odd)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
        .collect();
    assert_eq!(outs.len(), 1, "{outs:?}");
    let beside: Vec<_> = std::fs::read_dir(&*base)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(beside, vec![odd.clone()]);
    // The worker idles out, its job ends; the next job goes to another
    // scratch directory, with its own password copy.
    eventually("the first job ended", || jobs().is_empty());
    f.set_string("scratch-dir", second.to_str().unwrap())
        .unwrap();
    m.submit(Task::command(c"echo $SLURM_JOB_ID")).unwrap();
    job_id_of(&wait(&m));
    assert!(!password_copies(&second).is_empty());
    m.delete_factory(&f).unwrap();
    // Neither directory keeps a copy of the password.
    assert_eq!(password_copies(&base), Vec::<std::path::PathBuf>::new());
    m.shutdown().unwrap();
}

#[test]
fn deleting_a_factory_and_shutting_its_manager_down_at_once_both_wait_for_its_jobs() {
    let Some(_slurm) = slurm() else { return };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    let m = Arc::new(m);
    let f = factory(&m, 1.0, &dir);
    f.set("min-workers", 1.0).unwrap();
    eventually("a job in Slurm", || !jobs().is_empty());
    let go = Arc::new(std::sync::Barrier::new(2));
    let deleter = {
        let (m, f, go) = (m.clone(), f.clone(), go.clone());
        std::thread::spawn(move || {
            go.wait();
            m.delete_factory(&f).unwrap();
            jobs()
        })
    };
    go.wait();
    m.shutdown().unwrap();
    let after_shutdown = jobs();
    let after_delete = deleter.join().unwrap();
    // Whichever came second returned only once the job was gone.
    assert_eq!(after_shutdown, vec![]);
    assert_eq!(after_delete, vec![]);
}

#[test]
fn a_job_whose_worker_was_cut_off_is_cancelled_and_counted_until_gone() {
    let Some(_slurm) = slurm() else { return };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    let f = factory(&m, 1.0, &dir);
    let gate = dir.join("gate");
    let cmd = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo $SLURM_JOB_ID",
        gate.display()
    );
    m.submit(Task::command(&std::ffi::CString::new(cmd).unwrap()))
        .unwrap();
    eventually("the task runs", || m.stats().unwrap().tasks_running == 1);
    let first = jobs();
    assert_eq!(first.len(), 1, "{first:?}");
    // Its worker offers no more memory than Slurm gave its job (the node's
    // is more than the default per-CPU share of this one-CPU job).
    let o = Command::new("scontrol")
        .args(["show", "job", &first[0].0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let given = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|w| w.strip_prefix("mem="))
        .and_then(|v| match v.as_bytes().last() {
            Some(b'M') => v[..v.len() - 1].parse::<f64>().ok(),
            Some(b'G') => v[..v.len() - 1].parse::<f64>().ok().map(|g| g * 1024.0),
            _ => None,
        });
    if let Some(given) = given {
        let offered = m.stats().unwrap().total.memory_mb as f64;
        assert!(
            offered <= given,
            "{offered} MB offered, {given} MB given\n{text}"
        );
    }
    // The worker's host is blocked: the worker is cut off, its job keeps
    // running (the worker tries again). The job is cancelled, and until
    // Slurm says it is gone no other job starts: max-workers is 1.
    assert_eq!(m.block_host("127.0.0.1", None).unwrap(), 1);
    eventually("the first job is gone", || {
        let now = jobs();
        assert!(now.len() <= 1, "more than max-workers jobs: {now:?}");
        !now.iter().any(|(id, _)| *id == first[0].0)
    });
    m.unblock_host(Some("127.0.0.1"));
    std::fs::write(&gate, b"").unwrap();
    job_id_of(&wait(&m));
    m.delete_factory(&f).unwrap();
    assert_eq!(jobs(), vec![]);
    m.shutdown().unwrap();
}

#[test]
fn a_job_slurm_will_never_start_is_cancelled_and_reported() {
    let Some((_slurm, cpus)) = slurm() else {
        return;
    };
    let dir = common::tempdir();
    let (m, _) = remote_manager();
    let f = factory(&m, 1.0, &dir);
    // More cores than the node has: Slurm takes the job and keeps it pending
    // (reason PartitionConfig) for ever.
    f.set("cores", f64::from(cpus * 8)).unwrap();
    m.submit(Task::command(c"true")).unwrap();
    eventually("the factory names the job Slurm will not start", || {
        f.last_error()
            .is_some_and(|e| e.contains("will not start worker job"))
    });
    let e = f.last_error().unwrap();
    assert!(e.contains("asks for more than the nodes"), "{e}");
    eventually("the job is gone from Slurm", || jobs().is_empty());
    assert!(f.counts().1 >= 1, "{:?}", f.counts());
    m.delete_factory(&f).unwrap();
    assert!(jobs().is_empty());
}
