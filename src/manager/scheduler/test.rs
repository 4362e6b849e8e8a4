//! The scheduler's rules, driven event by event with no threads.

use super::*;
use crate::task::{Task, TaskResult};

#[derive(Default)]
struct TestComm {
    dispatched: Vec<(WorkerId, Box<Task>)>,
    completed: Vec<Box<Task>>,
    cancels: Vec<(WorkerId, TaskId)>,
    /// Tasks told their end time passed.
    ends: Vec<(WorkerId, TaskId)>,
}

impl Comm for TestComm {
    fn dispatch(&mut self, worker: WorkerId, task: Box<Task>) {
        self.dispatched.push((worker, task));
    }
    fn complete(&mut self, task: Box<Task>) {
        self.completed.push(task);
    }
    fn cancel_on_worker(&mut self, worker: WorkerId, id: TaskId) {
        self.cancels.push((worker, id));
    }
    fn end_on_worker(&mut self, worker: WorkerId, id: TaskId) {
        self.ends.push((worker, id));
    }
}

impl TestComm {
    fn dispatched_ids(&self) -> Vec<TaskId> {
        self.dispatched.iter().map(|(_, t)| t.id).collect()
    }
    /// Takes the dispatched task `id` back, as a worker holding it would.
    fn take(&mut self, id: TaskId) -> (WorkerId, Box<Task>) {
        let at = self
            .dispatched
            .iter()
            .position(|(_, t)| t.id == id)
            .expect("dispatched");
        let (w, mut t) = self.dispatched.remove(at);
        t.flags |= crate::task::FLAG_STARTED;
        (w, t)
    }
}

fn cores(c: f64) -> Resources {
    Resources {
        millicores: (c * 1000.0) as u64,
        memory_mb: 1000,
        disk_mb: 1000,
        gpus: 0,
    }
}

fn task(id: TaskId, priority: f64, c: f64) -> Box<Task> {
    let mut t = Task::command(c"true");
    t.id = id;
    t.set_priority(priority).unwrap();
    t.set_cores(c).unwrap();
    t
}

fn finish_ok(s: &mut Scheduler, comm: &mut TestComm, id: TaskId) {
    let (w, mut t) = comm.take(id);
    t.finish(TaskResult::Success, None);
    s.finished(w, t, comm);
}

#[test]
fn higher_priority_first_and_fifo_among_equals() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    for (id, prio) in [(1, 0.0), (2, 5.0), (3, 0.0), (4, 5.0), (5, 9.0)] {
        s.submit(task(id, prio, 1.0), &mut comm);
    }
    let mut order = Vec::new();
    s.schedule(&mut comm);
    while let Some((_, t)) = comm.dispatched.first() {
        let id = t.id;
        order.push(id);
        finish_ok(&mut s, &mut comm, id);
        s.schedule(&mut comm);
    }
    assert_eq!(order, vec![5, 2, 4, 1, 3]);
    assert_eq!(comm.completed.len(), 5);
}

#[test]
fn fractional_cores_pack_onto_one_worker() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), Some(0));
    for id in 1..=10 {
        s.submit(task(id, 0.0, 0.25), &mut comm);
    }
    s.schedule(&mut comm);
    // 2 cores / 0.25 = 8 at once, none prefetched with prefetch 0.
    assert_eq!(comm.dispatched.len(), 8);
    assert_eq!(s.stats().tasks_running, 8);
    assert_eq!(s.stats().committed.millicores, 2000);
    finish_ok(&mut s, &mut comm, 1);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched.len(), 8);
}

#[test]
fn memory_and_gpus_limit_packing_too() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    let cap = Resources {
        millicores: 8000,
        memory_mb: 1000,
        disk_mb: 0,
        gpus: 2,
    };
    s.add_worker(0, cap, Some(0));
    for id in 1..=3 {
        let mut t = task(id, 0.0, 1.0);
        t.set_memory(400).unwrap();
        s.submit(t, &mut comm);
    }
    for id in 4..=6 {
        let mut t = task(id, 0.0, 1.0);
        t.set_gpus(1).unwrap();
        s.submit(t, &mut comm);
    }
    s.schedule(&mut comm);
    // Two 400 MB tasks fit in 1000 MB; the third is passed over, and the gpu tasks
    // behind it still use the two gpus.
    assert_eq!(comm.dispatched_ids(), vec![1, 2, 4, 5]);
}

