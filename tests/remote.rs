//! Remote workers on loopback: real worker processes, real sockets, real kills.

mod common;
use common::{remote_manager, tempdir, vine_worker};

use std::ffi::{c_int, c_void, CString};
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vine::ffi::vine_buffer;
use vine::files::{CacheLevel, File, Mount};
use vine::{Manager, Task, TaskResult};

const LONG: Option<Duration> = Some(Duration::from_secs(120));

unsafe extern "C" fn double_it(
    input: *const c_void,
    len: usize,
    out: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    let bytes = unsafe { std::slice::from_raw_parts(input as *const u8, len) };
    let v = u64::from_le_bytes(bytes.try_into().unwrap()) * 2;
    unsafe { vine::ffi::function::vine_buffer_append(out, v.to_le_bytes().as_ptr().cast(), 8) }
}

unsafe extern "C" fn crash_it(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: deliberately invalid: a buggy task function.
    unsafe { std::ptr::write_volatile(std::ptr::null_mut::<c_int>(), 1) };
    0
}

/// Appends as many bytes as its input (a u64) says.
unsafe extern "C" fn big_output(
    input: *const c_void,
    len: usize,
    out: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    let bytes = unsafe { std::slice::from_raw_parts(input as *const u8, len) };
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let big = vec![7u8; n];
    unsafe { vine::ffi::function::vine_buffer_append(out, big.as_ptr().cast(), n) }
}

/// When the test binary is started as a worker (see `self_worker`), this test
/// becomes that worker: it registers its functions and serves the manager, as a
/// user's program does with `--vine-worker`.
#[test]
fn zz_worker_entry() {
    let Ok(args) = std::env::var("VINE_TEST_WORKER_ARGS") else {
        return;
    };
    vine::registry::register(c"double_it", double_it).unwrap();
    vine::registry::register(c"crash_it", crash_it).unwrap();
    vine::registry::register(c"big_output", big_output).unwrap();
    let mut argv = vec!["self".to_owned()];
    argv.extend(args.split(' ').map(str::to_owned));
    std::process::exit(vine::worker::daemon::main_with_args(argv));
}

