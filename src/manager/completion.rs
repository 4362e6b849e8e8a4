//! Finished tasks on their way to the callers of `wait`. The manager thread pushes,
//! any number of caller threads take. Waiters sleep on a condition variable and are
//! woken by the push that concerns them: waiting never polls.

use crate::padded::Padded;
use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
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
    /// Finished tasks not yet taken.
    done: Finished,
    /// Threads asleep waiting for any task.
    waiting_any: usize,
    /// Threads asleep waiting for a particular task or tag.
    waiting_specific: usize,
}

/// Finished tasks in completion order. `vine_wait` takes the oldest; a wait for an
/// id or a tag goes through indexes, built the first time one is asked for, so a
/// program that waits for each of a million tasks by id pays O(1) per wait.
#[derive(Default)]
struct Finished {
    /// Slot `i` holds the task with sequence number `base + i`; `None` where a task
    /// was taken out of order.
    slots: VecDeque<Option<Box<Task>>>,
    base: u64,
    live: usize,
    index: Option<Index>,
}

/// Whether the task with sequence number `seq` has been taken.
fn is_gone(base: u64, slots: &VecDeque<Option<Box<Task>>>, seq: u64) -> bool {
    seq < base || slots.get((seq - base) as usize).is_none_or(Option::is_none)
}

#[derive(Default)]
struct Index {
    by_id: HashMap<TaskId, u64>,
    /// Sequence numbers of the tasks with a tag, oldest first; an entry whose task
    /// has since been taken is skipped when met.
    by_tag: HashMap<CString, VecDeque<u64>>,
}

impl Index {
    fn add(&mut self, task: &Task, seq: u64) {
        self.by_id.insert(task.id, seq);
        if let Some(tag) = task.tag() {
            self.by_tag
                .entry(tag.to_owned())
                .or_default()
                .push_back(seq);
        }
    }
}

impl Finished {
    fn len(&self) -> usize {
        self.live
    }

    fn push(&mut self, task: Box<Task>) {
        let seq = self.base + self.slots.len() as u64;
        if let Some(index) = &mut self.index {
            index.add(&task, seq);
        }
        self.slots.push_back(Some(task));
        self.live += 1;
    }

    fn pop_oldest(&mut self) -> Option<Box<Task>> {
        while let Some(slot) = self.slots.pop_front() {
            self.base += 1;
            if let Some(task) = slot {
                self.taken(&task);
                return Some(task);
            }
        }
        None
    }

    fn take_id(&mut self, id: TaskId) -> Option<Box<Task>> {
        let seq = *self.index().by_id.get(&id)?;
        self.take_seq(seq)
    }

    /// The outcome of task `id`, if it is here.
    fn result_of(&mut self, id: TaskId) -> Option<crate::task::TaskResult> {
        let seq = *self.index().by_id.get(&id)?;
        let slot = self.slots.get((seq.checked_sub(self.base)?) as usize)?;
        slot.as_ref().map(|t| t.result)
    }

    fn take_tag(&mut self, tag: &CStr) -> Option<Box<Task>> {
        self.index();
        let (base, slots) = (self.base, &self.slots);
        let index = self.index.as_mut()?;
        let queue = index.by_tag.get_mut(tag)?;
        while queue.front().is_some_and(|&seq| is_gone(base, slots, seq)) {
            queue.pop_front();
        }
        match queue.front() {
            Some(&seq) => self.take_seq(seq),
            None => {
                index.by_tag.remove(tag);
                None
            }
        }
    }

    /// The indexes, built from what is queued the first time they are needed.
    fn index(&mut self) -> &mut Index {
        let (base, slots) = (self.base, &self.slots);
        self.index.get_or_insert_with(|| {
            let mut index = Index::default();
            for (i, t) in slots.iter().enumerate() {
                if let Some(t) = t {
                    index.add(t, base + i as u64);
                }
            }
            index
        })
    }

