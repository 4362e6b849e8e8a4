//! A one-shot answer from the manager thread to a caller waiting in a request
//! (`Manager::ask`).
//!
//! It is a mutex and a condition variable rather than a channel: a channel's
//! blocking receive stores a handle to the waiting thread in that thread's
//! local storage, which is never freed for a C program's main thread (it has no
//! Rust runtime to do it at exit), and memory checkers report it as possibly
//! lost. A condition variable waits without it.

use std::sync::{Arc, Condvar, Mutex};

enum State<T> {
    Waiting,
    Sent(T),
    /// The manager thread dropped the request without answering (it stopped).
    Dropped,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// The manager thread's end: answer once with [`Reply::send`]; dropping it
/// unanswered wakes the caller with an error.
pub struct Reply<T>(Arc<Slot<T>>);

/// The caller's end.
pub struct Answer<T>(Arc<Slot<T>>);

/// A new request's two ends.
pub(crate) fn oneshot<T>() -> (Reply<T>, Answer<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Waiting),
        ready: Condvar::new(),
    });
    (Reply(slot.clone()), Answer(slot))
}

impl<T> Slot<T> {
    fn settle(&self, to: State<T>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Waiting) {
            *state = to;
            self.ready.notify_all();
        }
    }
}

impl<T> Reply<T> {
    /// Answers the request. Never fails: a caller that went away just never
    /// reads it (the `Result` mirrors a channel's send, for the call sites).
    pub(crate) fn send(self, value: T) -> Result<(), T> {
        self.0.settle(State::Sent(value));
        Ok(())
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.0.settle(State::Dropped);
    }
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

impl<T> Answer<T> {
    /// Waits for the answer; `Err` if the request was dropped unanswered.
    pub(crate) fn recv(self) -> Result<T, ()> {
        self.recv_until(None)
    }

    /// Like [`Answer::recv`], waiting at most `limit`; `Err` also when the
    /// time ran out.
    pub(crate) fn recv_timeout(self, limit: std::time::Duration) -> Result<T, ()> {
        self.recv_until(std::time::Instant::now().checked_add(limit))
    }

    fn recv_until(self, deadline: Option<std::time::Instant>) -> Result<T, ()> {
        let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match std::mem::replace(&mut *state, State::Dropped) {
                State::Sent(v) => return Ok(v),
                State::Dropped => return Err(()),
                State::Waiting => {
                    *state = State::Waiting;
                    let Some(deadline) = deadline else {
                        state = self.0.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                        continue;
                    };
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(());
                    }
                    state = self
                        .0
                        .ready
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn an_answer_arrives_and_a_dropped_request_is_an_error() {
        let (reply, answer) = oneshot();
        let t = std::thread::spawn(move || reply.send(7));
        assert_eq!(answer.recv(), Ok(7));
        t.join().unwrap().unwrap();

        let (reply, answer) = oneshot::<u8>();
        let t = std::thread::spawn(move || drop(reply));
        assert_eq!(answer.recv(), Err(()));
        t.join().unwrap();
    }

    #[test]
    fn a_bounded_wait_ends_without_an_answer_and_takes_one_that_came() {
        let (reply, answer) = oneshot::<u8>();
        assert_eq!(
            answer.recv_timeout(std::time::Duration::from_millis(1)),
            Err(())
        );
        drop(reply);
        let (reply, answer) = oneshot();
        reply.send(3).unwrap();
        assert_eq!(answer.recv_timeout(std::time::Duration::ZERO), Ok(3));
    }
}