fn self_worker(port: u16, extra: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "zz_worker_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "VINE_TEST_WORKER_ARGS",
            format!("--vine-worker 127.0.0.1 {port} --cores 1 --timeout 60 {extra}").trim(),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Makes a fifo at `path`: a task tells the test through it that it runs.
fn mkfifo(path: &std::path::Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// The first line written to the fifo at `path` (waits for a writer).
fn first_line(path: &std::path::Path) -> String {
    let mut line = String::new();
    std::io::BufReader::new(std::fs::File::open(path).unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

fn stop(m: Manager, workers: Vec<Child>) {
    m.shutdown().unwrap();
    // Told to exit: none is counted as connected any more (the local pool
    // may be).
    let s = m.stats().unwrap();
    assert!(s.workers_connected <= 1, "{s:?}");
    assert_eq!(s.workers_joined, s.workers_removed, "{s:?}");
    assert!(s.workers_released >= workers.len() as u64, "{s:?}");
    for mut w in workers {
        // Shutdown tells every worker to exit: each one does, with status 0.
        let status = w.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
    }
}

#[test]
fn workers_serve_their_registered_functions() {
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 2.0).unwrap();
    let workers = vec![self_worker(port, ""), self_worker(port, "")];
    for i in 0..200u64 {
        m.submit(Task::function(c"double_it", &i.to_le_bytes()))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut used = std::collections::HashSet::new();
    for _ in 0..200 {
        let t = m.wait(LONG).expect("task back");
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        seen.push(u64::from_le_bytes(t.output().try_into().unwrap()));
        used.insert(t.worker_id());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..200).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(used.len(), 2, "both workers ran tasks");
    stop(m, workers);
}

#[test]
fn a_crash_on_a_remote_worker_costs_only_the_task() {
    let (m, port) = remote_manager();
    let w = self_worker(port, "");
    let mut bad = Task::function(c"crash_it", b"");
    bad.set_exec_mode(vine::task::ExecMode::Process).unwrap();
    let bad = m.submit(bad).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (bad, TaskResult::Signal));
    let mut good = Task::function(c"double_it", &21u64.to_le_bytes());
    good.set_exec_mode(vine::task::ExecMode::Process).unwrap();
    m.submit(good).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success);
    assert_eq!(t.output(), 42u64.to_le_bytes());
    assert_eq!(
        m.stats().unwrap().workers_connected,
        1,
        "the worker survived"
    );
    stop(m, vec![w]);
}

/// Builds the library of functions in the C file `src`, next to it.
fn build_library(src: &std::path::Path) -> std::path::PathBuf {
    let lib = src.with_extension("so");
    // Not linked against vine: vine_buffer_append resolves in the worker, which
    // exports the C API to the libraries it loads.
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-I{}/include", env!("CARGO_MANIFEST_DIR")))
        .arg(src)
        .arg("-o")
        .arg(&lib)
        .status()
        .unwrap();
    assert!(built.success());
    lib
}

#[test]
fn a_worker_serves_the_functions_of_a_library() {
    let dir = tempdir();
    let src = dir.join("triple.c");
    std::fs::write(
        &src,
        r#"#include "vine.h"
#include <string.h>
static int triple(const void *in, size_t len, struct vine_buffer *out, void *ctx) {
    (void)ctx;
    long x;
    if (len != sizeof x) return 1;
    memcpy(&x, in, sizeof x);
    x *= 3;
    return vine_buffer_append(out, &x, sizeof x);
}
int vine_register_functions(int (*register_function)(const char *, vine_function_t)) {
    /* A name need not be UTF-8. */
    return register_function("triple", triple) || register_function("tri\xffple", triple);
}
"#,
    )
    .unwrap();
    let lib = build_library(&src);
    let (m, port) = remote_manager();
    // Local cores too: the pool runs what this process registered, and no
    // task of a name only the workers know goes there.
    m.tune("local-cores", 2.0).unwrap();
    // The pool counts as a worker.
    m.tune("wait-for-workers", 3.0).unwrap();
    let workers = vec![
        vine_worker(port, &["--library", lib.to_str().unwrap()]),
        vine_worker(port, &["--library", lib.to_str().unwrap()]),
    ];
    for x in 1..=20i64 {
        let name = if x == 20 { c"tri\xffple" } else { c"triple" };
        m.submit(Task::function(name, &x.to_le_bytes())).unwrap();
    }
    let mut sum = 0;
    for _ in 0..20 {
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        sum += i64::from_le_bytes(t.output().try_into().unwrap());
    }
    assert_eq!(sum, 3 * 210);
    stop(m, workers);
}

#[test]
fn a_process_function_on_vine_worker_dies_of_sigpipe_and_of_a_stack_overflow_as_in_a_c_program() {
    let dir = tempdir();
    let src = dir.join("signals.c");
    std::fs::write(
        &src,
        r#"#include "vine.h"
#include <errno.h>
#include <unistd.h>
/* Writes to a pipe nobody reads: SIGPIPE's default action ends the process. */
static int broken_pipe(const void *in, size_t len, struct vine_buffer *out, void *ctx) {
    (void)in; (void)len; (void)out; (void)ctx;
    int p[2];
    if (pipe(p) != 0) return 2;
    close(p[0]);
    if (write(p[1], "x", 1) < 0) return errno == EPIPE ? 3 : 4;
    return 5;
}
static int deeper(volatile int n) {
    volatile char frame[4096];
    frame[0] = (char)n;
    if (n < 0) return 0;
    return deeper(n + 1) + frame[0];
}
/* Recurses until the stack is gone: SIGSEGV, as in a C program. */
static int overflow(const void *in, size_t len, struct vine_buffer *out, void *ctx) {
    (void)in; (void)out; (void)ctx;
    return deeper((int)len);
}
int vine_register_functions(int (*register_function)(const char *, vine_function_t)) {
    return register_function("broken_pipe", broken_pipe) || register_function("overflow", overflow);
}
"#,
    )
    .unwrap();
    let lib = build_library(&src);
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--library", lib.to_str().unwrap()]);
    for (name, signal) in [
        (c"broken_pipe", libc::SIGPIPE),
        (c"overflow", libc::SIGSEGV),
    ] {
        let mut t = Task::function(name, b"");
        t.set_exec_mode(vine::task::ExecMode::Process).unwrap();
        m.submit(t).unwrap();
        let t = m.wait(LONG).unwrap();
        assert_eq!(
            (t.result(), t.exit_code()),
            (TaskResult::Signal, signal),
            "{name:?}: {:?}",
            t.reason()
        );
    }
    stop(m, vec![w]);
}

#[test]
fn a_function_no_worker_knows_waits_and_local_tasks_stay_local() {
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    // vine_worker registers no functions: the task must not be sent there.
    let id = m
        .submit(Task::function(c"double_it", &1u64.to_le_bytes()))
        .unwrap();
    let echo = m.submit(Task::command(c"echo remote")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (echo, TaskResult::Success));
    assert!(m.wait(Some(Duration::from_millis(0))).is_none());
    m.cancel(id).unwrap();
    assert_eq!(m.wait(LONG).unwrap().result(), TaskResult::Cancelled);
    stop(m, vec![w]);
}

#[test]
fn commands_with_files_and_a_cached_input_sent_once() {
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    let dir = tempdir();
    let data = dir.join("in.dat");
    std::fs::write(&data, vec![b'x'; 1000]).unwrap();
    let input = m.declare(File::path(&data, CacheLevel::Workflow, 0).unwrap());
    let param = m.declare(File::buffer(b"7\n", CacheLevel::Task, 0).unwrap());
    let mut ids = Vec::new();
    for i in 0..3 {
        let out = dir.join(format!("out{i}.txt"));
        let output = m.declare(File::path(&out, CacheLevel::Task, 0).unwrap());
        let cmd =
            CString::new("wc -c < data/in.dat > result.txt; cat p.txt >> result.txt; echo ok")
                .unwrap();
        let mut t = Task::command(&cmd);
        t.add_input(Mount::new(input.clone(), "data/in.dat", 0).unwrap())
            .unwrap();
        t.add_input(Mount::new(param.clone(), "p.txt", 0).unwrap())
            .unwrap();
        t.add_output(Mount::new(output, "result.txt", 0).unwrap())
            .unwrap();
        ids.push((m.submit(t).unwrap(), out));
    }
    for _ in 0..3 {
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        assert_eq!(t.stdout().unwrap().to_str().unwrap(), "ok\n");
    }
    for (_, out) in &ids {
        assert_eq!(std::fs::read_to_string(out).unwrap(), "1000\n7\n");
    }
    let (sent, received) = m.bytes_transferred();
    // The 1000-byte file went once (cached at the worker); the 2-byte buffer,
    // cached for one task only, went with each task.
    assert_eq!(sent, 1000 + 3 * 2);
    assert_eq!(received, 3 * "1000\n7\n".len() as u64);
    stop(m, vec![w]);
}

#[test]
fn transfers_are_timed_and_held_to_the_bandwidth_limit() {
    let (m, port) = remote_manager();
    let w = vine_worker(port, &[]);
    let dir = tempdir();
    let data = dir.join("in.dat");
    std::fs::write(&data, vec![7u8; 8 << 20]).unwrap();
    // 8 MiB to the worker and 8 MiB back.
    let copy = |name: &str| {
        let input = m.declare(File::path(&data, CacheLevel::Task, 0).unwrap());
        let out = dir.join(name);
        let output = m.declare(File::path(&out, CacheLevel::Task, 0).unwrap());
        let mut t = Task::command(c"cp in.dat out.dat");
        t.add_input(Mount::new(input, "in.dat", 0).unwrap())
            .unwrap();
        t.add_output(Mount::new(output, "out.dat", 0).unwrap())
            .unwrap();
        m.submit(t).unwrap();
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 8 << 20);
    };
    copy("a");
    let free = m.transfer_times();
    assert!(free.send_us > 0 && free.receive_us > 0, "{free:?}");
    assert_eq!(
        (free.send_good_us, free.receive_good_us),
        (free.send_us, free.receive_us)
    );
    // At 16 MiB a second, 8 MiB take at least half a second each way.
    m.set_bandwidth_limit(16 << 20);
    copy("b");
    let held = m.transfer_times();
    assert!(held.send_us - free.send_us >= 500_000, "{free:?} {held:?}");
    assert!(
        held.receive_us - free.receive_us >= 500_000,
        "{free:?} {held:?}"
    );
    stop(m, vec![w]);
}

#[test]
fn a_file_kept_forever_outlives_its_worker_and_its_manager() {
    let dir = tempdir();
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let kept = dir.join("forever.dat");
    std::fs::write(&kept, vec![b'f'; 1000]).unwrap();
    let per_worker = dir.join("worker.dat");
    std::fs::write(&per_worker, vec![b'w'; 500]).unwrap();
    // One task reading both files, on a fresh manager and a fresh worker in `work`;
    // returns the bytes the manager sent.
    let workflow = || {
        let (m, port) = remote_manager();
        let w = vine_worker(port, &["--workdir", work.to_str().unwrap()]);
        let forever = m.declare(File::path(&kept, CacheLevel::Forever, 0).unwrap());
        let worker = m.declare(File::path(&per_worker, CacheLevel::Worker, 0).unwrap());
        let mut t = Task::command(c"cat a b | wc -c; stat -c %a a");
        t.add_input(Mount::new(forever, "a", 0).unwrap()).unwrap();
        t.add_input(Mount::new(worker, "b", 0).unwrap()).unwrap();
        m.submit(t).unwrap();
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        let out = t.stdout().unwrap().to_str().unwrap().to_owned();
        let (count, mode) = out.trim().split_once('\n').unwrap();
        assert_eq!(count, "1500");
        let (sent, _) = m.bytes_transferred();
        stop(m, vec![w]);
        (sent, mode.to_owned())
    };
    use std::os::unix::fs::PermissionsExt;
    let chmod = |mode| std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(mode));
    chmod(0o640).unwrap();
    assert_eq!(workflow(), (1000 + 500, "640".into()));
    // The first worker has exited; the file kept forever is still in its store,
    // and the task sees the mode it has now, not the one it was stored with.
    chmod(0o750).unwrap();
    assert_eq!(workflow(), (500, "750".into()));
    // A store anyone can write to could hold anything: it is not used, and the
    // worker keeps the file for itself.
    // SAFETY: geteuid takes nothing and cannot fail.
    let store = work.join(format!("vine-forever-{}", unsafe { libc::geteuid() }));
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(workflow(), (1000 + 500, "750".into()));
}

