//! A Slurm factory whose `sbatch` submits the job and then hangs until it is
//! killed at the factory's `command-timeout`: the submission failed, yet its
//! job is in Slurm. The factory must find that job by its name and cancel it,
//! not leave it to run (or wait in the queue) unknown. Alone in its test
//! binary: it puts that `sbatch` first on this process's `PATH`. Without a
//! working Slurm it says loudly that it was skipped.

mod common;
use common::remote_manager;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use vine::Task;

const WORKER: &str = env!("CARGO_BIN_EXE_vine_worker");

/// Waits (at most two minutes) until `ok` holds, looking again every 50 ms.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !ok() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_job_submitted_by_an_sbatch_killed_at_its_timeout_is_found_and_cancelled() {
    let usable = Command::new("sinfo")
        .args(["--noheader", "--format=%t"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.contains("idle") || l.contains("mix") || l.contains("alloc"))
        });
    if !usable {
        eprintln!(
            "\n*** SKIPPED: no working Slurm here (sinfo shows no usable node); \
             `make slurm-up` starts one ***\n"
        );
        return;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let real = std::env::split_paths(&path)
        .map(|d| d.join("sbatch"))
        .find(|p| p.is_file())
        .expect("sbatch is on the PATH");
    let dir = common::tempdir();
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("sbatch");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n'{}' \"$@\" || exit\nexec sleep 300\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    // Before any thread of the library exists; this binary has no other test.
    std::env::set_var("PATH", std::env::join_paths(dirs).unwrap());

    let (m, _) = remote_manager();
    let f = m.create_factory("slurm").unwrap();
    f.set_string("scratch-dir", dir.join("scratch").to_str().unwrap())
        .unwrap();
    f.set_string("worker-path", WORKER).unwrap();
    f.set("max-workers", 1.0).unwrap();
    f.set("cycle-interval", 0.1).unwrap();
    f.set("command-timeout", 1.0).unwrap();
    m.submit(Task::command(c"true")).unwrap();
    eventually(
        "the factory cancelled the job its killed sbatch had submitted",
        || {
            common::slurm_jobs(Some("all"))
                .iter()
                .any(|(_, s)| s == "CANCELLED")
        },
    );
    // The submission failed, and said why.
    assert!(f.counts().1 >= 1);
    assert!(
        m.factory_error()
            .is_some_and(|e| e.contains("killed or timed out")),
        "{:?}",
        m.factory_error()
    );
    m.shutdown().unwrap();
    // Nothing of this factory is left to run or to wait in the queue, not even
    // what a submission cut off by the shutdown left.
    eventually("no job of the factory is left in Slurm", || {
        common::slurm_jobs(Some("PENDING,RUNNING,SUSPENDED,CONFIGURING")).is_empty()
    });
}
