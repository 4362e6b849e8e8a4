//! Files a worker gets from elsewhere than the manager: downloads of URLs, the
//! outputs of mini tasks, unpacked archives and environments; and the copies
//! workers keep, pruned and undeclared. Each runs on the local pool and on a
//! real `vine_worker` process, with a real HTTP server on loopback; results are
//! judged by the bytes the tasks produce.

mod common;
use common::{remote_manager, tempdir, vine_worker};

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vine::files::{CacheLevel, File, Mount};
use vine::{Manager, Port, Task, TaskResult};

/// A bound on every wait, never a pace.
const LONG: Option<Duration> = Some(Duration::from_secs(120));

/// A tiny HTTP/1.1 server on loopback: serves the bodies it was given (with an
/// ETag), 404 for anything else, 304 to a matching `If-None-Match`, and counts
/// the requests for each path. A body `REDIRECT <location>` is a 302 there.
struct Server {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn start(pages: &[(&str, &[u8])]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pages: HashMap<String, Vec<u8>> = pages
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut if_none_match = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("if-none-match") {
                            if_none_match = Some(v.trim().to_owned());
                        }
                    }
                }
                *counted.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                let etag = format!("\"{}\"", path.len());
                let reply = match pages.get(&path) {
                    Some(body) if body.starts_with(b"REDIRECT ") => format!(
                        "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n\
                         Connection: close\r\n\r\n",
                        String::from_utf8_lossy(&body[9..])
                    )
                    .into_bytes(),
                    Some(_) if if_none_match.as_deref() == Some(etag.as_str()) => format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes(),
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&reply);
            }
        });
        Server { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Where tasks run: the local pool, or one remote worker (with its work
/// directory, to look into its cache).
struct Place {
    m: Manager,
    worker: Option<(Child, PathBuf)>,
}

impl Place {
    fn local() -> Place {
        let m = Manager::new(Port::None).unwrap();
        m.tune("local-cores", 1.0).unwrap();
        Place { m, worker: None }
    }

    fn remote(workdir: &Path) -> Place {
        let (m, port) = remote_manager();
        std::fs::create_dir_all(workdir).unwrap();
        let w = vine_worker(port, &["--workdir", workdir.to_str().unwrap()]);
        Place {
            m,
            worker: Some((w, workdir.to_owned())),
        }
    }

    fn both(dir: &Path) -> [Place; 2] {
        [Place::local(), Place::remote(&dir.join("worker"))]
    }

    fn name(&self) -> &'static str {
        if self.worker.is_some() {
            "remote"
        } else {
            "local"
        }
    }

    /// Runs `task` and returns it finished.
    fn run(&self, task: Box<Task>) -> Box<Task> {
        let id = self.m.submit(task).unwrap();
        let t = self.m.wait(LONG).expect("the task came back");
        assert_eq!(t.id(), id);
        t
    }

    /// Runs `command` with `inputs` (file, name) and returns its output,
    /// asserting it ran and exited 0.
    fn output_of(&self, command: &str, inputs: &[(&Arc<File>, &str)]) -> String {
        let t = self.run(task(command, inputs));
        assert_eq!(
            (t.result(), t.exit_code()),
            (TaskResult::Success, 0),
            "{}: {command}: {:?} {}",
            self.name(),
            t.reason(),
            stdout(&t)
        );
        stdout(&t)
    }

    /// Submits `task`, cancels it once it runs, and asserts it comes back
    /// cancelled.
    fn cancel_once_running(&self, task: Box<Task>) {
        let id = self.m.submit(task).unwrap();
        let bound = std::time::Instant::now() + LONG.unwrap();
        while self.m.stats().unwrap().tasks_running < 1 {
            assert!(std::time::Instant::now() < bound, "never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.m.cancel(id).unwrap();
        let t = self.m.wait(LONG).expect("the cancelled task came back");
        assert_eq!(
            (t.id(), t.result()),
            (id, TaskResult::Cancelled),
            "{}",
            self.name()
        );
    }

    fn stop(self) {
        self.m.shutdown().unwrap();
        if let Some((mut w, _)) = self.worker {
            let status = w.wait().unwrap();
            assert!(status.success(), "worker exited with {status}");
        }
    }
}

fn task(command: &str, inputs: &[(&Arc<File>, &str)]) -> Box<Task> {
    let mut t = Task::command(&CString::new(command).unwrap());
    for (f, name) in inputs {
        t.add_input(Mount::new((*f).clone(), name, 0).unwrap())
            .unwrap();
    }
    t
}

fn stdout(t: &Task) -> String {
    t.stdout()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn reason(t: &Task) -> String {
    t.reason()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every path under `dir` whose file name starts with `prefix`.
fn find(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with(prefix) {
            found.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find(&p, prefix));
        }
    }
    found
}

fn tar(dir: &Path, name: &str, flags: &str, from: &Path) -> PathBuf {
    let out = dir.join(name);
    let ok = std::process::Command::new("tar")
        .arg(flags)
        .arg(&out)
        .arg("-C")
        .arg(from)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    out
}

#[test]
fn a_url_is_downloaded_once_per_worker_and_a_failed_download_names_the_url_and_status() {
    let dir = tempdir();
    let server = Server::start(&[
        ("/local.txt", b"from the web\n"),
        ("/remote.txt", b"from the web\n"),
    ]);
    for place in Place::both(&dir) {
        let path = format!("/{}.txt", place.name());
        let url = place
            .m
            .declare(File::url(&server.url(&path), CacheLevel::Workflow, 0).unwrap());
        for _ in 0..3 {
            assert_eq!(
                place.output_of("cat page", &[(&url, "page")]),
                "from the web\n"
            );
        }
        assert_eq!(server.hits(&path), 1, "{}: downloaded once", place.name());
        // The worker that downloaded it keeps it for the workflow: a replica
        // (the local pool is never counted).
        let kept = usize::from(place.worker.is_some());
        assert_eq!(place.m.file_replica_count(&url).unwrap(), kept);

        let missing_url = server.url("/nothing-here");
        let missing = place
            .m
            .declare(File::url(&missing_url, CacheLevel::Workflow, 0).unwrap());
        let t = place.run(task("cat page", &[(&missing, "page")]));
        assert_eq!(t.result(), TaskResult::InputMissing, "{}", place.name());
        let why = reason(&t);
        assert!(why.contains(&missing_url) && why.contains("404"), "{why}");
        assert_eq!(place.m.file_replica_count(&missing).unwrap(), 0);

        // Nobody listens on this port.
        let refused_url = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://127.0.0.1:{}/x", l.local_addr().unwrap().port())
        };
        let refused = place
            .m
            .declare(File::url(&refused_url, CacheLevel::Task, 0).unwrap());
        let t = place.run(task("cat page", &[(&refused, "page")]));
        assert_eq!(t.result(), TaskResult::InputMissing, "{}", place.name());
        assert!(reason(&t).contains(&refused_url), "{}", reason(&t));
        // Dropped from every worker: no replica left.
        assert_eq!(place.m.prune_file(&url).unwrap(), 1, "{}", place.name());
        assert_eq!(place.m.file_replica_count(&url).unwrap(), 0);
        place.stop();
    }
}

#[test]
fn a_redirect_is_followed_to_http_urls_only() {
    let dir = tempdir();
    let secret = dir.join("secret");
    std::fs::write(&secret, "not for the web\n").unwrap();
    let to_file = format!("REDIRECT file://{}", secret.display());
    let server = Server::start(&[
        ("/page.txt", b"from the web\n"),
        ("/moved", b"REDIRECT /page.txt"),
        ("/twice", b"REDIRECT /moved"),
        ("/to-file", to_file.as_bytes()),
        ("/loop", b"REDIRECT /loop"),
    ]);
    for place in Place::both(&dir) {
        for path in ["/moved", "/twice"] {
            let url = place
                .m
                .declare(File::url(&server.url(path), CacheLevel::Task, 0).unwrap());
            assert_eq!(
                place.output_of("cat page", &[(&url, "page")]),
                "from the web\n",
                "{} {path}",
                place.name()
            );
        }
        for (path, why) in [
            ("/to-file", "not an http or https URL"),
            ("/loop", "more than 5 redirects"),
        ] {
            let url = place
                .m
                .declare(File::url(&server.url(path), CacheLevel::Task, 0).unwrap());
            let t = place.run(task("cat page", &[(&url, "page")]));
            assert_eq!(
                t.result(),
                TaskResult::InputMissing,
                "{} {path}",
                place.name()
            );
            let reason = reason(&t);
            assert!(
                reason.contains(&server.url(path)) && reason.contains(why),
                "{} {path}: {reason}",
                place.name()
            );
        }
        place.stop();
    }
}

#[test]
fn a_url_kept_for_the_workers_life_is_downloaded_once_for_all_its_declarations() {
    let dir = tempdir();
    let server = Server::start(&[("/shared.txt", b"shared\n")]);
    let workdir = dir.join("worker");
    let place = Place::remote(&workdir);
    for _ in 0..2 {
        let f = place
            .m
            .declare(File::url(&server.url("/shared.txt"), CacheLevel::Worker, 0).unwrap());
        assert_eq!(place.output_of("cat s", &[(&f, "s")]), "shared\n");
    }
    assert_eq!(
        server.hits("/shared.txt"),
        1,
        "two declarations, one download"
    );
    place.stop();
}

#[test]
fn a_mini_task_output_is_made_once_per_worker_and_its_failure_fails_the_tasks_using_it() {
    let dir = tempdir();
    for place in Place::both(&dir) {
        let log = dir.join(format!("{}-made.log", place.name()));
        let seed = place
            .m
            .declare(File::buffer(b"seed\n", CacheLevel::Workflow, 0).unwrap());
        let cmd = format!(
            "echo run >> {}; mkdir out; cat seed > out/a; echo made > out/b",
            log.display()
        );
        let made = place.m.declare(
            File::mini_task(
                task(&cmd, &[(&seed, "seed")]),
                "out",
                CacheLevel::Workflow,
                0,
            )
            .unwrap(),
        );
        for _ in 0..2 {
            assert_eq!(
                place.output_of("cat d/a d/b", &[(&made, "d")]),
                "seed\nmade\n"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "run\n",
            "{}: made once",
            place.name()
        );
        let kept = usize::from(place.worker.is_some());
        assert_eq!(place.m.file_replica_count(&made).unwrap(), kept);

        let broken = place.m.declare(
            File::mini_task(
                task("echo cannot; exit 3", &[]),
                "out",
                CacheLevel::Workflow,
                0,
            )
            .unwrap(),
        );
        let t = place.run(task("cat x", &[(&broken, "x")]));
        assert_eq!(t.result(), TaskResult::InputMissing, "{}", place.name());
        let why = reason(&t);
        assert!(
            why.contains("mini task") && why.contains("exited with code 3: cannot"),
            "{why}"
        );
        assert_eq!(place.m.file_replica_count(&broken).unwrap(), 0);
        place.stop();
    }
}

#[test]
fn an_archive_is_unpacked_at_the_worker_from_a_file_or_a_url() {
    let dir = tempdir();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), b"beta\n").unwrap();
    let gz = tar(&dir, "pkg.tar.gz", "-czf", &src);
    let xz = tar(&dir, "pkg.tar.bz2", "-cjf", &src);
    let server = Server::start(&[("/pkg.tar.bz2", &std::fs::read(&xz).unwrap())]);
    for place in Place::both(&dir) {
        let archive = place
            .m
            .declare(File::path(&gz, CacheLevel::Workflow, 0).unwrap());
        let unpacked = place
            .m
            .declare(File::untar(archive, CacheLevel::Workflow, 0).unwrap());
        assert_eq!(
            place.output_of("cat d/a.txt d/sub/b.txt", &[(&unpacked, "d")]),
            "alpha\nbeta\n"
        );
        let url = place
            .m
            .declare(File::url(&server.url("/pkg.tar.bz2"), CacheLevel::Workflow, 0).unwrap());
        let from_url = place
            .m
            .declare(File::untar(url, CacheLevel::Workflow, 0).unwrap());
        for _ in 0..2 {
            assert_eq!(
                place.output_of("cat d/sub/b.txt d/a.txt", &[(&from_url, "d")]),
                "beta\nalpha\n"
            );
        }
        place.stop();
    }
    assert_eq!(server.hits("/pkg.tar.bz2"), 2, "once per worker");
}

#[test]
fn a_task_runs_inside_a_poncho_environment() {
    let dir = tempdir();
    let env = dir.join("env");
    std::fs::create_dir_all(env.join("bin")).unwrap();
    std::fs::write(
        env.join("bin/activate"),
        b"VINE_TEST_ENV=activated\nexport VINE_TEST_ENV\n",
    )
    .unwrap();
    let tarball = tar(&dir, "env.tar.gz", "-czf", &env);
    // A package without bin/activate: its bin comes first in PATH.
    let bare = dir.join("bare");
    std::fs::create_dir_all(bare.join("bin")).unwrap();
    std::fs::write(
        bare.join("bin/vine-test-hello"),
        b"#!/bin/sh\necho hello from bin\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bare.join("bin/vine-test-hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bare_tarball = tar(&dir, "bare.tar.gz", "-czf", &bare);
    for place in Place::both(&dir) {
        let package = place
            .m
            .declare(File::path(&tarball, CacheLevel::Workflow, 0).unwrap());
        let poncho = place
            .m
            .declare(File::poncho(package, CacheLevel::Workflow, 0).unwrap());
        let mut t = task("echo \"env=$VINE_TEST_ENV\"", &[]);
        vine::files::add_poncho_package(&mut t, poncho).unwrap();
        let t = place.run(t);
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        assert_eq!(stdout(&t), "env=activated\n", "{}", place.name());

        let package = place
            .m
            .declare(File::path(&bare_tarball, CacheLevel::Workflow, 0).unwrap());
        let poncho = place
            .m
            .declare(File::poncho(package, CacheLevel::Workflow, 0).unwrap());
        let mut t = task("vine-test-hello", &[]);
        vine::files::add_poncho_package(&mut t, poncho).unwrap();
        let t = place.run(t);
        assert_eq!(stdout(&t), "hello from bin\n", "{}", place.name());
        place.stop();
    }
}

#[test]
fn a_file_url_is_decoded_as_rfc_8089_says_and_names_only_this_host() {
    let dir = tempdir();
    std::fs::write(dir.join("a b%.txt"), b"spaced\n").unwrap();
    let escaped = format!("{}/a%20b%25.txt", dir.display());
    for place in Place::both(&dir) {
        for url in [
            format!("file://{escaped}"),
            format!("file://LocalHost{escaped}"),
        ] {
            let f = place
                .m
                .declare(File::url(&url, CacheLevel::Task, 0).unwrap());
            assert_eq!(
                place.output_of("cat in", &[(&f, "in")]),
                "spaced\n",
                "{url}"
            );
        }
        place.stop();
    }
    // Refused when declared: another host, no path, a bad escape, a NUL.
    for bad in [
        "file://elsewhere/etc/hosts",
        "file://x",
        "file:///tmp/%zz",
        "file:///tmp/a%00b",
    ] {
        assert!(File::url(bad, CacheLevel::Task, 0).is_err(), "{bad}");
    }
}

#[test]
fn a_directory_input_reaches_local_and_remote_tasks_whole() {
    let dir = tempdir();
    let src = dir.join("tree");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("x"), b"x\n").unwrap();
    std::fs::write(src.join("sub/deeper/y"), b"y\n").unwrap();
    for place in Place::both(&dir) {
        let tree = place
            .m
            .declare(File::path(&src, CacheLevel::Workflow, 0).unwrap());
        assert_eq!(
            place.output_of("cat d/x d/sub/deeper/y", &[(&tree, "d")]),
            "x\ny\n",
            "{}",
            place.name()
        );
        place.stop();
    }
}

#[test]
fn pruned_and_undeclared_files_leave_the_remote_workers_cache() {
    let dir = tempdir();
    let server = Server::start(&[("/p.txt", b"page\n")]);
    let workdir = dir.join("worker");
    let place = Place::remote(&workdir);
    let data = dir.join("data.txt");
    std::fs::write(&data, b"data\n").unwrap();
    let file = place
        .m
        .declare(File::path(&data, CacheLevel::Workflow, 0).unwrap());
    let url = place
        .m
        .declare(File::url(&server.url("/p.txt"), CacheLevel::Workflow, 0).unwrap());
    assert_eq!(
        place.output_of("cat f u", &[(&file, "f"), (&url, "u")]),
        "data\npage\n"
    );
    let cached = find(&workdir, &file.id().to_string())
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("cache")))
        .collect::<Vec<_>>();
    assert_eq!(cached.len(), 1, "the file is in the worker's cache");
    let made = find(&workdir, "made-");
    assert_eq!(made.len(), 1, "the download is kept: {made:?}");

    assert_eq!(place.m.prune_file(&url).unwrap(), 1);
    // The worker applies what the manager sends in order: once a later task is
    // back, the prune was applied.
    assert_eq!(place.output_of("echo later", &[]), "later\n");
    assert!(find(&workdir, "made-").is_empty(), "the download is gone");
    assert!(cached[0].exists(), "the other file stays");
    assert_eq!(place.output_of("cat u", &[(&url, "u")]), "page\n");
    assert_eq!(server.hits("/p.txt"), 2, "downloaded again after the prune");

    place.m.undeclare(&file).unwrap();
    assert_eq!(place.output_of("echo later", &[]), "later\n");
    assert!(
        !cached[0].exists(),
        "the undeclared file is gone from the cache"
    );
    assert_eq!(
        place.m.prune_file(&file).unwrap(),
        0,
        "nothing left to prune"
    );
    place.stop();
}

