//! Reading a transactions log (TaskVine's format, which vine writes too) into
//! the attempts of one manager run.
//!
//! The log is input, not trusted: a line that cannot be read (not UTF-8, too
//! long, a bad number, a missing field) is skipped and counted, never a panic.
//! Memory grows with the tasks and workers of the run kept, never with more
//! than one line at a time beyond that.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead};

use serde_json::Value;

/// Lines longer than this are skipped (a log line of vine's or TaskVine's is a
/// few hundred bytes; a longer one is damage, and reading it whole would let a
/// single line take any amount of memory).
pub const MAX_LINE: usize = 1 << 20;

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Retrieved with result SUCCESS.
    Success,
    /// Retrieved (or finished by DONE) with another result.
    Failed(String),
    /// Its worker disconnected (or the task was made ready again) before the
    /// result was retrieved.
    Lost,
    /// Still running when the run's log ends.
    Unfinished,
    /// Never ran, and nothing else is known (for example still waiting at the end).
    NotRun,
}

/// One attempt of a task: from a READY (or WAITING) record to its result.
#[derive(Clone, Debug, Default)]
pub struct Attempt {
    /// The attempt number the log gives (after the allocation word), if any.
    pub number: Option<u64>,
    pub ready_us: Option<i64>,
    pub running_us: Option<i64>,
    pub worker: Option<String>,
    /// From the measured resources of RETRIEVED, in microseconds since the epoch.
    pub worker_start_us: Option<i64>,
    pub worker_end_us: Option<i64>,
    pub retrieved_us: Option<i64>,
    pub result: Option<String>,
    pub exit_code: Option<i64>,
    /// When the attempt was closed without a result: its worker's
    /// DISCONNECTION, a new READY, or DONE.
    pub closed_us: Option<i64>,
    pub lost: bool,
}

impl Attempt {
    pub fn ran(&self) -> bool {
        self.running_us.is_some()
    }

    fn open(&self) -> bool {
        self.retrieved_us.is_none() && self.closed_us.is_none()
    }

    /// Where the attempt starts on the timeline (µs since the epoch).
    pub fn start_us(&self) -> Option<i64> {
        let running = self.running_us?;
        Some(self.worker_start_us.unwrap_or(running))
    }

    /// Where the attempt ends on the timeline, `run_end` for one still open.
    pub fn end_us(&self, run_end: i64) -> Option<i64> {
        let start = self.start_us()?;
        let end = self
            .worker_end_us
            .or(self.retrieved_us)
            .or(self.closed_us)
            .unwrap_or(run_end);
        Some(end.max(start))
    }

