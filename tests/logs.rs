//! The logs, checked against TaskVine's documented formats: a workflow with a
//! lost worker (and its task's retry), failures, files and the program's own
//! line; every record's fields and every task's sequence of states.

mod common;

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use common::{remote_manager, tempdir, vine_worker};
use vine::files::{CacheLevel, File, Mount};
use vine::{Manager, Port, Task, TaskResult};

/// TaskVine's results, as the log names them.
const RESULTS: &[&str] = &[
    "SUCCESS",
    "UNKNOWN",
    "INPUT_MISSING",
    "OUTPUT_MISSING",
    "STDOUT_MISSING",
    "SIGNAL",
    "RESOURCE_EXHAUSTION",
    "MAX_RETRIES",
    "MAX_END_TIME",
    "MAX_WALL_TIME",
    "FORSAKEN",
    "FIXED_LOCATION_MISSING",
    "CANCELLED",
    "FUNCTION_ERROR",
    "MISSING_FUNCTION",
    "UNSCHEDULABLE",
];

/// A resource dictionary as TaskVine writes it: `{"name":[number,"unit"],...}`,
/// no spaces (TaskVine's tools split records on white space).
fn resources(json: &str, want: &[&str]) -> HashMap<String, f64> {
    assert!(!json.contains(' '), "a space in {json}");
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {json}"));
    let mut out = HashMap::new();
    for (k, v) in obj {
        let pair = v.as_array().unwrap_or_else(|| panic!("{k} in {json}"));
        assert_eq!(pair.len(), 2, "{k} in {json}");
        let n = pair[0].as_f64().unwrap_or_else(|| panic!("{k} in {json}"));
        assert!(n.is_finite() && n >= 0.0, "{k} in {json}");
        assert!(pair[1].is_string(), "{k} in {json}");
        out.insert(k.clone(), n);
    }
    for w in want {
        assert!(out.contains_key(*w), "no {w} in {json}");
    }
    out
}

/// A record: its time, and its words after the pid.
struct Rec {
    at: i64,
    words: Vec<String>,
}

/// Reads a transactions log, checking what every line shares.
fn read_txn(path: &Path) -> (Vec<String>, Vec<Rec>) {
    let pid = std::process::id().to_string();
    let mut header = Vec::new();
    let mut recs: Vec<Rec> = Vec::new();
    for line in BufReader::new(std::fs::File::open(path).unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with('#') {
            assert!(recs.is_empty(), "a comment after the records: {line}");
            header.push(line);
            continue;
        }
        let mut w = line.split(' ');
        let at: i64 = w
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{line}"));
        assert_eq!(w.next(), Some(pid.as_str()), "{line}");
        let words: Vec<String> = w.map(str::to_owned).collect();
        assert!(words.iter().all(|w| !w.is_empty()), "double space: {line}");
        if let Some(last) = recs.last() {
            assert!(at >= last.at, "time goes back at {line}");
        }
        recs.push(Rec { at, words });
    }
    (header, recs)
}