#[test]
fn a_cached_directory_pruned_while_a_task_uses_it_goes_when_that_task_is_done() {
    let dir = tempdir();
    let workdir = dir.join("worker");
    let (m, port) = remote_manager();
    std::fs::create_dir_all(&workdir).unwrap();
    let w = vine_worker(
        port,
        &["--cores", "2", "--workdir", workdir.to_str().unwrap()],
    );
    let place = Place {
        m,
        worker: Some((w, workdir.clone())),
    };
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("x"), b"x\n").unwrap();
    let tree = place
        .m
        .declare(File::path(&tree, CacheLevel::Workflow, 0).unwrap());
    let (started, go) = (dir.join("started"), dir.join("go"));
    let user = task(
        &format!(
            "touch {}; i=0; while [ ! -e {} ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; cat d/x",
            started.display(),
            go.display()
        ),
        &[(&tree, "d")],
    );
    place.m.submit(user).unwrap();
    // A bound, not a pace: the task has its input once it started.
    for _ in 0..2400 {
        if started.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.exists(), "the task started");
    let cached: Vec<PathBuf> = find(&workdir, &tree.id().to_string())
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("cache")))
        .collect();
    assert_eq!(cached.len(), 1, "the directory is in the cache");
    assert_eq!(place.m.prune_file(&tree).unwrap(), 1);
    // Applied in order at the worker: once a later task is back, so is the prune.
    assert_eq!(place.output_of("echo later", &[]), "later\n");
    assert!(cached[0].exists(), "kept while the task uses it");
    std::fs::write(&go, b"").unwrap();
    let t = place.m.wait(LONG).unwrap();
    assert_eq!(stdout(&t), "x\n", "{:?}", t.reason());
    assert!(!cached[0].exists(), "gone once the task is done");
    place.stop();
}

