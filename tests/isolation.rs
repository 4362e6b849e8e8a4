//! Function tasks in separate processes, and memory and disk limits.

mod common;

use std::ffi::{c_int, c_void};
use std::time::Duration;

use vine::ffi::vine_buffer;
use vine::task::ExecMode;
use vine::{Manager, Port, Task, TaskResult};

const LONG: Option<Duration> = Some(Duration::from_secs(120));

unsafe extern "C" fn crash(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: not safe at all: the point is to crash the task's process with a
    // real invalid write, as a buggy C function would.
    unsafe { std::ptr::write_volatile(std::ptr::null_mut::<c_int>(), 1) };
    0
}

unsafe extern "C" fn raises_a_fault(
    _: *const c_void,
    _: usize,
    out: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: raises SIGSEGV in the task's own process, as a C function that
    // detects a fatal error and signals it would.
    unsafe { libc::raise(libc::SIGSEGV) };
    unsafe { vine::ffi::function::vine_buffer_append(out, b"went on".as_ptr().cast(), 7) };
    0
}

unsafe extern "C" fn quit(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: ends the task's process, as a careless library might.
    unsafe { libc::exit(3) }
}

unsafe extern "C" fn greet(
    input: *const c_void,
    len: usize,
    out: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    let name = unsafe { std::slice::from_raw_parts(input as *const u8, len) };
    let msg = [b"hello ".as_slice(), name].concat();
    unsafe { vine::ffi::function::vine_buffer_append(out, msg.as_ptr().cast(), msg.len()) };
    7
}

unsafe extern "C" fn hog(_: *const c_void, _: usize, _: *mut vine_buffer, _: *mut c_void) -> c_int {
    // Touch 400 MB, then wait to be stopped: only the memory limit ends it.
    let mut v: Vec<u8> = Vec::new();
    for _ in 0..400 {
        v.extend(std::iter::repeat_n(1u8, 1 << 20));
    }
    loop {
        std::hint::black_box(&v);
        std::thread::park();
    }
}

fn manager() -> Manager {
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 2.0).unwrap();
    m
}

fn process_task(f: vine::task::FunctionPtr, input: &[u8]) -> Box<Task> {
    let mut t = Task::local(f, 0, input);
    t.set_exec_mode(ExecMode::Process).unwrap();
    t
}

#[test]
fn a_crash_in_a_process_task_costs_only_that_task() {
    let m = manager();
    let bad = m.submit(process_task(crash, b"")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (bad, TaskResult::Signal));
    assert_eq!(t.exit_code(), libc::SIGSEGV);
    // The caller is alive, and the next task runs fine.
    m.submit(process_task(greet, b"world")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::FunctionError);
    assert_eq!(t.exit_code(), 7);
    assert_eq!(t.output(), b"hello world");
}

#[test]
fn a_fault_a_process_task_raises_ends_it_even_where_a_handler_is_installed() {
    // This test program, as vine_worker, is a Rust program: the runtime has a
    // SIGSEGV handler, which returns from a raised signal. The task still
    // ends by the signal, with no output.
    let m = manager();
    let id = m.submit(process_task(raises_a_fault, b"")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Signal));
    assert_eq!(t.exit_code(), libc::SIGSEGV);
    assert!(t.output().is_empty());
}

#[test]
fn exit_in_a_process_task_is_reported_with_its_code() {
    let m = manager();
    m.submit(process_task(quit, b"")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::FunctionError);
    assert_eq!(t.exit_code(), 3);
    assert!(t.reason().unwrap().to_str().unwrap().contains("exit(3)"));
}

/// Runs `t` alone and checks it came back for going past its request.
fn run_to_exhaustion(t: Box<Task>) -> Box<Task> {
    let m = manager();
    m.submit(t).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(
        t.result(),
        TaskResult::ResourceExhaustion,
        "{:?}",
        t.reason()
    );
    t
}

#[test]
fn a_process_task_over_its_memory_is_stopped() {
    let mut t = process_task(hog, b"");
    t.set_memory(50).unwrap();
    run_to_exhaustion(t);
}

