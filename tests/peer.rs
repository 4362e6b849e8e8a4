//! Transfers between workers (peer transfers): real `vine_worker` processes on
//! loopback, real files, and the manager's byte counters to tell the bytes it
//! sent from those that moved between workers.

mod common;
use common::{remote_manager, tempdir, vine_worker};

use std::ffi::CString;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vine::files::{CacheLevel, File, Mount};
use vine::protocol::{self, PeerMsg};
use vine::worker::daemon::peer::{MAX_SERVING, MAX_UNPROVED_PER_HOST};
use vine::{Manager, Task, TaskResult};

const LONG: Option<Duration> = Some(Duration::from_secs(180));
const MB: u64 = 1 << 20;

fn stop(m: Manager, workers: Vec<Child>) {
    m.shutdown().unwrap();
    for mut w in workers {
        let _ = w.wait();
    }
}

/// A worker offering feature `name`, so a test decides where each task runs.
fn worker_with(port: u16, name: &str, extra: &[&str]) -> Child {
    let mut args = vec!["--feature", name];
    args.extend_from_slice(extra);
    vine_worker(port, &args)
}

fn big_file(dir: &Path, name: &str, bytes: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    let chunk: Vec<u8> = (0..MB).map(|i| (i % 251) as u8).collect();
    let mut f = std::fs::File::create(&p).unwrap();
    for _ in 0..bytes / MB {
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
    p
}

/// A task on the worker offering `feature` that prints the size of `input`.
fn count_on(feature: &str, input: &std::sync::Arc<File>) -> Box<Task> {
    let mut t = Task::command(c"wc -c < in");
    t.add_input(Mount::new(input.clone(), "in", 0).unwrap())
        .unwrap();
    t.add_feature(&CString::new(feature).unwrap()).unwrap();
    t
}

fn wait_ok(m: &Manager) -> Box<Task> {
    let t = m.wait(LONG).expect("a task comes back");
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    t
}

/// Waits until `cond` holds: the condition is what the test waits for, and a
/// deadline turns a hang into a failure.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one task on each of `n` workers, all reading one `size`-byte input
/// cached for the workflow; returns (bytes the manager sent, bytes between peers).
fn fan_out(n: usize, size: u64, peers: bool, flags: u32) -> (u64, u64) {
    let (m, port) = remote_manager();
    if !peers {
        m.set_peer_transfers(false);
    }
    let dir = tempdir();
    let data = big_file(&dir, "in.dat", size);
    let input = m.declare(File::path(&data, CacheLevel::Workflow, flags).unwrap());
    let workers: Vec<Child> = (0..n)
        .map(|i| worker_with(port, &format!("w{i}"), &[]))
        .collect();
    for i in 0..n {
        m.submit(count_on(&format!("w{i}"), &input)).unwrap();
    }
    for _ in 0..n {
        let t = wait_ok(&m);
        assert_eq!(
            t.stdout().unwrap().to_str().unwrap().trim(),
            size.to_string()
        );
    }
    assert_eq!(
        m.file_replica_count(&input).unwrap(),
        n,
        "every worker holds it"
    );
    let sent = m.bytes_transferred().0;
    let peer = m.bytes_peer();
    stop(m, workers);
    (sent, peer)
}

#[test]
fn one_200mb_input_reaches_four_workers_and_the_manager_sends_it_once() {
    let size = 200 * MB;
    let (sent, peer) = fan_out(4, size, true, 0);
    assert_eq!(sent, size, "the manager sent it to one worker");
    assert_eq!(peer, 3 * size, "the three others got it from peers");
}

#[test]
fn with_peer_transfers_disabled_every_worker_gets_it_from_the_manager() {
    let size = 4 * MB;
    let (sent, peer) = fan_out(3, size, false, 0);
    assert_eq!((sent, peer), (3 * size, 0));
}

#[test]
fn a_file_declared_peer_noshare_never_travels_between_workers() {
    let size = 4 * MB;
    let (sent, peer) = fan_out(3, size, true, vine::ffi::VINE_PEER_NOSHARE as u32);
    assert_eq!((sent, peer), (3 * size, 0));
}

#[test]
fn a_peer_killed_mid_transfer_is_replaced_by_the_manager() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let size = 32 * MB;
    let data = big_file(&dir, "in.dat", size);
    let input = m.declare(File::path(&data, CacheLevel::Workflow, 0).unwrap());
    // The first worker's transfer server stops after 1 MB of a file and says so.
    let marker = dir.join("stalled");
    let mut first = Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1"])
        .args(["--timeout", "60", "--feature", "a"])
        .env(
            "VINE_TEST_PEER_STALL",
            format!("{}:{}", MB, marker.display()),
        )
        .spawn()
        .unwrap();
    m.submit(count_on("a", &input)).unwrap();
    wait_ok(&m);
    assert_eq!(m.bytes_transferred().0, size, "sent to the first worker");
    let second = worker_with(port, "b", &[]);
    let id = m.submit(count_on("b", &input)).unwrap();
    // The second worker fetches it from the first, which stalls mid-file:
    // killed there, the fetch breaks.
    wait_until("the peer transfer to stall", || marker.exists());
    first.kill().unwrap();
    first.wait().unwrap();
    let t = wait_ok(&m);
    assert_eq!(t.id(), id);
    assert_eq!(
        t.stdout().unwrap().to_str().unwrap().trim(),
        size.to_string()
    );
    assert_eq!(
        m.bytes_transferred().0,
        2 * size,
        "the manager sent it again after the failed fetch"
    );
    assert_eq!(m.bytes_peer(), 0, "no peer fetch completed");
    stop(m, vec![second]);
}

