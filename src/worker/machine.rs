//! What this machine has: cores, memory and free disk, read from the OS.

use std::path::Path;

/// Cores this process may use (affinity and cgroup limits respected).
pub fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Memory this process may use in MB: the machine's total (/proc/meminfo),
/// or less where a limit says so: its cgroup's `memory.max` (and those above
/// it), and inside a Slurm job the memory Slurm gave the job on this node.
/// 0 if unknown.
pub fn memory_mb() -> u64 {
    let limits = [cgroup_limit_mb(), slurm_mb(|n| std::env::var(n).ok())];
    limits
        .into_iter()
        .flatten()
        .filter(|&m| m > 0)
        .fold(total_memory_mb(), |a, m| if a == 0 { m } else { a.min(m) })
}

/// The memory Slurm gave the job this process runs in, on this node, in MB,
/// from its variables (`get`): `SLURM_MEM_PER_NODE`, else `SLURM_MEM_PER_CPU`
/// times `SLURM_CPUS_ON_NODE`. None outside a job (no `SLURM_JOB_ID`) or
/// when they do not say.
fn slurm_mb(get: impl Fn(&str) -> Option<String>) -> Option<u64> {
    get("SLURM_JOB_ID").filter(|j| !j.is_empty())?;
    let number = |name: &str| get(name)?.trim().parse::<u64>().ok().filter(|&v| v > 0);
    number("SLURM_MEM_PER_NODE")
        .or_else(|| number("SLURM_MEM_PER_CPU")?.checked_mul(number("SLURM_CPUS_ON_NODE")?))
}

/// The smallest `memory.max` of this process's cgroup (version 2) and those
/// above it, in MB; None if there is none or it cannot be read.
fn cgroup_limit_mb() -> Option<u64> {
    let me = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = me.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let mut dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let mut least: Option<u64> = None;
    loop {
        if let Ok(v) = std::fs::read_to_string(dir.join("memory.max")) {
            if let Ok(bytes) = v.trim().parse::<u64>() {
                let mb = bytes / (1024 * 1024);
                least = Some(least.map_or(mb, |l| l.min(mb)));
            }
        }
        if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
            return least;
        }
    }
}

/// The machine's total memory in MB, from /proc/meminfo (0 if unreadable).
fn total_memory_mb() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb / 1024)
}

/// Free disk in MB on the file system holding `dir` (0 if unknown).
pub fn disk_free_mb(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable storage of the
    // right type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    free / (1024 * 1024)
}

/// This machine's host name ("unknown" if unreadable).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod test {
    use super::*;

    fn vars<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            list.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_slurm_jobs_memory_is_what_slurm_gave_it_on_this_node() {
        assert_eq!(
            slurm_mb(vars(&[("SLURM_MEM_PER_NODE", "4000")])),
            None,
            "no job"
        );
        let job = [("SLURM_JOB_ID", "7"), ("SLURM_MEM_PER_NODE", "4000")];
        assert_eq!(slurm_mb(vars(&job)), Some(4000));
        let per_cpu = [
            ("SLURM_JOB_ID", "7"),
            ("SLURM_MEM_PER_CPU", "1500"),
            ("SLURM_CPUS_ON_NODE", "3"),
        ];
        assert_eq!(slurm_mb(vars(&per_cpu)), Some(4500));
        for bad in ["", "x", "0", "-5"] {
            let v = [("SLURM_JOB_ID", "7"), ("SLURM_MEM_PER_NODE", bad)];
            assert_eq!(slurm_mb(vars(&v)), None, "{bad:?}");
        }
        assert_eq!(slurm_mb(vars(&[("SLURM_JOB_ID", "7")])), None);
        // Never above the machine's.
        assert!(memory_mb() <= total_memory_mb() || total_memory_mb() == 0);
    }
}
