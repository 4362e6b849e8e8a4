//! Categories: how the tasks of a category are sized (TaskVine's allocation
//! modes), how many of them may run at once, what they measured, and their
//! counts for `vine_get_stats_category`. Owned by the scheduler, so the manager
//! thread alone reads and writes it.
//!
//! Sizing, per resource (cores, memory, disk; gpus only when labeled, see
//! [`Labels`]; a resource not labeled is sized as in `FIXED` mode):
//! - `FIXED` (the default): what the task asked for; what it left unset is the
//!   category's maximum if one is set, else vine's default (one core, no memory,
//!   disk or gpu bound).
//! - `MAX`, `MIN_WASTE`, `MAX_THROUGHPUT` (and the bucketing modes, sized as
//!   `MIN_WASTE`): what the task set is kept. Until `steady_n` tasks of the
//!   category have succeeded with measurements, the rest is the category's first
//!   allocation guess, else its maximum, else the largest worker's. From then on
//!   it is computed from the measured peaks: the largest (`MAX`), the one that
//!   wastes least (`MIN_WASTE`: over the measured tasks, weighted by their wall
//!   time, the part of the allocation they leave unused plus, for those above
//!   it, the whole failed attempt), or the one that completes most tasks per
//!   worker (`MAX_THROUGHPUT`: as `MIN_WASTE`, but counting what a worker cannot
//!   pack: an allocation `a` of a worker of size `W` costs `W / floor(W / a)`).
//!   Always within the category's minimum and maximum.
//! - A task that exhausts an automatic allocation runs once more with the
//!   maximum (the category's, else the largest worker's); that attempt does not
//!   count against its retries.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Arc;

use crate::resources::{Measured, Resources, Sizing, MILLI};
use crate::task::{
    Task, TaskResult, FLAG_SET_CORES, FLAG_SET_DISK, FLAG_SET_GPUS, FLAG_SET_MEMORY,
};

/// TaskVine's `VINE_ALLOCATION_MODE_FIXED`.
pub const MODE_FIXED: i32 = 0;
/// TaskVine's `VINE_ALLOCATION_MODE_MAX`.
pub const MODE_MAX: i32 = 1;
/// TaskVine's `VINE_ALLOCATION_MODE_MIN_WASTE`.
pub const MODE_MIN_WASTE: i32 = 2;
/// TaskVine's `VINE_ALLOCATION_MODE_MAX_THROUGHPUT`.
pub const MODE_MAX_THROUGHPUT: i32 = 3;

/// Successful measured tasks of a category before its allocations are computed
/// from them (`vine_tune(m, "category-steady-n-tasks", n)`), TaskVine's default.
pub const DEFAULT_STEADY_N: usize = 25;

/// Some of a bundle of resources: None where not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Partial {
    /// Cores in thousandths.
    pub millicores: Option<u64>,
    /// Memory in MB.
    pub memory_mb: Option<u64>,
    /// Disk in MB.
    pub disk_mb: Option<u64>,
    /// Gpus.
    pub gpus: Option<u32>,
}

impl Partial {
    /// Each field of `self`, else of `other`.
    fn or(self, other: Partial) -> Partial {
        Partial {
            millicores: self.millicores.or(other.millicores),
            memory_mb: self.memory_mb.or(other.memory_mb),
            disk_mb: self.disk_mb.or(other.disk_mb),
            gpus: self.gpus.or(other.gpus),
        }
    }

    /// All of it, with `whole`'s fields where none is given.
    fn filled(self, whole: Resources) -> Resources {
        Resources {
            millicores: self.millicores.unwrap_or(whole.millicores),
            memory_mb: self.memory_mb.unwrap_or(whole.memory_mb),
            disk_mb: self.disk_mb.unwrap_or(whole.disk_mb),
            gpus: self.gpus.unwrap_or(whole.gpus),
        }
    }
}

/// Which resources an automatic mode sizes (TaskVine's first-allocation
/// labeling, `vine_enable_category_resource`): by default cores, memory and
/// disk; gpus not. One it does not size is sized as in `FIXED` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    pub cores: bool,
    pub memory: bool,
    pub disk: bool,
    pub gpus: bool,
}

impl Default for Labels {
    fn default() -> Labels {
        Labels {
            cores: true,
            memory: true,
            disk: true,
            gpus: false,
        }
    }
}

/// A resource a category's labels name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labeled {
    Cores,
    Memory,
    Disk,
    Gpus,
}

impl Labeled {
    /// The resource TaskVine calls `name` (`"cores"`, `"memory"`, `"disk"`,
    /// `"gpus"`), if it is one an automatic mode may size.
    pub fn from_name(name: &str) -> Option<Labeled> {
        match name {
            "cores" => Some(Labeled::Cores),
            "memory" => Some(Labeled::Memory),
            "disk" => Some(Labeled::Disk),
            "gpus" => Some(Labeled::Gpus),
            _ => None,
        }
    }
}

impl Labels {
    fn set(&mut self, which: Labeled, on: bool) {
        match which {
            Labeled::Cores => self.cores = on,
            Labeled::Memory => self.memory = on,
            Labeled::Disk => self.disk = on,
            Labeled::Gpus => self.gpus = on,
        }
    }
}

/// Measured peaks in buckets: value → (tasks, summed wall time in µs).
#[derive(Default)]
struct Histogram(HashMap<u64, (u64, u64)>);

impl Histogram {
    /// Adds a measured `value`, as is (`exact`) or rounded up to its bucket.
    fn add(&mut self, value: u64, wall_us: u64, exact: bool) {
        let value = if exact { value } else { bucket(value) };
        let e = self.0.entry(value).or_default();
        e.0 += 1;
        e.1 += wall_us.max(1);
    }

