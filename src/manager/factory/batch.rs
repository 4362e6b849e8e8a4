//! The batch systems a factory submits worker jobs to: processes on this machine,
//! Slurm (`sbatch`, `squeue`, `scancel`), and any other through three shell
//! command templates.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a job is doing, as its batch system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Queued, not started.
    Pending,
    /// Started (its worker may not have connected yet).
    Running,
    /// Finished, failed, cancelled, or unknown to the batch system.
    Ended,
    /// Queued for a reason that does not pass by itself (it asks for more
    /// than the nodes it may run on have, say): what the reason means.
    Stuck(&'static str),
}

/// What a Slurm reason for keeping a job pending means, for the reasons that
/// do not pass by themselves (the job, or the cluster's configuration, must be
/// changed); None for the others (waiting for resources, priority, a
/// dependency, a hold that may be released...).
fn slurm_stuck(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "PartitionConfig" => "it asks for more than the nodes of its partition have",
        "PartitionNodeLimit" => "its node count is outside its partition's limits",
        "PartitionTimeLimit" => "its time limit is above its partition's",
        "BadConstraints" => "its constraints cannot be met",
        "InvalidAccount" => "its account is not valid",
        "InvalidQOS" => "its QOS is not valid",
        "DependencyNeverSatisfied" => "its dependency can never be satisfied",
        _ => return None,
    })
}

/// One worker job to submit.
pub struct JobSpec<'a> {
    /// The job's name at the batch system.
    pub name: &'a str,
    /// The worker's command line.
    pub argv: &'a [String],
    /// Where its standard output and error go.
    pub output: &'a Path,
    /// Where its job script goes, if the batch system takes one.
    pub script: &'a Path,
    /// Whole cores, memory MB (0: unset), disk MB (0: unset), gpus.
    pub cores: u64,
    /// See `cores`.
    pub memory_mb: u64,
    /// See `cores`.
    pub disk_mb: u64,
    /// See `cores`.
    pub gpus: u32,
    /// The job's time limit.
    pub wall_time: Option<Duration>,
    /// The batch options as words, and as the user wrote them.
    pub options: &'a [String],
    /// See `options`.
    pub options_text: &'a str,
}

/// A batch system.
pub trait Batch: Send {
    /// Submits a job; its id, or what the batch system said.
    fn submit(&mut self, job: &JobSpec) -> Result<String, String>;
    /// The status of each of `ids` it could learn (missing ones: unknown now).
    fn status(&mut self, ids: &[&str]) -> Result<HashMap<String, Status>, String>;
    /// Asks for `ids` to be cancelled.
    fn cancel(&mut self, ids: &[&str]) -> Result<(), String>;
    /// The ids of this user's jobs named `name` that have not ended (pending,
    /// running); None if the batch system cannot list jobs by name.
    fn named(&mut self, _name: &str) -> Option<Result<Vec<String>, String>> {
        None
    }
}

/// How long a batch command may take before it counts as failed, unless the
/// thread says otherwise ([`commands_timeout`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command printed and how it ended.
pub struct Ran {
    /// Exit status; None if killed or timed out.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// The command's words for a failure: its standard error, else its output.
    pub fn complaint(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let text = text.trim();
        // Its last 2000 bytes, cut where a character begins.
        let mut from = text.len().saturating_sub(2000);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let text = &text[from..];
        match self.code {
            Some(c) => format!("exit status {c}: {text}"),
            None => format!("killed or timed out: {text}"),
        }
    }
}

/// The most of the start of each stream of a command kept; of the rest, only
/// the last [`KEEP_END`] bytes are (the job id is on the last line).
const KEEP: usize = 1 << 20;
const KEEP_END: usize = 64 << 10;

/// A deadline for a thread's batch commands that other threads may set too.
pub type Watched = std::sync::Arc<std::sync::Mutex<Option<Instant>>>;

thread_local! {
    /// When this thread's batch commands must be over (see [`commands_end_by`]
    /// and [`commands_watch`]).
    static END_BY: std::cell::RefCell<Watched> = std::cell::RefCell::new(Watched::default());
    /// How long each of this thread's batch commands may take (see
    /// [`commands_timeout`]).
    static TIMEOUT: std::cell::Cell<Duration> = const { std::cell::Cell::new(COMMAND_TIMEOUT) };
}

