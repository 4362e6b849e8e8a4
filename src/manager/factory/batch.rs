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
}

/// How long a batch command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

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
        let text = if text.len() > 2000 {
            &text[text.len() - 2000..]
        } else {
            text
        };
        match self.code {
            Some(c) => format!("exit status {c}: {text}"),
            None => format!("killed or timed out: {text}"),
        }
    }
}

/// Runs `cmd` to its end, at most `COMMAND_TIMEOUT`, capturing what it prints.
pub fn run(mut cmd: Command) -> Result<Ran, String> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    let code = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Ok(Ran {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
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
        let mut cmd = Command::new("sbatch");
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
        let _ = writeln!(s, "#SBATCH --output={}", job.output.display());
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
        let mut cmd = Command::new("sbatch");
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
        cmd.args(["--noheader", "--format=%i %T"])
            .arg(format!("--jobs={}", ids.join(",")));
        let ran = run(cmd)?;
        let listed: HashMap<&str, &str> = if ran.code == Some(0) {
            ran.stdout
                .lines()
                .filter_map(|l| l.trim().split_once(' '))
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
                let s = match listed.get(id).map(|s| s.trim()) {
                    None
                    | Some("COMPLETED" | "CANCELLED" | "FAILED" | "TIMEOUT")
                    | Some("NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE")
                    | Some("PREEMPTED") => Status::Ended,
                    // Still listed while its processes end: not gone yet.
                    Some("RUNNING" | "COMPLETING") => Status::Running,
                    Some(_) => Status::Pending,
                };
                (id.to_owned(), s)
            })
            .collect())
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
            return Err(format!(
                "the submit command printed no job id on its last line (it printed {:?})",
                ran.stdout.trim()
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
            "exec /bin/vine_worker h 9",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} missing in\n{s}");
        }
        assert!(!s.contains("--tmp"));
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
    }
}
