//! The trust boundary: who may join a manager, what a stranger or an impostor in
//! the middle can make it do, and what a refused worker does. Real sockets and real
//! worker processes on loopback.

mod common;
use common::{
    fake_worker, next_run, remote_manager, report_success, tempdir, try_fake_worker, vine_worker,
    TempDir,
};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use vine::channel::Handshake;
use vine::protocol::{self, TaskReport, ToManager, ToWorker};
use vine::tls::{ClientTls, ServerTls, Verify};
use vine::{Manager, Port, Task, TaskResult};

const LONG: Option<Duration> = Some(Duration::from_secs(120));

/// Waits for a worker process to end, up to a bound far past what it needs.
fn exit_code(mut w: Child) -> Option<i32> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = w.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > until {
            let _ = w.kill();
            let _ = w.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn password_file(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

/// A raw frame as it is on the wire during the handshake (no tag).
fn read_raw_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut frame = vec![0u8; 8];
    s.read_exact(&mut frame).unwrap();
    let len = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
    frame.resize(8 + len, 0);
    s.read_exact(&mut frame[8..]).unwrap();
    frame
}

#[test]
fn a_connection_made_before_the_password_is_set_is_asked_for_it() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let pw = password_file(&dir, "pw", "sesame");
    // A stranger connects in the window between vine_create and the password.
    let mut early = TcpStream::connect(("127.0.0.1", port)).unwrap();
    early.set_read_timeout(LONG).unwrap();
    m.set_password_file(pw.as_ref()).unwrap();
    let hello: ToWorker = protocol::read_frame(&mut early).unwrap();
    assert!(
        matches!(hello, ToWorker::Hello { auth: true, .. }),
        "{hello:?}"
    );
    // A real worker without the password, started just as early, never joins.
    let (m2, port2) = remote_manager();
    let intruder = vine_worker(port2, &["--timeout", "5"]);
    m2.set_password_file(pw.as_ref()).unwrap();
    let id = m2.submit(Task::command(c"echo mine")).unwrap();
    let right = vine_worker(port2, &["--password", &pw]);
    let t = m2.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(exit_code(intruder), Some(1), "refused for good");
    assert_eq!(m2.stats().unwrap().workers_connected, 1);
    m2.shutdown().unwrap();
    assert_eq!(exit_code(right), Some(0));
    drop(m);
}

/// Submits a task that runs until the file `gate` exists, then prints "done".
fn submit_gated(m: &Manager, gate: &std::path::Path) -> u64 {
    let cmd = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo done",
        gate.display()
    );
    m.submit(Task::command(&std::ffi::CString::new(cmd).unwrap()))
        .unwrap()
}

