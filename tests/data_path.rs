//! The data path between a manager and its remote workers: files kept forever,
//! directory outputs, files larger than a frame, special files as outputs, and
//! the settings a remote worker must honour as the local pool does. Real worker
//! processes, real sockets, real files.

mod common;
use common::{remote_manager, tempdir};

use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use vine::files::{CacheLevel, File, Mount};
use vine::{Manager, Port, Task, TaskResult};

/// A bound on every wait, never a pace: a task that has not come back by then is
/// a failure (a hang, before the fixes these tests cover).
const LONG: Option<Duration> = Some(Duration::from_secs(120));

fn vine_worker(port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vine_worker"))
        .args(["127.0.0.1", &port.to_string(), "--timeout", "60"])
        .args(extra)
        .spawn()
        .unwrap()
}

fn local_manager() -> Manager {
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    m
}

fn stop(m: Manager, workers: Vec<Child>) {
    m.shutdown().unwrap();
    for mut w in workers {
        let status = w.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
    }
}

fn command(text: &str) -> Box<Task> {
    Task::command(&CString::new(text).unwrap())
}

/// Runs `task` and returns it finished.
fn run(m: &Manager, task: Box<Task>) -> Box<Task> {
    let id = m.submit(task).unwrap();
    let t = m.wait(LONG).expect("the task came back");
    assert_eq!(t.id(), id);
    t
}

fn stdout(t: &Task) -> String {
    t.stdout()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `cat a` with `file` as input `a`.
fn cat(file: &Arc<File>) -> Box<Task> {
    let mut t = command("cat a");
    t.add_input(Mount::new(file.clone(), "a", 0).unwrap())
        .unwrap();
    t
}

fn store_of(workdir: &Path) -> PathBuf {
    // SAFETY: geteuid takes nothing and cannot fail.
    workdir.join(format!("vine-forever-{}", unsafe { libc::geteuid() }))
}

#[test]
fn a_file_kept_forever_is_stored_under_the_hash_of_the_bytes_sent() {
    let dir = tempdir();
    let (first, second) = (dir.join("w1"), dir.join("w2"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let path = dir.join("f.dat");
    std::fs::write(&path, "original\n").unwrap();

    let (m, port) = remote_manager();
    let f = m.declare(File::path(&path, CacheLevel::Forever, 0).unwrap());
    let mut w1 = vine_worker(
        port,
        &["--cores", "1", "--workdir", first.to_str().unwrap()],
    );
    let t = run(&m, cat(&f));
    assert_eq!(stdout(&t), "original\n");
    assert_eq!(
        m.file_replica_count(&f).unwrap(),
        1,
        "held in the worker's store"
    );
    w1.kill().unwrap();
    w1.wait().unwrap();
    // The file changes after the manager named it; a worker without it joins.
    std::fs::write(&path, "changed\n").unwrap();
    let w2 = vine_worker(
        port,
        &["--cores", "1", "--workdir", second.to_str().unwrap()],
    );
    let t = run(&m, cat(&f));
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(
        stdout(&t),
        "changed\n",
        "what was sent is what the task read"
    );
    stop(m, vec![w2]);

    // Every file in the store is named by the hash of its bytes.
    let mut names = 0;
    for e in std::fs::read_dir(store_of(&second)).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            e.file_name().to_str().unwrap(),
            vine::protocol::content_name(&data),
            "stored under another file's name"
        );
        names += 1;
    }
    assert_eq!(names, 1);

    // A later manager declaring the original contents gets them, not the others.
    let again = dir.join("g.dat");
    std::fs::write(&again, "original\n").unwrap();
    let (m, port) = remote_manager();
    let g = m.declare(File::path(&again, CacheLevel::Forever, 0).unwrap());
    let w3 = vine_worker(
        port,
        &["--cores", "1", "--workdir", second.to_str().unwrap()],
    );
    let t = run(&m, cat(&g));
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(stdout(&t), "original\n");
    stop(m, vec![w3]);
}

#[test]
fn a_damaged_file_in_the_store_is_never_served_and_is_sent_again() {
    let dir = tempdir();
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let path = dir.join("f.dat");
    std::fs::write(&path, "precious\n").unwrap();
    let workflow = || {
        let (m, port) = remote_manager();
        let f = m.declare(File::path(&path, CacheLevel::Forever, 0).unwrap());
        let w = vine_worker(port, &["--cores", "1", "--workdir", work.to_str().unwrap()]);
        let t = run(&m, cat(&f));
        stop(m, vec![w]);
        t
    };
    let t = workflow();
    assert_eq!(stdout(&t), "precious\n");
    let stored = store_of(&work).join(vine::protocol::content_name(b"precious\n"));
    assert_eq!(std::fs::read(&stored).unwrap(), b"precious\n");
    // Someone changes the stored copy in place.
    std::fs::write(&stored, "tampered\n").unwrap();
    let t = workflow();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    assert_eq!(stdout(&t), "precious\n", "the damaged copy was served");
    assert_eq!(
        t.retries_used(),
        1,
        "run again once the file was sent again"
    );
    assert_eq!(std::fs::read(&stored).unwrap(), b"precious\n", "repaired");
}

/// Every entry under `root`: relative path, permission bits, and the hash of
/// its contents (or its link target), sorted.
fn tree(root: &Path) -> Vec<(String, u32, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                out.push((rel + "/", mode, String::new()));
                walk(root, &p, out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.push((rel, 0, target.to_str().unwrap().to_owned()));
            } else {
                let data = std::fs::read(&p).unwrap();
                out.push((rel, mode, vine::protocol::content_name(&data)));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn a_directory_output_comes_back_from_a_remote_worker_as_it_does_locally() {
    let dir = tempdir();
    let make =
        "mkdir -p d/sub/deeper && printf hello > d/a.txt && printf '#!/bin/sh\\n' > d/sub/run.sh \
                && chmod 751 d/sub/run.sh && chmod 750 d/sub && ln -s a.txt d/link \
                && head -c 3000000 /dev/zero > d/sub/deeper/zeros";
    // The same tasks on a local pool and on a remote worker: a directory output
    // to a path, and one to a buffer (which cannot hold a directory).
    let outcome = |m: &Manager, name: &str| {
        let out = dir.join(name);
        let mut t = command(make);
        let f = m.declare(File::path(&out, CacheLevel::Task, 0).unwrap());
        t.add_output(Mount::new(f, "d", 0).unwrap()).unwrap();
        let t = run(m, t);
        let mut b = command(make);
        let buffer = m.declare(File::buffer(b"", CacheLevel::Task, 0).unwrap());
        b.add_output(Mount::new(buffer, "d", 0).unwrap()).unwrap();
        let b = run(m, b);
        let got = out.exists().then(|| tree(&out));
        (t.result(), got, b.result())
    };
    let local = local_manager();
    let here = outcome(&local, "local");
    local.shutdown().unwrap();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "1"]);
    let there = outcome(&m, "remote");
    stop(m, vec![w]);
    assert_eq!(here.0, TaskResult::Success);
    let tree_here = here.1.as_ref().expect("delivered locally");
    assert_eq!(tree_here.len(), 6, "{tree_here:?}");
    assert_eq!(here.2, TaskResult::OutputMissing);
    assert_eq!(there, here, "remote and local differ");
}

#[test]
fn an_output_the_worker_cannot_read_fails_as_it_does_locally() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: root can read any file");
        return;
    }
    let dir = tempdir();
    let outcome = |m: &Manager, name: &str| {
        let mut t = command("echo secret > o; chmod 000 o");
        let f = m.declare(File::path(&dir.join(name), CacheLevel::Task, 0).unwrap());
        t.add_output(Mount::new(f, "o", 0).unwrap()).unwrap();
        run(m, t).result()
    };
    let local = local_manager();
    let here = outcome(&local, "local");
    local.shutdown().unwrap();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "1"]);
    let there = outcome(&m, "remote");
    stop(m, vec![w]);
    assert_eq!(here, TaskResult::OutputMissing);
    assert_eq!(there, here);
}

