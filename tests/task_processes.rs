//! The processes a task starts die with the process that started them: a remote
//! worker SIGKILLed mid-task, or a program running commands on its local pool.
//! Otherwise the command would run on while the manager runs the task again
//! elsewhere: the task would run twice.

mod common;
use common::{remote_manager, tempdir, vine_worker};

use std::ffi::{c_int, c_void, CString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vine::ffi::vine_buffer;
use vine::{Manager, Port, Task};

/// Writes its pid (and its process group's) to the fifo named by its input, then
/// blocks; if it ever got past the block it would create `<fifo>.after`.
unsafe extern "C" fn report_and_block(
    input: *const c_void,
    len: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: the input is the fifo's path, `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(input as *const u8, len) };
    let fifo = PathBuf::from(std::str::from_utf8(bytes).unwrap());
    let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writeln!(f, "{}", std::process::id()).unwrap();
    drop(f);
    // The task's block: only its death ends it.
    std::thread::sleep(Duration::from_secs(1000));
    std::fs::write(fifo.with_extension("after"), b"ran on").unwrap();
    0
}

/// When the test binary is started as a worker or as a program (see `self_exec`),
/// this test becomes it.
#[test]
fn zz_entry() {
    if let Ok(args) = std::env::var("VINE_TEST_WORKER_ARGS") {
        vine::registry::register(c"report_and_block", report_and_block).unwrap();
        let mut argv = vec!["self".to_owned()];
        argv.extend(args.split(' ').map(str::to_owned));
        std::process::exit(vine::worker::daemon::main_with_args(argv));
    }
    if let Ok(script) = std::env::var("VINE_TEST_PROGRAM_COMMAND") {
        // A program whose command runs on its local pool, and which is killed
        // while it waits for it.
        let m = Manager::new(Port::None).unwrap();
        m.submit(Task::command(&CString::new(script).unwrap()))
            .unwrap();
        let _ = m.wait(None);
        std::process::exit(3);
    }
    if std::env::var("VINE_TEST_PROGRAM_WAITS_FOR_ANY_CHILD").is_ok() {
        // A program that ran a command, then waits for any child of its own.
        let m = Manager::new(Port::None).unwrap();
        m.submit(Task::command(c"true")).unwrap();
        assert!(m.wait(None).is_some());
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG, writing into a local int.
        let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        let none = rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
        std::process::exit(if none { 0 } else { 4 });
    }
}

fn self_exec(var: &str, value: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "zz_entry", "--nocapture", "--test-threads=1"])
        .env(var, value)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The pids a task wrote to `fifo` (opening it waits for the task to write).
fn pids_from(fifo: &Path) -> Vec<i32> {
    let mut line = String::new();
    std::fs::File::open(fifo)
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    line.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// True while `pid` is a process that has not ended (a zombie has ended).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// Waits for every pid to end; the bound is generous, the death is immediate.
fn assert_all_end(pids: &[i32]) {
    let bound = Instant::now() + Duration::from_secs(60);
    while pids.iter().any(|&p| alive(p)) {
        if Instant::now() >= bound {
            let left: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
            for &&p in &left {
                // SAFETY: plain kill of a process the test started, so it does
                // not outlive the failed test.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            panic!("task processes {left:?} outlived the process that started them");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A command that reports its shell's pid and a child's through the fifo, waits,
/// then would leave a marker.
fn blocking_command(dir: &Path) -> (PathBuf, PathBuf, String) {
    let fifo = mkfifo(dir);
    let marker = dir.join("after");
    let script = format!(
        "sleep 1000 & echo $$ $! > {f}; wait; touch {m}",
        f = fifo.display(),
        m = marker.display()
    );
    (fifo, marker, script)
}

#[test]
fn a_killed_workers_command_and_what_it_started_die_with_it() {
    let dir = tempdir();
    let (fifo, marker, script) = blocking_command(&dir);
    let (m, port) = remote_manager();
    let mut worker = vine_worker(port, &[]);
    m.submit(Task::command(&CString::new(script).unwrap()))
        .unwrap();
    let pids = pids_from(&fifo);
    assert_eq!(pids.len(), 2);
    sigkill(&mut worker);
    assert_all_end(&pids);
    assert!(!marker.exists(), "the command ran past its block");
    m.shutdown().unwrap();
}

#[test]
fn a_process_that_left_its_commands_group_dies_with_the_worker() {
    let dir = tempdir();
    let fifo = mkfifo(&dir);
    let left = dir.join("left");
    assert!(Command::new("mkfifo")
        .arg(&left)
        .status()
        .unwrap()
        .success());
    let marker = dir.join("after");
    // `setsid` gives the inner shell a session and group of its own; it reports
    // its pid once there, and becomes the blocking sleep.
    let script = format!(
        "setsid sh -c 'echo $$ > {l}; exec sleep 1000' & read p < {l}; echo $$ $p > {f}; wait; touch {m}",
        l = left.display(),
        f = fifo.display(),
        m = marker.display()
    );
    let (m, port) = remote_manager();
    let mut worker = vine_worker(port, &[]);
    m.submit(Task::command(&CString::new(script).unwrap()))
        .unwrap();
    let pids = pids_from(&fifo);
    assert_eq!(pids.len(), 2);
    // SAFETY: getpgid and getsid only read another process's ids.
    let (group, session) = unsafe { (libc::getpgid(pids[1]), libc::getsid(pids[1])) };
    assert_eq!((group, session), (pids[1], pids[1]), "it left the group");
    sigkill(&mut worker);
    assert_all_end(&pids);
    assert!(!marker.exists(), "the command ran past its block");
    m.shutdown().unwrap();
}

#[test]
fn a_killed_workers_process_function_dies_with_it() {
    let dir = tempdir();
    let fifo = mkfifo(&dir);
    let (m, port) = remote_manager();
    let mut worker = self_exec(
        "VINE_TEST_WORKER_ARGS",
        &format!("--vine-worker 127.0.0.1 {port} --cores 1 --timeout 60"),
    );
    let mut t = Task::function(c"report_and_block", fifo.to_str().unwrap().as_bytes());
    t.set_exec_mode(vine::task::ExecMode::Process).unwrap();
    m.submit(t).unwrap();
    let pids = pids_from(&fifo);
    assert_ne!(
        pids[0] as u32,
        worker.id(),
        "the function ran in a process of its own"
    );
    sigkill(&mut worker);
    assert_all_end(&pids);
    assert!(!fifo.with_extension("after").exists());
    m.shutdown().unwrap();
}

#[test]
fn a_killed_programs_local_commands_die_with_it_and_its_scratch_directory_goes() {
    let dir = tempdir();
    let (fifo, marker, script) = blocking_command(&dir);
    // The program's scratch directory is made under a TMPDIR of its own.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut program = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "zz_entry", "--nocapture", "--test-threads=1"])
        .env("VINE_TEST_PROGRAM_COMMAND", &script)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pids = pids_from(&fifo);
    assert_eq!(pids.len(), 2);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1);
    sigkill(&mut program);
    assert_all_end(&pids);
    assert!(!marker.exists(), "the command ran past its block");
    // The guardian removes it after the processes; the bound is generous.
    let bound = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < bound, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_guardian_is_no_child_of_the_program() {
    let status = self_exec("VINE_TEST_PROGRAM_WAITS_FOR_ANY_CHILD", "1")
        .wait()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the program has a child left to wait for"
    );
}

fn mkfifo(dir: &Path) -> PathBuf {
    let fifo = dir.join("started");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    fifo
}