    /// The allocation the mode chooses, below `top`, for workers of size `whole`.
    fn choose(&self, mode: i32, top: u64, whole: u64) -> Option<u64> {
        let mut values: Vec<(u64, u64)> = self.0.iter().map(|(&v, &(_, w))| (v, w)).collect();
        values.sort_unstable();
        let largest = values.last()?.0;
        if top == 0 {
            // Workers that do not say how much they have: no bound.
            return None;
        }
        if mode == MODE_MAX {
            return Some(largest.min(top));
        }
        let cost = |a: u64| -> f64 {
            // What a worker of size `whole` spends per task given `a`: all of it
            // when `a` does not divide it.
            let packed = |a: u64| -> f64 {
                if mode == MODE_MAX_THROUGHPUT && whole >= a && a > 0 {
                    whole as f64 / (whole / a) as f64
                } else {
                    a as f64
                }
            };
            values
                .iter()
                .map(|&(v, w)| {
                    let used = if mode == MODE_MAX_THROUGHPUT {
                        0.0
                    } else {
                        v as f64
                    };
                    let again = if v > a { packed(top) } else { 0.0 };
                    w as f64 * (packed(a) + again - used)
                })
                .sum()
        };
        values
            .iter()
            .map(|&(v, _)| v.min(top))
            .chain(std::iter::once(top))
            .map(|a| (cost(a), a))
            .min_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)))
            .map(|(_, a)| a)
    }
}

/// Rounds a measured value up to within about 6 % (16 buckets per power of two),
/// which bounds a histogram and leaves a margin over the peak seen.
fn bucket(v: u64) -> u64 {
    if v <= 16 {
        return v;
    }
    let step = 1u64 << (63 - v.leading_zeros() - 4);
    v.div_ceil(step) * step
}

/// Counts of a category's tasks, for `vine_get_stats_category`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CategoryStats {
    /// Submitted.
    pub submitted: u64,
    /// Given to a worker (retries count again).
    pub dispatched: u64,
    /// Running now.
    pub running: u64,
    /// Finished.
    pub done: u64,
    /// Finished with a result other than SUCCESS.
    pub failed: u64,
    /// Finished with SUCCESS, whatever the exit code (as TaskVine counts).
    pub successful: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Ended exhausting their resources.
    pub exhausted: u64,
    /// Attempts that exhausted an automatic allocation and ran again with the maximum.
    pub exhausted_retried: u64,
    /// Execution time, microseconds.
    pub time_execute: u64,
    /// Of it, of successful tasks.
    pub time_execute_good: u64,
    /// Of it, of tasks that exhausted their resources.
    pub time_execute_exhaustion: u64,
}

/// One category's settings and history.
#[derive(Default)]
struct Category {
    mode: Option<i32>,
    /// Its own labels (`vine_enable_category_resource`), if set.
    labels: Option<Labels>,
    max: Partial,
    min: Partial,
    guess: Partial,
    max_concurrent: Option<u64>,
    /// Its tasks that took the direct lane and have not ended, once the
    /// manager counts them (see `direct::Counters::watch`); not in `stats`,
    /// which the direct lane's own counts are added to when read.
    direct_running: u64,
    cores: Histogram,
    memory: Histogram,
    disk: Histogram,
    measured: usize,
    stats: CategoryStats,
}

/// Every category the manager has seen or been told about.
#[derive(Default)]
pub struct Categories {
    /// Index in `list` by name.
    by_name: HashMap<Box<[u8]>, usize>,
    list: Vec<Category>,
    /// The category looked up last: runs of one category need no hashing.
    last: Option<(Box<[u8]>, usize)>,
    /// The shared name of the category a task looked up last, kept alive so
    /// that its address names it: a run of tasks of one function (under
    /// autocategory) or one set category is found by comparing one pointer.
    last_shared: Option<(Arc<CStr>, usize)>,
    /// Where "default" is in `list`, once known: a task that names no
    /// category has the one static name, found by its address alone.
    default_at: Option<usize>,
    /// The mode of categories given none (`vine_set_category_mode(m, NULL, mode)`).
    default_mode: i32,
    /// The labels of categories given none.
    default_labels: Labels,
    /// `vine_set_resources_max` / `_min`: for every category.
    max: Partial,
    min: Partial,
    steady_n: usize,
    /// Some category is sized other than by what its tasks ask for, or has a
    /// bound on concurrent tasks: only then does dispatch consult categories.
    active: bool,
    /// Monitoring asked for by `vine_enable_monitoring`: with (true) or without
    /// (false) its watchdog.
    monitoring: Option<bool>,
    /// TaskVine's proportional resources (`vine_enable_proportional_resources`):
    /// what a task does not set is its share of a worker (see [`proportional`]).
    proportional: bool,
    /// They were on once: tasks they sized are sized anew when dispatched.
    proportional_once: bool,
}