#[test]
fn a_task_that_can_never_fit_is_unschedulable_at_once() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), Some(0));
    s.submit(task(1, 0.0, 3.0), &mut comm);
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].result(), TaskResult::Unschedulable);
    assert!(comm.completed[0].reason().is_some());
    // With remote workers allowed, it waits for one that fits.
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), Some(0));
    s.submit(task(1, 0.0, 3.0), &mut comm);
    s.schedule(&mut comm);
    assert!(comm.completed.is_empty() && comm.dispatched.is_empty());
    s.add_worker(1, cores(4.0), Some(0));
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched[0].0, 1);
}

#[test]
fn no_workers_and_none_allowed_is_unschedulable() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.submit(task(1, 0.0, 1.0), &mut comm);
    assert_eq!(comm.completed[0].result(), TaskResult::Unschedulable);
}

#[test]
fn prefetch_gives_a_busy_worker_its_next_tasks() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), Some(2));
    for id in 1..=10 {
        s.submit(task(id, 0.0, 1.0), &mut comm);
    }
    s.schedule(&mut comm);
    // Two start, two wait at the worker.
    assert_eq!(comm.dispatched_ids(), vec![1, 2, 3, 4]);
    assert_eq!(s.stats().tasks_running, 2);
    assert_eq!(s.stats().tasks_on_workers, 4);
    finish_ok(&mut s, &mut comm, 1);
    s.schedule(&mut comm);
    // Task 3 started in 1's place; one more is sent to keep two waiting.
    assert_eq!(comm.dispatched_ids(), vec![2, 3, 4, 5]);
    assert_eq!(s.stats().tasks_running, 2);
}

#[test]
fn a_failure_not_the_tasks_own_is_retried_then_reported() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    let mut t = task(1, 0.0, 1.0);
    t.set_retries(2).unwrap();
    s.submit(t, &mut comm);
    for attempt in 1..=3 {
        s.schedule(&mut comm);
        let (w, mut t) = comm.take(1);
        assert_eq!(t.attempts, attempt);
        t.finish(
            TaskResult::Forsaken,
            Some("sandbox could not be made".into()),
        );
        s.finished(w, t, &mut comm);
    }
    assert_eq!(comm.completed.len(), 1);
    let done = &comm.completed[0];
    assert_eq!(done.result(), TaskResult::MaxRetries);
    assert_eq!(done.retries_used(), 2);
    assert_eq!(s.stats().tasks_retried, 2);
}

#[test]
fn the_tasks_own_failure_is_not_retried() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    let (w, mut t) = comm.take(1);
    t.finish(TaskResult::FunctionError, Some("returned 3".into()));
    s.finished(w, t, &mut comm);
    assert_eq!(comm.completed[0].result(), TaskResult::FunctionError);
    assert_eq!(s.stats().tasks_retried, 0);
}

#[test]
fn a_lost_worker_s_tasks_run_elsewhere_then_are_forsaken() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(1, cores(1.0), Some(0));
    let mut t = task(1, 0.0, 1.0);
    t.set_retries(1).unwrap();
    s.submit(t, &mut comm);
    s.schedule(&mut comm);
    let (_, t) = comm.take(1);
    s.remove_worker(1, vec![t], &mut comm);
    assert!(comm.completed.is_empty(), "re-queued, not lost");
    s.add_worker(2, cores(1.0), Some(0));
    s.schedule(&mut comm);
    let (w, t) = comm.take(1);
    assert_eq!(w, 2);
    s.remove_worker(2, vec![t], &mut comm);
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].result(), TaskResult::Forsaken);
}

#[test]
fn cancel_waiting_and_running_tasks() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.submit(task(2, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert!(s.cancel(2, &mut comm), "waiting task");
    assert_eq!(comm.completed[0].id, 2);
    assert_eq!(comm.completed[0].result(), TaskResult::Cancelled);
    assert!(s.cancel(1, &mut comm), "running task");
    assert_eq!(comm.cancels, vec![(0, 1)]);
    // The worker sends it back marked.
    let (w, mut t) = comm.take(1);
    t.flags |= crate::task::FLAG_CANCELLED;
    s.finished(w, t, &mut comm);
    assert_eq!(comm.completed[1].result(), TaskResult::Cancelled);
    assert!(!s.cancel(1, &mut comm), "finished tasks are not cancelled");
    assert!(!s.cancel(99, &mut comm));
}

#[test]
fn shutdown_cancels_waiting_tasks_and_later_submissions() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    for id in 1..=4 {
        s.submit(task(id, id as f64, 1.0), &mut comm);
    }
    s.schedule(&mut comm);
    s.begin_shutdown(&mut comm);
    let cancelled: Vec<TaskId> = comm.completed.iter().map(|t| t.id).collect();
    assert_eq!(cancelled, vec![3, 2, 1], "highest priority first");
    assert!(comm
        .completed
        .iter()
        .all(|t| t.result() == TaskResult::Cancelled));
    s.submit(task(5, 0.0, 1.0), &mut comm);
    assert_eq!(
        comm.completed.last().unwrap().result(),
        TaskResult::Cancelled
    );
    // The running task finishes normally.
    finish_ok(&mut s, &mut comm, 4);
    assert_eq!(comm.completed.last().unwrap().result(), TaskResult::Success);
    assert_eq!(s.dispatched_len(), 0);
    s.schedule(&mut comm);
    assert!(comm.dispatched.is_empty());
}

