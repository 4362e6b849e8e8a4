//! `vine_status HOST PORT [--tasks|--workers|--json] [--password FILE] [--ssl ...]`:
//! asks a running manager for its state over its port, authenticated as a worker
//! would be, and prints it.

use serde_json::Value;

const USAGE: &str = "\
usage: vine_status HOST PORT|HOST:PORT [--tasks | --workers | --json] [options]

Asks the vine manager at HOST:PORT for its state and prints it: tasks by state,
workers with their resources and tasks, and the largest waiting task with the
workers that could hold it.

  --tasks              only the tasks
  --workers            only the workers
  --json               everything, as JSON
  -P, --password FILE  the manager's password file (when it has one)
  --ssl                connect with TLS (also --ssl-fingerprint FP, --ssl-ca PEM)
  --timeout S          give up after S seconds (default 10)
  -h, --help           this text
";

#[derive(PartialEq)]
enum Show {
    All,
    Tasks,
    Workers,
    Json,
}

fn main() {
    std::process::exit(run(std::env::args().collect()));
}

fn run(args: Vec<String>) -> i32 {
    let mut show = Show::All;
    let mut rest = vec!["vine_status".to_owned()];
    let mut timeout = false;
    let mut positional = 0;
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        // The options it shares with vine_worker are read by the worker's
        // parser; any other option is refused here, with this usage.
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n).to_owned();
        match name.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            "--tasks" | "--workers" | "--json" => {
                let chosen = match name.as_str() {
                    "--tasks" => Show::Tasks,
                    "--workers" => Show::Workers,
                    _ => Show::Json,
                };
                // One view: a second, different one would silently win.
                if show != Show::All && show != chosen {
                    eprintln!("vine_status: --tasks, --workers and --json exclude each other");
                    eprint!("{USAGE}");
                    return 2;
                }
                show = chosen;
            }
            "--ssl" => rest.push(a),
            "-P" | "--password" | "--ssl-fingerprint" | "--ssl-ca" | "--timeout" => {
                timeout |= name == "--timeout";
                let inline = a.contains('=');
                rest.push(a);
                if !inline {
                    let Some(v) = args.next() else {
                        eprint!("{USAGE}");
                        return 2;
                    };
                    rest.push(v);
                }
            }
            _ if a.starts_with('-') && a.len() > 1 => {
                eprintln!("vine_status: unknown option {a}");
                eprint!("{USAGE}");
                return 2;
            }
            _ => {
                positional += 1;
                rest.push(a);
            }
        }
    }
    if !(1..=2).contains(&positional) {
        eprint!("{USAGE}");
        return 2;
    }
    if !timeout {
        rest.extend(["--timeout".to_owned(), "10".to_owned()]);
    }
    let opts = match vine::worker::daemon::WorkerOptions::parse(&rest) {
        Ok(o) => o,
        Err(e) => {
            // The worker's usage names the worker's options: this one's instead.
            let e = e.to_string();
            if let Some((why, _)) = e.split_once("usage: vine_worker") {
                let why = why.trim();
                if !why.is_empty() {
                    eprintln!("vine_status: {why}");
                }
                eprint!("{USAGE}");
            } else {
                eprintln!("vine_status: {e}");
            }
            return 2;
        }
    };
    if opts.timeout.is_zero() {
        // No time at all to answer in: every manager would seem silent.
        eprintln!("vine_status: --timeout must be more than 0 seconds");
        eprint!("{USAGE}");
        return 2;
    }
    let json = match vine::worker::daemon::ask_status(&opts) {
        Ok(j) => j,
        Err(e) => {
            // The error may quote what the manager said.
            eprintln!(
                "vine_status: {}:{}: {}",
                opts.host,
                opts.port,
                shown(&e.to_string())
            );
            return 1;
        }
    };
    let v: Value = match serde_json::from_str(&json) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            eprintln!("vine_status: the manager's answer is not its state (not a JSON object)");
            return 1;
        }
        Err(e) => {
            eprintln!("vine_status: the manager's answer is not JSON: {e}");
            return 1;
        }
    };
    let where_ = format!("{}:{}", opts.host, opts.port);
    let out = match show {
        Show::Json => json_shown(&serde_json::to_string_pretty(&v).unwrap_or(json)) + "\n",
        Show::Tasks => tasks(&v),
        Show::Workers => workers(&v),
        Show::All => format!("{}{}\n{}", header(&v, &where_), tasks(&v), workers(&v)),
    };
    print!("{out}");
    0
}