#[test]
fn a_worker_killed_mid_task_loses_nothing() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let fifo = dir.join("started");
    mkfifo(&fifo);
    let first = vine_worker(port, &[]);
    // The first attempt reports its worker's pid and its own through the fifo,
    // then waits; the second attempt finds the marker and finishes.
    let script = format!(
        "if [ ! -e {d}/once ]; then touch {d}/once; echo \"$PPID $$\" > {f}; exec sleep 600; fi; echo finished",
        d = dir.display(),
        f = fifo.display()
    );
    let mut t = Task::command(&CString::new(script).unwrap());
    t.set_retries(2).unwrap();
    let id = m.submit(t).unwrap();
    let mut line = String::new();
    std::fs::File::open(&fifo)
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let mut first = first;
    assert_eq!(
        pids[0] as u32,
        first.id(),
        "the task ran under the first worker"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // SAFETY: plain kill of the orphaned sleep the test started.
    unsafe { libc::kill(pids[1], libc::SIGKILL) };
    let second = vine_worker(port, &[]);
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.id(), id);
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "finished\n");
    assert_eq!(t.retries_used(), 1);
    // The attempt lost with its worker counts in the execution time of all
    // attempts, as a failed one (TaskVine's time_workers_execute_failure).
    let times = t.times();
    let last = times.done - times.started;
    assert!(times.execute > last, "{times:?}");
    stop(m, vec![second]);
}

