//! The manager's side of a connection, from its first byte: a real manager on a
//! loopback port, and the input sent as a worker would after connecting. A panic
//! on any of the manager's threads aborts (libFuzzer's panic hook), and so does a
//! manager that keeps the connection open after its peer closed it.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vine::{Manager, Port};

static MANAGER: OnceLock<(Manager, u16)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (_, port) = MANAGER.get_or_init(|| {
        let m = Manager::new(Port::Any).expect("a manager on a free port");
        m.tune("local-cores", 0.0).expect("no local pool");
        // Connections are taken once the authentication settings are final.
        m.stats().expect("stats");
        let port = m.port().expect("a port");
        (m, port)
    });
    let mut s = TcpStream::connect(("127.0.0.1", *port)).expect("the manager listens");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a timeout");
    // The manager may refuse before reading everything: a failed write is fine.
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    if let Err(e) = s.read_to_end(&mut sink) {
        assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "the manager kept a connection open after its peer closed: {e}"
        );
    }
});
