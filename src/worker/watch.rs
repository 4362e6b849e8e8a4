//! Outputs flagged `VINE_WATCH`: while the command runs, what it appends to
//! such an output is copied to where the output was declared, so a program
//! reading that file sees it grow before the task ends. A thread per task with
//! watched outputs looks every [`INTERVAL`]; in the local pool it writes to the
//! declared file itself, on a remote worker it sends the bytes to the manager,
//! which writes them. When the task ends the output is delivered whole, as any
//! other output is.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::files::{FileKind, MOUNT_WATCH};
use crate::protocol::{WatchUpdate, WATCH_CHUNK};
use crate::task::Task;

/// How often watched outputs are looked at.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Where a worker sends what watched outputs grew by; false when it cannot any
/// more (the watching then stops).
#[derive(Clone)]
pub struct WatchHook(pub Arc<dyn Fn(WatchUpdate) -> bool + Send + Sync>);

impl std::fmt::Debug for WatchHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchHook")
    }
}

/// Writes `bytes` at `offset` in `dest`, which then ends after them (a file that
/// shrank in the sandbox shrinks here too).
pub fn write_update(dest: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    // The offset comes from a worker: one past any file size is refused, not wrapped.
    let end = offset
        .checked_add(bytes.len() as u64)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "offset past any file size",
            )
        })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dest)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(bytes)?;
    f.set_len(end)
}

struct Watched {
    remote_name: String,
    produced: PathBuf,
    /// The declared file, written here when there is no hook.
    dest: Option<PathBuf>,
    sent: u64,
}

/// The watching of one running task; stops (and waits for its thread) when dropped.
pub(crate) struct Watcher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts watching the outputs of `task` flagged `VINE_WATCH`, produced in
/// `sandbox`: sent through `hook` if given, else written to the declared files
/// (paths only; those are emptied first). None if there is nothing to watch.
pub(crate) fn start(task: &Task, sandbox: &Path, hook: Option<WatchHook>) -> Option<Watcher> {
    let extra = task.extra.as_ref()?;
    let mut files = Vec::new();
    for m in extra.outputs.iter().filter(|m| m.flags & MOUNT_WATCH != 0) {
        let dest = match m.file.kind() {
            FileKind::Path(p) => Some(p.clone()),
            _ => None,
        };
        if hook.is_none() {
            let Some(dest) = &dest else { continue };
            // Emptied, not removed, so a reader following the file keeps it.
            if write_update(dest, 0, &[]).is_err() {
                continue;
            }
        }
        // A name through a symbolic link is not followed (and the output is
        // refused when the task ends).
        let Ok(produced) = crate::worker::sandbox::resolve_in(sandbox, &m.remote_name) else {
            continue;
        };
        files.push(Watched {
            remote_name: m.remote_name.clone(),
            produced,
            dest,
            sent: 0,
        });
    }
    if files.is_empty() {
        return None;
    }
    let (id, attempt) = (task.id, task.attempts);
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::Builder::new()
        .name("vine-watch".into())
        .spawn(move || {
            let mut send = |w: &Watched, offset: u64, bytes: Vec<u8>| match &hook {
                Some(h) => (h.0)(WatchUpdate {
                    id,
                    attempt,
                    remote_name: w.remote_name.clone(),
                    offset,
                    bytes,
                }),
                None => w
                    .dest
                    .as_ref()
                    .is_some_and(|d| write_update(d, offset, &bytes).is_ok()),
            };
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                for w in &mut files {
                    if !look(w, &mut send) {
                        return;
                    }
                }
            }
        })
        .ok()?;
    Some(Watcher {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Sends what `w` grew by since it was last looked at; false if sending failed.
fn look(w: &mut Watched, send: &mut impl FnMut(&Watched, u64, Vec<u8>) -> bool) -> bool {
    let Ok(meta) = std::fs::metadata(&w.produced) else {
        return true;
    };
    if !meta.is_file() {
        return true;
    }
    let len = meta.len();
    if len < w.sent {
        // Rewritten from the start: so is the copy.
        w.sent = 0;
        if !send(w, 0, Vec::new()) {
            return false;
        }
    }
    if len == w.sent {
        return true;
    }
    // Never through a link the task may have put in its place.
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&w.produced)
    else {
        return true;
    };
    if f.seek(SeekFrom::Start(w.sent)).is_err() {
        return true;
    }
    let mut left = len - w.sent;
    while left > 0 {
        let want = left.min(WATCH_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(n) => n,
        };
        buf.truncate(n);
        if !send(w, w.sent, buf) {
            return false;
        }
        w.sent += n as u64;
        left -= n as u64;
    }
    true
}

#[cfg(test)]
mod offset_test {
    #[test]
    fn an_update_past_any_file_size_is_refused() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-watch-test").unwrap();
        let dest = dir.join("out");
        assert!(super::write_update(&dest, u64::MAX - 1, b"abc").is_err());
        super::write_update(&dest, 0, b"abc").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        let _ = std::fs::remove_dir_all(dir);
    }
}