#[test]
fn a_silent_worker_is_declared_lost_and_its_task_runs_elsewhere() {
    let (m, port) = remote_manager();
    m.tune("keepalive-timeout", 1.0).unwrap();
    let dir = tempdir();
    let fifo = dir.join("started");
    mkfifo(&fifo);
    let mut silent = vine_worker(port, &["--keepalive-interval", "0.2"]);
    let script = format!(
        "if [ ! -e {d}/once ]; then touch {d}/once; echo $$ > {f}; exec sleep 600; fi; echo elsewhere",
        d = dir.display(),
        f = fifo.display()
    );
    let id = m
        .submit(Task::command(&CString::new(script).unwrap()))
        .unwrap();
    let mut line = String::new();
    std::fs::File::open(&fifo)
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    // Freeze the worker: its socket stays open but it says nothing.
    // SAFETY: plain signals to the worker process this test started.
    unsafe { libc::kill(silent.id() as i32, libc::SIGSTOP) };
    let other = vine_worker(port, &[]);
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "elsewhere\n");
    let sleeper: i32 = line.trim().parse().unwrap();
    // SAFETY: as above; the sleep is the frozen attempt's, orphaned in its group.
    unsafe {
        libc::kill(silent.id() as i32, libc::SIGKILL);
        libc::kill(sleeper, libc::SIGKILL);
    }
    silent.wait().unwrap();
    stop(m, vec![other]);
}

#[test]
fn a_temp_stays_at_its_worker_feeds_a_later_task_there_and_is_fetched_on_request() {
    let (m, port) = remote_manager();
    // Without peer transfers a temp's readers run where it is kept.
    m.set_peer_transfers(false);
    m.tune("wait-for-workers", 2.0).unwrap();
    let workers = vec![vine_worker(port, &[]), vine_worker(port, &[])];
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo intermediate > t.txt");
    make.add_output(Mount::new(temp.clone(), "t.txt", 0).unwrap())
        .unwrap();
    m.submit(make).unwrap();
    let made = m.wait(LONG).unwrap();
    assert_eq!(made.result(), TaskResult::Success);
    assert_eq!(
        m.temp_worker(&temp),
        Some(made.worker_id()),
        "kept where it was made"
    );
    assert_eq!(m.bytes_transferred(), (0, 0), "nothing crossed the network");
    let mut read = Task::command(c"tr a-z A-Z < in.txt");
    read.add_input(Mount::new(temp.clone(), "in.txt", 0).unwrap())
        .unwrap();
    m.submit(read).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "INTERMEDIATE\n");
    assert_eq!(t.worker_id(), made.worker_id(), "read where it is kept");
    assert_eq!(m.bytes_transferred(), (0, 0));
    // Fetched only when asked.
    assert_eq!(&m.fetch_file(&temp).unwrap()[..], b"intermediate\n\0");
    assert_eq!(m.bytes_transferred(), (0, "intermediate\n".len() as u64));
    stop(m, workers);
}

#[test]
fn a_reader_of_a_temp_waits_for_every_writer_submitted_before_it() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 2.0).unwrap();
    let workers = vec![vine_worker(port, &[]), vine_worker(port, &[])];
    let temp = m.declare(File::temp().unwrap());
    // The second writer holds until the test lets it go, after the first is back.
    let gate = dir.join("gate");
    mkfifo(&gate);
    let mut first = Task::command(c"echo first > t");
    first
        .add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    let cmd = format!("cat {} > /dev/null; echo second > t", gate.display());
    let mut second = Task::command(&CString::new(cmd).unwrap());
    second
        .add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    let mut read = Task::command(c"cat in");
    read.add_input(Mount::new(temp.clone(), "in", 0).unwrap())
        .unwrap();
    let first = m.submit(first).unwrap();
    let second = m.submit(second).unwrap();
    let read = m.submit(read).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.id(), first);
    // A worker is free and the first copy is there: the reader still waits.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gate)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(
        t.id(),
        second,
        "the reader came back before the second writer"
    );
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.id(), read);
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "second\n");
    stop(m, workers);
}

#[test]
fn a_task_reading_temps_kept_at_two_workers_still_runs() {
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 2.0).unwrap();
    let (a, b) = (
        m.declare(File::temp().unwrap()),
        m.declare(File::temp().unwrap()),
    );
    // Both producers wait for both workers, then start at once: one on each.
    for (temp, text) in [(&a, c"echo left > t"), (&b, c"echo right > t")] {
        let mut make = Task::command(text);
        make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        m.submit(make).unwrap();
    }
    let workers = vec![vine_worker(port, &[]), vine_worker(port, &[])];
    for _ in 0..2 {
        assert_eq!(m.wait(LONG).unwrap().result(), TaskResult::Success);
    }
    assert!(m.temp_worker(&a).is_some() && m.temp_worker(&b).is_some());
    assert_ne!(m.temp_worker(&a), m.temp_worker(&b), "kept at two workers");
    let mut join = Task::command(c"cat one two");
    join.add_input(Mount::new(a.clone(), "one", 0).unwrap())
        .unwrap();
    join.add_input(Mount::new(b.clone(), "two", 0).unwrap())
        .unwrap();
    m.submit(join).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "left\nright\n");
    stop(m, workers);
}

