//! The manager thread's inbox: messages from callers, pool threads and
//! connection threads, in the order sent.
//!
//! A queue under a mutex with a condition variable, not a channel: a channel's
//! send that wakes a sleeping receiver looks up the sending thread's handle,
//! which creates one in that thread's local storage. For a C program's own
//! threads (its main thread above all) nothing ever frees it, and memory
//! checkers report it as possibly lost. This queue never touches thread
//! handles, and wakes the manager thread only when it sleeps.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub use crossbeam_channel::{RecvTimeoutError, TryRecvError};

struct Queue<T> {
    items: VecDeque<T>,
    /// The receiver sleeps on `ready`: a send must wake it.
    sleeping: bool,
    /// The receiver is gone: sends fail.
    closed: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    ready: Condvar,
    /// Senders alive: when none is left, an empty inbox is disconnected.
    senders: AtomicUsize,
    /// Items queued, read without the lock by a receiver that polls.
    len: AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A sending end; clone it for each thread that sends.
pub struct Sender<T>(Arc<Shared<T>>);

/// The one receiving end.
pub struct Receiver<T>(Arc<Shared<T>>);

/// A new inbox with no bound on its length.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            sleeping: false,
            closed: false,
        }),
        ready: Condvar::new(),
        senders: AtomicUsize::new(1),
        len: AtomicUsize::new(0),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `msg`; gives it back if the receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), T> {
        let mut q = self.0.lock();
        if q.closed {
            return Err(msg);
        }
        q.items.push_back(msg);
        self.0.len.store(q.items.len(), Ordering::Release);
        if q.sleeping {
            q.sleeping = false;
            drop(q);
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: a sleeping receiver must learn it.
            let mut q = self.0.lock();
            if q.sleeping {
                q.sleeping = false;
                drop(q);
                self.0.ready.notify_one();
            }
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inbox::Sender")
    }
}

impl<T> Receiver<T> {
    fn take(&self, q: &mut Queue<T>) -> Option<T> {
        let item = q.items.pop_front();
        if item.is_some() {
            self.0.len.store(q.items.len(), Ordering::Release);
        }
        item
    }

    /// The next message if one is queued. Cheap when the inbox is empty (no
    /// lock taken), so it can be polled.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        if self.0.len.load(Ordering::Acquire) == 0 {
            return if self.0.senders.load(Ordering::Acquire) == 0 {
                // Re-check under the lock: a last message may have come.
                let mut q = self.0.lock();
                self.take(&mut q).ok_or(TryRecvError::Disconnected)
            } else {
                Err(TryRecvError::Empty)
            };
        }
        let mut q = self.0.lock();
        self.take(&mut q).ok_or(TryRecvError::Empty)
    }

    /// The next message, waiting for it until `deadline` (forever if None).
    pub fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut q = self.0.lock();
        loop {
            if let Some(item) = self.take(&mut q) {
                return Ok(item);
            }
            if self.0.senders.load(Ordering::Acquire) == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            q.sleeping = true;
            q = match deadline {
                None => self.0.ready.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        q.sleeping = false;
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.0
                        .ready
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            q.sleeping = false;
        }
    }

    /// Waits until `deadline` at most.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    /// Waits as long as it takes; an error only when every sender is gone.
    pub fn recv(&self) -> Result<T, RecvTimeoutError> {
        self.recv_until(None)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.closed = true;
        // What was never read goes now, not with the last sender.
        q.items.clear();
        self.0.len.store(0, Ordering::Release);
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inbox::Receiver")
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::Duration;

    #[test]
    fn messages_come_in_order_from_many_senders_and_the_end_is_seen() {
        let (tx, rx) = unbounded::<(u32, u32)>();
        let threads: Vec<_> = (0..4)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        tx.send((s, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u32; 4];
        let mut got = 0;
        while let Ok((s, i)) = rx.recv() {
            assert_eq!(next[s as usize], i, "out of order from sender {s}");
            next[s as usize] += 1;
            got += 1;
        }
        assert_eq!(got, 40_000);
        for t in threads {
            t.join().unwrap();
        }
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }

    #[test]
    fn a_deadline_passes_and_a_closed_inbox_refuses() {
        let (tx, rx) = unbounded::<u8>();
        let at = Instant::now() + Duration::from_millis(1);
        assert!(matches!(
            rx.recv_deadline(at),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
    }
}
