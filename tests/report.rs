//! vine_report on a synthetic transactions log whose tasks are known: the page
//! is self-contained, draws one rectangle per attempt that ran, lists the
//! failures, escapes what the log says, and renders to a picture that is not
//! blank (in headless Chromium, where it is installed).

mod common;

// The lane assignment is a std-only module of the binary; compiled here too so
// it can be checked directly.
#[path = "../src/bin/vine_report/slots.rs"]
mod slots;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const HOSTILE: &str = "<script>x</script>";
/// The manager START of the reported run, in µs since the epoch.
const T0: i64 = 1_733_212_345_000_000;

/// A record at `s` seconds after the run's start.
fn rec(out: &mut String, s: f64, rest: &str) {
    let t = T0 + (s * 1e6).round() as i64;
    out.push_str(&format!("{t} 4242 {rest}\n"));
}

fn measured(start_s: f64, end_s: f64) -> String {
    let abs = |s: f64| (T0 as f64 + s * 1e6) / 1e6;
    format!(
        "{{\"cores\":[1,\"cores\"],\"wall_time\":[{:.6},\"s\"],\"time_worker_start\":[{:.6},\"s\"],\"time_worker_end\":[{:.6},\"s\"]}}",
        end_s - start_s,
        abs(start_s),
        abs(end_s)
    )
}

const RES: &str =
    "{\"cores\":[1,\"cores\"],\"memory\":[100,\"MB\"],\"disk\":[10,\"MB\"],\"gpus\":[0,\"gpus\"]}";

/// One attempt that runs on `worker` from `start` to `end` and comes back with
/// `result`, with (or, for `worker_times == false`, without) the worker's times.
#[allow(clippy::too_many_arguments)]
fn attempt(
    log: &mut String,
    id: u32,
    worker: &str,
    start: f64,
    end: f64,
    result: &str,
    code: i32,
    worker_times: bool,
) {
    rec(
        log,
        start,
        &format!("TASK {id} RUNNING {worker}  FIRST_RESOURCES {RES}"),
    );
    rec(
        log,
        end + 0.05,
        &format!("TASK {id} WAITING_RETRIEVAL {worker}"),
    );
    let m = if worker_times {
        measured(start, end)
    } else {
        "{}".to_string()
    };
    rec(
        log,
        end + 0.1,
        &format!("TASK {id} RETRIEVED {result} {code} {{}} {m}"),
    );
}