fn fifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn the_transactions_log_follows_each_task_through_taskvines_states() {
    let dir = tempdir();
    let txn = dir.join("logs/transactions");
    let perf = dir.join("logs/performance");
    let debug = dir.join("logs/debug");
    let (m, port) = remote_manager();
    m.tune("max-retries", 2.0).unwrap();
    m.enable_transactions_log(&txn).unwrap();
    m.enable_debug_log(&debug).unwrap();
    m.enable_perf_log(&perf).unwrap();
    m.log_txn_app("phase one\nbegins");

    // Task 1 is on the first worker when that worker is killed: it runs again
    // on the second (it knows by the marker it left).
    let started = dir.join("started");
    fifo(&started);
    let marker = dir.join("marker");
    let cmd = format!(
        "if [ -e {m} ]; then echo again; else touch {m}; echo up > {f}; exec sleep 600; fi",
        m = marker.display(),
        f = started.display()
    );
    let mut first = vine_worker(port, &[]);
    let lost = m
        .submit(Task::command(&CString::new(cmd).unwrap()))
        .unwrap();
    // The task has started on the first worker once it writes to the fifo.
    let mut line = String::new();
    BufReader::new(std::fs::File::open(&started).unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = vine_worker(port, &[]);
    // Back from the second worker: the first one's loss is known.
    let t = m.wait(Some(Duration::from_secs(120))).expect("the task");
    assert_eq!(
        (t.id(), t.result(), t.exit_code()),
        (lost, TaskResult::Success, 0)
    );

    // A non-zero exit, a signal, and files both ways.
    let exit3 = m.submit(Task::command(c"exit 3")).unwrap();
    let signal = m.submit(Task::command(c"kill -9 $$")).unwrap();
    let mut t = Task::command(c"tr a-z A-Z < in.txt > out.txt");
    let input = m.declare(File::buffer(b"hello\n", CacheLevel::Task, 0).unwrap());
    let output = m.declare(File::temp().unwrap());
    t.add_input(Mount::new(input, "in.txt", 0).unwrap())
        .unwrap();
    t.add_output(Mount::new(output.clone(), "out.txt", 0).unwrap())
        .unwrap();
    let files = m.submit(t).unwrap();
    let mut c = Task::command(c"true");
    c.set_category(c"two words\nTASK 99 DONE").unwrap();
    let odd = m.submit(c).unwrap();

    let mut results = HashMap::new();
    for _ in 0..4 {
        let t = m.wait(Some(Duration::from_secs(120))).expect("a task");
        results.insert(t.id(), (t.result(), t.exit_code()));
    }
    assert_eq!(results[&exit3], (TaskResult::Success, 3));
    assert_eq!(results[&signal].0, TaskResult::Signal);
    assert_eq!(results[&files], (TaskResult::Success, 0));
    assert!(m.fetch_file(&output).unwrap().starts_with(b"HELLO\n"));
    m.shutdown().unwrap();
    second.wait().unwrap();

    let (header, recs) = read_txn(&txn);
    assert_eq!(
        header[0],
        "# time manager_pid MANAGER manager_pid START|END time_from_origin"
    );
    assert_eq!(header.len(), 16, "TaskVine's header block");
    let pid = std::process::id().to_string();
    let first_rec = &recs[0].words;
    assert_eq!(first_rec[..], ["MANAGER", &pid, "START", "0"]);
    let last = &recs.last().unwrap().words;
    assert_eq!(last[..3], ["MANAGER", &pid, "END"]);
    assert!(last[3].parse::<i64>().unwrap() > 0);

    // Every record, field by field.
    let mut by_task: HashMap<u64, Vec<&Rec>> = HashMap::new();
    let mut workers: HashMap<String, Vec<String>> = HashMap::new();
    let mut transfers = Vec::new();
    let mut app = Vec::new();
    let mut local = Vec::new();
    for r in &recs[1..recs.len() - 1] {
        let w = &r.words;
        match w[0].as_str() {
            "TASK" => {
                let id: u64 = w[1].parse().unwrap();
                match w[2].as_str() {
                    "READY" => {
                        assert_eq!(w.len(), 7, "{w:?}");
                        assert_eq!(w[4], "FIRST_RESOURCES");
                        assert!(w[5].parse::<u32>().unwrap() >= 1);
                        resources(&w[6], &["cores"]);
                    }
                    "RUNNING" => {
                        assert_eq!(w.len(), 6, "{w:?}");
                        assert!(w[3].starts_with("worker-"), "{w:?}");
                        assert_eq!(w[4], "FIRST_RESOURCES");
                        resources(&w[5], &["cores", "time_commit_start", "time_commit_end"]);
                    }
                    "WAITING_RETRIEVAL" => {
                        assert_eq!(w.len(), 4, "{w:?}");
                        assert!(w[3].starts_with("worker-"), "{w:?}");
                    }
                    "RETRIEVED" => {
                        assert_eq!(w.len(), 7, "{w:?}");
                        assert!(RESULTS.contains(&w[3].as_str()), "{w:?}");
                        w[4].parse::<i32>().unwrap();
                        assert_eq!(w[5], "{}");
                        let got = resources(&w[6], &[]);
                        if w[3] == "SUCCESS" {
                            let start = got["time_worker_start"];
                            let end = got["time_worker_end"];
                            assert!(end >= start && start > 1.0e9, "{w:?}");
                            assert!((got["wall_time"] - (end - start)).abs() < 1e-3);
                        }
                    }
                    "DONE" => {
                        assert_eq!(w.len(), 5, "{w:?}");
                        assert!(RESULTS.contains(&w[3].as_str()), "{w:?}");
                        w[4].parse::<i32>().unwrap();
                    }
                    other => panic!("unknown task state {other}"),
                }
                by_task.entry(id).or_default().push(r);
            }
            "WORKER" => {
                assert!(w[1].starts_with("worker-"), "{w:?}");
                if w[1] == "worker-local" {
                    // Its cores were taken away before the first task.
                    local.push(w[2..].join(" "));
                    continue;
                }
                let event = match w[2].as_str() {
                    "CONNECTION" => {
                        assert_eq!(w.len(), 4);
                        let (host, port) = w[3].rsplit_once(':').expect("host:port");
                        assert_eq!(host, "127.0.0.1");
                        port.parse::<u16>().unwrap();
                        "CONNECTION".to_owned()
                    }
                    "RESOURCES" => {
                        assert_eq!(w.len(), 4);
                        let r = resources(&w[3], &["cores", "memory", "disk"]);
                        assert_eq!(r["cores"], 1.0);
                        "RESOURCES".to_owned()
                    }
                    "DISCONNECTION" => {
                        assert_eq!(w.len(), 4);
                        format!("DISCONNECTION {}", w[3])
                    }
                    "TRANSFER" => {
                        assert_eq!(w.len(), 8, "{w:?}");
                        assert!(w[3] == "INPUT" || w[3] == "OUTPUT");
                        for n in &w[5..] {
                            n.parse::<i64>().unwrap();
                        }
                        transfers.push((w[3].clone(), w[4].clone(), w[5].clone()));
                        continue;
                    }
                    "CACHE_UPDATE" => {
                        assert_eq!(w.len(), 7, "{w:?}");
                        continue;
                    }
                    other => panic!("unknown worker event {other}"),
                };
                workers.entry(w[1].clone()).or_default().push(event);
            }
            "APPLICATION" => app.push(w[1..].join(" ")),
            other => panic!(
                "unknown record {other}: {}",
                std::fs::read_to_string(&txn).unwrap()
            ),
        }
    }
    assert_eq!(app, ["phase one begins"]);
    // The local pool's records may have gone to the run directory's log, opened
    // first; if here, they are whole.
    if !local.is_empty() {
        assert_eq!(local[0], "CONNECTION local");
        assert_eq!(local[2], "DISCONNECTION EXPLICIT");
    }

    // Two workers: the first lost, the second told to exit at shutdown.
    assert_eq!(workers.len(), 2, "{workers:?}");
    let mut lives: Vec<&Vec<String>> = workers.values().collect();
    lives.sort_by_key(|l| l.last().cloned());
    assert_eq!(
        lives[0][..],
        ["CONNECTION", "RESOURCES", "DISCONNECTION EXPLICIT"]
    );
    assert_eq!(
        lives[1][..],
        ["CONNECTION", "RESOURCES", "DISCONNECTION UNKNOWN"]
    );
    // The debug log tells the same of each: joined, then left, the second
    // one told to exit at shutdown.
    let debug = std::fs::read_to_string(&debug).unwrap();
    for (name, life) in &workers {
        let how = life.last().unwrap().trim_start_matches("DISCONNECTION ");
        let joined = debug.find(&format!(" vine: {name} joined with "));
        let left = debug.find(&format!(" vine: {name} left ({how})\n"));
        assert!(
            joined.is_some() && left.is_some() && joined < left,
            "{name} {how}: {debug}"
        );
    }

    // The buffer went to the worker, the output came back.
    assert!(transfers
        .iter()
        .any(|(d, n, b)| d == "INPUT" && n.starts_with("buffer-") && b == "6"));
    assert!(transfers
        .iter()
        .any(|(d, n, b)| d == "OUTPUT" && n.starts_with("temp-") && b == "6"));

    let states = |id: u64| -> Vec<String> {
        by_task[&id]
            .iter()
            .map(|r| match r.words[2].as_str() {
                "READY" => format!("READY {}", r.words[5]),
                "RETRIEVED" | "DONE" => format!("{} {} {}", r.words[2], r.words[3], r.words[4]),
                s => s.to_owned(),
            })
            .collect()
    };
    assert_eq!(
        states(lost),
        [
            "READY 1",
            "RUNNING",
            "READY 2",
            "RUNNING",
            "WAITING_RETRIEVAL",
            "RETRIEVED SUCCESS 0",
            "DONE SUCCESS 0"
        ]
    );
    // Its first attempt ended with its worker.
    let lost_at = recs
        .iter()
        .find(|r| r.words[2] == "DISCONNECTION" && r.words[3] == "UNKNOWN")
        .unwrap()
        .at;
    let running = &by_task[&lost];
    assert!(running[1].at <= lost_at && lost_at <= running[2].at);
    assert_ne!(
        running[1].words[3], running[3].words[3],
        "it ran on another worker"
    );
    let plain = |r: &str, code: i32| {
        vec![
            "READY 1".to_owned(),
            "RUNNING".into(),
            "WAITING_RETRIEVAL".into(),
            format!("RETRIEVED {r} {code}"),
            format!("DONE {r} {code}"),
        ]
    };
    assert_eq!(states(exit3), plain("SUCCESS", 3));
    assert_eq!(states(files), plain("SUCCESS", 0));
    let sig = states(signal);
    assert_eq!(sig[..3], plain("SIGNAL", 9)[..3]);
    assert!(sig[3].starts_with("RETRIEVED SIGNAL") && sig[4].starts_with("DONE SIGNAL"));
    // A category with a space and a line break stays one word on one line.
    assert_eq!(by_task[&odd][0].words[3], "two_words_TASK_99_DONE");
    assert_eq!(by_task.len(), 5, "no record invented by a category");

    // The performance log: TaskVine's columns, a row at each change.
    let text = std::fs::read_to_string(&perf).unwrap();
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(columns[..3], ["#", "timestamp", "workers_connected"]);
    let done_col = columns.iter().position(|c| *c == "tasks_done").unwrap() - 1;
    let rows: Vec<Vec<i64>> = lines
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r.len(), columns.len() - 1);
    }
    // In time order; at most one a second, but for a first row when a log
    // opens and the last one, at shutdown.
    let n = rows.len();
    assert!(rows.windows(2).all(|w| w[1][0] >= w[0][0]));
    let seconds = (rows[n - 1][0] - rows[0][0]) / 1_000_000;
    assert!(n as i64 <= seconds + 4, "{n} rows in {seconds} s");
    assert_eq!(rows[n - 1][done_col], 5, "the last row counts every task");
}