// The C calls that fetch a file's contents (their module is the library's
// own), with the manager and the file as C sees them: opaque pointers.
extern "C" {
    fn vine_declare_file(
        m: *mut std::ffi::c_void,
        path: *const std::ffi::c_char,
        cache: std::ffi::c_int,
        flags: std::ffi::c_int,
    ) -> *mut std::ffi::c_void;
    fn vine_fetch_file(
        m: *mut std::ffi::c_void,
        f: *mut std::ffi::c_void,
    ) -> *const std::ffi::c_char;
    fn vine_fetch_file_len(
        m: *mut std::ffi::c_void,
        f: *mut std::ffi::c_void,
        len: *mut usize,
    ) -> *const std::ffi::c_char;
}

#[test]
fn fetching_a_file_declared_at_a_fifo_or_a_device_refuses_it_unopened() {
    use vine::ffi::manager::{vine_create, vine_delete, vine_last_error, vine_last_error_code};
    let dir = tempdir();
    let fifo = dir.join("fifo");
    let c = CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let sock = dir.join("sock");
    let _bound = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let plain = dir.join("plain");
    std::fs::write(&plain, "hello").unwrap();
    // The calls go to another thread, which a FIFO opened for reading would
    // hold until a writer came: a bound, not a pace.
    let (tx, rx) = std::sync::mpsc::channel();
    let paths = [&fifo, &link, &sock, Path::new("/dev/null"), &plain].map(|p| p.to_owned());
    std::thread::spawn(move || {
        let manager = vine_create(vine::ffi::VINE_PORT_NONE);
        assert!(!manager.is_null());
        let m = manager.cast::<std::ffi::c_void>();
        for p in paths {
            let c = CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a live manager, a NUL-terminated path, a writable length.
            let got = unsafe {
                let f = vine_declare_file(m, c.as_ptr(), vine::ffi::VINE_CACHE_LEVEL_TASK, 0);
                assert!(!f.is_null());
                let mut len = 99;
                let with_len = vine_fetch_file_len(m, f, &mut len);
                let data = vine_fetch_file(m, f);
                let said = std::ffi::CStr::from_ptr(vine_last_error())
                    .to_string_lossy()
                    .into_owned();
                let data = (!data.is_null()).then(|| {
                    std::ffi::CStr::from_ptr(data)
                        .to_string_lossy()
                        .into_owned()
                });
                (with_len.is_null(), len, data, vine_last_error_code(), said)
            };
            tx.send((p, got)).unwrap();
        }
        vine_delete(manager);
    });
    for (i, kind) in ["a FIFO", "a FIFO", "a socket", "a character device"]
        .into_iter()
        .enumerate()
    {
        let Ok((path, (no_data, len, data, code, said))) = rx.recv_timeout(Duration::from_secs(20))
        else {
            // Lets the reader go (it sees the end at once), then fails.
            drop(std::fs::OpenOptions::new().write(true).open(&fifo));
            panic!("fetch {i} ({kind}) still waits");
        };
        assert!(no_data, "{}: fetched", path.display());
        assert_eq!((len, data), (0, None), "{}", path.display());
        assert_eq!(code, vine::ffi::VINE_ERROR_IO, "{}: {said}", path.display());
        assert!(
            said.contains(&format!("is {kind}, not a regular file")),
            "{said}"
        );
    }
    let (_, (no_data, len, data, ..)) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!((no_data, len, data.as_deref()), (false, 5, Some("hello")));
}