/// A file of `len` bytes, sparse on disk, with markers at the start, the
/// middle and the end.
fn big_file(path: &Path, len: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    for (at, mark) in [(0, b"head"), (len / 2, b"midl"), (len - 4, b"tail")] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(mark).unwrap();
    }
}

fn marks(path: &Path) -> (u64, Vec<[u8; 4]>) {
    let mut f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut got = Vec::new();
    for at in [0, len / 2, len - 4] {
        let mut m = [0u8; 4];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut m).unwrap();
        got.push(m);
    }
    (len, got)
}

#[test]
fn files_larger_than_a_frame_cross_in_chunks_and_other_tasks_go_on() {
    let dir = tempdir();
    // Past the frame limit, and not a whole number of chunks.
    let len = u64::from(vine::protocol::MAX_FRAME) + 3 * vine::transfer::CHUNK as u64 + 5;
    let input = dir.join("big.in");
    big_file(&input, len);
    let output = dir.join("big.out");
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "2"]);
    let big_in = m.declare(File::path(&input, CacheLevel::Task, 0).unwrap());
    let big_out = m.declare(File::path(&output, CacheLevel::Task, 0).unwrap());
    let mut big = command("cp in out && echo copied");
    big.add_input(Mount::new(big_in, "in", 0).unwrap()).unwrap();
    big.add_output(Mount::new(big_out, "out", 0).unwrap())
        .unwrap();
    let big = m.submit(big).unwrap();
    let small = m.submit(command("echo small")).unwrap();
    for _ in 0..2 {
        let t = m.wait(LONG).expect("both tasks came back");
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        let expected = if t.id() == big { "copied\n" } else { "small\n" };
        assert!(t.id() == big || t.id() == small);
        assert_eq!(stdout(&t), expected);
    }
    assert_eq!(m.stats().unwrap().workers_connected, 1, "the worker stayed");
    let (got_len, got) = marks(&output);
    assert_eq!(got_len, len);
    assert_eq!(got, vec![*b"head", *b"midl", *b"tail"]);
    let (sent, received) = m.bytes_transferred();
    assert_eq!((sent, received), (len, len));
    stop(m, vec![w]);
}

/// A command that makes a FIFO as its output, with the output declared as a
/// path or as a buffer.
fn fifo_task(m: &Manager, out: Option<&Path>) -> Box<Task> {
    let mut t = command("mkfifo o");
    let f = match out {
        Some(p) => File::path(p, CacheLevel::Task, 0).unwrap(),
        None => File::buffer(b"", CacheLevel::Task, 0).unwrap(),
    };
    t.add_output(Mount::new(m.declare(f), "o", 0).unwrap())
        .unwrap();
    t
}