#[test]
fn logs_that_cannot_be_opened_say_why() {
    let m = Manager::new(Port::None).unwrap();
    let e = m
        .enable_transactions_log(Path::new("/proc/no/such/dir/txn"))
        .unwrap_err();
    assert!(e.to_string().contains("/proc/no/such/dir"), "{e}");
}

#[test]
fn two_managers_never_share_a_log_file() {
    let dir = tempdir();
    let a = Manager::new(Port::None).unwrap();
    let b = Manager::new(Port::None).unwrap();
    let path = dir.join("shared.txn");
    a.enable_transactions_log(&path).unwrap();
    // Each would truncate and interleave the other's records.
    let e = b.enable_transactions_log(&path).unwrap_err();
    assert!(e.to_string().contains("another manager"), "{e}");
    std::os::unix::fs::symlink(&path, dir.join("link")).unwrap();
    assert!(b.enable_perf_log(&dir.join("link")).is_err());
    // The manager that has it may open it again.
    a.enable_transactions_log(&path).unwrap();
    // Once the first is gone, the file is free.
    drop(a);
    b.enable_transactions_log(&path).unwrap();
}

#[test]
fn two_logs_never_share_a_file_and_a_switched_log_keeps_its_own_records() {
    let dir = tempdir();
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    let (a, b) = (dir.join("a.txn"), dir.join("b.txn"));
    m.enable_transactions_log(&a).unwrap();
    // The file the transactions log writes cannot be another log's too,
    // by its name or by a link to it.
    let e = m.enable_perf_log(&a).unwrap_err();
    assert!(e.to_string().contains("transactions log already"), "{e}");
    std::os::unix::fs::symlink(&a, dir.join("link")).unwrap();
    assert!(m.enable_debug_log(&dir.join("link")).is_err());
    m.enable_debug_log(&dir.join("debug")).unwrap();
    // A task's records go to the log open while it ran, even if they were
    // still on their way when the log was switched.
    let id = m
        .submit(Task::command(c"true"))
        .map_err(|(e, _)| e)
        .unwrap();
    assert!(m.wait(Some(Duration::from_secs(120))).is_some());
    m.enable_transactions_log(&b).unwrap();
    m.shutdown().unwrap();
    let task = |path: &Path| {
        let (_, recs) = read_txn(path);
        let id = id.to_string();
        recs.iter()
            .filter(|r| r.words.first().is_some_and(|w| w == "TASK") && r.words.get(1) == Some(&id))
            .count()
    };
    assert!(task(&a) > 0, "the task's records reached its log");
    assert_eq!(task(&b), 0, "none moved to the next log");
}

