//! Where temps are kept and what makes them again: a table the manager thread
//! alone owns and updates (a task came back, a worker was lost, a temp was
//! fetched), read by the scheduler to place the tasks that read temps.
//!
//! A temp a remote worker made stays there. Without peer transfers only that
//! worker can run the tasks that read it; with them (the default) any remote
//! worker can, fetching it from a worker that holds it, and a worker that ran
//! a task reading it holds a replica from then on. If every worker holding it
//! is lost, the task that made it (its recipe, held here) runs again;
//! meanwhile its readers wait. A temp whose data the
//! manager has (made by the local pool, or fetched) has no entry: any worker
//! can be sent it. The [`File`] itself keeps only where the manager's copy is,
//! which the pool threads write and the user's fetch reads.
//!
//! Recipes refer to the files they make; the table, not the file, holds them,
//! so a file never refers to a task and nothing has to break a cycle.
//!
//! A task that made several temps runs again once however many of them a lost
//! worker took: the temps one run of a task made share a maker number, and a
//! maker being run again is not run again a second time (for another of its
//! temps lost later, say its last replica) until that run comes back.

use std::collections::{HashMap, HashSet};

use super::scheduler::WorkerId;
use crate::files::{File, FileKind};
use crate::task::{Task, TaskId};

/// Where a temp is, for placing the tasks that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempPlace {
    /// Not a temp, or one the manager holds (any worker can be sent it), or
    /// one nobody made (its readers find it missing).
    Anywhere,
    /// Only at this remote worker.
    Worker(WorkerId),
    /// Being made (by a task submitted and not yet returned, or again after its
    /// worker was lost): tasks that read it wait.
    BeingMade,
}

/// One temp kept away from the manager.
struct Kept {
    /// At this worker, or None while it is made again.
    at: Option<WorkerId>,
    /// Other workers holding a replica.
    replicas: Vec<WorkerId>,
    /// What made it, to make it again if its worker is lost.
    recipe: Box<Task>,
    /// The run of a task that made it, shared by all the temps that run made:
    /// see [`Temps::remaking`].
    maker: u64,
    /// Being brought to the manager after a peer could not fetch it: tasks
    /// that read it wait until it is here.
    bringing: bool,
}

/// The table of temps kept at remote workers, by file id.
#[derive(Default)]
pub(crate) struct Temps {
    /// Peer transfers on: tasks reading a temp may run at any remote worker.
    pub(crate) peers_on: std::sync::Arc<std::sync::atomic::AtomicBool>,
    kept: HashMap<u64, Kept>,
    /// Temps each worker was recorded to keep (some may have moved since).
    by_worker: HashMap<WorkerId, Vec<u64>>,
    /// Temps that tasks submitted and not yet returned will write, with how
    /// many such tasks: tasks submitted after them that read one wait for it.
    coming: HashMap<u64, u32>,
    /// The temps each of those tasks writes.
    makers: HashMap<TaskId, Vec<u64>>,
    /// The last maker number given (see [`Kept::maker`]).
    last_maker: u64,
    /// Makers whose temps are being made again: run again once, however many
    /// of their temps are lost, until that run comes back.
    remaking: HashSet<u64>,
}

impl Temps {
    /// Where tasks that read `file` can run.
    pub(crate) fn place(&self, file: &File) -> TempPlace {
        if (self.kept.is_empty() && self.coming.is_empty())
            || !matches!(file.kind(), FileKind::Temp)
        {
            return TempPlace::Anywhere;
        }
        // A task that will write it is still out, whether or not an earlier
        // writer left a copy somewhere: readers wait for the last write.
        if self.coming.contains_key(&file.id()) {
            return TempPlace::BeingMade;
        }
        match self.kept.get(&file.id()) {
            None => TempPlace::Anywhere,
            Some(Kept {
                at: Some(_),
                bringing: true,
                ..
            }) => TempPlace::BeingMade,
            Some(Kept { at: Some(w), .. }) => TempPlace::Worker(*w),
            Some(Kept { at: None, .. }) => TempPlace::BeingMade,
        }
    }

    /// `task` (the program's, just submitted) will write the temps among its
    /// outputs that it does not also read: until it is returned, tasks that
    /// read them wait (see [`Temps::returned`]).
    pub(crate) fn submitted(&mut self, task: &Task) {
        let Some(extra) = &task.extra else { return };
        let reads = |id: u64| extra.inputs.iter().any(|m| m.file.id() == id);
        let makes: Vec<u64> = extra
            .outputs
            .iter()
            .filter(|m| matches!(m.file.kind(), FileKind::Temp) && !reads(m.file.id()))
            .map(|m| m.file.id())
            .collect();
        if makes.is_empty() {
            return;
        }
        for &id in &makes {
            *self.coming.entry(id).or_default() += 1;
        }
        if let Some(earlier) = self.makers.insert(task.id, makes) {
            // Not expected (ids are unique); its count must not stay behind.
            self.uncount(&earlier);
        }
    }