/// Bounds each batch command this thread runs from now to `timeout` (the
/// factory's `command-timeout`).
pub fn commands_timeout(timeout: Duration) {
    TIMEOUT.with(|t| t.set(timeout));
}

/// Bounds every batch command this thread runs from now, including one that
/// is running, by `deadline` as well as by [`commands_timeout`] (a factory
/// stopping within its grace).
pub fn commands_end_by(deadline: Option<Instant>) {
    END_BY.with(|w| *w.borrow().lock().unwrap_or_else(|p| p.into_inner()) = deadline);
}

/// Makes `watched` this thread's deadline (see [`commands_end_by`]), which
/// other threads may then set: a factory told to stop does not first wait
/// out a command that hangs.
pub fn commands_watch(watched: Watched) {
    END_BY.with(|w| *w.borrow_mut() = watched);
}

/// This thread's deadline for batch commands now, if any.
fn end_by() -> Option<Instant> {
    END_BY.with(|w| *w.borrow().lock().unwrap_or_else(|p| p.into_inner()))
}

/// One output stream of a command being read.
struct Stream {
    pipe: Option<Box<dyn Read + Send>>,
    fd: i32,
    kept: Vec<u8>,
    /// What came after the first `KEEP` bytes: the last `KEEP_END` of it at
    /// least (trimmed when twice that).
    end: Vec<u8>,
    /// Whether bytes between `kept` and `end` were dropped.
    cut: bool,
}

