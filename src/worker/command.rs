//! Running a command task: a fresh sandbox, inputs placed, `/bin/sh -c` in its own
//! process group, output captured up to a cap, time limit enforced, outputs moved to
//! where they were declared, the sandbox removed.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::files::{FileKind, MOUNT_FAILURE_ONLY, MOUNT_SUCCESS_ONLY};
use crate::task::{Task, TaskResult, Work, FLAG_MONITOR, FLAG_NO_WATCHDOG};
use crate::worker::guardian;
use crate::worker::process::{self, RunControl};
use crate::worker::sandbox::{self, Sandbox};

/// Where commands run and what limits apply, shared by the threads of a worker.
#[derive(Debug, Clone)]
pub struct CommandEnv {
    /// Sandboxes are created under this directory.
    pub sandbox_root: std::path::PathBuf,
    /// Temps produced here are kept under this directory.
    pub temp_root: std::path::PathBuf,
    /// Captured output beyond this many bytes is cut (STDOUT_MISSING).
    pub max_stdout: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// URL downloads and mini-task outputs this worker made.
    pub fetcher: std::sync::Arc<crate::worker::fetch::Fetcher>,
    /// Where what watched outputs grow by goes (a remote worker sends it to its
    /// manager); None: to the declared files themselves.
    pub watch: Option<crate::worker::watch::WatchHook>,
}

/// Bytes of command output kept unless the manager sets another cap
/// (`max-stdout`): what both the manager and a worker start with.
pub const DEFAULT_MAX_STDOUT: usize = 16 << 20;

/// The directory in a command's sandbox that `TMPDIR`, `TMP` and `TEMP` name.
pub const TMP_DIR: &str = ".vine.tmp";