/// Reads the bytes the input points to (address and length) three times,
/// writing none: it shares every page it reads with the program.
unsafe extern "C" fn reads_the_programs_memory(
    input: *const c_void,
    len: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    assert_eq!(len, 16);
    // SAFETY: the input is an address and a length the test passed.
    let (at, n) = unsafe {
        let words = std::slice::from_raw_parts(input as *const u8, 16);
        (
            usize::from_ne_bytes(words[..8].try_into().unwrap()),
            usize::from_ne_bytes(words[8..].try_into().unwrap()),
        )
    };
    // SAFETY: the program's buffer, copied into this process by the fork.
    let bytes = unsafe { std::slice::from_raw_parts(at as *const u8, n) };
    let mut sum = 0u64;
    for _ in 0..3 {
        sum += bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
        std::hint::black_box(sum);
    }
    c_int::from(sum != 3 * n as u64)
}

#[test]
fn a_process_task_is_not_charged_for_the_memory_it_shares_with_the_program() {
    // The program holds 300 MB; the task, asking for 100 MB, reads it all and
    // holds next to nothing of its own.
    let big = vec![1u8; 300 << 20];
    let mut input = Vec::new();
    input.extend_from_slice(&(big.as_ptr() as usize).to_ne_bytes());
    input.extend_from_slice(&big.len().to_ne_bytes());
    let mut t = process_task(reads_the_programs_memory, &input);
    t.set_memory(100).unwrap();
    let m = manager();
    m.submit(t).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    drop(big);
}

/// Closes every descriptor it inherited, opens 256 files of its own in the
/// directory its input names (one of them takes the number its result pipe
/// had), and returns 0.
unsafe extern "C" fn reopens_its_descriptors(
    input: *const c_void,
    len: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: the input is the directory's path, `len` bytes.
    let dir = std::str::from_utf8(unsafe { std::slice::from_raw_parts(input as *const u8, len) })
        .unwrap()
        .to_owned();
    for fd in 3..1024 {
        // SAFETY: closes descriptors of this (the task's) process only.
        unsafe { libc::close(fd) };
    }
    for i in 0..256 {
        let f = std::fs::File::create(format!("{dir}/f{i}")).unwrap();
        std::mem::forget(f);
    }
    0
}

#[test]
fn a_process_task_that_reopened_its_descriptors_gets_no_result_written_into_its_files() {
    let dir = common::tempdir();
    let m = manager();
    m.submit(process_task(
        reopens_its_descriptors,
        dir.to_str().unwrap().as_bytes(),
    ))
    .unwrap();
    let t = m.wait(LONG).unwrap();
    // As vine.h says of a function that closes every descriptor.
    assert_eq!(
        (t.result(), t.exit_code()),
        (TaskResult::FunctionError, 111),
        "{:?}",
        t.reason()
    );
    for i in 0..256 {
        let len = std::fs::metadata(dir.join(format!("f{i}"))).unwrap().len();
        assert_eq!(len, 0, "f{i} was written to");
    }
}

/// Leaves its process group for the program's, says so on the descriptor
/// its input names (if any), then blocks until killed.
unsafe extern "C" fn leaves_its_group(
    input: *const c_void,
    len: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: plain system calls; the input is a descriptor number, or empty.
    unsafe {
        libc::setpgid(0, libc::getpgid(libc::getppid()));
        if len == 4 {
            let fd = std::ptr::read_unaligned(input as *const i32);
            libc::write(fd, b"x".as_ptr().cast(), 1);
        }
        loop {
            libc::pause();
        }
    }
}

