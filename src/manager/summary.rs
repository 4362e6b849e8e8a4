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
    // That name is made afresh (never opened through a link someone left
    // there), and the rename replaces a link at the final name, not its target.
    let at = path(dir, task.id);
    let part = dir.join(format!(".vine-task-{}.summary.part", task.id));
    let _ = std::fs::remove_file(&part);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(&part, &at).inspect_err(|_| {
        let _ = std::fs::remove_file(&part);
    })
}

/// Most summaries [`read_all`] takes from one file.
pub(crate) const MAX_SUMMARIES: usize = 1_000_000;

/// Reads resource summaries (JSON objects one after another, as [`write`]
/// writes them and TaskVine's resource monitor does) into what each
/// category's tasks measured, in file order. `cap` bounds each figure (cores in
/// thousandths, memory and disk in MB) where it gives one. Any object that is
/// not a summary fails the whole read, naming it (1 for the first).
pub(crate) fn read_all(
    reader: impl std::io::Read,
    cap: crate::manager::categories::Partial,
) -> crate::error::Result<Vec<(std::ffi::CString, crate::resources::Measured)>> {
    use crate::error::Error;
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader))
        .into_iter::<serde_json::Value>();
    for (i, value) in stream.enumerate() {
        let n = i + 1;
        let bad = |why: String| Error::invalid(format!("summary {n}: {why}"));
        if n > MAX_SUMMARIES {
            return Err(bad(format!(
                "more than {MAX_SUMMARIES} summaries in one file (keep the latest)"
            )));
        }
        let value = value.map_err(|e| {
            if e.is_io() {
                Error::new(crate::error::ErrorKind::Io, format!("summary {n}: {e}"))
            } else {
                bad(format!("not JSON ({e})"))
            }
        })?;
        let serde_json::Value::Object(o) = value else {
            return Err(bad("not a JSON object".into()));
        };
        let category = match o.get("category") {
            None | Some(serde_json::Value::Null) => c"default".to_owned(),
            Some(serde_json::Value::String(s)) if !s.is_empty() => {
                std::ffi::CString::new(s.as_str())
                    .map_err(|_| bad("the category holds a NUL".into()))?
            }
            Some(other) => return Err(bad(format!("the category {other} is not a name"))),
        };
        // A figure: a number, or [number, "unit"] in the one unit vine reads.
        let figure = |key: &str, unit: &str, max: f64| -> crate::error::Result<Option<f64>> {
            let Some(v) = o.get(key) else {
                return Ok(None);
            };
            let (number, given) = match v {
                serde_json::Value::Array(a) if a.len() == 2 => (&a[0], a[1].as_str()),
                other => (other, Some(unit)),
            };
            if given != Some(unit) {
                return Err(bad(format!(
                    "{key} must be in {unit:?}, as in [1.5, {unit:?}]"
                )));
            }
            match number.as_f64() {
                Some(x) if x.is_finite() && (0.0..=max).contains(&x) => Ok(Some(x)),
                _ => Err(bad(format!(
                    "{key} must be a number from 0 to {max:e}, not {number}"
                ))),
            }
        };
        let mb = crate::task::MAX_MB as f64;
        let wall = figure("wall_time", "s", 1e9)?.unwrap_or(1.0).max(1e-6);
        let cpu = figure("cpu_time", "s", 1e12)?;
        let cores = figure("cores", "cores", 1e9)?.or(cpu.map(|c| c / wall));
        let memory = figure("memory", "MB", mb)?;
        let disk = figure("disk", "MB", mb)?;
        let bound =
            |v: f64, cap: Option<u64>, scale: f64| cap.map_or(v, |c| v.min(c as f64 / scale));
        let cores = cores
            .map(|c| bound(c, cap.millicores, 1000.0))
            .unwrap_or(0.0);
        let wall_us = (wall * 1e6).round() as u64;
        out.push((
            category,
            crate::resources::Measured {
                wall_us,
                cpu_us: (cores * wall_us as f64).round() as u64,
                memory_mb: memory.map(|m| bound(m, cap.memory_mb, 1.0).ceil() as u64),
                disk_mb: disk.map_or(0, |d| bound(d, cap.disk_mb, 1.0).ceil() as u64),
                ..Default::default()
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::manager::categories::Partial;

    #[test]
    fn summaries_are_read_as_vine_writes_them_and_in_plain_numbers() {
        let mut t = Task::command(c"true");
        t.id = 7;
        t.set_category(c"sim").unwrap();
        t.extra_mut().measured = Some(crate::resources::Measured {
            wall_us: 2_000_000,
            cpu_us: 3_000_000,
            memory_mb: Some(300),
            disk_mb: 12,
            ..Default::default()
        });
        let written = text(&t).unwrap();
        let file = format!(
            "{written}\n{{\"memory\": 50, \"wall_time\": 4, \"cpu_time\": [2, \"s\"]}}{{\"category\":\"x\"}}"
        );
        let got = read_all(file.as_bytes(), Partial::default()).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0.as_c_str(), c"sim");
        assert_eq!(got[0].1.memory_mb, Some(300));
        assert_eq!(got[0].1.disk_mb, 12);
        assert_eq!(got[0].1.wall_us, 2_000_000);
        assert!((got[0].1.cores() - 1.5).abs() < 1e-9);
        assert_eq!(got[1].0.as_c_str(), c"default");
        assert_eq!(got[1].1.memory_mb, Some(50));
        assert!((got[1].1.cores() - 0.5).abs() < 1e-9);
        assert_eq!(got[2].1.memory_mb, None);
        assert_eq!(got[2].1.wall_us, 1_000_000);
        // A cap bounds each figure it gives.
        let cap = Partial {
            millicores: Some(1000),
            memory_mb: Some(100),
            ..Default::default()
        };
        let got = read_all(written.as_bytes(), cap).unwrap();
        assert_eq!(got[0].1.memory_mb, Some(100));
        assert!((got[0].1.cores() - 1.0).abs() < 1e-9);
        assert_eq!(got[0].1.disk_mb, 12);
        assert!(read_all(&b""[..], cap).unwrap().is_empty());
    }

    #[test]
    fn a_summary_is_not_written_through_a_link_left_in_its_place() {
        let dir = std::env::temp_dir().join(format!("vine-summary-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, "kept").unwrap();
        let mut t = Task::command(c"true");
        t.id = 3;
        t.extra_mut().measured = Some(crate::resources::Measured::default());
        std::os::unix::fs::symlink(&target, dir.join(".vine-task-3.summary.part")).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("vine-task-3.summary")).unwrap();
        write(&dir, &t).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        let at = dir.join("vine-task-3.summary");
        assert!(!std::fs::symlink_metadata(&at).unwrap().is_symlink());
        assert!(std::fs::read_to_string(&at)
            .unwrap()
            .contains("\"task_id\":3"));
        assert!(!dir.join(".vine-task-3.summary.part").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_too_many_summaries_is_refused() {
        let file = "{}".repeat(MAX_SUMMARIES + 1);
        let e = read_all(file.as_bytes(), Partial::default()).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        let file = "{}".repeat(MAX_SUMMARIES);
        assert_eq!(
            read_all(file.as_bytes(), Partial::default()).unwrap().len(),
            MAX_SUMMARIES
        );
    }

    #[test]
    fn anything_but_summaries_is_refused_naming_which() {
        for (file, says) in [
            ("{} [1, 2]", "summary 2: not a JSON object"),
            ("{\"memory\": [5, \"GB\"]}", "memory must be in \"MB\""),
            ("{\"memory\": -1}", "memory must be a number from 0"),
            ("{\"cores\": 1e300}", "cores must be a number from 0"),
            ("{\"wall_time\": \"long\"}", "wall_time must be a number"),
            ("{\"disk\": [1]}", "disk must be a number"),
            ("{\"category\": \"\"}", "is not a name"),
            ("{\"category\": 5}", "is not a name"),
            ("{\"category\": \"a\\u0000b\"}", "holds a NUL"),
            ("{} {\"memory\": 1", "summary 2: not JSON"),
            ("nonsense", "summary 1: not JSON"),
        ] {
            let e = read_all(file.as_bytes(), Partial::default()).unwrap_err();
            assert!(e.to_string().contains(says), "{file}: {e}");
        }
    }
}