fn assert_fifo_refused(t: &Task) {
    assert_eq!(t.result(), TaskResult::OutputMissing);
    let why = t.reason().unwrap().to_string_lossy().into_owned();
    assert!(why.contains("FIFO"), "{why}");
}

#[test]
fn a_fifo_output_fails_its_task_and_nothing_waits_on_it_locally() {
    let dir = tempdir();
    let m = local_manager();
    assert_fifo_refused(&run(&m, fifo_task(&m, Some(&dir.join("p")))));
    assert_fifo_refused(&run(&m, fifo_task(&m, None)));
    let t = run(&m, command("echo after"));
    assert_eq!(
        (t.result(), stdout(&t)),
        (TaskResult::Success, "after\n".into())
    );
    m.shutdown().unwrap();
}

#[test]
fn a_fifo_input_fails_its_task_and_frees_its_slot_locally_and_remotely() {
    let dir = tempdir();
    let fifo = dir.join("p");
    let c = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (here, there) = here_and_there(|m: &Manager| {
        let mut t = command("cat x");
        let f = m.declare(File::path(&fifo, CacheLevel::Task, 0).unwrap());
        t.add_input(Mount::new(f, "x", 0).unwrap()).unwrap();
        let t = run(m, t);
        // The only core is free again.
        let after = run(m, command("echo after"));
        let why = reason(&t);
        let named = why.contains("input x") && why.contains(&*fifo.to_string_lossy());
        (t.result(), why.contains("FIFO") && named, stdout(&after))
    });
    assert_eq!(
        here,
        (TaskResult::InputMissing, true, "after\n".to_string())
    );
    // Named as the manager knows it, not as the worker's placeholder.
    assert_eq!(there, here);
}

#[test]
fn a_missing_input_is_named_by_its_name_in_the_sandbox_locally_and_remotely() {
    let dir = tempdir();
    let gone = dir.join("never-made");
    let (here, there) = here_and_there(|m: &Manager| {
        let mut t = command("cat my-input");
        let f = m.declare(File::path(&gone, CacheLevel::Task, 0).unwrap());
        t.add_input(Mount::new(f, "my-input", 0).unwrap()).unwrap();
        let t = run(m, t);
        (t.result(), reason(&t))
    });
    for (place, (result, why)) in [("local", here), ("remote", there)] {
        assert_eq!(result, TaskResult::InputMissing, "{place}: {why}");
        assert!(why.contains("my-input"), "{place}: {why}");
        // And by the path the program gave, not a worker's own.
        assert!(why.contains(&*gone.to_string_lossy()), "{place}: {why}");
    }
}