    /// Task `id` was returned to the program (whatever its result): the temps
    /// it was to write are no longer waited for on its account. True if it was
    /// to write any, so that tasks waiting for them are tried again (to run,
    /// or to find them missing).
    pub(crate) fn returned(&mut self, id: TaskId) -> bool {
        if self.makers.is_empty() {
            return false;
        }
        match self.makers.remove(&id) {
            Some(makes) => {
                self.uncount(&makes);
                true
            }
            None => false,
        }
    }

    fn uncount(&mut self, files: &[u64]) {
        for id in files {
            if let Some(n) = self.coming.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    self.coming.remove(id);
                }
            }
        }
    }

    /// The remote worker holding temp `file_id`, if only a worker has it.
    pub(crate) fn worker_of(&self, file_id: u64) -> Option<WorkerId> {
        self.kept.get(&file_id).and_then(|k| k.at)
    }

    /// Whether remote worker `worker` holds temp `file_id` (made or replicated there).
    pub(crate) fn held_by(&self, file_id: u64, worker: WorkerId) -> bool {
        self.kept
            .get(&file_id)
            .is_some_and(|k| k.at == Some(worker) || k.replicas.contains(&worker))
    }

    /// Whether tasks reading temps may run at remote workers that do not hold
    /// them (fetching them from one that does).
    pub(crate) fn shared(&self) -> bool {
        self.peers_on.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many workers hold temp `file_id`.
    pub(crate) fn holders(&self, file_id: u64) -> usize {
        self.kept
            .get(&file_id)
            .map_or(0, |k| usize::from(k.at.is_some()) + k.replicas.len())
    }

    /// Remote worker `worker` holds a replica of temp `file_id` now.
    pub(crate) fn add_replica(&mut self, file_id: u64, worker: WorkerId) {
        let Some(k) = self.kept.get_mut(&file_id) else {
            return;
        };
        if k.at.is_none() || k.at == Some(worker) || k.replicas.contains(&worker) {
            return;
        }
        k.replicas.push(worker);
        self.by_worker.entry(worker).or_default().push(file_id);
    }

    /// `task` came back: from a remote worker that holds the temps `kept` of
    /// its outputs now (`Some`), else from the local pool. A temp it wrote
    /// that the manager now holds has no place any more; one a remote task
    /// left at its worker (as its outcome and the output's flags return it:
    /// a command killed at its time limit returns what it wrote, a
    /// failure-only output is not returned on success) stays there, with the
    /// task's recipe to make it again.
    pub(crate) fn task_done(&mut self, worker: WorkerId, kept: Option<&[u64]>, task: &Task) {
        let Some(extra) = &task.extra else { return };
        let remote = kept.is_some();
        let succeeded = remote && task.result == crate::task::TaskResult::Success;
        let kept_there = |id: u64| {
            task.result != crate::task::TaskResult::Cancelled
                && kept.is_some_and(|k| k.contains(&id))
        };
        if succeeded {
            // Temps it read that it did not hold were fetched from a peer.
            for m in &extra.inputs {
                if matches!(m.file.kind(), FileKind::Temp) {
                    self.add_replica(m.file.id(), worker);
                }
            }
        }
        let mut maker = None;
        for m in &extra.outputs {
            if !matches!(m.file.kind(), FileKind::Temp) {
                continue;
            }
            let id = m.file.id();
            let old = if m.file.temp_location().is_some() {
                self.kept.remove(&id)
            } else if kept_there(id) {
                let maker = *maker.get_or_insert_with(|| {
                    self.last_maker += 1;
                    self.last_maker
                });
                let recipe = task.recipe();
                self.by_worker.entry(worker).or_default().push(id);
                self.kept.insert(
                    id,
                    Kept {
                        at: Some(worker),
                        replicas: Vec::new(),
                        recipe,
                        maker,
                        bringing: false,
                    },
                )
            } else {
                None
            };
            // Made again (or written anew): any run making it again is over.
            if let Some(old) = old {
                self.remaking.remove(&old.maker);
            }
        }
    }

    /// Removes the entry of temp `file_id`; a maker with no temp left in the
    /// table is no longer being made again (nothing of it can be lost now).
    fn remove(&mut self, file_id: u64) {
        let Some(k) = self.kept.remove(&file_id) else {
            return;
        };
        if self.remaking.contains(&k.maker) && !self.kept.values().any(|o| o.maker == k.maker) {
            self.remaking.remove(&k.maker);
        }
    }

    /// Temp `file_id` was deleted where it was kept: it is nowhere now.
    pub(crate) fn forget(&mut self, file_id: u64) {
        self.remove(file_id);
    }

    /// The manager is bringing temp `file_id` from the worker holding it.
    pub(crate) fn bringing(&mut self, file_id: u64) {
        if let Some(k) = self.kept.get_mut(&file_id) {
            k.bringing = true;
        }
    }

    /// Bringing temp `file_id` to the manager ended (arrived, see
    /// [`Temps::fetched`], or failed): its readers wait for it no more.
    pub(crate) fn brought(&mut self, file_id: u64) {
        if let Some(k) = self.kept.get_mut(&file_id) {
            k.bringing = false;
        }
    }

    /// The file of temp `file_id`, while it is kept away from the manager.
    pub(crate) fn file(&self, file_id: u64) -> Option<std::sync::Arc<File>> {
        let k = self.kept.get(&file_id)?;
        let extra = k.recipe.extra.as_ref()?;
        extra
            .outputs
            .iter()
            .find(|m| m.file.id() == file_id)
            .map(|m| m.file.clone())
    }

    /// Temp `file_id` arrived at the manager: any worker can be sent it now.
    /// Returns the workers that hold it still (made or replicated there).
    pub(crate) fn fetched(&mut self, file_id: u64) -> Vec<WorkerId> {
        let holders = self.kept.get(&file_id).map_or_else(Vec::new, |k| {
            k.at.iter().chain(k.replicas.iter()).copied().collect()
        });
        self.remove(file_id);
        holders
    }

    /// `worker` is gone with the temps it kept: each is marked as being made
    /// again, and the task that made them is returned (a fresh copy, with one
    /// of those temps) once: not for each temp it made, nor if it is being run
    /// again already.
    pub(crate) fn lost(&mut self, worker: WorkerId) -> Vec<(u64, Box<Task>)> {
        let mut remake = Vec::new();
        let mut gone = Vec::new();
        for id in self.by_worker.remove(&worker).unwrap_or_default() {
            if let Some(k) = self.kept.get_mut(&id) {
                k.replicas.retain(|w| *w != worker);
                if k.at == Some(worker) {
                    // Bringing it from there fails with the worker.
                    k.bringing = false;
                    // A replica elsewhere takes its place; with none, it is made again.
                    k.at = k.replicas.pop();
                    if k.at.is_none() {
                        // A maker that read what it wrote (it added to the
                        // temp) cannot make it again: what it read is gone
                        // too. Readers are placed anywhere, to find it missing.
                        let reads_it = k
                            .recipe
                            .extra
                            .as_ref()
                            .is_some_and(|e| e.inputs.iter().any(|m| m.file.id() == id));
                        if reads_it {
                            gone.push(id);
                        } else if self.remaking.insert(k.maker) {
                            remake.push((id, k.recipe.recipe()));
                        }
                    }
                }
            }
        }
        for id in gone {
            self.remove(id);
        }
        remake
    }

    /// Making again the temps `task` writes came to nothing: tasks that read
    /// them are placed anywhere, to find them missing.
    pub(crate) fn remake_failed(&mut self, task: &Task) {
        let Some(extra) = &task.extra else { return };
        for m in &extra.outputs {
            let id = m.file.id();
            let Some(k) = self.kept.get(&id) else {
                continue;
            };
            // A temp of it lost later may be made again by another run.
            self.remaking.remove(&k.maker);
            if k.at.is_none() {
                self.kept.remove(&id);
            }
        }
    }

    /// How many temps the table holds (kept or being made again).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::files::Mount;
    use crate::task::TaskResult;
    use std::sync::{Arc, Weak};

    /// The temps `task` wrote: what its worker reports it holds.
    fn made_by(task: &Task) -> Vec<u64> {
        task.extra
            .as_ref()
            .map(|e| e.outputs.iter().map(|m| m.file.id()).collect())
            .unwrap_or_default()
    }

    /// `task` came back from remote worker `worker`, which holds every temp it wrote.
    fn done_at(temps: &mut Temps, worker: WorkerId, task: &Task) {
        temps.task_done(worker, Some(&made_by(task)), task);
    }

    #[test]
    fn a_temp_is_placed_where_its_worker_says_it_holds_it_whatever_the_outcome() {
        let mut temps = Temps::default();
        let (killed, not_returned) = (File::temp().unwrap(), File::temp().unwrap());
        // Killed at its time limit, it returns what it wrote.
        let t = maker(&killed, TaskResult::MaxWallTime);
        done_at(&mut temps, 3, &t);
        assert_eq!(temps.place(&killed), TempPlace::Worker(3));
        // A failure-only output of a task that succeeded is not returned.
        temps.task_done(3, Some(&[]), &maker(&not_returned, TaskResult::Success));
        assert_eq!(temps.place(&not_returned), TempPlace::Anywhere);
        assert_eq!(temps.worker_of(not_returned.id()), None);
        // Cancelled: what it wrote is not kept.
        let t = maker(&not_returned, TaskResult::Cancelled);
        done_at(&mut temps, 4, &t);
        assert_eq!(temps.worker_of(not_returned.id()), None);
    }

    fn maker(temp: &Arc<File>, result: TaskResult) -> Box<Task> {
        let mut t = Task::command(c"echo x > t");
        t.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        t.finish(result, None);
        t
    }

    #[test]
    fn a_temp_made_at_a_remote_worker_is_placed_there_and_nowhere_else() {
        let mut temps = Temps::default();
        let (temp, other) = (File::temp().unwrap(), File::temp().unwrap());
        done_at(&mut temps, 3, &maker(&temp, TaskResult::Success));
        assert_eq!(temps.place(&temp), TempPlace::Worker(3));
        assert_eq!(temps.worker_of(temp.id()), Some(3));
        assert_eq!(temps.place(&other), TempPlace::Anywhere);
        // A failed task leaves nothing behind; the local pool keeps nothing.
        temps.task_done(4, Some(&[]), &maker(&other, TaskResult::OutputMissing));
        temps.task_done(0, None, &maker(&other, TaskResult::Success));
        assert_eq!(temps.place(&other), TempPlace::Anywhere);
        assert_eq!(temps.len(), 1);
    }

    #[test]
    fn a_temp_the_manager_holds_goes_anywhere() {
        let mut temps = Temps::default();
        let temp = File::temp().unwrap();
        done_at(&mut temps, 3, &maker(&temp, TaskResult::Success));
        temps.fetched(temp.id());
        assert_eq!(temps.place(&temp), TempPlace::Anywhere);
        assert!(temps.lost(3).is_empty(), "nothing to make again");
        // Written again here: the manager's copy wins over any worker's.
        done_at(&mut temps, 3, &maker(&temp, TaskResult::Success));
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-temps-test").unwrap();
        temp.set_temp_location(dir.join("t"));
        temps.task_done(0, None, &maker(&temp, TaskResult::Success));
        assert_eq!(temps.place(&temp), TempPlace::Anywhere);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_lost_workers_temps_are_made_again_by_their_recipe_and_waited_for() {
        let mut temps = Temps::default();
        let (a, b) = (File::temp().unwrap(), File::temp().unwrap());
        done_at(&mut temps, 3, &maker(&a, TaskResult::Success));
        done_at(&mut temps, 4, &maker(&b, TaskResult::Success));
        let remake = temps.lost(3);
        assert_eq!(remake.len(), 1);
        let (id, recipe) = &remake[0];
        assert_eq!(*id, a.id());
        assert_eq!(recipe.result, TaskResult::Unknown, "a fresh task, not run");
        assert!(recipe.extra.as_ref().unwrap().outputs[0].file.id() == a.id());
        assert_eq!(temps.place(&a), TempPlace::BeingMade);
        assert_eq!(temps.worker_of(a.id()), None);
        assert_eq!(temps.place(&b), TempPlace::Worker(4), "other workers' stay");
        assert!(temps.lost(3).is_empty(), "lost once");
        // Made again at another worker: placed there, and lost again from there.
        done_at(&mut temps, 4, &maker(&a, TaskResult::Success));
        assert_eq!(temps.place(&a), TempPlace::Worker(4));
        assert_eq!(temps.lost(4).len(), 2);
    }

    fn maker_of(temps: &[&Arc<File>], result: TaskResult) -> Box<Task> {
        let mut t = Task::command(c"echo x > t0; echo x > t1; echo x > t2");
        for (i, temp) in temps.iter().enumerate() {
            let name = format!("t{i}");
            t.add_output(Mount::new((*temp).clone(), &name, 0).unwrap())
                .unwrap();
        }
        t.finish(result, None);
        t
    }

    #[test]
    fn a_task_that_made_several_lost_temps_is_made_again_once() {
        let mut temps = Temps::default();
        let made: Vec<Arc<File>> = (0..3).map(|_| File::temp().unwrap()).collect();
        let refs: Vec<&Arc<File>> = made.iter().collect();
        done_at(&mut temps, 3, &maker_of(&refs, TaskResult::Success));
        let remake = temps.lost(3);
        assert_eq!(remake.len(), 1, "one run makes all three again");
        for t in &made {
            assert_eq!(temps.place(t), TempPlace::BeingMade);
        }
        // Back from its new worker: lost from there, it runs again, once.
        let (_, mut again) = remake.into_iter().next().unwrap();
        again.finish(TaskResult::Success, None);
        done_at(&mut temps, 4, &again);
        for t in &made {
            assert_eq!(temps.place(t), TempPlace::Worker(4));
        }
        assert_eq!(temps.lost(4).len(), 1);
    }

    #[test]
    fn a_task_being_made_again_is_not_run_again_for_another_of_its_temps() {
        let mut temps = Temps::default();
        let (a, b) = (File::temp().unwrap(), File::temp().unwrap());
        done_at(&mut temps, 3, &maker_of(&[&a, &b], TaskResult::Success));
        temps.add_replica(a.id(), 5);
        let remake = temps.lost(3);
        assert_eq!(remake.len(), 1, "b is made again");
        assert_eq!(temps.place(&a), TempPlace::Worker(5), "a has a replica");
        assert_eq!(temps.place(&b), TempPlace::BeingMade);
        // Its replica lost while that run is out: the same run makes it.
        assert!(temps.lost(5).is_empty(), "already being made again");
        assert_eq!(temps.place(&a), TempPlace::BeingMade);
        // That run failed: a temp of it lost later is made by another.
        let (_, mut failed) = remake.into_iter().next().unwrap();
        failed.finish(TaskResult::Forsaken, None);
        temps.remake_failed(&failed);
        assert_eq!(temps.len(), 0);
        done_at(&mut temps, 6, &maker_of(&[&a, &b], TaskResult::Success));
        temps.add_replica(a.id(), 7);
        assert_eq!(temps.lost(6).len(), 1);
        assert!(temps.lost(7).is_empty(), "still the one run");
        // A maker whose temps all left the table is forgotten with them.
        temps.fetched(a.id());
        temps.forget(b.id());
        assert!(temps.remaking.is_empty());
    }

    #[test]
    fn a_temp_is_waited_for_while_a_task_submitted_to_write_it_is_out() {
        let mut temps = Temps::default();
        let temp = File::temp().unwrap();
        let (mut first, mut second) = (
            maker(&temp, TaskResult::Unknown),
            maker(&temp, TaskResult::Unknown),
        );
        (first.id, second.id) = (7, 8);
        temps.submitted(&first);
        temps.submitted(&second);
        assert_eq!(temps.place(&temp), TempPlace::BeingMade);
        assert!(temps.returned(7));
        assert!(!temps.returned(7), "counted once");
        assert_eq!(temps.place(&temp), TempPlace::BeingMade, "one still out");
        assert!(temps.returned(8));
        assert_eq!(temps.place(&temp), TempPlace::Anywhere);
        // A task that reads the temp it writes does not wait for itself.
        let mut both = maker(&temp, TaskResult::Unknown);
        both.add_input(Mount::new(temp.clone(), "in", 0).unwrap())
            .unwrap();
        both.id = 9;
        temps.submitted(&both);
        assert_eq!(temps.place(&temp), TempPlace::Anywhere);
        assert!(!temps.returned(9));
    }

    #[test]
    fn a_temp_that_cannot_be_made_again_is_waited_for_no_more() {
        let mut temps = Temps::default();
        let temp = File::temp().unwrap();
        done_at(&mut temps, 3, &maker(&temp, TaskResult::Success));
        let (_, recipe) = temps.lost(3).pop().unwrap();
        let mut failed = recipe;
        failed.finish(TaskResult::Forsaken, None);
        temps.remake_failed(&failed);
        assert_eq!(temps.place(&temp), TempPlace::Anywhere);
        assert_eq!(temps.len(), 0);
    }

    #[test]
    fn a_recipe_held_by_the_table_does_not_keep_its_temp_alive_after_the_table() {
        let mut temps = Temps::default();
        let temp = File::temp().unwrap();
        done_at(&mut temps, 3, &maker(&temp, TaskResult::Success));
        let weak: Weak<File> = Arc::downgrade(&temp);
        drop(temp);
        assert!(weak.upgrade().is_some(), "the recipe still writes it");
        drop(temps);
        assert!(weak.upgrade().is_none(), "no cycle keeps it");
    }
}
