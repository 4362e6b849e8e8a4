//! Run directories as TaskVine lays them out. Alone in its test binary: where
//! run directories go is the process's setting, which other tests' managers
//! would pick up while it is set.

mod common;

use common::tempdir;
use vine::{Manager, Port, Task};

#[test]
fn a_manager_with_a_port_writes_taskvines_run_directory_by_default() {
    // (One test: the root is the process's.)
    let m = Manager::new(Port::None).unwrap();
    assert!(
        m.runtime_info_dir().is_none(),
        "no port: no logs unless asked"
    );
    drop(m);
    let dir = tempdir();
    let root = dir.join("runs");
    vine::manager::set_runtime_info_root(Some(root.clone()));
    let m = Manager::new(Port::Any);
    vine::manager::set_runtime_info_root(None);
    let m = m.unwrap();
    let run = m.runtime_info_dir().expect("a run directory");
    assert!(run.starts_with(std::fs::canonicalize(&root).unwrap()));
    assert_eq!(
        std::fs::canonicalize(root.join("most-recent")).unwrap(),
        run
    );
    let id = m.submit(Task::command(c"true")).unwrap();
    assert_eq!(m.wait(None).unwrap().id(), id);
    m.log_debug("from the program");
    m.shutdown().unwrap();
    let logs = run.join("vine-logs");
    let txn = std::fs::read_to_string(logs.join("transactions")).unwrap();
    assert!(txn.contains(&format!("TASK {id} DONE SUCCESS 0")), "{txn}");
    assert!(txn.contains("WORKER worker-local CONNECTION local"));
    let perf = std::fs::read_to_string(logs.join("performance")).unwrap();
    assert!(perf.starts_with("# timestamp workers_connected"));
    // What vine_status would say, for managers it cannot ask.
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("status.json")).unwrap()).unwrap();
    assert!(status["tasks"]["submitted"].is_u64(), "{status}");
    // Written once more at the end: the state the run ended in.
    assert_eq!(status["tasks"]["done"], 1, "{status}");
    assert_eq!(status["tasks"]["waiting"], 0, "{status}");
    assert_eq!(status["workers"][0]["id"], "worker-local", "{status}");
    let debug = std::fs::read_to_string(logs.join("debug")).unwrap();
    assert!(debug.contains("vine: from the program\n"), "{debug}");
    assert!(debug.contains("vine: manager shut down\n"), "{debug}");
}
