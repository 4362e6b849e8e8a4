//! Files a worker makes itself rather than receives: downloads of URLs and the
//! outputs of mini tasks. Each is made once per worker and kept under a name
//! (see [`File::worker_key`]) while its cache level allows; tasks that need it
//! at the same time wait for the one making it. A file kept for one task only
//! (cache level TASK) is made for that task and moved into its sandbox.
//!
//! A kept file that a task is using (a directory linked into its sandbox) is
//! removed, when it is forgotten, only once that task is done.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::files::{CacheLevel, File, FileKind, Mount};
use crate::task::{Task, TaskResult};
use crate::transfer::remove_all;
use crate::worker::command::CommandEnv;

/// Task ids given to mini tasks at a worker (their sandboxes are named by id):
/// far above any id a manager gives.
const MINI_TASK_IDS: u64 = 1 << 62;

/// The files one worker made, by name.
#[derive(Debug)]
pub struct Fetcher {
    dir: PathBuf,
    /// Bumped for each manager a remote worker serves: a URL kept between them
    /// is checked against the server again once per manager.
    generation: AtomicU64,
    next: AtomicU64,
    entries: Mutex<HashMap<String, Arc<Mutex<Entry>>>>,
    /// The HTTP client, made at the first download and dropped with the
    /// fetcher (its connections and TLS settings with it).
    agent: OnceLock<Result<ureq::Agent, String>>,
}

#[derive(Debug, Default)]
struct Entry {
    path: Option<PathBuf>,
    etag: Option<String>,
    last_modified: Option<String>,
    /// The generation in which a URL was last downloaded or found unchanged.
    checked: u64,
    /// Tasks using it now.
    leases: usize,
    /// Forgotten: removed once no task uses it.
    doomed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A task's use of a kept file: while it lives, the file is not removed.
pub struct Lease(Arc<Mutex<Entry>>);

impl Drop for Lease {
    fn drop(&mut self) {
        let mut e = lock(&self.0);
        e.leases -= 1;
        if e.doomed && e.leases == 0 {
            if let Some(p) = e.path.take() {
                remove_all(&p);
            }
        }
    }
}

/// Where a made file is for a task.
pub enum Made {
    /// Kept by the worker at this path; the lease keeps it there.
    Kept(PathBuf, Lease),
    /// Made for this task alone: the caller moves it into place.
    Once(PathBuf),
}

impl Fetcher {
    /// Keeps what it makes under `dir` (created if need be).
    pub fn new(dir: PathBuf) -> Fetcher {
        Fetcher {
            dir,
            generation: AtomicU64::new(1),
            next: AtomicU64::new(0),
            entries: Mutex::default(),
            agent: OnceLock::new(),
        }
    }