#[test]
fn a_chain_of_temps_runs_across_workers_without_the_manager() {
    let (m, port) = remote_manager();
    let workers = vec![worker_with(port, "a", &[]), worker_with(port, "b", &[])];
    let (one, two) = (
        m.declare(File::temp().unwrap()),
        m.declare(File::temp().unwrap()),
    );
    let mut make = Task::command(c"echo first > t");
    make.add_output(Mount::new(one.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    m.submit(make).unwrap();
    // A temp is read once it is made.
    wait_ok(&m);
    let mut next = Task::command(c"cat in > t; echo second >> t");
    next.add_input(Mount::new(one.clone(), "in", 0).unwrap())
        .unwrap();
    next.add_output(Mount::new(two.clone(), "t", 0).unwrap())
        .unwrap();
    next.add_feature(c"b").unwrap();
    m.submit(next).unwrap();
    wait_ok(&m);
    let mut last = Task::command(c"cat in; echo third");
    last.add_input(Mount::new(two.clone(), "in", 0).unwrap())
        .unwrap();
    last.add_feature(c"a").unwrap();
    m.submit(last).unwrap();
    let t = wait_ok(&m);
    assert_eq!(
        t.stdout().unwrap().to_str().unwrap(),
        "first\nsecond\nthird\n"
    );
    assert_eq!(
        m.bytes_transferred(),
        (0, 0),
        "nothing went through the manager"
    );
    assert_eq!(
        m.bytes_peer(),
        ("first\n".len() + "first\nsecond\n".len()) as u64
    );
    stop(m, workers);
}

#[test]
fn a_temp_replicated_to_two_workers_survives_the_loss_of_its_maker() {
    let (m, port) = remote_manager();
    m.tune("temp-replica-count", 2.0).unwrap();
    let mut maker = worker_with(port, "a", &[]);
    let other = worker_with(port, "b", &[]);
    // Both workers are there when the temp is made.
    let mut hello = Task::command(c"true");
    hello.add_feature(c"b").unwrap();
    m.submit(hello).unwrap();
    wait_ok(&m);
    let temp = m.declare(File::temp().unwrap());
    let dir = tempdir();
    let runs = dir.join("runs");
    let cmd = CString::new(format!("echo precious > t; echo ran >> {}", runs.display())).unwrap();
    let mut make = Task::command(&cmd);
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    m.submit(make).unwrap();
    wait_ok(&m);
    wait_until("the replica", || {
        m.bytes_peer() == "precious\n".len() as u64
    });
    assert_eq!(m.file_replica_count(&temp).unwrap(), 2);
    maker.kill().unwrap();
    maker.wait().unwrap();
    wait_until("the maker's loss", || {
        m.file_replica_count(&temp).unwrap() == 1
    });
    let mut read = Task::command(c"cat in");
    read.add_input(Mount::new(temp.clone(), "in", 0).unwrap())
        .unwrap();
    m.submit(read).unwrap();
    let t = wait_ok(&m);
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "precious\n");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "ran\n",
        "the maker did not run again"
    );
    stop(m, vec![other]);
}

/// The port worker `w` serves its files to peers on: it picks one itself
/// (`--transfer-port` 0), and the test finds it in /proc (the process's
/// sockets matched against the kernel's table of listening ones) rather than
/// freeing a port for the worker to take, which another test may take first.
/// Called once the worker has run a task, so it listens already.
fn transfer_port_of(w: &Child) -> u16 {
    let inodes: std::collections::HashSet<String> =
        std::fs::read_dir(format!("/proc/{}/fd", w.id()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| {
                let l = l.to_str()?;
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Field 3 is the state (0A: listening), field 9 the inode.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    assert_eq!(ports.len(), 1, "the worker listens on one port: {ports:?}");
    ports[0]
}

/// `--transfer-port` is the port the worker serves on: one in use makes it
/// leave at once, naming the port, rather than serve on another.
#[test]
fn a_transfer_port_in_use_is_an_error_that_names_it() {
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let p = held.local_addr().unwrap().port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", "1", "--transfer-port", &p, "--timeout", "1"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("cannot open transfer port {p}: ")),
        "{said}"
    );
}

/// Asks the transfer server at `port` for file `file_id` with a proof of `key`;
/// returns its answer to the request.
fn ask(port: u16, file_id: u64, key: &[u8]) -> PeerMsg {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let PeerMsg::Hello { challenge } = protocol::read_frame(&mut s).unwrap() else {
        panic!("no Hello");
    };
    let mine = protocol::challenge();
    let context = protocol::ProofContext {
        manager: &challenge,
        worker: &mine,
        binding: &[],
    };
    let proof = protocol::prove(key, &context, protocol::ROLE_PEER_FETCH);
    protocol::write_frame(
        &mut s,
        &PeerMsg::Ask {
            challenge: mine,
            proof,
            file_id,
        },
    )
    .unwrap();
    protocol::read_frame(&mut s).unwrap()
}

/// Runs one task reading a 1 MB cached input, so that the only worker holds
/// it; returns the input.
fn give_the_worker_a_file(m: &Manager, dir: &Path) -> std::sync::Arc<File> {
    let data = big_file(dir, "in.dat", MB);
    let input = m.declare(File::path(&data, CacheLevel::Workflow, 0).unwrap());
    let mut t = Task::command(c"wc -c < in");
    t.add_input(Mount::new(input.clone(), "in", 0).unwrap())
        .unwrap();
    m.submit(t).unwrap();
    wait_ok(m);
    input
}

#[test]
fn a_peer_that_cannot_prove_it_belongs_to_the_manager_is_refused() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let pw = dir.join("pw");
    std::fs::write(&pw, "sesame").unwrap();
    m.set_password_file(&pw).unwrap();
    let w = vine_worker(port, &["--password", pw.to_str().unwrap()]);
    let input = give_the_worker_a_file(&m, &dir);
    let tport = transfer_port_of(&w);
    // The worker holds the file now. Without the password, or with it but
    // without this manager run's token, nobody gets it.
    let refused = |answer: PeerMsg| matches!(answer, PeerMsg::Refused { .. });
    let no_token = protocol::peer_key(Some(b"sesame"), &[0; 32]);
    assert!(refused(ask(tport, input.id(), b"sesame")));
    assert!(refused(ask(tport, input.id(), &no_token)));
    let wrong = protocol::peer_key(Some(b"open sesame"), &[0; 32]);
    assert!(refused(ask(tport, input.id(), &wrong)));
    assert_eq!(m.bytes_peer(), 0);
    stop(m, vec![w]);
}

/// A manager whose links use TLS, with a password; its workers serve and fetch
/// from each other under TLS too. Returns it, its port, and the worker
/// arguments that reach it.
fn tls_manager(dir: &Path) -> (Manager, u16, Vec<String>) {
    let tls = vine::tls::ServerTls::generate().unwrap();
    let m = Manager::with_tls(vine::Port::Any, Some(tls)).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "sesame").unwrap();
    m.set_password_file(&pw).unwrap();
    let port = m.port().unwrap();
    let args = vec![
        "--password".to_owned(),
        pw.to_str().unwrap().to_owned(),
        "--ssl-fingerprint".to_owned(),
        m.tls_fingerprint().unwrap().to_owned(),
    ];
    (m, port, args)
}

