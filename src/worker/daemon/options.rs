//! How a worker is configured: the command line of `vine_worker`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::resources::Resources;

/// How a worker is configured (the command line of `vine_worker`).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Manager host.
    pub host: String,
    /// Manager port.
    pub port: u16,
    /// Password, if the manager wants one.
    pub password: Option<Vec<u8>>,
    /// Resources offered; None = what the machine has.
    pub cores: Option<f64>,
    /// Memory MB.
    pub memory: Option<u64>,
    /// Disk MB.
    pub disk: Option<u64>,
    /// Gpus.
    pub gpus: Option<u32>,
    /// Shared libraries whose functions to register.
    pub libraries: Vec<PathBuf>,
    /// Give up when no manager is reachable for this long.
    pub timeout: Duration,
    /// Where sandboxes and the cache go.
    pub workdir: PathBuf,
    /// Seconds between keepalives.
    pub keepalive: Duration,
    /// Connect with TLS, checking the manager's certificate so.
    pub tls: Option<crate::tls::Verify>,
    /// Debug subsystems (`-d`); any but "none" turns debug messages on.
    pub debug: Vec<String>,
    /// Where messages go (`-o`): a file, `:stderr` or `:stdout`.
    pub debug_file: Option<PathBuf>,
    /// Exit when the first session with a manager ends, instead of reconnecting.
    pub single_shot: bool,
    /// Stop and exit after being active this long.
    pub wall_time: Option<Duration>,
    /// The longest wait between attempts to reach the manager.
    pub max_backoff: Duration,
    /// Features this worker offers (`--feature NAME`, repeatable): tasks that
    /// require features (`vine_task_add_feature`) run only on workers that offer
    /// them all.
    pub features: Vec<String>,
    /// The factory job this worker runs in (`--factory-job ID`, set by a factory),
    /// told to the manager so the factory knows which of its jobs have joined.
    pub factory_job: Option<String>,
    /// The port it serves files to other workers on (`--transfer-port`, as
    /// TaskVine's worker); 0: one the system picks.
    pub transfer_port: u16,
}

/// The first wait between attempts to reach the manager (doubling up to
/// `--max-backoff`).
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);

pub(super) const USAGE: &str =
    "usage: vine_worker HOST PORT|HOST:PORT [-P|--password FILE] [--cores N|all] \
[--memory MB|all] [--disk MB|all] [--gpus N|all] [--library LIB.so]... [-t|--timeout S] \
[-s|--workdir DIR] [-d|--debug SUBSYSTEM] [-o|--debug-file FILE] [--single-shot] \
[--wall-time S] [--factory-job ID] [-b|--max-backoff S] [--ssl] [--ssl-fingerprint SHA256] [--ssl-ca PEM] \
[--feature NAME]... [--transfer-port PORT] (--name=value works too)";

/// TaskVine's short options that take a value, which may be attached (`-dall`).
const SHORT_WITH_VALUE: &[char] = &['P', 't', 's', 'd', 'o', 'b'];

