//! The numeric settings of `vine_tune`, and the environment variables that set the
//! local pool's resources. A setting is parsed and checked here, then applied by
//! whoever owns it.

use crate::error::{Error, ErrorKind, Result};
use crate::resources::Resources;
use crate::task::{MAX_GPUS, MAX_MB, MAX_SECONDS};

/// One checked setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    /// Retries for tasks that did not set their own.
    MaxRetries(u32),
    /// Successful measured tasks of a category before its automatic
    /// allocations are computed from them.
    CategorySteadyN(usize),
    /// Dispatch nothing until this many workers are connected.
    WaitForWorkers(usize),
    /// Seconds of silence after which a remote worker is declared lost.
    KeepaliveTimeout(f64),
    /// Seconds between keepalives.
    KeepaliveInterval(f64),
    /// Seconds `vine_shutdown` lets running tasks finish before killing them.
    ShutdownTimeout(f64),
    /// Cores of the local pool.
    LocalCores(u64),
    /// Memory of the local pool, MB.
    LocalMemory(u64),
    /// Disk of the local pool, MB.
    LocalDisk(u64),
    /// Gpus of the local pool.
    LocalGpus(u32),
    /// Category = function name for tasks that set none.
    Autocategory(bool),
    /// Tasks a worker may hold beyond what it can start at once.
    Prefetch(usize),
    /// Bytes of command output kept.
    MaxStdout(usize),
    /// `vine_hungry` is true while fewer than this many tasks per slot are waiting.
    HungryFactor(f64),
    /// Start and supervise this many local worker processes.
    LocalWorkerProcesses(usize),
    /// Take back tasks running past this many times their category's average,
    /// and disconnect workers that are slow twice (below 1: off).
    SlowWorkersFactor(f64),
    /// Seconds a slow worker's host stays blocked.
    SlowWorkersBlockTimeout(f64),
    /// `vine_hungry` wants at least this many tasks waiting.
    HungryMinimum(usize),
    /// Each worker holds tasks for this many times its cores (the excess wait
    /// there): TaskVine's way to set the prefetch.
    SubmitMultiplier(f64),
    /// The progress line on standard error: on (1) or off (0).
    Progress(bool),
    /// TaskVine's: the most peer transfers one worker serves at once.
    WorkerSourceMaxTransfers(u64),
    /// TaskVine's: the most transfers of one file one worker serves at once.
    FileSourceMaxTransfers(u64),
    /// TaskVine's: workers each temp is kept at.
    TempReplicaCount(u64),
    /// TaskVine's proportional resources on or off.
    Proportional(bool),
}

/// The names `vine_tune` knows, for messages and documentation.
pub const NAMES: &[&str] = &[
    "max-retries",
    "wait-for-workers",
    "keepalive-timeout",
    "keepalive-interval",
    "shutdown-timeout",
    "local-cores",
    "local-memory",
    "local-disk",
    "local-gpus",
    "autocategory",
    "progress",
    "prefetch",
    "max-stdout",
    "hungry-factor",
    "local-worker-processes",
    "disconnect-slow-workers-factor",
    "disconnect-slow-worker-factor",
    "option-blocklist-slow-workers-timeout",
    "hungry-minimum",
    "resource-submit-multiplier",
    "asynchrony-multiplier",
    "category-steady-n-tasks",
    "worker-source-max-transfers",
    "file-source-max-transfers",
    "temp-replica-count",
    "hungry-minimum-factor",
    "max-task-stdout-storage",
    "proportional-resources",
    "force-proportional-resources",
];

fn whole(name: &str, v: f64, max: f64) -> Result<u64> {
    if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > max {
        return Err(Error::invalid(format!(
            "{name} must be a whole number from 0 to {max}, not {}",
            crate::error::Shown(v)
        )));
    }
    Ok(v as u64)
}

/// `v` seconds, 0 (off) or at least `least`: workers send keepalives at
/// most every 0.1 s (more would be a flood of frames, not a heartbeat), and
/// a timeout is at least two of them.
fn at_least(name: &str, v: f64, least: f64) -> Result<f64> {
    if v != 0.0 && v < least {
        return Err(Error::invalid(format!(
            "{name} must be 0 or at least {least} s, not {}",
            crate::error::Shown(v)
        )));
    }
    Ok(v)
}

