//! The floor for a channel hand-off on this machine: a bare pool of two threads fed
//! by one crossbeam channel, with no ids and no results beyond what is needed to
//! know the work is done. Same measures as `benches/local/bench_vine.c`:
//!   cargo bench --bench crossbeam_floor -- throughput|roundtrip|relay|efficiency|memory N
//! `relay` is the round trip through a third thread in the middle (caller -> relay
//! -> worker -> relay -> caller), the shape of any design with a manager thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};

/// A job: a 16-byte input, as the vine tasks carry, and what to do with it.
struct Job {
    input: [u8; 16],
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Empty,
    Busy100us,
    Gate,
}

struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

fn rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

fn pool(done: Arc<AtomicU64>, back: Sender<()>, gate: Arc<Gate>) -> Sender<Job> {
    let (tx, rx) = unbounded::<Job>();
    for _ in 0..2 {
        let (rx, done, back, gate) = (rx.clone(), done.clone(), back.clone(), gate.clone());
        std::thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                std::hint::black_box(job.input);
                match job.kind {
                    Kind::Empty => {}
                    Kind::Busy100us => {
                        let end = Instant::now() + Duration::from_micros(100);
                        while Instant::now() < end {}
                    }
                    Kind::Gate => {
                        let mut open = gate.open.lock().unwrap();
                        while !*open {
                            open = gate.cv.wait(open).unwrap();
                        }
                    }
                }
                done.fetch_add(1, Ordering::Release);
                let _ = back.send(());
            }
        });
    }
    tx
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (what, n) = match args.as_slice() {
        [_, what, n, ..] => (what.clone(), n.parse::<u64>().expect("N")),
        _ => {
            eprintln!("usage: crossbeam_floor throughput|roundtrip|efficiency|memory N");
            std::process::exit(2);
        }
    };
    let done = Arc::new(AtomicU64::new(0));
    let (back_tx, back) = unbounded::<()>();
    let gate = Arc::new(Gate {
        open: Mutex::new(false),
        cv: Condvar::new(),
    });
    let tx = pool(done.clone(), back_tx, gate.clone());
    let job = |kind| Job {
        input: *b"0123456789abcdef",
        kind,
    };
    match what.as_str() {
        "throughput" => {
            let t0 = Instant::now();
            for _ in 0..n {
                tx.send(job(Kind::Empty)).unwrap();
            }
            for _ in 0..n {
                back.recv().unwrap();
            }
            println!(
                "crossbeam throughput_tasks_per_s {:.0}",
                n as f64 / t0.elapsed().as_secs_f64()
            );
        }
        "roundtrip" => {
            let t0 = Instant::now();
            for _ in 0..n {
                tx.send(job(Kind::Empty)).unwrap();
                back.recv().unwrap();
            }
            println!(
                "crossbeam roundtrip_ns {:.0}",
                t0.elapsed().as_nanos() as f64 / n as f64
            );
        }
        "relay" => {
            let (to_relay, relay_rx) = unbounded::<bool>();
            let (to_caller, caller_rx) = unbounded::<()>();
            let worker_tx = tx.clone();
            let relay_back = to_relay.clone();
            // The relay forwards requests to the pool and completions to the caller.
            std::thread::spawn(move || {
                while let Ok(from_caller) = relay_rx.recv() {
                    if from_caller {
                        worker_tx.send(job(Kind::Empty)).unwrap();
                    } else {
                        to_caller.send(()).unwrap();
                    }
                }
            });
            let forward = back.clone();
            std::thread::spawn(move || {
                while forward.recv().is_ok() {
                    if relay_back.send(false).is_err() {
                        return;
                    }
                }
            });
            let t0 = Instant::now();
            for _ in 0..n {
                to_relay.send(true).unwrap();
                caller_rx.recv().unwrap();
            }
            println!(
                "crossbeam relay_roundtrip_ns {:.0}",
                t0.elapsed().as_nanos() as f64 / n as f64
            );
        }
        "efficiency" => {
            let t0 = Instant::now();
            for _ in 0..n {
                tx.send(job(Kind::Busy100us)).unwrap();
            }
            for _ in 0..n {
                back.recv().unwrap();
            }
            let ideal = n as f64 * 100e-6 / 2.0;
            println!(
                "crossbeam efficiency {:.3}",
                ideal / t0.elapsed().as_secs_f64()
            );
        }
        "memory" => {
            tx.send(job(Kind::Gate)).unwrap();
            tx.send(job(Kind::Gate)).unwrap();
            let before = rss_kb();
            for _ in 0..n {
                tx.send(job(Kind::Empty)).unwrap();
            }
            let after = rss_kb();
            println!(
                "crossbeam memory_bytes_per_task {:.0}",
                (after - before) as f64 * 1024.0 / n as f64
            );
            *gate.open.lock().unwrap() = true;
            gate.cv.notify_all();
            for _ in 0..n + 2 {
                back.recv().unwrap();
            }
        }
        _ => std::process::exit(2),
    }
    assert!(done.load(Ordering::Acquire) >= n, "every job ran");
}