#[test]
fn outputs_and_inputs_are_copies_of_their_own_without_setuid_locally_and_remotely() {
    let dir = tempdir();
    let victim = dir.join("victim");
    std::fs::write(&victim, "outside\n").unwrap();
    let special = dir.join("special");
    std::fs::write(&special, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&special, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let runs = std::cell::Cell::new(0);
    here_and_there(|m: &Manager| {
        runs.set(runs.get() + 1);
        let place = ["local", "remote"][runs.get() - 1];
        // An output the task made a hard link to a file outside its sandbox,
        // and one it gave setuid and setgid bits.
        let linked = dir.join(format!("linked-{place}"));
        let suid = dir.join(format!("suid-{place}"));
        // And a directory it closed (mode 555) holding another such link.
        let closed = dir.join(format!("closed-{place}"));
        let mut t = command(&format!(
            "ln {v} out && stat -c %h out && echo x > s && chmod 6755 s && stat -c %a in \
             && mkdir d && ln {v} d/l && chmod 555 d",
            v = victim.display()
        ));
        let out = m.declare(File::path(&linked, CacheLevel::Task, 0).unwrap());
        let s = m.declare(File::path(&suid, CacheLevel::Task, 0).unwrap());
        let input = m.declare(File::path(&special, CacheLevel::Task, 0).unwrap());
        let d = m.declare(File::path(&closed, CacheLevel::Task, 0).unwrap());
        t.add_output(Mount::new(d, "d", 0).unwrap()).unwrap();
        t.add_output(Mount::new(out, "out", 0).unwrap()).unwrap();
        t.add_output(Mount::new(s, "s", 0).unwrap()).unwrap();
        t.add_input(Mount::new(input, "in", 0).unwrap()).unwrap();
        let t = run(m, t);
        assert_eq!(t.result(), TaskResult::Success, "{place}: {:?}", t.reason());
        // The link was made (2 names), and the input came without its bits.
        assert_eq!(stdout(&t), "2\n755\n", "{place}");
        // A write to the delivered output leaves the outside file alone.
        std::fs::write(&linked, "changed\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "outside\n",
            "{place}"
        );
        let mode = std::fs::metadata(&suid).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{place}");
        let mode = std::fs::metadata(&closed).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o555, "{place}");
        std::fs::write(closed.join("l"), "changed\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "outside\n",
            "{place}"
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    });
}

/// Every entry under `root` with its type (d, f, l, or p/s/b/c for a FIFO,
/// socket, block or character device), found without opening any; sorted.
fn kinds(root: &Path) -> Vec<(String, char)> {
    use std::os::unix::fs::FileTypeExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, char)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
            let kind = [
                (ft.is_dir(), 'd'),
                (ft.is_file(), 'f'),
                (ft.is_symlink(), 'l'),
                (ft.is_fifo(), 'p'),
                (ft.is_socket(), 's'),
                (ft.is_block_device(), 'b'),
                (ft.is_char_device(), 'c'),
            ]
            .into_iter()
            .find_map(|(is, k)| is.then_some(k))
            .unwrap_or('?');
            out.push((rel, kind));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn fifos_sockets_and_devices_are_left_out_of_output_directories_locally_and_remotely() {
    // SAFETY: geteuid takes nothing and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = tempdir();
    // A socket bound (and left) at `$1`.
    let sock = "perl -MSocket -e 'socket(S, PF_UNIX, SOCK_STREAM, 0) && \
                bind(S, pack_sockaddr_un($ARGV[0])) or die \"$!\"'";
    // Only root may make device nodes (a task run as root could plant one at
    // the program's output path); mknod makes them without their devices.
    let devices = if root {
        "mknod $d/null c 1 3 && mknod $d/sub/loop b 7 0"
    } else {
        "true"
    };
    // The same tree in d (delivered to a path) and t (kept as a temp); a
    // socket, and as root a device, alone as s and c.
    let make = format!(
        "for d in d t; do mkdir -p $d/sub && echo a > $d/a && echo b > $d/sub/b \
         && ln -s a $d/link && mkfifo $d/fifo $d/sub/fifo && {sock} $d/sock \
         && {sock} $d/sub/sock && {devices} && chmod 555 $d/sub || exit 1; done; \
         {sock} s && {}",
        if root { "mknod c c 1 3" } else { "true" }
    );
    let runs = std::cell::Cell::new(0);
    let (here, there) = here_and_there(|m: &Manager| {
        runs.set(runs.get() + 1);
        let place = ["local", "remote"][runs.get() - 1];
        let out = dir.join(format!("d-{place}"));
        let mut t = command(&make);
        let d = m.declare(File::path(&out, CacheLevel::Task, 0).unwrap());
        t.add_output(Mount::new(d, "d", 0).unwrap()).unwrap();
        // The same directory as a temp, listed by the next task.
        let temp = m.declare(File::temp().unwrap());
        t.add_output(Mount::new(temp.clone(), "t", 0).unwrap())
            .unwrap();
        let t = run(m, t);
        assert_eq!(t.result(), TaskResult::Success, "{place}: {}", reason(&t));
        let got = kinds(&out);
        let mut ls = command("cd in && find . ! -type d ! -type f ! -type l | wc -l");
        ls.add_input(Mount::new(temp, "in", 0).unwrap()).unwrap();
        let ls = run(m, ls);
        assert_eq!(ls.result(), TaskResult::Success, "{place}: {}", reason(&ls));
        // As the output itself: fails its task, and nothing is delivered.
        let mut tops = vec!["s"];
        if root {
            tops.push("c");
        }
        let mut refused = Vec::new();
        for name in tops {
            let mut t = command(&make);
            let f = m.declare(
                File::path(&dir.join(format!("{name}-{place}")), CacheLevel::Task, 0).unwrap(),
            );
            t.add_output(Mount::new(f, name, 0).unwrap()).unwrap();
            let t = run(m, t);
            let why = reason(&t);
            assert!(why.contains(&format!("output {name}")), "{place}: {why}");
            // Found by its type, never opened.
            let kind = if name == "s" {
                "a socket"
            } else {
                "a character device"
            };
            assert!(why.contains(&format!("is {kind}")), "{place}: {why}");
            refused.push(t.result());
            assert!(std::fs::symlink_metadata(dir.join(format!("{name}-{place}"))).is_err());
        }
        std::fs::set_permissions(out.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
        (got, stdout(&ls), refused)
    });
    let names = |v: &[(&str, char)]| -> Vec<(String, char)> {
        v.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    };
    assert_eq!(
        here.0,
        names(&[("a", 'f'), ("link", 'l'), ("sub", 'd'), ("sub/b", 'f')]),
        "local"
    );
    assert_eq!(here.1, "0\n");
    assert!(
        here.2.iter().all(|r| *r == TaskResult::OutputMissing),
        "{:?}",
        here.2
    );
    assert_eq!(there, here, "remote and local differ");
}

#[test]
fn a_fifo_output_fails_its_task_not_the_remote_worker() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "1"]);
    assert_fifo_refused(&run(&m, fifo_task(&m, Some(&dir.join("p")))));
    assert_fifo_refused(&run(&m, fifo_task(&m, None)));
    let t = run(&m, command("echo after"));
    assert_eq!(
        (t.result(), stdout(&t)),
        (TaskResult::Success, "after\n".into())
    );
    stop(m, vec![w]);
}