/// What TaskVine's proportional resources give a task that set `given` of
/// `whole` (a worker): the largest share of `whole` that what it set makes up
/// (all of it if it set nothing), made the share of a whole number of such
/// tasks (1/2, 1/3, ...); its unset cores (whole, at least one), memory and disk
/// are that share of the worker's. Gpus it did not set stay unset.
pub fn proportional(given: Partial, whole: Resources) -> Partial {
    if given.millicores.is_some() && given.memory_mb.is_some() && given.disk_mb.is_some() {
        return given;
    }
    let share = |v: Option<u64>, w: u64| v.filter(|_| w > 0).map(|v| v as f64 / w as f64);
    let shares = [
        share(given.millicores, whole.millicores),
        share(given.memory_mb, whole.memory_mb),
        share(given.disk_mb, whole.disk_mb),
        share(given.gpus.map(u64::from), u64::from(whole.gpus)),
    ];
    let p = shares
        .into_iter()
        .flatten()
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        .unwrap_or(1.0)
        .min(1.0);
    let p = if p > 0.0 {
        1.0 / (1.0 / p).floor()
    } else {
        0.0
    };
    let part = |w: u64| (p * w as f64).floor() as u64;
    Partial {
        // Unset cores of a task with gpus: none, as in TaskVine.
        millicores: given.millicores.or(Some(if given.gpus.unwrap_or(0) > 0 {
            0
        } else {
            (part(whole.millicores) / MILLI).max(1) * MILLI
        })),
        memory_mb: given.memory_mb.or(Some(part(whole.memory_mb))),
        disk_mb: given.disk_mb.or(Some(part(whole.disk_mb))),
        gpus: given.gpus,
    }
}

impl Categories {
    /// No category is known yet.
    pub fn new() -> Categories {
        Categories {
            steady_n: DEFAULT_STEADY_N,
            ..Default::default()
        }
    }

    fn entry(&mut self, name: &CStr) -> &mut Category {
        let default = std::ptr::eq(name, crate::task::Task::default_category());
        if let (true, Some(at)) = (default, self.default_at) {
            return &mut self.list[at];
        }
        let key = name.to_bytes();
        let at = match &self.last {
            Some((k, at)) if **k == *key => *at,
            _ => {
                let at = match self.by_name.get(key) {
                    Some(&at) => at,
                    None => {
                        self.list.push(Category::default());
                        self.by_name.insert(key.into(), self.list.len() - 1);
                        self.list.len() - 1
                    }
                };
                self.last = Some((key.into(), at));
                at
            }
        };
        if default {
            self.default_at = Some(at);
        }
        &mut self.list[at]
    }

    /// The category of `task`, as [`Categories::entry`].
    fn entry_of(&mut self, task: &Task) -> &mut Category {
        let Some(name) = task.category_named() else {
            return self.entry(task.category());
        };
        let at = match &self.last_shared {
            Some((kept, at)) if Arc::ptr_eq(kept, name) => *at,
            _ => {
                self.entry(name);
                let at = self.last.as_ref().map_or(0, |(_, at)| *at);
                self.last_shared = Some((Arc::clone(name), at));
                at
            }
        };
        &mut self.list[at]
    }

    fn get(&self, name: &CStr) -> Option<&Category> {
        if let Some(at) = self.default_at {
            if std::ptr::eq(name, crate::task::Task::default_category()) {
                return Some(&self.list[at]);
            }
        }
        let key = name.to_bytes();
        match &self.last {
            Some((k, at)) if **k == *key => Some(&self.list[*at]),
            _ => self.by_name.get(key).map(|&at| &self.list[at]),
        }
    }

    fn refresh_active(&mut self) {
        self.active = self.default_mode != MODE_FIXED
            || self.proportional_once
            || self.max != Partial::default()
            || self.min != Partial::default()
            || self.list.iter().any(|c| {
                c.mode.is_some_and(|m| m != MODE_FIXED)
                    || c.max != Partial::default()
                    || c.min != Partial::default()
                    || c.guess != Partial::default()
                    || c.max_concurrent.is_some()
            });
    }

    /// Turns TaskVine's proportional resources on or off.
    pub fn set_proportional(&mut self, on: bool) {
        self.proportional = on;
        self.proportional_once |= on;
        self.refresh_active();
    }

    /// True when dispatch must consult categories (sizing or concurrency bounds).
    pub fn active(&self) -> bool {
        self.active
    }

    /// Sets a category's mode, or (None) the mode of categories given none.
    pub fn set_mode(&mut self, category: Option<&CStr>, mode: i32) {
        let mode = if mode > MODE_MAX_THROUGHPUT {
            MODE_MIN_WASTE
        } else {
            mode
        };
        match category {
            Some(c) => self.entry(c).mode = Some(mode),
            None => self.default_mode = mode,
        }
        self.refresh_active();
    }

    /// Turns the automatic sizing of one resource on or off for a category
    /// (None: for every category without labels of its own, which start from
    /// these).
    pub fn set_label(&mut self, category: Option<&CStr>, which: Labeled, on: bool) {
        match category {
            Some(c) => {
                let defaults = self.default_labels;
                self.entry(c).labels.get_or_insert(defaults).set(which, on);
            }
            None => self.default_labels.set(which, on),
        }
    }

    /// The resources automatic modes size for tasks of `category`.
    #[cfg(test)]
    pub fn labels(&self, category: &CStr) -> Labels {
        self.get(category)
            .and_then(|c| c.labels)
            .unwrap_or(self.default_labels)
    }

    /// The mode tasks of `category` are sized by.
    pub fn mode(&self, category: &CStr) -> i32 {
        self.get(category)
            .and_then(|c| c.mode)
            .unwrap_or(self.default_mode)
    }

    /// Sets a bound of a category (None: of every category).
    pub fn set_bound(&mut self, category: Option<&CStr>, which: Bound, value: Partial) {
        match (category, which) {
            (None, Bound::Max) => self.max = value,
            (None, Bound::Min) => self.min = value,
            (None, _) => {}
            (Some(c), Bound::Max) => self.entry(c).max = value,
            (Some(c), Bound::Min) => self.entry(c).min = value,
            (Some(c), Bound::FirstGuess) => self.entry(c).guess = value,
        }
        self.refresh_active();
    }