/// Runs `make` on a worker of its own (`check` sees it succeeded there), kills
/// that worker, then runs `read` on a second one, which must succeed on it:
/// returns `read` finished and the second worker.
fn made_lost_and_read(
    m: &Manager,
    port: u16,
    make: Box<Task>,
    read: Box<Task>,
    check: impl FnOnce(&Task),
) -> (Box<Task>, Child) {
    let mut first = vine_worker(port, &[]);
    m.submit(make).unwrap();
    let made = m.wait(LONG).unwrap();
    assert_eq!(made.result(), TaskResult::Success, "{:?}", made.reason());
    check(&made);
    first.kill().unwrap();
    first.wait().unwrap();
    let second = vine_worker(port, &[]);
    let id = m.submit(read).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!(
        (t.id(), t.result()),
        (id, TaskResult::Success),
        "{:?}",
        t.reason()
    );
    assert_ne!(t.worker_id(), made.worker_id());
    (t, second)
}

#[test]
fn a_temp_whose_worker_is_lost_is_made_again() {
    let (m, port) = remote_manager();
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo intermediate > t.txt");
    make.add_output(Mount::new(temp.clone(), "t.txt", 0).unwrap())
        .unwrap();
    let mut read = Task::command(c"cat in.txt");
    read.add_input(Mount::new(temp.clone(), "in.txt", 0).unwrap())
        .unwrap();
    let (t, second) = made_lost_and_read(&m, port, make, read, |_| ());
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "intermediate\n");
    // The re-run producer is the manager's own: it never comes back to the caller.
    assert!(m.wait(Some(Duration::from_millis(0))).is_none());
    stop(m, vec![second]);
}

#[test]
fn a_task_whose_three_temps_are_lost_with_its_worker_runs_again_once() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let runs = dir.join("runs");
    let temps: Vec<_> = (0..3).map(|_| m.declare(File::temp().unwrap())).collect();
    let cmd = CString::new(format!(
        "echo one > t0; echo two > t1; echo three > t2; echo run >> {}",
        runs.display()
    ))
    .unwrap();
    let mut make = Task::command(&cmd);
    for (i, temp) in temps.iter().enumerate() {
        make.add_output(Mount::new(temp.clone(), &format!("t{i}"), 0).unwrap())
            .unwrap();
    }
    let mut read = Task::command(c"cat a b c");
    for (temp, name) in temps.iter().zip(["a", "b", "c"]) {
        read.add_input(Mount::new(temp.clone(), name, 0).unwrap())
            .unwrap();
    }
    let (t, second) = made_lost_and_read(&m, port, make, read, |made| {
        assert!(temps
            .iter()
            .all(|t| m.temp_worker(t) == Some(made.worker_id())));
    });
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "one\ntwo\nthree\n");
    // Every run the manager started for the lost temps is over (a bounded wait:
    // with one run per temp, the others may still be queued or running).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let stats = loop {
        let s = m.stats().unwrap();
        if s.tasks_done == s.tasks_submitted + s.tasks_recovery {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recoveries never ended: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "run\nrun\n",
        "the producer ran once, then once again for all three temps"
    );
    assert_eq!(stats.tasks_recovery, 1, "{stats:?}");
    assert!(m.wait(Some(Duration::from_millis(0))).is_none());
    stop(m, vec![second]);
}

#[test]
fn a_worker_with_the_wrong_password_is_refused_and_the_workflow_completes() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let good = dir.join("good");
    let bad = dir.join("bad");
    std::fs::write(&good, "sesame\n").unwrap();
    std::fs::write(&bad, "guess\n").unwrap();
    m.set_password_file(&good).unwrap();
    let mut wrong = vine_worker(
        port,
        &["--password", bad.to_str().unwrap(), "--timeout", "0"],
    );
    let mut none = vine_worker(port, &["--timeout", "0"]);
    // Refused workers give up (timeout 0) with a non-zero status.
    assert!(!wrong.wait().unwrap().success());
    assert!(!none.wait().unwrap().success());
    let id = m.submit(Task::command(c"echo authenticated")).unwrap();
    let right = vine_worker(port, &["--password", good.to_str().unwrap()]);
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    stop(m, vec![right]);
}