#[test]
fn under_tls_a_fan_out_still_goes_between_peers() {
    let dir = tempdir();
    let (m, port, args) = tls_manager(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let size = 8 * MB;
    let data = big_file(&dir, "in.dat", size);
    let input = m.declare(File::path(&data, CacheLevel::Workflow, 0).unwrap());
    let workers: Vec<Child> = (0..3)
        .map(|i| worker_with(port, &format!("w{i}"), &args))
        .collect();
    for i in 0..3 {
        m.submit(count_on(&format!("w{i}"), &input)).unwrap();
    }
    for _ in 0..3 {
        let t = wait_ok(&m);
        assert_eq!(
            t.stdout().unwrap().to_str().unwrap().trim(),
            size.to_string()
        );
    }
    assert_eq!(m.bytes_transferred().0, size, "the manager sent it once");
    assert_eq!(m.bytes_peer(), 2 * size, "the others got it from peers");
    stop(m, workers);
}

#[test]
fn a_worker_under_tls_gives_nothing_to_a_client_that_does_not_speak_tls() {
    let dir = tempdir();
    let (m, port, args) = tls_manager(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let w = vine_worker(port, &args);
    let input = give_the_worker_a_file(&m, &dir);
    let tport = transfer_port_of(&w);
    // The worker holds the file. A client that asks in the clear, as a peer
    // without TLS would, gets a TLS alert at most and never a byte of it.
    let mut s = TcpStream::connect(("127.0.0.1", tport)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    protocol::write_frame(
        &mut s,
        &PeerMsg::Ask {
            challenge: protocol::challenge(),
            proof: protocol::prove(
                b"sesame",
                &protocol::ProofContext {
                    manager: &[0; 32],
                    worker: &[0; 32],
                    binding: &[],
                },
                protocol::ROLE_PEER_FETCH,
            ),
            file_id: input.id(),
        },
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    assert!(got.len() < 64, "{} bytes came back", got.len());
    assert!(
        got.is_empty() || got[0] == 0x15,
        "only a TLS alert may come back: {got:?}"
    );
    assert_eq!(m.bytes_peer(), 0);
    stop(m, vec![w]);
}

/// A connection to the transfer server at `port` from local address `from`.
fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(s.into())
}

/// Opens `n` connections to the transfer server at `port` from local address
/// `from`, each held idle once the server has said Hello (so it counts), and
/// opened again whenever the server drops it, until the returned flag is set.
/// Returns once each has been taken in or turned away at least once, with how
/// many were taken in.
fn flood(
    port: u16,
    from: [u8; 4],
    n: usize,
) -> (std::sync::Arc<std::sync::atomic::AtomicBool>, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let tried = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let (stop, held, tried) = (stop.clone(), held.clone(), tried.clone());
        std::thread::spawn(move || {
            let mut first = true;
            let mut counted = false;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = connect_from(from, port) else {
                    continue;
                };
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let taken = protocol::read_frame::<PeerMsg>(&mut s).is_ok();
                if taken && !counted {
                    counted = true;
                    held.fetch_add(1, Ordering::SeqCst);
                }
                if std::mem::take(&mut first) {
                    tried.fetch_add(1, Ordering::SeqCst);
                }
                if !taken {
                    // Turned away: try again a little later.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                // Idle until the server gives up on it (or the test ends).
                let mut byte = [0u8; 1];
                while !stop.load(Ordering::Relaxed) {
                    match std::io::Read::read(&mut s, &mut byte) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            }
        });
    }
    wait_until("every connection to be taken in or turned away", || {
        tried.load(Ordering::SeqCst) == n
    });
    (stop, held.load(Ordering::SeqCst))
}

/// A manager, a worker offering "a" and the port it serves peers on, a worker offering "b", and a temp "a" made and keeps: the manager,
/// that port, both workers and the temp.
fn temp_at_a_holder() -> (Manager, u16, Child, Child, std::sync::Arc<File>) {
    let (m, port) = remote_manager();
    let holder = worker_with(port, "a", &[]);
    let other = worker_with(port, "b", &[]);
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo precious > t");
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    m.submit(make).unwrap();
    wait_ok(&m);
    let tport = transfer_port_of(&holder);
    (m, tport, holder, other, temp)
}

/// Runs a task at "b" reading `temp`; the task, done.
fn read_at_b(m: &Manager, temp: &std::sync::Arc<File>) -> Box<Task> {
    let mut read = Task::command(c"cat in");
    read.add_input(Mount::new(temp.clone(), "in", 0).unwrap())
        .unwrap();
    read.add_feature(c"b").unwrap();
    m.submit(read).unwrap();
    wait_ok(m)
}

#[test]
fn a_temp_its_holder_cannot_serve_to_a_peer_comes_through_the_manager() {
    let (m, tport, holder, other, temp) = temp_at_a_holder();
    // The holder's transfer server turns every other peer from this host away:
    // the reader's worker cannot fetch the temp from it, and its task is not
    // to blame.
    let (flooded, held) = flood(tport, [127, 0, 0, 1], MAX_UNPROVED_PER_HOST);
    assert_eq!(held, MAX_UNPROVED_PER_HOST);
    let t = read_at_b(&m, &temp);
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "precious\n");
    assert_eq!(
        m.bytes_transferred().0,
        "precious\n".len() as u64,
        "the manager sent it"
    );
    flooded.store(true, std::sync::atomic::Ordering::Relaxed);
    stop(m, vec![holder, other]);
}

#[test]
fn connections_that_prove_nothing_from_one_host_leave_room_for_peers() {
    let (m, tport, holder, other, temp) = temp_at_a_holder();
    // Another host opens more connections than the server serves peers, and
    // proves nothing on any of them: it is given a few slots, no more.
    let (flooded, held) = flood(tport, [127, 0, 0, 2], MAX_SERVING + 8);
    assert_eq!(held, MAX_UNPROVED_PER_HOST);
    let t = read_at_b(&m, &temp);
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "precious\n");
    assert_eq!(m.bytes_transferred().0, 0, "the manager sent nothing");
    assert_eq!(m.bytes_peer(), "precious\n".len() as u64);
    flooded.store(true, std::sync::atomic::Ordering::Relaxed);
    stop(m, vec![holder, other]);
}

#[test]
fn pruning_a_temp_the_manager_fetched_still_deletes_the_workers_copies() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let workdir = dir.join("w");
    std::fs::create_dir(&workdir).unwrap();
    let w = worker_with(port, "a", &["--workdir", workdir.to_str().unwrap()]);
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo kept > t");
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    m.submit(make).unwrap();
    wait_ok(&m);
    assert_eq!(
        &*m.fetch_file(&temp).unwrap(),
        b"kept\n\0",
        "NUL-terminated"
    );
    assert_eq!(m.file_replica_count(&temp).unwrap(), 1);
    assert_eq!(m.prune_file(&temp).unwrap(), 1, "the worker had a copy");
    wait_until("the copy to be gone", || {
        m.file_replica_count(&temp).unwrap() == 0
    });
    // The worker deleted it too: nothing under its cache holds the bytes.
    let id = temp.id().to_string();
    wait_until("the worker to delete it", || {
        !walk(&workdir).iter().any(|p| {
            p.file_name().is_some_and(|n| n == id.as_str())
                && p.parent().is_some_and(|d| d.ends_with("cache"))
        })
    });
    stop(m, vec![w]);
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                all.extend(walk(&p));
            }
            all.push(p);
        }
    }
    all
}