#[test]
fn wait_for_workers_holds_dispatch() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.set_wait_for_workers(2);
    s.add_worker(0, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert!(comm.dispatched.is_empty());
    s.add_worker(1, cores(1.0), Some(0));
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched.len(), 1);
    // Reached once, it holds nothing again (as in TaskVine): a worker fewer
    // does not stop the next task.
    s.remove_worker(0, Vec::new(), &mut comm);
    s.submit(task(2, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1, 2]);
    // Set again, it holds again.
    s.set_wait_for_workers(3);
    s.submit(task(3, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1, 2]);
}

#[test]
fn automatic_prefetch_deepens_for_short_tasks_and_holds_none_for_long_ones() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), None);
    for id in 1..=5000 {
        s.submit(task(id, 0.0, 1.0), &mut comm);
    }
    s.schedule(&mut comm);
    // Nothing measured yet: only what the worker can run.
    assert_eq!(comm.dispatched.len(), 2);
    let run = |comm: &mut TestComm, s: &mut Scheduler, us: i64| {
        let id = comm.dispatched[0].1.id;
        let (w, mut t) = comm.take(id);
        t.times.started = 1_000_000;
        t.times.done = 1_000_000 + us;
        t.finish(TaskResult::Success, None);
        s.finished(w, t, comm);
        s.schedule(comm);
    };
    for _ in 0..64 {
        run(&mut comm, &mut s, 2);
    }
    let deep = comm.dispatched.len();
    assert!(deep > 100, "2 us tasks are prefetched deeply: {deep}");
    // The tasks already handed over run first; then the depth follows the 1 s
    // measure.
    for _ in 0..4500 {
        run(&mut comm, &mut s, 1_000_000);
    }
    let shallow = comm.dispatched.len();
    assert_eq!(shallow, 2, "1 s tasks: none waits at the worker");
}

#[test]
fn a_task_returned_unstarted_frees_its_place_in_the_worker_queue() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(1));
    for id in 1..=3 {
        s.submit(task(id, 0.0, 1.0), &mut comm);
    }
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1, 2]);
    // The worker gives back task 2 before starting it (a cancel).
    assert!(s.cancel(2, &mut comm));
    let at = comm.dispatched.iter().position(|(_, t)| t.id == 2).unwrap();
    let (w, mut t) = comm.dispatched.remove(at);
    t.flags |= crate::task::FLAG_CANCELLED;
    s.finished(w, t, &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1, 3]);
    assert_eq!(s.stats().tasks_running, 1);
}

#[test]
fn a_task_returned_unstarted_that_the_model_had_started_frees_what_it_held() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    for id in 1..=2 {
        s.submit(task(id, 0.0, 1.0), &mut comm);
    }
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1]);
    // The worker gives task 1 back without starting it, though the model had
    // started it: its core is free again and task 2 goes there.
    let (w, t) = comm.dispatched.remove(0);
    s.finished(w, t, &mut comm);
    assert_eq!(s.stats().committed.millicores, 0);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![2]);
}

#[test]
fn a_task_returned_that_was_not_dispatched_is_handed_back_not_dropped() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    s.finished(0, task(7, 0.0, 1.0), &mut comm);
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].id, 7);
}

#[test]
fn a_cancel_accepted_wins_over_a_worker_that_finished_the_task_meanwhile() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert!(s.cancel(1, &mut comm));
    // The worker had finished it before the cancel reached it.
    finish_ok(&mut s, &mut comm, 1);
    assert_eq!(comm.completed[0].result(), TaskResult::Cancelled);
    assert_eq!(s.stats().tasks_cancelled, 1);
}