fn seconds(name: &str, v: f64) -> Result<f64> {
    if !v.is_finite() || !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(Error::invalid(format!(
            "{name} must be a number of seconds from 0 to {MAX_SECONDS:e}, not {}",
            crate::error::Shown(v)
        )));
    }
    Ok(v)
}

/// The largest `hungry-factor`.
pub const MAX_HUNGRY_FACTOR: f64 = 1e6;

impl Setting {
    /// Parses `vine_tune(m, name, value)`.
    pub fn parse(name: &str, v: f64) -> Result<Setting> {
        const BIG: f64 = MAX_MB as f64;
        Ok(match name {
            "max-retries" => Setting::MaxRetries(whole(name, v, 1e9)? as u32),
            "category-steady-n-tasks" => {
                Setting::CategorySteadyN(whole(name, v, 1e9)?.max(1) as usize)
            }
            "wait-for-workers" => Setting::WaitForWorkers(whole(name, v, 1e9)? as usize),
            "keepalive-timeout" => {
                Setting::KeepaliveTimeout(at_least(name, seconds(name, v)?, 0.2)?)
            }
            "keepalive-interval" => {
                Setting::KeepaliveInterval(at_least(name, seconds(name, v)?, 0.1)?)
            }
            "shutdown-timeout" => Setting::ShutdownTimeout(seconds(name, v)?),
            "local-cores" => Setting::LocalCores(Resources::millicores_from(v, true)?),
            "local-memory" => Setting::LocalMemory(whole(name, v, BIG)?),
            "local-disk" => Setting::LocalDisk(whole(name, v, BIG)?),
            "local-gpus" => Setting::LocalGpus(whole(name, v, MAX_GPUS as f64)? as u32),
            "autocategory" => Setting::Autocategory(whole(name, v, 1.0)? == 1),
            "progress" => Setting::Progress(whole(name, v, 1.0)? == 1),
            "prefetch" => Setting::Prefetch(whole(name, v, 1e9)? as usize),
            "local-worker-processes" => {
                Setting::LocalWorkerProcesses(whole(name, v, 4096.0)? as usize)
            }
            "max-stdout" | "max-task-stdout-storage" => {
                Setting::MaxStdout(whole(name, v, 1e12)? as usize)
            }
            // TaskVine's names, with TaskVine's meaning.
            "disconnect-slow-workers-factor" | "disconnect-slow-worker-factor" => {
                if !v.is_finite() || !(0.0..=MAX_HUNGRY_FACTOR).contains(&v) {
                    return Err(Error::invalid(format!(
                        "{name} must be a number from 0 to {MAX_HUNGRY_FACTOR:e} (below 1: off), not {}",
                        crate::error::Shown(v)
                    )));
                }
                Setting::SlowWorkersFactor(v)
            }
            "option-blocklist-slow-workers-timeout" => {
                Setting::SlowWorkersBlockTimeout(seconds(name, v)?)
            }
            "hungry-minimum" => Setting::HungryMinimum(whole(name, v, 1e9)? as usize),
            "proportional-resources" | "force-proportional-resources" => {
                Setting::Proportional(whole(name, v, 1.0)? == 1)
            }
            "worker-source-max-transfers" => {
                Setting::WorkerSourceMaxTransfers(whole(name, v, 1e6)?.max(1))
            }
            "file-source-max-transfers" => {
                Setting::FileSourceMaxTransfers(whole(name, v, 1e6)?.max(1))
            }
            "temp-replica-count" => Setting::TempReplicaCount(whole(name, v, 1e6)?.max(1)),
            "resource-submit-multiplier" | "asynchrony-multiplier" => {
                if !v.is_finite() || !(1.0..=MAX_HUNGRY_FACTOR).contains(&v) {
                    return Err(Error::invalid(format!(
                        "{name} must be a number from 1 to {MAX_HUNGRY_FACTOR:e}, not {}",
                        crate::error::Shown(v)
                    )));
                }
                Setting::SubmitMultiplier(v)
            }
            "hungry-factor" | "hungry-minimum-factor" => {
                if !v.is_finite() || v <= 0.0 || v > MAX_HUNGRY_FACTOR {
                    return Err(Error::invalid(format!(
                        "{name} must be a number > 0 and at most {MAX_HUNGRY_FACTOR:e}, not {}",
                        crate::error::Shown(v)
                    )));
                }
                Setting::HungryFactor(v)
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::UnknownSetting,
                    format!("unknown setting {name:?}; known: {}", NAMES.join(", ")),
                ))
            }
        })
    }
}