#[test]
fn prefetch_zero_keeps_priority_order_strict_on_remote_workers() {
    let dir = tempdir();
    let (started, go) = (dir.join("started"), dir.join("go"));
    for fifo in [&started, &go] {
        assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success());
    }
    let (m, port) = remote_manager();
    m.tune("prefetch", 0.0).unwrap();
    let mut first = command(&format!(
        "echo > {}; read x < {}; echo first",
        started.display(),
        go.display()
    ));
    first.set_priority(100.0).unwrap();
    let mut low = command("echo low");
    low.set_priority(1.0).unwrap();
    m.submit(first).unwrap();
    m.submit(low).unwrap();
    // Both are queued at the manager before the one-core worker joins.
    assert_eq!(m.stats().unwrap().tasks_submitted, 2);
    let w = vine_worker(port, &["--cores", "1"]);
    let mut line = String::new();
    std::fs::File::open(&started)
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    // The first task runs; one of higher priority than the waiting one comes.
    let mut high = command("echo high");
    high.set_priority(10.0).unwrap();
    m.submit(high).unwrap();
    assert_eq!(m.stats().unwrap().tasks_submitted, 3);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&go)
        .unwrap()
        .write_all(b"\n")
        .unwrap();
    let order: Vec<String> = (0..3)
        .map(|_| stdout(&m.wait(LONG).expect("task back")))
        .collect();
    assert_eq!(order, ["first\n", "high\n", "low\n"]);
    stop(m, vec![w]);
}

#[test]
fn max_stdout_holds_on_remote_workers() {
    let (m, port) = remote_manager();
    m.tune("max-stdout", 100.0).unwrap();
    let w = vine_worker(port, &["--cores", "1"]);
    let t = run(&m, command("head -c 1000 /dev/zero | tr '\\0' x"));
    assert_eq!(t.result(), TaskResult::StdoutMissing, "{:?}", t.reason());
    assert_eq!(stdout(&t).len(), 100);
    stop(m, vec![w]);
}

#[test]
fn a_command_printing_past_max_stdout_runs_to_its_end_with_its_outputs_delivered() {
    let (here, there) = here_and_there(|m: &Manager| {
        m.tune("max-stdout", 100.0).unwrap();
        let out = m.declare(File::buffer(b"", CacheLevel::Task, 0).unwrap());
        // 1000 bytes printed, then the output written and a code to exit with.
        let mut t = command("head -c 1000 /dev/zero | tr '\\0' x; echo finished > o; exit 7");
        t.add_output(Mount::new(out.clone(), "o", 0).unwrap())
            .unwrap();
        let t = run(m, t);
        (
            t.result(),
            stdout(&t).len(),
            t.exit_code(),
            m.fetch_file(&out).unwrap().to_vec(),
        )
    });
    assert_eq!(
        here,
        (TaskResult::StdoutMissing, 100, 7, b"finished\n\0".to_vec())
    );
    assert_eq!(there, here);
}

/// Runs `make(m)` on a local pool and on one remote worker; gives both outcomes.
fn here_and_there<T>(make: impl Fn(&Manager) -> T) -> (T, T) {
    let local = local_manager();
    let here = make(&local);
    local.shutdown().unwrap();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "1"]);
    let there = make(&m);
    stop(m, vec![w]);
    (here, there)
}

