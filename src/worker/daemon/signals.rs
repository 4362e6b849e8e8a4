//! A worker asked to stop by a signal (a batch system cancelling its job sends
//! SIGTERM; a terminal, SIGINT or SIGHUP) removes its directory first, then
//! dies of that signal as it would have: the node's scratch space does not
//! fill with the directories of cancelled workers.
//!
//! The signals are blocked in every thread of the worker (they inherit the
//! mask of the thread that starts them, which blocks them first) and taken by
//! one thread that waits for them with `sigwait`, so nothing runs in a signal
//! handler. A task's processes start with no signal blocked: commands through
//! `std::process` (which clears the mask), PROCESS functions by clearing it
//! in the child (see `worker::isolated`).

use std::path::PathBuf;

/// The signals that ask a worker to stop.
const STOPPING: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn stopping_set() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value, and sigemptyset and
    // sigaddset only write the set they are given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOPPING {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the stopping signals in the calling thread, and so in every thread
/// it starts from now on. Called before the worker starts any thread; a signal
/// that comes meanwhile waits for [`remove_on_signal`].
pub(super) fn block() {
    let set = stopping_set();
    // SAFETY: changes the calling thread's mask to include a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Starts the thread that, at the first stopping signal, removes `dir` and
/// lets the signal end the process. Without a thread for it (none could be
/// started), the signals stay blocked and are taken as they come anyway: the
/// worker then only leaves the directory, as it did before.
pub(super) fn remove_on_signal(dir: PathBuf) {
    let started = std::thread::Builder::new()
        .name("vine-signals".into())
        .spawn(move || {
            let set = stopping_set();
            let mut sig: libc::c_int = 0;
            // SAFETY: waits for one of the blocked signals in `set`, writing its
            // number into the local.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            super::log::notice(&format!(
                "stopped by signal {sig}: removing {}",
                dir.display()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            // SAFETY: restores the default action of `sig` and unblocks it in
            // this thread, so that raising it ends the process as the signal
            // would have at first.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                let mut one: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut one);
                libc::sigaddset(&mut one, sig);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                libc::raise(sig);
            }
            // Not reached: the default action ends the process.
            std::process::exit(128 + sig);
        });
    if started.is_err() {
        let set = stopping_set();
        // SAFETY: as in `block`, the other way.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}