/// The log: an earlier complete run (to be left out), then the reported run
/// with 2 workers and 7 tasks in 3 categories, one of them named like a script:
///
/// | task | category | worker | seconds     | outcome                          |
/// |------|----------|--------|-------------|----------------------------------|
/// | 1    | sim      | w1     | 1.0 – 4.0   | SUCCESS                          |
/// | 2    | sim      | w1     | 1.1 – 3.0   | SUCCESS                          |
/// | 3    | analysis | w2     | 1.2 – 3.5   | lost: w2 disconnects at 3.5      |
/// | 3    | analysis | w1     | 4.0 – 6.0   | SUCCESS (second attempt)         |
/// | 4    | HOSTILE  | w2     | 1.3 – 2.5   | SIGNAL, exit 9                   |
/// | 5    | HOSTILE  | w2     | 2.7 – 3.2   | SUCCESS                          |
/// | 6    | sim      | w1     | 3.0 – 5.5   | SUCCESS (no worker times)        |
/// | 7    | analysis | w1     | 6.0 – 7.5   | SUCCESS                          |
///
/// 8 attempts ran; 2 failed (task 3's first, task 4). Each worker has 2 lanes.
fn synthetic_log() -> String {
    let mut log = String::new();
    log.push_str("# time manager_pid MANAGER|TASK|WORKER|CATEGORY|LIBRARY ...\n");
    // An earlier run, complete, whose worker must not appear in the report.
    log.push_str(&format!("{} 4241 MANAGER 4241 START 0\n", T0 - 100_000_000));
    log.push_str(&format!(
        "{} 4241 WORKER old-worker CONNECTION 127.0.0.1:9000\n",
        T0 - 99_000_000
    ));
    log.push_str(&format!(
        "{} 4241 TASK 1 READY old 1 FIRST_RESOURCES 1 {RES}\n",
        T0 - 98_000_000
    ));
    log.push_str(&format!(
        "{} 4241 TASK 1 RUNNING old-worker FIRST_RESOURCES {RES}\n",
        T0 - 97_000_000
    ));
    log.push_str(&format!(
        "{} 4241 TASK 1 RETRIEVED SUCCESS 0 {{}} {{}}\n",
        T0 - 96_000_000
    ));
    log.push_str(&format!(
        "{} 4241 MANAGER 4241 END 5000000\n",
        T0 - 95_000_000
    ));

    let l = &mut log;
    rec(l, 0.0, "MANAGER 4242 START 0");
    rec(l, 0.01, "CATEGORY sim MAX {\"cores\":[1,\"cores\"]}");
    rec(l, 0.1, "WORKER w1 CONNECTION 127.0.0.1:40001");
    rec(l, 0.11, "WORKER w1 RESOURCES {\"cores\":[2,\"cores\"],\"memory\":[1024,\"MB\"],\"disk\":[1000,\"MB\"],\"gpus\":[0,\"gpus\"]}");
    rec(l, 0.2, "WORKER w2 CONNECTION 127.0.0.1:40002");
    rec(l, 0.21, "WORKER w2 RESOURCES {\"cores\":[2,\"cores\"],\"memory\":[1024,\"MB\"],\"disk\":[1000,\"MB\"],\"gpus\":[0,\"gpus\"]}");
    rec(l, 0.3, "APPLICATION some <b>free</b> text");
    rec(
        l,
        0.5,
        &format!("TASK 1 READY sim  FIRST_RESOURCES 1 {RES}"),
    );
    rec(l, 0.5, &format!("TASK 2 READY sim FIRST_RESOURCES 1 {RES}"));
    rec(
        l,
        0.6,
        &format!("TASK 3 READY analysis FIRST_RESOURCES 1 {RES}"),
    );
    rec(
        l,
        0.65,
        &format!("TASK 4 READY {HOSTILE} FIRST_RESOURCES 1 {RES}"),
    );
    rec(
        l,
        0.7,
        &format!("TASK 5 WAITING {HOSTILE} FIRST_RESOURCES 1 {RES}"),
    );
    rec(l, 0.8, &format!("TASK 6 READY sim FIRST_RESOURCES 1 {RES}"));
    rec(
        l,
        0.9,
        &format!("TASK 7 READY analysis FIRST_RESOURCES 1 {RES}"),
    );
    l.push_str("this line is not a record\n");
    l.push_str("12x 4242 TASK 9 READY sim FIRST_RESOURCES 1 {}\n");
    rec(
        l,
        0.95,
        "WORKER w1 TRANSFER INPUT file-1 1000 200 1733212345950000",
    );
    rec(
        l,
        0.96,
        "WORKER w1 CACHE_UPDATE file-1 1000 200 1733212345950000",
    );
    rec(l, 0.97, "LIBRARY lib1 SENT w1");
    rec(l, 0.98, "SOMETHING_NEW with fields");

    attempt(l, 1, "w1", 1.0, 4.0, "SUCCESS", 0, true);
    attempt(l, 2, "w1", 1.1, 3.0, "SUCCESS", 0, true);
    // Task 3's first attempt: w2 disconnects before its result comes back.
    rec(l, 1.2, &format!("TASK 3 RUNNING w2 FIRST_RESOURCES {RES}"));
    attempt(l, 4, "w2", 1.3, 2.5, "SIGNAL", 9, true);
    attempt(l, 5, "w2", 2.7, 3.2, "SUCCESS", 0, true);
    attempt(l, 6, "w1", 3.0, 5.5, "SUCCESS", 0, false);
    rec(l, 3.5, "WORKER w2 DISCONNECTION FAILURE");
    rec(
        l,
        3.6,
        &format!("TASK 3 READY analysis FIRST_RESOURCES 2 {RES}"),
    );
    attempt(l, 3, "w1", 4.0, 6.0, "SUCCESS", 0, true);
    attempt(l, 7, "w1", 6.0, 7.5, "SUCCESS", 0, true);
    for (id, result, code) in [
        (1, "SUCCESS", 0),
        (2, "SUCCESS", 0),
        (3, "SUCCESS", 0),
        (4, "SIGNAL", 9),
    ] {
        rec(l, 7.8, &format!("TASK {id} DONE {result} {code}"));
    }
    for id in 5..=7 {
        rec(l, 7.8, &format!("TASK {id} DONE SUCCESS 0"));
    }
    rec(l, 7.9, "WORKER w1 DISCONNECTION EXPLICIT");
    rec(l, 8.0, "MANAGER 4242 END 8000000");
    log
}