#[test]
fn bad_bytes_drop_only_their_connection() {
    let (m, port) = remote_manager();
    // Connections are taken once the manager's authentication settings are
    // final: asking for its stats is one of the calls that says so.
    m.stats().unwrap();
    let mut frames: Vec<Vec<u8>> = vec![b"GET / HTTP/1.0\r\n\r\n".to_vec()];
    // A header with another protocol version.
    let mut v = b"VN".to_vec();
    v.extend_from_slice(&99u16.to_le_bytes());
    v.extend_from_slice(&4u32.to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    frames.push(v);
    // A length far past the limit.
    let mut big = b"VN".to_vec();
    big.extend_from_slice(&vine::protocol::VERSION.to_le_bytes());
    big.extend_from_slice(&u32::MAX.to_le_bytes());
    frames.push(big);
    // A truncated frame: the header promises more than is sent before closing.
    let mut short = b"VN".to_vec();
    short.extend_from_slice(&vine::protocol::VERSION.to_le_bytes());
    short.extend_from_slice(&100u32.to_le_bytes());
    short.extend_from_slice(&[1, 2, 3]);
    frames.push(short);
    for bytes in frames {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        // The manager may already have dropped the connection (it reads the
        // header first), so writing or shutting down may fail: that is the point.
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The manager sends its Hello, then closes on the bad frame.
        let mut sink = Vec::new();
        if let Err(e) = s.read_to_end(&mut sink) {
            use std::io::ErrorKind::{TimedOut, WouldBlock};
            assert!(
                !matches!(e.kind(), WouldBlock | TimedOut),
                "the manager dropped the connection"
            );
        }
    }
    let w = vine_worker(port, &[]);
    let id = m.submit(Task::command(c"echo still here")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(m.stats().unwrap().workers_connected, 1);
    stop(m, vec![w]);
}

#[test]
fn the_local_factory_restarts_a_crashed_worker_and_reaps_all_at_shutdown() {
    let (m, _) = remote_manager();
    let program = Some(env!("CARGO_BIN_EXE_vine_worker").as_ref());
    // 0, the default, starts nothing and leaves the one start to a later call.
    m.start_local_workers(0, program).unwrap();
    m.start_local_workers(1, program).unwrap();
    let again = m.start_local_workers(1, program).unwrap_err();
    assert!(again.message().contains("once only"), "{again}");
    let ppid = |m: &Manager| {
        m.submit(Task::command(c"echo $PPID")).unwrap();
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success);
        t.stdout()
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    let first = ppid(&m);
    // SAFETY: kills the worker process the factory started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    // Only a restarted worker can run this one (the local pool has no cores).
    let second = ppid(&m);
    assert_ne!(first, second);
    m.shutdown().unwrap();
    // Reaped: no such process remains.
    // SAFETY: signal 0 only checks that the pid exists.
    assert_eq!(unsafe { libc::kill(second, 0) }, -1);
}

#[test]
fn a_worker_without_a_manager_gives_up_after_its_timeout() {
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let status = Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--timeout", "0.3"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let usage = Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .arg("--bogus")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(usage.code(), Some(2));
    // An empty password, which no manager accepts, is a bad command line; so
    // is a device (which may never end) as the password file.
    let dir = tempdir();
    let none = dir.join("none");
    std::fs::write(&none, "").unwrap();
    for (file, why) in [
        (none.to_str().unwrap(), "none is empty"),
        ("/dev/null", "/dev/null is not a regular file"),
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_vine_worker"))
            .args(["-P", file, "127.0.0.1", &port.to_string()])
            .args(["--timeout", "0.3"])
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2));
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains(why), "{said}");
    }
}

#[test]
fn cancelling_tasks_queued_at_a_worker_frees_what_they_asked_for_there() {
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 1.0).unwrap();
    m.tune("prefetch", 1.0).unwrap();
    // Half a core runs; a whole core waits behind it at the worker (prefetch).
    let mut running = Task::command(c"exec sleep 1000");
    running.set_cores(0.5).unwrap();
    let running = m.submit(running).unwrap();
    let queued = m.submit(Task::command(c"true")).unwrap();
    let workers = vec![vine_worker(port, &[])];
    let bound = std::time::Instant::now() + Duration::from_secs(60);
    while m.stats().unwrap().tasks_on_workers < 2 {
        assert!(
            std::time::Instant::now() < bound,
            "both tasks reach the worker"
        );
        std::thread::yield_now();
    }
    m.cancel(queued).unwrap();
    let t = m.wait_for(vine::Want::Id(queued), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Cancelled);
    let s = m.stats().unwrap();
    assert_eq!(
        s.committed.millicores, 500,
        "only the running task holds cores"
    );
    m.cancel(running).unwrap();
    let t = m.wait_for(vine::Want::Id(running), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Cancelled);
    assert_eq!(m.stats().unwrap().committed.millicores, 0);
    // The whole core is free again: a task needing it runs there.
    let next = m.submit(Task::command(c"true")).unwrap();
    let t = m.wait_for(vine::Want::Id(next), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    stop(m, workers);
}

#[test]
fn a_busy_worker_holds_no_task_of_unknown_length_so_a_worker_that_joins_runs_it() {
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 1.0).unwrap();
    let dir = tempdir();
    let (started, gate) = (dir.join("started"), dir.join("gate"));
    for f in [&started, &gate] {
        mkfifo(f);
    }
    // The first task holds the first worker's one core until the gate opens.
    let script = format!(
        "exec 3<> {g}; echo up > {s}; read x <&3; echo ran",
        s = started.display(),
        g = gate.display()
    );
    let long = m
        .submit(Task::command(&CString::new(script).unwrap()))
        .unwrap();
    let second = m.submit(Task::command(c"echo second")).unwrap();
    let mut workers = vec![vine_worker(port, &[])];
    first_line(&started);
    // Automatic prefetch knows no duration yet: the second task stays with
    // the manager rather than wait behind the first at its worker.
    let s = m.stats().unwrap();
    assert_eq!((s.tasks_on_workers, s.tasks_waiting), (1, 1));
    workers.push(vine_worker(port, &[]));
    let t = m.wait_for(vine::Want::Id(second), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    std::fs::write(&gate, "go\n").unwrap();
    let t = m.wait_for(vine::Want::Id(long), LONG).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    stop(m, workers);
}

