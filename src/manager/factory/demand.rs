//! What a factory's workers are for: how many workers of its size the waiting
//! tasks need, and from that how many jobs to submit or give back. Plain
//! arithmetic, apart from the threads and processes that act on it.

use crate::manager::scheduler::WorkerId;
use crate::resources::{Resources, MILLI};
use crate::task::{Task, Work};

/// What a factory asks the manager: its workers' size and what they offer.
#[derive(Debug, Clone)]
pub struct Ask {
    /// Every job token of this factory starts with it.
    pub prefix: String,
    /// One worker's resources; memory and disk 0 when the worker measures them
    /// itself (then any request of them is taken to fit).
    pub size: Resources,
    /// Features its workers offer (`--feature` in its worker options).
    pub features: Vec<String>,
    /// Seconds a worker lives, if limited.
    pub wall_time_s: Option<f64>,
    /// Counting stops once the waiting tasks need more workers than this.
    pub limit: f64,
}

impl Ask {
    /// True if job token `job` is one of this factory's.
    pub fn owns(&self, job: &str) -> bool {
        job.starts_with(&self.prefix)
    }

    /// The part of one worker a task takes (its largest share of any resource),
    /// or None if no worker of this factory can run it.
    pub fn share(&self, task: &Task) -> Option<f64> {
        let features_ok = task.features().iter().all(|f| {
            f.to_str()
                .is_ok_and(|f| self.features.iter().any(|o| o.as_str() == f))
        });
        // A worker takes no task in its last seconds.
        let time_ok = self.wall_time_s.is_none_or(|w| {
            task.time_min() <= 0.0 || task.time_min() <= w - super::END_MARGIN_S as f64
        });
        if !features_ok || !time_ok {
            return None;
        }
        share_of(&task.request, &self.size)
    }
}

/// The part of a worker of `size` that `request` takes, or None if it does not fit.
pub fn share_of(request: &Resources, size: &Resources) -> Option<f64> {
    let part = |want: u64, have: u64| -> Option<f64> {
        match (want, have) {
            (0, _) => Some(0.0),
            // Measured by the worker: assumed to fit; the scheduler decides.
            (_, 0) => Some(0.0),
            (w, h) if w > h => None,
            (w, h) => Some(w as f64 / h as f64),
        }
    };
    let cores = part(request.millicores, size.millicores.max(MILLI))?;
    let memory = part(request.memory_mb, size.memory_mb)?;
    let disk = part(request.disk_mb, size.disk_mb)?;
    let gpus = match (request.gpus, size.gpus) {
        (0, _) => 0.0,
        (_, 0) => return None,
        (w, h) if w > h => return None,
        (w, h) => f64::from(w) / f64::from(h),
    };
    Some(cores.max(memory).max(disk).max(gpus))
}

/// The manager's answer: demand in workers, and the factory's workers present.
#[derive(Debug, Default)]
pub struct View {
    /// Workers of the factory's size the waiting tasks fill (a sum of shares).
    pub demand: f64,
    /// Waiting tasks no worker of the factory can run.
    pub unfit: usize,
    /// The factory's connected workers: id, job token, tasks held.
    pub workers: Vec<(WorkerId, String, usize)>,
    /// Job tokens of its workers that joined since the last view (some may
    /// have left already).
    pub joined: Vec<String>,
}

impl View {
    /// Adds `n` waiting tasks like `task`. Tasks bound to this process (function
    /// pointers) are no demand for workers elsewhere.
    pub fn count(&mut self, ask: &Ask, task: &Task, n: usize) {
        if matches!(task.work, Work::Local { .. }) {
            return;
        }
        match ask.share(task) {
            Some(s) => self.demand += s * n as f64,
            None => self.unfit += n,
        }
    }

    /// Adds `n` tasks yet to be submitted, each taken to be of the default
    /// size, up to what the factory could ever meet.
    pub fn count_left(&mut self, ask: &Ask, n: u64) {
        if n == 0 || self.enough(ask) {
            return;
        }
        if let Some(s) = share_of(&Resources::DEFAULT_REQUEST, &ask.size) {
            let room = (ask.limit - self.demand).max(0.0);
            // Just past the limit at most: the count may be any u64.
            self.demand += (s * n as f64).min(room + s);
        }
    }

    /// True once the demand exceeds what the factory could ever meet.
    pub fn enough(&self, ask: &Ask) -> bool {
        self.demand > ask.limit
    }
}

