//! A program started with its standard input closed, an empty TMPDIR and a
//! umask of 0: the library's own descriptors do not take the number, its
//! scratch directory goes to /tmp, and is the user's alone. (A process of its
//! own: descriptor numbers, the environment and the umask are the whole
//! process's.)

use std::ffi::CString;
use std::time::Duration;

use vine::{Manager, Port, Task, TaskResult};

#[test]
fn a_closed_standard_descriptor_is_given_dev_null_not_a_descriptor_of_the_library() {
    // SAFETY: closes this process's standard input, which no test reads.
    assert_eq!(unsafe { libc::close(0) }, 0);
    std::env::set_var("TMPDIR", "");
    // SAFETY: sets this process's umask.
    unsafe { libc::umask(0) };
    let m = Manager::new(Port::None).unwrap();
    let scratch = m.runtime_dir().to_owned();
    assert!(scratch.starts_with("/tmp/"), "{}", scratch.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&scratch).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", scratch.display());
    m.tune("local-cores", 1.0).unwrap();
    // A command starts the guardian, whose socket stays open.
    let cmd = CString::new("true").unwrap();
    m.submit(Task::command(&cmd)).map_err(|(e, _)| e).unwrap();
    let t = m.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    let fd0 = std::fs::read_link("/proc/self/fd/0").unwrap();
    assert_eq!(fd0, std::path::Path::new("/dev/null"));
    drop(m);
}