#[test]
fn a_download_from_a_server_that_never_answers_is_given_up_at_a_cancel_or_a_time_limit() {
    // Connections complete in the backlog; nothing is ever read or answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/never", silent.local_addr().unwrap());
    let dir = tempdir();
    for place in Place::both(&dir) {
        let file = place
            .m
            .declare(File::url(&url, CacheLevel::Task, 0).unwrap());
        // Cancelled while it waits for the server.
        place.cancel_once_running(task("cat u", &[(&file, "u")]));
        // Past its time_max while it waits.
        let mut limited = task("cat u", &[(&file, "u")]);
        limited.set_time_max(1.0).unwrap();
        let t = place.run(limited);
        assert_eq!(
            t.result(),
            TaskResult::MaxWallTime,
            "{}: {}",
            place.name(),
            reason(&t)
        );
        assert!(reason(&t).contains(&url), "{}", reason(&t));
        place.stop();
    }
}

#[test]
fn a_mini_task_that_never_ends_is_stopped_when_the_task_needing_it_is_cancelled() {
    let dir = tempdir();
    for place in Place::both(&dir) {
        let made = place.m.declare(
            File::mini_task(
                task("sleep 600; echo late > out", &[]),
                "out",
                CacheLevel::Task,
                0,
            )
            .unwrap(),
        );
        place.cancel_once_running(task("cat x", &[(&made, "x")]));
        // The worker's core is free again: the next task runs.
        assert_eq!(place.output_of("echo next", &[]), "next\n");
        place.stop();
    }
}