    /// At most `n` tasks of `category` run at once (None: no bound).
    pub fn set_max_concurrent(&mut self, category: &CStr, n: Option<u64>) {
        self.entry(category).max_concurrent = n;
        self.refresh_active();
    }

    /// Successful measured tasks before allocations are computed.
    pub fn set_steady_n(&mut self, n: usize) {
        self.steady_n = n.max(1);
    }

    /// `vine_enable_monitoring`: measure every task, stopping those past their
    /// allocation when `watchdog`.
    pub fn set_monitoring(&mut self, watchdog: bool) {
        self.monitoring = Some(watchdog);
    }

    /// Whether every task is measured, and if so with the watchdog.
    pub fn monitoring(&self) -> Option<bool> {
        self.monitoring
    }

    /// True when tasks of `category` need measurements: an automatic mode.
    pub fn wants_measurements(&self, category: &CStr) -> bool {
        self.active && self.mode(category) != MODE_FIXED
    }

    /// A task is submitted: it asks for what the program set, whatever an
    /// earlier submission of it was given.
    pub fn submitted(&mut self, task: &mut Task) {
        if let Some(e) = task.extra.as_mut() {
            if let Some(asked) = e.asked.take() {
                task.request = asked;
            }
            e.sizing = Sizing::Asked;
        }
        self.entry_of(task).stats.submitted += 1;
    }

    /// Whether another task of `task`'s category may start now.
    pub fn may_start(&self, task: &Task) -> bool {
        let Some(c) = self.get(task.category()) else {
            return true;
        };
        c.max_concurrent
            .is_none_or(|n| c.stats.running + c.direct_running < n)
    }

    /// `n` tasks of `category` that took the direct lane have not ended.
    pub fn direct_running(&mut self, category: &CStr, n: u64) {
        self.entry(category).direct_running += n;
    }

    /// A task of `category` that took the direct lane ended. Says whether this
    /// may let another of its category start.
    pub fn direct_ended(&mut self, category: &CStr) -> bool {
        let c = self.entry(category);
        c.direct_running = c.direct_running.saturating_sub(1);
        c.max_concurrent.is_some()
    }

    /// A task starts on a worker.
    pub fn dispatched(&mut self, task: &Task) {
        let s = &mut self.entry_of(task).stats;
        s.dispatched += 1;
        s.running += 1;
    }

    /// A dispatched task came back, run or not. Says whether this may let
    /// another of its category start (it has a bound on concurrent tasks), and
    /// whether the allocation of its waiting tasks may have changed (a new
    /// measurement of an automatically sized category).
    pub fn returned(&mut self, task: &Task) -> Returned {
        let steady_n = self.steady_n;
        let auto = self.wants_measurements(task.category());
        let c = self.entry_of(task);
        c.stats.running = c.stats.running.saturating_sub(1);
        let mut resized = false;
        if task.result == TaskResult::Success && task.exit_code == 0 && auto {
            if let Some(m) = task.extra.as_ref().and_then(|e| e.measured) {
                let buckets = c.buckets();
                c.add(&m);
                resized =
                    c.measured == steady_n || (c.measured > steady_n && c.buckets() != buckets);
            }
        }
        Returned {
            freed: c.max_concurrent.is_some(),
            resized,
        }
    }

    /// A task is finished for good.
    pub fn completed(&mut self, task: &Task) {
        let s = &mut self.entry_of(task).stats;
        s.done += 1;
        let execute = u64::try_from(task.times.execute).unwrap_or(0);
        s.time_execute = s.time_execute.saturating_add(execute);
        if task.result != TaskResult::Success {
            s.failed += 1;
        } else {
            s.successful += 1;
        }
        if task.result == TaskResult::Success {
            s.time_execute_good = s.time_execute_good.saturating_add(execute);
        }
        if task.result == TaskResult::Cancelled {
            s.cancelled += 1;
        }
        if task.result == TaskResult::ResourceExhaustion {
            s.exhausted += 1;
            s.time_execute_exhaustion = s.time_execute_exhaustion.saturating_add(execute);
        }
    }

    /// Counts of `category`'s tasks.
    pub fn stats(&self, category: &CStr) -> CategoryStats {
        self.get(category).map(|c| c.stats).unwrap_or_default()
    }