/// The arguments with `--name=value` and `-Xvalue` split in two, as getopt reads them.
fn split_values(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let Some((name, value)) = a.strip_prefix("--").and_then(|r| r.split_once('=')) {
            out.push(format!("--{name}"));
            out.push(value.to_owned());
        } else if let Some(rest) = a.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            match rest.chars().next() {
                Some(c) if rest.len() > 1 && SHORT_WITH_VALUE.contains(&c) => {
                    out.push(format!("-{c}"));
                    out.push(rest[c.len_utf8()..].to_owned());
                }
                _ => out.push(a.clone()),
            }
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// A value of `--cores`, `--memory`, `--disk` or `--gpus`: "all", as in
/// TaskVine, means what the machine has, and so does a negative number, or 0
/// unless `zero_is_real` (gpus).
fn amount<T: std::str::FromStr>(v: &str, zero_is_real: bool) -> Option<Option<T>> {
    if v == "all" {
        return Some(None);
    }
    let n: f64 = v.parse().ok()?;
    if !n.is_finite() {
        return None;
    }
    if n < 0.0 || (n == 0.0 && !zero_is_real) {
        return Some(None);
    }
    v.parse().ok().map(Some)
}

/// Seconds from 0 to a year (past that it is a typo, and Instant arithmetic on
/// it must not overflow).
fn secs(v: &str) -> Option<Duration> {
    let s: f64 = v.parse().ok()?;
    (s.is_finite() && (0.0..=365.0 * 86400.0).contains(&s)).then(|| Duration::from_secs_f64(s))
}

impl WorkerOptions {
    /// The store of files kept forever (cache level FOREVER): shared by this user's
    /// workers that use the same work directory, and left in place when they exit,
    /// so a later worker (for any manager) has them without a transfer.
    pub fn store(&self) -> PathBuf {
        // SAFETY: geteuid takes nothing and cannot fail.
        let uid = unsafe { libc::geteuid() };
        self.workdir.join(format!("vine-forever-{uid}"))
    }

    /// Parses `argv` (program name first; an optional `--vine-worker` after it).
    pub fn parse(args: &[String]) -> Result<WorkerOptions> {
        let args = split_values(args.get(1..).unwrap_or_default());
        let mut it = args.iter().filter(|a| a.as_str() != "--vine-worker");
        let mut positional = Vec::new();
        let mut o = WorkerOptions {
            host: String::new(),
            port: 0,
            password: None,
            cores: None,
            memory: None,
            disk: None,
            gpus: None,
            libraries: Vec::new(),
            timeout: Duration::from_secs(900),
            workdir: crate::files::temp_root(),
            keepalive: Duration::from_secs(5),
            tls: None,
            debug: Vec::new(),
            debug_file: None,
            single_shot: false,
            wall_time: None,
            max_backoff: MIN_BACKOFF,
            features: Vec::new(),
            factory_job: None,
            transfer_port: 0,
        };
        let bad =
            |what: &str, v: &str| Error::invalid(format!("{what} {v:?} is not valid\n{USAGE}"));
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::invalid(format!("{name} needs a value\n{USAGE}")))
            };
            match a.as_str() {
                "--password" | "-P" => {
                    let path = value(a)?;
                    o.password = Some(crate::protocol::read_password(Path::new(&path))?);
                }
                "--cores" => {
                    let v = value(a)?;
                    o.cores = amount(&v, false).ok_or_else(|| bad("--cores", &v))?;
                }
                "--memory" => {
                    let v = value(a)?;
                    o.memory = amount(&v, false)
                        .filter(|m| m.is_none_or(|m| m <= crate::task::MAX_MB))
                        .ok_or_else(|| bad("--memory", &v))?;
                }
                "--disk" => {
                    let v = value(a)?;
                    o.disk = amount(&v, false)
                        .filter(|d| d.is_none_or(|d| d <= crate::task::MAX_MB))
                        .ok_or_else(|| bad("--disk", &v))?;
                }
                "--gpus" => {
                    let v = value(a)?;
                    // Each gpu is numbered in the worker's table of them.
                    o.gpus = amount(&v, true)
                        .filter(|g| g.is_none_or(|g| g <= crate::task::MAX_GPUS))
                        .ok_or_else(|| bad("--gpus", &v))?;
                }
                "--library" => o.libraries.push(value(a)?.into()),
                "--feature" => {
                    let v = value(a)?;
                    if v.is_empty() || v.contains('\0') {
                        return Err(bad("--feature", &v));
                    }
                    if !o.features.contains(&v) {
                        o.features.push(v);
                    }
                }
                "--transfer-port" => {
                    let v = value(a)?;
                    o.transfer_port = v.parse().map_err(|_| bad("--transfer-port", &v))?;
                }
                "--factory-job" => {
                    let v = value(a)?;
                    if v.is_empty() || v.len() > 128 || v.contains('\0') {
                        return Err(bad("--factory-job", &v));
                    }
                    o.factory_job = Some(v);
                }
                "--timeout" | "-t" => {
                    let v = value(a)?;
                    o.timeout = secs(&v).ok_or_else(|| bad("--timeout", &v))?;
                }
                "--workdir" | "--workspace" | "-s" => o.workdir = value(a)?.into(),
                "--debug" | "-d" => o.debug.push(value(a)?),
                "--debug-file" | "-o" => o.debug_file = Some(value(a)?.into()),
                "--single-shot" => o.single_shot = true,
                "--wall-time" => {
                    let v = value(a)?;
                    let t = secs(&v).filter(|t| !t.is_zero());
                    o.wall_time = Some(t.ok_or_else(|| bad("--wall-time", &v))?);
                }
                "--max-backoff" | "-b" => {
                    let v = value(a)?;
                    let t = secs(&v).filter(|t| !t.is_zero());
                    o.max_backoff = t.ok_or_else(|| bad("--max-backoff", &v))?;
                }
                "--ssl" => {
                    o.tls.get_or_insert(crate::tls::Verify::Any);
                }
                "--ssl-fingerprint" => {
                    o.tls = Some(crate::tls::Verify::fingerprint(&value(a)?)?);
                }
                "--ssl-ca" => o.tls = Some(crate::tls::Verify::Ca(value(a)?.into())),
                "--keepalive-interval" => {
                    let v = value(a)?;
                    let s: f64 = v.parse().map_err(|_| bad("--keepalive-interval", &v))?;
                    // Below 0.1 s it would be a flood of frames, not a heartbeat.
                    if !s.is_finite() || !(0.1..=86400.0).contains(&s) {
                        return Err(bad("--keepalive-interval", &v));
                    }
                    o.keepalive = Duration::from_secs_f64(s);
                }
                s if s.starts_with('-') && s.len() > 1 => {
                    return Err(Error::invalid(format!("unknown option {s}\n{USAGE}")))
                }
                _ => positional.push(a.clone()),
            }
        }
        match positional.as_slice() {
            [host, port] => {
                o.host = host.clone();
                o.port = port.parse().map_err(|_| bad("port", port))?;
            }
            // TaskVine's HOST:PORT (the last colon, so an IPv6 address in brackets
            // keeps its own).
            [both] => {
                let (host, port) = both.rsplit_once(':').ok_or_else(|| Error::invalid(USAGE))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad("host", both));
                }
                o.host = host.to_owned();
                o.port = port.parse().map_err(|_| bad("port", port))?;
            }
            _ => return Err(Error::invalid(USAGE)),
        }
        // Cores past what a worker can offer are a bad command line, found
        // here rather than when the worker starts.
        if let Some(c) = o.cores {
            Resources::millicores_from(c, false)?;
        }
        Ok(o)
    }

    pub(super) fn resources(&self, workdir: &Path) -> Result<Resources> {
        let mut r = Resources {
            millicores: crate::worker::machine::cores() * 1000,
            memory_mb: crate::worker::machine::memory_mb(),
            disk_mb: crate::worker::machine::disk_free_mb(workdir),
            gpus: 0,
        };
        if let Some(c) = self.cores {
            r.millicores = Resources::millicores_from(c, false)?;
        }
        if let Some(m) = self.memory {
            r.memory_mb = m;
        }
        if let Some(d) = self.disk {
            r.disk_mb = d;
        }
        if let Some(g) = self.gpus {
            r.gpus = g;
        }
        Ok(r)
    }
}