const ATTEMPTS_RAN: usize = 8;

fn vine_report(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vine_report"))
        .args(args)
        .output()
        .unwrap()
}

/// The text of the element `<svg id="ID" ...>...</svg>` in `page`.
fn svg_by_id<'a>(page: &'a str, id: &str) -> &'a str {
    let open = format!("<svg id=\"{id}\"");
    let start = page
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in the page"));
    let len = page[start..].find("</svg>").expect("an unclosed svg") + "</svg>".len();
    &page[start..start + len]
}

/// The attempt rectangles of the timeline, counted by the rule the binary
/// documents (src/bin/vine_report/plots.rs): a `<rect` with
/// `opacity="0.875"` and a fill other than `none`, inside `<svg id="timeline">`.
fn attempt_rects(timeline: &str) -> usize {
    timeline
        .split('<')
        .filter(|el| el.starts_with("rect "))
        .filter(|el| el.contains(" opacity=\"0.875\"") && !el.contains(" fill=\"none\""))
        .count()
}

#[test]
fn report_of_a_synthetic_run() {
    let dir = common::tempdir();
    let logs = dir.join("vine-logs");
    std::fs::create_dir(&logs).unwrap();
    // A non-UTF-8 line in the middle of the log: skipped and counted.
    let mut bytes = synthetic_log().into_bytes();
    let at = bytes.len() / 2;
    let at = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.splice(
        at..at,
        b"1733212346000000 4242 TASK \xff\xfe READY\n"
            .iter()
            .copied(),
    );
    std::fs::write(logs.join("transactions"), &bytes).unwrap();

    // --svg names a directory: a file there is said to be one.
    let not_a_dir = dir.join("plots.svg");
    std::fs::write(&not_a_dir, "mine").unwrap();
    let out = vine_report(&[dir.as_os_str(), "--svg".as_ref(), not_a_dir.as_os_str()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("that is a file"), "{said}");
    assert_eq!(std::fs::read_to_string(&not_a_dir).unwrap(), "mine");
    let svg_dir = dir.join("svg");
    let out = vine_report(&[dir.as_os_str(), "--svg".as_ref(), svg_dir.as_os_str()]);
    assert!(
        out.status.success(),
        "vine_report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html_path = dir.join("report.html");
    let page =
        std::fs::read_to_string(&html_path).expect("the page was written to RUNDIR/report.html");

    // Self-contained: nothing names the network, nothing is fetched.
    for needle in [
        "http://", "https://", "src=", "href=", "<link", "@import", "url(",
    ] {
        assert!(!page.contains(needle), "the page holds {needle:?}");
    }
    // The hostile category is text, never markup.
    assert!(!page.contains(HOSTILE), "an unescaped category");
    assert!(
        page.contains("&lt;script&gt;x&lt;/script&gt;"),
        "the escaped category is shown"
    );
    assert_eq!(page.matches("<script").count(), 0);
    assert!(!page.contains("<b>free</b>"));

    // Only the last complete run.
    assert!(!page.contains("old-worker"));
    assert!(page.contains("2 manager runs"));
    // The two lines that are no records, and the non-UTF-8 one, were counted.
    assert!(
        page.contains("3 line(s) of the log could not be read"),
        "skipped lines are reported"
    );

    // One attempt rectangle per attempt that ran, in the timeline; and the
    // legend's swatches (opaque) are there but not counted.
    let timeline = svg_by_id(&page, "timeline");
    assert_eq!(
        attempt_rects(timeline),
        ATTEMPTS_RAN,
        "attempt rectangles in the timeline"
    );
    let opaque_rects = timeline
        .split('<')
        .filter(|el| el.starts_with("rect ") && el.contains(" opacity=\"1\""))
        .count();
    assert_eq!(opaque_rects, 1 + 3, "the background and 3 legend swatches");
    // The same in the standalone SVG file.
    let standalone = std::fs::read_to_string(svg_dir.join("timeline.svg")).unwrap();
    assert_eq!(attempt_rects(&standalone), ATTEMPTS_RAN);
    for f in ["running.svg", "waiting.svg", "durations.svg"] {
        assert!(svg_dir.join(f).is_file(), "{f} written");
    }

    // The summary.
    let card = |label: &str| -> String {
        let end = page
            .find(&format!("<span>{label}</span>"))
            .unwrap_or_else(|| panic!("no {label}"));
        let b = page[..end].rfind("<b>").unwrap();
        page[b + 3..end].trim_end_matches("</b>").to_string()
    };
    assert_eq!(card("tasks"), "7");
    assert_eq!(card("attempts that ran"), "8");
    assert_eq!(card("attempts succeeded"), "6");
    assert_eq!(card("attempts failed or lost"), "2");
    assert_eq!(card("workers"), "2");
    assert_eq!(card("makespan (manager start to end)"), "8.00 s");

    // The failures table: task 4's SIGNAL and task 3's lost first attempt.
    let failures = {
        let s = page
            .find("<table id=\"failures\">")
            .expect("a failures table");
        &page[s..s + page[s..].find("</table>").unwrap()]
    };
    let rows: Vec<&str> = failures.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{failures}");
    assert!(failures.contains(
        "<td class=\"num\">4</td><td class=\"num\">1</td><td>SIGNAL</td><td class=\"num\">9</td><td>w2</td>"
    ));
    assert!(failures.contains("<td class=\"num\">3</td><td class=\"num\">1</td><td>LOST (worker DISCONNECTION FAILURE)</td>"));
    // The slowest table leads with task 1 (3 s by the worker's clock); task 6 has
    // no worker times, so its duration is RUNNING to RETRIEVED: 2.6 s.
    let slowest = &page[page
        .find("<table id=\"slowest\">")
        .expect("a slowest table")..];
    let first = slowest.split("<tr>").nth(2).unwrap();
    assert!(first.starts_with("<td class=\"num\">1</td>"), "{first}");
    assert!(first.contains("<td class=\"num\">3.00 s</td>"), "{first}");
    assert!(slowest.contains("<td class=\"num\">6</td><td class=\"num\">1</td><td>sim</td><td>w1</td><td class=\"num\">2.60 s</td>"));

    render_and_check(&html_path, &dir);

    if let Ok(keep) = std::env::var("VINE_REPORT_SAVE") {
        // For looking at the page by hand: VINE_REPORT_SAVE=DIR keeps it there.
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(keep.join("vine-logs")).unwrap();
        std::fs::copy(
            logs.join("transactions"),
            keep.join("vine-logs/transactions"),
        )
        .unwrap();
        std::fs::copy(&html_path, keep.join("report.html")).unwrap();
    }
}

/// Renders the page in headless Chromium and checks the picture has content:
/// several colours and many pixels that are not white.
fn render_and_check(html: &Path, dir: &Path) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        // Straight to the process's stderr: the test harness captures
        // eprintln! of a passing test, and this line must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: chromium not found, the report was not rendered"
        );
        return;
    }
    let png = dir.join("report.png");
    // Chromium's child processes can outlive it holding inherited pipes, so
    // its output goes to a file and only the browser process is waited for.
    let log_path = dir.join("chromium.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .arg("--window-size=1400,2000")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("chromium starts");
    // A guard against a browser that never exits (not a limit on the work: a
    // screenshot takes a second or two): after 5 minutes it is killed and the
    // test fails saying so.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx
        .recv_timeout(std::time::Duration::from_secs(300))
        .is_err()
    {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
        let _ = waiter.join();
        panic!("chromium (pid {pid}) did not exit within 5 minutes; killed");
    }
    let status = waiter.join().unwrap().expect("waiting for chromium");
    assert!(
        png.is_file(),
        "chromium wrote no screenshot ({status}): {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    assert!(channels >= 3, "an RGB screenshot");
    let pixels = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut not_white = 0usize;
    for p in pixels.chunks_exact(channels) {
        let rgb = (p[0], p[1], p[2]);
        colours.insert(rgb);
        if rgb != (255, 255, 255) {
            not_white += 1;
        }
    }
    let total = (info.width * info.height) as usize;
    assert!(
        colours.len() >= 3,
        "only {} colours in the screenshot",
        colours.len()
    );
    // The plots fill a good part of the page: far more than a line of text.
    assert!(
        not_white >= total / 50,
        "only {not_white} of {total} pixels are not white"
    );
}

#[test]
fn lanes_overlap_and_reuse() {
    // Overlapping attempts take different lanes; one starting when another
    // ends takes over its lane; the lowest free lane is taken first.
    let (slot, n) = slots::assign(&[(0, 10), (1, 5), (5, 8), (10, 12), (2, 20)]);
    assert_eq!(n, 3);
    assert_eq!(slot[0], 0);
    assert_eq!(slot[1], 1);
    assert_eq!(slot[4], 2, "overlaps both, so a third lane");
    assert_eq!(slot[2], 1, "back to back with the second");
    assert_eq!(slot[3], 0, "back to back with the first");
    // Given in any order, the result is the same.
    let (slot2, n2) = slots::assign(&[(10, 12), (2, 20), (5, 8), (1, 5), (0, 10)]);
    assert_eq!(n2, 3);
    assert_eq!(slot2, vec![0, 2, 1, 1, 0]);
    // Nothing at all; a single zero-length attempt.
    assert_eq!(slots::assign(&[]), (vec![], 0));
    assert_eq!(slots::assign(&[(3, 3), (3, 3)]), (vec![0, 0], 1));
}

#[test]
fn errors_and_empty_logs() {
    let dir = common::tempdir();
    // No such directory: one line on stderr, exit 1.
    let missing = dir.join("nope");
    let out = vine_report(&[missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");

    // A directory without a log.
    let out = vine_report(&[dir.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no transactions log"));

    // A log with no task record: exit 1, said so, and a page all the same.
    // Given as the vine-logs directory, the page still goes to the run dir.
    let logs = dir.join("vine-logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(
        logs.join("transactions"),
        format!(
            "# nothing\n{T0} 1 MANAGER 1 START 0\n{} 1 MANAGER 1 END 1000\n",
            T0 + 1000
        ),
    )
    .unwrap();
    let out = vine_report(&[logs.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no task records"), "{err}");
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("no task records"));
    assert_eq!(attempt_rects(svg_by_id(&page, "timeline")), 0);

    // The transactions file itself, and -o.
    let out_path = dir.join("elsewhere.html");
    let out = vine_report(&[
        logs.join("transactions").as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out_path.is_file());
    // -o naming the log itself (here through another spelling) is refused,
    // and the log is left as it was.
    let log = logs.join("transactions");
    let before = std::fs::read(&log).unwrap();
    let same = dir.join("vine-logs/../vine-logs/transactions");
    let out = vine_report(&[log.as_os_str(), "-o".as_ref(), same.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the transactions log the report is made from"),
        "{err}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), before);

    // Help, and an unknown option.
    let out = vine_report(&["--help".as_ref()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("usage: vine_report RUNDIR"));
    let out = vine_report(&["--bogus".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
}