    fn take_seq(&mut self, seq: u64) -> Option<Box<Task>> {
        let task = self
            .slots
            .get_mut((seq.checked_sub(self.base)?) as usize)?
            .take()?;
        self.taken(&task);
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.len() > 2 * self.live + 1024 {
            self.compact();
        }
        Some(task)
    }

    /// Forgets a task just taken (its slot already emptied or popped).
    fn taken(&mut self, task: &Task) {
        self.live -= 1;
        let (base, slots) = (self.base, &self.slots);
        let Some(index) = &mut self.index else { return };
        index.by_id.remove(&task.id);
        if let Some(tag) = task.tag() {
            if let Some(queue) = index.by_tag.get_mut(tag) {
                while queue.front().is_some_and(|&seq| is_gone(base, slots, seq)) {
                    queue.pop_front();
                }
                if queue.is_empty() {
                    index.by_tag.remove(tag);
                }
            }
        }
    }

    /// Drops the holes left by tasks taken out of order (and the index entries
    /// that pointed at them).
    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        self.base = 0;
        if self.index.take().is_some() {
            self.index();
        }
    }

    fn drain(&mut self) -> Vec<Box<Task>> {
        let out: Vec<Box<Task>> = self.slots.drain(..).flatten().collect();
        self.base = 0;
        self.live = 0;
        if let Some(index) = &mut self.index {
            *index = Index::default();
        }
        out
    }
}

/// The queue, and the count of tasks submitted but not yet taken.
#[derive(Default)]
pub struct CompletionQueue {
    state: Padded<Mutex<State>>,
    any: Condvar,
    specific: Condvar,
    /// Written by submitters, `taken` by waiters, `state` by whoever finishes
    /// tasks: each on lines of its own.
    submitted: Padded<AtomicU64>,
    taken: Padded<AtomicU64>,
    /// Tasks ever pushed: what a waiter spinning before it sleeps watches.
    pushed: Padded<AtomicU64>,
}