/// A manager's end of a session with a real worker, played by the test: the
/// worker, the frames from it, the frames to it, and the peer key it was given.
fn play_manager() -> (
    Child,
    vine::channel::FrameReader,
    vine::channel::FrameWriter,
    Vec<u8>,
) {
    use vine::protocol::{ToManager, ToWorker};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let w = vine_worker(port, &[]);
    let (sock, _) = listener.accept().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let mut h = vine::channel::Handshake::start(sock, None, until).unwrap();
    h.send(&ToWorker::Hello {
        challenge: protocol::challenge(),
        auth: false,
    })
    .unwrap();
    let ToManager::Register { .. } = h.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap() else {
        panic!("no Register");
    };
    h.send(&ToWorker::Proved { proof: None }).unwrap();
    let ToManager::Details(_) = h.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap() else {
        panic!("no Details");
    };
    let token = [7u8; 32];
    h.send(&ToWorker::Welcome {
        worker_id: 1,
        keepalive_ms: 60_000,
        transfer_token: token,
    })
    .unwrap();
    let (r, wr, sock) = h.into_session(None).unwrap();
    // Past what any step here takes, short of a peer's stall timeout (60 s):
    // a worker whose reader waits for the peer is caught, not waited out.
    sock.set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    (w, r, wr, protocol::peer_key(None, &token))
}

/// Answers a peer's request on `sock` as a worker knowing `key` would: the
/// file it asks for, and the session.
fn serve_as_peer(
    sock: TcpStream,
    key: &[u8],
) -> (
    u64,
    vine::channel::FrameReader,
    vine::channel::FrameWriter,
    TcpStream,
) {
    let until = Instant::now() + Duration::from_secs(60);
    let mut h = vine::channel::Handshake::start(sock, None, until).unwrap();
    let mine = protocol::challenge();
    h.send(&PeerMsg::Hello { challenge: mine }).unwrap();
    let PeerMsg::Ask {
        challenge: theirs,
        file_id,
        ..
    } = h.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap()
    else {
        panic!("no Ask");
    };
    let context = protocol::ProofContext {
        manager: &mine,
        worker: &theirs,
        binding: &[],
    };
    let proof = protocol::prove(key, &context, protocol::ROLE_PEER_SERVE);
    h.send(&PeerMsg::Welcome { proof }).unwrap();
    let keys = protocol::session_keys(key, &mine, &theirs);
    let (r, w, s) = h.into_session(Some(keys)).unwrap();
    (file_id, r, w, s)
}

