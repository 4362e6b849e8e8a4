//! vine_report: one self-contained HTML page about a run, from its transactions
//! log (TaskVine's format, which vine writes too): a timeline of task attempts
//! per worker, tasks running and waiting over time, a histogram of durations,
//! the slowest attempts and every failure.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// A binary's root file resolves modules beside itself; these live in vine_report/.
#[path = "vine_report/html.rs"]
mod html;
#[path = "vine_report/model.rs"]
mod model;
#[path = "vine_report/parse.rs"]
mod parse;
#[path = "vine_report/plots.rs"]
mod plots;
#[path = "vine_report/slots.rs"]
mod slots;

const USAGE: &str = "\
usage: vine_report RUNDIR [-o report.html] [--svg DIR]

Writes one self-contained HTML page about a run from its transactions log.

  RUNDIR        a run directory (its log is RUNDIR/vine-logs/transactions),
                its vine-logs directory, or the transactions file itself
  -o FILE       where to write the page (default: RUNDIR/report.html)
  --svg DIR     also write each plot as its own .svg file in DIR
  -h, --help    print this help

Exit status 0 when the page was written; 1 on an error, and also when the log
holds no task record (the page is still written, and says so).";

struct Args {
    input: PathBuf,
    output: Option<PathBuf>,
    svg_dir: Option<PathBuf>,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Parsed, String> {
    let mut input = None;
    let mut output = None;
    let mut svg_dir = None;
    let mut args = args.peekable();
    let mut options_done = false;
    while let Some(a) = args.next() {
        let s = a.to_string_lossy().into_owned();
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value (see --help)"))
        };
        if options_done {
            if input.is_some() {
                return Err(format!("one run directory only, got a second: {s}"));
            }
            input = Some(PathBuf::from(a));
            continue;
        }
        match s.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-o" | "--output" => output = Some(value(&s)?),
            "--svg" => svg_dir = Some(value(&s)?),
            "--" => options_done = true,
            _ if s.starts_with("--output=") => {
                output = Some(PathBuf::from(&s["--output=".len()..]))
            }
            _ if s.starts_with("--svg=") => svg_dir = Some(PathBuf::from(&s["--svg=".len()..])),
            _ if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s} (see --help)"))
            }
            _ => {
                if input.is_some() {
                    return Err(format!("one run directory only, got a second: {s}"));
                }
                input = Some(PathBuf::from(a));
            }
        }
    }
    let input = input.ok_or("no run directory given (see --help)")?;
    Ok(Parsed::Run(Args {
        input,
        output,
        svg_dir,
    }))
}

/// The transactions file and the run directory the page goes to by default.
fn locate(input: &Path) -> Result<(PathBuf, PathBuf), String> {
    let meta = std::fs::metadata(input).map_err(|e| format!("{}: {e}", input.display()))?;
    if meta.is_file() {
        let parent = input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let run_dir = if parent.file_name().is_some_and(|n| n == "vine-logs") {
            parent
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        } else {
            parent
        };
        return Ok((input.to_path_buf(), run_dir.to_path_buf()));
    }
    let nested = input.join("vine-logs").join("transactions");
    if nested.is_file() {
        return Ok((nested, input.to_path_buf()));
    }
    let direct = input.join("transactions");
    if direct.is_file() {
        let run_dir = if input.file_name().is_some_and(|n| n == "vine-logs") {
            input
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        } else {
            input
        };
        return Ok((direct, run_dir.to_path_buf()));
    }
    Err(format!(
        "no transactions log in {} (looked for {} and {})",
        input.display(),
        nested.display(),
        direct.display()
    ))
}

/// Runs the report; `Ok(false)` when the page was written but the log had no task.
fn run(args: Args) -> Result<bool, String> {
    let (log_path, run_dir) = locate(&args.input)?;
    let file = File::open(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log = parse::read_log(BufReader::with_capacity(1 << 16, file))
        .map_err(|e| format!("reading {}: {e}", log_path.display()))?;
    let m = model::build(&log);

    let timeline = plots::timeline(&m)?;
    let running = plots::step_plot(&m, &m.running, "tasks running", false)?;
    let waiting = plots::step_plot(&m, &m.waiting, "tasks waiting", true)?;
    let durations = plots::histogram(&m)?;

    if let Some(dir) = &args.svg_dir {
        if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            return Err(format!(
                "--svg {}: that is a file; --svg names a directory for the plots",
                dir.display()
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (name, svg) in [
            ("timeline.svg", &timeline),
            ("running.svg", &running),
            ("waiting.svg", &waiting),
            ("durations.svg", &durations),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, svg).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }

    let inline = html::Plots {
        timeline: html::inline_svg(&timeline, "timeline"),
        running: html::inline_svg(&running, "running"),
        waiting: html::inline_svg(&waiting, "waiting"),
        durations: html::inline_svg(&durations, "durations"),
    };
    let source = log_path.display().to_string();
    let page = html::page(&log, &m, &source, &inline);
    let out = args.output.unwrap_or_else(|| run_dir.join("report.html"));
    if same_file(&out, &log_path) {
        return Err(format!(
            "-o {}: that is the transactions log the report is made from; \
             name another file",
            out.display()
        ));
    }
    std::fs::write(&out, page).map_err(|e| format!("{}: {e}", out.display()))?;

    if log.run.task_records == 0 {
        eprintln!(
            "vine_report: {} holds no task records; wrote a report that says so to {}",
            log_path.display(),
            out.display()
        );
        return Ok(false);
    }
    Ok(true)
}

/// True if `a` and `b` name one existing file (links and other spellings
/// included).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(a)) => a,
        Err(e) => {
            eprintln!("vine_report: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vine_report: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slots::assign;

    #[test]
    fn overlapping_attempts_take_different_lanes() {
        let (slot, n) = assign(&[(0, 10), (5, 15), (10, 20)]);
        assert_eq!(n, 2);
        assert_ne!(slot[0], slot[1]);
        // Back to back: the third starts when the first ends and takes its lane.
        assert_eq!(slot[2], slot[0]);
    }
}