/// Runs the command task and records its outcome in it.
pub fn run(task: &mut Task, gpus: &[u32], control: &RunControl, env: &CommandEnv) {
    let name = format!("t{}.{}", task.id, task.attempts);
    let sandbox = match Sandbox::create(&env.sandbox_root, &name) {
        Ok(s) => s,
        Err(e) => {
            // Not the task's fault: the scheduler may run it again.
            let reason = format!(
                "cannot create a sandbox under {}: {e}",
                env.sandbox_root.display()
            );
            return task.finish(TaskResult::Forsaken, Some(reason));
        }
    };
    if let Some(extra) = &task.extra {
        // A download for an input is given up when the task is cancelled or
        // runs out of time meanwhile.
        let deadline = crate::worker::process::task_deadline(task);
        let stop = || {
            if control.is_cancelled() {
                Some("the task was cancelled".to_owned())
            } else if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                Some("the task ran out of time".to_owned())
            } else {
                None
            }
        };
        for mount in &extra.inputs {
            if let Err(reason) = sandbox.place_input(mount, env, &stop) {
                let out_of_time = deadline.is_some_and(|d| std::time::Instant::now() >= d);
                if !control.is_cancelled() && out_of_time {
                    // As a command killed at its limit ends.
                    let end = task.time_end();
                    let result = if end > 0 && crate::task::now_us() >= end {
                        TaskResult::MaxEndTime
                    } else {
                        TaskResult::MaxWallTime
                    };
                    return task.finish(result, Some(reason));
                }
                return task.finish(TaskResult::InputMissing, Some(reason));
            }
        }
        for mount in &extra.outputs {
            if let Err(reason) = sandbox.prepare_output(mount) {
                return task.finish(TaskResult::OutputMissing, Some(reason));
            }
        }
    }
    let tmp = match temp_dir(&sandbox, task) {
        Ok(tmp) => tmp,
        Err(reason) => return task.finish(TaskResult::Forsaken, Some(reason)),
    };
    let Work::Command { command } = &task.work else {
        unreachable!("only commands run here")
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            return task.finish(
                TaskResult::Forsaken,
                Some(format!("cannot create a pipe: {e}")),
            )
        }
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(std::ffi::OsStr::from_bytes(command.to_bytes()))
        .current_dir(sandbox.path())
        .stdin(Stdio::null())
        .process_group(0)
        .env("VINE_SANDBOX", sandbox.path());
    if let Some(tmp) = &tmp {
        for name in ["TMPDIR", "TMP", "TEMP"] {
            cmd.env(name, tmp);
        }
    }
    resource_env(&mut cmd, &task.request);
    if !gpus.is_empty() {
        let list = gpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        cmd.env("CUDA_VISIBLE_DEVICES", &list)
            .env("ROCR_VISIBLE_DEVICES", &list);
    }
    if let Some(extra) = &task.extra {
        for (k, v) in &extra.env {
            let k = std::ffi::OsStr::from_bytes(k.to_bytes());
            match v {
                Some(v) => cmd.env(k, std::ffi::OsStr::from_bytes(v.to_bytes())),
                None => cmd.env_remove(k),
            };
        }
    }
    // The command dies with this process, however it ends (see `guardian`).
    let enlist = guardian::Enlist::prepare();
    enlist.mark(&mut cmd);
    // Wall time counts from before the spawn: the child may run for a while
    // before this thread is scheduled again, and its CPU time counts from there.
    let started = std::time::Instant::now();
    let spawned = writer
        .try_clone()
        .and_then(|w2| cmd.stdout(w2).stderr(writer).spawn());
    drop(cmd); // closes the parent's copies of the pipe's write end
    let child = match spawned {
        Ok(c) => c,
        // The command itself is too long for the kernel (a single argument is
        // limited to 128 KiB): it fails wherever it goes, so it fails as a
        // command the shell cannot execute does, with exit code 126, and is
        // not retried elsewhere.
        Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {
            task.exit_code = 126;
            return task.finish(
                TaskResult::Success,
                Some(format!("cannot start the command: {e}")),
            );
        }
        Err(e) => {
            return task.finish(
                TaskResult::Forsaken,
                Some(format!("cannot start /bin/sh: {e}")),
            )
        }
    };
    enlist.group(child.id() as i32);
    #[cfg(test)]
    process::test_end_before_supervised(task, child.id() as i32);
    control.set_pgid(child.id() as i32);
    let deadline = process::task_deadline(task);
    let watcher = crate::worker::watch::start(task, sandbox.path(), env.watch.clone());
    let cap = task
        .extra
        .as_ref()
        .and_then(|e| e.max_stdout)
        .unwrap_or_else(|| env.max_stdout.load(std::sync::atomic::Ordering::Relaxed));
    let watchdog = task.flags & FLAG_NO_WATCHDOG == 0;
    let monitor = task.flags & FLAG_MONITOR != 0;
    let limits = process::Limits {
        cap,
        deadline,
        memory_mb: if watchdog { task.request.memory_mb } else { 0 },
        sandbox: Some(sandbox.path()),
        disk_mb: if watchdog { task.request.disk_mb } else { 0 },
        monitor,
        forked: false,
    };
    let supervised = process::supervise(child.id() as i32, reader, limits, control);
    // Stopped before the outputs are collected: they are then delivered whole.
    drop(watcher);
    let (ending, captured, usage) = match supervised {
        Ok(x) => x,
        Err(e) => return crate::worker::process::lost_child(task, "the command", &e),
    };
    let mut stdout = captured.bytes;
    stdout.retain(|&b| b != 0);
    task.extra_mut().stdout = std::ffi::CString::new(stdout).ok();
    if monitor {
        task.extra_mut().measured = Some(usage.measured(started.elapsed()));
    }
    let Some(status) = ending.settle(task, "the command") else {
        // Killed at its time limit or end time, or by a signal: what it wrote
        // is still delivered, as TaskVine's manager fetches it (outputs for
        // failure only among them; what is missing changes nothing).
        if matches!(
            task.result,
            TaskResult::MaxWallTime | TaskResult::MaxEndTime | TaskResult::Signal
        ) {
            let _ = collect_outputs(task, &sandbox, env);
        }
        return;
    };
    task.exit_code = status.code().unwrap_or(-1);
    if let Err(reason) = collect_outputs(task, &sandbox, env) {
        return task.finish(TaskResult::OutputMissing, Some(reason));
    }
    if captured.truncated {
        let reason = format!("the command printed more than the {cap} byte cap");
        return task.finish(TaskResult::StdoutMissing, Some(reason));
    }
    task.finish(TaskResult::Success, None);
}