#[test]
fn a_cancelled_task_on_a_lost_worker_comes_back_cancelled_not_retried() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(1, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert!(s.cancel(1, &mut comm));
    let (_, t) = comm.take(1);
    s.remove_worker(1, vec![t], &mut comm);
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].result(), TaskResult::Cancelled);
    assert_eq!(s.ready_len(), 0);
}

#[test]
fn tasks_no_worker_can_take_now_do_not_hide_smaller_ones_at_any_depth() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), Some(0));
    for id in 1..=200 {
        s.submit(task(id, 0.0, 3.0), &mut comm);
    }
    for id in 201..=204 {
        s.submit(task(id, 0.0, 1.0), &mut comm);
    }
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![201, 202]);
    assert_eq!(s.stats().tasks_waiting, 202);
    finish_ok(&mut s, &mut comm, 201);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![202, 203]);
    // Small tasks submitted later, behind the parked ones, run too.
    s.submit(task(205, 0.0, 1.0), &mut comm);
    finish_ok(&mut s, &mut comm, 202);
    finish_ok(&mut s, &mut comm, 203);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![204, 205]);
    // A worker they fit joins: the large ones go there, first come first.
    s.add_worker(1, cores(3.0), Some(0));
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![204, 205, 1]);
    finish_ok(&mut s, &mut comm, 1);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![204, 205, 2]);
}

#[test]
fn tasks_of_a_function_no_worker_knows_do_not_hide_commands() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(1, cores(1.0), Some(0));
    s.set_functions(1, Vec::new());
    for id in 1..=100 {
        let mut t = Task::function(c"unknown_here", b"");
        t.id = id;
        s.submit(t, &mut comm);
    }
    s.submit(task(101, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![101]);
    // The worker learns the function: its tasks run, in order.
    s.set_functions(1, vec![Box::from(&b"unknown_here"[..])]);
    finish_ok(&mut s, &mut comm, 101);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1]);
}

#[test]
fn parked_and_ready_tasks_are_taken_in_priority_order() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    // Large tasks of high priority park; small ones of lower priority queue.
    for id in 2..=100 {
        s.submit(task(id, 10.0, 2.0), &mut comm);
    }
    s.submit(task(101, 1.0, 1.0), &mut comm);
    s.submit(task(102, 5.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1]);
    finish_ok(&mut s, &mut comm, 1);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![102]);
    // Now a worker for the large ones joins: they come before the small one left.
    s.add_worker(1, cores(2.0), Some(0));
    finish_ok(&mut s, &mut comm, 102);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![2, 101]);
}

#[test]
fn parked_tasks_can_be_cancelled_and_come_back_at_shutdown() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    for id in 1..=3 {
        s.submit(task(id, id as f64, 2.0), &mut comm);
    }
    s.schedule(&mut comm);
    assert!(s.is_outstanding(2));
    assert!(s.cancel(2, &mut comm));
    assert_eq!(comm.completed[0].id, 2);
    s.begin_shutdown(&mut comm);
    let ids: Vec<_> = comm.completed.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![2, 3, 1]);
    assert_eq!(s.stats().tasks_waiting, 0);
}

#[test]
fn a_draining_worker_gets_no_new_task_and_others_do() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(1, cores(2.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1]);
    s.set_draining(1, true);
    s.submit(task(2, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1], "a core is free, but it drains");
    assert_eq!(s.held_by(1), Some(1));
    s.add_worker(2, cores(1.0), Some(0));
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1, 2]);
    assert_eq!(comm.dispatched[1].0, 2);
}

#[test]
fn a_recalled_task_waits_again_without_using_a_retry_unless_it_finished() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(1, cores(1.0), Some(0));
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.submit(task(2, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert!(s.recall(1, &mut comm));
    assert_eq!(comm.cancels, [(1, 1)]);
    assert!(!s.recall(99, &mut comm), "not on a worker");
    // Stopped by the recall: back in the queue, the attempt not counted.
    let (w, mut t) = comm.take(1);
    t.flags |= crate::task::FLAG_CANCELLED;
    t.finish(TaskResult::Cancelled, None);
    s.finished(w, t, &mut comm);
    assert!(comm.completed.is_empty());
    assert_eq!(s.stats().tasks_waiting, 2);
    // It waits behind the task that was waiting already.
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [2]);
    finish_ok(&mut s, &mut comm, 2);
    comm.completed.clear();
    s.schedule(&mut comm);
    let (_, again) = comm.dispatched.iter().find(|(_, t)| t.id == 1).unwrap();
    assert_eq!(again.retries_used(), 0);
    // Finished before the recall arrived: it comes back as it finished.
    assert!(s.recall(1, &mut comm));
    finish_ok(&mut s, &mut comm, 1);
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].result(), TaskResult::Success);
}

