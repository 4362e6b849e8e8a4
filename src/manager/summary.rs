//! The summary of what a task used, written where `vine_task_set_monitor_output`
//! asked when the task ends: `DIR/vine-task-ID.summary`, TaskVine's name for it,
//! one JSON object whose figures are `[value, "unit"]` pairs as in TaskVine's
//! resource summaries (memory and disk in MB, times in seconds, I/O in MB). A
//! task that never ran, so measured nothing, gets none.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::task::Task;

/// The summary file of task `id` in `dir`.
pub(crate) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("vine-task-{id}.summary"))
}

/// The summary of `task`, or None if it measured nothing.
pub(crate) fn text(task: &Task) -> Option<String> {
    let m = task.extra.as_ref()?.measured?;
    let mb = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    let times = task.times();
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        o.insert(k.to_owned(), v);
    };
    put("task_id", task.id.into());
    put("category", task.category().to_string_lossy().into());
    put("result", task.result.name().to_string_lossy().into());
    put("exit_status", task.exit_code.into());
    put("start", serde_json::json!([times.started, "us"]));
    put("end", serde_json::json!([times.done, "us"]));
    put(
        "wall_time",
        serde_json::json!([m.wall_us as f64 / 1e6, "s"]),
    );
    put("cpu_time", serde_json::json!([m.cpu_us as f64 / 1e6, "s"]));
    put("cores", serde_json::json!([m.cores(), "cores"]));
    if let Some(memory) = m.memory_mb {
        put("memory", serde_json::json!([memory, "MB"]));
    }
    put("disk", serde_json::json!([m.disk_mb, "MB"]));
    put("bytes_read", serde_json::json!([mb(m.bytes_read), "MB"]));
    put(
        "bytes_written",
        serde_json::json!([mb(m.bytes_written), "MB"]),
    );
    put(
        "max_concurrent_processes",
        serde_json::json!([m.max_processes, "procs"]),
    );
    Some(serde_json::Value::Object(o).to_string() + "\n")
}

/// Writes the summary of `task` into `dir` (made if missing), replacing one a
/// task of that id left there before; nothing if it measured nothing.
pub(crate) fn write(dir: &Path, task: &Task) -> std::io::Result<()> {
    let Some(text) = text(task) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    // Written whole under another name, then renamed: a reader never sees half.
    let at = path(dir, task.id);
    let part = dir.join(format!(".vine-task-{}.summary.part", task.id));
    let mut f = std::fs::File::create(&part)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(&part, &at).inspect_err(|_| {
        let _ = std::fs::remove_file(&part);
    })
}