/// Waits until some task is on a worker.
fn until_dispatched(m: &Manager) {
    while m.stats().unwrap().tasks_on_workers == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn setting_a_password_drops_workers_that_joined_without_one() {
    let (m, port) = remote_manager();
    // A drop the manager chose costs the task no attempt: with no re-runs
    // allowed, it still runs again.
    m.tune("max-retries", 0.0).unwrap();
    let dir = tempdir();
    let pw = password_file(&dir, "pw", "sesame");
    let gate = dir.join("gate");
    // A task that runs until the test lets it go; it starts on one of two
    // workers that joined without a password.
    let open = [
        vine_worker(port, &["--timeout", "5"]),
        vine_worker(port, &["--timeout", "5"]),
    ];
    while m.stats().unwrap().workers_connected < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let id = submit_gated(&m, &gate);
    until_dispatched(&m);
    m.set_password_file(pw.as_ref()).unwrap();
    // The workers without the password are dropped and refused when they
    // come back.
    for w in open {
        assert_eq!(exit_code(w), Some(1));
    }
    std::fs::write(&gate, "").unwrap();
    let right = vine_worker(port, &["--password", &pw]);
    let t = m.wait(LONG).unwrap();
    assert_eq!(
        (t.id(), t.result()),
        (id, TaskResult::Success),
        "{:?}",
        t.reason()
    );
    assert_eq!(t.stdout().unwrap().to_bytes(), b"done\n");
    assert_eq!(t.retries_used(), 0);
    let s = m.stats().unwrap();
    assert_eq!(s.workers_connected, 1);
    // Both dropped at once: the task was never sent to the other one.
    assert_eq!(s.tasks_dispatched, 2, "{s:?}");
    // Dropped by the manager (its task could run again only once it was):
    // removed, not lost.
    assert_eq!((s.workers_removed, s.workers_lost), (2, 0), "{s:?}");
    m.shutdown().unwrap();
    assert_eq!(exit_code(right), Some(0));
}

#[test]
fn changing_the_password_drops_workers_that_proved_the_old_one() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let old = password_file(&dir, "old", "sesame");
    let new = password_file(&dir, "new", "open up");
    m.set_password_file(old.as_ref()).unwrap();
    let gate = dir.join("gate");
    let id = submit_gated(&m, &gate);
    let stale = vine_worker(port, &["--password", &old, "--timeout", "5"]);
    until_dispatched(&m);
    // The same password again revokes nothing: the task ends where it runs
    // (there is no other worker to run it again).
    m.set_password_file(old.as_ref()).unwrap();
    std::fs::write(&gate, "").unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.retries_used(), 0);
    // Another password: the worker on the old one is dropped, and refused
    // when it comes back.
    m.set_password_file(new.as_ref()).unwrap();
    assert_eq!(exit_code(stale), Some(1));
    let id = m.submit(Task::command(c"echo again")).unwrap();
    let right = vine_worker(port, &["--password", &new]);
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(m.stats().unwrap().workers_connected, 1);
    m.shutdown().unwrap();
    assert_eq!(exit_code(right), Some(0));
}

/// A party posing as the manager to a worker with a password, that cannot
/// prove the password (it answers with no proof, or a made-up one), learns
/// nothing about the worker: not its host name, features, functions or
/// resources. The worker sends its proof and challenge only, and leaves.
#[test]
fn an_impostor_manager_learns_nothing_about_a_worker() {
    let dir = tempdir();
    let pw = password_file(&dir, "pw", "sesame");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    for proof in [None, Some([7u8; 32])] {
        let trap = TcpListener::bind("127.0.0.1:0").unwrap();
        let trap_port = trap.local_addr().unwrap().port();
        let victim = vine_worker(
            trap_port,
            &[
                "--password",
                &pw,
                "--feature",
                "feature-only-the-manager-may-know",
                "--memory",
                "123457",
                "--timeout",
                "5",
            ],
        );
        let (mut s, _) = trap.accept().unwrap();
        drop(trap);
        s.set_read_timeout(LONG).unwrap();
        protocol::write_frame(
            &mut s,
            &ToWorker::Hello {
                challenge: protocol::challenge(),
                auth: true,
            },
        )
        .unwrap();
        let register = read_raw_frame(&mut s);
        protocol::write_frame(&mut s, &ToWorker::Proved { proof }).unwrap();
        // Everything the worker sends until it leaves.
        let mut said = register.clone();
        s.read_to_end(&mut said).unwrap();
        let ToManager::Register { status: false, .. } =
            protocol::read_frame::<ToManager>(&mut &register[..]).unwrap()
        else {
            panic!("the worker did not start with Register");
        };
        assert_eq!(said.len(), register.len(), "nothing after Register");
        let contains = |what: &[u8]| said.windows(what.len()).any(|w| w == what);
        assert!(!contains(host.as_bytes()), "the host name was sent");
        assert!(!contains(b"feature-only-the-manager-may-know"));
        assert!(!contains(&123457u64.to_le_bytes()), "the memory was sent");
        assert_eq!(exit_code(victim), Some(1), "refused for good");
    }
}

/// A worker the manager will not take once it described itself (no cores) is
/// told why, and never counted.
#[test]
fn a_worker_refused_after_describing_itself_is_told_why() {
    let (m, port) = remote_manager();
    // The manager takes workers in from its first call on.
    assert_eq!(m.stats().unwrap().workers_connected, 0);
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let mut h = Handshake::start(sock, None, until).unwrap();
    let ToWorker::Hello { auth: false, .. } = h.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap() else {
        panic!("no Hello");
    };
    let details = protocol::WorkerDetails {
        resources: (0, 1024, 4096, 0),
        hostname: "coreless".into(),
        ..Default::default()
    };
    let answer = common::join_without_password(&mut h, details).unwrap();
    assert_eq!(
        answer,
        ToWorker::Refused {
            reason: "a worker with no cores".into()
        }
    );
    assert_eq!(m.stats().unwrap().workers_joined, 0);
    m.shutdown().unwrap();
}