#[test]
fn a_task_waits_for_its_start_time_and_a_waiting_one_ends_at_its_end_time() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(1.0), Some(0));
    s.tick(1_000, &mut comm);
    let mut later = task(1, 0.0, 1.0);
    later.set_time_start(5_000);
    s.submit(later, &mut comm);
    let mut big = task(2, 0.0, 8.0);
    big.set_time_end(3_000);
    s.submit(big, &mut comm);
    s.schedule(&mut comm);
    assert!(comm.dispatched.is_empty(), "nothing before its start time");
    assert_eq!(s.next_timer_us(), Some(3_000));
    s.tick(3_000, &mut comm);
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].id, 2);
    assert_eq!(comm.completed[0].result(), TaskResult::MaxEndTime);
    assert_eq!(s.next_timer_us(), Some(5_000));
    s.tick(4_999, &mut comm);
    s.schedule(&mut comm);
    assert!(comm.dispatched.is_empty());
    s.tick(5_000, &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1]);
    assert_eq!(s.next_timer_us(), None);
}

#[test]
fn a_running_task_at_its_end_time_is_stopped_as_such_not_cancelled() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(2.0), Some(0));
    s.tick(1_000, &mut comm);
    for id in [1, 2] {
        let mut t = task(id, 0.0, 1.0);
        t.set_time_end(3_000);
        s.submit(t, &mut comm);
    }
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1, 2]);
    s.tick(3_000, &mut comm);
    assert!(comm.cancels.is_empty());
    assert_eq!(comm.ends, [(0, 1), (0, 2)]);
    // The worker stopped one as killed at its end time; the other was still
    // waiting for its inputs there, and comes back cancelled.
    let (w, mut t) = comm.take(1);
    t.finish(
        TaskResult::MaxEndTime,
        Some("killed at its end time".into()),
    );
    s.finished(w, t, &mut comm);
    let (w, mut t) = comm.take(2);
    t.flags |= crate::task::FLAG_CANCELLED;
    t.finish(TaskResult::Cancelled, None);
    s.finished(w, t, &mut comm);
    let results: Vec<TaskResult> = comm.completed.iter().map(|t| t.result()).collect();
    assert_eq!(results, [TaskResult::MaxEndTime, TaskResult::MaxEndTime]);
}

#[test]
fn a_task_with_features_goes_only_to_a_worker_offering_them_all() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.add_worker(1, cores(4.0), Some(0));
    s.add_worker(2, cores(4.0), Some(0));
    s.add_worker(3, cores(4.0), Some(0));
    s.set_features(1, vec![b"big".to_vec().into()]);
    s.set_features(2, vec![b"big".to_vec().into(), b"fast".to_vec().into()]);
    for id in 1..=3 {
        let mut t = task(id, 0.0, 1.0);
        t.add_feature(c"big").unwrap();
        t.add_feature(c"fast").unwrap();
        s.submit(t, &mut comm);
    }
    s.schedule(&mut comm);
    let workers: Vec<WorkerId> = comm.dispatched.iter().map(|(w, _)| *w).collect();
    assert_eq!(workers, [2, 2, 2]);
}

#[test]
fn a_task_forsaken_more_than_its_max_forsaken_comes_back_forsaken() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.set_default_retries(0);
    let mut t = task(1, 0.0, 1.0);
    t.set_max_forsaken(1);
    s.submit(t, &mut comm);
    for (round, worker) in [(1, 1), (2, 2)] {
        s.add_worker(worker, cores(1.0), Some(0));
        s.schedule(&mut comm);
        let (w, t) = comm.take(1);
        s.remove_worker(w, vec![t], &mut comm);
        if round == 1 {
            assert!(comm.completed.is_empty(), "once is within its max_forsaken");
        }
    }
    assert_eq!(comm.completed.len(), 1);
    assert_eq!(comm.completed[0].result(), TaskResult::Forsaken);
}

const SEC: i64 = 1_000_000;

fn task_wanting(id: TaskId, time_min: f64) -> Box<Task> {
    let mut t = task(id, 0.0, 1.0);
    t.set_time_min(time_min).unwrap();
    t
}