impl CompletionQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a submission (before the task reaches the manager).
    pub fn count_submitted(&self) {
        self.submitted.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back a submission counted by [`CompletionQueue::count_submitted`]
    /// that was refused after all.
    pub fn uncount_submitted(&self) {
        self.submitted.fetch_sub(1, Ordering::AcqRel);
    }

    /// Tasks ever submitted by callers.
    pub fn submitted_total(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Tasks ever taken by waiters (or drained).
    pub fn taken_total(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
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
        for t in tasks.drain(..) {
            st.done.push(t);
        }
        self.pushed.fetch_add(n as u64, Ordering::Release);
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

    /// Hands one finished task to the waiters, waking one only if one sleeps.
    pub fn push(&self, task: Box<Task>) {
        let mut st = self.lock();
        st.done.push(task);
        self.pushed.fetch_add(1, Ordering::Release);
        let (any, specific) = (st.waiting_any, st.waiting_specific);
        drop(st);
        if any > 0 {
            self.any.notify_one();
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
            Want::Any => st.done.pop_oldest()?,
            Want::Id(id) => st.done.take_id(id)?,
            Want::Tag(tag) => st.done.take_tag(tag)?,
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

    /// Watches for a push for a moment (see [`crate::spin`]) instead of going to
    /// sleep at once; for a waiter whose task is likely to finish within
    /// microseconds while a core is idle.
    pub fn spin_for_push(&self) {
        let seen = self.pushed.load(Ordering::Acquire);
        if self.taken.load(Ordering::Acquire) < seen {
            // Something may be there already.
            return;
        }
        crate::spin::spin_until(|| (self.pushed.load(Ordering::Acquire) != seen).then_some(()));
    }

    /// Removes and returns every finished task not yet taken.
    pub fn drain(&self) -> Vec<Box<Task>> {
        let mut st = self.lock();
        let out = st.done.drain();
        self.taken.fetch_add(out.len() as u64, Ordering::AcqRel);
        out
    }

    /// The outcome of task `id` if it waits here to be taken.
    pub fn result_of(&self, id: TaskId) -> Option<crate::task::TaskResult> {
        self.lock().done.result_of(id)
    }

    /// Finished tasks not yet taken.
    pub fn finished_len(&self) -> usize {
        self.lock().done.len()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn task(id: TaskId, tag: Option<&CStr>) -> Box<Task> {
        let mut t = Task::command(c"true");
        t.id = id;
        if let Some(tag) = tag {
            t.set_tag(tag);
        }
        t
    }

    fn queue(tasks: impl IntoIterator<Item = Box<Task>>) -> CompletionQueue {
        let q = CompletionQueue::default();
        let mut v: Vec<_> = tasks.into_iter().collect();
        for _ in &v {
            q.count_submitted();
        }
        q.push_all(&mut v);
        q
    }

    fn take(q: &CompletionQueue, want: Want<'_>) -> Option<TaskId> {
        q.wait(want, None, |_| false).map(|t| t.id)
    }

    #[test]
    fn any_takes_in_completion_order_around_tasks_taken_by_id() {
        let q = queue((1..=6).map(|i| task(i, None)));
        assert_eq!(take(&q, Want::Any), Some(1));
        assert_eq!(take(&q, Want::Id(4)), Some(4));
        assert_eq!(take(&q, Want::Id(4)), None);
        assert_eq!(take(&q, Want::Id(2)), Some(2));
        assert_eq!(take(&q, Want::Any), Some(3));
        assert_eq!(take(&q, Want::Any), Some(5));
        assert_eq!(q.finished_len(), 1);
        let mut later = vec![task(7, None)];
        q.count_submitted();
        q.push_all(&mut later);
        assert_eq!(take(&q, Want::Id(7)), Some(7));
        assert_eq!(take(&q, Want::Any), Some(6));
        assert_eq!(take(&q, Want::Any), None);
        assert_eq!(q.outstanding(), 0);
    }

    #[test]
    fn tags_are_taken_oldest_first_whatever_took_the_others() {
        let (a, b) = (c"a", c"b");
        let q = queue([
            task(1, Some(a)),
            task(2, Some(b)),
            task(3, Some(a)),
            task(4, Some(a)),
            task(5, Some(b)),
            task(6, Some(a)),
        ]);
        assert_eq!(take(&q, Want::Tag(a)), Some(1));
        assert_eq!(take(&q, Want::Id(4)), Some(4));
        assert_eq!(take(&q, Want::Any), Some(2));
        assert_eq!(take(&q, Want::Tag(a)), Some(3));
        assert_eq!(take(&q, Want::Tag(a)), Some(6));
        assert_eq!(take(&q, Want::Tag(a)), None);
        assert_eq!(take(&q, Want::Tag(c"c")), None);
        assert_eq!(take(&q, Want::Tag(b)), Some(5));
        assert_eq!(q.finished_len(), 0);
    }

    #[test]
    fn holes_left_by_out_of_order_takes_are_reclaimed() {
        let n = 10_000;
        let q = queue((1..=n).map(|i| task(i, Some(c"t"))));
        // Newest first: every take leaves a hole behind the oldest task.
        for i in (2..=n).rev() {
            assert_eq!(take(&q, Want::Id(i)), Some(i));
        }
        let st = q.lock();
        assert!(st.done.slots.len() <= 2 * st.done.live + 1024);
        assert!(st.done.index.as_ref().unwrap().by_tag[c"t"].len() <= st.done.slots.len());
        drop(st);
        assert_eq!(take(&q, Want::Tag(c"t")), Some(1));
        assert!(q.lock().done.index.as_ref().unwrap().by_tag.is_empty());
        assert!(q.drain().is_empty());
    }

    #[test]
    fn drain_returns_everything_left_and_counts_it_taken() {
        let q = queue((1..=4).map(|i| task(i, None)));
        assert_eq!(take(&q, Want::Id(3)), Some(3));
        let ids: Vec<_> = q.drain().iter().map(|t| t.id).collect();
        assert_eq!(ids, [1, 2, 4]);
        assert_eq!(q.outstanding(), 0);
        assert_eq!(take(&q, Want::Id(1)), None);
    }
}