/// A peer that proves `key` to whoever fetches from it, then holds each
/// connection (by the file asked for) until the test says what to do with it.
fn held_peer(
    key: Vec<u8>,
) -> (
    u16,
    crossbeam_channel::Receiver<(u64, vine::channel::FrameWriter, TcpStream)>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let (file_id, _, w, s) = serve_as_peer(sock.unwrap(), &key);
            if tx.send((file_id, w, s)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn command_spec(id: u64, command: &str) -> vine::protocol::TaskSpec {
    vine::protocol::TaskSpec {
        id,
        attempt: 1,
        work: vine::protocol::WorkSpec::Command {
            command: command.as_bytes().to_vec(),
            env: vec![],
        },
        resources: (100, 0, 0, 0),
        time_max: 0.0,
        max_stdout: 1 << 20,
        inputs: vec![],
        outputs: vec![],
        time_end: 0,
        monitor: 0,
    }
}

fn cache_input(file_id: u64, content: vine::protocol::InputContent) -> vine::protocol::InputSpec {
    vine::protocol::InputSpec {
        file_id,
        remote_name: "in".into(),
        flags: 0,
        content,
        mode: None,
        hash: None,
    }
}

/// Frames from the worker until `n` reports have come; the reports by task
/// id, and each fetch's error by file id.
fn collect(
    r: &mut vine::channel::FrameReader,
    n: usize,
    fetched: &mut std::collections::HashMap<u64, Option<String>>,
) -> std::collections::HashMap<u64, vine::protocol::TaskReport> {
    use vine::protocol::ToManager;
    let mut done = std::collections::HashMap::new();
    while done.len() < n {
        match r.recv::<ToManager>().expect("the worker answers") {
            ToManager::Done(report) => {
                done.insert(report.id, *report);
            }
            ToManager::PeerFetched { file_id, error, .. } => {
                fetched.insert(file_id, error);
            }
            _ => {}
        }
    }
    done
}

#[test]
fn a_peer_that_does_not_answer_holds_up_only_the_tasks_that_need_its_files() {
    use vine::protocol::{InputContent, ToWorker};
    let (mut worker, mut r, mut w, key) = play_manager();
    let (peer_port, peer) = held_peer(key);
    let peer_at = |file_id| (file_id, "127.0.0.1".to_string(), peer_port);
    let (f5, host, port) = peer_at(5);
    w.send(&ToWorker::Replicate {
        file_id: f5,
        host: host.clone(),
        port,
        source: 2,
    })
    .unwrap();
    let (asked, hold5, sock5) = peer.recv().unwrap();
    assert_eq!(asked, 5);
    // The peer holds file 5: a task that needs nothing of it still runs.
    w.send(&ToWorker::Run(Box::new(command_spec(1, "echo free"))))
        .unwrap();
    let mut fetched = std::collections::HashMap::new();
    let done = collect(&mut r, 1, &mut fetched);
    assert_eq!(done[&1].stdout.as_deref(), Some(&b"free\n"[..]));
    // A task whose own input the peer holds is cancelled while it waits.
    let mut needs6 = command_spec(2, "cat in");
    needs6.inputs.push(cache_input(
        6,
        InputContent::Peer {
            host: host.clone(),
            port,
            source: 2,
        },
    ));
    w.send(&ToWorker::Run(Box::new(needs6))).unwrap();
    let (asked, hold6, sock6) = peer.recv().unwrap();
    assert_eq!(asked, 6);
    w.send(&ToWorker::Cancel(2)).unwrap();
    let done = collect(&mut r, 1, &mut fetched);
    assert_eq!(done[&2].result, TaskResult::Cancelled.code());
    // A task using file 5 as a replica the manager counts as there waits
    // for it, and reads it once it has come.
    let mut reads5 = command_spec(3, "cat in");
    reads5.inputs.push(cache_input(5, InputContent::Cached));
    w.send(&ToWorker::Run(Box::new(reads5))).unwrap();
    let mut hold5 = hold5;
    let mut sent = 0;
    vine::transfer::send(
        1,
        protocol::Dest::Cache(5),
        &vine::transfer::Source::Bytes(b"from the peer\n".to_vec().into()),
        None,
        &mut |piece| hold5.send(&PeerMsg::Xfer(piece)),
        &mut sent,
    )
    .unwrap()
    .unwrap();
    let done = collect(&mut r, 1, &mut fetched);
    assert_eq!(
        done[&3].result,
        TaskResult::Success.code(),
        "{:?}",
        done[&3].reason
    );
    assert_eq!(done[&3].stdout.as_deref(), Some(&b"from the peer\n"[..]));
    assert_eq!(fetched.get(&5), Some(&None));
    // The peer gives up on file 6: the worker says so.
    drop((hold6, sock6, sock5));
    while !fetched.contains_key(&6) {
        if let vine::protocol::ToManager::PeerFetched { file_id, error, .. } =
            r.recv().expect("the worker answers")
        {
            fetched.insert(file_id, error);
        }
    }
    assert!(fetched[&6].is_some(), "file 6 never came");
    w.send(&ToWorker::Exit).unwrap();
    assert_eq!(worker.wait().unwrap().code(), Some(0));
}

/// A worker of the manager at `port` played by the test, offering `feature`
/// and serving files to peers on `transfer_port`: its session's halves and
/// the peer key it was given.
fn fake_holder(
    port: u16,
    feature: &str,
    transfer_port: u16,
) -> (
    vine::channel::FrameReader,
    vine::channel::FrameWriter,
    Vec<u8>,
) {
    use vine::protocol::ToWorker;
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let mut h = vine::channel::Handshake::start(sock, None, until).unwrap();
    let ToWorker::Hello { .. } = h.recv(protocol::MAX_HANDSHAKE_FRAME).unwrap() else {
        panic!("no Hello");
    };
    let details = protocol::WorkerDetails {
        resources: (4000, 1024, 4096, 0),
        hostname: "poisoner".into(),
        features: vec![feature.to_owned()],
        transfer_port,
        ..Default::default()
    };
    let ToWorker::Welcome { transfer_token, .. } =
        common::join_without_password(&mut h, details).unwrap()
    else {
        panic!("not welcomed");
    };
    let (r, w, _) = h.into_session(None).unwrap();
    (r, w, protocol::peer_key(None, &transfer_token))
}

/// A worker the manager counts as holding a declared file and a buffer
/// (it was sent them) serves other bytes for them to a peer: the peer checks
/// them against the hash the manager gave and throws them away, and its task
/// reads the manager's bytes.
#[test]
fn a_peer_serving_other_bytes_than_the_managers_is_not_believed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (m, port) = remote_manager();
    // The poisoner sends no keepalives.
    m.tune("keepalive-timeout", 0.0).unwrap();
    let dir = tempdir();
    let path = dir.join("genuine.txt");
    std::fs::write(&path, "genuine file\n").unwrap();
    let file = m.declare(File::path(&path, CacheLevel::Workflow, 0).unwrap());
    let buffer = m.declare(File::buffer(b"genuine buffer\n", CacheLevel::Workflow, 0).unwrap());
    let task_on = |feature: &str| {
        let mut t = Task::command(c"cat f b");
        t.add_input(Mount::new(file.clone(), "f", 0).unwrap())
            .unwrap();
        t.add_input(Mount::new(buffer.clone(), "b", 0).unwrap())
            .unwrap();
        t.add_feature(&CString::new(feature).unwrap()).unwrap();
        t
    };
    // The poisoner's transfer server: it proves the peer key (it has it, as
    // every worker of the manager does) and serves its own bytes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = listener.local_addr().unwrap().port();
    m.submit(task_on("a")).unwrap();
    let (mut r, mut w, key) = fake_holder(port, "a", tport);
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let (file_id, mut pr, mut pw, _s) = serve_as_peer(sock.unwrap(), &key);
            vine::transfer::send(
                1,
                protocol::Dest::Cache(file_id),
                &vine::transfer::Source::Bytes(b"POISONED\n".to_vec().into()),
                None,
                &mut |piece| pw.send(&PeerMsg::Xfer(piece)),
                &mut 0,
            )
            .unwrap()
            .unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            // Until the fetching peer hangs up.
            let _ = pr.recv::<PeerMsg>();
        }
    });
    // The manager sends the poisoner both inputs and its task, which it
    // holds, keeping the files.
    let held = common::next_run(&mut r);
    assert_eq!(held.inputs.len(), 2);
    // The honest worker's task is sent to fetch them from the poisoner.
    m.submit(task_on("b")).unwrap();
    let honest = worker_with(port, "b", &[]);
    let t = wait_ok(&m);
    assert_eq!(
        t.stdout().unwrap().to_str().unwrap(),
        "genuine file\ngenuine buffer\n"
    );
    assert!(
        served.load(Ordering::SeqCst) > 0,
        "the honest worker was never sent to the poisoner"
    );
    w.send(&common::report_success(&held, 1, 2, b"")).unwrap();
    wait_ok(&m);
    drop(r);
    stop(m, vec![honest]);
}

