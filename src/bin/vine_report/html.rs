//! The page: one self-contained HTML file (inline style, inline SVG, nothing
//! fetched). Every string taken from the log goes through [`esc`].

use std::fmt::Write;

use super::model::{Model, SLOWEST};
use super::parse::Log;

/// HTML-escapes text for element content and quoted attribute values (control
/// characters, which have no business in a page, become U+FFFD).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A plotters SVG made ready to inline: given an id, and without the
/// `xmlns` attribute (HTML's parser puts `<svg>` in the SVG namespace itself,
/// and the page then names no URL at all).
pub fn inline_svg(svg: &str, id: &str) -> String {
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    svg.replacen("<svg ", &format!("<svg id=\"{}\" ", esc(id)), 1)
}

pub struct Plots {
    pub timeline: String,
    pub running: String,
    pub waiting: String,
    pub durations: String,
}

const STYLE: &str = "
body{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1320px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}
.src{color:#666;font-size:13px;margin-bottom:12px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:90px;background:#fafafa}
.card b{display:block;font-size:20px}
.card span{font-size:12px;color:#555}
.note{background:#fff8e1;border:1px solid #f0d890;border-radius:4px;padding:6px 10px;font-size:13px;margin:6px 0}
svg{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 10px;text-align:left}
th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777;font-size:13px}
";

fn fmt_secs(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

pub fn page(log: &Log, m: &Model, source: &str, plots: &Plots) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>vine run report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>vine run report</h1>\n<div class=\"src\">{}</div>\n",
        esc(source)
    );

    // Summary numbers.
    h.push_str("<div class=\"cards\">\n");
    let failed = m.failed + m.lost;
    let cards: [(String, &str); 6] = [
        (m.tasks.to_string(), "tasks"),
        (m.attempts_ran.to_string(), "attempts that ran"),
        (m.succeeded.to_string(), "attempts succeeded"),
        (failed.to_string(), "attempts failed or lost"),
        (m.workers.to_string(), "workers"),
        (fmt_secs(m.makespan_s), "makespan (manager start to end)"),
    ];
    for (v, k) in &cards {
        let _ = writeln!(
            h,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            esc(v),
            esc(k)
        );
    }
    h.push_str("</div>\n");

    // What the numbers rest on.
    let run = &log.run;
    let mut notes = Vec::new();
    if log.runs > 1 {
        notes.push(format!(
            "This log holds {} manager runs; this report covers run {} of them, the last one with a MANAGER END.",
            log.runs, log.run_number
        ));
    }
    if log.later_incomplete_left_out {
        notes.push("A later run without MANAGER END was left out.".to_string());
    }
    if run.end_us.is_none() && m.tasks > 0 {
        notes.push(
            "The run has no MANAGER END: it is shown up to its last record, and attempts still running then are drawn to that point."
                .to_string(),
        );
    }
    if !run.has_start && run.records > 0 {
        notes.push("The log has no MANAGER START: times count from its first record.".to_string());
    }
    if run.task_records == 0 {
        notes.push("The log has no task records: there is nothing to plot.".to_string());
    }
    if log.skipped > 0 {
        notes.push(format!(
            "{} line(s) of the log could not be read and were skipped ({}).",
            log.skipped,
            log.skipped_examples.join("; ")
        ));
    }
    if log.bad_json > 0 {
        notes.push(format!(
            "{} record(s) had resource data that could not be read; the rest of each was used.",
            log.bad_json
        ));
    }
    if m.unfinished > 0 {
        notes.push(format!(
            "{} attempt(s) were still running when the log ends.",
            m.unfinished
        ));
    }
    if m.tasks_not_succeeded > 0 {
        notes.push(format!(
            "{} task(s) did not end in SUCCESS.",
            m.tasks_not_succeeded
        ));
    }
    for n in &notes {
        let _ = writeln!(h, "<div class=\"note\">{}</div>", esc(n));
    }

    let _ = write!(
        h,
        "<h2>Task attempts per worker</h2>\n<p class=\"muted\">Each bar is one attempt, from the worker's start to its end, \
         coloured by category; a worker has as many lanes as tasks it ran at once. Red outlines mark attempts that failed \
         or were lost.</p>\n{}\n\
         <h2>Tasks running</h2>\n{}\n\
         <h2>Tasks waiting (ready, not yet running)</h2>\n{}\n\
         <h2>Attempt durations</h2>\n<p class=\"muted\">Worker end minus worker start, or RUNNING to RETRIEVED where the worker's times are missing.</p>\n{}\n",
        plots.timeline, plots.running, plots.waiting, plots.durations
    );

    // The slowest attempts.
    let _ = writeln!(h, "<h2>The {SLOWEST} slowest attempts</h2>");
    if m.slowest.is_empty() {
        h.push_str("<p class=\"muted\">No attempt's result came back.</p>\n");
    } else {
        h.push_str(
            "<table id=\"slowest\">\n<tr><th>task</th><th>attempt</th><th>category</th><th>worker</th><th>duration</th><th>result</th></tr>\n",
        );
        for r in &m.slowest {
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&r.task),
                esc(&r.attempt),
                esc(&r.category),
                esc(&r.worker),
                esc(&fmt_secs(r.duration_s)),
                esc(&r.result)
            );
        }
        h.push_str("</table>\n");
    }

    // Every failure.
    let _ = writeln!(h, "<h2>Failures ({})</h2>", m.failures.len());
    if m.failures.is_empty() {
        h.push_str("<p class=\"muted\">No attempt failed.</p>\n");
    } else {
        h.push_str(
            "<table id=\"failures\">\n<tr><th>task</th><th>attempt</th><th>result</th><th>exit code</th><th>worker</th></tr>\n",
        );
        for f in &m.failures {
            let code = f.exit_code.map(|c| c.to_string()).unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&f.task),
                esc(&f.attempt),
                esc(&f.result),
                esc(&code),
                esc(&f.worker)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}