impl Stream {
    fn new<R: Read + Send + std::os::fd::AsRawFd + 'static>(r: Option<R>) -> Stream {
        match r {
            Some(r) => {
                let fd = r.as_raw_fd();
                crate::worker::process::set_nonblocking(fd);
                Stream {
                    pipe: Some(Box::new(r)),
                    fd,
                    kept: Vec::new(),
                    end: Vec::new(),
                    cut: false,
                }
            }
            None => Stream {
                pipe: None,
                fd: -1,
                kept: Vec::new(),
                end: Vec::new(),
                cut: false,
            },
        }
    }

    /// Reads what is there now (a bounded amount), keeping up to `KEEP` bytes;
    /// true if anything came.
    fn read_some(&mut self, buf: &mut [u8]) -> bool {
        let Some(pipe) = &mut self.pipe else {
            return false;
        };
        let mut came = false;
        for _ in 0..64 {
            match pipe.read(buf) {
                Ok(0) => {
                    self.pipe = None;
                    self.fd = -1;
                    return came;
                }
                Ok(n) => {
                    came = true;
                    let room = KEEP.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                    self.end.extend_from_slice(&buf[n.min(room)..n]);
                    if self.end.len() > 2 * KEEP_END {
                        self.end.drain(..self.end.len() - KEEP_END);
                        self.cut = true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return came,
                Err(_) => {
                    self.pipe = None;
                    self.fd = -1;
                    return came;
                }
            }
        }
        came
    }

    /// What was kept: the start, and the end after a line saying how much
    /// between them was dropped.
    fn text(mut self) -> String {
        if self.cut {
            match self.end.iter().position(|&b| b == b'\n') {
                // From a line's start, unless that would leave nothing (a
                // last line longer than what is kept of the end).
                Some(nl) if nl + 1 < self.end.len() => {
                    self.end.drain(..=nl);
                }
                _ => {}
            }
            self.kept.extend_from_slice(b"\n[...]\n");
        }
        self.kept.append(&mut self.end);
        String::from_utf8_lossy(&self.kept).into_owned()
    }
}

/// Waits up to `ms` for output on `streams`; true if some is there.
fn wait_for_output(streams: &[Stream; 2], ms: i32) -> bool {
    let mut fds = streams.each_ref().map(|s| libc::pollfd {
        fd: s.fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of 2 pollfd structs for the call's duration;
    // poll ignores entries whose fd is negative.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    rc > 0
}

/// Runs `cmd` to its end, at most the thread's [`commands_timeout`] (and its
/// [`commands_end_by`]), capturing what it prints on each stream: all of
/// it up to `KEEP` bytes, else its start and its end (a `[...]` line
/// between). It runs in a process group of its own, killed whole at the timeout.
/// Once the command has exited, what it printed is read and nothing more: a
/// process it left in the background (a job it started) may keep the pipes
/// open, and is neither waited for nor killed.
pub fn run(mut cmd: Command) -> Result<Ran, String> {
    use std::os::unix::process::CommandExt;
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| match cmd.get_current_dir() {
            Some(d) if !d.is_dir() => format!("cannot run {what} in {}: {e}", d.display()),
            _ => format!("cannot run {what}: {e}"),
        })?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let mut streams = [
        Stream::new(child.stdout.take()),
        Stream::new(child.stderr.take()),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    let timeout = Instant::now() + TIMEOUT.with(std::cell::Cell::get);
    let mut pause = Duration::from_millis(2);
    let code = loop {
        let deadline = end_by().map_or(timeout, |d| d.min(timeout));
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = pause.min(left).as_millis() as i32;
        if wait_for_output(&streams, ms) {
            for s in &mut streams {
                s.read_some(&mut buf);
            }
        } else {
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if Instant::now() < deadline => {}
            _ => {
                crate::worker::process::kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // What the command printed before it ended is in the pipes now; a short
    // bound, as a background process may go on writing.
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until && wait_for_output(&streams, 0) {
        let mut came = false;
        for s in &mut streams {
            came |= s.read_some(&mut buf);
        }
        if !came {
            break;
        }
    }
    let [out, err] = streams;
    Ok(Ran {
        code,
        stdout: out.text(),
        stderr: err.text(),
    })
}

/// True if `program` is an executable file on the `PATH` (or at that path).
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| runnable(&d.join(program))))
}

/// Quotes `word` for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A command line for a POSIX shell.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Worker processes on this machine: a job is a child process (its id the pid),
/// in a process group of its own.
#[derive(Default)]
pub struct Local {
    children: HashMap<String, Child>,
}

impl Batch for Local {
    fn submit(&mut self, job: &JobSpec) -> Result<String, String> {
        use std::os::unix::process::CommandExt;
        let (program, args) = job.argv.split_first().ok_or("no worker command")?;
        let out = std::fs::File::create(job.output)
            .map_err(|e| format!("{}: {e}", job.output.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", job.output.display()))?;
        let parent = std::process::id();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // The worker ends with this process, even one that exits without
        // deleting its manager: the kernel sends it SIGTERM when the thread that
        // started it (this factory's, which lives as long as the factory) is
        // gone. A parent gone before the request is seen to be gone.
        // SAFETY: prctl and getppid are async-signal-safe system calls, and
        // the closure allocates nothing and touches only its copied `parent`.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    // Made without allocating, as everything after a fork.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let id = child.id().to_string();
        self.children.insert(id.clone(), child);
        Ok(id)
    }

    fn status(&mut self, ids: &[&str]) -> Result<HashMap<String, Status>, String> {
        let mut out = HashMap::new();
        for &id in ids {
            let status = match self.children.get_mut(id).map(Child::try_wait) {
                Some(Ok(None)) => Status::Running,
                _ => {
                    self.children.remove(id);
                    Status::Ended
                }
            };
            out.insert(id.to_owned(), status);
        }
        Ok(out)
    }

    fn cancel(&mut self, ids: &[&str]) -> Result<(), String> {
        for &id in ids {
            if let Some(c) = self.children.get_mut(id) {
                if let (Ok(None), Ok(pid)) = (c.try_wait(), i32::try_from(c.id())) {
                    // SAFETY: kill has no memory-safety preconditions; the process
                    // group is our unreaped child's, so its id is not reused.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
            }
        }
        Ok(())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let ids: Vec<String> = self.children.keys().cloned().collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let _ = self.cancel(&ids);
        for (_, mut c) in self.children.drain() {
            let _ = c.wait();
        }
    }
}

/// `sbatch`, without the environment variables that stand for options the
/// factory refuses (see [`refused_option`]): Slurm reads them as if given.
fn sbatch() -> Command {
    let mut c = Command::new("sbatch");
    c.env_remove("SBATCH_ARRAY_INX").env_remove("SBATCH_WAIT");
    c
}

/// Long `sbatch` options that make a submission something other than one job
/// of one worker, known by its id and started when Slurm can: several jobs
/// (`--array`), none (`--test-only`, `--help`, `--usage`, `--version`), a
/// job other than the worker (`--wrap`), a submission that returns only when
/// the job has ended (`--wait`), a job that waits to be released (`--hold`).
const REFUSED_LONG: [&str; 8] = [
    "array",
    "wrap",
    "test-only",
    "help",
    "usage",
    "version",
    "wait",
    "hold",
];
/// Their short forms.
const REFUSED_SHORT: &[u8] = b"ahuVWH";
/// `sbatch`'s short options that take an argument (in the same word or the
/// next).
const SHORT_WITH_ARGUMENT: &[u8] = b"AabDMCScdmexBGiJLFwNnopqt";

/// The first of `options` (words) that [`REFUSED_LONG`] or [`REFUSED_SHORT`]
/// name, however spelled: Slurm takes any unambiguous abbreviation of a long
/// option (`--arr`), and short options bundled in one word (`-Qa 0-3`).
fn refused_option(options: &[String]) -> Option<&String> {
    let mut words = options.iter();
    while let Some(o) = words.next() {
        if let Some(long) = o.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            if !name.is_empty() && REFUSED_LONG.iter().any(|r| r.starts_with(name)) {
                return Some(o);
            }
        } else if let Some(short) = o.strip_prefix('-') {
            for (i, c) in short.bytes().enumerate() {
                if REFUSED_SHORT.contains(&c) {
                    return Some(o);
                }
                if SHORT_WITH_ARGUMENT.contains(&c) {
                    // The argument is the rest of this word, or the next word.
                    if i + 1 == short.len() {
                        words.next();
                    }
                    break;
                }
            }
        }
    }
    None
}

/// Slurm: a job script given to `sbatch`, jobs looked up by id with `squeue`,
/// cancelled with `scancel`.
pub struct Slurm;

impl Slurm {
    /// Slurm; an error if its commands are missing.
    pub fn new() -> Result<Slurm, String> {
        for c in ["sbatch", "squeue", "scancel"] {
            if !on_path(c) {
                return Err(format!(
                    "the slurm batch type needs sbatch, squeue and scancel on the PATH: \
                     {c} is not there"
                ));
            }
        }
        Ok(Slurm)
    }

    /// Asks Slurm whether `options` would be accepted, without submitting.
    pub fn check_options(options: &[String]) -> Result<(), String> {
        if let Some(o) = refused_option(options) {
            return Err(format!(
                "{o} is not for a worker job: each job the factory submits is \
                 one worker, known by its id, that starts without being released"
            ));
        }
        let mut cmd = sbatch();
        cmd.arg("--test-only").args(options).args([
            "--job-name=vine-check",
            "--output=/dev/null",
            "--wrap=true",
        ]);
        let ran = run(cmd)?;
        if ran.code == Some(0) {
            Ok(())
        } else {
            Err(format!("sbatch refused the options: {}", ran.complaint()))
        }
    }

    fn script(job: &JobSpec) -> String {
        let mut s = String::from("#!/bin/sh\n");
        let _ = writeln!(s, "#SBATCH --job-name={}", job.name);
        // The output file is opened by the script, its name quoted for the
        // shell: in a directive Slurm would split it at a space, cut it at a
        // `#`, read `%j` and `\` as patterns, and a newline would end the
        // directives there.
        s.push_str("#SBATCH --output=/dev/null\n");
        s.push_str("#SBATCH --ntasks=1\n");
        let _ = writeln!(s, "#SBATCH --cpus-per-task={}", job.cores.max(1));
        if job.memory_mb > 0 {
            let _ = writeln!(s, "#SBATCH --mem={}M", job.memory_mb);
        }
        if job.disk_mb > 0 {
            let _ = writeln!(s, "#SBATCH --tmp={}M", job.disk_mb);
        }
        if job.gpus > 0 {
            let _ = writeln!(s, "#SBATCH --gres=gpu:{}", job.gpus);
        }
        if let Some(w) = job.wall_time {
            // Slurm's limit is in whole minutes.
            let _ = writeln!(s, "#SBATCH --time={}", w.as_secs().div_ceil(60).max(1));
        }
        let _ = writeln!(
            s,
            "exec >{} 2>&1",
            shell_quote(&job.output.to_string_lossy())
        );
        let _ = writeln!(s, "exec {}", shell_line(job.argv));
        s
    }
}

impl Batch for Slurm {
    fn submit(&mut self, job: &JobSpec) -> Result<String, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o700)
            .open(job.script)
            .map_err(|e| format!("{}: {e}", job.script.display()))?;
        std::io::Write::write_all(&mut f, Self::script(job).as_bytes())
            .map_err(|e| format!("{}: {e}", job.script.display()))?;
        drop(f);
        let mut cmd = sbatch();
        // Options on the command line win over the script's.
        cmd.arg("--parsable").args(job.options).arg(job.script);
        let ran = run(cmd)?;
        let id = ran
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().split(';').next())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'_'));
        match (ran.code, id) {
            (Some(0), Some(id)) => Ok(id.to_owned()),
            _ => Err(format!("sbatch failed: {}", ran.complaint())),
        }
    }

    fn status(&mut self, ids: &[&str]) -> Result<HashMap<String, Status>, String> {
        // By id, not by name: the user's batch options may rename the jobs.
        let mut cmd = Command::new("squeue");
        cmd.args(["--noheader", "--format=%i %T %r"])
            .arg(format!("--jobs={}", ids.join(",")));
        let ran = run(cmd)?;
        let listed: HashMap<&str, (&str, &str)> = if ran.code == Some(0) {
            ran.stdout
                .lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?, (w.next()?, w.next().unwrap_or(""))))
                })
                .collect()
        } else if ran.stderr.contains("Invalid job id") {
            // Every one of them has left Slurm's memory.
            HashMap::new()
        } else {
            return Err(format!("squeue failed: {}", ran.complaint()));
        };
        Ok(ids
            .iter()
            .map(|&id| {
                let s = match listed.get(id).copied() {
                    None
                    | Some(("COMPLETED" | "CANCELLED" | "FAILED" | "TIMEOUT", _))
                    | Some(("NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE", _))
                    | Some(("PREEMPTED", _)) => Status::Ended,
                    // Still listed while its processes end: not gone yet.
                    Some(("RUNNING" | "COMPLETING", _)) => Status::Running,
                    Some(("PENDING", reason)) => {
                        slurm_stuck(reason).map_or(Status::Pending, Status::Stuck)
                    }
                    Some(_) => Status::Pending,
                };
                (id.to_owned(), s)
            })
            .collect())
    }

    fn named(&mut self, name: &str) -> Option<Result<Vec<String>, String>> {
        let mut cmd = Command::new("squeue");
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        cmd.args(["--noheader", "--format=%i"])
            .arg(format!("--user={uid}"))
            .arg(format!("--name={name}"));
        Some(run(cmd).and_then(|ran| {
            if ran.code == Some(0) {
                Ok(ran
                    .stdout
                    .split_whitespace()
                    .filter(|id| id.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
                    .map(str::to_owned)
                    .collect())
            } else {
                Err(format!("squeue failed: {}", ran.complaint()))
            }
        }))
    }

    fn cancel(&mut self, ids: &[&str]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let ran = run({
            let mut c = Command::new("scancel");
            c.args(ids);
            c
        })?;
        if ran.code == Some(0) {
            Ok(())
        } else {
            Err(format!("scancel failed: {}", ran.complaint()))
        }
    }
}

