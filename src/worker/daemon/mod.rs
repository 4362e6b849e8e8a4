//! A worker process: connects to a manager, proves it knows the password (and makes
//! the manager prove it too), then runs the tasks it is sent on a [`LocalPool`] of
//! its own and sends back what became of them. `vine_worker` is this; so is any
//! program that calls `vine_worker_main`.

mod handshake;
mod inbound;
mod job_end;
mod log;
mod options;
pub mod peer;
mod peer_fetch;
mod session;
mod store;

pub use options::WorkerOptions;
use options::MIN_BACKOFF;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use session::serve;
use store::open_store;

/// [`main_with_args`] in a program of Rust's (`vine_worker`): PROCESS
/// functions run with the signal dispositions of a C program, not those
/// Rust's runtime set for the worker (see
/// [`crate::worker::isolated::children_take_default_signals`]).
pub fn main_of_rust_program(args: Vec<String>) -> i32 {
    crate::worker::isolated::children_take_default_signals();
    main_with_args(args)
}

/// Runs a worker with `args` as its command line; returns the process exit code:
/// 0 when the manager told it to exit (or, with `--single-shot`, its session
/// ended; with `--wall-time`, that time passed), 1 when no manager could be
/// reached or authenticated within the timeout or it cannot start as asked (a
/// library, its workspace, a port, a TLS file), 2 for a command line it cannot
/// take;
/// `-h` or `--help` prints the usage and returns 0.
pub fn main_with_args(args: Vec<String>) -> i32 {
    crate::worker::process::open_standard_fds();
    if args.iter().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{}", options::USAGE);
        return 0;
    }
    let opts = match WorkerOptions::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vine_worker: {e}");
            return 2;
        }
    };
    let debug = opts.debug.iter().any(|d| d != "none");
    if let Err(e) = log::configure(opts.debug_file.as_deref(), debug) {
        eprintln!("vine_worker: {e}");
        return 2;
    }
    match run(&opts) {
        Ok(()) => {
            log::debug(|| "exiting".into());
            0
        }
        Err(e) => {
            if log::to_file() {
                log::notice(&e.to_string());
            }
            eprintln!("vine_worker: {e}");
            1
        }
    }
}

/// Connects, serves, reconnects while the manager is reachable within the timeout;
/// returns when the manager says to exit.
pub fn run(opts: &WorkerOptions) -> Result<()> {
    for lib in &opts.libraries {
        crate::worker::library::load(lib)?;
    }
    remove_dead_workers_dirs(&opts.workdir);
    let store = open_store(&opts.store());
    // Absolute, so that the guardian is given back the name it was given
    // even if the program changes its directory meanwhile.
    let workdir =
        std::path::absolute(&opts.workdir).map_err(|e| Error::io(opts.workdir.display(), e))?;
    let dir = crate::files::fresh_dir(&workdir, "vine-worker")?;
    let _cleanup = DirGuard(dir.clone());
    // Killed (a cancelled batch job's SIGTERM, SIGKILL), the worker cannot
    // remove its directory: its guardian does, once the worker is gone.
    crate::worker::guardian::remove_at_end(&dir);
    for sub in ["cache", "sandbox", "out"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| Error::io(dir.display(), e))?;
    }
    let resources = opts.resources(&dir)?;
    let fetcher = std::sync::Arc::new(crate::worker::fetch::Fetcher::new(dir.join("fetched")));
    // Peers are reached as the manager is: under TLS when its link is.
    let peer = peer::PeerServer::start(&dir.join("cache"), opts.transfer_port, opts.tls.is_some())?;
    let tls = opts
        .tls
        .as_ref()
        .map(crate::tls::ClientTls::new)
        .transpose()?;
    // The timeout counts from the last session the manager accepted: connections
    // that fail their handshake do not count as contact.
    let mut last_contact = Instant::now();
    // The earliest of its own wall time and its batch job's end.
    let start = Instant::now();
    let end = [opts.wall_time, job_end::slurm_time_left()]
        .into_iter()
        .flatten()
        .min()
        .and_then(|t| start.checked_add(t));
    let mut backoff = MIN_BACKOFF.min(opts.max_backoff);
    loop {
        if end.is_some_and(|end| Instant::now() >= end) {
            log::notice("reached its wall time: exiting");
            return Ok(());
        }
        log::debug(|| format!("connecting to {}:{}", opts.host, opts.port));
        // A host that drops the connection attempts (a firewall, a full
        // listen queue) is not waited for past the timeout or the wall time.
        // Each attempt has a second at least, a worker with `--timeout 0` too.
        let at_least = Instant::now() + std::time::Duration::from_secs(1);
        let deadline = [
            last_contact
                .checked_add(opts.timeout)
                .map(|t| t.max(at_least)),
            end,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        match crate::dial::connect_within(&opts.host, opts.port, deadline) {
            Ok(stream) => {
                match serve(
                    opts,
                    stream,
                    tls.as_ref(),
                    resources,
                    &dir,
                    store.as_deref(),
                    end,
                    &fetcher,
                    &peer,
                ) {
                    Ok(()) => return Ok(()),
                    Err(Ended::WallTime) => {
                        log::notice("reached its wall time: left the manager, exiting");
                        return Ok(());
                    }
                    Err(Ended::Broken(e)) if opts.single_shot => {
                        log::notice(&format!(
                            "connection to the manager ended: {e}; single shot: exiting"
                        ));
                        return Ok(());
                    }
                    Err(Ended::Refused(e)) => return Err(e),
                    Err(Ended::BeforeSession(e)) => {
                        log::notice(&format!(
                            "no session with the manager at {}:{}: {e}",
                            opts.host, opts.port
                        ));
                        if last_contact.elapsed() >= opts.timeout {
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                format!(
                                    "no session with the manager at {}:{} for {:?}: {e}",
                                    opts.host, opts.port, opts.timeout
                                ),
                            ));
                        }
                    }
                    Err(Ended::Broken(e)) => {
                        log::notice(&format!("connection to the manager ended: {e}"));
                        last_contact = Instant::now();
                        backoff = MIN_BACKOFF.min(opts.max_backoff);
                    }
                }
            }
            Err(e) => {
                if last_contact.elapsed() >= opts.timeout {
                    return Err(Error::io(
                        format!(
                            "no manager at {}:{} for {:?}",
                            opts.host, opts.port, opts.timeout
                        ),
                        e,
                    ));
                }
            }
        }
        if last_contact.elapsed() >= opts.timeout {
            return Err(Error::new(
                ErrorKind::Timeout,
                "the manager went away and did not come back",
            ));
        }
        // Retry pacing for reconnection, not synchronisation: doubling up to
        // --max-backoff, and never past the wall time.
        let mut pause = backoff.min(opts.timeout);
        if let Some(end) = end {
            pause = pause.min(end.saturating_duration_since(Instant::now()));
        }
        std::thread::sleep(pause);
        backoff = (backoff * 2).min(opts.max_backoff);
    }
}