    fn agent(&self) -> Result<&ureq::Agent, String> {
        self.agent
            .get_or_init(|| {
                let https = crate::tls::HttpsConnector::new().map_err(|e| e.to_string())?;
                Ok(ureq::AgentBuilder::new()
                    // Followed here (see `download`): where one leads is
                    // checked first.
                    .redirects(0)
                    .timeout_connect(Duration::from_secs(30))
                    .timeout_read(Duration::from_secs(300))
                    .tls_connector(Arc::new(https))
                    .build())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A new manager: URLs kept from before are checked against their servers
    /// again before their next use.
    /// Returns the new generation's number.
    pub fn new_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn fresh_path(&self, what: &str) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let p = self.dir.join(format!("{what}-{}-{n}", std::process::id()));
        remove_all(&p);
        Ok(p)
    }

    /// The file `file` (a URL or a mini task) at this worker, made if need be.
    /// Errors are sentences naming what could not be made and why. A download
    /// is given up when `stop` gives a reason (the task was cancelled, or ran
    /// out of time): a server that never answers holds no task for good.
    pub fn get(&self, file: &File, env: &CommandEnv, stop: &Stop<'_>) -> Result<Made, String> {
        let Some(key) = file.worker_key() else {
            let p = self.fresh_path("once")?;
            make(self, file, &p, None, env, stop).inspect_err(|_| remove_all(&p))?;
            return Ok(Made::Once(p));
        };
        let entry = lock(&self.entries).entry(key.clone()).or_default().clone();
        let mut e = lock(&entry);
        let generation = self.generation.load(Ordering::Relaxed);
        let is_url = matches!(file.kind(), FileKind::Url(_));
        let current = e.path.as_ref().is_some_and(|p| p.exists());
        if current && (!is_url || e.checked == generation) {
            e.leases += 1;
            let p = e.path.clone().expect("checked above");
            drop(e);
            return Ok(Made::Kept(p, Lease(entry)));
        }
        let p = self.fresh_path("made")?;
        let validators = if current && is_url {
            Some((e.etag.clone(), e.last_modified.clone()))
        } else {
            None
        };
        match make(self, file, &p, validators, env, stop) {
            Ok(Some(v)) => {
                if let Some(old) = e.path.replace(p) {
                    remove_all(&old);
                }
                (e.etag, e.last_modified) = v;
            }
            // Not modified: the copy kept is current.
            Ok(None) => remove_all(&p),
            Err(why) => {
                remove_all(&p);
                return Err(why);
            }
        }
        e.checked = generation;
        e.doomed = false;
        e.leases += 1;
        let path = e.path.clone().expect("set above");
        drop(e);
        Ok(Made::Kept(path, Lease(entry)))
    }

    /// Removes the file kept under `key`, now or when the last task using it
    /// is done; true if there was one.
    pub fn forget(&self, key: &str) -> bool {
        let Some(entry) = lock(&self.entries).remove(key) else {
            return false;
        };
        let mut e = lock(&entry);
        e.doomed = true;
        let had = e.path.is_some();
        if e.leases == 0 {
            if let Some(p) = e.path.take() {
                remove_all(&p);
            }
        }
        had
    }

    /// Forgets every file kept under a name starting with `prefix`.
    pub fn forget_prefix(&self, prefix: &str) {
        let keys: Vec<String> = lock(&self.entries)
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in keys {
            self.forget(&k);
        }
    }
}

/// A URL's ETag and Last-Modified, as its server gave them.
type Validators = (Option<String>, Option<String>);

/// Why the task that needs a file must stop waiting for it, if it must.
pub type Stop<'a> = dyn Fn() -> Option<String> + Sync + 'a;

/// How often a task waiting for a download looks at its [`Stop`].
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Makes `file` at `dest`. For a URL with `validators` (those of the copy
/// kept), Ok(None) means the server says it has not changed; Ok(Some) gives the
/// validators of what was made.
fn make(
    fetcher: &Fetcher,
    file: &File,
    dest: &Path,
    validators: Option<Validators>,
    env: &CommandEnv,
    stop: &Stop<'_>,
) -> Result<Option<Validators>, String> {
    match file.kind() {
        FileKind::Url(url) => download_unless_stopped(fetcher, url, dest, validators, stop),
        FileKind::MiniTask { task, output } => {
            run_mini_task(task, output, dest, env, &fetcher.next, stop).map(|()| Some((None, None)))
        }
        _ => Err("only URLs and mini tasks are made at a worker".into()),
    }
}

/// Downloads `url` to `dest` (see [`make`]) on a thread of its own, while
/// the task's thread watches `stop`: a read from the network cannot be
/// interrupted, so a download given up is left to end by itself (by its
/// server, or its read timeout), and what it made is removed then.
fn download_unless_stopped(
    fetcher: &Fetcher,
    url: &str,
    dest: &Path,
    validators: Option<Validators>,
    stop: &Stop<'_>,
) -> Result<Option<Validators>, String> {
    let agent = fetcher.agent()?.clone();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (url_copy, dest_copy) = (url.to_owned(), dest.to_path_buf());
    std::thread::Builder::new()
        .name("vine-download".into())
        .spawn(move || {
            let got = download(&agent, &url_copy, &dest_copy, validators);
            if tx.send(got).is_err() {
                // Given up: nobody removes what it made but this thread.
                remove_all(&dest_copy);
            }
        })
        .map_err(|e| format!("cannot download {url}: cannot start a thread: {e}"))?;
    loop {
        match rx.recv_timeout(STOP_CHECK) {
            Ok(got) => return got,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some(why) = stop() {
                    return Err(format!("gave up downloading {url}: {why}"));
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(format!("cannot download {url}: the download failed"))
            }
        }
    }
}

/// Downloads `url` to `dest` (see [`make`]).
fn download(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    validators: Option<Validators>,
) -> Result<Option<Validators>, String> {
    if url.len() > 7 && url[..7].eq_ignore_ascii_case("file://") {
        let from = crate::files::file_url_path(url)?;
        // Opened without blocking and checked first: a FIFO or device named by
        // the URL would hold the task's slot forever.
        let mut source = crate::transfer::open_regular(&from)?;
        let copied = std::fs::File::create(dest).and_then(|mut to| {
            std::io::copy(&mut source, &mut to)?;
            to.set_permissions(source.metadata()?.permissions())
        });
        copied.map_err(|e| format!("cannot copy {url}: {e}"))?;
        return Ok(Some((None, None)));
    }
    let mut at = url.to_owned();
    let mut hops = 0;
    let resp = loop {
        let resp = get(agent, url, &at, validators.as_ref())?;
        if !matches!(resp.status(), 301 | 302 | 303 | 307 | 308) {
            break resp;
        }
        hops += 1;
        if hops > MAX_REDIRECTS {
            return Err(format!(
                "cannot download {url}: more than {MAX_REDIRECTS} redirects"
            ));
        }
        let Some(to) = resp.header("Location") else {
            return Err(format!(
                "cannot download {url}: HTTP status {} without a Location",
                resp.status()
            ));
        };
        let next = url::Url::parse(&at)
            .and_then(|base| base.join(to))
            .map_err(|e| format!("cannot download {url}: redirected to {to:?}: {e}"))?;
        if !matches!(next.scheme(), "http" | "https") || !next.has_host() {
            return Err(format!(
                "cannot download {url}: redirected to {next}, which is not an http or https URL"
            ));
        }
        at = next.into();
    };
    if resp.status() == 304 && validators.is_some() {
        return Ok(None);
    }
    if resp.status() != 200 {
        return Err(format!(
            "cannot download {url}: HTTP status {} {}",
            resp.status(),
            resp.status_text()
        ));
    }
    let etag = resp.header("ETag").map(str::to_owned);
    let modified = resp.header("Last-Modified").map(str::to_owned);
    let mut out = std::fs::File::create(dest)
        .map_err(|e| format!("cannot download {url}: {}: {e}", dest.display()))?;
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot download {url}: {e}")),
        };
        std::io::Write::write_all(&mut out, &buf[..n])
            .map_err(|e| format!("cannot download {url}: {}: {e}", dest.display()))?;
    }
    Ok(Some((etag, modified)))
}

/// Redirects a download follows at most (as browsers and curl bound them).
const MAX_REDIRECTS: u32 = 5;

/// One GET of `at` for the download of `url` (with the validators of a copy
/// kept from before, if any): the response, whatever its status below 400.
fn get(
    agent: &ureq::Agent,
    url: &str,
    at: &str,
    validators: Option<&Validators>,
) -> Result<ureq::Response, String> {
    let mut req = agent.get(at);
    if let Some((etag, modified)) = validators {
        if let Some(t) = etag {
            req = req.set("If-None-Match", t);
        }
        if let Some(m) = modified {
            req = req.set("If-Modified-Since", m);
        }
    }
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "cannot download {url}: HTTP status {code} {}",
            r.status_text()
        )),
        Err(ureq::Error::Transport(t)) => {
            // Its own text repeats the URL: say it once.
            let mut why = match t.message() {
                Some(m) => format!("{}: {m}", t.kind()),
                None => t.kind().to_string(),
            };
            if let Some(cause) = std::error::Error::source(&t) {
                why = format!("{why}: {cause}");
            }
            Err(format!("cannot download {url}: {why}"))
        }
    }
}

