//! The progress line, under a real pseudo-terminal (`script`) and without one.

use std::process::{Command, Stdio};

use vine::{Manager, Port, Task};

/// When started with VINE_TEST_PROGRESS_CHILD, this test runs a small workflow
/// (its standard error is what the other tests look at).
#[test]
fn zz_child() {
    if std::env::var_os("VINE_TEST_PROGRESS_CHILD").is_none() {
        return;
    }
    let m = Manager::new(Port::None).unwrap();
    // Each task lasts long enough for the line to be redrawn while they run.
    for _ in 0..4 {
        m.submit(Task::command(c"sleep 1")).unwrap();
    }
    // Failed by its result (a command that exits 1 is a success, as in
    // TaskVine): killed by a signal.
    let mut failed = Task::command(c"kill -9 $$");
    failed.set_retries(0).unwrap();
    m.submit(failed).unwrap();
    for _ in 0..5 {
        m.wait(None).unwrap();
    }
    m.shutdown().unwrap();
    std::process::exit(0);
}

fn child(progress: Option<&str>) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "zz_child", "--nocapture", "--test-threads=1"])
        .env("VINE_TEST_PROGRESS_CHILD", "1")
        .env("VINE_LOCAL_CORES", "2");
    match progress {
        Some(v) => c.env("VINE_PROGRESS", v),
        None => c.env_remove("VINE_PROGRESS"),
    };
    c
}

#[test]
fn on_a_terminal_the_line_is_redrawn_and_ends_with_a_summary() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` (util-linux) to give the test a terminal");
        return;
    }
    let dir = std::env::temp_dir().join(format!("vine-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("typescript");
    let me = std::env::current_exe().unwrap();
    // The default: on, because standard error is a terminal; asked for here so
    // that it draws from the start rather than from the third second.
    let cmd = format!(
        "VINE_TEST_PROGRESS_CHILD=1 VINE_LOCAL_CORES=2 VINE_PROGRESS=1 {} --exact zz_child --nocapture --test-threads=1",
        me.display()
    );
    let ok = Command::new("script")
        .args(["-q", "-e", "-c", &cmd])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    let draws: Vec<&str> = out.split("\r\x1b[K").skip(1).collect();
    assert!(draws.len() >= 2, "no redraw: {out:?}");
    assert!(
        draws[0].starts_with("vine: 5 submitted, "),
        "{:?}",
        draws[0]
    );
    assert!(draws[0].contains(" tasks/s, "), "{:?}", draws[0]);
    let last = draws.last().unwrap();
    assert!(
        last.starts_with("vine: 5 tasks done (1 failed) in "),
        "{last:?}"
    );
    let summary = last.lines().next().unwrap().trim_end();
    assert!(summary.ends_with("tasks/s"), "{last:?}");
}

#[test]
fn without_a_terminal_only_one_summary_line_if_asked() {
    let out = child(Some("1")).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("vine: ")).collect();
    assert_eq!(ours.len(), 1, "{err:?}");
    assert!(
        ours[0].starts_with("vine: 5 tasks done (1 failed) in "),
        "{err:?}"
    );
    assert!(!err.contains('\r'), "{err:?}");

    let out = child(None).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("vine: "),
        "not asked for, not a terminal: {err:?}"
    );
}