    /// Sets the resources of `task`'s next attempt, given the largest worker's
    /// size. False if nothing changed.
    pub fn size(&mut self, task: &mut Task, largest: Resources) -> bool {
        let mode = self.mode(task.category());
        let default_labels = self.default_labels;
        let by_share = self.proportional;
        let steady_n = self.steady_n;
        let (gmax, gmin) = (self.max, self.min);
        let c = self.entry_of(task);
        let labels = c.labels.unwrap_or(default_labels);
        let max = c.max.or(gmax);
        let min = c.min.or(gmin);
        let sizing = task.extra.as_ref().map_or(Sizing::Asked, |e| e.sizing);
        let asked = task.asked();
        let set = |flag| task.flags & flag != 0;
        let declared = Partial {
            millicores: set(FLAG_SET_CORES).then_some(asked.millicores),
            memory_mb: set(FLAG_SET_MEMORY).then_some(asked.memory_mb),
            disk_mb: set(FLAG_SET_DISK).then_some(asked.disk_mb),
            gpus: set(FLAG_SET_GPUS).then_some(asked.gpus),
        };
        let top = max.filled(Resources {
            gpus: if labels.gpus { largest.gpus } else { 0 },
            ..largest
        });
        // What FIXED mode gives: also what an automatic mode gives a
        // resource it does not size.
        let fixed = if by_share {
            proportional(declared.or(max), largest).filled(asked)
        } else {
            declared.or(max).filled(asked)
        };
        // As in TaskVine, never below the category's minimum, but for what the
        // task set itself.
        let at_least = |v: u64, declared: Option<u64>, min: Option<u64>| match (declared, min) {
            (None, Some(m)) => v.max(m),
            _ => v,
        };
        let fixed = Resources {
            millicores: at_least(fixed.millicores, declared.millicores, min.millicores),
            memory_mb: at_least(fixed.memory_mb, declared.memory_mb, min.memory_mb),
            disk_mb: at_least(fixed.disk_mb, declared.disk_mb, min.disk_mb),
            gpus: at_least(
                u64::from(fixed.gpus),
                declared.gpus.map(u64::from),
                min.gpus.map(u64::from),
            ) as u32,
        };
        let sized = |alloc: Resources| Resources {
            millicores: if labels.cores {
                alloc.millicores
            } else {
                fixed.millicores
            },
            memory_mb: if labels.memory {
                alloc.memory_mb
            } else {
                fixed.memory_mb
            },
            disk_mb: if labels.disk {
                alloc.disk_mb
            } else {
                fixed.disk_mb
            },
            gpus: if labels.gpus { alloc.gpus } else { fixed.gpus },
        };
        let (alloc, how) = if mode == MODE_FIXED && sizing != Sizing::Max {
            (fixed, Sizing::Asked)
        } else if sizing == Sizing::Max {
            (sized(declared.filled(top)), Sizing::Max)
        } else {
            let chosen = if c.measured < steady_n {
                c.guess
            } else {
                let whole = largest;
                // A resource never measured for the category's tasks (the
                // memory and disk of THREAD functions) is sized as FIXED mode
                // sizes it: the whole worker, kept for learning, would stay
                // theirs for good.
                let measured_or_fixed = |h: &Histogram, top: u64, whole: u64, fixed: u64| {
                    if h.0.is_empty() {
                        Some(fixed)
                    } else {
                        h.choose(mode, top, whole)
                    }
                };
                Partial {
                    millicores: c.cores.choose(mode, top.millicores, whole.millicores),
                    memory_mb: measured_or_fixed(
                        &c.memory,
                        top.memory_mb,
                        whole.memory_mb,
                        fixed.memory_mb,
                    ),
                    disk_mb: measured_or_fixed(&c.disk, top.disk_mb, whole.disk_mb, fixed.disk_mb),
                    gpus: None,
                }
            };
            let mut alloc = declared.or(chosen).filled(top);
            // What vine chose (not what the task set) stays within the
            // category's minimum and maximum; the maximum wins a conflict.
            let within = |v: u64, declared: Option<u64>, min: Option<u64>, max: Option<u64>| {
                if declared.is_some() {
                    return v;
                }
                let v = min.map_or(v, |m| v.max(m));
                max.map_or(v, |m| v.min(m))
            };
            alloc.millicores = within(
                alloc.millicores,
                declared.millicores,
                min.millicores,
                max.millicores,
            );
            alloc.memory_mb = within(
                alloc.memory_mb,
                declared.memory_mb,
                min.memory_mb,
                max.memory_mb,
            );
            alloc.disk_mb = within(alloc.disk_mb, declared.disk_mb, min.disk_mb, max.disk_mb);
            (sized(alloc), Sizing::Auto)
        };
        let alloc = Resources {
            // A task always holds some of a core, but for one of gpus, which
            // its gpus bound (as TaskVine gives it no core unless it asks).
            millicores: if alloc.gpus > 0 && !set(FLAG_SET_CORES) {
                alloc.millicores
            } else {
                alloc.millicores.max(1)
            },
            ..alloc
        };
        if alloc == task.request && how == sizing {
            return false;
        }
        // What it asked for is kept once its request is changed, so that it is
        // sized anew from that, not from what it was given.
        if how != Sizing::Asked
            || alloc != asked
            || task.extra.as_ref().is_some_and(|e| e.asked.is_some())
        {
            let e = task.extra_mut();
            e.asked.get_or_insert(asked);
            e.sizing = how;
        }
        task.request = alloc;
        true
    }

    /// A task exhausted its allocation: true if it runs again with its
    /// category's maximum (an automatic allocation was too small), which then
    /// does not count as an attempt.
    pub fn retry_at_max(&mut self, task: &mut Task) -> bool {
        if task.result != TaskResult::ResourceExhaustion
            || task.extra.as_ref().map(|e| e.sizing) != Some(Sizing::Auto)
        {
            return false;
        }
        task.extra_mut().sizing = Sizing::Max;
        self.entry_of(task).stats.exhausted_retried += 1;
        true
    }
}

/// What a returned task may change for those waiting (see [`Categories::returned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Returned {
    /// Another task of its category may start.
    pub freed: bool,
    /// The allocation of its category's tasks may have changed.
    pub resized: bool,
}

/// A change to categories, made by the manager thread.
#[derive(Debug, Clone)]
pub enum Change {
    /// `vine_set_category_mode` (None: every category without its own).
    Mode(Option<std::ffi::CString>, i32),
    /// A bound of a category (None: of every category).
    Bound(Option<std::ffi::CString>, Bound, Partial),
    /// `vine_set_category_max_concurrent`.
    MaxConcurrent(std::ffi::CString, Option<u64>),
    /// `vine_enable_monitoring`, with or without its watchdog.
    Monitoring(bool),
    /// `vine_enable_category_resource` (None: every category without labels
    /// of its own).
    Label(Option<std::ffi::CString>, Labeled, bool),
    /// `vine_initialize_categories`: what tasks of earlier runs measured.
    Seed(Vec<(std::ffi::CString, Measured)>),
    /// `vine_enable_proportional_resources` (true) or `_disable_` (false).
    Proportional(bool),
}

