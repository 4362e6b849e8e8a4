//! Connecting to `host:port` by a deadline, the name lookup included.
//!
//! The system's lookup (`getaddrinfo`) takes no timeout: with a resolver that
//! does not answer it can block for a minute or more. It runs on a thread of
//! its own here, and the caller stops waiting for it at the deadline (the thread
//! ends by itself when the lookup returns).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

/// The addresses of `host` (a name, or an IPv4 or IPv6 literal), looked up by
/// `deadline`.
pub(crate) fn resolve_within(
    host: &str,
    port: u16,
    deadline: Instant,
) -> io::Result<Vec<SocketAddr>> {
    let owned = host.to_owned();
    lookup_within(host, port, deadline, move || {
        (owned.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
}

/// [`resolve_within`] with the lookup given (tests give one that never ends).
fn lookup_within(
    host: &str,
    port: u16,
    deadline: Instant,
    lookup: impl FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    // A literal needs no lookup, nor a thread.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("vine-lookup".into())
        .spawn(move || {
            let _ = tx.send(lookup());
        })?;
    let left = deadline.saturating_duration_since(Instant::now());
    let addrs = rx.recv_timeout(left).map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer from the name resolver in time",
        )
    })??;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
}

/// A connection to `host:port` made by `deadline`: each of its addresses in
/// turn (a name may have an IPv6 address where nothing listens before an IPv4
/// one where something does), until one connects or the time is up.
pub(crate) fn connect_within(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    connect_within_addrs(&resolve_within(host, port, deadline)?, deadline)
}

/// [`connect_within`] to addresses looked up already.
pub(crate) fn connect_within_addrs(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> io::Result<TcpStream> {
    let mut last = None;
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(a, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no time left to connect")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn a_lookup_that_never_ends_is_given_up_at_the_deadline() {
        let (hold, never) = mpsc::channel::<()>();
        let deadline = Instant::now() + Duration::from_millis(50);
        let e = lookup_within("stuck.invalid", 9, deadline, move || {
            // Blocks until the test ends: the resolver never answers.
            let _ = never.recv();
            Ok(Vec::new())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("resolver"), "{e}");
        assert!(Instant::now() >= deadline);
        drop(hold);
    }

    #[test]
    fn literals_need_no_lookup_and_an_empty_answer_is_an_error() {
        let far = Instant::now() + Duration::from_secs(60);
        let called = |_| -> io::Result<Vec<SocketAddr>> { panic!("looked up a literal") };
        for (host, ip) in [("127.0.0.1", "127.0.0.1"), ("::1", "::1")] {
            let got = lookup_within(host, 7, far, move || called(())).unwrap();
            assert_eq!(got, vec![SocketAddr::new(ip.parse().unwrap(), 7)]);
        }
        let e = lookup_within("nothing.invalid", 7, far, || Ok(Vec::new())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let e = lookup_within("broken.invalid", 7, far, || {
            Err(io::Error::other("resolver broken"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("resolver broken"), "{e}");
    }

    #[test]
    fn every_address_is_tried_until_one_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // A port nothing listens on: bound, then closed.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let s = connect_within_addrs(&[closed, open], far).unwrap();
        assert_eq!(s.peer_addr().unwrap(), open);
        let e = connect_within_addrs(&[closed], far).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        let e = connect_within_addrs(&[open], Instant::now()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }
}