/// Runs a copy of mini task `task` here and moves its output `output` to `dest`.
/// It is killed, as a cancelled command is, when `stop` gives a reason.
fn run_mini_task(
    task: &Task,
    output: &str,
    dest: &Path,
    env: &CommandEnv,
    next: &AtomicU64,
    stop: &Stop<'_>,
) -> Result<(), String> {
    let mut t = task.recipe();
    t.id = MINI_TASK_IDS + next.fetch_add(1, Ordering::Relaxed);
    t.attempts = 1;
    File::path(dest, CacheLevel::Task, 0)
        .and_then(|f| Mount::new(f, output, 0))
        .and_then(|m| t.add_output(m))
        .map_err(|e| e.to_string())?;
    let control = crate::worker::process::RunControl::default();
    let (ran, done) = crossbeam_channel::bounded::<()>(0);
    std::thread::scope(|s| {
        // Watches `stop` while the mini task runs; ends when it is done.
        s.spawn(|| {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                done.recv_timeout(STOP_CHECK)
            {
                if stop().is_some() {
                    control.cancel();
                    return;
                }
            }
        });
        crate::worker::command::run(&mut t, &[], &control, env);
        drop(ran);
    });
    if t.result == TaskResult::Success && t.exit_code == 0 {
        return Ok(());
    }
    let exited = matches!(t.result, TaskResult::Success | TaskResult::OutputMissing);
    let why = if exited && t.exit_code != 0 {
        let said = t
            .stdout()
            .map(|s| s.to_string_lossy().trim().to_owned())
            .unwrap_or_default();
        let tail: String = said
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("it exited with code {}: {tail}", t.exit_code)
    } else {
        t.reason()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("it ended {:?}", t.result))
    };
    remove_all(dest);
    Err(format!("the mini task making {output} failed: {why}"))
}