#[test]
fn a_process_task_that_left_its_group_is_still_stopped_at_its_time_limit_and_by_a_cancel() {
    let m = manager();
    // At its time limit: the supervisor kills it.
    let mut t = process_task(leaves_its_group, b"");
    t.set_time_max(1.0).unwrap();
    m.submit(t).unwrap();
    let t = m.wait(LONG).expect("the task outlived its time limit");
    assert_eq!(t.result(), TaskResult::MaxWallTime, "{:?}", t.reason());
    // By a cancel, once it has left.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let id = m
        .submit(process_task(leaves_its_group, &fds[1].to_ne_bytes()))
        .unwrap();
    let mut byte = [0u8; 1];
    // SAFETY: reads one byte into a local buffer; waits for the task to say.
    assert_eq!(
        unsafe { libc::read(fds[0], byte.as_mut_ptr().cast(), 1) },
        1
    );
    m.cancel(id).unwrap();
    let t = m.wait(LONG).expect("the cancelled task never came back");
    assert_eq!((t.id(), t.result()), (id, TaskResult::Cancelled));
    // SAFETY: closes the two descriptors made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

#[test]
fn a_command_over_its_memory_is_stopped() {
    // The shell holds 200 MB in a variable, then waits: only the limit ends it.
    let mut t = Task::command(c"x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 600");
    t.set_memory(40).unwrap();
    run_to_exhaustion(t);
}

#[test]
fn a_command_writing_more_than_its_disk_is_stopped() {
    // 3 MB written, then a wait that only the limit ends.
    let mut t = Task::command(c"head -c 3000000 /dev/urandom > big; exec sleep 600");
    t.set_disk(1).unwrap();
    let t = run_to_exhaustion(t);
    assert!(t
        .reason()
        .unwrap()
        .to_str()
        .unwrap()
        .contains("1 MB of disk"));
}

#[test]
fn a_command_that_ends_over_its_disk_fails_and_one_within_it_succeeds() {
    let m = manager();
    // Exits at once: the measure after the end catches it whatever the pace.
    let mut over = Task::command(c"head -c 3000000 /dev/urandom > big");
    over.set_disk(1).unwrap();
    let over = m.submit(over).unwrap();
    let mut within = Task::command(c"head -c 3000000 /dev/urandom > big");
    within.set_disk(10).unwrap();
    let within = m.submit(within).unwrap();
    for _ in 0..2 {
        let t = m.wait(LONG).unwrap();
        let want = if t.id() == over {
            TaskResult::ResourceExhaustion
        } else {
            assert_eq!(t.id(), within);
            TaskResult::Success
        };
        assert_eq!(t.result(), want, "{:?}", t.reason());
    }
}

#[test]
fn a_command_hiding_its_files_deeper_than_paths_reach_is_stopped() {
    // 3000 directories deep (a path of 6000 bytes, past PATH_MAX), reached 100
    // at a time, then 50 MB at the bottom: what cannot be listed by name
    // cannot be measured, so a disk limit cannot be kept. (The directories a
    // walk by name can reach take about 8 MB: within the 20 MB asked.)
    let mut t = Task::command(
        c"q=$(printf 'd/%.0s' $(seq 100)); \
          for i in $(seq 30); do mkdir -p $q && cd -P $q || exit 9; done; \
          head -c 50000000 /dev/zero > big",
    );
    t.set_disk(20).unwrap();
    let t = run_to_exhaustion(t);
    let why = t.reason().unwrap().to_str().unwrap().to_owned();
    assert!(why.contains("too deep"), "{why}");
    // Without a limit the same task runs to its end.
    let m = manager();
    m.submit(Task::command(
        c"q=$(printf 'd/%.0s' $(seq 100)); \
          for i in $(seq 30); do mkdir -p $q && cd -P $q || exit 9; done; \
          head -c 3000 /dev/urandom > big",
    ))
    .unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(t.exit_code(), 0);
}

#[test]
fn commands_cannot_be_put_in_process_mode_twice() {
    let mut t = Task::command(c"true");
    assert!(t.set_exec_mode(ExecMode::Process).is_err());
}

/// Spins until `SPIN_STOP` is set.
static SPIN_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe extern "C" fn spin_until_stopped(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    while !SPIN_STOP.load(std::sync::atomic::Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    0
}

#[test]
fn exit_in_a_process_task_comes_back_while_the_log_writer_lags() {
    use vine::ffi::{logs::*, manager::*, task::*};
    // The C API's logs flush at exit(). A PROCESS function's exit() runs that
    // in its child, which has no log writer to wait for: it must not wait.
    // Every core spins meanwhile, so the writer (at idle priority) lags.
    let dir = std::env::temp_dir().join(format!("vine-isolation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let txn = std::ffi::CString::new(dir.join("txn").to_str().unwrap()).unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    unsafe {
        let m = vine_create(vine::ffi::VINE_PORT_NONE);
        assert!(!m.is_null());
        assert_eq!(vine_tune(m, c"local-cores".as_ptr(), cores as f64 + 1.0), 0);
        assert_eq!(vine_enable_transactions_log(m, txn.as_ptr()), 1);
        for _ in 0..cores {
            let s = vine_task_create_local(
                Some(spin_until_stopped),
                std::ptr::null_mut(),
                std::ptr::null(),
                0,
            );
            assert!(vine_submit(m, s) > 0);
        }
        let t = vine_task_create_local(Some(quit), std::ptr::null_mut(), std::ptr::null(), 0);
        assert_eq!(vine_task_set_exec_mode(t, vine::ffi::VINE_EXEC_PROCESS), 0);
        let id = vine_submit(m, t);
        assert!(id > 0);
        let back = vine_wait_for_task_id(m, id, 60);
        SPIN_STOP.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(back, t, "the task came back");
        assert_eq!(
            vine_task_get_result(t),
            vine::ffi::VINE_RESULT_FUNCTION_ERROR
        );
        assert_eq!(vine_task_get_exit_code(t), 3);
        vine_task_delete(t);
        for _ in 0..cores {
            let s = vine_wait(m, 60);
            assert!(!s.is_null());
            vine_task_delete(s);
        }
        vine_delete(m);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// When the test below starts this binary as another user, this is its
/// workload: a command takes away the permissions of the directory its sandbox
/// is in (`$VINE_SANDBOX/..`), and the next command still runs.
#[test]
fn zz_unprivileged_entry() {
    if std::env::var_os("VINE_TEST_UNPRIVILEGED").is_none() {
        return;
    }
    let m = manager();
    for cmd in [
        c"chmod 000 \"$(dirname \"$VINE_SANDBOX\")\" && echo taken",
        c"echo after",
    ] {
        m.submit(Task::command(cmd)).unwrap();
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    }
    drop(m);
    std::process::exit(0);
}

/// Runs test `entry` of this binary as a user other than root (nobody, when
/// this one is root: permissions bind only users other than root), with its
/// temporary files in a fresh directory, and checks that nothing is left there.
fn run_unprivileged(entry: &str) {
    let dir = std::env::temp_dir().join(format!("vine-unpriv-{entry}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let c_dir = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::chown(c_dir.as_ptr(), 65534, 65534) }, 0);
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
        c
    } else {
        std::process::Command::new(&exe)
    };
    let status = cmd
        .args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env("VINE_TEST_UNPRIVILEGED", "1")
        .env("TMPDIR", &dir)
        .status()
        .unwrap();
    assert!(status.success(), "the workload failed: {status}");
    // Nothing left behind: the sandbox and the manager's directory are gone.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_task_that_takes_away_its_sandboxes_directory_costs_no_later_task() {
    run_unprivileged("zz_unprivileged_entry");
}

/// Run by the test below as a user other than root.
#[test]
fn zz_unprivileged_disk_entry() {
    if std::env::var_os("VINE_TEST_UNPRIVILEGED").is_none() {
        return;
    }
    let m = manager();
    // 3 MB under a directory the task then closes to itself: without read
    // permission, without search permission, and the sandbox itself.
    let cmds = [
        c"mkdir d && head -c 3000000 /dev/urandom > d/big && chmod 000 d",
        c"mkdir d && head -c 3000000 /dev/urandom > d/big && chmod 300 d",
        c"mkdir d && head -c 3000000 /dev/urandom > d/big && chmod 600 d",
        c"head -c 3000000 /dev/urandom > big && chmod 000 \"$VINE_SANDBOX\"",
    ];
    let mut ids = Vec::new();
    for cmd in cmds {
        let mut t = Task::command(cmd);
        t.set_disk(1).unwrap();
        ids.push(m.submit(t).unwrap());
    }
    // Without the limit, the same commands succeed.
    let mut t = Task::command(cmds[0]);
    t.set_disk(10).unwrap();
    let within = m.submit(t).unwrap();
    for _ in 0..=cmds.len() {
        let t = m.wait(LONG).unwrap();
        let want = if t.id() == within {
            TaskResult::Success
        } else {
            assert!(ids.contains(&t.id()));
            TaskResult::ResourceExhaustion
        };
        assert_eq!(t.result(), want, "task {}: {:?}", t.id(), t.reason());
    }
    drop(m);
    std::process::exit(0);
}

#[test]
fn a_task_cannot_hide_its_disk_behind_permissions() {
    run_unprivileged("zz_unprivileged_disk_entry");
}
