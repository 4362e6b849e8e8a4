//! A program that used up its descriptors can still shut its manager down:
//! waking the thread that accepts workers takes no descriptor. (A process of
//! its own: the descriptor table is the whole process's.)

use std::os::fd::OwnedFd;
use std::time::Duration;

use vine::{Manager, Port};

#[test]
fn a_manager_with_a_port_shuts_down_while_no_descriptor_is_free() {
    let m = Manager::new(Port::Any).unwrap();
    // Authentication settings final: the listener now waits in accept.
    let _ = m.hungry();
    let mut held: Vec<OwnedFd> = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f.into()),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let r = m.shutdown();
        drop(m);
        let _ = tx.send(r.is_ok());
    });
    // A bound for a hang, not a measure of speed: the shutdown waits for no
    // task and no worker.
    let done = rx.recv_timeout(Duration::from_secs(120));
    drop(held);
    assert_eq!(
        done,
        Ok(true),
        "the shutdown did not return while no descriptor was free"
    );
    stopper.join().unwrap();
}