/// An impostor between a real worker and the manager relays the handshake, then
/// tries to drive the session itself: take a task and return a forged result.
#[test]
fn a_relayed_login_cannot_forge_a_result() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let pw = password_file(&dir, "pw", "sesame");
    m.set_password_file(pw.as_ref()).unwrap();
    let id = m.submit(Task::command(c"echo real")).unwrap();
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let victim = vine_worker(trap_port, &["--password", &pw, "--timeout", "5"]);
    let (mut to_worker, _) = trap.accept().unwrap();
    drop(trap);
    let mut to_manager = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Relay the handshake untouched: Hello, Register, Proved, Details (tagged:
    // 32 bytes after the frame) and Welcome.
    let hello = read_raw_frame(&mut to_manager);
    to_worker.write_all(&hello).unwrap();
    let register = read_raw_frame(&mut to_worker);
    to_manager.write_all(&register).unwrap();
    let proved = read_raw_frame(&mut to_manager);
    to_worker.write_all(&proved).unwrap();
    let mut details = read_raw_frame(&mut to_worker);
    let mut tag = [0u8; 32];
    to_worker.read_exact(&mut tag).unwrap();
    details.extend_from_slice(&tag);
    to_manager.write_all(&details).unwrap();
    let welcome = read_raw_frame(&mut to_manager);
    to_manager.read_exact(&mut tag).unwrap();
    assert!(matches!(
        protocol::read_frame::<ToWorker>(&mut &welcome[..]).unwrap(),
        ToWorker::Welcome { .. }
    ));
    drop(to_worker);
    // The manager sends the task; the impostor answers it with a forged report
    // (it cannot make the frame's tag without the password).
    let run = read_raw_frame(&mut to_manager);
    let ToWorker::Run(spec) = protocol::read_frame::<ToWorker>(&mut &run[..]).unwrap() else {
        panic!("expected a task");
    };
    assert_eq!(spec.id, id);
    let forged = ToManager::Done(Box::new(TaskReport {
        id: spec.id,
        attempt: spec.attempt,
        result: 0,
        exit_code: 0,
        output: Vec::new(),
        stdout: Some(b"forged\n".to_vec()),
        reason: None,
        started: 1,
        done: 2,
        outputs: Vec::new(),
        lost: Vec::new(),
        unkept: false,
        kept: Vec::new(),
        arrived: Vec::new(),
        measured: None,
    }));
    let mut bytes = Vec::new();
    protocol::write_frame(&mut bytes, &forged).unwrap();
    bytes.extend_from_slice(&[0u8; 32]);
    let _ = to_manager.write_all(&bytes);
    // The manager drops the impostor; the task runs on an honest worker.
    let honest = vine_worker(port, &["--password", &pw]);
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_bytes(), b"real\n");
    m.shutdown().unwrap();
    assert_eq!(exit_code(honest), Some(0));
    let _ = exit_code(victim);
}

