//! `vine_task_set_time_min` against workers that know their end: real
//! `vine_worker` processes on loopback.

mod common;
use common::remote_manager;

use std::process::{Child, Command};
use std::time::Duration;

use vine::{Task, TaskResult, Want};

/// A `vine_worker` of 1 core for the manager at `port`, outside any batch job
/// (so that only `extra` says when it ends).
fn worker(port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1"])
        .args(["--timeout", "60"])
        .args(extra)
        .env_remove("SLURM_JOB_ID")
        .spawn()
        .unwrap()
}

fn done(m: &vine::Manager, id: u64) -> Box<Task> {
    let t = m
        .wait_for(Want::Id(id), Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(t.result(), TaskResult::Success);
    t
}

#[test]
fn a_task_needing_more_time_than_a_worker_has_left_waits_for_another_worker() {
    let (m, port) = remote_manager();
    let mut short = worker(port, &["--wall-time", "600"]);
    let mut long_task = Task::command(c"echo long");
    long_task.set_time_min(3600.0).unwrap();
    let long_id = m.submit(long_task).unwrap();
    // Submitted after it, so tried after it: once this one has run on the
    // short-lived worker, the long one has been turned down there.
    let short_id = m.submit(Task::command(c"echo short")).unwrap();
    let short_task = done(&m, short_id);
    let short_at = short_task.place().unwrap().addrport.clone();
    let s = m.stats().unwrap();
    assert_eq!((s.tasks_waiting, s.tasks_done), (1, 1));

    let mut long = worker(port, &[]);
    let long_task = done(&m, long_id);
    assert_eq!(long_task.stdout().unwrap().to_bytes(), b"long\n");
    assert_ne!(long_task.place().unwrap().addrport, short_at);
    m.shutdown().unwrap();
    for w in [&mut short, &mut long] {
        let _ = w.wait();
    }
}