/// `s` as it may reach a terminal: control characters (C0, DEL and C1, with
/// which a manager could move the cursor, rewrite what is shown, set the
/// window's title or start a new line) are written as `\xNN`. Every string
/// that came from the manager goes through it in the plain views (`--json`
/// escapes them itself).
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out += &format!("\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// JSON text with DEL and the C1 controls inside its strings written as
/// `\uNNNN` (the same JSON: serde escapes C0 controls, but not these, and a
/// terminal may act on them). Outside strings JSON holds no such characters.
fn json_shown(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() && !c.is_ascii_whitespace() {
            out += &format!("\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A value from the manager as text: a string as it is, anything else as
/// JSON; either [`shown`].
fn shown_value(v: &Value) -> String {
    match v.as_str() {
        Some(s) => shown(s),
        None => shown(&v.to_string()),
    }
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(0.0)
}

fn header(v: &Value, where_: &str) -> String {
    let up = (num(v, &["manager", "now"]) - num(v, &["manager", "started"])).max(0.0) as u64;
    let name = match v["manager"]["name"].as_str() {
        Some(name) => format!(" {}", shown(name)),
        None => String::new(),
    };
    format!(
        "manager{name} {where_} (pid {}), up {:02}:{:02}:{:02}\n",
        shown_value(&v["manager"]["pid"]),
        up / 3600,
        up / 60 % 60,
        up % 60
    )
}

fn res(r: &Value) -> String {
    let mut s = format!("{} cores", num(r, &["cores"]));
    for (k, unit) in [
        ("memory", " MB memory"),
        ("disk", " MB disk"),
        ("gpus", " gpus"),
    ] {
        let n = num(r, &[k]);
        if n > 0.0 {
            s += &format!(", {n}{unit}");
        }
    }
    s
}

fn tasks(v: &Value) -> String {
    let t = &v["tasks"];
    let n = |k: &str| num(t, &[k]) as u64;
    let mut s = format!(
        "tasks: {} waiting, {} running, {} on workers, {} with results\n       {} submitted, {} done ({} failed, {} cancelled), {} retried\n",
        n("waiting"),
        n("running"),
        n("on_workers"),
        n("with_results"),
        n("submitted"),
        n("done"),
        n("failed"),
        n("cancelled"),
        n("retried"),
    );
    match v["largest_waiting"].as_object() {
        None => s += "largest waiting task: none\n",
        Some(_) => {
            // Indexing a Value (not its map) gives null for a key it lacks.
            let l = &v["largest_waiting"];
            let able: Vec<String> = l["workers_able"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(shown).collect())
                .unwrap_or_default();
            s += &format!(
                "largest waiting task: {} ({}): {}\n  workers that could hold it: {}\n",
                shown_value(&l["id"]),
                shown(l["category"].as_str().unwrap_or("")),
                res(&l["resources"]),
                if able.is_empty() {
                    "none".to_owned()
                } else {
                    able.join(", ")
                }
            );
        }
    }
    s
}

fn workers(v: &Value) -> String {
    let empty = Vec::new();
    let list = v["workers"].as_array().unwrap_or(&empty);
    let mut s = format!(
        "{:<14} {:<22} {:>11} {:>15} {:>15} {:>5} {:>6}  TASK IDS\n",
        "WORKER", "ADDRESS", "CORES", "MEMORY(MB)", "DISK(MB)", "GPUS", "TASKS"
    );
    for w in list {
        let pair = |k: &str| format!("{}/{}", num(&w["in_use"], &[k]), num(&w["resources"], &[k]));
        let ids: Vec<String> = w["task_ids"]
            .as_array()
            .map(|a| a.iter().map(shown_value).collect())
            .unwrap_or_default();
        let more = num(w, &["tasks"]) as usize > ids.len();
        s += &format!(
            "{:<14} {:<22} {:>11} {:>15} {:>15} {:>5} {:>6}  {}{}{}\n",
            shown(w["id"].as_str().unwrap_or("?")),
            shown(w["addrport"].as_str().unwrap_or("")),
            pair("cores"),
            pair("memory"),
            pair("disk"),
            pair("gpus"),
            num(w, &["tasks"]),
            ids.join(" "),
            if more { " ..." } else { "" },
            if w["draining"].as_bool() == Some(true) {
                " (draining)"
            } else {
                ""
            }
        );
    }
    s
}