#[test]
fn shutdown_takes_back_tasks_a_worker_has_not_started_and_lets_the_running_one_finish() {
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 1.0).unwrap();
    m.tune("shutdown-timeout", 10.0).unwrap();
    m.tune("prefetch", 1.0).unwrap();
    let dir = tempdir();
    let (started, gate) = (dir.join("started"), dir.join("gate"));
    for f in [&started, &gate] {
        mkfifo(f);
    }
    // The first task holds the worker's one core until the gate opens; the
    // second waits behind it at the worker (prefetch). The gate is open for
    // reading (and writing, which does not block) before the task says so.
    let script = format!(
        "exec 3<> {g}; echo up > {s}; read x <&3; echo ran",
        s = started.display(),
        g = gate.display()
    );
    let running = m
        .submit(Task::command(&CString::new(script).unwrap()))
        .unwrap();
    let queued = m.submit(Task::command(c"echo ran")).unwrap();
    let worker = vine_worker(port, &[]);
    first_line(&started);
    let bound = std::time::Instant::now() + Duration::from_secs(60);
    while m.stats().unwrap().tasks_on_workers < 2 {
        assert!(
            std::time::Instant::now() < bound,
            "both tasks reach the worker"
        );
        std::thread::yield_now();
    }
    std::thread::scope(|s| {
        let down = s.spawn(|| m.shutdown());
        // Back cancelled while the first still runs: it never started.
        let t = m.wait_for(vine::Want::Id(queued), LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Cancelled, "{:?}", t.reason());
        assert!(t.stdout().is_none_or(|o| o.is_empty()), "it ran");
        // Refused at once (not blocked) if the first task is gone.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&gate)
            .and_then(|mut f| f.write_all(b"go\n"))
            .expect("the first task still runs");
        down.join().unwrap().unwrap();
    });
    // The running one finished within the shutdown's time.
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (running, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "ran\n");
    assert!(m.wait(LONG).is_none());
    stop(m, vec![worker]);
}

#[test]
fn vine_sandbox_names_the_sandbox_when_the_worker_directory_is_relative() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    std::fs::create_dir(dir.join("rel")).unwrap();
    let worker = Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1", "-s", "rel"])
        .current_dir(&*dir)
        .spawn()
        .unwrap();
    let id = m
        .submit(Task::command(
            c"touch \"$VINE_SANDBOX/x\" && test -e x && case $VINE_SANDBOX in /*) echo absolute;; esac",
        ))
        .unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    let out = t.stdout().unwrap().to_str().unwrap().to_owned();
    assert_eq!((t.exit_code(), out.as_str()), (0, "absolute\n"), "{out}");
    stop(m, vec![worker]);
}

#[test]
fn a_function_too_large_for_a_frame_fails_its_task_and_costs_no_worker() {
    let (m, port) = remote_manager();
    m.tune("wait-for-workers", 1.0).unwrap();
    let worker = self_worker(port, "");
    // An output past what a frame carries: the task fails, the worker stays.
    let n = u64::from(vine::protocol::MAX_FRAME) + 1;
    let id = m
        .submit(Task::function(c"big_output", &n.to_le_bytes()))
        .unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::OutputMissing));
    let reason = t.reason().unwrap().to_str().unwrap().to_owned();
    assert!(
        reason.contains("more than a remote worker sends back"),
        "{reason}"
    );
    // One within it comes back whole, from the same worker.
    let id = m
        .submit(Task::function(c"big_output", &(1u64 << 20).to_le_bytes()))
        .unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.output().len(), 1 << 20);
    // An input past what a frame carries runs only in the local pool, which
    // this manager lacks: unschedulable, not sent.
    let mut input = vec![0u8; vine::protocol::MAX_FRAME as usize + 1];
    input[..8].copy_from_slice(&8u64.to_le_bytes());
    let id = m.submit(Task::function(c"big_output", &input)).unwrap();
    drop(input);
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Unschedulable));
    let reason = t.reason().unwrap().to_str().unwrap().to_owned();
    assert!(reason.contains("runs only in the local pool"), "{reason}");
    let s = m.stats().unwrap();
    assert_eq!((s.workers_lost, s.workers_connected), (0, 1));
    stop(m, vec![worker]);
}

#[test]
fn with_a_keepalive_timeout_of_zero_a_silent_worker_is_never_lost() {
    let (m, port) = remote_manager();
    m.tune("keepalive-timeout", 0.0).unwrap();
    let dir = tempdir();
    let fifo = dir.join("started");
    mkfifo(&fifo);
    let silent = vine_worker(port, &[]);
    let script = format!(
        "echo started > {f}; read line < {f}; echo done",
        f = fifo.display()
    );
    let id = m
        .submit(Task::command(&CString::new(script).unwrap()))
        .unwrap();
    // One line: a later attempt (were the worker lost) would keep it open.
    first_line(&fifo);
    // The worker says nothing for a while (what is tested is the silence).
    // SAFETY: plain signals to the worker process this test started.
    unsafe { libc::kill(silent.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(300));
    let s = m.stats().unwrap();
    assert_eq!((s.workers_lost, s.workers_connected), (0, 1));
    unsafe { libc::kill(silent.id() as i32, libc::SIGCONT) };
    std::fs::write(&fifo, "go\n").unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "done\n");
    assert_eq!((t.retries_used(), m.stats().unwrap().workers_lost), (0, 0));
    stop(m, vec![silent]);
}

