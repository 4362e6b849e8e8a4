//! Tasks waiting for a worker: highest priority first, FIFO among equals. One FIFO
//! per priority level, the levels in an ordered map: most workflows use a handful of
//! priorities, so taking the next task is a deque pop, not a walk down a heap of a
//! million entries.

use std::collections::{BTreeMap, VecDeque};

use crate::task::{Task, TaskId};

/// The waiting tasks.
#[derive(Default)]
pub struct ReadyQueue {
    levels: BTreeMap<u64, VecDeque<Box<Task>>>,
    len: usize,
}

/// Maps a priority to a key whose unsigned order is the priority's numeric order.
pub(super) fn key(priority: f64) -> u64 {
    let bits = priority.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

impl ReadyQueue {
    /// How many tasks wait.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a task behind those of its priority.
    pub fn push_back(&mut self, task: Box<Task>) {
        self.levels
            .entry(key(task.priority))
            .or_default()
            .push_back(task);
        self.len += 1;
    }

    /// Puts back one task taken with `pop_front` and not placed, ahead of the rest.
    pub fn push_front(&mut self, task: Box<Task>) {
        self.levels
            .entry(key(task.priority))
            .or_default()
            .push_front(task);
        self.len += 1;
    }

    /// The next task `pop_front` would take.
    pub fn peek_front(&self) -> Option<&Task> {
        self.levels
            .last_key_value()
            .and_then(|(_, q)| q.front())
            .map(|t| &**t)
    }

    /// Takes the next task: highest priority, then first come.
    pub fn pop_front(&mut self) -> Option<Box<Task>> {
        let mut level = self.levels.last_entry()?;
        let task = level.get_mut().pop_front();
        if level.get().is_empty() {
            level.remove();
        }
        self.len -= usize::from(task.is_some());
        task
    }

    /// Takes out task `id`.
    pub fn remove(&mut self, id: TaskId) -> Option<Box<Task>> {
        let (&k, q) = self
            .levels
            .iter_mut()
            .find(|(_, q)| q.iter().any(|t| t.id == id))?;
        let at = q.iter().position(|t| t.id == id)?;
        let task = q.remove(at);
        if q.is_empty() {
            self.levels.remove(&k);
        }
        self.len -= 1;
        task
    }

    /// Takes every task, in the order they would have run.
    pub fn drain_in_order(&mut self) -> Vec<Box<Task>> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(t) = self.pop_front() {
            out.push(t);
        }
        out
    }

    /// Takes out the tasks `take` picks.
    pub fn take_where(&mut self, mut take: impl FnMut(&Task) -> bool) -> Vec<Box<Task>> {
        let mut out = Vec::new();
        for q in self.levels.values_mut() {
            let mut keep = VecDeque::with_capacity(q.len());
            for t in q.drain(..) {
                if take(&t) {
                    out.push(t);
                } else {
                    keep.push_back(t);
                }
            }
            *q = keep;
        }
        self.levels.retain(|_, q| !q.is_empty());
        self.len -= out.len();
        out
    }

    /// The tasks in the order they would run.
    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.levels
            .values()
            .rev()
            .flat_map(|q| q.iter().map(|t| &**t))
    }

    /// True if task `id` waits here.
    pub fn contains(&self, id: TaskId) -> bool {
        self.levels.values().any(|q| q.iter().any(|t| t.id == id))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn task(id: TaskId, priority: f64) -> Box<Task> {
        let mut t = Task::command(c"true");
        t.id = id;
        t.priority = priority;
        t
    }

    #[test]
    fn priority_keys_keep_numeric_order() {
        let ps = [-1e300, -2.5, -0.0, 0.0, 1e-300, 1.0, 7.5, 1e300];
        for w in ps.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{} {}", w[0], w[1]);
        }
    }

    #[test]
    fn highest_first_fifo_among_equals_and_push_front_restores_order() {
        let mut q = ReadyQueue::default();
        for (id, p) in [(1, 0.0), (2, 5.0), (3, 0.0), (4, -1.0), (5, 5.0)] {
            q.push_back(task(id, p));
        }
        let a = q.pop_front().unwrap();
        let b = q.pop_front().unwrap();
        assert_eq!((a.id, b.id), (2, 5));
        assert_eq!(q.peek_front().map(|t| t.id), Some(1));
        q.push_front(b);
        q.push_front(a);
        let order: Vec<_> = q.drain_in_order().iter().map(|t| t.id).collect();
        assert_eq!(order, vec![2, 5, 1, 3, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn remove_and_take_where() {
        let mut q = ReadyQueue::default();
        for id in 1..=6 {
            q.push_back(task(id, (id % 2) as f64));
        }
        assert_eq!(q.remove(3).unwrap().id, 3);
        assert!(q.remove(3).is_none());
        let odd = q.take_where(|t| t.id % 2 == 1);
        assert_eq!(odd.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(q.len(), 3);
        assert!(q.contains(4) && !q.contains(1));
    }
}
