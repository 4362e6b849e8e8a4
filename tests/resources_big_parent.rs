//! A program far larger than its tasks: a small command with a small memory
//! limit is not taken for a large one. (A process starts with the peak of the
//! one that started it, as the kernel counts it; that must not count as the
//! task's.) In its own binary: the test makes the whole process large.

use vine::{Manager, Port, Task, TaskResult};

#[test]
fn a_small_command_of_a_large_program_stays_within_a_small_limit() {
    // 400 MB, every page touched, kept to the end.
    let big = vec![1u8; 400 << 20];
    let m = Manager::new(Port::None).unwrap();
    m.tune("local-cores", 1.0).unwrap();
    m.enable_monitoring(true).unwrap();
    let mut t = Task::command(c"dd if=/dev/zero of=/dev/null bs=1M count=10 2>/dev/null");
    t.set_memory(50).unwrap();
    m.submit(t).unwrap();
    let t = m.wait(Some(std::time::Duration::from_secs(60))).unwrap();
    assert_eq!(t.result(), TaskResult::Success, "{:?}", t.reason());
    let measured = t.measured().expect("measured").memory_mb.unwrap();
    assert!(
        measured < 300,
        "the command's peak is not the program's: {measured} MB"
    );
    assert_eq!(big[big.len() / 2], 1);
}