#[cfg(test)]
mod test {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// Serves `body` with an ETag, 304 to a matching If-None-Match; sends each
    /// request's If-None-Match (or None) on the channel.
    fn server(body: &'static [u8]) -> (String, crossbeam_channel::Receiver<Option<String>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f", l.local_addr().unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let mut c = c.unwrap();
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut inm = None;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.strip_prefix("If-None-Match:") {
                        inm = Some(v.trim().to_owned());
                    }
                }
                let reply = if inm.as_deref() == Some("\"v1\"") {
                    b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n".to_vec()
                } else {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                };
                tx.send(inm).unwrap();
                let _ = c.write_all(&reply);
            }
        });
        (url, rx)
    }

    #[test]
    fn a_file_url_naming_a_fifo_or_device_is_refused_without_blocking() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-fetch-fifo").unwrap();
        let fetcher = Fetcher::new(dir.join("fetched"));
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (from, says) in [
            (fifo.clone(), "a FIFO"),
            ("/dev/zero".into(), "character device"),
        ] {
            let url = format!("file://{}", from.display());
            // Nobody writes to the FIFO: opening it for reading the usual way
            // would block this test forever.
            let e = download(fetcher.agent().unwrap(), &url, &dir.join("dest"), None).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        std::fs::write(dir.join("plain"), "data").unwrap();
        let url = format!("file://{}", dir.join("plain").display());
        download(fetcher.agent().unwrap(), &url, &dir.join("dest"), None).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("dest")).unwrap(), "data");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_url_kept_for_the_workers_life_is_checked_again_once_per_manager_by_its_etag() {
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-fetch-test").unwrap();
        let fetcher = Arc::new(Fetcher::new(dir.join("fetched")));
        let env = CommandEnv {
            sandbox_root: dir.join("sandbox"),
            temp_root: dir.join("temp"),
            max_stdout: Default::default(),
            fetcher: fetcher.clone(),
            watch: None,
        };
        let (url, requests) = server(b"contents");
        let f = File::url(&url, CacheLevel::Worker, 0).unwrap();
        let path_of = |m: Made| match m {
            Made::Kept(p, _) => p,
            Made::Once(_) => panic!("a file kept for the worker's life is kept"),
        };
        let first = path_of(fetcher.get(&f, &env, &|| None).unwrap());
        assert_eq!(requests.recv().unwrap(), None, "a plain download first");
        assert_eq!(path_of(fetcher.get(&f, &env, &|| None).unwrap()), first);
        assert!(
            requests.try_recv().is_err(),
            "not asked again for one manager"
        );
        fetcher.new_generation();
        assert_eq!(path_of(fetcher.get(&f, &env, &|| None).unwrap()), first);
        assert_eq!(
            requests.recv().unwrap().as_deref(),
            Some("\"v1\""),
            "checked by its ETag for the next manager"
        );
        assert_eq!(std::fs::read(&first).unwrap(), b"contents");
        assert!(fetcher.forget(&f.worker_key().unwrap()));
        assert!(!first.exists(), "forgotten with no task using it: removed");
        let _ = std::fs::remove_dir_all(dir);
    }
}
