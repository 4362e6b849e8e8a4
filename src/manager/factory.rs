//! The local factory: `vine_tune(m, "local-worker-processes", n)` starts n
//! `vine_worker` processes on this machine, connected to this manager, and starts a
//! new one whenever one dies other than by being told to exit.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Supervised worker processes.
pub struct Factory {
    stopping: Arc<AtomicBool>,
    children: Arc<Mutex<Vec<u32>>>,
    threads: Vec<JoinHandle<()>>,
    /// Each supervising thread sends one message as it ends.
    ended: crossbeam_channel::Receiver<()>,
}

/// Where the worker program is: `VINE_WORKER_PATH`, else `vine_worker` beside this
/// program, else `vine_worker` on the `PATH`.
pub fn worker_program() -> PathBuf {
    if let Some(p) = std::env::var_os("VINE_WORKER_PATH") {
        return p.into();
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("vine_worker")))
        .filter(|p| p.is_file())
    {
        return beside;
    }
    PathBuf::from("vine_worker")
}

impl Factory {
    /// Starts `n` workers for the manager at `port`, each run as `program` with
    /// `args` after the host and port.
    pub fn start(
        n: usize,
        program: &std::path::Path,
        port: u16,
        args: Vec<String>,
    ) -> Result<Factory> {
        let program = program.to_path_buf();
        let stopping = Arc::new(AtomicBool::new(false));
        let children = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::with_capacity(n);
        let (ended_tx, ended) = crossbeam_channel::unbounded();
        for slot in 0..n {
            let ended_tx = ended_tx.clone();
            let first = spawn(&program, port, &args)?;
            children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(first.id());
            let (program, args) = (program.clone(), args.clone());
            let (stopping, children) = (stopping.clone(), children.clone());
            let t = std::thread::Builder::new()
                .name(format!("vine-factory-{slot}"))
                .spawn(move || {
                    supervise(first, &program, port, &args, &stopping, &children);
                    let _ = ended_tx.send(());
                })
                .map_err(|e| Error::io("cannot start the factory thread", e))?;
            threads.push(t);
        }
        Ok(Factory {
            stopping,
            children,
            threads,
            ended,
        })
    }

    /// Stops restarting; kills workers still running after `grace` (the manager told
    /// them to exit before) and reaps every one.
    pub fn stop(mut self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        let mut ended = 0;
        while ended < self.threads.len() && self.ended.recv_deadline(deadline).is_ok() {
            ended += 1;
        }
        for &pid in self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            // SAFETY: kill has no memory-safety preconditions; the pid is our child,
            // not yet reaped (its thread removes it once it is).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Waits for a worker and starts a new one when it dies, until told to stop or the
/// worker exits cleanly (the manager told it to).
fn supervise(
    mut child: Child,
    program: &PathBuf,
    port: u16,
    args: &[String],
    stopping: &AtomicBool,
    children: &Mutex<Vec<u32>>,
) {
    loop {
        let started = Instant::now();
        let pid = child.id();
        let status = child.wait();
        children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&c| c != pid);
        if stopping.load(Ordering::Acquire) || status.as_ref().is_ok_and(|s| s.success()) {
            return;
        }
        eprintln!("vine: local worker {pid} ended ({status:?}); starting another");
        if started.elapsed() < Duration::from_secs(1) {
            // Pacing: one that dies at once would otherwise restart in a tight loop.
            std::thread::sleep(Duration::from_secs(1));
        }
        match spawn(program, port, args) {
            Ok(c) => {
                children
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(c.id());
                child = c;
            }
            Err(e) => {
                eprintln!("vine: cannot restart a local worker: {e}");
                return;
            }
        }
    }
}

fn spawn(program: &PathBuf, port: u16, args: &[String]) -> Result<Child> {
    Command::new(program)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(format!("cannot start {}", program.display()), e))
}