#[test]
fn the_task_graph_log_draws_each_task_with_the_files_it_reads_and_writes() {
    let dir = tempdir();
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    // Its directory is made; a task submitted before it is not in it.
    let graph = dir.join("graphs/run.dot");
    m.submit(Task::command(c"true"))
        .map_err(|(e, _)| e)
        .unwrap();
    assert!(m.wait(Some(Duration::from_secs(120))).is_some());
    m.enable_taskgraph_log(&graph).unwrap();
    // in "odd".txt -> make -> temp -> use -> out.txt, with a buffer into both.
    let input = dir.join("in \"odd\".txt");
    std::fs::write(&input, "x").unwrap();
    let input = m.declare(File::path(&input, CacheLevel::Task, 0).unwrap());
    let buffer = m.declare(File::buffer(b"b", CacheLevel::Task, 0).unwrap());
    let temp = m.declare(File::temp().unwrap());
    let out = m.declare(File::path(&dir.join("out.txt"), CacheLevel::Task, 0).unwrap());
    let mut make = Task::command(c"cat in b > t");
    make.add_input(Mount::new(input.clone(), "in", 0).unwrap())
        .unwrap();
    make.add_input(Mount::new(buffer.clone(), "b", 0).unwrap())
        .unwrap();
    make.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    let make = m.submit(make).map_err(|(e, _)| e).unwrap();
    let mut usage = Task::command(c"cat t b > o");
    usage
        .add_input(Mount::new(temp.clone(), "t", 0).unwrap())
        .unwrap();
    usage
        .add_input(Mount::new(buffer.clone(), "b", 0).unwrap())
        .unwrap();
    usage
        .add_output(Mount::new(out.clone(), "o", 0).unwrap())
        .unwrap();
    let usage = m.submit(usage).map_err(|(e, _)| e).unwrap();
    for _ in 0..2 {
        let t = m.wait(Some(Duration::from_secs(120))).unwrap();
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    }
    drop(m);
    let text = std::fs::read_to_string(&graph).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "digraph \"vine\" {", "{text}");
    assert_eq!(*lines.last().unwrap(), "}", "{text}");
    let body = &lines[1..lines.len() - 1];
    let file = |f: &std::sync::Arc<File>| format!("\"file-{}\"", f.id());
    let task = |t: u64| format!("\"task-{t}\"");
    let mut want = vec![
        format!("{} [label=\"{make}\"];", task(make)),
        format!("{} [label=\"{usage}\"];", task(usage)),
        format!("{} [shape=box,label=\"in \\\"odd\\\".txt\"];", file(&input)),
        format!("{} [shape=box,label=\"buffer\"];", file(&buffer)),
        format!("{} [shape=box,label=\"temp\"];", file(&temp)),
        format!("{} [shape=box,label=\"out.txt\"];", file(&out)),
        format!("{} -> {};", file(&input), task(make)),
        format!("{} -> {};", file(&buffer), task(make)),
        format!("{} -> {};", task(make), file(&temp)),
        format!("{} -> {};", file(&temp), task(usage)),
        format!("{} -> {};", file(&buffer), task(usage)),
        format!("{} -> {};", task(usage), file(&out)),
    ];
    // Node defaults first; then exactly these, each once.
    let mut got: Vec<String> = body
        .iter()
        .filter(|l| !l.starts_with("node "))
        .map(|l| l.to_string())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{text}");
}