#[cfg(test)]
mod test {
    use super::WorkerOptions;
    use std::path::PathBuf;
    use std::time::Duration;

    fn parse(args: &[&str]) -> crate::error::Result<WorkerOptions> {
        let mut v = vec!["vine_worker".to_owned()];
        v.extend(args.iter().map(|a| a.to_string()));
        WorkerOptions::parse(&v)
    }

    #[test]
    fn the_manager_is_host_and_port_or_host_colon_port() {
        let o = parse(&["node1", "9123"]).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("node1", 9123));
        let o = parse(&["node1:9124", "--cores", "2"]).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("node1", 9124));
        let o = parse(&["[::1]:9125"]).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 9125));
        for bad in [
            &["node1"][..],
            &[":9123"],
            &["node1:port"],
            &["a", "b", "c"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn numbers_past_their_range_are_refused() {
        for bad in [
            &["h", "1", "--timeout", "1e300"][..],
            &["h", "1", "--timeout", "nan"],
            &["h", "1", "--cores", "nan"],
            &["h", "1", "--cores", "inf"],
            &["h", "1", "--cores", "1e30"],
            &["h", "1", "--cores", "0.0001"],
            &["h", "1", "--memory", "-inf"],
            &["h", "1", "--timeout", "-1"],
            &["h", "1", "--keepalive-interval", "1e19"],
            &["h", "1", "--keepalive-interval", "0"],
            &["h", "1", "--keepalive-interval", "1e-9"],
            &["h", "1", "--gpus", "4294967295"],
            &["h", "1", "--gpus", "1000001"],
            &["h", "1", "--memory", "18446744073709551615"],
            &["h", "1", "--disk", "18446744073709551615"],
            &["h", "70000"],
            &["h", "1", "--ssl-fingerprint", "abc"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&["h", "1", "--timeout", "0.5", "--ssl"]).is_ok());
        assert!(parse(&["h", "1", "--gpus", "1000000", "--keepalive-interval", "0.1"]).is_ok());
    }

    #[test]
    fn taskvines_common_options_are_understood() {
        let pw = std::env::temp_dir().join(format!("vine-options-pw-{}", std::process::id()));
        std::fs::write(&pw, "secret\n").unwrap();
        let pw_arg = format!("--password={}", pw.display());
        let o = parse(&[
            "-P",
            pw.to_str().unwrap(),
            "--cores",
            "4",
            "--memory=2048",
            "--disk",
            "all",
            "--gpus",
            "0",
            "-t",
            "30",
            "-s",
            "/scratch",
            "-d",
            "all",
            "-o",
            "/tmp/worker.log",
            "--single-shot",
            "--wall-time",
            "3600",
            "-b",
            "5",
            "node1:9123",
        ])
        .unwrap();
        assert_eq!(o.password.as_deref(), Some(&b"secret"[..]));
        assert_eq!(
            (o.cores, o.memory, o.disk, o.gpus),
            (Some(4.0), Some(2048), None, Some(0))
        );
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.workdir, PathBuf::from("/scratch"));
        assert_eq!(o.debug, ["all"]);
        assert_eq!(o.debug_file, Some(PathBuf::from("/tmp/worker.log")));
        assert!(o.single_shot);
        assert_eq!(o.wall_time, Some(Duration::from_secs(3600)));
        assert_eq!(o.max_backoff, Duration::from_secs(5));
        assert_eq!((o.host.as_str(), o.port), ("node1", 9123));

        // Long names with '=', short ones with the value attached, as getopt.
        let o = parse(&[
            &pw_arg,
            "--timeout=7",
            "--workdir=/w",
            "-dvine",
            "-o:stderr",
            "--debug=tcp",
            "--debug-file=/tmp/x",
            "--max-backoff=2",
            "--wall-time=10",
            "--workspace=/w2",
            "--cores=all",
            "--memory=-1",
            "h",
            "1",
        ])
        .unwrap();
        assert_eq!(o.timeout, Duration::from_secs(7));
        assert_eq!(o.workdir, PathBuf::from("/w2"));
        assert_eq!(o.debug, ["vine", "tcp"]);
        assert_eq!(o.debug_file, Some(PathBuf::from("/tmp/x")));
        assert_eq!(o.max_backoff, Duration::from_secs(2));
        assert_eq!(o.wall_time, Some(Duration::from_secs(10)));
        assert_eq!((o.cores, o.memory), (None, None));
        assert_eq!(o.password.as_deref(), Some(&b"secret"[..]));
        std::fs::remove_file(&pw).unwrap();

        // Defaults: reconnect at once, no wall time, not single-shot.
        let o = parse(&["h", "1"]).unwrap();
        assert!(!o.single_shot && o.wall_time.is_none() && o.debug.is_empty());
        assert_eq!(o.max_backoff, super::MIN_BACKOFF);
    }

    #[test]
    fn an_empty_password_file_is_refused_as_the_manager_refuses_it() {
        let pw = std::env::temp_dir().join(format!("vine-options-empty-{}", std::process::id()));
        for empty in ["", " \n\t\n"] {
            std::fs::write(&pw, empty).unwrap();
            let e = parse(&["-P", pw.to_str().unwrap(), "h", "1"]).unwrap_err();
            assert!(e.to_string().contains("is empty"), "{e}");
        }
        std::fs::remove_file(&pw).unwrap();
        assert!(parse(&["-P", "/dev/null", "h", "1"]).is_err());
    }

    #[test]
    fn a_password_file_that_would_never_end_is_refused_not_read() {
        // A device that never ends, a FIFO no one writes (which would not
        // even open), a directory, and a file past the largest read.
        let dir = std::env::temp_dir().join(format!("vine-options-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let big = dir.join("big");
        std::fs::write(
            &big,
            vec![b'x'; crate::protocol::PASSWORD_FILE_MAX as usize + 1],
        )
        .unwrap();
        let dev = std::path::PathBuf::from("/dev/zero");
        for (path, why) in [
            (&dev, "not a regular file"),
            (&fifo, "not a regular file"),
            (&dir, "not a regular file"),
            (&big, "larger than"),
        ] {
            let e = parse(&["-P", path.to_str().unwrap(), "h", "1"]).unwrap_err();
            assert!(e.to_string().contains(why), "{}: {e}", path.display());
        }
        // At the largest, it is read.
        std::fs::write(
            &big,
            vec![b'x'; crate::protocol::PASSWORD_FILE_MAX as usize],
        )
        .unwrap();
        let o = parse(&["-P", big.to_str().unwrap(), "h", "1"]).unwrap();
        assert_eq!(
            o.password.map(|p| p.len()),
            Some(crate::protocol::PASSWORD_FILE_MAX as usize)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_of_taskvines_options_are_refused() {
        for bad in [
            &["h", "1", "--wall-time", "0"][..],
            &["h", "1", "--wall-time", "soon"],
            &["h", "1", "-b", "0"],
            &["h", "1", "--max-backoff", "-3"],
            &["h", "1", "--cores", "many"],
            &["h", "1", "--gpus", "1.5"],
            &["h", "1", "-d"],
            &["h", "1", "-x"],
            &["h", "1", "--feature-not-an-option"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn features_repeat_and_an_empty_one_is_refused() {
        let o = parse(&[
            "h",
            "1",
            "--feature",
            "gpu-a",
            "--feature",
            "big",
            "--feature",
            "big",
        ])
        .unwrap();
        assert_eq!(o.features, ["gpu-a", "big"]);
        assert!(parse(&["h", "1", "--feature", ""]).is_err());
        assert!(parse(&["h", "1", "--feature"]).is_err());
    }
}