/// Between honest peers, a declared file, a directory (its mode set) and a
/// buffer pass the check against the manager's hash: each goes from the
/// manager once, then between workers.
#[test]
fn files_directories_and_buffers_pass_their_check_between_honest_peers() {
    let (m, port) = remote_manager();
    let dir = tempdir();
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("x"), "0123456789").unwrap();
    std::fs::write(tree.join("sub/y"), "01234567890123456789").unwrap();
    std::os::unix::fs::symlink("x", tree.join("l")).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, "a declared file\n").unwrap();
    let tree = m.declare(File::path(&tree, CacheLevel::Workflow, 0).unwrap());
    tree.set_mode(0o700);
    let file = m.declare(File::path(&path, CacheLevel::Workflow, 0).unwrap());
    let buffer = m.declare(File::buffer(b"a buffer\n", CacheLevel::Workflow, 0).unwrap());
    let task_on = |feature: &str| {
        let mut t = Task::command(c"cat d/x d/sub/y d/l f b");
        for (f, name) in [(&tree, "d"), (&file, "f"), (&buffer, "b")] {
            t.add_input(Mount::new(f.clone(), name, 0).unwrap())
                .unwrap();
        }
        t.add_feature(&CString::new(feature).unwrap()).unwrap();
        t
    };
    let workers = vec![worker_with(port, "a", &[]), worker_with(port, "b", &[])];
    let expected = "0123456789012345678901234567890123456789a declared file\na buffer\n";
    m.submit(task_on("a")).unwrap();
    assert_eq!(wait_ok(&m).stdout().unwrap().to_str().unwrap(), expected);
    m.submit(task_on("b")).unwrap();
    assert_eq!(wait_ok(&m).stdout().unwrap().to_str().unwrap(), expected);
    let size = 10 + 20 + 16 + 9;
    assert_eq!(m.bytes_transferred().0, size, "the manager sent each once");
    assert_eq!(
        m.bytes_peer(),
        size,
        "the second worker got them from the first"
    );
    stop(m, workers);
}

#[test]
fn a_temp_given_twice_to_one_task_is_fetched_from_its_peer_once_and_used_under_both_names() {
    let (m, port) = remote_manager();
    let a = worker_with(port, "a", &[]);
    let b = worker_with(port, "b", &[]);
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"echo twice > t");
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    m.submit(make).unwrap();
    wait_ok(&m);
    let mut read = Task::command(c"cat one two");
    read.add_input(Mount::new(temp.clone(), "one", 0).unwrap())
        .unwrap();
    read.add_input(Mount::new(temp.clone(), "two", 0).unwrap())
        .unwrap();
    read.add_feature(c"b").unwrap();
    m.submit(read).unwrap();
    let t = wait_ok(&m);
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "twice\ntwice\n");
    // The first attempt ran: the second name did not count as an input lost.
    assert_eq!(m.stats().unwrap().tasks_retried, 0);
    assert_eq!(m.bytes_peer(), "twice\n".len() as u64);
    stop(m, vec![a, b]);
}

/// A task on the worker offering `feature` that prints `input`.
fn cat_on(feature: &str, input: &std::sync::Arc<File>) -> Box<Task> {
    let mut t = Task::command(c"cat in");
    t.add_input(Mount::new(input.clone(), "in", 0).unwrap())
        .unwrap();
    t.add_feature(&CString::new(feature).unwrap()).unwrap();
    t
}

fn run_cat(m: &Manager, feature: &str, input: &std::sync::Arc<File>) -> String {
    m.submit(cat_on(feature, input)).unwrap();
    wait_ok(m).stdout().unwrap().to_str().unwrap().to_string()
}

#[test]
fn a_file_changed_on_the_managers_disk_reaches_its_holders_and_new_workers_as_it_is_now() {
    let (m, port) = remote_manager();
    let holders = ["h0", "h1", "h2"];
    let mut workers: Vec<Child> = holders.iter().map(|h| worker_with(port, h, &[])).collect();
    workers.push(worker_with(port, "new", &[]));
    let dir = tempdir();
    let path = dir.join("params");
    std::fs::write(&path, "version 1\n").unwrap();
    let input = m.declare(File::path(&path, CacheLevel::Workflow, 0).unwrap());
    for h in holders {
        assert_eq!(run_cat(&m, h, &input), "version 1\n");
    }
    assert_eq!(m.file_replica_count(&input).unwrap(), 3);
    // Written again between two rounds of tasks, as a workflow does.
    std::fs::write(&path, "version 2, longer\n").unwrap();
    // Not from a peer holding the older version (whose copy would be refused,
    // costing the task an attempt per peer tried), nor from the holder's own.
    assert_eq!(run_cat(&m, "new", &input), "version 2, longer\n");
    assert_eq!(run_cat(&m, "h0", &input), "version 2, longer\n");
    assert_eq!(m.stats().unwrap().tasks_retried, 0);
    // The copies of version 1 left are no replicas of it.
    assert_eq!(m.file_replica_count(&input).unwrap(), 2);
    // Version 2 is what peers now serve.
    assert_eq!(run_cat(&m, "h1", &input), "version 2, longer\n");
    assert_eq!(m.stats().unwrap().tasks_retried, 0);
    stop(m, workers);
}

#[test]
fn a_changed_file_two_holders_need_at_once_is_never_read_as_it_was() {
    let (m, port) = remote_manager();
    let workers = vec![worker_with(port, "h0", &[]), worker_with(port, "h1", &[])];
    let dir = tempdir();
    let path = big_file(&dir, "data", 20 * MB);
    let input = m.declare(File::path(&path, CacheLevel::Workflow, 0).unwrap());
    let sum_on = |h: &str| {
        let mut t = Task::command(c"cksum < in");
        t.add_input(Mount::new(input.clone(), "in", 0).unwrap())
            .unwrap();
        t.add_feature(&CString::new(h).unwrap()).unwrap();
        t
    };
    let cksum = || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cksum < {}", path.display()))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let before = cksum();
    for h in ["h0", "h1"] {
        m.submit(sum_on(h)).unwrap();
        assert_eq!(wait_ok(&m).stdout().unwrap().to_str().unwrap(), before);
    }
    // Written again in place (same size), then needed on both holders at
    // once: one may be told to fetch it from the other while that one still
    // has only the old copy, which the fetch refuses. The old copy is never
    // what a task reads.
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(std::io::SeekFrom::Start(MB)).unwrap();
        f.write_all(b"new").unwrap();
    }
    let after = cksum();
    assert_ne!(before, after);
    for h in ["h0", "h1"] {
        m.submit(sum_on(h)).unwrap();
    }
    for _ in 0..2 {
        assert_eq!(wait_ok(&m).stdout().unwrap().to_str().unwrap(), after);
    }
    stop(m, workers);
}

