//! Arbitrary bytes against the frame decoder and the manager's handshake: the seed
//! frames of tests/fuzz/corpus and bounded, reproducible mutations of them. The
//! decoder returns a frame or an error, never panics; the manager drops a bad
//! connection, closes it once its peer has, panics on no thread, and still takes a
//! real worker afterwards.
//!
//! `make fuzz` runs the libFuzzer targets of fuzz/ over the same corpus when
//! `cargo +nightly fuzz` is installed, and this test for longer otherwise:
//! `VINE_FUZZ_SECONDS` bounds it by time instead of count, `VINE_FUZZ_SEED` picks
//! another sequence of mutations.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vine::protocol::{read_frame, ToManager, ToWorker};
use vine::{Manager, Port, Task, TaskResult};

/// Mutated inputs for the decoder, and for the handshake (each a connection).
const DECODER_INPUTS: usize = 20_000;
const HANDSHAKE_INPUTS: usize = 300;

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<_> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(seeds.len() >= 5, "the {kind} corpus has its seeds");
    seeds
}

/// A small reproducible generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("VINE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_f00d_u64);
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Lengths and values that sit on the edges a decoder must handle.
const EDGES: [u64; 10] = [
    0,
    1,
    7,
    8,
    0x7f,
    0xff,
    0xffff,
    (256 << 20) + 1,
    u32::MAX as u64,
    u64::MAX,
];

/// One to four mutations of a seed, or of two seeds spliced.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = [0, 0xff, 0x7f, 0x80][rng.below(4)];
            }
            2 => data.truncate(rng.below(len + 1)),
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 if len >= 4 => {
                // A length field (u32 or u64 little-endian) set to an edge.
                let wide = rng.below(2) == 1 && len >= 8;
                let at = rng.below(len - if wide { 7 } else { 3 });
                let v = EDGES[rng.below(EDGES.len())];
                if wide {
                    data[at..at + 8].copy_from_slice(&v.to_le_bytes());
                } else {
                    data[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
                }
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let to = from + rng.below(len - from);
                let copy = data[from..=to.min(len - 1)].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            _ => {
                let n = rng.below(64);
                data = (0..n).map(|_| rng.next() as u8).collect();
            }
        }
    }
    data
}

/// Decodes frames from `data` as each side would, until the first error.
fn decode_all(data: &[u8]) {
    let mut r = data;
    while read_frame::<ToWorker>(&mut r).is_ok() {}
    let mut r = data;
    while read_frame::<ToManager>(&mut r).is_ok() {}
}

/// Whether the budget allows input number `n`.
fn more(n: usize, count: usize, start: Instant) -> bool {
    match std::env::var("VINE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(secs) => start.elapsed() < Duration::from_secs(secs),
        None => n < count,
    }
}

#[test]
fn the_frame_decoder_takes_arbitrary_bytes_without_panicking() {
    let mut seeds = corpus("frame");
    seeds.extend(corpus("handshake"));
    for s in &seeds {
        decode_all(s);
    }
    let mut rng = Rng::from_env();
    let start = Instant::now();
    let mut n = 0;
    while more(n, DECODER_INPUTS, start) {
        decode_all(&mutate(&mut rng, &seeds));
        n += 1;
    }
}

static PANICKED: AtomicBool = AtomicBool::new(false);

/// Sends `data` as a worker would after connecting, closes the sending side, and
/// waits for the manager to close the connection.
fn send_raw(port: u16, data: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A bound, not a synchronisation: the manager closes as soon as it sees the end.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The manager may refuse before reading everything: a failed write is fine.
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the manager kept a connection open after its peer closed ({e}); input: {data:02x?}"
        ),
    }
}

#[test]
fn the_managers_handshake_takes_arbitrary_bytes_and_still_serves_a_worker() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        previous(info);
    }));
    let m = Manager::new(Port::Any).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    // Connections are taken once the authentication settings are final.
    m.stats().unwrap();
    let port = m.port().unwrap();
    let mut seeds = corpus("handshake");
    seeds.extend(corpus("frame"));
    for s in &seeds {
        send_raw(port, s);
    }
    let mut rng = Rng::from_env();
    let start = Instant::now();
    let mut n = 0;
    while more(n, HANDSHAKE_INPUTS, start) {
        send_raw(port, &mutate(&mut rng, &seeds));
        n += 1;
    }
    // A real worker still joins and runs a task.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--cores", "1"])
        .args(["--timeout", "60"])
        .spawn()
        .unwrap();
    m.submit(Task::command(c"echo alive")).unwrap();
    let t = m
        .wait(Some(Duration::from_secs(120)))
        .expect("the task ran");
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(t.stdout().unwrap().to_str().unwrap(), "alive\n");
    m.shutdown().unwrap();
    assert!(worker.wait().unwrap().success());
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a thread panicked on arbitrary bytes"
    );
}