/// With TLS, an impostor that terminates the worker's TLS and opens its own to the
/// manager relays a proof bound to the wrong channel: the manager refuses it.
#[test]
fn a_relayed_login_over_tls_is_refused() {
    let m = Manager::with_tls(Port::Any, Some(ServerTls::generate().unwrap())).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    let port = m.port().unwrap();
    let dir = tempdir();
    let pw = password_file(&dir, "pw", "sesame");
    m.set_password_file(pw.as_ref()).unwrap();
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    // A worker that accepts any certificate: only the channel binding protects it.
    let victim = vine_worker(trap_port, &["--password", &pw, "--ssl", "--timeout", "5"]);
    let (w_sock, _) = trap.accept().unwrap();
    drop(trap);
    let until = Instant::now() + Duration::from_secs(60);
    let fake = ServerTls::generate().unwrap();
    let mut to_worker = Handshake::start(w_sock, Some(fake.accept().unwrap()), until).unwrap();
    let client = ClientTls::new(&Verify::Any).unwrap();
    let m_sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut to_manager =
        Handshake::start(m_sock, Some(client.connect("127.0.0.1").unwrap()), until).unwrap();
    let hello: ToWorker = to_manager.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap();
    to_worker.send(&hello).unwrap();
    let register: ToManager = to_worker.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap();
    to_manager.send(&register).unwrap();
    let answer: ToWorker = to_manager.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap();
    assert!(
        matches!(&answer, ToWorker::Refused { reason } if reason.contains("password")),
        "{answer:?}"
    );
    drop(to_worker);
    let _ = exit_code(victim);
    // A worker that talks to the manager directly, pinning its certificate, joins.
    let fp = m.tls_fingerprint().unwrap().to_owned();
    let id = m.submit(Task::command(c"echo over tls")).unwrap();
    let honest = vine_worker(port, &["--password", &pw, "--ssl-fingerprint", &fp]);
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_bytes(), b"over tls\n");
    m.shutdown().unwrap();
    assert_eq!(exit_code(honest), Some(0));
}

#[test]
fn a_worker_pinning_another_certificate_refuses_the_manager() {
    let m = Manager::with_tls(Port::Any, Some(ServerTls::generate().unwrap())).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    m.stats().unwrap();
    let other = ServerTls::generate().unwrap();
    let w = vine_worker(
        m.port().unwrap(),
        &["--ssl-fingerprint", other.fingerprint(), "--timeout", "600"],
    );
    assert_eq!(exit_code(w), Some(1), "gives up at once, not after 600 s");
    assert_eq!(m.stats().unwrap().workers_connected, 0);
}

#[test]
fn a_worker_with_the_wrong_password_gives_up_at_once() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let good = password_file(&dir, "good", "sesame");
    let bad = password_file(&dir, "bad", "guess");
    m.set_password_file(good.as_ref()).unwrap();
    // A long timeout: the refusal, not the timeout, ends them.
    let wrong = vine_worker(port, &["--password", &bad, "--timeout", "600"]);
    let none = vine_worker(port, &["--timeout", "600"]);
    assert_eq!(exit_code(wrong), Some(1));
    assert_eq!(exit_code(none), Some(1));
    // A plain worker against a TLS manager cannot complete a handshake: it gives
    // up after its timeout, counted from the last session, not retrying forever.
    let t = Manager::with_tls(Port::Any, Some(ServerTls::generate().unwrap())).unwrap();
    t.stats().unwrap();
    let plain = vine_worker(t.port().unwrap(), &["--timeout", "1"]);
    assert_eq!(exit_code(plain), Some(1));
}