/// Any batch system, through the user's shell commands (see the header for what
/// each gets and must print).
pub struct Custom {
    /// The commands: submit, status, cancel.
    pub submit: String,
    /// See `submit`.
    pub status: String,
    /// See `submit`.
    pub cancel: String,
    /// Where they run.
    pub dir: PathBuf,
}

impl Custom {
    /// `line` for the shell, run in the scratch directory (which the factory
    /// makes again before each cycle if it was removed).
    fn shell(&self, line: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(line).current_dir(&self.dir);
        c
    }
}

/// The longest job id accepted from a submit command.
const MAX_JOB_ID: usize = 256;

impl Batch for Custom {
    fn submit(&mut self, job: &JobSpec) -> Result<String, String> {
        let mut cmd = self.shell(&self.submit);
        cmd.env("VINE_WORKER_COMMAND", shell_line(job.argv))
            .env("VINE_JOB_NAME", job.name)
            .env("VINE_JOB_CORES", job.cores.to_string())
            .env("VINE_JOB_MEMORY", job.memory_mb.to_string())
            .env("VINE_JOB_DISK", job.disk_mb.to_string())
            .env("VINE_JOB_GPUS", job.gpus.to_string())
            .env(
                "VINE_JOB_WALL_TIME",
                job.wall_time.map_or(0, |w| w.as_secs()).to_string(),
            )
            .env("VINE_JOB_OUTPUT", job.output)
            .env("VINE_BATCH_OPTIONS", job.options_text);
        let ran = run(cmd)?;
        if ran.code != Some(0) {
            return Err(format!("the submit command failed: {}", ran.complaint()));
        }
        let id = ran
            .stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if id.is_empty() || id.len() > MAX_JOB_ID || id.chars().any(char::is_control) {
            // What it printed last, at most a few lines' worth.
            let printed = ran.stdout.trim();
            let from = printed.len().saturating_sub(200);
            let from = (from..printed.len())
                .find(|&i| printed.is_char_boundary(i))
                .unwrap_or(printed.len());
            let cut = if from > 0 { "..." } else { "" };
            return Err(format!(
                "the submit command printed no job id on its last line (it printed {cut}{:?})",
                &printed[from..]
            ));
        }
        Ok(id.to_owned())
    }

