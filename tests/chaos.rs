//! A bounded chaos run: remote workers are SIGKILLed while tasks flow, and new
//! ones take their place. Every task comes back exactly once, with its own right
//! result.

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CString};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vine::ffi::vine_buffer;
use vine::{Manager, Port, Task, TaskResult};

const TASKS: u64 = 2000;
const WORKERS: usize = 3;
/// After this many results, a worker is killed and another started.
const KILL_AT: [usize; 4] = [250, 700, 1150, 1600];

/// Doubles its input, after a millisecond of work, so that the workers hold
/// tasks when they are killed.
unsafe extern "C" fn slow_double(
    input: *const c_void,
    len: usize,
    out: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: the input is the task's 8 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(input as *const u8, len) };
    let v = u64::from_le_bytes(bytes.try_into().unwrap()) * 2;
    std::thread::sleep(Duration::from_millis(1)); // the task's work
                                                  // SAFETY: `out` is the buffer this call was given.
    unsafe { vine::ffi::function::vine_buffer_append(out, v.to_le_bytes().as_ptr().cast(), 8) }
}

/// When the test binary is started as a worker (see `worker`), this test becomes it.
#[test]
fn zz_worker_entry() {
    let Ok(args) = std::env::var("VINE_TEST_WORKER_ARGS") else {
        return;
    };
    vine::registry::register(c"slow_double", slow_double).unwrap();
    let mut argv = vec!["self".to_owned()];
    argv.extend(args.split(' ').map(str::to_owned));
    std::process::exit(vine::worker::daemon::main_with_args(argv));
}

fn worker(port: u16) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "zz_worker_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "VINE_TEST_WORKER_ARGS",
            format!("--vine-worker 127.0.0.1 {port} --cores 1 --timeout 60"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What task `i` must give back: a function's doubled input, or every tenth, a
/// command's echo.
enum Expect {
    Doubled(u64),
    Echoed(String),
}

#[test]
fn workers_killed_while_tasks_flow_lose_no_task_and_run_none_twice() {
    let m = Manager::new(Port::Any).unwrap();
    m.tune("local-cores", 0.0).unwrap();
    // Each kill costs the tasks on that worker an attempt; none may run out.
    m.tune("max-retries", 1000.0).unwrap();
    let port = m.port().unwrap();
    let mut workers: Vec<Child> = (0..WORKERS).map(|_| worker(port)).collect();
    let mut expected = HashMap::new();
    for i in 0..TASKS {
        let (task, expect) = if i % 10 == 0 {
            let cmd = CString::new(format!("echo task-{i}")).unwrap();
            (Task::command(&cmd), Expect::Echoed(format!("task-{i}\n")))
        } else {
            (
                Task::function(c"slow_double", &i.to_le_bytes()),
                Expect::Doubled(i * 2),
            )
        };
        let id = m.submit(task).unwrap();
        assert!(expected.insert(id, expect).is_none(), "id {id} given twice");
    }
    let mut kills = 0;
    let mut received = 0;
    let mut retried = 0;
    while received < TASKS as usize {
        let t = m
            .wait(Some(Duration::from_secs(120)))
            .expect("every task comes back");
        let expect = expected
            .remove(&t.id())
            .unwrap_or_else(|| panic!("task {} came back twice, or was never submitted", t.id()));
        assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
        match expect {
            Expect::Doubled(v) => assert_eq!(t.output(), v.to_le_bytes()),
            Expect::Echoed(s) => assert_eq!(t.stdout().unwrap().to_str().unwrap(), s),
        }
        retried += t.retries_used();
        received += 1;
        if KILL_AT.get(kills) == Some(&received) {
            let mut victim = workers.remove(kills % workers.len());
            victim.kill().unwrap();
            victim.wait().unwrap();
            workers.push(worker(port));
            kills += 1;
        }
    }
    assert!(expected.is_empty());
    assert_eq!(kills, KILL_AT.len());
    assert!(
        m.wait(Some(Duration::ZERO)).is_none(),
        "nothing more comes back"
    );
    assert!(m.empty());
    eprintln!("{TASKS} tasks, {kills} workers killed, {retried} attempts re-run");
    m.shutdown().unwrap();
    for mut w in workers {
        let status = w.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
    }
}