#[test]
fn a_task_cancelled_while_held_ahead_at_its_worker_is_retrieved_and_done_cancelled() {
    let dir = tempdir();
    let go = dir.join("go");
    let log = dir.join("txn");
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    m.tune("prefetch", 1.0).unwrap();
    // The running task is left to run this long at shutdown.
    m.tune("shutdown-timeout", 1.0).unwrap();
    m.enable_transactions_log(&log).unwrap();
    let submit = |command: &str| {
        let c = CString::new(command).unwrap();
        m.submit(Task::command(&c)).map_err(|(e, _)| e).unwrap()
    };
    let held_ahead = |what: &str| {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = m.stats().unwrap();
            if (s.tasks_running, s.tasks_on_workers) == (1, 2) {
                return;
            }
            assert!(std::time::Instant::now() < end, "never held: {what}: {s:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let running = submit(&format!(
        "while [ ! -e {} ]; do sleep 0.02; done",
        go.display()
    ));
    // Given to the pool, behind the running task: cancelled there.
    let cancelled = submit("true");
    held_ahead("the task to cancel");
    m.cancel(cancelled).unwrap();
    let t = m
        .wait_for(vine::Want::Id(cancelled), Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(t.result(), TaskResult::Cancelled);
    // Held likewise when the manager shuts down.
    let at_shutdown = submit("true");
    held_ahead("the task left at shutdown");
    drop(m);

    let (_, recs) = read_txn(&log);
    for id in [cancelled, at_shutdown] {
        let ends: Vec<String> = recs
            .iter()
            .filter(|r| r.words[0] == "TASK" && r.words[1] == id.to_string())
            .filter(|r| r.words[2] == "RETRIEVED" || r.words[2] == "DONE")
            .map(|r| format!("{} {}", r.words[2], r.words[3]))
            .collect();
        assert_eq!(ends, ["RETRIEVED CANCELLED", "DONE CANCELLED"], "task {id}");
        // Held ahead, never started: never RUNNING.
        assert!(
            !recs.iter().any(|r| r.words[0] == "TASK"
                && r.words[1] == id.to_string()
                && r.words[2] == "RUNNING"),
            "task {id} RUNNING"
        );
    }
    assert!(recs
        .iter()
        .any(|r| r.words[0] == "TASK" && r.words[1] == running.to_string()));
}

unsafe extern "C" fn nothing(
    _: *const std::ffi::c_void,
    _: usize,
    _: *mut vine::ffi::vine_buffer,
    _: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    0
}

#[test]
fn the_tasks_running_on_a_worker_at_once_in_the_log_fit_its_cores() {
    let dir = tempdir();
    let log = dir.join("txn");
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 2.0).unwrap();
    m.enable_transactions_log(&log).unwrap();
    // More than the pool runs at once: most are held ahead at it.
    let n = 2000;
    for _ in 0..n {
        m.submit(Task::local(nothing, 0, &[]))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    for _ in 0..n {
        assert_eq!(
            m.wait(Some(Duration::from_secs(120))).unwrap().result(),
            TaskResult::Success
        );
    }
    drop(m);
    let (_, recs) = read_txn(&log);
    let mut running = std::collections::HashSet::new();
    let mut most = 0;
    let mut started = 0;
    for r in recs.iter().filter(|r| r.words[0] == "TASK") {
        match r.words[2].as_str() {
            "RUNNING" => {
                assert!(running.insert(r.words[1].clone()), "twice: {:?}", r.words);
                started += 1;
                most = most.max(running.len());
            }
            "RETRIEVED" | "READY" | "DONE" => {
                running.remove(&r.words[1]);
            }
            _ => {}
        }
    }
    assert_eq!(started, n, "every task RUNNING once");
    assert!(most <= 2, "{most} tasks RUNNING at once on 2 cores");
}

#[test]
fn a_task_submitted_after_a_line_of_the_program_is_logged_after_it() {
    // The manager thread may be in the middle of a round (here: the one the
    // log's opening began) when the tasks are submitted; their records carry
    // the time the manager takes them, never the time that round began.
    let dir = tempdir();
    for run in 0..200 {
        let log = dir.join(format!("txn-{run}"));
        let m = Manager::new(Port::None).unwrap();
        m.tune("local-cores", 1.0).unwrap();
        m.enable_transactions_log(&log).unwrap();
        m.log_txn_app("before");
        for _ in 0..5 {
            m.submit(Task::local(nothing, 0, &[]))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        while m.wait(Some(Duration::from_secs(60))).is_some() {}
        drop(m);
        let (_, recs) = read_txn(&log);
        let app = recs
            .iter()
            .position(|r| r.words[0] == "APPLICATION")
            .unwrap_or_else(|| panic!("run {run}: no line of the program"));
        let first_task = recs.iter().position(|r| r.words[0] == "TASK").unwrap();
        assert!(
            app < first_task,
            "run {run}: a task is logged at {}, before the program's line at {}",
            recs[first_task].at,
            recs[app].at
        );
    }
}

#[test]
fn a_log_switched_right_after_submissions_leaves_their_records_in_the_old_one() {
    let dir = tempdir();
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    let (a, b, graph) = (dir.join("a.txn"), dir.join("b.txn"), dir.join("g.dot"));
    m.enable_transactions_log(&a).unwrap();
    let ids: Vec<u64> = (0..300)
        .map(|_| {
            m.submit(Task::command(c"true"))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    // Submitted before the switch: their READY is in the old log, and the
    // graph begun now does not draw them.
    m.enable_transactions_log(&b).unwrap();
    m.enable_taskgraph_log(&graph).unwrap();
    let after = m
        .submit(Task::command(c"true"))
        .map_err(|(e, _)| e)
        .unwrap();
    for _ in 0..=ids.len() {
        assert!(m.wait(Some(Duration::from_secs(120))).is_some());
    }
    drop(m);
    let ready = |path: &Path| -> Vec<u64> {
        let (_, recs) = read_txn(path);
        recs.iter()
            .filter(|r| r.words.first().is_some_and(|w| w == "TASK") && r.words[2] == "READY")
            .map(|r| r.words[1].parse().unwrap())
            .collect()
    };
    assert_eq!(ready(&a), ids);
    assert_eq!(ready(&b), [after]);
    let text = std::fs::read_to_string(&graph).unwrap();
    let drawn: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("\"task-") && l.contains("[label="))
        .collect();
    assert_eq!(
        drawn,
        [format!("\"task-{after}\" [label=\"{after}\"];")],
        "{text}"
    );
}

#[test]
fn a_change_the_one_a_second_bound_held_back_is_written_once_the_second_is_over() {
    let dir = tempdir();
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 2.0).unwrap();
    let perf = dir.join("perf");
    m.enable_perf_log(&perf).unwrap();
    // A command that ends once the test makes its gate file, and one that
    // ends at once.
    let gate = dir.join("gate");
    let wait = format!("while [ ! -e '{}' ]; do sleep 0.05; done", gate.display());
    let blocked = m
        .submit(Task::command(&CString::new(wait).unwrap()))
        .map_err(|(e, _)| e)
        .unwrap();
    let done = m
        .submit(Task::command(c"true"))
        .map_err(|(e, _)| e)
        .unwrap();
    let t = m.wait(Some(Duration::from_secs(120))).unwrap();
    assert_eq!(t.id(), done);
    // Nothing changes after this (the other task holds its core): the row
    // that counts the finished task is not left for a later change to bring.
    let header = std::fs::read_to_string(&perf).unwrap();
    // The header names the columns after its '#'.
    let col = header
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .skip(1)
        .position(|c| c == "tasks_done")
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        m.sync_logs();
        let text = std::fs::read_to_string(&perf).unwrap();
        let counted = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.split(' ').nth(col).and_then(|v| v.parse::<i64>().ok()) == Some(1));
        if counted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no row counts the task:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        m.wait(Some(Duration::from_secs(120))).unwrap().id(),
        blocked
    );
}

