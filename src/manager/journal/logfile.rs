//! A log file whose reader may go away. A log may be a FIFO or a pipe (a
//! program's `tail -f`-like reader): a write to one whose reader has exited
//! raises SIGPIPE, which by default ends the whole program, the very thing a
//! library must never do. Writes to such a file run with SIGPIPE blocked on
//! the writing thread, and the signal a failed write raised is taken back
//! before it is unblocked: the write only fails (`EPIPE`), the log stops, and
//! the program goes on. Writes to a regular file (which cannot raise it) go
//! straight through.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// A log's file (see the module's documentation).
pub(crate) struct LogFile {
    file: File,
    /// Not a regular file: writes may raise SIGPIPE.
    pipe: bool,
}

impl LogFile {
    pub(crate) fn new(file: File) -> LogFile {
        let pipe = file.metadata().map_or(true, |m| !m.file_type().is_file());
        LogFile { file, pipe }
    }

    /// Creates (or truncates) the log file `path`, its directory made if
    /// missing; with its device and inode, by which logs sharing a file are
    /// found.
    pub(crate) fn create(path: &Path) -> Result<(LogFile, (u64, u64))> {
        use std::os::unix::fs::MetadataExt;
        make_parent(path)?;
        let f = File::create(path).map_err(|e| Error::io(path.display(), e))?;
        let m = f.metadata().map_err(|e| Error::io(path.display(), e))?;
        Ok((LogFile::new(f), (m.dev(), m.ino())))
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pipe {
            without_sigpipe(|| self.file.write(buf))
        } else {
            self.file.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Makes the directory a log file `path` goes into, if it is missing. A
/// parent that is a file is left to the file's creation, which names the
/// failure rightly ("Not a directory"); making it would say "File exists".
fn make_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    Ok(())
}

/// Runs `f` (a write) with SIGPIPE blocked on this thread; a SIGPIPE that
/// `f` raised is taken, one that was pending before is left as it was.
fn without_sigpipe<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    // SAFETY: the sets are initialised by sigemptyset before any other use;
    // the mask calls act on this thread only and restore its mask before
    // returning; sigtimedwait with a zero timeout only takes a signal that is
    // pending and blocked here.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut old);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old) != 0 {
            return f();
        }
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pending);
        let was_pending =
            libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let out = f();
        // Not only a write that failed with EPIPE raised it: one that had put
        // some bytes in when the reader went away returns their count, and
        // raises it too. Taken whatever the outcome, if it was not pending.
        if !was_pending {
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now) == -1
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// The thread SIGPIPE was last delivered to (0: none).
    static SIGPIPE_TO: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

    extern "C" fn note_sigpipe(_: libc::c_int) {
        // SAFETY: gettid is async-signal-safe.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        SIGPIPE_TO.store(tid, std::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn a_write_its_reader_leaves_halfway_raises_no_signal_either() {
        // A handler that notes which thread SIGPIPE reaches (other tests of
        // this process may get theirs too; only this thread's counts).
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = note_sigpipe as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            assert_eq!(
                libc::sigaction(libc::SIGPIPE, &act, std::ptr::null_mut()),
                0
            );
        }
        let mut fds = [0; 2];
        // SAFETY: pipe writes two new descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are new and owned here alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        // SAFETY: asks the size of a pipe this test owns.
        let capacity = unsafe { libc::fcntl(fds[0], libc::F_GETPIPE_SZ) };
        assert!(capacity > 0);
        // The reader goes away once the pipe is full: the one write below is
        // then past its first bytes and waits for room.
        let reader = std::thread::spawn(move || loop {
            let mut queued: libc::c_int = 0;
            // SAFETY: FIONREAD writes the bytes queued into `queued`.
            assert_eq!(
                unsafe { libc::ioctl(read.as_raw_fd(), libc::FIONREAD, &mut queued) },
                0
            );
            if queued >= capacity {
                drop(read);
                return;
            }
            std::thread::yield_now();
        });
        let mut log = LogFile::new(write);
        let big = vec![b'x'; 4 * capacity as usize];
        let wrote = log.write(&big).unwrap();
        reader.join().unwrap();
        assert_eq!(wrote, capacity as usize);
        // SAFETY: reads this thread's id.
        let me = unsafe { libc::syscall(libc::SYS_gettid) };
        assert_ne!(
            SIGPIPE_TO.load(std::sync::atomic::Ordering::Relaxed),
            me,
            "SIGPIPE reached the writing thread"
        );
    }

    #[test]
    fn a_write_to_a_pipe_with_no_reader_fails_without_a_signal() {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two new descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are new and owned here alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        drop(read);
        let mut log = LogFile::new(write);
        assert!(log.pipe);
        // With SIGPIPE's default action, this test process would end here.
        let e = log.write_all(b"line\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        // Nothing is left pending to end the process later.
        // SAFETY: as in `without_sigpipe`.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            assert_eq!(libc::sigpending(&mut pending), 0);
            assert_eq!(libc::sigismember(&pending, libc::SIGPIPE), 0);
        }
    }
}