/// Reads the local pool's resources: what the machine has, changed by
/// `VINE_LOCAL_CORES`, `VINE_LOCAL_MEMORY` (MB), `VINE_LOCAL_DISK` (MB) and
/// `VINE_LOCAL_GPUS`. A variable that is set but not a valid number is an error.
pub fn local_resources_from_env(work_dir: &std::path::Path) -> Result<Resources> {
    let mut r = Resources {
        millicores: crate::worker::machine::cores() * 1000,
        memory_mb: crate::worker::machine::memory_mb(),
        disk_mb: crate::worker::machine::disk_free_mb(work_dir),
        gpus: 0,
    };
    let var = |name: &str| -> Result<Option<f64>> {
        match std::env::var(name) {
            Err(_) => Ok(None),
            Ok(s) => s.trim().parse::<f64>().map(Some).map_err(|_| {
                Error::invalid(format!("environment variable {name}={s:?} is not a number"))
            }),
        }
    };
    if let Some(v) = var("VINE_LOCAL_CORES")? {
        r.millicores = Resources::millicores_from(v, true)?;
    }
    if let Some(v) = var("VINE_LOCAL_MEMORY")? {
        r.memory_mb = whole("VINE_LOCAL_MEMORY", v, MAX_MB as f64)?;
    }
    if let Some(v) = var("VINE_LOCAL_DISK")? {
        r.disk_mb = whole("VINE_LOCAL_DISK", v, MAX_MB as f64)?;
    }
    if let Some(v) = var("VINE_LOCAL_GPUS")? {
        r.gpus = whole("VINE_LOCAL_GPUS", v, MAX_GPUS as f64)? as u32;
    }
    Ok(r)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        assert_eq!(
            Setting::parse("no-such-thing", 1.0).unwrap_err().kind(),
            ErrorKind::UnknownSetting
        );
        assert!(Setting::parse("keepalive-timeout", 0.001).is_err());
        assert!(Setting::parse("keepalive-interval", 0.05).is_err());
        assert!(Setting::parse("keepalive-timeout", 0.0).is_ok());
        assert!(Setting::parse("keepalive-timeout", 0.2).is_ok());
        assert!(Setting::parse("keepalive-interval", 0.1).is_ok());
        assert!(Setting::parse("max-retries", -1.0).is_err());
        assert!(Setting::parse("max-retries", 1.5).is_err());
        assert!(Setting::parse("local-cores", f64::NAN).is_err());
        assert_eq!(
            Setting::parse("local-cores", 0.5).unwrap(),
            Setting::LocalCores(500)
        );
        assert_eq!(
            Setting::parse("autocategory", 0.0).unwrap(),
            Setting::Autocategory(false)
        );
        for name in NAMES {
            assert!(Setting::parse(name, 1.0).is_ok(), "{name}");
        }
    }

    #[test]
    fn every_setting_refuses_numbers_past_its_range() {
        for name in NAMES {
            for v in [
                1e300,
                1e19,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -1.0,
            ] {
                let e = Setting::parse(name, v).expect_err(&format!("{name} = {v}"));
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name} = {v}");
            }
        }
        for name in [
            "shutdown-timeout",
            "keepalive-timeout",
            "keepalive-interval",
        ] {
            assert!(Setting::parse(name, MAX_SECONDS).is_ok(), "{name}");
            assert!(Setting::parse(name, MAX_SECONDS * 1.01).is_err(), "{name}");
        }
    }
}