/// How a connection to the manager ended, when not told to exit.
#[derive(Debug)]
pub(super) enum Ended {
    /// The manager refused this worker, or failed to prove the password: trying
    /// again would fail again.
    Refused(Error),
    /// Before a session began (refused connection, handshake cut off).
    BeforeSession(Error),
    /// A session that had begun.
    Broken(Error),
    /// The wall time passed during a session: the worker left it.
    WallTime,
}

/// Removes the directories of workers that were killed before they could clean up.
pub(super) fn remove_dead_workers_dirs(workdir: &Path) {
    let Ok(entries) = std::fs::read_dir(workdir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("vine-worker-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        let Some(pid) = pid else { continue };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub(super) struct DirGuard(PathBuf);
impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        crate::worker::guardian::keep_at_end(&self.0);
    }
}

/// Asks the manager `opts` names for its state (what `vine_status` shows): the
/// same connection, TLS and password proofs both ways as a worker's, then one
/// answer. Gives up after `opts.timeout`: the connection, the handshake and the
/// answer all end by one deadline, however slowly the peer sends.
pub fn ask_status(opts: &WorkerOptions) -> Result<String> {
    // The name lookup counts in the time given, as the rest does.
    let deadline = Instant::now() + opts.timeout;
    let past = || Instant::now() >= deadline;
    // A read that times out says "Resource temporarily unavailable", and one
    // begun past the deadline "the handshake took too long": say what
    // happened instead.
    let silent = |e: Error| {
        if matches!(e.errno(), libc::EAGAIN | libc::ETIMEDOUT)
            || (e.kind() == ErrorKind::Io && past())
        {
            Error::new(
                ErrorKind::Io,
                format!(
                    "no answer within {} s (is a vine manager listening there?)",
                    opts.timeout.as_secs_f64()
                ),
            )
        } else {
            e
        }
    };
    let addrs = crate::dial::resolve_within(&opts.host, opts.port, deadline)
        .map_err(|e| Error::io(format!("cannot look up {}", opts.host), e))?;
    if past() {
        return Err(silent(Error::new(ErrorKind::Timeout, "no time left")));
    }
    let stream = crate::dial::connect_within_addrs(&addrs, deadline)
        .map_err(|e| Error::io(format!("cannot reach {}:{}", opts.host, opts.port), e))?;
    let tls = opts
        .tls
        .as_ref()
        .map(crate::tls::ClientTls::new)
        .transpose()?;
    handshake::query_status(opts, stream, tls.as_ref(), deadline)
        .map_err(|e| match e {
            Ended::Refused(e) | Ended::BeforeSession(e) | Ended::Broken(e) => e,
            Ended::WallTime => Error::invalid("ended"),
        })
        .map_err(silent)
}