    fn status(&mut self, ids: &[&str]) -> Result<HashMap<String, Status>, String> {
        let mut out = HashMap::new();
        let mut failure = None;
        for &id in ids {
            let mut cmd = self.shell(&self.status);
            cmd.env("VINE_JOB_ID", id);
            let ran = run(cmd)?;
            if ran.code.is_none() {
                // It hung: the others' status is unknown this time rather
                // than each one's asked until it hangs too.
                failure = Some(format!("the status command failed: {}", ran.complaint()));
                break;
            }
            if ran.code != Some(0) {
                failure = Some(format!("the status command failed: {}", ran.complaint()));
                continue;
            }
            let s = match ran.stdout.split_whitespace().next() {
                Some("pending") => Status::Pending,
                Some("running") => Status::Running,
                _ => Status::Ended,
            };
            out.insert(id.to_owned(), s);
        }
        match failure {
            Some(f) if out.is_empty() => Err(f),
            _ => Ok(out),
        }
    }

    fn cancel(&mut self, ids: &[&str]) -> Result<(), String> {
        let mut failure = Ok(());
        for &id in ids {
            let mut cmd = self.shell(&self.cancel);
            cmd.env("VINE_JOB_ID", id);
            let ran = run(cmd)?;
            if ran.code != Some(0) {
                failure = Err(format!("the cancel command failed: {}", ran.complaint()));
            }
        }
        failure
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("vine_worker"), "vine_worker");
        assert_eq!(shell_quote("/a b/w"), "'/a b/w'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        let line = shell_line(&["echo".into(), "a b".into(), "$HOME".into()]);
        let ran = run({
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(&line);
            c
        })
        .unwrap();
        assert_eq!(ran.stdout, "a b $HOME\n");
    }