/// Run by the test below in a process of its own, which exits without
/// deleting its manager.
#[test]
fn zz_exits_without_deleting_its_manager_entry() {
    use vine::ffi::logs::{vine_enable_perf_log, vine_enable_taskgraph_log};
    use vine::ffi::manager::{vine_create, vine_submit, vine_tune, vine_wait};
    use vine::ffi::task::{vine_task_create, vine_task_delete};
    let Ok(dir) = std::env::var("VINE_TEST_EXIT_LOGS") else {
        return;
    };
    let perf = CString::new(format!("{dir}/perf")).unwrap();
    let graph = CString::new(format!("{dir}/graph.dot")).unwrap();
    let m = vine_create(vine::ffi::VINE_PORT_NONE);
    assert!(!m.is_null());
    unsafe {
        assert_eq!(vine_tune(m, c"local-cores".as_ptr(), 2.0), 0);
        assert_eq!(vine_enable_perf_log(m, perf.as_ptr()), 1);
        assert_eq!(vine_enable_taskgraph_log(m, graph.as_ptr()), 1);
        for _ in 0..4 {
            assert!(vine_submit(m, vine_task_create(c"true".as_ptr())) > 0);
        }
        for _ in 0..4 {
            let t = vine_wait(m, 120);
            assert!(!t.is_null());
            vine_task_delete(t);
        }
    }
    std::process::exit(0);
}