/// What a `vine_worker` run to its end printed, and its exit code.
fn worker_output(port: u16, extra: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_worker_and_a_manager_that_disagree_on_tls_say_which_setting_differs() {
    // A plain worker against a TLS manager hears nothing (the manager waits for
    // a TLS hello): it says that --ssl may be what is missing.
    let t = Manager::with_tls(Port::Any, Some(ServerTls::generate().unwrap())).unwrap();
    t.tune("local-cores", 0.0).unwrap();
    t.stats().unwrap();
    let (code, err) = worker_output(t.port().unwrap(), &["--timeout", "1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("start this worker with --ssl"), "{err}");
    // Also when the manager gives up on the handshake first (after its 10 s),
    // closing the connection.
    let (code, err) = worker_output(t.port().unwrap(), &["--timeout", "11"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("start this worker with --ssl"), "{err}");
    // A TLS worker against a plain manager is answered in plain frames: it
    // gives up at once, and says the manager does not use TLS.
    let (m, port) = remote_manager();
    m.stats().unwrap();
    let (code, err) = worker_output(port, &["--ssl", "--timeout", "600"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("takes workers started without --ssl"), "{err}");
    assert_eq!(m.stats().unwrap().workers_connected, 0);
}

#[test]
fn an_oversized_frame_before_login_is_refused_without_reading_it() {
    let (m, port) = remote_manager();
    m.stats().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(LONG).unwrap();
    let _hello = read_raw_frame(&mut s);
    // Announce a frame just under the session limit, then send 64 MiB of it: the
    // manager must not take (and allocate for) any of it.
    let mut header = b"VN".to_vec();
    header.extend_from_slice(&protocol::VERSION.to_le_bytes());
    header.extend_from_slice(&(protocol::MAX_FRAME - 1).to_le_bytes());
    s.write_all(&header).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let sent = (0..64).take_while(|_| s.write_all(&chunk).is_ok()).count();
    assert!(
        sent < 64,
        "the manager read {sent} MiB of a stranger's frame"
    );
    assert_eq!(m.stats().unwrap().workers_connected, 0);
}

#[test]
fn a_handshake_sent_a_byte_at_a_time_is_cut_off() {
    let (m, port) = remote_manager();
    m.stats().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(LONG).unwrap();
    let _hello = read_raw_frame(&mut s);
    // A frame of 100 bytes, sent one byte a second: each byte comes well within
    // any per-read timeout, but the whole handshake has a deadline (10 s).
    let mut frame = b"VN".to_vec();
    frame.extend_from_slice(&protocol::VERSION.to_le_bytes());
    frame.extend_from_slice(&100u32.to_le_bytes());
    frame.extend_from_slice(&[0u8; 100]);
    let mut cut = false;
    for b in &frame {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            cut = true;
            break;
        }
        // Pacing of the slow sender, not synchronisation.
        std::thread::sleep(Duration::from_secs(1));
        let mut probe = [0u8; 1];
        s.set_nonblocking(true).unwrap();
        let closed = matches!(s.read(&mut probe), Ok(0));
        s.set_nonblocking(false).unwrap();
        if closed {
            cut = true;
            break;
        }
    }
    assert!(cut, "the manager waited for the whole slow handshake");
    drop(m);
}

/// A manager with a certificate from PEM files, and a worker that verifies it
/// against a CA file: the chain and the host name are checked.
#[test]
fn a_worker_verifying_the_managers_certificate_against_a_ca_joins() {
    let dir = tempdir();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let key_pem = write("key.pem", key.serialize_pem());
    let cert_pem = write("cert.pem", cert.pem());
    let ca_pem = write("ca.pem", ca.pem());
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = write(
        "other.pem",
        other_params.self_signed(&other_key).unwrap().pem(),
    );
    let tls = ServerTls::from_pem(&key_pem, &cert_pem).unwrap();
    let m = Manager::with_tls(Port::Any, Some(tls)).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    let port = m.port().unwrap();
    let pw = password_file(&dir, "pw", "sesame");
    m.set_password_file(pw.as_ref()).unwrap();
    // A CA that did not sign the manager's certificate: refused at once.
    let doubting = vine_worker(
        port,
        &[
            "--password",
            &pw,
            "--ssl-ca",
            other_ca.to_str().unwrap(),
            "--timeout",
            "600",
        ],
    );
    assert_eq!(exit_code(doubting), Some(1));
    let id = m.submit(Task::command(c"echo verified")).unwrap();
    let w = vine_worker(
        port,
        &["--password", &pw, "--ssl-ca", ca_pem.to_str().unwrap()],
    );
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_bytes(), b"verified\n");
    m.shutdown().unwrap();
    assert_eq!(exit_code(w), Some(0));
}

/// A password given as a string reaches the local worker processes through a file
/// of the manager's own, never a command line; a worker without it is refused.
#[test]
fn a_password_given_as_a_string_is_proved_by_local_worker_processes() {
    let (m, port) = remote_manager();
    m.set_password(b"sesame\n").unwrap();
    let outsider = vine_worker(port, &["--timeout", "600"]);
    assert_eq!(exit_code(outsider), Some(1));
    m.start_local_workers(1, Some(env!("CARGO_BIN_EXE_vine_worker").as_ref()))
        .unwrap();
    let id = m.submit(Task::command(c"echo proved")).unwrap();
    let t = m.wait(LONG).unwrap();
    assert_eq!((t.id(), t.result()), (id, TaskResult::Success));
    assert_eq!(t.stdout().unwrap().to_bytes(), b"proved\n");
    assert!(
        m.set_password(b" \n").is_err(),
        "an empty password is refused"
    );
    m.shutdown().unwrap();
}

#[test]
fn a_listen_address_that_is_no_address_is_an_argument_error() {
    if std::env::var("VINE_TEST_LISTEN_AT").is_ok() {
        let e = Manager::new(Port::Any).err().expect("refused");
        assert_eq!(e.errno(), libc::EINVAL, "{e}");
        assert!(e.message().contains("VINE_LISTEN_ADDRESS"), "{e}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_listen_address_that_is_no_address_is_an_argument_error",
            "--nocapture",
        ])
        .env("VINE_TEST_LISTEN_AT", "1")
        .env("VINE_LISTEN_ADDRESS", "no such host.invalid")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn on_a_dual_stack_address_an_ipv4_worker_is_named_by_its_ipv4_address() {
    if std::env::var("VINE_TEST_DUAL_STACK").is_ok() {
        let m = Manager::new(Port::Any).unwrap();
        m.tune("local-cores", 0.0).unwrap();
        let port = m.port().unwrap();
        let mut w = vine_worker(port, &[]);
        while m.stats().unwrap().workers_connected == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        // As the manager sees it, not as `::ffff:127.0.0.1`.
        assert_eq!(m.block_host("127.0.0.1", None).unwrap(), 1);
        m.shutdown().unwrap();
        // Cut off, it would try to join again until its timeout.
        w.kill().unwrap();
        w.wait().unwrap();
        return;
    }
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 on this machine");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "on_a_dual_stack_address_an_ipv4_worker_is_named_by_its_ipv4_address",
            "--nocapture",
        ])
        .env("VINE_TEST_DUAL_STACK", "1")
        .env("VINE_LISTEN_ADDRESS", "::")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// Run as a child of the test below (`VINE_TEST_EXPOSED` set): a manager on a
/// port, given a password by the program (`set`) or not, then a submission.
fn exposed_child(mode: &str) {
    let m = Manager::new(Port::Any).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    if mode == "set" {
        m.set_password(b"a password").unwrap();
    }
    m.submit(Task::command(c"true"))
        .map_err(|(e, _)| e)
        .unwrap();
    m.shutdown().unwrap();
}

#[test]
fn a_manager_reachable_from_other_machines_warns_only_if_it_has_no_password() {
    if let Ok(mode) = std::env::var("VINE_TEST_EXPOSED") {
        return exposed_child(&mode);
    }
    let dir = tempdir();
    let pw = dir.join("pw");
    std::fs::write(&pw, "from the environment").unwrap();
    // The program's own password, set after vine_create, and one from
    // VINE_PASSWORD_FILE silence the warning; none at all does not.
    for (mode, env_file, warned) in [
        ("none", None, true),
        ("set", None, false),
        ("none", Some(&pw), false),
    ] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "a_manager_reachable_from_other_machines_warns_only_if_it_has_no_password",
                "--nocapture",
            ])
            .env("VINE_TEST_EXPOSED", mode)
            .env("VINE_LISTEN_ADDRESS", "0.0.0.0")
            .env_remove("VINE_PASSWORD_FILE");
        if let Some(f) = env_file {
            child.env("VINE_PASSWORD_FILE", f);
        }
        let out = child.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode} {env_file:?}: {err}");
        assert_eq!(
            err.matches("without a password").count(),
            usize::from(warned),
            "{mode} {env_file:?}: {err}"
        );
    }
}