/// A command on the worker offering `feature` that reads `temp` as `in`
/// (`read`) and writes it as `t` (`write`).
fn temp_task(
    cmd: &str,
    feature: &str,
    temp: &std::sync::Arc<File>,
    read: bool,
    write: bool,
) -> Box<Task> {
    let mut t = Task::command(&CString::new(cmd).unwrap());
    if read {
        t.add_input(Mount::new(temp.clone(), "in", 0).unwrap())
            .unwrap();
    }
    if write {
        t.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
    }
    t.add_feature(&CString::new(feature).unwrap()).unwrap();
    t
}

#[test]
fn a_temp_written_again_while_a_task_reads_it_is_kept_where_its_new_copy_was_fetched() {
    let (m, port) = remote_manager();
    // b runs a reader of each version at once.
    let workers = vec![
        worker_with(port, "a", &[]),
        worker_with(port, "b", &["--cores", "2"]),
        worker_with(port, "c", &[]),
    ];
    let dir = tempdir();
    let gate = dir.join("gate");
    let temp = m.declare(File::temp().unwrap());
    let task = |cmd: String, feature: &str, read: bool, write: bool| {
        temp_task(&cmd, feature, &temp, read, write)
    };
    m.submit(task("echo version1 > t".into(), "a", false, true))
        .unwrap();
    wait_ok(&m);
    // Reads version 1 on b until the test lets it go.
    let first = m
        .submit(task(
            format!(
                "while [ ! -e {} ]; do sleep 0.02; done; cat in",
                gate.display()
            ),
            "b",
            true,
            false,
        ))
        .unwrap();
    wait_until("the reader runs", || m.stats().unwrap().tasks_running == 1);
    // Written again on c: b's copy of version 1 is to go once its reader is
    // done; a reader on b now fetches version 2 into its place.
    m.submit(task("echo version2 > t".into(), "c", false, true))
        .unwrap();
    wait_ok(&m);
    m.submit(task("cat in".into(), "b", true, false)).unwrap();
    assert_eq!(wait_ok(&m).stdout().unwrap().to_bytes(), b"version2\n");
    std::fs::write(&gate, "").unwrap();
    let t = wait_ok(&m);
    assert_eq!(t.id(), first);
    assert_eq!(t.stdout().unwrap().to_bytes(), b"version1\n");
    // The copy of version 2 stayed at b when the reader of version 1 ended.
    m.submit(task("cat in".into(), "b", true, false)).unwrap();
    let t = wait_ok(&m);
    assert_eq!(t.stdout().unwrap().to_bytes(), b"version2\n");
    assert_eq!(m.stats().unwrap().tasks_retried, 0);
    stop(m, workers);
}

#[test]
fn a_temp_lost_with_the_task_that_added_to_it_is_missing_not_waited_for() {
    let (m, port) = remote_manager();
    let a = worker_with(port, "a", &[]);
    let mut b = worker_with(port, "b", &[]);
    let temp = m.declare(File::temp().unwrap());
    m.submit(temp_task("echo v1 > t", "a", &temp, false, true))
        .unwrap();
    wait_ok(&m);
    // Reads the temp and writes it again, longer: only b holds the result.
    m.submit(temp_task(
        "cat in > t; echo v2 >> t",
        "b",
        &temp,
        true,
        true,
    ))
    .unwrap();
    wait_ok(&m);
    b.kill().unwrap();
    b.wait().unwrap();
    wait_until("b is lost", || m.stats().unwrap().workers_connected == 1);
    // A worker where the task that added to it could run again; but what it
    // read is gone with what it wrote.
    let again = worker_with(port, "b", &[]);
    wait_until("b's successor joins", || {
        m.stats().unwrap().workers_connected == 2
    });
    let mut read = Task::command(c"cat in");
    read.add_input(Mount::new(temp.clone(), "in", 0).unwrap())
        .unwrap();
    m.submit(read).unwrap();
    let t = m.wait(LONG).expect("the reader comes back");
    assert_eq!(t.result(), TaskResult::InputMissing, "{:?}", t.reason());
    stop(m, vec![a, again]);
}

#[test]
fn a_file_kept_forever_changed_on_disk_is_sent_once_again_not_for_every_task() {
    let (m, port) = remote_manager();
    m.set_peer_transfers(false);
    let workers = vec![worker_with(port, "a", &[]), worker_with(port, "b", &[])];
    let dir = tempdir();
    let path = dir.join("table");
    std::fs::write(&path, "version 1\n").unwrap();
    let input = m.declare(File::path(&path, CacheLevel::Forever, 0).unwrap());
    assert_eq!(run_cat(&m, "a", &input), "version 1\n");
    std::fs::write(&path, "version 2, longer\n").unwrap();
    assert_eq!(run_cat(&m, "b", &input), "version 2, longer\n");
    assert_eq!(run_cat(&m, "a", &input), "version 2, longer\n");
    let sent = m.bytes_transferred().0;
    for _ in 0..3 {
        assert_eq!(run_cat(&m, "b", &input), "version 2, longer\n");
        assert_eq!(run_cat(&m, "a", &input), "version 2, longer\n");
    }
    assert_eq!(
        m.bytes_transferred().0,
        sent,
        "each worker holds it already"
    );
    stop(m, workers);
}

