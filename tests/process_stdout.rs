//! What a PROCESS function prints reaches the program's standard output, as
//! a THREAD function's does, when that is a file (fully buffered): its
//! process flushes the C library's streams when the function returns. (A
//! process of its own: standard output is the whole process's.)

use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;
use std::time::Duration;

use vine::ffi::vine_buffer;
use vine::task::ExecMode;
use vine::{Manager, Port, Task, TaskResult};

unsafe extern "C" fn prints(
    _: *const c_void,
    _: usize,
    _: *mut vine_buffer,
    _: *mut c_void,
) -> c_int {
    // SAFETY: C's printf with a constant format, as a task function would.
    unsafe { libc::printf(c"printed by a PROCESS function\n".as_ptr()) };
    0
}

#[test]
fn what_a_process_function_prints_to_a_file_is_not_lost() {
    let dir = std::env::temp_dir().join(format!("vine-process-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out");
    let file = std::fs::File::create(&path).unwrap();
    // SAFETY: this process's standard output becomes the file (nothing of
    // the test harness writes to it meanwhile: the test prints nothing).
    let saved = unsafe { libc::dup(1) };
    assert!(saved >= 0);
    assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), 1) }, 1);

    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    let mut t = Task::local(prints, 0, b"");
    t.set_exec_mode(ExecMode::Process).unwrap();
    m.submit(t).map_err(|(e, _)| e).unwrap();
    let t = m.wait(Some(Duration::from_secs(120))).unwrap();
    drop(m);

    // SAFETY: standard output back as it was.
    assert_eq!(unsafe { libc::dup2(saved, 1) }, 1);
    unsafe { libc::close(saved) };
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    let out = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out, "printed by a PROCESS function\n");
}