/// What a worker reports of its own tasks' times is checked: times before the
/// epoch or ending before they start, and durations that would overflow the
/// manager's sums, neither stop the manager thread nor wrap around.
#[test]
fn a_workers_absurd_task_times_are_bounded_not_trusted() {
    let (m, port) = remote_manager();
    let ids: Vec<u64> = (0..3)
        .map(|_| m.submit(Task::command(c"true")).unwrap())
        .collect();
    let (mut r, mut w) = fake_worker(port, &[]);
    let times = [(i64::MIN, i64::MAX), (1, i64::MAX), (i64::MAX, 1)];
    for (started, done) in times {
        let spec = next_run(&mut r);
        w.send(&report_success(&spec, started, done, b"")).unwrap();
    }
    let mut execute = Vec::new();
    for _ in &ids {
        let t = m.wait(LONG).expect("every task comes back");
        assert_eq!(t.result(), TaskResult::Success);
        let times = t.times();
        assert!(times.started >= 0, "{times:?}");
        assert!(times.done >= times.started, "{times:?}");
        assert!(times.execute >= 0, "{times:?}");
        execute.push(times.execute as u64);
    }
    let stats = m.stats().expect("the manager thread is alive");
    assert_eq!(stats.tasks_done, 3);
    // Saturated, never wrapped around below what one task took.
    assert!(stats.time_execute >= execute.iter().copied().max().unwrap());
    m.shutdown().unwrap();
}