fn collect_outputs(task: &Task, sandbox: &Sandbox, env: &CommandEnv) -> Result<(), String> {
    let Some(extra) = &task.extra else {
        return Ok(());
    };
    let mut missing = Vec::new();
    // The first output that could not be stored; the others are still
    // delivered, as remote workers deliver them.
    let mut failed = None;
    // As TaskVine judges it for these flags: ran and exited 0.
    let succeeded = task.exit_code == 0;
    for mount in &extra.outputs {
        if (mount.flags & MOUNT_FAILURE_ONLY != 0 && succeeded)
            || (mount.flags & MOUNT_SUCCESS_ONLY != 0 && !succeeded)
        {
            continue;
        }
        let produced = match sandbox.resolve_output(&mount.remote_name) {
            Ok(p) => p,
            Err(why) => {
                failed.get_or_insert(format!("output {why}"));
                continue;
            }
        };
        if !produced.exists() {
            missing.push(mount.remote_name.clone());
            continue;
        }
        // A FIFO, socket or device is never opened (that could block forever),
        // and what cannot be read is not delivered as if it were.
        if let Err(why) = crate::transfer::check_output(&produced) {
            failed.get_or_insert(format!("output {}: {why}", mount.remote_name));
            continue;
        }
        // Delivered as a remote worker delivers it: a copy of its own (see `detach`).
        if matches!(mount.file.kind(), FileKind::Path(_) | FileKind::Temp) {
            if let Err(e) = sandbox::detach(&produced) {
                failed.get_or_insert(format!("cannot store output {}: {e}", mount.remote_name));
                continue;
            }
        }
        let moved = match mount.file.kind() {
            FileKind::Path(dest) => sandbox::move_file(&produced, dest).map_err(|e| e.to_string()),
            FileKind::Buffer => std::fs::read(&produced)
                .map(|data| mount.file.set_contents(data))
                .map_err(|e| e.to_string()),
            FileKind::Temp => {
                let dest = env.temp_root.join(format!("{}", mount.file.id()));
                replace_file(&produced, &dest).map(|()| mount.file.set_temp_location(dest))
            }
            FileKind::Url(_) | FileKind::MiniTask { .. } => {
                Err("a URL or mini-task file cannot be an output".into())
            }
        };
        if let Err(e) = moved {
            failed.get_or_insert(format!("cannot store output {}: {e}", mount.remote_name));
        }
    }
    if let Some(why) = failed {
        Err(why)
    } else if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the command did not produce {}",
            missing.join(", ")
        ))
    }
}

fn replace_file(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    sandbox::move_file(from, to).map_err(|e| e.to_string())
}

/// The variables that tell a command what it holds, as TaskVine's worker sets
/// them: its whole cores as `CORES` and as the thread count of the common
/// threaded libraries (OpenMP, OpenBLAS, vecLib, MKL, NumExpr), and `MEMORY`
/// and `DISK` (MB) and `GPUS` when it holds any. The task's own environment is
/// applied after these, so it may replace them.
fn resource_env(cmd: &mut Command, held: &crate::resources::Resources) {
    let cores = held.whole_cores().to_string();
    for name in [
        "CORES",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "VECLIB_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ] {
        cmd.env(name, &cores);
    }
    for (name, amount) in [
        ("MEMORY", held.memory_mb),
        ("DISK", held.disk_mb),
        ("GPUS", u64::from(held.gpus)),
    ] {
        if amount > 0 {
            cmd.env(name, amount.to_string());
        }
    }
}

/// Makes the directory of `task`'s temporary files in its sandbox, as on
/// TaskVine's workers (counted in its disk, removed with it). None if an input
/// or output of the task has that name: the variables are then left alone.
fn temp_dir(sandbox: &Sandbox, task: &Task) -> Result<Option<std::path::PathBuf>, String> {
    let output_named = task.extra.as_ref().is_some_and(|e| {
        e.outputs
            .iter()
            .any(|m| crate::task::same_sandbox_name(&m.remote_name, TMP_DIR))
    });
    if output_named {
        return Ok(None);
    }
    let tmp = sandbox.path().join(TMP_DIR);
    match std::fs::create_dir(&tmp) {
        Ok(()) => Ok(Some(tmp)),
        // An input of that name.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(format!("cannot create {}: {e}", tmp.display())),
    }
}
