//! The guardian (which kills what a program's commands leave behind when it
//! ends) holds nothing of the program's and needs nothing of its
//! environment: a program's inheritable descriptors and its PATH are its own.
//! (A process of its own: the guardian is the whole process's.)

use std::ffi::CString;
use std::time::Duration;

use vine::{Manager, Port, Task, TaskResult};

#[test]
fn the_guardian_holds_no_descriptor_of_the_program_and_finds_its_tools_without_its_path() {
    // A pipe left inheritable, and a PATH with none of the guardian's tools,
    // before the first command starts the guardian.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let ours = std::fs::read_link(format!("/proc/self/fd/{}", fds[1])).unwrap();
    std::env::set_var("PATH", "/nonexistent");

    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    let cmd = CString::new("echo $VINE_GUARDIAN").unwrap();
    m.submit(Task::command(&cmd)).map_err(|(e, _)| e).unwrap();
    let t = m.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    let out = t.stdout().unwrap().to_string_lossy().into_owned();
    let guardian: u32 = out.trim().parse().unwrap_or_else(|_| panic!("{out:?}"));

    let held: Vec<_> = std::fs::read_dir(format!("/proc/{guardian}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .collect();
    assert!(
        !held.contains(&ours),
        "the guardian holds {ours:?}: {held:?}"
    );
    let env = std::fs::read(format!("/proc/{guardian}/environ")).unwrap();
    let path = env
        .split(|&b| b == 0)
        .find(|v| v.starts_with(b"PATH="))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    assert_eq!(path.as_deref(), Some("PATH=/usr/bin:/bin"));
    drop(m);
}
