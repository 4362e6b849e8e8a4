//! Resource quantities: what a task asks for and what a worker offers.
//!
//! Cores are counted in thousandths so that fractional requests (0.25 cores) add
//! and subtract exactly; memory and disk are in MB; gpus are whole devices.

use crate::error::{Error, Result};

/// Thousandths of a core in one core.
pub(crate) const MILLI: u64 = 1000;

/// A bundle of cores, memory, disk and gpus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Cores in thousandths of a core.
    pub millicores: u64,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Disk in MB.
    pub disk_mb: u64,
    /// Whole gpu devices.
    pub gpus: u32,
}

impl Resources {
    /// What a task takes when it asks for nothing: one core, nothing else.
    pub const DEFAULT_REQUEST: Resources = Resources {
        millicores: MILLI,
        memory_mb: 0,
        disk_mb: 0,
        gpus: 0,
    };

    /// Converts a core count given by a user into thousandths, refusing values
    /// that are not finite, negative, or not a multiple of 0.001.
    pub fn millicores_from(cores: f64, allow_zero: bool) -> Result<u64> {
        if !cores.is_finite() || !(0.0..=1.0e9).contains(&cores) {
            return Err(Error::invalid(format!(
                "cores must be a number from 0 to 1e9, not {}",
                crate::error::Shown(cores)
            )));
        }
        let milli = (cores * MILLI as f64).round();
        if (milli - cores * MILLI as f64).abs() > 1e-6 * milli.max(1.0) {
            return Err(Error::invalid(format!(
                "cores are counted in thousandths; {cores} is finer than that"
            )));
        }
        if milli == 0.0 && !allow_zero {
            return Err(Error::invalid("a task needs more than 0 cores"));
        }
        Ok(milli as u64)
    }

    /// Cores as a floating-point number.
    pub fn cores(&self) -> f64 {
        self.millicores as f64 / MILLI as f64
    }

    /// Whole cores, at least one: what `OMP_NUM_THREADS` is set to.
    pub fn whole_cores(&self) -> u64 {
        (self.millicores / MILLI).max(1)
    }

    /// True when every component of `self` is at most that of `other`.
    pub fn fits_within(&self, other: &Resources) -> bool {
        self.millicores <= other.millicores
            && self.memory_mb <= other.memory_mb
            && self.disk_mb <= other.disk_mb
            && self.gpus <= other.gpus
    }

    /// Component-wise sum, held at the largest value (totals of workers that
    /// announce huge sizes must not wrap).
    pub fn plus(&self, other: &Resources) -> Resources {
        Resources {
            millicores: self.millicores.saturating_add(other.millicores),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
            disk_mb: self.disk_mb.saturating_add(other.disk_mb),
            gpus: self.gpus.saturating_add(other.gpus),
        }
    }

    /// Component-wise difference; panics in debug builds on underflow, which
    /// would mean the books are wrong.
    pub fn minus(&self, other: &Resources) -> Resources {
        debug_assert!(other.fits_within(self), "{other:?} > {self:?}");
        Resources {
            millicores: self.millicores.saturating_sub(other.millicores),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            disk_mb: self.disk_mb.saturating_sub(other.disk_mb),
            gpus: self.gpus.saturating_sub(other.gpus),
        }
    }

    /// A short description for messages: "2 cores, 100 MB memory".
    pub fn describe(&self) -> String {
        format!(
            "{} cores, {} MB memory, {} MB disk, {} gpus",
            self.cores(),
            self.memory_mb,
            self.disk_mb,
            self.gpus
        )
    }
}

/// What a task used, as its worker measured it (`vine_enable_monitoring`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    /// Wall time of the attempt, microseconds.
    pub wall_us: u64,
    /// CPU time (user + system), microseconds: of the process group for a command
    /// or PROCESS function, of the calling thread for a THREAD function.
    pub cpu_us: u64,
    /// Peak resident memory, MB; None for a THREAD function, whose memory cannot
    /// be told apart from the rest of the process.
    pub memory_mb: Option<u64>,
    /// Peak size of the sandbox, MB (0 for functions, which have none).
    pub disk_mb: u64,
    /// Bytes read through system calls by the task's processes.
    pub bytes_read: u64,
    /// Bytes written through system calls by the task's processes.
    pub bytes_written: u64,
    /// Most processes of the task seen alive at once (0 for a THREAD function).
    pub max_processes: u32,
}

impl Measured {
    /// The same, with every figure within what a real task could report (a
    /// worker's report is not trusted to be sane): memory and disk at most
    /// [`crate::task::MAX_MB`], times at most about 31 years.
    pub fn bounded(self) -> Measured {
        const MAX_US: u64 = 1_000_000_000_000_000;
        let mb = |v: u64| v.min(crate::task::MAX_MB);
        Measured {
            wall_us: self.wall_us.min(MAX_US),
            cpu_us: self.cpu_us.min(MAX_US),
            memory_mb: self.memory_mb.map(mb),
            disk_mb: mb(self.disk_mb),
            ..self
        }
    }

    /// Cores used on average: CPU time over wall time.
    pub fn cores(&self) -> f64 {
        if self.wall_us == 0 {
            0.0
        } else {
            self.cpu_us as f64 / self.wall_us as f64
        }
    }
}

/// How a task's resources were chosen for its current attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sizing {
    /// As the program asked (and its category's maximum, for what it left unset).
    #[default]
    Asked,
    /// An automatic allocation of its category (`VINE_ALLOCATION_MODE_MAX`,
    /// `_MIN_WASTE`, `_MAX_THROUGHPUT`): what it asked for is kept in
    /// [`crate::task::Extra::asked`].
    Auto,
    /// Its category's maximum, after an automatic allocation was exhausted.
    Max,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn fractional_cores_add_and_subtract_exactly() {
        let quarter = Resources {
            millicores: Resources::millicores_from(0.25, false).unwrap(),
            ..Default::default()
        };
        let mut sum = Resources::default();
        for _ in 0..4 {
            sum = sum.plus(&quarter);
        }
        assert_eq!(sum.millicores, MILLI);
        assert_eq!(sum.minus(&quarter).cores(), 0.75);
    }

    #[test]
    fn sums_of_huge_sizes_stay_at_the_largest_value() {
        let huge = Resources {
            millicores: u64::MAX,
            memory_mb: u64::MAX,
            disk_mb: u64::MAX,
            gpus: u32::MAX,
        };
        assert_eq!(huge.plus(&huge), huge);
    }

    #[test]
    fn bad_core_counts_are_refused() {
        assert!(Resources::millicores_from(f64::NAN, false).is_err());
        assert!(Resources::millicores_from(-1.0, false).is_err());
        assert!(Resources::millicores_from(0.0, false).is_err());
        assert!(Resources::millicores_from(0.0001, false).is_err());
        assert_eq!(Resources::millicores_from(0.0, true).unwrap(), 0);
    }

    #[test]
    fn fits_checks_every_component() {
        let cap = Resources {
            millicores: 2000,
            memory_mb: 100,
            disk_mb: 10,
            gpus: 1,
        };
        let mut req = Resources::DEFAULT_REQUEST;
        assert!(req.fits_within(&cap));
        req.gpus = 2;
        assert!(!req.fits_within(&cap));
    }
}
