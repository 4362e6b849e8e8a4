//! TaskVine's worker options that change how a `vine_worker` process lives:
//! `--single-shot`, `--wall-time`, `-d`/`-o`. Real processes on loopback.

mod common;
use common::{remote_manager, tempdir, vine_worker};

use std::process::Child;
use std::time::{Duration, Instant};

use vine::{Manager, Task, TaskResult};

/// Bounds waits for events (shorter than the workers' 60 s `--timeout`, so that a
/// worker that only gives up at its timeout fails the test); never a
/// synchronisation.
const BOUND: Duration = Duration::from_secs(30);

fn exits_within_bound(w: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + BOUND;
    loop {
        if let Some(st) = w.try_wait().unwrap() {
            return st;
        }
        if Instant::now() >= end {
            let _ = w.kill();
            let _ = w.wait();
            panic!("the worker did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The workers' own directories in `workdir`.
fn worker_dirs(workdir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(workdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vine-worker-"))
        .map(|e| e.path())
        .collect()
}

fn until(m: &Manager, what: &str, ok: impl Fn(&vine::manager::Stats) -> bool) {
    let end = Instant::now() + BOUND;
    while !ok(&m.stats().unwrap()) {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn held(go: &std::path::Path, word: &str) -> Box<Task> {
    let c = std::ffi::CString::new(format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo {word}",
        go.display()
    ))
    .unwrap();
    Task::command(&c)
}

#[test]
fn a_single_shot_worker_exits_when_its_session_ends() {
    let (m, port) = remote_manager();
    let mut w = vine_worker(port, &["--single-shot"]);
    until(&m, "the worker joins", |s| s.workers_connected == 1);
    // Cut off without being told to exit: a worker reconnects; this one exits.
    assert_eq!(m.block_host("127.0.0.1", None).unwrap(), 1);
    assert!(exits_within_bound(&mut w).success());
    m.shutdown().unwrap();
}

#[test]
fn a_worker_past_its_wall_time_leaves_and_its_task_runs_elsewhere() {
    let dir = tempdir();
    let go = dir.join("go");
    let (m, port) = remote_manager();
    let mut first = vine_worker(port, &["--wall-time", "8"]);
    let id = m.submit(held(&go, "done")).unwrap();
    // The worker leaves by itself, normally with the task running; on a very
    // slow machine it may leave before the task started: either way it leaves
    // and the task runs elsewhere.
    let end = Instant::now() + BOUND;
    while m.stats().unwrap().tasks_running == 0 && first.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "the task never ran and the worker never left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(exits_within_bound(&mut first).success());
    until(&m, "the task waits again", |s| {
        s.workers_connected == 0 && s.tasks_waiting == 1
    });
    // It said why it left: an expected departure, not a lost worker.
    let s = m.stats().unwrap();
    assert_eq!((s.workers_removed, s.workers_lost), (1, 0));

    let mut second = vine_worker(port, &[]);
    std::fs::write(&go, "").unwrap();
    let t = m
        .wait_for(vine::Want::Id(id), Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(t.result(), TaskResult::Success);
    assert_eq!(t.stdout().unwrap().to_bytes(), b"done\n");
    m.shutdown().unwrap();
    assert!(exits_within_bound(&mut second).success());
}

#[test]
fn debug_messages_go_to_the_file_of_dash_o() {
    let dir = tempdir();
    let log = dir.join("worker.log");
    let (m, port) = remote_manager();
    let mut w = vine_worker(port, &["-d", "all", "-o", log.to_str().unwrap()]);
    let id = m.submit(Task::command(c"echo hi")).unwrap();
    let t = m
        .wait_for(vine::Want::Id(id), Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(t.result(), TaskResult::Success);
    m.shutdown().unwrap();
    assert!(exits_within_bound(&mut w).success());
    let text = std::fs::read_to_string(&log).unwrap();
    for line in [
        format!("connecting to 127.0.0.1:{port}"),
        "session with the manager begun".into(),
        "exiting".into(),
    ] {
        assert!(text.contains(&line), "{line:?} not in {text:?}");
    }
}

#[test]
fn help_prints_the_usage_and_succeeds() {
    for flag in ["-h", "--help"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vine_worker"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("usage: vine_worker"), "{flag}: {text}");
    }
}

#[test]
fn a_worker_killed_by_a_signal_leaves_neither_its_directory_nor_its_tasks_processes() {
    use std::os::unix::process::ExitStatusExt;
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGKILL, "KILL"),
    ] {
        let dir = tempdir();
        let (m, port) = remote_manager();
        let workdir = dir.join("w");
        std::fs::create_dir(&workdir).unwrap();
        let mut w = vine_worker(port, &["-s", workdir.to_str().unwrap()]);
        // A task running when the signal comes: it leaves its pid in a file.
        let running = dir.join("running");
        let c = std::ffi::CString::new(format!(
            "echo $$ > {r}.part; mv {r}.part {r}; exec sleep 600",
            r = running.display()
        ))
        .unwrap();
        m.submit(Task::command(&c)).unwrap();
        let end = Instant::now() + BOUND;
        while !running.exists() {
            assert!(Instant::now() < end, "the task never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let task_pid: i32 = std::fs::read_to_string(&running)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signals a child process of this test.
        assert_eq!(unsafe { libc::kill(w.id() as i32, sig) }, 0);
        let status = exits_within_bound(&mut w);
        assert_eq!(status.signal(), Some(sig), "SIG{name}: {status}");
        // What it left goes once it is gone: its own directory (the store of
        // files kept forever stays for the next worker, as at any exit) and
        // its task's process.
        let left = || worker_dirs(&workdir);
        // A killed process whose parent (the worker) is gone may stay a
        // zombie until someone reaps it: that counts as ended.
        let task_alive = || {
            std::fs::read_to_string(format!("/proc/{task_pid}/stat"))
                .is_ok_and(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
        };
        let end = Instant::now() + BOUND;
        while !left().is_empty() || task_alive() {
            assert!(
                Instant::now() < end,
                "SIG{name} left {:?}, task process alive: {}",
                left(),
                task_alive()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(m);
    }
}

/// When the test binary is started as two workers (see the test below), this
/// test becomes them: two `vine_worker`s in one process, as a program calling
/// `vine_worker_main` from two threads runs them.
#[test]
fn zz_two_workers_entry() {
    let Ok(args) = std::env::var("VINE_TEST_TWO_WORKERS") else {
        return;
    };
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mut argv = vec!["self".to_owned()];
            argv.extend(args.split(' ').map(str::to_owned));
            std::thread::spawn(move || vine::worker::daemon::main_with_args(argv))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    std::process::exit(0);
}

#[test]
fn two_workers_of_one_killed_process_leave_neither_directory() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    m.stats().unwrap();
    let workdir = dir.join("w");
    std::fs::create_dir(&workdir).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "zz_two_workers_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "VINE_TEST_TWO_WORKERS",
            format!(
                "127.0.0.1 {port} --cores 1 --timeout 60 -s {}",
                workdir.display()
            ),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Both have made their directories once both are connected.
    until(&m, "two workers connected", |s| s.workers_connected == 2);
    let left = || worker_dirs(&workdir);
    assert_eq!(left().len(), 2, "{:?}", left());
    child.kill().unwrap();
    child.wait().unwrap();
    let end = Instant::now() + BOUND;
    while !left().is_empty() {
        assert!(Instant::now() < end, "the killed process left {:?}", left());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_worker_whose_store_is_too_full_to_list_whole_still_joins_and_runs_tasks() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let workdir = dir.join("w");
    // SAFETY: geteuid takes nothing and cannot fail.
    let store = workdir.join(format!("vine-forever-{}", unsafe { libc::geteuid() }));
    std::fs::create_dir_all(&store).unwrap();
    // 20,000 names of 64 hex digits: more than a handshake frame (1 MiB) holds.
    for i in 0..20_000u32 {
        std::fs::write(store.join(format!("{i:064x}")), b"").unwrap();
    }
    let mut w = vine_worker(port, &["--workdir", workdir.to_str().unwrap()]);
    until(&m, "the worker joined", |s| s.workers_connected == 1);
    m.submit(Task::command(c"echo ran")).unwrap();
    let t = m.wait(Some(BOUND)).expect("the task came back");
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    m.shutdown().unwrap();
    assert!(exits_within_bound(&mut w).success());
}

/// A listening socket on loopback whose queue is full, so that the kernel
/// drops further connection attempts unanswered (as a firewall does); its
/// port, and the descriptors that keep it so.
fn black_hole() -> (u16, Vec<std::os::fd::OwnedFd>) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain socket calls on descriptors made and owned here; the
    // address structs are zeroed then filled.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let listener = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&raw const addr).cast(), len), 0);
        assert_eq!(libc::listen(fd, 0), 0);
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut blen = len;
        assert_eq!(libc::getsockname(fd, (&raw mut bound).cast(), &mut blen), 0);
        let mut held = vec![listener];
        // Connections nobody accepts fill the queue (one more than the
        // backlog); the rest stay unanswered.
        for _ in 0..4 {
            let c = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            assert!(c >= 0);
            libc::connect(c, (&raw const bound).cast(), len);
            held.push(OwnedFd::from_raw_fd(c));
        }
        (u16::from_be(bound.sin_port), held)
    }
}

#[test]
fn a_worker_whose_manager_never_answers_a_connection_gives_up_at_its_timeout_and_wall_time() {
    let (port, _hole) = black_hole();
    for (args, code) in [(["--timeout", "1"], 1), (["--wall-time", "1"], 0)] {
        let mut argv: Vec<String> = ["self", "127.0.0.1", &port.to_string()]
            .into_iter()
            .map(str::to_owned)
            .collect();
        argv.extend(args.iter().map(|a| a.to_string()));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(vine::worker::daemon::main_with_args(argv));
        });
        // A connection attempt left to the kernel takes minutes.
        assert_eq!(rx.recv_timeout(BOUND), Ok(code), "{args:?}");
    }
}