impl Categories {
    /// Applies `change`.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Mode(c, mode) => self.set_mode(c.as_deref(), mode),
            Change::Bound(c, which, value) => self.set_bound(c.as_deref(), which, value),
            Change::MaxConcurrent(c, n) => self.set_max_concurrent(&c, n),
            Change::Monitoring(watchdog) => self.set_monitoring(watchdog),
            Change::Label(c, which, on) => self.set_label(c.as_deref(), which, on),
            Change::Proportional(on) => self.set_proportional(on),
            Change::Seed(measured) => {
                for (category, m) in measured {
                    self.entry(&category).add(&m);
                }
            }
        }
    }
}

/// Which bound of a category is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `vine_set_category_resources_max`.
    Max,
    /// `vine_set_category_resources_min`.
    Min,
    /// `vine_set_category_first_allocation_guess`.
    FirstGuess,
}

impl Category {
    fn buckets(&self) -> usize {
        self.cores.0.len() + self.memory.0.len() + self.disk.0.len()
    }

    fn add(&mut self, m: &Measured) {
        // Cores are allocated whole: a task that used 1.2 cores gets 2.
        let cores = (m.cores() - 0.05).ceil().clamp(1.0, 1e9) as u64 * MILLI;
        self.cores.add(cores, m.wall_us, true);
        if let Some(mb) = m.memory_mb {
            self.memory.add(mb.max(1), m.wall_us, false);
        }
        if m.disk_mb > 0 || m.memory_mb.is_some() {
            self.disk.add(m.disk_mb.max(1), m.wall_us, false);
        }
        self.measured += 1;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn task(category: &CStr) -> Box<Task> {
        let mut t = Task::command(c"true");
        t.set_category(category).unwrap();
        t
    }

    fn measured(memory_mb: u64, cpu_ms: u64) -> Measured {
        Measured {
            wall_us: 1_000_000,
            cpu_us: cpu_ms * 1000,
            memory_mb: Some(memory_mb),
            disk_mb: 1,
            ..Default::default()
        }
    }

    const WORKER: Resources = Resources {
        millicores: 4000,
        memory_mb: 1024,
        disk_mb: 4096,
        gpus: 0,
    };

    fn run(c: &mut Categories, t: &mut Task, m: Measured) {
        c.dispatched(t);
        t.result = TaskResult::Success;
        t.exit_code = 0;
        t.extra_mut().measured = Some(m);
        c.returned(t);
        c.completed(t);
    }

    #[test]
    fn a_task_naming_no_category_and_one_naming_default_count_in_one() {
        let mut c = Categories::new();
        for named in [false, true, false, true] {
            let mut t = Task::command(c"true");
            if named {
                t.set_category(c"default").unwrap();
            }
            c.submitted(&mut t);
            // Another category in between: the last-looked-up cache moves.
            c.submitted(&mut task(c"other"));
        }
        assert_eq!(c.stats(c"default").submitted, 4);
        assert_eq!(c.stats(crate::task::Task::default_category()).submitted, 4);
        assert_eq!(c.stats(c"other").submitted, 4);
    }

    #[test]
    fn fixed_tasks_keep_what_they_asked_and_take_the_category_max_for_the_rest() {
        let mut c = Categories::new();
        let mut t = task(c"a");
        t.set_memory(100).unwrap();
        assert!(!c.size(&mut t, WORKER));
        assert_eq!(
            t.request,
            Resources {
                millicores: 1000,
                memory_mb: 100,
                ..Default::default()
            }
        );
        c.set_bound(
            Some(c"a"),
            Bound::Max,
            Partial {
                millicores: Some(2000),
                memory_mb: Some(500),
                ..Default::default()
            },
        );
        assert!(c.active());
        assert!(c.size(&mut t, WORKER));
        assert_eq!(
            t.request,
            Resources {
                millicores: 2000,
                memory_mb: 100,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_first_allocation_guess_stays_within_the_categorys_minimum_and_maximum() {
        let mut c = Categories::new();
        c.set_mode(Some(c"a"), MODE_MAX);
        let guess = Partial {
            millicores: Some(1000),
            memory_mb: Some(100),
            disk_mb: Some(50),
            gpus: None,
        };
        c.set_bound(Some(c"a"), Bound::FirstGuess, guess);
        c.set_bound(
            Some(c"a"),
            Bound::Min,
            Partial {
                millicores: Some(2000),
                memory_mb: Some(700),
                ..Default::default()
            },
        );
        c.set_bound(
            Some(c"a"),
            Bound::Max,
            Partial {
                disk_mb: Some(40),
                ..Default::default()
            },
        );
        let mut t = task(c"a");
        assert!(c.size(&mut t, WORKER));
        assert_eq!(
            t.request,
            Resources {
                millicores: 2000,
                memory_mb: 700,
                disk_mb: 40,
                gpus: 0,
            }
        );
        // What the task set itself is kept.
        let mut t = task(c"a");
        t.set_memory(100).unwrap();
        c.size(&mut t, WORKER);
        assert_eq!(t.request.memory_mb, 100);
    }

    #[test]
    fn automatic_modes_use_whole_workers_until_steady_then_the_measured_peak() {
        let mut c = Categories::new();
        c.set_mode(Some(c"a"), MODE_MAX);
        c.set_steady_n(3);
        let mut t = task(c"a");
        assert!(c.size(&mut t, WORKER));
        assert_eq!(t.request, Resources { gpus: 0, ..WORKER });
        for mb in [200, 210, 190] {
            let mut done = task(c"a");
            run(&mut c, &mut done, measured(mb, 900));
        }
        let mut t = task(c"a");
        c.size(&mut t, WORKER);
        assert_eq!(t.request.millicores, 1000);
        assert_eq!(t.request.memory_mb, bucket(210));
        assert!(t.request.memory_mb >= 210 && t.request.memory_mb < 230);
        // Exhausted: once more with the maximum, not counted as an attempt.
        t.result = TaskResult::ResourceExhaustion;
        assert!(c.retry_at_max(&mut t));
        c.size(&mut t, WORKER);
        assert_eq!(t.request, Resources { gpus: 0, ..WORKER });
        t.result = TaskResult::ResourceExhaustion;
        assert!(!c.retry_at_max(&mut t));
    }

    #[test]
    fn what_an_automatic_mode_never_measures_is_sized_as_fixed_mode_sizes_it_once_steady() {
        let mut c = Categories::new();
        c.set_mode(Some(c"f"), MODE_MAX_THROUGHPUT);
        c.set_steady_n(2);
        // THREAD functions: cores and time measured, memory and disk never.
        let thread = Measured {
            wall_us: 1000,
            cpu_us: 900,
            memory_mb: None,
            disk_mb: 0,
            ..Default::default()
        };
        for _ in 0..2 {
            let mut done = task(c"f");
            run(&mut c, &mut done, thread);
        }
        let mut t = task(c"f");
        c.size(&mut t, WORKER);
        assert_eq!(
            t.request,
            Resources {
                millicores: 1000,
                memory_mb: 0,
                disk_mb: 0,
                gpus: 0
            },
            "one core, and no bound where nothing was measured: tasks pack"
        );
    }

    #[test]
    fn a_resource_left_unlabeled_is_sized_as_fixed_mode_sizes_it() {
        const GPU_WORKER: Resources = Resources { gpus: 2, ..WORKER };
        let mut c = Categories::new();
        c.set_mode(Some(c"a"), MODE_MAX);
        c.set_steady_n(2);
        // The defaults: cores, memory and disk are sized; gpus are not.
        let mut t = task(c"a");
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request, WORKER);
        // Memory off for "a": vine's default (no bound) unless a maximum is set.
        c.set_label(Some(c"a"), Labeled::Memory, false);
        let mut t = task(c"a");
        c.size(&mut t, GPU_WORKER);
        assert_eq!(
            t.request,
            Resources {
                memory_mb: 0,
                ..WORKER
            }
        );
        c.set_bound(
            Some(c"a"),
            Bound::Max,
            Partial {
                memory_mb: Some(300),
                ..Default::default()
            },
        );
        let mut t = task(c"a");
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request.memory_mb, 300);
        // Gpus on: the largest worker's until steady, and still then (they are
        // never measured); a gpu the task set is kept.
        c.set_label(Some(c"a"), Labeled::Gpus, true);
        let mut t = task(c"a");
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request.gpus, 2);
        for _ in 0..2 {
            let mut done = task(c"a");
            run(&mut c, &mut done, measured(100, 900));
        }
        let mut t = task(c"a");
        c.size(&mut t, GPU_WORKER);
        assert_eq!(
            t.request,
            Resources {
                millicores: 1000,
                memory_mb: 300,
                disk_mb: bucket(1),
                gpus: 2
            }
        );
        let mut t = task(c"a");
        t.set_gpus(1).unwrap();
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request.gpus, 1);
        // Cores off, after steady: one core, what the task asked.
        c.set_label(Some(c"a"), Labeled::Cores, false);
        let mut t = task(c"a");
        t.set_cores(3.0).unwrap();
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request.millicores, 3000);
        // A retry at the maximum keeps what is not sized, too.
        t.result = TaskResult::ResourceExhaustion;
        t.extra_mut().sizing = Sizing::Auto;
        assert!(c.retry_at_max(&mut t));
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request.millicores, 3000);
        assert_eq!(t.request.disk_mb, WORKER.disk_mb);
        // Another category keeps the defaults; the defaults can change too,
        // and a category's first own setting starts from them.
        let mut t = task(c"b");
        c.set_mode(Some(c"b"), MODE_MAX);
        c.size(&mut t, GPU_WORKER);
        assert_eq!(t.request, WORKER);
        c.set_label(None, Labeled::Disk, false);
        c.set_label(Some(c"b"), Labeled::Cores, false);
        assert_eq!(
            c.labels(c"b"),
            Labels {
                cores: false,
                memory: true,
                disk: false,
                gpus: false
            }
        );
        assert_eq!(
            c.labels(c"zzz"),
            Labels {
                disk: false,
                ..Labels::default()
            }
        );
        assert_eq!(Labeled::from_name("cpus"), None);
        assert_eq!(Labeled::from_name("gpus"), Some(Labeled::Gpus));
    }

    #[test]
    fn proportional_resources_give_a_whole_number_share_of_the_worker() {
        // WORKER: 4 cores, 1024 MB, 4096 MB disk.
        let share = |given: Partial| proportional(given, WORKER).filled(Resources::default());
        // One core of four: a quarter of the rest.
        let one_core = Partial {
            millicores: Some(1000),
            ..Default::default()
        };
        assert_eq!(
            share(one_core),
            Resources {
                millicores: 1000,
                memory_mb: 256,
                disk_mb: 1024,
                gpus: 0
            }
        );
        // 300 MB is more than a quarter, less than a third: a third, as three
        // such tasks fit and four do not.
        let memory = Partial {
            memory_mb: Some(300),
            ..Default::default()
        };
        assert_eq!(
            share(memory),
            Resources {
                millicores: 1000,
                memory_mb: 300,
                disk_mb: 1365,
                gpus: 0
            }
        );
        // Nothing set: the whole worker. The largest share decides; what was
        // set is kept; all set, nothing changes.
        assert_eq!(share(Partial::default()), Resources { gpus: 0, ..WORKER });
        let both = Partial {
            millicores: Some(1000),
            disk_mb: Some(2048),
            ..Default::default()
        };
        assert_eq!(
            share(both),
            Resources {
                millicores: 1000,
                memory_mb: 512,
                disk_mb: 2048,
                gpus: 0
            }
        );
        let all = Partial {
            millicores: Some(3000),
            memory_mb: Some(1),
            disk_mb: Some(1),
            gpus: None,
        };
        assert_eq!(proportional(all, WORKER), all);
        // More than the worker has: all of the rest. Zero asked: nothing more.
        let big = Partial {
            memory_mb: Some(5000),
            ..Default::default()
        };
        assert_eq!(share(big).disk_mb, 4096);
        let zero = Partial {
            memory_mb: Some(0),
            ..Default::default()
        };
        assert_eq!(
            share(zero),
            Resources {
                millicores: 1000,
                memory_mb: 0,
                disk_mb: 0,
                gpus: 0
            }
        );

        // Through the categories: FIXED tasks only while it is on; a category
        // maximum counts as set.
        let mut c = Categories::new();
        let mut t = task(c"a");
        t.set_cores(1.0).unwrap();
        assert!(!c.size(&mut t, WORKER));
        c.set_proportional(true);
        assert!(c.active());
        assert!(c.size(&mut t, WORKER));
        assert_eq!((t.request.memory_mb, t.request.disk_mb), (256, 1024));
        c.set_bound(Some(c"a"), Bound::Max, memory);
        let mut t = task(c"a");
        c.size(&mut t, WORKER);
        assert_eq!(t.request.memory_mb, 300);
        assert_eq!(t.request.disk_mb, 1365);
        // Off again: a task sized while it was on gets what it asked for.
        let mut t = task(c"b");
        c.size(&mut t, WORKER);
        assert_eq!(t.request.memory_mb, 1024);
        c.set_proportional(false);
        assert!(c.size(&mut t, WORKER));
        assert_eq!(t.request, task(c"b").request);
        let mut t = task(c"b");
        c.size(&mut t, WORKER);
        assert_eq!(t.request.memory_mb, 0);
    }

    #[test]
    fn min_waste_ignores_a_rare_outlier_that_max_would_follow() {
        let mut waste = Categories::new();
        let mut max = Categories::new();
        waste.set_mode(Some(c"a"), MODE_MIN_WASTE);
        max.set_mode(Some(c"a"), MODE_MAX);
        for c in [&mut waste, &mut max] {
            c.set_steady_n(1);
            for i in 0..40 {
                let mb = if i == 0 { 900 } else { 100 };
                let mut done = task(c"a");
                run(c, &mut done, measured(mb, 1000));
            }
        }
        let mut a = task(c"a");
        waste.size(&mut a, WORKER);
        let mut b = task(c"a");
        max.size(&mut b, WORKER);
        assert_eq!(a.request.memory_mb, 100);
        assert_eq!(b.request.memory_mb, bucket(900));
    }

    #[test]
    fn throughput_counts_what_a_worker_cannot_pack() {
        // 300 MB tasks on a 1000 MB worker: 3 fit whether 300 or 333 MB each, so
        // either costs the same; 400 MB would fit only 2.
        let mut h = Histogram::default();
        for _ in 0..10 {
            h.add(300, 1, false);
        }
        let a = h.choose(MODE_MAX_THROUGHPUT, 1000, 1000).unwrap();
        assert_eq!(1000 / a, 3);
    }

    #[test]
    fn declared_fields_stay_and_min_bounds_the_rest() {
        let mut c = Categories::new();
        c.set_mode(Some(c"a"), MODE_MAX_THROUGHPUT);
        c.set_steady_n(1);
        c.set_bound(
            Some(c"a"),
            Bound::Min,
            Partial {
                memory_mb: Some(512),
                ..Default::default()
            },
        );
        let mut done = task(c"a");
        run(&mut c, &mut done, measured(100, 1000));
        let mut t = task(c"a");
        t.set_cores(3.0).unwrap();
        c.size(&mut t, WORKER);
        assert_eq!(t.request.millicores, 3000);
        assert_eq!(t.request.memory_mb, 512);
    }

    #[test]
    fn concurrency_is_bounded_per_category() {
        let mut c = Categories::new();
        c.set_max_concurrent(c"a", Some(1));
        let t = task(c"a");
        assert!(c.may_start(&t));
        c.dispatched(&t);
        assert!(!c.may_start(&t));
        assert!(c.may_start(&task(c"b")));
        assert!(c.returned(&t).freed);
        assert!(c.may_start(&t));
    }

    #[test]
    fn buckets_round_up_by_at_most_a_sixteenth() {
        for v in [1u64, 16, 17, 200, 210, 1000, 123_456] {
            let b = bucket(v);
            assert!(b >= v && (b - v) * 16 <= v, "{v} -> {b}");
        }
    }
}
