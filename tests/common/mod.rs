//! What several integration tests share: scratch directories and a manager for
//! remote workers. Each test crate compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use std::process::{Child, Command};

use vine::{Manager, Port};

/// A `vine_worker` of 1 core for the manager at `port` on loopback, giving up 60 s
/// after its last session; `extra` options come after (a later one wins).
pub fn vine_worker(port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1"])
        .args(["--timeout", "60"])
        .args(extra)
        .spawn()
        .unwrap()
}

/// A manager on a free loopback port that runs nothing itself (no local cores).
pub fn remote_manager() -> (Manager, u16) {
    let m = Manager::new(Port::Any).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    let port = m.port().unwrap();
    (m, port)
}

/// A new, empty directory, removed when dropped. One left by an earlier run with
/// the same pid is skipped, never reused (its fifos and marker files would change
/// what a test sees).
pub fn tempdir() -> TempDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let test = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    loop {
        let d = std::env::temp_dir().join(format!(
            "vine-test-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&d) {
            Ok(()) => return TempDir(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("{}: {e}", d.display()),
        }
    }
}

/// See [`tempdir`].
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake worker of 4 cores, 1 GB and 4 GB of disk at `port` (no password),
/// offering `features`: the session's halves after the handshake.
pub fn fake_worker(
    port: u16,
    features: &[&str],
) -> (vine::channel::FrameReader, vine::channel::FrameWriter) {
    try_fake_worker(port, features).unwrap()
}

/// [`fake_worker`], or why it did not join.
pub fn try_fake_worker(
    port: u16,
    features: &[&str],
) -> vine::Result<(vine::channel::FrameReader, vine::channel::FrameWriter)> {
    use vine::protocol::{self, ToWorker};
    let sock = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| vine::Error::io("connecting", e))?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut h = vine::channel::Handshake::start(sock, None, until)?;
    let ToWorker::Hello { .. } = h.recv(protocol::MAX_HANDSHAKE_FRAME)? else {
        panic!("no Hello");
    };
    let details = protocol::WorkerDetails {
        resources: (4000, 1024, 4096, 0),
        hostname: "forger".into(),
        features: features.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    };
    let ToWorker::Welcome { .. } = join_without_password(&mut h, details)? else {
        panic!("not welcomed");
    };
    let (r, w, _) = h.into_session(None)?;
    Ok((r, w))
}

/// A fake worker's handshake after the manager's `Hello`, without a
/// password: `Register`, the manager's `Proved`, `details`; the manager's
/// answer to them (`Welcome` or `Refused`).
pub fn join_without_password(
    h: &mut vine::channel::Handshake,
    details: vine::protocol::WorkerDetails,
) -> vine::Result<vine::protocol::ToWorker> {
    use vine::protocol::{self, ToManager, ToWorker};
    h.send(&ToManager::Register {
        proof: None,
        challenge: protocol::challenge(),
        status: false,
    })?;
    let ToWorker::Proved { proof: None } = h.recv(protocol::MAX_HANDSHAKE_FRAME)? else {
        panic!("not answered with Proved");
    };
    h.send(&ToManager::Details(Box::new(details)))?;
    h.recv(protocol::MAX_HANDSHAKE_FRAME)
}

/// The next task the manager sends a fake worker.
pub fn next_run(r: &mut vine::channel::FrameReader) -> Box<vine::protocol::TaskSpec> {
    loop {
        match r.recv::<vine::protocol::ToWorker>().unwrap() {
            vine::protocol::ToWorker::Run(spec) => return spec,
            vine::protocol::ToWorker::Exit => panic!("told to exit"),
            _ => {}
        }
    }
}

/// A fake worker's report that task `spec` succeeded, having run from
/// `started` to `done` and printed `stdout`.
pub fn report_success(
    spec: &vine::protocol::TaskSpec,
    started: i64,
    done: i64,
    stdout: &[u8],
) -> vine::protocol::ToManager {
    vine::protocol::ToManager::Done(Box::new(vine::protocol::TaskReport {
        id: spec.id,
        attempt: spec.attempt,
        result: 0,
        exit_code: 0,
        output: Vec::new(),
        stdout: Some(stdout.to_vec()),
        reason: None,
        started,
        done,
        outputs: Vec::new(),
        lost: Vec::new(),
        unkept: false,
        // Succeeded: it holds every temp it was to write.
        kept: spec
            .outputs
            .iter()
            .filter(|o| o.keep_at_worker)
            .map(|o| o.file_id)
            .collect(),
        arrived: Vec::new(),
        measured: None,
    }))
}

/// This process's factory jobs that Slurm lists: (id, state). `states` as
/// `squeue --states` takes them; None: what squeue lists by default (jobs not
/// ended).
pub fn slurm_jobs(states: Option<&str>) -> Vec<(String, String)> {
    let mut cmd = Command::new("squeue");
    cmd.args(["--noheader", "--format=%i %j %T"]);
    if let Some(s) = states {
        cmd.arg(format!("--states={s}"));
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mine = format!("vine-worker-{}-", std::process::id());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (id, name, state) = (w.next()?, w.next()?, w.next()?);
            name.starts_with(&mine)
                .then(|| (id.to_owned(), state.to_owned()))
        })
        .collect()
}