/// Why the task ended as it did ("" if it says nothing).
fn reason(t: &Task) -> String {
    t.reason()
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn outcome(t: &Task) -> (TaskResult, i32, String) {
    (t.result(), t.exit_code(), stdout(t))
}

#[test]
fn a_script_shipped_as_a_buffer_or_a_file_runs_as_dot_slash_locally_and_remotely() {
    let dir = tempdir();
    let script = b"#!/bin/sh\necho ran $1\n";
    let exe = dir.join("exe.sh");
    std::fs::write(&exe, script).unwrap();
    std::fs::set_permissions(&exe, PermissionsExt::from_mode(0o750)).unwrap();
    let plain = dir.join("plain.sh");
    std::fs::write(&plain, script).unwrap();
    std::fs::set_permissions(&plain, PermissionsExt::from_mode(0o644)).unwrap();
    let runs = |m: &Manager| {
        let buffer = m.declare(File::buffer(script, CacheLevel::Task, 0).unwrap());
        let kept = m.declare(File::buffer(script, CacheLevel::Workflow, 0).unwrap());
        let file = m.declare(File::path(&exe, CacheLevel::Task, 0).unwrap());
        let moded = m.declare(File::path(&plain, CacheLevel::Worker, 0).unwrap());
        moded.set_mode(0o700);
        let unmoded = m.declare(File::path(&plain, CacheLevel::Task, 0).unwrap());
        let mut got = Vec::new();
        for (f, arg) in [
            (buffer, "buffer"),
            (kept, "kept"),
            (file, "file"),
            (moded, "moded"),
        ] {
            let mut t = command(&format!("./s.sh {arg}"));
            t.add_input(Mount::new(f, "s.sh", 0).unwrap()).unwrap();
            got.push(outcome(&run(m, t)));
        }
        let mut t = command("test -x s.sh || echo not executable");
        t.add_input(Mount::new(unmoded, "s.sh", 0).unwrap())
            .unwrap();
        got.push(outcome(&run(m, t)));
        got
    };
    let (here, there) = here_and_there(runs);
    let ok = |s: &str| (TaskResult::Success, 0, format!("{s}\n"));
    let want = vec![
        ok("ran buffer"),
        ok("ran kept"),
        ok("ran file"),
        ok("ran moded"),
        ok("not executable"),
    ];
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn the_mode_set_on_a_temp_or_a_url_is_the_mode_its_readers_see_locally_and_remotely() {
    let dir = tempdir();
    let plain = dir.join("plain.sh");
    std::fs::write(&plain, b"#!/bin/sh\necho ran $1\n").unwrap();
    std::fs::set_permissions(&plain, PermissionsExt::from_mode(0o644)).unwrap();
    let url = format!("file://{}", plain.display());
    let (here, there) = here_and_there(|m: &Manager| {
        let temp = m.declare(File::temp().unwrap());
        temp.set_mode(0o700);
        let mut make = command("printf '#!/bin/sh\\necho ran $1\\n' > s.sh; chmod 644 s.sh");
        make.add_output(Mount::new(temp.clone(), "s.sh", 0).unwrap())
            .unwrap();
        let made = run(m, make);
        assert_eq!(made.result(), TaskResult::Success, "{:?}", made.reason());
        let fetched = m.declare(File::url(&url, CacheLevel::Worker, 0).unwrap());
        fetched.set_mode(0o700);
        let mut got = Vec::new();
        for (f, arg) in [(temp, "temp"), (fetched, "url")] {
            let mut t = command(&format!("stat -c %a s.sh; ./s.sh {arg}"));
            t.add_input(Mount::new(f, "s.sh", 0).unwrap()).unwrap();
            got.push(outcome(&run(m, t)));
        }
        got
    });
    let ok = |s: &str| (TaskResult::Success, 0, format!("700\n{s}\n"));
    let want = vec![ok("ran temp"), ok("ran url")];
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn a_mkdir_output_directory_exists_before_the_task_runs_locally_and_remotely() {
    let dir = tempdir();
    let (here, there) = here_and_there(|m: &Manager| {
        let out = dir.join(format!("out-{}", m.port().map_or(0, |p| p)));
        let f = m.declare(File::path(&out, CacheLevel::Task, 0).unwrap());
        let mut t = command("echo made > results/a.txt");
        t.add_output(Mount::new(f, "results", vine::files::MOUNT_MKDIR).unwrap())
            .unwrap();
        let t = run(m, t);
        (t.result(), std::fs::read_to_string(out.join("a.txt")).ok())
    });
    let want = (TaskResult::Success, Some("made\n".to_string()));
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn a_directory_input_reaches_the_task_whole_with_its_modes_locally_and_remotely() {
    let dir = tempdir();
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub/deeper")).unwrap();
    std::fs::write(input.join("sub/deeper/data.txt"), "deep\n").unwrap();
    std::fs::write(input.join("run.sh"), "#!/bin/sh\ncat sub/deeper/data.txt\n").unwrap();
    std::fs::set_permissions(input.join("run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    let (here, there) = here_and_there(|m: &Manager| {
        let mut got = Vec::new();
        for cache in [CacheLevel::Task, CacheLevel::Worker, CacheLevel::Forever] {
            let f = m.declare(File::path(&input, cache, 0).unwrap());
            let mut t = command("cd d && ./run.sh");
            t.add_input(Mount::new(f, "d", 0).unwrap()).unwrap();
            got.push(outcome(&run(m, t)));
        }
        got
    });
    let want = vec![(TaskResult::Success, 0, "deep\n".to_string()); 3];
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn a_task_writing_in_its_directory_input_leaves_the_programs_directory_as_it_was() {
    let dir = tempdir();
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("ro")).unwrap();
    std::fs::write(input.join("data.txt"), "original\n").unwrap();
    std::fs::write(input.join("ro/kept.txt"), "kept\n").unwrap();
    std::os::unix::fs::symlink("data.txt", input.join("link")).unwrap();
    std::fs::set_permissions(input.join("ro"), PermissionsExt::from_mode(0o555)).unwrap();
    let before = tree(&input);
    let side = std::cell::Cell::new(0);
    let (here, there) = here_and_there(|m: &Manager| {
        side.set(side.get() + 1);
        let out = dir.join(format!("new-{}.txt", side.get()));
        let f = m.declare(File::path(&input, CacheLevel::Task, 0).unwrap());
        let o = m.declare(File::path(&out, CacheLevel::Task, 0).unwrap());
        let mut t = command(
            "echo changed > d/data.txt && echo new > d/new.txt && rm d/ro/kept.txt; \
             cat d/link",
        );
        t.add_input(Mount::new(f, "d", 0).unwrap()).unwrap();
        t.add_output(Mount::new(o, "d/new.txt", 0).unwrap())
            .unwrap();
        let t = run(m, t);
        (outcome(&t), std::fs::read_to_string(&out).ok())
    });
    // Its own copy changed (the link inside it is a link still); the program's
    // directory did not, and the output named inside it came back.
    let want = (
        (TaskResult::Success, 0, "changed\n".to_string()),
        Some("new\n".to_string()),
    );
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
    assert_eq!(tree(&input), before);
    std::fs::set_permissions(input.join("ro"), PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn a_cached_file_a_task_rewrote_is_sent_again_not_served_stale() {
    let dir = tempdir();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "1"]);
    let mut seen = Vec::new();
    for cache in [
        CacheLevel::Workflow,
        CacheLevel::Worker,
        CacheLevel::Forever,
    ] {
        let path = dir.join(format!("f{}", cache as i32));
        std::fs::write(&path, "one\n").unwrap();
        let files = [
            m.declare(File::path(&path, cache, 0).unwrap()),
            m.declare(File::buffer(b"one\n", cache, 0).unwrap()),
        ];
        for f in files {
            let read = || {
                let mut t = command("cat in");
                t.add_input(Mount::new(f.clone(), "in", 0).unwrap())
                    .unwrap();
                stdout(&run(&m, t))
            };
            let first = read();
            let mut write = command("echo two > out");
            write
                .add_output(Mount::new(f.clone(), "out", 0).unwrap())
                .unwrap();
            assert_eq!(run(&m, write).result(), TaskResult::Success);
            seen.push((cache as i32, first, read()));
        }
    }
    let want: Vec<_> = [1, 1, 2, 2, 3, 3]
        .into_iter()
        .map(|c| (c, "one\n".to_string(), "two\n".to_string()))
        .collect();
    assert_eq!(seen, want);
    stop(m, vec![w]);
}

#[test]
fn an_output_replaces_what_is_at_its_destination_and_one_that_fails_spares_the_others() {
    let dir = tempdir();
    // Another file system (a tmpfs), for an output that must be copied across.
    let across_root = Path::new("/dev/shm");
    let side = std::cell::Cell::new(0);
    let (here, there) = here_and_there(|m: &Manager| {
        side.set(side.get() + 1);
        let n = side.get();
        let onto = dir.join(format!("onto-{n}"));
        std::fs::create_dir_all(onto.join("old/deeper")).unwrap();
        std::fs::write(onto.join("old/deeper/x"), "old").unwrap();
        let was_file = dir.join(format!("was-file-{n}"));
        std::fs::write(&was_file, "a file").unwrap();
        let across = across_root.join(format!("vine-test-{}-{n}", std::process::id()));
        let good = dir.join(format!("good-{n}"));
        let mut t = command(
            "mkfifo bad; for d in d1 d2 d3; do mkdir -p $d/sub && echo new > $d/sub/f; done; \
             echo fine > good",
        );
        let mut out = |name: &str, path: &Path| {
            let f = m.declare(File::path(path, CacheLevel::Task, 0).unwrap());
            t.add_output(Mount::new(f, name, 0).unwrap()).unwrap();
        };
        // The FIFO first: it cannot be delivered, and must not stop the rest.
        out("bad", &dir.join(format!("bad-{n}")));
        out("d1", &onto);
        out("d2", &was_file);
        out("d3", &across);
        out("good", &good);
        let t = run(m, t);
        let trees = [tree(&onto), tree(&was_file), tree(&across)];
        let _ = std::fs::remove_dir_all(&across);
        (t.result(), trees, std::fs::read_to_string(&good).ok())
    });
    let made = vec![
        ("sub/".to_string(), 0o755, String::new()),
        (
            "sub/f".to_string(),
            0o644,
            vine::protocol::content_name(b"new\n"),
        ),
    ];
    let want = (
        TaskResult::OutputMissing,
        [made.clone(), made.clone(), made],
        Some("fine\n".to_string()),
    );
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn a_command_too_long_to_start_fails_as_the_tasks_own_failure_everywhere() {
    // One argument of 200 kB: past the kernel's 128 KiB for a single argument.
    let long = format!("echo {}", "x".repeat(200_000));
    let (here, there) = here_and_there(|m: &Manager| {
        m.tune("max-retries", 5.0).unwrap();
        let t = run(m, command(&long));
        let why = t.reason().map(|r| r.to_string_lossy().into_owned());
        (t.result(), t.exit_code(), why.unwrap_or_default())
    });
    for (side, (result, code, why)) in [("locally", here), ("remotely", there)] {
        assert_eq!((result, code), (TaskResult::Success, 126), "{side}: {why}");
        assert!(why.contains("Argument list too long"), "{side}: {why}");
    }
}

/// What a task sees of `victim` (a directory outside every sandbox, holding
/// `kept`) through names that pass a symbolic link: the task links to it, or
/// a directory input holds a link to it. Returns the results of: an output
/// through the task's link, an output that is itself a link to a file there,
/// and an input placed through the input's link.
fn through_links(m: &Manager, dir: &Path, victim: &Path, name: &str) -> Vec<TaskResult> {
    let link = format!(
        "ln -s {} v; ln -s {}/kept o",
        victim.display(),
        victim.display()
    );
    let mut t = command(&link);
    let out = m.declare(File::path(&dir.join(format!("{name}-out")), CacheLevel::Task, 0).unwrap());
    t.add_output(Mount::new(out, "v/kept", 0).unwrap()).unwrap();
    let t = run(m, t);
    let mut l = command(&link);
    let buffer = m.declare(File::buffer(b"", CacheLevel::Task, 0).unwrap());
    l.add_output(Mount::new(buffer.clone(), "o", 0).unwrap())
        .unwrap();
    let l = run(m, l);
    assert!(
        buffer.contents().unwrap_or_default().is_empty(),
        "{name}: read through a link"
    );
    let holder = dir.join(format!("{name}-holder"));
    std::fs::create_dir_all(&holder).unwrap();
    let _ = std::fs::remove_file(holder.join("d"));
    std::os::unix::fs::symlink(victim, holder.join("d")).unwrap();
    let mut i = command("true");
    let input = m.declare(File::path(&holder, CacheLevel::Task, 0).unwrap());
    i.add_input(Mount::new(input, "h", 0).unwrap()).unwrap();
    let placed = m.declare(File::buffer(b"planted", CacheLevel::Task, 0).unwrap());
    i.add_input(Mount::new(placed, "h/d/planted", 0).unwrap())
        .unwrap();
    let i = run(m, i);
    for t in [&t, &l, &i] {
        let why = t
            .reason()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(why.contains("symbolic link"), "{name}: {why}");
    }
    vec![t.result(), l.result(), i.result()]
}

#[test]
fn an_output_that_links_to_a_file_in_the_sandbox_delivers_that_file_locally_and_remotely() {
    let dir = tempdir();
    let (here, there) = here_and_there(|m: &Manager| {
        let at = dir.join(format!("out-{}", m.port().map_or(0, |p| p)));
        std::fs::create_dir_all(&at).unwrap();
        // What a relative link would name next to the output, if it were moved as a link.
        std::fs::create_dir_all(at.join("d")).unwrap();
        std::fs::write(at.join("d/a"), "the manager's own file\n").unwrap();
        let file = m.declare(File::path(&at.join("result"), CacheLevel::Task, 0).unwrap());
        let buffer = m.declare(File::buffer(b"", CacheLevel::Task, 0).unwrap());
        let temp = m.declare(File::temp().unwrap());
        let mut t = command("mkdir d; for x in a b c; do echo data > d/$x; ln -s d/$x $x; done");
        t.add_output(Mount::new(file, "a", 0).unwrap()).unwrap();
        t.add_output(Mount::new(buffer.clone(), "b", 0).unwrap())
            .unwrap();
        t.add_output(Mount::new(temp.clone(), "c", 0).unwrap())
            .unwrap();
        let made = outcome(&run(m, t));
        let mut read = command("cat t");
        read.add_input(Mount::new(temp, "t", 0).unwrap()).unwrap();
        let read = outcome(&run(m, read));
        let result = at.join("result");
        (
            made,
            std::fs::symlink_metadata(&result).map(|m| m.is_file()).ok(),
            std::fs::read_to_string(&result).ok(),
            buffer.contents().map(|c| c.to_vec()),
            read,
        )
    });
    let want = (
        (TaskResult::Success, 0, String::new()),
        Some(true),
        Some("data\n".to_string()),
        Some(b"data\n".to_vec()),
        (TaskResult::Success, 0, "data\n".to_string()),
    );
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn names_through_symbolic_links_never_reach_outside_the_sandbox() {
    let dir = tempdir();
    let victim = dir.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("kept"), "precious").unwrap();
    let local = local_manager();
    let here = through_links(&local, &dir, &victim, "local");
    local.shutdown().unwrap();
    let (m, port) = remote_manager();
    let w = vine_worker(port, &["--cores", "1"]);
    let there = through_links(&m, &dir, &victim, "remote");
    stop(m, vec![w]);
    use TaskResult::{InputMissing, OutputMissing};
    assert_eq!(here, [OutputMissing, OutputMissing, InputMissing]);
    assert_eq!(there, here);
    // Nothing outside was moved, read or written.
    let left: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["kept"]);
    assert_eq!(
        std::fs::read_to_string(victim.join("kept")).unwrap(),
        "precious"
    );
}

#[test]
fn a_buffer_linked_into_the_sandbox_is_a_link_locally_and_remotely() {
    let size = 3_000_000;
    let runs = |m: &Manager| {
        let buffer = m.declare(File::buffer(&vec![7u8; size], CacheLevel::Task, 0).unwrap());
        // Linked, its bytes are not the sandbox's: a 1 MB disk request holds.
        let mut t = command("test -L in && wc -c < in && test -x in && echo executable");
        t.add_input(Mount::new(buffer, "in", vine::files::MOUNT_SYMLINK).unwrap())
            .unwrap();
        t.set_disk(1).unwrap();
        let t = run(m, t);
        (outcome(&t), reason(&t))
    };
    let (here, there) = here_and_there(runs);
    let want = (
        (TaskResult::Success, 0, format!("{size}\nexecutable\n")),
        String::new(),
    );
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}

#[test]
fn a_linked_buffer_a_task_rewrote_is_read_anew_locally_and_remotely() {
    let runs = |m: &Manager| {
        let buffer = m.declare(File::buffer(b"v1\n", CacheLevel::Workflow, 0).unwrap());
        let read = |m: &Manager| {
            let mut t = command("cat in");
            t.add_input(Mount::new(buffer.clone(), "in", vine::files::MOUNT_SYMLINK).unwrap())
                .unwrap();
            outcome(&run(m, t))
        };
        let first = read(m);
        let mut t = command("echo v2 > out");
        t.add_output(Mount::new(buffer.clone(), "out", 0).unwrap())
            .unwrap();
        let wrote = outcome(&run(m, t));
        (first, wrote, read(m))
    };
    let (here, there) = here_and_there(runs);
    let want = (
        (TaskResult::Success, 0, "v1\n".to_owned()),
        (TaskResult::Success, 0, String::new()),
        (TaskResult::Success, 0, "v2\n".to_owned()),
    );
    assert_eq!(here, want, "locally");
    assert_eq!(there, want, "remotely");
}
