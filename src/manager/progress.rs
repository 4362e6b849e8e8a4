//! The progress line: on standard error, redrawn at most four times a second,
//! submitted, waiting, running, done, failed, workers, the rate and an estimate
//! of the time left. On by default when standard error is a terminal (drawn
//! once the run has lasted a few seconds), `VINE_PROGRESS=0|1` or
//! `vine_tune(m, "progress", 0|1)` decide otherwise. When standard error is not
//! a terminal, an enabled progress line prints nothing but one summary line at
//! shutdown.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{inbox, Message, Stats};

/// Between redraws.
const EVERY: Duration = Duration::from_millis(250);
/// A default (not asked for) line waits this long before it first draws.
const QUIET_START: Duration = Duration::from_secs(3);
/// The rate is measured over this long.
const WINDOW: Duration = Duration::from_secs(10);

struct State {
    stop: bool,
    /// Asked for (not only on because standard error is a terminal).
    asked: bool,
    /// A line was drawn: the summary replaces it.
    drawn: bool,
}

/// The progress line of one manager.
pub(crate) struct Progress {
    state: Arc<(Mutex<State>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
    started: Instant,
    tty: bool,
}

impl Progress {
    /// Whether the environment turns it on (Some(true)), off, or leaves the
    /// default (unset); an error for any other value, which `vine_create`
    /// refuses as it refuses a malformed `VINE_LOCAL_*`.
    pub(crate) fn env_setting() -> crate::error::Result<Option<bool>> {
        let Ok(v) = std::env::var("VINE_PROGRESS") else {
            return Ok(None);
        };
        match v.trim() {
            "1" | "yes" | "on" | "true" => Ok(Some(true)),
            "0" | "no" | "off" | "false" => Ok(Some(false)),
            _ => Err(crate::error::Error::invalid(format!(
                "environment variable VINE_PROGRESS={v:?} is neither 1, yes, on or true \
                 (on) nor 0, no, off or false (off)"
            ))),
        }
    }

    /// The progress line of a manager reached through `tx`: started now if
    /// `asked` (the environment's [`Progress::env_setting`]) or, when that
    /// says nothing, a terminal asks for it.
    pub(crate) fn new(tx: &inbox::Sender<Message>, asked: Option<bool>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let p = Progress {
            state: Arc::new((
                Mutex::new(State {
                    stop: false,
                    asked: false,
                    drawn: false,
                }),
                Condvar::new(),
            )),
            thread: Mutex::new(None),
            started: Instant::now(),
            tty,
        };
        match asked {
            Some(true) => p.set(true, tx),
            Some(false) => {}
            None if tty => p.start(tx),
            None => {}
        }
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns it on or off (`vine_tune(m, "progress", ...)`).
    pub(crate) fn set(&self, on: bool, tx: &inbox::Sender<Message>) {
        self.lock().asked = on;
        if on {
            self.start(tx);
        } else {
            self.stop_thread();
        }
    }

    fn start(&self, tx: &inbox::Sender<Message>) {
        if !self.tty {
            // Only the summary, at shutdown.
            return;
        }
        let mut t = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_some() {
            return;
        }
        self.lock().stop = false;
        let state = self.state.clone();
        let tx = tx.clone();
        let started = self.started;
        *t = std::thread::Builder::new()
            .name("vine-progress".into())
            .spawn(move || draw_loop(&state, &tx, started))
            .ok();
    }

    fn stop_thread(&self) {
        {
            let mut s = self.lock();
            s.stop = true;
            self.state.1.notify_all();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// At shutdown: stops redrawing and writes the summary line, if the line
    /// was drawn or asked for.
    pub(crate) fn finish(&self, last: Option<&Stats>) {
        self.stop_thread();
        let (asked, drawn) = {
            let s = self.lock();
            (s.asked, s.drawn)
        };
        let Some(last) = last else { return };
        if !(drawn || (asked && !self.tty)) || last.tasks_submitted == 0 {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            last.tasks_done as f64 / secs
        } else {
            0.0
        };
        let line = format!(
            "vine: {} tasks done ({} failed) in {:.1} s, {:.1} tasks/s\n",
            last.tasks_done, last.tasks_failed, secs, rate,
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(if drawn { b"\r\x1b[K" } else { b"" });
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}

/// Asks the manager for its counters (None once it has stopped). Unlike
/// `Manager::stats`, this does not make the authentication settings final.
fn ask(tx: &inbox::Sender<Message>) -> Option<Stats> {
    let (reply, answer) = super::reply::oneshot();
    tx.send(Message::Stats { reply }).ok()?;
    answer.recv().ok()
}

/// `1 worker`, `2 workers`.
fn workers(n: u64) -> String {
    if n == 1 {
        "1 worker".into()
    } else {
        format!("{n} workers")
    }
}

/// A duration as `1h02m`, `3m05s` or `12s`.
fn short(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The line for `s`, with `rate` tasks a second.
fn line(s: &Stats, rate: f64) -> String {
    let left = s.tasks_submitted.saturating_sub(s.tasks_done);
    let eta = if left == 0 {
        "0s".into()
    } else if rate > 0.0 {
        short(left as f64 / rate)
    } else {
        "?".into()
    };
    format!(
        "vine: {} submitted, {} waiting, {} running, {} done, {} failed, {}, {:.1} tasks/s, {} left",
        s.tasks_submitted,
        s.tasks_waiting,
        s.tasks_running,
        s.tasks_done,
        s.tasks_failed,
        workers(s.workers_connected),
        rate,
        eta
    )
}

fn draw_loop(state: &(Mutex<State>, Condvar), tx: &inbox::Sender<Message>, started: Instant) {
    let mut samples: std::collections::VecDeque<(Instant, u64)> = Default::default();
    loop {
        {
            let s = state.0.lock().unwrap_or_else(|p| p.into_inner());
            let (s, _) = state
                .1
                .wait_timeout_while(s, EVERY, |s| !s.stop)
                .unwrap_or_else(|p| p.into_inner());
            if s.stop {
                return;
            }
            if !s.asked && started.elapsed() < QUIET_START {
                continue;
            }
        }
        let Some(stats) = ask(tx) else { return };
        if stats.tasks_submitted == 0 {
            continue;
        }
        let now = Instant::now();
        samples.push_back((now, stats.tasks_done));
        while samples.len() > 2 && now.duration_since(samples[0].0) > WINDOW {
            samples.pop_front();
        }
        let (t0, d0) = samples[0];
        let dt = now.duration_since(t0).as_secs_f64();
        let rate = if dt > 0.5 {
            stats.tasks_done.saturating_sub(d0) as f64 / dt
        } else {
            stats.tasks_done as f64 / started.elapsed().as_secs_f64().max(1e-3)
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", line(&stats, rate));
        let _ = err.flush();
        state.0.lock().unwrap_or_else(|p| p.into_inner()).drawn = true;
    }
}

#[cfg(test)]
mod test {
    #[test]
    fn durations_read_shortly() {
        assert_eq!(super::short(5.4), "5s");
        assert_eq!(super::short(185.0), "3m05s");
        assert_eq!(super::short(3720.0), "1h02m");
        assert_eq!(super::short(f64::INFINITY), "?");
    }
}
