//! The rule by which a worker starts the tasks it was given: in the order they
//! arrived, each as soon as it fits in what is free. The worker applies the rule to
//! its real tasks; the manager applies the same rule to the ids it dispatched, and so
//! knows, without being told, how many tasks each worker holds that have not started.
//! Both see the same dispatches and the same completions, and the rule's outcome does
//! not depend on how those interleave, so the two views agree.

use std::collections::VecDeque;

use crate::resources::Resources;

/// Capacity, what is in use, and the items waiting to start.
#[derive(Debug)]
pub struct SlotQueue<T> {
    capacity: Resources,
    in_use: Resources,
    /// Taken by items this queue does not hold (direct tasks in the local
    /// pool, for the manager's model of it).
    reserved: Resources,
    waiting: VecDeque<(Resources, T)>,
}

impl<T> SlotQueue<T> {
    /// An empty queue over `capacity`.
    pub fn new(capacity: Resources) -> Self {
        SlotQueue {
            capacity,
            in_use: Resources::default(),
            reserved: Resources::default(),
            waiting: VecDeque::new(),
        }
    }

    /// The whole capacity.
    pub fn capacity(&self) -> Resources {
        self.capacity
    }

    /// What the started items hold.
    pub fn in_use(&self) -> Resources {
        self.in_use
    }

    /// What the started items and the reservation hold.
    pub fn taken(&self) -> Resources {
        self.in_use.plus(&self.reserved)
    }

    /// Items given but not started.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting items, in queue order.
    pub fn waiting(&self) -> impl Iterator<Item = &T> {
        self.waiting.iter().map(|(_, item)| item)
    }

    /// True when an item asking for `req` would start at once.
    pub fn would_start(&self, req: &Resources) -> bool {
        self.waiting.is_empty() && self.taken().plus(req).fits_within(&self.capacity)
    }

    /// Sets what items this queue does not hold take; what starts now is
    /// appended to `started`.
    pub fn set_reserved(&mut self, reserved: Resources, started: &mut Vec<(Resources, T)>) {
        self.reserved = reserved;
        self.start_what_fits(started);
    }

    /// Adds an item; those that start as a result are appended to `started`. An
    /// item whose `req` exceeds the capacity would never start and would hold up
    /// every item behind it: it is given back instead.
    pub fn push(
        &mut self,
        req: Resources,
        item: T,
        started: &mut Vec<(Resources, T)>,
    ) -> Result<(), T> {
        if !req.fits_within(&self.capacity) {
            return Err(item);
        }
        self.waiting.push_back((req, item));
        self.start_what_fits(started);
        Ok(())
    }

    /// Like [`SlotQueue::push`], but the item goes ahead of the waiting items at
    /// the back for which `goes_before` is true (those of lower priority), and
    /// behind all others: FIFO among equals, and O(1) when nothing is passed.
    pub fn push_ordered(
        &mut self,
        req: Resources,
        item: T,
        goes_before: impl Fn(&T) -> bool,
        started: &mut Vec<(Resources, T)>,
    ) -> Result<(), T> {
        if !req.fits_within(&self.capacity) {
            return Err(item);
        }
        let mut at = self.waiting.len();
        while at > 0 && goes_before(&self.waiting[at - 1].1) {
            at -= 1;
        }
        self.waiting.insert(at, (req, item));
        self.start_what_fits(started);
        Ok(())
    }

    /// Takes out every waiting item `matches` accepts (all of them, or the
    /// first only), in queue order; what starts now is appended to `started`.
    pub fn remove_all_waiting(
        &mut self,
        mut matches: impl FnMut(&T) -> bool,
        all: bool,
        started: &mut Vec<(Resources, T)>,
    ) -> Vec<(Resources, T)> {
        let mut out = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for (req, item) in self.waiting.drain(..) {
            if (all || out.is_empty()) && matches(&item) {
                out.push((req, item));
            } else {
                kept.push_back((req, item));
            }
        }
        self.waiting = kept;
        self.start_what_fits(started);
        out
    }

    /// A started item holding `req` is done; what starts now is appended to `started`.
    pub fn release(&mut self, req: Resources, started: &mut Vec<(Resources, T)>) {
        self.in_use = self.in_use.minus(&req);
        self.start_what_fits(started);
    }

