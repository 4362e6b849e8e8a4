//! A program whose SIGCHLD handler reaps every child, its own or not: the
//! commands vine runs for it lose their exit status to it, and each still
//! runs once and comes back once, saying why. (A process of its own: the
//! handler is the whole process's.)

mod common;
use common::tempdir;

use std::ffi::CString;
use std::time::Duration;

use vine::{Manager, Port, Task, TaskResult};

extern "C" fn reap_all(_: libc::c_int) {
    // SAFETY: waitpid is async-signal-safe; errno is saved around it.
    unsafe {
        let errno = *libc::__errno_location();
        while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        *libc::__errno_location() = errno;
    }
}

#[test]
fn a_command_whose_exit_status_the_program_reaped_runs_once_and_says_so() {
    // SAFETY: installs a handler that only reaps (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = reap_all as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
    let dir = tempdir();
    let runs = dir.join("runs");
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 2.0).unwrap();
    let n = 20;
    let cmd = CString::new(format!("echo ran >> {}; exit 7", runs.display())).unwrap();
    for _ in 0..n {
        m.submit(Task::command(&cmd)).map_err(|(e, _)| e).unwrap();
    }
    let mut reaped = 0;
    for _ in 0..n {
        let t = m
            .wait(Some(Duration::from_secs(60)))
            .expect("every task back");
        match t.result() {
            TaskResult::Success => assert_eq!(t.exit_code(), 7),
            TaskResult::Unknown => {
                let why = t.reason().unwrap().to_string_lossy().into_owned();
                assert!(
                    why.contains("SIGCHLD handler") && why.contains("not run again"),
                    "{why}"
                );
                reaped += 1;
            }
            other => panic!("{other:?}: {:?}", t.reason()),
        }
    }
    assert!(m.wait(Some(Duration::ZERO)).is_none());
    // Each ran once: none whose status the handler took was run again.
    let lines = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(lines, n, "{reaped} reaped by the handler");
}