#[test]
fn a_directory_changed_on_disk_reaches_a_new_worker_whole_and_costs_no_attempt() {
    let (m, port) = remote_manager();
    let workers = vec![
        worker_with(port, "h0", &[]),
        worker_with(port, "h1", &[]),
        worker_with(port, "new", &[]),
    ];
    let dir = tempdir();
    let tree = dir.join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("a"), "a\n").unwrap();
    let input = m.declare(File::path(&tree, CacheLevel::Workflow, 0).unwrap());
    let ls = |feature: &str| {
        let mut t = Task::command(c"ls in");
        t.add_input(Mount::new(input.clone(), "in", 0).unwrap())
            .unwrap();
        t.add_feature(&CString::new(feature).unwrap()).unwrap();
        m.submit(t).unwrap();
        wait_ok(&m).stdout().unwrap().to_str().unwrap().to_string()
    };
    assert_eq!(ls("h0"), "a\n");
    assert_eq!(ls("h1"), "a\n");
    std::fs::write(tree.join("b"), "b\n").unwrap();
    assert_eq!(ls("new"), "a\nb\n");
    assert_eq!(m.stats().unwrap().tasks_retried, 0);
    // A holder keeps the copy it has (documented at vine_declare_file).
    assert_eq!(ls("h0"), "a\n");
    stop(m, workers);
}

#[test]
fn a_temp_the_manager_fetched_is_not_sent_back_to_the_worker_that_made_it() {
    let (m, port) = remote_manager();
    let a = worker_with(port, "a", &[]);
    let temp = m.declare(File::temp().unwrap());
    let mut make = Task::command(c"head -c 100000 /dev/zero > t");
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    make.add_feature(c"a").unwrap();
    m.submit(make).unwrap();
    wait_ok(&m);
    // The bytes and the NUL the C API adds.
    assert_eq!(m.fetch_file(&temp).unwrap().len(), 100_001);
    assert_eq!(m.bytes_transferred(), (0, 100_000));
    for _ in 0..2 {
        m.submit(count_on("a", &temp)).unwrap();
        assert_eq!(
            wait_ok(&m).stdout().unwrap().to_str().unwrap().trim(),
            "100000"
        );
    }
    assert_eq!(m.bytes_transferred(), (0, 100_000), "a holds it");
    stop(m, vec![a]);
}

#[test]
fn a_temp_written_again_is_read_as_written_last_wherever_its_earlier_copies_are() {
    let (m, port) = remote_manager();
    let workers = vec![
        worker_with(port, "a", &[]),
        worker_with(port, "b", &[]),
        worker_with(port, "r", &[]),
    ];
    let temp = m.declare(File::temp().unwrap());
    let write_on = |feature: &str, what: &str| {
        let cmd = CString::new(format!("echo {what} > t")).unwrap();
        let mut t = Task::command(&cmd);
        t.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        t.add_feature(&CString::new(feature).unwrap()).unwrap();
        m.submit(t).unwrap();
        wait_ok(&m);
    };
    write_on("a", "one");
    assert_eq!(run_cat(&m, "r", &temp), "one\n");
    assert_eq!(m.file_replica_count(&temp).unwrap(), 2);
    write_on("b", "two");
    // Not from a's copy, nor r's own.
    assert_eq!(run_cat(&m, "r", &temp), "two\n");
    assert_eq!(run_cat(&m, "a", &temp), "two\n");
    // Once the manager has a copy, a third version replaces that one too.
    assert_eq!(&m.fetch_file(&temp).unwrap()[..4], b"two\n");
    write_on("a", "three");
    assert_eq!(run_cat(&m, "b", &temp), "three\n");
    assert_eq!(run_cat(&m, "r", &temp), "three\n");
    assert_eq!(&m.fetch_file(&temp).unwrap()[..6], b"three\n");
    assert_eq!(m.stats().unwrap().tasks_retried, 0);
    stop(m, workers);
}

/// A worker offering feature `name` that cannot keep a file over about
/// `blocks` blocks of 512 bytes: its file size limit, with SIGXFSZ ignored,
/// makes every write past it fail, as on a full disk.
fn worker_keeping_at_most(port: u16, name: &str, blocks: u64) -> Child {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1"])
        .args(["--timeout", "60", "--feature", name])
        .spawn()
        .unwrap()
}

#[test]
fn an_input_a_worker_cannot_keep_is_reported_with_why_and_its_task_runs_elsewhere() {
    let dir = tempdir();
    let data = big_file(&dir, "data", 4 * MB);
    let gate = dir.join("gate");
    let (m, port) = remote_manager();
    let full = worker_keeping_at_most(port, "full", 1024);
    wait_until("the worker joins", || {
        m.stats().unwrap().workers_connected == 1
    });
    let input = m.declare(File::path(&data, CacheLevel::Workflow, 0).unwrap());
    // Alone, it fails there on each attempt, and its reason says why.
    let mut t = count_on("full", &input);
    t.set_retries(1).unwrap();
    m.submit(t).unwrap();
    let t = m.wait(LONG).expect("a task comes back");
    assert_eq!(t.result(), TaskResult::MaxRetries, "{:?}", t.reason());
    let why = t.reason().unwrap().to_string_lossy().into_owned();
    assert!(why.contains("could not be kept when it came"), "{why}");
    // With a second worker, busy until the test lets it go: the task fails
    // on the first once, then waits for the second rather than fail again
    // where it failed.
    let roomy = worker_with(port, "roomy", &[]);
    wait_until("the second worker joins", || {
        m.stats().unwrap().workers_connected == 2
    });
    let mut hold = Task::command(
        &CString::new(format!(
            "while [ ! -e {} ]; do sleep 0.02; done",
            gate.display()
        ))
        .unwrap(),
    );
    hold.add_feature(c"roomy").unwrap();
    let hold = m.submit(hold).unwrap();
    wait_until("the second worker is busy", || {
        m.stats().unwrap().tasks_running == 1
    });
    let retried = m.stats().unwrap().tasks_retried;
    let mut t = Task::command(c"wc -c < in");
    t.add_input(Mount::new(input.clone(), "in", 0).unwrap())
        .unwrap();
    t.set_retries(3).unwrap();
    let reader = m.submit(t).unwrap();
    wait_until("the reader fails on the full worker", || {
        m.stats().unwrap().tasks_retried > retried
    });
    std::fs::write(&gate, "").unwrap();
    let mut back = [wait_ok(&m), wait_ok(&m)];
    back.sort_by_key(|t| t.id());
    assert_eq!(back[0].id(), hold);
    assert_eq!(back[1].id(), reader);
    assert_eq!(back[1].stdout().unwrap().to_bytes(), b"4194304\n");
    assert_eq!(back[1].retries_used(), 1);
    stop(m, vec![full, roomy]);
}