    #[test]
    fn options_that_are_not_one_worker_job_are_refused_however_spelled() {
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        for bad in [
            "--array=0-3",
            "--arr=0-3",
            "--ar 0-3",
            "-a 0-3",
            "-a0-3",
            "-Qa 0-3",
            "--wait",
            "-W",
            "-vW",
            "--hold",
            "-H",
            "--te",
            "--wrap=true",
            "--version",
            "-V",
            "--help",
            "-h",
            "--usage",
            "-p debug --arr=1-2",
        ] {
            assert!(refused_option(&words(bad)).is_some(), "{bad}");
        }
        for good in [
            "--partition=debug",
            "-p debug",
            "-J -a",
            "-pdebug -J w",
            "--wait-all-nodes=1",
            "--verbose",
            "-v",
            "--time=10 --nice=-5",
            "-c 2 -t 5",
            "--hint=nomultithread",
        ] {
            assert_eq!(refused_option(&words(good)), None, "{good}");
        }
    }

    #[test]
    fn a_slurm_script_asks_for_the_workers_size() {
        let argv = ["/bin/vine_worker".to_owned(), "h".into(), "9".into()];
        let s = Slurm::script(&JobSpec {
            name: "vine-w",
            argv: &argv,
            output: Path::new("/tmp/o"),
            script: Path::new("/tmp/s"),
            cores: 2,
            memory_mb: 1000,
            disk_mb: 0,
            gpus: 1,
            wall_time: Some(Duration::from_secs(61)),
            options: &[],
            options_text: "",
        });
        for line in [
            "#SBATCH --job-name=vine-w",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --mem=1000M",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --time=2",
            "exec >/tmp/o 2>&1",
            "exec /bin/vine_worker h 9",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} missing in\n{s}");
        }
        assert!(!s.contains("--tmp"));
        // An output path with what a directive would misread: only in the
        // script's quoted redirection, which the shell reads back as given.
        let odd = "/tmp/a b#c%j\\d'e\nf/o.out";
        let s = Slurm::script(&JobSpec {
            name: "vine-w",
            argv: &argv,
            output: Path::new(odd),
            script: Path::new("/tmp/s"),
            cores: 1,
            memory_mb: 0,
            disk_mb: 0,
            gpus: 0,
            wall_time: None,
            options: &[],
            options_text: "",
        });
        let directives: Vec<&str> = s.lines().filter(|l| l.starts_with("#SBATCH")).collect();
        assert!(
            directives.iter().all(|l| !l.contains("a b")),
            "{directives:?}"
        );
        let redirect = s
            .split("exec >")
            .nth(1)
            .and_then(|r| r.split(" 2>&1").next())
            .expect("a redirection");
        let ran = run({
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(format!("printf %s {redirect}"));
            c
        })
        .unwrap();
        assert_eq!(ran.stdout, odd);
    }

    #[test]
    fn a_custom_submit_must_print_an_id() {
        let dir = std::env::temp_dir();
        let mut c = Custom {
            submit: "echo one; echo; echo 'job 42 '".into(),
            status: "echo running".into(),
            cancel: "true".into(),
            dir: dir.clone(),
        };
        let argv = ["w".to_owned()];
        let job = JobSpec {
            name: "n",
            argv: &argv,
            output: Path::new("/dev/null"),
            script: Path::new("/dev/null"),
            cores: 1,
            memory_mb: 0,
            disk_mb: 0,
            gpus: 0,
            wall_time: None,
            options: &[],
            options_text: "",
        };
        assert_eq!(c.submit(&job).unwrap(), "job 42");
        c.submit = "true".into();
        assert!(c.submit(&job).unwrap_err().contains("no job id"));
        c.submit = "echo nope >&2; exit 3".into();
        let e = c.submit(&job).unwrap_err();
        assert!(e.contains("exit status 3") && e.contains("nope"), "{e}");
        assert_eq!(c.status(&["1"]).unwrap()["1"], Status::Running);
        c.status = "echo done".into();
        assert_eq!(c.status(&["1"]).unwrap()["1"], Status::Ended);
        c.status = "exit 1".into();
        assert!(c.status(&["1"]).is_err());
        // More output than is kept: the id on the last line still is.
        c.submit = "yes line | head -c 3000000; echo; echo job-7".into();
        assert_eq!(c.submit(&job).unwrap(), "job-7");
        // A last line longer than what is kept of the end is no id, nor is
        // the mark of the cut.
        c.submit = "yes line | head -c 3000000; head -c 200000 /dev/zero | tr '\\0' x; echo".into();
        let e = c.submit(&job).unwrap_err();
        assert!(e.contains("no job id") && e.len() < 400, "{e}");
    }

    #[test]
    fn a_long_output_keeps_its_start_and_its_end() {
        let ran = run(sh(
            "echo first; yes middle | head -c 3000000; echo; echo last",
        ))
        .unwrap();
        assert!(ran.stdout.starts_with("first\nmiddle\n"));
        let tail = &ran.stdout[ran.stdout.len().saturating_sub(40)..];
        assert!(
            ran.stdout.ends_with("middle\nmid\nlast\n"),
            "the end is kept: {tail:?}"
        );
        assert!(
            ran.stdout.contains("\n[...]\nmiddle\n"),
            "the cut is marked"
        );
        assert!(ran.stdout.len() < KEEP + 3 * KEEP_END);
        let short = run(sh("yes x | head -c 1100000; echo end")).unwrap();
        assert_eq!(short.stdout.len(), 1_100_004, "nothing cut");
    }

    fn sh(line: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(line);
        c
    }

    /// Runs `line` on another thread; what it gave, or a panic if it has not
    /// ended within a minute (it would have hung).
    fn run_ending(line: &str, end_by: Option<Instant>) -> Ran {
        let (tx, rx) = std::sync::mpsc::channel();
        let line = line.to_owned();
        std::thread::spawn(move || {
            commands_end_by(end_by);
            let _ = tx.send(run(sh(&line)));
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the command's run never ended")
            .unwrap()
    }

    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.to_owned()))
            .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
    }

    #[test]
    fn a_commands_output_is_kept_up_to_a_bound() {
        // 50 MB on standard output, a complaint of wide characters on standard
        // error: 1 MiB kept of each and a bounded end, and the complaint cut
        // between characters.
        let ran = run_ending(
            "head -c 50000000 /dev/zero; for i in $(seq 1500); do printf 'é'; done >&2; exit 4",
            None,
        );
        assert!(ran.stdout.len() <= KEEP + "\n[...]\n".len() + 2 * KEEP_END);
        assert!(ran.stdout[..KEEP].bytes().all(|b| b == 0));
        assert_eq!(ran.code, Some(4));
        let c = ran.complaint();
        assert!(
            c.starts_with("exit status 4: é") && c.len() <= 2000 + 20,
            "{c}"
        );
    }

    #[test]
    fn a_command_that_leaves_a_process_holding_its_output_is_not_waited_for() {
        // A job started in the background keeps the pipes open: the command's own
        // end is what counts, and the job is left alone.
        let ran = run_ending("sleep 120 & echo $!; echo said >&2", None);
        assert_eq!(ran.code, Some(0));
        assert_eq!(ran.stderr, "said\n");
        let pid = ran.stdout.trim();
        assert!(alive(pid), "the background job was killed");
        crate::worker::process::kill_group(pid.parse().unwrap());
    }

    #[test]
    fn a_command_past_its_time_is_killed_with_every_process_it_started() {
        let ran = run_ending(
            "sleep 120 & echo $!; sleep 120",
            Some(Instant::now() + Duration::from_millis(300)),
        );
        assert_eq!(ran.code, None);
        let pid = ran.stdout.trim().to_owned();
        assert!(!pid.is_empty());
        // Killed with its group; reaped by whoever inherits it.
        let until = Instant::now() + Duration::from_secs(60);
        while alive(&pid) {
            assert!(Instant::now() < until, "the background process lives on");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_status_command_that_hangs_is_not_asked_again_in_the_same_look() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-batch-test").unwrap();
        let count = dir.join("count");
        let mut c = Custom {
            submit: "true".into(),
            status: format!("echo x >> '{}'; sleep 120", count.display()),
            cancel: "true".into(),
            dir: dir.clone(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            commands_end_by(Some(Instant::now() + Duration::from_millis(300)));
            let _ = tx.send(c.status(&["1", "2", "3"]));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("never ended");
        assert!(got.unwrap_err().contains("killed or timed out"));
        assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