#[test]
fn a_mini_task_reading_a_temp_waits_for_the_task_that_writes_it() {
    let dir = tempdir();
    for remote in [false, true] {
        let (m, worker) = if remote {
            let (m, port) = remote_manager();
            (m, Some(vine_worker(port, &["--cores", "2"])))
        } else {
            let m = Manager::new(Port::None).unwrap();
            m.tune("local-cores", 2.0).unwrap();
            (m, None)
        };
        let gate = dir.join(format!("gate-{remote}"));
        let temp = m.declare(File::temp().unwrap());
        // Writes the temp once the test lets it.
        let mut writer = task(
            &format!(
                "while [ ! -e {} ]; do sleep 0.01; done; echo written > t",
                gate.display()
            ),
            &[],
        );
        writer
            .add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        let writer = m.submit(writer).unwrap();
        let made = m.declare(
            File::mini_task(
                task("cat t > out", &[(&temp, "t")]),
                "out",
                CacheLevel::Task,
                0,
            )
            .unwrap(),
        );
        let reader = m.submit(task("cat in", &[(&made, "in")])).unwrap();
        // Submitted after the reader, with a core free: it is done while the
        // reader still waits for the writer.
        let third = m.submit(task("echo third", &[])).unwrap();
        let t = m.wait(LONG).expect("a task comes back");
        assert_eq!(t.id(), third, "remote {remote}: {:?}", reason(&t));
        std::fs::write(&gate, "").unwrap();
        let mut back = [m.wait(LONG).unwrap(), m.wait(LONG).unwrap()];
        back.sort_by_key(|t| t.id());
        assert_eq!(back[0].id(), writer);
        assert_eq!(back[1].id(), reader);
        assert_eq!(
            (back[1].result(), stdout(&back[1])),
            (TaskResult::Success, "written\n".into()),
            "remote {remote}: {}",
            reason(&back[1])
        );
        // A task that writes the temp again, reading it through a mini task,
        // reads what it held and does not wait for itself (the same mini
        // task file, made again for it: it is cached for one task).
        let mut again = task("cat in; echo again > t", &[(&made, "in")]);
        again
            .add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        m.submit(again).unwrap();
        let t = m
            .wait(LONG)
            .expect("the task writing the temp again came back");
        assert_eq!(
            (t.result(), stdout(&t)),
            (TaskResult::Success, "written\n".into()),
            "remote {remote}: {}",
            reason(&t)
        );
        m.shutdown().unwrap();
        if let Some(mut w) = worker {
            w.wait().unwrap();
        }
    }
}
