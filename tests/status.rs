//! `vine_status` against a running manager: what it shows, and that it must
//! prove the password like any worker.

mod common;

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

use common::{remote_manager, tempdir, vine_worker};
use vine::Task;

fn status(port: u16, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vine_status"))
        .args(["127.0.0.1", &port.to_string()])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn vine_status_shows_the_tasks_and_workers_of_a_running_manager() {
    let dir = tempdir();
    let pw = dir.join("pw");
    std::fs::write(&pw, "sesame\n").unwrap();
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "open\n").unwrap();
    let (m, port) = remote_manager();
    m.set_password_file(&pw).unwrap();
    m.set_name(Some("sweep")).unwrap();
    let started = dir.join("started");
    assert!(Command::new("mkfifo")
        .arg(&started)
        .status()
        .unwrap()
        .success());
    let cmd = format!("echo up > {}; exec sleep 600", started.display());
    let running = m
        .submit(Task::command(&CString::new(cmd).unwrap()))
        .unwrap();
    let mut big = Task::command(c"true");
    big.set_cores(4.0).unwrap();
    let waiting = m.submit(big).unwrap();
    let mut w = vine_worker(port, &["--password", pw.to_str().unwrap()]);
    let mut line = String::new();
    BufReader::new(std::fs::File::open(&started).unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");

    let out = status(port, &["--json", "--password", pw.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tasks"]["waiting"], 1, "{v}");
    assert_eq!(v["tasks"]["on_workers"], 1, "{v}");
    assert_eq!(v["tasks"]["submitted"], 2, "{v}");
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{v}");
    assert_eq!(workers[0]["id"], "worker-1");
    assert_eq!(workers[0]["resources"]["cores"], 1.0);
    assert_eq!(workers[0]["in_use"]["cores"], 1.0);
    assert_eq!(workers[0]["task_ids"], serde_json::json!([running]));
    assert_eq!(v["largest_waiting"]["id"], waiting);
    assert_eq!(v["largest_waiting"]["resources"]["cores"], 4.0);
    assert_eq!(v["largest_waiting"]["workers_able"], serde_json::json!([]));
    assert_eq!(v["manager"]["port"], port);
    assert_eq!(v["manager"]["name"], "sweep");

    // As a person reads it.
    let out = status(port, &["--password", pw.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("manager sweep 127.0.0.1:"), "{text}");
    assert!(text.contains("tasks: 1 waiting"), "{text}");
    assert!(text.contains("worker-1"), "{text}");
    assert!(
        text.contains(&format!("largest waiting task: {waiting}")),
        "{text}"
    );
    assert!(text.contains("workers that could hold it: none"), "{text}");
    let out = status(port, &["--workers", "--password", pw.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("WORKER"), "{text}");
    assert!(!text.contains("tasks:"), "{text}");

    // No password, or the wrong one: nothing said.
    for extra in [vec![], vec!["--password", wrong.to_str().unwrap()]] {
        let out = status(port, &extra);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("password"), "{err}");
        if !extra.is_empty() {
            assert!(
                err.contains("the manager refused this status query: wrong"),
                "{err}"
            );
        }
    }
    // The queries changed nothing.
    assert_eq!(m.stats().unwrap().workers_connected, 1);
    m.cancel(running).unwrap();
    m.cancel(waiting).unwrap();
    for _ in 0..2 {
        m.wait(Some(Duration::from_secs(60)))
            .expect("a cancelled task");
    }
    m.shutdown().unwrap();
    w.wait().unwrap();
}

#[test]
fn vine_status_says_why_it_cannot_ask() {
    // A port where nothing listens.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let out = status(port, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
    // Bad arguments get vine_status's own usage, not the worker's; worker
    // options it has no use for are refused.
    for bad in [
        &["--bogus"][..],
        &["--cores", "2"],
        &["--timeout", "nan"],
        &["--timeout", "0"],
        &["--password"],
    ] {
        let out = status(port, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("vine_worker"), "{bad:?}: {err}");
    }
    // And say which argument was wrong.
    let out = status(port, &["--timeout", "nan"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timeout \"nan\" is not valid"), "{err}");
    let out = status(port, &["--timeout", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timeout must be more than 0"), "{err}");
    let out = status(port, &["--bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("usage: vine_status"), "{err}");
    // Two views: refused, not the last one silently.
    for two in [["--json", "--tasks"], ["--tasks", "--workers"]] {
        let out = status(port, &two);
        assert_eq!(out.status.code(), Some(2), "{two:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("exclude each other"), "{err}");
    }
    // The same one twice is just that view.
    let out = status(port, &["--tasks", "--tasks"]);
    assert_ne!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_vine_status"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A name no resolver knows (.invalid never resolves): the lookup fails,
    // or gives no answer within the timeout, which it counts in.
    let out = Command::new(env!("CARGO_BIN_EXE_vine_status"))
        .args(["no-such-host.invalid", "9123", "--timeout", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot look up no-such-host.invalid"), "{err}");
}

#[test]
fn vine_status_gives_up_on_a_silent_manager_within_its_timeout() {
    // Accepts the connection and never says a word: the handshake must end at
    // the --timeout given (2 s), not at the 30 s a worker allows a manager.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let held = std::thread::spawn(move || l.accept().map(|(s, _)| s));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vine_status"))
        .args(["127.0.0.1", &port.to_string(), "--timeout", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _conn = held.join().unwrap().unwrap();
    // A bound against the old behaviour (30 s), far above the 2 s asked for.
    let bound = std::time::Instant::now() + Duration::from_secs(25);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if std::time::Instant::now() > bound {
            let _ = child.kill();
            panic!("vine_status still waits on a silent manager");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(1));
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert!(said.contains("no answer within 2 s"), "{said}");
}

/// Runs `vine_status --timeout 2` against a fake manager on `port` (served by
/// `serve` on another thread); its exit code and standard error. A bound far
/// above the timeout turns a hang into a failure.
fn status_against(
    serve: impl FnOnce(std::net::TcpStream) + Send + 'static,
) -> (Option<i32>, String) {
    let (code, _, said) = shown_against(serve, &[]);
    (code, said)
}

/// [`status_against`] with `extra` arguments: its exit code, standard output
/// and standard error (both short: they fit in their pipes).
fn shown_against(
    serve: impl FnOnce(std::net::TcpStream) + Send + 'static,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || serve(l.accept().unwrap().0));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vine_status"))
        .args(["127.0.0.1", &port.to_string(), "--timeout", "2"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bound = std::time::Instant::now() + Duration::from_secs(25);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if std::time::Instant::now() > bound {
            let _ = child.kill();
            panic!("vine_status still waits");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut shown).unwrap();
    drop(server);
    (code, shown, said)
}

/// A fake manager's handshake with a status query, without a password:
/// Hello, the query's Register, Proved.
fn welcome(s: &mut std::net::TcpStream) {
    use vine::protocol::{challenge, read_frame, write_frame, ToManager, ToWorker};
    write_frame(
        s,
        &ToWorker::Hello {
            challenge: challenge(),
            auth: false,
        },
    )
    .unwrap();
    let _: ToManager = read_frame(s).unwrap();
    write_frame(s, &ToWorker::Proved { proof: None }).unwrap();
}

#[test]
fn vine_status_gives_up_on_a_manager_silent_after_the_handshake() {
    let (code, said) = status_against(|mut s| {
        welcome(&mut s);
        // Holds the connection open, silent, until vine_status leaves.
        let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    });
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("no answer within 2 s"), "{said}");
}

#[test]
fn vine_status_shows_an_answer_that_lacks_fields_without_failing() {
    let (code, said) = status_against(|mut s| {
        welcome(&mut s);
        vine::protocol::write_frame(
            &mut s,
            &vine::protocol::ToWorker::Status(r#"{"largest_waiting":{}}"#.into()),
        )
        .unwrap();
        let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    });
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn vine_status_shows_control_characters_from_the_manager_escaped() {
    // A manager whose strings hold terminal escape sequences (a window title,
    // a cleared screen, colours), a carriage return, a new line, DEL and a C1
    // CSI: shown as \xNN in the plain views, never written raw.
    let esc = "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{1b}[31mFAKE\r\nline\u{7f}\u{9b}1m";
    let answer = serde_json::json!({
        "manager": {"name": esc, "pid": esc, "now": 10.0, "started": 0.0},
        "tasks": {"waiting": 1},
        "largest_waiting": {
            "id": esc,
            "category": esc,
            "resources": {"cores": 1.0},
            "workers_able": [esc, "w2"],
        },
        "workers": [{
            "id": esc,
            "addrport": esc,
            "resources": {"cores": 1.0},
            "in_use": {},
            "task_ids": [esc, 7],
            "tasks": 2,
        }],
    })
    .to_string();
    let escaped = "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mFAKE\\x0d\\x0aline\\x7f\\x9b1m";
    for view in [&[][..], &["--tasks"], &["--workers"], &["--json"]] {
        let answer = answer.clone();
        let (code, shown, said) = shown_against(
            move |mut s| {
                welcome(&mut s);
                vine::protocol::write_frame(&mut s, &vine::protocol::ToWorker::Status(answer))
                    .unwrap();
                let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
            },
            view,
        );
        assert_eq!(code, Some(0), "{view:?}: {said}");
        let raw: Vec<char> = shown
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(raw.is_empty(), "{view:?}: {raw:?} in {shown:?}");
        if view == ["--json"] {
            // The same strings, escaped as JSON (DEL and C1 too).
            let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
            assert_eq!(v["largest_waiting"]["category"], esc, "{shown}");
            assert_eq!(v["workers"][0]["addrport"], esc, "{shown}");
            continue;
        }
        // Every field is shown, escaped (the manager's name and pid, the
        // largest waiting task's id, category and first able worker, the
        // worker's id, address and first task id); the views' own lines stay
        // theirs.
        let (fields, lines) = match view.first().copied() {
            None => (8, 8),
            Some("--tasks") => (3, 4),
            _ => (3, 2),
        };
        assert_eq!(shown.matches(escaped).count(), fields, "{view:?}: {shown}");
        assert_eq!(shown.lines().count(), lines, "{view:?}: {shown}");
        if view != ["--workers"] {
            assert!(shown.contains(&format!("{escaped}, w2\n")), "{shown}");
        }
    }
}

#[test]
fn vine_status_refuses_an_answer_that_is_not_a_state() {
    for answer in ["null", "[]", "7"] {
        let (code, said) = status_against(move |mut s| {
            welcome(&mut s);
            vine::protocol::write_frame(&mut s, &vine::protocol::ToWorker::Status(answer.into()))
                .unwrap();
            let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
        });
        assert_eq!(code, Some(1), "{answer}: {said}");
        assert!(said.contains("not its state"), "{answer}: {said}");
    }
}

/// Sends `bytes` one at a time, a tenth of a second apart (far less than the
/// 2 s vine_status allows a read), until they run out or vine_status hangs up.
fn trickle(s: &mut std::net::TcpStream, bytes: impl IntoIterator<Item = u8>) {
    for b in bytes {
        if std::io::Write::write_all(s, &[b]).is_err() {
            return;
        }
        // Pacing of the trickle, not synchronisation.
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn vine_status_gives_up_on_an_answer_trickled_past_its_timeout() {
    // The answer comes, a byte at a time: every read gets something well
    // within 2 s, but the whole answer would take days. --timeout bounds the
    // exchange, not each read.
    let (code, said) = status_against(|mut s| {
        welcome(&mut s);
        let mut frame = Vec::new();
        vine::protocol::write_frame(
            &mut frame,
            &vine::protocol::ToWorker::Status(format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20))),
        )
        .unwrap();
        trickle(&mut s, frame.into_iter().chain(std::iter::repeat(0)));
    });
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("no answer within 2 s"), "{said}");
}

#[test]
fn vine_status_refuses_an_answer_announced_too_long_for_a_state() {
    // A frame header that announces 250 MiB (under the protocol's limit for a
    // task, far over any manager's state), then zeros, slowly: refused on its
    // header, not read until the timeout.
    let (code, said) = status_against(|mut s| {
        welcome(&mut s);
        let mut header = b"VN".to_vec();
        header.extend_from_slice(&vine::protocol::VERSION.to_le_bytes());
        header.extend_from_slice(&(250u32 << 20).to_le_bytes());
        std::io::Write::write_all(&mut s, &header).unwrap();
        trickle(&mut s, std::iter::repeat(0));
    });
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("over the limit"), "{said}");
    assert!(!said.contains("no answer within"), "{said}");
}

#[test]
fn vine_status_asks_a_manager_over_tls() {
    // The answer comes inside TLS (no frame tags there), with and without a
    // password.
    let dir = tempdir();
    let pw = dir.join("pw");
    std::fs::write(&pw, "sesame\n").unwrap();
    for password in [false, true] {
        let tls = vine::tls::ServerTls::generate().unwrap();
        let m = vine::Manager::with_tls(vine::Port::Any, Some(tls)).unwrap();
        m.tune("local-cores", 0.0).unwrap();
        let port = m.port().unwrap();
        let fp = m.tls_fingerprint().unwrap().to_owned();
        let mut extra = vec!["--json", "--ssl-fingerprint", &fp];
        if password {
            m.set_password_file(&pw).unwrap();
            extra.extend(["--password", pw.to_str().unwrap()]);
        }
        // The manager lets connections in once it has a task.
        let waiting = m.submit(Task::command(c"true")).unwrap();
        let out = status(port, &extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "password {password}: {err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["manager"]["port"], port, "{v}");
        assert_eq!(v["tasks"]["waiting"], 1, "{v}");
        m.cancel(waiting).unwrap();
        m.shutdown().unwrap();
    }
}

/// Submits `task`, which the one worker started with `worker_args` cannot run,
/// and asserts that `vine_status` names that worker not able to run it.
fn no_worker_is_able_to_run(task: Box<Task>, worker_args: &[&str]) {
    let (m, port) = remote_manager();
    let waiting = m.submit(task).unwrap();
    let mut w = vine_worker(port, worker_args);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while m.stats().unwrap().workers_connected < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never joined"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = status(port, &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["largest_waiting"]["id"], waiting, "{v}");
    assert_eq!(
        v["largest_waiting"]["workers_able"],
        serde_json::json!([]),
        "{v}"
    );
    m.cancel(waiting).unwrap();
    assert!(m.wait(Some(Duration::from_secs(60))).is_some());
    m.shutdown().unwrap();
    w.wait().unwrap();
}

#[test]
fn vine_status_does_not_name_as_able_a_worker_that_ends_before_the_tasks_time_min() {
    // Large enough, and runs commands, but its wall time is an hour: a task
    // that asks for two is never given to it.
    let mut t = Task::command(c"true");
    t.set_time_min(7200.0).unwrap();
    no_worker_is_able_to_run(t, &["--wall-time", "3600"]);
}

#[test]
fn vine_status_names_as_able_only_workers_that_could_run_the_waiting_task() {
    // A function task: a plain worker has no function registered, so it
    // could never run it, whatever its size.
    no_worker_is_able_to_run(Task::function(c"registered_nowhere", b""), &[]);
}