#[test]
fn a_task_is_not_given_a_worker_with_less_time_left_than_its_time_min() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    let now = 1_000 * SEC;
    s.tick(now, &mut comm);
    s.add_worker(1, cores(1.0), Some(0));
    s.set_end(1, Some(now + 600 * SEC));
    s.submit(task_wanting(1, 3600.0), &mut comm);
    s.schedule(&mut comm);
    assert!(comm.dispatched.is_empty());
    assert!(comm.completed.is_empty(), "it waits, it does not fail");
    // A worker with no known end takes it.
    s.add_worker(2, cores(1.0), Some(0));
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched.len(), 1);
    assert_eq!(comm.dispatched[0].0, 2);
}

#[test]
fn a_task_whose_time_min_fits_the_time_left_runs_there() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    let now = 1_000 * SEC;
    s.tick(now, &mut comm);
    s.add_worker(1, cores(1.0), Some(0));
    s.set_end(1, Some(now + 600 * SEC));
    s.submit(task_wanting(1, 600.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1]);
}

#[test]
fn a_worker_near_its_end_takes_no_new_task() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    let end = 1_000 * SEC;
    s.add_worker(1, cores(1.0), Some(0));
    s.set_end(1, Some(end));
    s.tick(end - END_MARGIN_US - SEC, &mut comm);
    s.submit(task(1, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![1]);
    finish_ok(&mut s, &mut comm, 1);
    // Within the margin now: the next task waits.
    s.tick(end - END_MARGIN_US + 1, &mut comm);
    s.submit(task(2, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert!(comm.dispatched.is_empty());
    assert_eq!(comm.completed.len(), 1, "only the first, finished");
}

#[test]
fn a_task_held_back_by_its_time_min_does_not_hold_back_others_of_its_size() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    let now = 1_000 * SEC;
    s.tick(now, &mut comm);
    s.add_worker(1, cores(2.0), Some(0));
    s.set_end(1, Some(now + 600 * SEC));
    s.submit(task_wanting(1, 3600.0), &mut comm);
    s.submit(task(2, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![2]);
    // Later tasks like the second still go, after the first was parked.
    finish_ok(&mut s, &mut comm, 2);
    s.submit(task(3, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), vec![3]);
}

#[test]
fn tasks_passing_over_the_same_worker_wait_as_one_shape() {
    let mut s = Scheduler::new(false);
    let mut comm = TestComm::default();
    s.add_worker(0, cores(4.0), Some(0));
    s.add_worker(1, cores(1.0), Some(0));
    for id in 1..=500 {
        let mut t = task(id, 0.0, 1.0);
        t.extra_mut().slow_on.push(0);
        s.submit(t, &mut comm);
    }
    s.submit(task(501, 0.0, 1.0), &mut comm);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1, 501]);
    assert_eq!(comm.dispatched[0].0, 1, "task 1 passes over worker 0");
    assert_eq!(comm.dispatched[1].0, 0);
    // One shape for the tasks passing over worker 0, not one per task: a
    // round costs the same whatever the number of them waiting.
    assert_eq!(s.parked.by_shape.len(), 1);
    assert_eq!(s.parked.len, 499);
    // Each finished task makes room for the next one.
    finish_ok(&mut s, &mut comm, 1);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [501, 2]);
    assert_eq!(comm.dispatched[1].0, 1);
    assert_eq!(s.parked.len, 498);
}

#[test]
fn a_lost_worker_s_tasks_no_longer_count_as_running_in_their_category() {
    let mut s = Scheduler::new(true);
    let mut comm = TestComm::default();
    s.categories.set_max_concurrent(c"k", Some(1));
    s.add_worker(1, cores(2.0), Some(0));
    for id in 1..=2 {
        let mut t = task(id, 0.0, 1.0);
        t.set_category(c"k").unwrap();
        s.submit(t, &mut comm);
    }
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1], "one of k at once");
    let (_, t) = comm.take(1);
    s.remove_worker(1, vec![t], &mut comm);
    assert_eq!(s.categories.stats(c"k").running, 0);
    s.add_worker(2, cores(2.0), Some(0));
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [1], "k may run one again");
    assert_eq!(s.categories.stats(c"k").running, 1);
    finish_ok(&mut s, &mut comm, 1);
    s.schedule(&mut comm);
    assert_eq!(comm.dispatched_ids(), [2]);
    finish_ok(&mut s, &mut comm, 2);
    assert_eq!(s.categories.stats(c"k").running, 0);
    assert_eq!(s.categories.stats(c"k").done, 2);
}
