//! Finished tasks on their way to the callers of `wait`. The manager thread pushes,
//! any number of caller threads take. Waiters sleep on a condition variable and are
//! woken by the push that concerns them: waiting never polls.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::task::{Task, TaskId};

/// What a waiter wants.
#[derive(Clone, Copy)]
pub enum Want<'a> {
    /// The next task to finish.
    Any,
    /// That task.
    Id(TaskId),
    /// The next task with that tag.
    Tag(&'a CStr),
}

#[derive(Default)]
struct State {
    /// Finished tasks in completion order. `vine_wait` takes the front; a wait for
    /// an id or a tag looks through it.
    done: VecDeque<Box<Task>>,
    /// Threads asleep waiting for any task.
    waiting_any: usize,
    /// Threads asleep waiting for a particular task or tag.
    waiting_specific: usize,
}

/// The queue, and the count of tasks submitted but not yet taken.
#[derive(Default)]
pub struct CompletionQueue {
    state: Mutex<State>,
    any: Condvar,
    specific: Condvar,
    submitted: AtomicU64,
    taken: AtomicU64,
}

impl CompletionQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a submission (before the task reaches the manager).
    pub fn count_submitted(&self) {
        self.submitted.fetch_add(1, Ordering::AcqRel);
    }

    /// Tasks ever submitted by callers.
    pub fn submitted_total(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Tasks submitted and not yet taken by a waiter.
    pub fn outstanding(&self) -> u64 {
        self.submitted
            .load(Ordering::Acquire)
            .saturating_sub(self.taken.load(Ordering::Acquire))
    }

    /// Hands finished tasks to the waiters, in order.
    pub fn push_all(&self, tasks: &mut Vec<Box<Task>>) {
        if tasks.is_empty() {
            return;
        }
        let n = tasks.len();
        let mut st = self.lock();
        st.done.extend(tasks.drain(..));
        let (any, specific) = (st.waiting_any, st.waiting_specific);
        drop(st);
        if any > 0 {
            if n >= any {
                self.any.notify_all();
            } else {
                for _ in 0..n {
                    self.any.notify_one();
                }
            }
        }
        if specific > 0 {
            self.specific.notify_all();
        }
    }

    /// Wakes every waiter so each re-checks what is outstanding.
    pub fn wake_all(&self) {
        let st = self.lock();
        let (any, specific) = (st.waiting_any, st.waiting_specific);
        drop(st);
        if any > 0 {
            self.any.notify_all();
        }
        if specific > 0 {
            self.specific.notify_all();
        }
    }

    fn take(&self, st: &mut State, want: Want<'_>) -> Option<Box<Task>> {
        let task = match want {
            Want::Any => st.done.pop_front()?,
            Want::Id(id) => {
                let at = st.done.iter().position(|t| t.id == id)?;
                st.done.remove(at)?
            }
            Want::Tag(tag) => {
                let at = st.done.iter().position(|t| t.tag() == Some(tag))?;
                st.done.remove(at)?
            }
        };
        self.taken.fetch_add(1, Ordering::AcqRel);
        Some(task)
    }

    /// Waits until a task that `want` accepts has finished, and takes it; `None`
    /// when `deadline` passes or when `still_possible` says none can come.
    pub fn wait(
        &self,
        want: Want<'_>,
        deadline: Option<Instant>,
        still_possible: impl Fn(&Self) -> bool,
    ) -> Option<Box<Task>> {
        let mut st = self.lock();
        loop {
            if let Some(t) = self.take(&mut st, want) {
                let last = self.outstanding() == 0;
                drop(st);
                if last {
                    // Anyone still waiting can now learn that nothing is left.
                    self.wake_all();
                }
                return Some(t);
            }
            if !still_possible(self) {
                return None;
            }
            let (cv, counter): (&Condvar, fn(&mut State) -> &mut usize) = match want {
                Want::Any => (&self.any, |s| &mut s.waiting_any),
                _ => (&self.specific, |s| &mut s.waiting_specific),
            };
            *counter(&mut st) += 1;
            st = match deadline {
                None => cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        *counter(&mut st) -= 1;
                        return None;
                    }
                    cv.wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            *counter(&mut st) -= 1;
        }
    }

    /// Removes and returns every finished task not yet taken.
    pub fn drain(&self) -> Vec<Box<Task>> {
        let mut st = self.lock();
        let out: Vec<Box<Task>> = st.done.drain(..).collect();
        self.taken.fetch_add(out.len() as u64, Ordering::AcqRel);
        out
    }

    /// Finished tasks not yet taken.
    pub fn finished_len(&self) -> usize {
        self.lock().done.len()
    }
}