    /// Takes out the first waiting item `matches` accepts; what starts now (the
    /// head may have changed) is appended to `started`.
    pub fn remove_waiting(
        &mut self,
        mut matches: impl FnMut(&T) -> bool,
        started: &mut Vec<(Resources, T)>,
    ) -> Option<(Resources, T)> {
        let at = self.waiting.iter().position(|(_, t)| matches(t))?;
        let out = self.waiting.remove(at);
        self.start_what_fits(started);
        out
    }

    /// Takes out every waiting item.
    pub fn drain_waiting(&mut self) -> impl Iterator<Item = (Resources, T)> + '_ {
        self.waiting.drain(..)
    }

    fn start_what_fits(&mut self, started: &mut Vec<(Resources, T)>) {
        while let Some((req, _)) = self.waiting.front() {
            let after = self.in_use.plus(req);
            if !after.plus(&self.reserved).fits_within(&self.capacity) {
                break;
            }
            self.in_use = after;
            started.extend(self.waiting.pop_front());
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn cores(c: u64) -> Resources {
        Resources {
            millicores: c * 1000,
            ..Default::default()
        }
    }

    #[test]
    fn starts_in_order_and_only_what_fits() {
        let mut q = SlotQueue::new(cores(2));
        let mut started = Vec::new();
        q.push(cores(1), 'a', &mut started).unwrap();
        q.push(cores(2), 'b', &mut started).unwrap();
        q.push(cores(1), 'c', &mut started).unwrap();
        // b does not fit next to a, and c waits behind b: arrival order is kept.
        assert_eq!(started.iter().map(|s| s.1).collect::<String>(), "a");
        started.clear();
        q.release(cores(1), &mut started);
        assert_eq!(started.iter().map(|s| s.1).collect::<String>(), "b");
        started.clear();
        q.release(cores(2), &mut started);
        assert_eq!(started.iter().map(|s| s.1).collect::<String>(), "c");
    }

    #[test]
    fn the_outcome_does_not_depend_on_interleaving() {
        // Push then release, or release then push: the same set ends up started.
        let mut a = SlotQueue::new(cores(1));
        let mut b = SlotQueue::new(cores(1));
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        a.push(cores(1), 1, &mut sa).unwrap();
        b.push(cores(1), 1, &mut sb).unwrap();
        a.push(cores(1), 2, &mut sa).unwrap();
        a.release(cores(1), &mut sa);
        b.release(cores(1), &mut sb);
        b.push(cores(1), 2, &mut sb).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(a.in_use(), b.in_use());
        assert_eq!(a.waiting_len(), b.waiting_len());
    }

    #[test]
    fn an_item_larger_than_the_capacity_is_given_back_not_queued() {
        let mut q = SlotQueue::new(cores(2));
        let mut started = Vec::new();
        assert_eq!(q.push(cores(3), 'x', &mut started), Err('x'));
        q.push(cores(1), 'a', &mut started).unwrap();
        assert_eq!(started, vec![(cores(1), 'a')]);
        assert_eq!(q.waiting_len(), 0);
    }

    #[test]
    fn an_ordered_push_passes_only_lower_items_and_keeps_fifo_among_equals() {
        let mut q = SlotQueue::new(cores(1));
        let mut started = Vec::new();
        q.push(cores(1), (0, 'a'), &mut started).unwrap();
        for item in [(1, 'b'), (5, 'c'), (1, 'd'), (5, 'e')] {
            q.push_ordered(cores(1), item, |w: &(i32, char)| w.0 < item.0, &mut started)
                .unwrap();
        }
        started.clear();
        let mut order = String::new();
        for _ in 0..4 {
            q.release(cores(1), &mut started);
            order.extend(started.drain(..).map(|s| s.1 .1));
        }
        assert_eq!(order, "cebd");
    }

    #[test]
    fn removing_the_head_lets_the_next_start() {
        let mut q = SlotQueue::new(cores(2));
        let mut started = Vec::new();
        q.push(cores(1), 1, &mut started).unwrap();
        q.push(cores(2), 2, &mut started).unwrap();
        q.push(cores(1), 3, &mut started).unwrap();
        started.clear();
        assert!(q.remove_waiting(|&t| t == 2, &mut started).is_some());
        assert_eq!(started, vec![(cores(1), 3)]);
        assert!(q.remove_waiting(|&t| t == 9, &mut started).is_none());
    }
}