/// Sends `bytes` to the manager as the file it asked for, `file_id`, in
/// transfer `xfer`; with `answer`, also says that is the file.
fn send_fetched(
    w: &mut vine::channel::FrameWriter,
    xfer: u64,
    file_id: u64,
    bytes: &[u8],
    answer: bool,
) {
    vine::transfer::send(
        xfer,
        protocol::Dest::Fetched(file_id),
        &vine::transfer::Source::Bytes(bytes.to_vec().into()),
        None,
        &mut |p| w.send(&ToManager::Xfer(p)),
        &mut 0,
    )
    .unwrap()
    .unwrap();
    if answer {
        w.send(&ToManager::FileData {
            file_id,
            error: None,
        })
        .unwrap();
    }
}

/// A temp kept at one worker is what that worker sends: another worker's
/// answer for it is not taken, and a transfer that reuses the id of the one
/// that brought it does not change it afterwards.
#[test]
fn only_the_worker_keeping_a_temp_answers_for_it() {
    use vine::files::{File, Mount};
    let (m, port) = remote_manager();
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo honest > t");
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    // (The manager takes workers once it has been given work.)
    m.submit(make).unwrap();
    let (mut ra, mut wa) = fake_worker(port, &["a"]);
    let spec = next_run(&mut ra);
    assert!(spec.outputs[0].keep_at_worker);
    wa.send(&report_success(&spec, 1, 2, b"")).unwrap();
    assert_eq!(m.wait(LONG).unwrap().result(), TaskResult::Success);
    let (mut rb, mut wb) = fake_worker(port, &["b"]);
    let mut other = Task::command(c"true");
    other.add_feature(c"b").unwrap();
    m.submit(other).unwrap();
    let spec_b = next_run(&mut rb);
    std::thread::scope(|s| {
        let fetched = s.spawn(|| m.fetch_file(&temp));
        // The manager asks the worker keeping the temp.
        loop {
            if let ToWorker::GetFile(id) = ra.recv::<ToWorker>().unwrap() {
                assert_eq!(id, temp.id());
                break;
            }
        }
        // Another worker answers first, then reports its task: once that
        // report is back, the manager has read the forged answer.
        send_fetched(&mut wb, 1, temp.id(), b"forged\n", true);
        wb.send(&report_success(&spec_b, 1, 2, b"")).unwrap();
        assert_eq!(m.wait(LONG).unwrap().result(), TaskResult::Success);
        send_fetched(&mut wa, 1, temp.id(), b"honest\n", true);
        let got = fetched.join().unwrap().expect("fetched");
        assert_eq!(&got[..], b"honest\n\0");
    });
    // The keeper sends another file under the same transfer id, then
    // reports a task: the temp the manager holds is unchanged.
    let mut again = Task::command(c"true");
    again.add_feature(c"a").unwrap();
    m.submit(again).unwrap();
    let spec = next_run(&mut ra);
    send_fetched(&mut wa, 1, 999, b"changed afterwards\n", false);
    wa.send(&report_success(&spec, 1, 2, b"")).unwrap();
    assert_eq!(m.wait(LONG).unwrap().result(), TaskResult::Success);
    assert_eq!(&m.fetch_file(&temp).unwrap()[..], b"honest\n\0");
    m.shutdown().unwrap();
}

