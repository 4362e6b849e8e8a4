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
    /// Features this worker offers (`--feature NAME`, repeatable): tasks that
    /// require features (`vine_task_add_feature`) run only on workers that offer
    /// them all.
    pub features: Vec<String>,
}

pub(super) const USAGE: &str =
    "usage: vine_worker HOST PORT|HOST:PORT [--password FILE] [--cores N] [--memory MB] \
[--disk MB] [--gpus N] [--library LIB.so]... [--timeout S] [--workdir DIR] \
[--ssl] [--ssl-fingerprint SHA256] [--ssl-ca PEM] [--feature NAME]...";

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
        let mut it = args
            .iter()
            .skip(1)
            .filter(|a| a.as_str() != "--vine-worker");
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
            workdir: std::env::temp_dir(),
            keepalive: Duration::from_secs(5),
            tls: None,
            features: Vec::new(),
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
                "--password" => {
                    let path = value(a)?;
                    let mut pw = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                    while pw.last().is_some_and(|b| b.is_ascii_whitespace()) {
                        pw.pop();
                    }
                    o.password = Some(pw);
                }
                "--cores" => {
                    let v = value(a)?;
                    o.cores = Some(v.parse().map_err(|_| bad("--cores", &v))?);
                }
                "--memory" => {
                    let v = value(a)?;
                    o.memory = Some(v.parse().map_err(|_| bad("--memory", &v))?);
                }
                "--disk" => {
                    let v = value(a)?;
                    o.disk = Some(v.parse().map_err(|_| bad("--disk", &v))?);
                }
                "--gpus" => {
                    let v = value(a)?;
                    o.gpus = Some(v.parse().map_err(|_| bad("--gpus", &v))?);
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
                "--timeout" => {
                    let v = value(a)?;
                    let s: f64 = v.parse().map_err(|_| bad("--timeout", &v))?;
                    // Up to a year: past that it is a typo, and Instant arithmetic
                    // on it must not overflow.
                    if !s.is_finite() || !(0.0..=365.0 * 86400.0).contains(&s) {
                        return Err(bad("--timeout", &v));
                    }
                    o.timeout = Duration::from_secs_f64(s);
                }
                "--workdir" => o.workdir = value(a)?.into(),
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
                    if !s.is_finite() || s <= 0.0 || s > 86400.0 {
                        return Err(bad("--keepalive-interval", &v));
                    }
                    o.keepalive = Duration::from_secs_f64(s);
                }
                s if s.starts_with("--") => {
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
            &["h", "1", "--timeout", "-1"],
            &["h", "1", "--keepalive-interval", "1e19"],
            &["h", "1", "--keepalive-interval", "0"],
            &["h", "70000"],
            &["h", "1", "--ssl-fingerprint", "abc"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&["h", "1", "--timeout", "0.5", "--ssl"]).is_ok());
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
