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