#[test]
fn a_remote_command_is_told_what_it_holds_and_where_its_temporary_files_go() {
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "2"]);
    let show = c"echo $CORES $OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $VECLIB_NUM_THREADS \
        $MKL_NUM_THREADS $NUMEXPR_NUM_THREADS m=$MEMORY d=$DISK g=$GPUS";
    let mut sized = Task::command(show);
    sized.set_cores(2.0).unwrap();
    sized.set_memory(100).unwrap();
    sized.set_disk(50).unwrap();
    let sized = m.submit(sized).unwrap();
    // Nothing asked for but the default core: no MEMORY, DISK or GPUS; the
    // task's own environment comes last.
    let mut own = Task::command(show);
    own.set_env_var(c"CORES", Some(c"7")).unwrap();
    own.set_env_var(c"MEMORY", Some(c"inherited")).unwrap();
    let own = m.submit(own).unwrap();
    // Temporary files go inside the sandbox, named by all three variables.
    let tmp = m
        .submit(Task::command(
            c"test \"$TMPDIR\" = \"$VINE_SANDBOX/.vine.tmp\" && test \"$TMP\" = \"$TMPDIR\" \
            && test \"$TEMP\" = \"$TMPDIR\" && f=$(mktemp) && test -f \"$TMPDIR/${f##*/}\" \
            && echo tmp-ok",
        ))
        .unwrap();
    // An input of that name stays the input, and the variables stay as they were.
    let mut taken = Task::command(c"echo $(cat .vine.tmp) \"$TMPDIR\"");
    let text = m.declare(File::buffer(b"mine", CacheLevel::Task, 0).unwrap());
    taken
        .add_input(Mount::new(text, ".vine.tmp", 0).unwrap())
        .unwrap();
    taken.set_env_var(c"TMPDIR", Some(c"/elsewhere")).unwrap();
    let taken = m.submit(taken).unwrap();
    for _ in 0..4 {
        let t = m.wait(LONG).unwrap();
        assert_eq!(t.result(), TaskResult::Success);
        let out = t.stdout().unwrap().to_str().unwrap().to_owned();
        let expected = match t.id() {
            id if id == sized => "2 2 2 2 2 2 m=100 d=50 g=\n",
            id if id == own => "7 1 1 1 1 1 m=inherited d= g=\n",
            id if id == tmp => "tmp-ok\n",
            id => {
                assert_eq!(id, taken);
                "mine /elsewhere\n"
            }
        };
        assert_eq!(out, expected);
    }
    stop(m, vec![w]);
}

#[test]
fn a_shutdown_whose_worker_never_answers_still_succeeds_when_nothing_was_abandoned() {
    // A stopped worker cannot answer the cancel; its task comes back cancelled
    // from the manager, which held it all along: nothing is abandoned.
    let (m, port) = remote_manager();
    m.tune("shutdown-timeout", 0.0).unwrap();
    let id = m.submit(Task::command(c"sleep 600")).unwrap();
    let mut worker = vine_worker(port, &[]);
    let bound = std::time::Instant::now() + Duration::from_secs(60);
    while m.stats().unwrap().tasks_running < 1 {
        assert!(std::time::Instant::now() < bound, "the task never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = worker.id() as i32;
    // SAFETY: signals the worker this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let down = m.shutdown();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(down.is_ok(), "{down:?}");
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Cancelled));
    // The manager listens no more (its port is free for a new one), and the
    // worker, awake again, was told to exit.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the manager still listens after its shutdown"
    );
    let bound = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = worker.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > bound {
            let _ = worker.kill();
            panic!("the worker was not told to exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "worker exited with {status}");
    drop(m);
}

/// The outputs a worker sends back for a task cancelled meanwhile are not
/// stored: the declared file keeps what it held, and the task comes back
/// cancelled.
#[test]
fn the_outputs_of_a_task_cancelled_while_they_were_on_their_way_are_not_stored() {
    use vine::protocol::{OutputStatus, ToManager, ToWorker};
    let (m, port) = remote_manager();
    let dir = tempdir();
    let path = dir.join("result");
    std::fs::write(&path, "before\n").unwrap();
    let out = m.declare(File::path(&path, CacheLevel::Task, 0).unwrap());
    let mut t = Task::command(c"echo after > result");
    t.add_output(Mount::new(out.clone(), "result", 0).unwrap())
        .unwrap();
    let id = m.submit(t).unwrap();
    let (mut r, mut w) = common::fake_worker(port, &[]);
    let spec = common::next_run(&mut r);
    m.cancel(id).unwrap();
    loop {
        if let ToWorker::Cancel(c) = r.recv::<ToWorker>().unwrap() {
            assert_eq!(c, id);
            break;
        }
    }
    // The worker had finished: it sends the output, then its report.
    vine::transfer::send(
        1,
        vine::protocol::Dest::Output(spec.id, spec.attempt, out.id()),
        &vine::transfer::Source::Bytes(b"after\n".to_vec().into()),
        None,
        &mut |p| w.send(&ToManager::Xfer(p)),
        &mut 0,
    )
    .unwrap()
    .unwrap();
    let ToManager::Done(mut report) = common::report_success(&spec, 1, 2, b"") else {
        unreachable!()
    };
    report.outputs = vec![(out.id(), OutputStatus::Sent)];
    w.send(&ToManager::Done(report)).unwrap();
    let back = m.wait(LONG).expect("the task comes back");
    assert_eq!(back.result(), TaskResult::Cancelled);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\n");
    m.shutdown().unwrap();
}