/// Run by the test below in a process of its own: makes a manager, runs no
/// command (so no guardian process is started) and exits.
#[test]
fn zz_exits_with_a_manager_and_nothing_else_entry() {
    if std::env::var_os("VINE_TEST_EXIT_SCRATCH").is_none() {
        return;
    }
    let m = vine::ffi::manager::vine_create(vine::ffi::VINE_PORT_NONE);
    assert!(!m.is_null());
    std::process::exit(0);
}

#[test]
fn a_program_that_exits_without_deleting_its_manager_leaves_no_scratch_directory() {
    let dir = tempdir();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "zz_exits_with_a_manager_and_nothing_else_entry"])
        .args(["--nocapture", "--test-threads=1"])
        .env("VINE_TEST_EXIT_SCRATCH", "1")
        .env("TMPDIR", &tmp)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    // Removed by vine's exit handler before the process ended.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_program_that_exits_without_deleting_its_manager_still_gets_whole_logs() {
    let dir = tempdir();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "zz_exits_without_deleting_its_manager_entry"])
        .args(["--nocapture", "--test-threads=1"])
        .env("VINE_TEST_EXIT_LOGS", &*dir)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let graph = std::fs::read_to_string(dir.join("graph.dot")).unwrap();
    assert!(graph.ends_with("}\n"), "the graph is not closed:\n{graph}");
    assert_eq!(graph.matches("[label=").count(), 4, "{graph}");
    let perf = std::fs::read_to_string(dir.join("perf")).unwrap();
    let mut lines = perf.lines();
    let col = lines
        .next()
        .unwrap()
        .split(' ')
        .skip(1)
        .position(|c| c == "tasks_done")
        .unwrap();
    let last = lines.last().expect("a row");
    assert_eq!(last.split(' ').nth(col), Some("4"), "{perf}");
}