/// How many workers a factory aims for: those busy now plus those the waiting
/// tasks fill, between `min` and `max` (min above max counts as max).
pub fn target(min: usize, max: usize, busy: usize, demand: f64) -> usize {
    let wanted = busy as f64 + (demand - 1e-9).max(0.0).ceil();
    let wanted = if wanted >= max as f64 {
        max
    } else {
        wanted as usize
    };
    wanted.max(min.min(max))
}

/// Jobs to submit this cycle: toward `target`, at most `per_cycle`, never past
/// `max` alive at once.
pub fn to_submit(target: usize, alive: usize, per_cycle: usize, max: usize) -> usize {
    target.min(max).saturating_sub(alive).min(per_cycle)
}

#[cfg(test)]
mod test {
    use super::*;

    fn res(cores: f64, memory_mb: u64, disk_mb: u64, gpus: u32) -> Resources {
        Resources {
            millicores: (cores * MILLI as f64) as u64,
            memory_mb,
            disk_mb,
            gpus,
        }
    }

    #[test]
    fn a_task_takes_its_largest_share_of_a_worker() {
        let w = res(4.0, 1000, 0, 0);
        assert_eq!(share_of(&res(1.0, 0, 0, 0), &w), Some(0.25));
        assert_eq!(share_of(&res(1.0, 500, 0, 0), &w), Some(0.5));
        // Disk the worker measures: assumed to fit.
        assert_eq!(share_of(&res(1.0, 0, 10_000, 0), &w), Some(0.25));
        assert_eq!(share_of(&res(5.0, 0, 0, 0), &w), None);
        assert_eq!(share_of(&res(1.0, 2000, 0, 0), &w), None);
        // No gpus on the worker: a gpu task never fits.
        assert_eq!(share_of(&res(1.0, 0, 0, 1), &w), None);
        assert_eq!(share_of(&res(1.0, 0, 0, 1), &res(1.0, 0, 0, 2)), Some(1.0));
    }

    #[test]
    fn the_target_is_busy_workers_plus_waiting_demand_within_bounds() {
        assert_eq!(target(0, 10, 0, 0.0), 0);
        assert_eq!(target(0, 10, 0, 0.1), 1);
        assert_eq!(target(0, 10, 2, 3.0), 5);
        assert_eq!(target(0, 10, 2, 3.0000000001), 5);
        assert_eq!(target(0, 10, 0, 1e12), 10);
        assert_eq!(target(0, 10, 0, f64::INFINITY), 10);
        assert_eq!(target(3, 10, 0, 0.0), 3);
        // min above max: max.
        assert_eq!(target(20, 10, 0, 0.0), 10);
        assert_eq!(target(0, 0, 5, 5.0), 0);
    }

    #[test]
    fn tasks_left_count_as_default_tasks_up_to_the_limit() {
        let ask = |size| Ask {
            prefix: String::new(),
            size,
            features: Vec::new(),
            wall_time_s: None,
            limit: 11.0,
        };
        let four = ask(res(4.0, 1000, 0, 0));
        let mut v = View::default();
        v.count_left(&four, 0);
        assert_eq!(v.demand, 0.0);
        v.count_left(&four, 6);
        assert_eq!(v.demand, 1.5);
        // Any count: just past the limit, never a number target() cannot take.
        let mut v = View::default();
        v.count_left(&four, u64::MAX);
        assert!(v.demand > 11.0 && v.demand < 12.0, "{}", v.demand);
        // Workers of no cores still take a default task (one core each).
        let mut v = View::default();
        v.count_left(&ask(res(0.0, 0, 0, 0)), 2);
        assert_eq!(v.demand, 2.0);
    }

    #[test]
    fn a_task_needing_more_time_than_a_worker_can_give_fits_none() {
        let ask = Ask {
            prefix: String::new(),
            size: res(4.0, 0, 0, 0),
            features: Vec::new(),
            wall_time_s: Some(60.0),
            limit: 10.0,
        };
        let task = |min: f64| {
            let mut t = Task::command(c"true");
            if min > 0.0 {
                t.set_time_min(min).unwrap();
            }
            t
        };
        assert!(ask.share(&task(0.0)).is_some());
        // A worker takes no task in its last 5 s: 55 s is all it can give.
        assert!(ask.share(&task(55.0)).is_some());
        assert!(ask.share(&task(56.0)).is_none());
        assert!(ask.share(&task(60.0)).is_none());
    }

    #[test]
    fn submissions_are_paced_and_bounded() {
        assert_eq!(to_submit(10, 0, 5, 10), 5);
        assert_eq!(to_submit(10, 8, 5, 10), 2);
        assert_eq!(to_submit(10, 12, 5, 10), 0);
        assert_eq!(to_submit(3, 0, 0, 10), 0);
        assert_eq!(to_submit(30, 0, 100, 10), 10);
    }
}