    /// Worker end - worker start, else RUNNING to RETRIEVED; only for an
    /// attempt whose result came back.
    pub fn duration_us(&self) -> Option<i64> {
        self.retrieved_us?;
        match (self.worker_start_us, self.worker_end_us) {
            (Some(s), Some(e)) if e >= s => Some(e.saturating_sub(s)),
            _ => Some(self.retrieved_us?.saturating_sub(self.running_us?).max(0)),
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.lost {
            return Outcome::Lost;
        }
        match &self.result {
            Some(r) if r == "SUCCESS" => Outcome::Success,
            Some(r) => Outcome::Failed(r.clone()),
            None if self.ran() => Outcome::Unfinished,
            None => Outcome::NotRun,
        }
    }

    /// When the attempt stopped waiting (RUNNING, or closed without running).
    pub fn wait_end_us(&self, run_end: i64) -> Option<i64> {
        let ready = self.ready_us?;
        let end = self
            .running_us
            .or(self.closed_us)
            .or(self.retrieved_us)
            .unwrap_or(run_end);
        Some(end.max(ready))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Task {
    pub id: String,
    pub category: String,
    pub attempts: Vec<Attempt>,
    /// The DONE record: its result and exit code.
    pub done: Option<(String, Option<i64>)>,
}

#[derive(Clone, Debug, Default)]
pub struct Worker {
    pub id: String,
    pub host: Option<String>,
    pub connected_us: Option<i64>,
    pub disconnected_us: Option<i64>,
    pub disconnect_reason: Option<String>,
    pub cores: Option<f64>,
}

/// One manager run: the records from a MANAGER START to its END.
#[derive(Debug, Default)]
pub struct Run {
    /// The START record's time; the first record's for a log without START.
    pub origin_us: i64,
    pub has_start: bool,
    /// The END record's time, if the run has one.
    pub end_us: Option<i64>,
    /// The latest time of any record of the run.
    pub last_us: i64,
    pub records: u64,
    pub task_records: u64,
    /// Tasks and workers in the order they first appear.
    pub tasks: Vec<Task>,
    pub workers: Vec<Worker>,
    task_index: HashMap<String, usize>,
    worker_index: HashMap<String, usize>,
    /// Per worker, the tasks whose last attempt runs there and is still open.
    open_on: HashMap<String, HashSet<usize>>,
}

/// What a whole log holds: the run chosen for the report, and what was left.
#[derive(Debug, Default)]
pub struct Log {
    pub run: Run,
    /// Runs (MANAGER START blocks, and records before the first START) in the file.
    pub runs: usize,
    /// 1-based position of the reported run among them.
    pub run_number: usize,
    /// A later run without END was left out for the chosen one.
    pub later_incomplete_left_out: bool,
    /// Lines skipped as unreadable, and why (first few reasons kept).
    pub skipped: u64,
    pub skipped_examples: Vec<String>,
    /// Records read whose JSON tail could not be parsed (the record itself was used).
    pub bad_json: u64,
    pub comments: u64,
    /// Records of kinds this report does not use.
    pub ignored: u64,
}

impl Run {
    fn new(origin_us: i64, has_start: bool) -> Run {
        Run {
            origin_us,
            has_start,
            last_us: origin_us,
            ..Run::default()
        }
    }

    /// The time the run ends: END, else the last record.
    pub fn run_end_us(&self) -> i64 {
        self.end_us.unwrap_or(self.last_us).max(self.origin_us)
    }

    fn worker(&mut self, id: &str) -> &mut Worker {
        let n = self.workers.len();
        let i = *self.worker_index.entry(id.to_string()).or_insert(n);
        if i == n {
            self.workers.push(Worker {
                id: id.to_string(),
                ..Worker::default()
            });
        }
        &mut self.workers[i]
    }

    fn task(&mut self, id: &str) -> usize {
        let n = self.tasks.len();
        let i = *self.task_index.entry(id.to_string()).or_insert(n);
        if i == n {
            self.tasks.push(Task {
                id: id.to_string(),
                ..Task::default()
            });
        }
        i
    }

    /// Closes the open last attempt of task `t` without a result, as lost.
    fn lose(&mut self, t: usize, at: i64) {
        if let Some(a) = self.tasks[t].attempts.last_mut() {
            if a.ran() && a.open() {
                a.closed_us = Some(at);
                a.lost = true;
                if let Some(w) = &a.worker {
                    if let Some(set) = self.open_on.get_mut(w) {
                        set.remove(&t);
                    }
                }
            }
        }
    }

    fn unlist(&mut self, t: usize) {
        if let Some(w) = self.tasks[t].attempts.last().and_then(|a| a.worker.clone()) {
            if let Some(set) = self.open_on.get_mut(&w) {
                set.remove(&t);
            }
        }
    }
}

/// Why a line was skipped.
type Skip = &'static str;

/// Everything after the first `n` whitespace-separated fields of `line`.
fn rest_after(line: &str, n: usize) -> &str {
    let mut s = line;
    for _ in 0..n {
        s = s.trim_start();
        match s.find(char::is_whitespace) {
            Some(i) => s = &s[i..],
            None => return "",
        }
    }
    s.trim_start()
}

/// The JSON values one after another in `s` (objects may hold spaces). Stops at
/// the first that does not parse; `bad` tells whether that happened.
fn json_values(s: &str, max: usize) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(s).into_iter::<Value>();
    while out.len() < max {
        match stream.next() {
            Some(Ok(v)) => out.push(v),
            Some(Err(_)) => return (out, true),
            None => break,
        }
    }
    (out, false)
}

/// A time in seconds from a measured-resources entry: `[number,"unit"]` or a
/// bare number, as microseconds.
fn json_time_us(v: &Value, key: &str) -> Option<i64> {
    let e = v.get(key)?;
    let (x, unit) = match e {
        Value::Array(a) => (a.first()?.as_f64()?, a.get(1).and_then(Value::as_str)),
        other => (other.as_f64()?, None),
    };
    let us = match unit {
        Some("us") => x,
        Some("ms") => x * 1e3,
        _ => x * 1e6,
    };
    // Zero means "not known" in TaskVine's records; reject what no clock says.
    if !us.is_finite() || us <= 0.0 || us > 1e17 {
        return None;
    }
    Some(us.round() as i64)
}

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<i64>() {
        return Some(t);
    }
    let f: f64 = s.parse().ok()?;
    if f.is_finite() && f.abs() < 9e18 {
        Some(f as i64)
    } else {
        None
    }
}

fn parse_exit(s: Option<&&str>) -> Option<i64> {
    s.and_then(|s| s.parse::<i64>().ok())
}

/// Reads the log. Errors are only those of reading the file itself.
pub fn read_log<R: BufRead>(mut input: R) -> io::Result<Log> {
    let mut log = Log::default();
    let mut current: Option<Run> = None;
    let mut last_complete: Option<(Run, usize)> = None;
    let mut buf = Vec::new();
    loop {
        match read_line(&mut input, &mut buf)? {
            LineRead::Eof => break,
            LineRead::TooLong => {
                skip(&mut log, "a line longer than 1 MiB");
                continue;
            }
            LineRead::CutShort => {
                // What a killed program leaves: its words may be cut anywhere
                // (a result `SUC`, a worker `worker-`), so none is trusted.
                skip(
                    &mut log,
                    "a last line with no end (the program was killed?)",
                );
                continue;
            }
            LineRead::Line => {}
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(l) => l,
            Err(_) => {
                skip(&mut log, "a line that is not UTF-8");
                continue;
            }
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            log.comments += 1;
            continue;
        }
        let f: Vec<&str> = trimmed.split_whitespace().collect();
        if f.len() < 3 {
            skip(&mut log, "a record with fewer than 3 fields");
            continue;
        }
        let Some(t) = parse_time(f[0]) else {
            skip(&mut log, "a record whose time is not a number");
            continue;
        };
        // A new run starts at each MANAGER START.
        if f[2] == "MANAGER" && f.get(4) == Some(&"START") {
            if let Some(run) = current.take() {
                log.runs += 1;
                if run.end_us.is_some() {
                    last_complete = Some((run, log.runs));
                }
            }
            current = Some(Run::new(t, true));
            continue;
        }
        let run = current.get_or_insert_with(|| Run::new(t, false));
        match record(run, t, trimmed, &f) {
            Ok(Used::Yes) => {
                run.records += 1;
                run.last_us = run.last_us.max(t);
            }
            Ok(Used::Ignored) => {
                run.records += 1;
                run.last_us = run.last_us.max(t);
                log.ignored += 1;
            }
            Ok(Used::BadJson) => {
                run.records += 1;
                run.last_us = run.last_us.max(t);
                log.bad_json += 1;
            }
            Err(why) => skip(&mut log, why),
        }
    }
    let last = current.take();
    if last.is_some() {
        log.runs += 1;
    }
    match (last, last_complete) {
        (Some(run), _) if run.end_us.is_some() => {
            log.run = run;
            log.run_number = log.runs;
        }
        (Some(_), Some((run, n))) => {
            log.run = run;
            log.run_number = n;
            log.later_incomplete_left_out = true;
        }
        (Some(run), None) => {
            log.run = run;
            log.run_number = log.runs;
        }
        (None, Some((run, n))) => {
            log.run = run;
            log.run_number = n;
        }
        (None, None) => {}
    }
    Ok(log)
}

fn skip(log: &mut Log, why: Skip) {
    log.skipped += 1;
    if log.skipped_examples.len() < 5 && !log.skipped_examples.iter().any(|w| w == why) {
        log.skipped_examples.push(why.to_string());
    }
}

enum Used {
    Yes,
    Ignored,
    BadJson,
}

fn record(run: &mut Run, t: i64, line: &str, f: &[&str]) -> Result<Used, Skip> {
    match f[2] {
        "MANAGER" => {
            if f.get(4) == Some(&"END") {
                run.end_us = Some(t);
                Ok(Used::Yes)
            } else {
                Ok(Used::Ignored)
            }
        }
        "WORKER" => worker_record(run, t, line, f),
        "TASK" => {
            let r = task_record(run, t, line, f);
            if r.is_ok() {
                run.task_records += 1;
            }
            r
        }
        _ => Ok(Used::Ignored),
    }
}

fn worker_record(run: &mut Run, t: i64, line: &str, f: &[&str]) -> Result<Used, Skip> {
    let (Some(id), Some(kind)) = (f.get(3), f.get(4)) else {
        return Err("a WORKER record without worker or event");
    };
    match *kind {
        "CONNECTION" => {
            let w = run.worker(id);
            w.connected_us.get_or_insert(t);
            w.host = f.get(5).map(|s| s.to_string());
            Ok(Used::Yes)
        }
        "DISCONNECTION" => {
            let w = run.worker(id);
            w.disconnected_us = Some(t);
            w.disconnect_reason = f.get(5).map(|s| s.to_string());
            let open: Vec<usize> = run
                .open_on
                .remove(*id)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            for task in open {
                run.lose(task, t);
            }
            Ok(Used::Yes)
        }
        "RESOURCES" => {
            let (v, bad) = json_values(rest_after(line, 5), 1);
            let cores = v
                .first()
                .and_then(|v| v.get("cores"))
                .and_then(|c| match c {
                    Value::Array(a) => a.first().and_then(Value::as_f64),
                    other => other.as_f64(),
                });
            let w = run.worker(id);
            if cores.is_some() {
                w.cores = cores;
            }
            Ok(if bad { Used::BadJson } else { Used::Yes })
        }
        _ => Ok(Used::Ignored),
    }
}

fn task_record(run: &mut Run, t: i64, line: &str, f: &[&str]) -> Result<Used, Skip> {
    let (Some(id), Some(kind)) = (f.get(3), f.get(4)) else {
        return Err("a TASK record without id or state");
    };
    match *kind {
        "READY" | "WAITING" => {
            let Some(category) = f.get(5) else {
                return Err("a TASK READY record without category");
            };
            let number = f.get(7).and_then(|s| s.parse::<u64>().ok());
            let ti = run.task(id);
            // An attempt still running is over: it is lost. One still
            // waiting stops waiting here.
            run.lose(ti, t);
            let task = &mut run.tasks[ti];
            if let Some(a) = task.attempts.last_mut() {
                if !a.ran() && a.open() {
                    a.closed_us = Some(t);
                }
            }
            task.category = category.to_string();
            task.attempts.push(Attempt {
                number,
                ready_us: Some(t),
                ..Attempt::default()
            });
            Ok(Used::Yes)
        }
        "RUNNING" => {
            let Some(worker) = f.get(5) else {
                return Err("a TASK RUNNING record without worker");
            };
            let ti = run.task(id);
            // RUNNING twice, or without READY: a new attempt with no wait.
            run.lose(ti, t);
            let task = &mut run.tasks[ti];
            let needs_new = match task.attempts.last() {
                Some(a) => a.ran() || !a.open(),
                None => true,
            };
            if needs_new {
                task.attempts.push(Attempt::default());
            }
            let a = task
                .attempts
                .last_mut()
                .expect("an attempt was just ensured");
            a.running_us = Some(t);
            a.worker = Some(worker.to_string());
            run.worker(worker);
            run.open_on
                .entry(worker.to_string())
                .or_default()
                .insert(ti);
            Ok(Used::Yes)
        }
        "WAITING_RETRIEVAL" => Ok(Used::Yes),
        "RETRIEVED" => {
            let Some(result) = f.get(5) else {
                return Err("a TASK RETRIEVED record without result");
            };
            let exit = parse_exit(f.get(6));
            let (values, bad) = json_values(rest_after(line, 7), 2);
            let ti = run.task(id);
            run.unlist(ti);
            let task = &mut run.tasks[ti];
            if task.attempts.last().is_none_or(|a| !a.open()) {
                if task.attempts.last().is_some_and(|a| a.lost) {
                    // The result of an attempt already given up as lost.
                    return Ok(Used::Ignored);
                }
                task.attempts.push(Attempt::default());
            }
            let a = task
                .attempts
                .last_mut()
                .expect("an attempt was just ensured");
            a.retrieved_us = Some(t);
            a.result = Some(result.to_string());
            a.exit_code = exit;
            if let Some(m) = values.get(1) {
                a.worker_start_us = json_time_us(m, "time_worker_start");
                a.worker_end_us = json_time_us(m, "time_worker_end");
                // A worker's clock an hour or more off the manager's is not
                // believed: the manager's own times stand in.
                const SKEW_US: i64 = 3_600_000_000;
                let earliest = a.running_us.unwrap_or(t).saturating_sub(SKEW_US);
                let latest = t.saturating_add(SKEW_US);
                let sane = |x: &i64| (earliest..=latest).contains(x);
                a.worker_start_us = a.worker_start_us.filter(sane);
                a.worker_end_us = a.worker_end_us.filter(sane);
                if let (Some(s), Some(e)) = (a.worker_start_us, a.worker_end_us) {
                    if e < s {
                        a.worker_end_us = None;
                    }
                }
            }
            Ok(if bad { Used::BadJson } else { Used::Yes })
        }
        "DONE" => {
            let Some(result) = f.get(5) else {
                return Err("a TASK DONE record without result");
            };
            let exit = parse_exit(f.get(6));
            let ti = run.task(id);
            run.unlist(ti);
            let task = &mut run.tasks[ti];
            task.done = Some((result.to_string(), exit));
            if let Some(a) = task.attempts.last_mut() {
                if a.open() {
                    // Finished without a retrieved result (cancelled, or given
                    // up on): the attempt ends here with the task's result.
                    a.closed_us = Some(t);
                    a.result = Some(result.to_string());
                    a.exit_code = exit;
                }
            }
            Ok(Used::Yes)
        }
        _ => Ok(Used::Ignored),
    }
}

enum LineRead {
    Line,
    TooLong,
    /// The last line, with no newline at its end.
    CutShort,
    Eof,
}

/// Reads one line into `buf` (without its newline), never holding more than
/// [`MAX_LINE`] bytes of it: the rest of a longer line is read and dropped.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    let mut ended = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, done, used) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true, i + 1),
            None => (chunk, false, chunk.len()),
        };
        if !too_long {
            if buf.len() + part.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        input.consume(used);
        if done {
            ended = true;
            break;
        }
    }
    if !any {
        return Ok(LineRead::Eof);
    }
    if !ended && !too_long {
        return Ok(LineRead::CutShort);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(if too_long {
        LineRead::TooLong
    } else {
        LineRead::Line
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Log {
        read_log(s.as_bytes()).unwrap()
    }

    #[test]
    fn json_tail_with_spaces() {
        let log = read(
            "1000000 1 MANAGER 1 START 0\n\
             1000001 1 TASK 1 READY c FIRST_RESOURCES 1 {\"cores\": [1, \"cores\"]}\n\
             1000002 1 TASK 1 RUNNING w1  FIRST_RESOURCES {\"cores\": [1, \"cores\"]}\n\
             1000010 1 TASK 1 RETRIEVED SUCCESS 0 {} {\"time_worker_start\": [1.000003, \"s\"], \"time_worker_end\": [1.000008, \"s\"]}\n\
             1000011 1 TASK 1 DONE SUCCESS 0\n\
             1000012 1 MANAGER 1 END 12\n",
        );
        let a = &log.run.tasks[0].attempts[0];
        assert_eq!(a.worker_start_us, Some(1000003));
        assert_eq!(a.worker_end_us, Some(1000008));
        assert_eq!(a.duration_us(), Some(5));
        assert_eq!(a.outcome(), Outcome::Success);
        assert_eq!(log.bad_json, 0);
    }

    #[test]
    fn a_duration_between_extreme_times_does_not_wrap() {
        let a = Attempt {
            running_us: Some(i64::MIN),
            retrieved_us: Some(i64::MAX),
            ..Default::default()
        };
        assert_eq!(a.duration_us(), Some(i64::MAX));
    }

    #[test]
    fn hostile_lines_are_skipped() {
        let mut s = b"1 1 MANAGER 1 START 0\nxx 1 TASK 1 READY c\n\xff\xfe 1 TASK\n1 1\n".to_vec();
        s.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        s.extend_from_slice(b"\n2 1 TASK 1 RETRIEVED SUCCESS 0 {\"a\":[1e999999,\"s\"]} {broken\n");
        let log = read_log(&s[..]).unwrap();
        assert_eq!(log.skipped, 4);
        assert_eq!(log.bad_json, 1);
        assert_eq!(log.run.tasks.len(), 1);
    }

    #[test]
    fn a_last_line_cut_short_is_skipped_not_read() {
        let whole = "1 1 MANAGER 1 START 0\n\
                     2 1 TASK 1 READY c FIRST_RESOURCES 1 {}\n\
                     3 1 TASK 1 RUNNING w1 FIRST_RESOURCES {}\n\
                     4 1 TASK 1 RETRIEVED SUCCESS 0 {} {}\n";
        // Cut where a killed writer may have stopped: in a result, a
        // worker's name.
        for cut in ["4 1 TASK 1 RETRIEVED SUC", "3 1 TASK 1 RUNNING w"] {
            let at = whole.find(cut).unwrap() + cut.len();
            let log = read(&whole[..at]);
            assert_eq!(log.skipped, 1, "{cut}");
            let attempts = &log.run.tasks[0].attempts;
            assert!(attempts.iter().all(|a| a.worker.as_deref() != Some("w")));
            assert!(attempts.iter().all(|a| a.result.as_deref() != Some("SUC")));
        }
        assert_eq!(read(whole).skipped, 0);
    }

    #[test]
    fn last_complete_run() {
        let log = read(
            "1 1 MANAGER 1 START 0\n2 1 TASK 1 READY a FIRST_RESOURCES 1 {}\n3 1 MANAGER 1 END 2\n\
             10 1 MANAGER 1 START 0\n11 1 TASK 9 READY b FIRST_RESOURCES 1 {}\n12 1 MANAGER 1 END 2\n\
             20 1 MANAGER 1 START 0\n21 1 TASK 5 READY c FIRST_RESOURCES 1 {}\n",
        );
        assert_eq!(log.runs, 3);
        assert_eq!(log.run_number, 2);
        assert!(log.later_incomplete_left_out);
        assert_eq!(log.run.tasks[0].id, "9");
        assert_eq!(log.run.origin_us, 10);
    }
}