/// Workers join until the manager would leave the program too few file
/// descriptors: then it turns them away, and the program can still open files.
#[test]
fn workers_never_take_the_programs_last_file_descriptors() {
    const ME: &str = "workers_never_take_the_programs_last_file_descriptors";
    if std::env::var("VINE_TEST_FEW_FDS").is_ok() {
        let (m, port) = remote_manager();
        m.submit(Task::command(c"true")).unwrap();
        let mut joined = Vec::new();
        while joined.len() < 1000 {
            match try_fake_worker(port, &[]) {
                Ok(w) => joined.push(w),
                Err(_) => break,
            }
        }
        assert!(joined.len() >= 5, "only {} joined", joined.len());
        let files: Vec<_> = (0..16)
            .map(|_| std::fs::File::open("/dev/null"))
            .collect::<Result<_, _>>()
            .expect("the program can still open files");
        drop(files);
        drop(joined);
        m.shutdown().unwrap();
        return;
    }
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 256 && exec \"$0\" --exact \"$1\" --nocapture",
        ])
        .arg(std::env::current_exe().unwrap())
        .arg(ME)
        .env("VINE_TEST_FEW_FDS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    assert!(err.contains("turning workers away"), "{err}");
}

/// Sends `bytes` to the manager as output `file_id` of task `task`, attempt
/// `attempt`, in transfer `xfer`; false if the manager closed the connection.
fn send_output(
    w: &mut vine::channel::FrameWriter,
    xfer: u64,
    (task, attempt, file_id): (u64, u32, u64),
    bytes: &[u8],
) -> bool {
    vine::transfer::send(
        xfer,
        protocol::Dest::Output(task, attempt, file_id),
        &vine::transfer::Source::Bytes(bytes.to_vec().into()),
        None,
        &mut |p| w.send(&ToManager::Xfer(p)),
        &mut 0,
    )
    .is_ok()
}

/// The names in the manager's staging directory of what arrives from workers.
fn staged(m: &Manager) -> Vec<String> {
    std::fs::read_dir(m.runtime_dir().join("temp"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("from-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A worker sending outputs for a task it was never given, or a file that is
/// not an output of the task it was given, gets nothing stored at the manager:
/// it is dropped at the transfer's first frame, and the task it had runs
/// elsewhere.
#[test]
fn outputs_a_worker_was_not_given_are_never_stored() {
    use vine::files::{CacheLevel, File, Mount};
    let (m, port) = remote_manager();
    let dir = tempdir();
    let mut real_workers = Vec::new();
    for (i, other_task) in [true, false].into_iter().enumerate() {
        let feature = format!("f{i}");
        let out = m.declare(File::path(&dir.join(format!("out{i}")), CacheLevel::Task, 0).unwrap());
        let mut t = Task::command(&std::ffi::CString::new(format!("echo real{i} > o")).unwrap());
        t.add_output(Mount::new(out.clone(), "o", 0).unwrap())
            .unwrap();
        t.add_feature(&std::ffi::CString::new(feature.clone()).unwrap())
            .unwrap();
        let id = m.submit(t).unwrap();
        let (mut r, mut w) = fake_worker(port, &[&feature]);
        let spec = next_run(&mut r);
        assert_eq!(spec.id, id);
        // Many of them, each for another task or file, then a report that
        // the real task is done.
        for xfer in 1..=50 {
            let bogus = if other_task {
                (spec.id + 1000 + xfer, spec.attempt, out.id())
            } else {
                (spec.id, spec.attempt, out.id() + 1000 + xfer)
            };
            if !send_output(&mut w, xfer, bogus, &[b'x'; 64 << 10]) {
                break;
            }
        }
        let _ = w.send(&report_success(&spec, 1, 2, b"forged"));
        real_workers.push(vine_worker(port, &["--feature", &feature]));
        let t = m.wait(LONG).expect("the task comes back");
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        assert!(
            staged(&m).is_empty(),
            "kept for a transfer it should have refused: {:?}",
            staged(&m)
        );
        // Run by the real worker: the fake was dropped before its report.
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("out{i}"))).unwrap(),
            format!("real{i}\n")
        );
        while r.recv::<ToWorker>().is_ok() {}
    }
    m.shutdown().unwrap();
    for w in real_workers {
        assert_eq!(exit_code(w), Some(0));
    }
}
