//! rayon scopes in a pool of 2 threads: the workloads of vine.c but mixed (no
//! resource requests). threads8: 8 threads each run a scope in the pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static DONE: AtomicU64 = AtomicU64::new(0);

fn spin(us: u64) {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {}
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        std::process::exit(2);
    }
    let w = args[1].as_str();
    let mut n: u64 = args[2].parse().unwrap();
    let us = match w {
        "spin100" => 100,
        "spin1000" => 1000,
        "empty" | "roundtrip" | "threads8" => 0,
        _ => std::process::exit(2),
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let t0 = Instant::now();
    if w == "threads8" {
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    pool.scope(|sc| {
                        for _ in 0..n / 8 {
                            sc.spawn(|_| {
                                DONE.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                    })
                });
            }
        });
        n = n / 8 * 8;
    } else if w == "roundtrip" {
        for _ in 0..n {
            pool.scope(|sc| {
                sc.spawn(|_| {
                    DONE.fetch_add(1, Ordering::Relaxed);
                })
            });
        }
    } else {
        pool.scope(|sc| {
            for _ in 0..n {
                sc.spawn(move |_| {
                    if us > 0 {
                        spin(us);
                    }
                    DONE.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
    }
    let t = t0.elapsed().as_secs_f64();
    let done = DONE.load(Ordering::Relaxed);
    if done != n {
        eprintln!("rayon: {done} of {n} tasks ran");
        std::process::exit(1);
    }
    let v = match w {
        "spin100" | "spin1000" => n as f64 * us as f64 * 1e-6 / 2.0 / t,
        "roundtrip" => t / n as f64 * 1e6,
        _ => n as f64 / t,
    };
    println!("rayon {w} {v:.6}");
}
