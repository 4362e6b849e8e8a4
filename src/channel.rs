//! A connection between a manager and a worker, as both ends use it: first a
//! handshake under a deadline (TLS if on, then the password proofs), then a
//! session split into a reading half and a writing half for two threads.
//!
//! Without TLS, a session whose peer proved the password authenticates every frame:
//! each side derives per-direction keys with HKDF-SHA256 from the password and both
//! challenges, and every frame after the handshake carries an HMAC-SHA256 of its
//! sequence number and bytes. A peer that relayed the handshake, without the
//! password, can neither forge, alter, reorder nor replay a frame. With TLS, TLS
//! does that, and the proofs are bound to the TLS channel instead.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use rustls::Connection;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{self, FrameMac};
use crate::tls::{self, TlsReader, TlsWriter};

/// A socket whose every read and write must end by a deadline: a peer that sends
/// one byte at a time cannot hold the handshake open.
pub struct Deadline<'a> {
    sock: &'a TcpStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    /// `sock` until `until`.
    pub fn new(sock: &'a TcpStream, until: Instant) -> Self {
        Deadline { sock, until }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the handshake took too long",
            ))
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.set_read_timeout(Some(self.left()?))?;
        (&*self.sock).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.set_write_timeout(Some(self.left()?))?;
        (&*self.sock).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Something to read and write.
trait Duplex: Read + Write {}
impl<T: Read + Write> Duplex for T {}

/// Runs `f` on the plaintext stream of a TLS connection over `io`.
fn over_tls<R>(
    conn: &mut Connection,
    io: &mut Deadline<'_>,
    f: impl FnOnce(&mut dyn Duplex) -> R,
) -> R {
    match conn {
        Connection::Client(c) => f(&mut rustls::Stream::new(c, io)),
        Connection::Server(c) => f(&mut rustls::Stream::new(c, io)),
    }
}

/// A connection during its handshake.
pub struct Handshake {
    sock: TcpStream,
    tls: Option<Connection>,
    until: Instant,
}

impl Handshake {
    /// Starts a handshake on `sock` that must be done by `until`; with `tls`, the
    /// TLS handshake is done first.
    pub fn start(sock: TcpStream, tls: Option<Connection>, until: Instant) -> Result<Handshake> {
        let mut h = Handshake { sock, tls, until };
        if let Some(conn) = h.tls.as_mut() {
            tls::handshake(conn, &mut Deadline::new(&h.sock, until))?;
        }
        Ok(h)
    }

    /// The TLS keying material the password proofs are bound to (empty without TLS).
    pub fn binding(&self) -> Result<Vec<u8>> {
        match &self.tls {
            Some(conn) => Ok(tls::channel_binding(conn)?.to_vec()),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the connection is under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends a handshake frame.
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        self.send_sealed(msg, None)
    }

    /// Sends a handshake frame with its tag under `mac` when there is one
    /// (once both sides proved the password, on a connection without TLS).
    pub fn send_sealed<T: Serialize>(&mut self, msg: &T, mac: Option<&mut FrameMac>) -> Result<()> {
        let mut io = Deadline::new(&self.sock, self.until);
        match self.tls.as_mut() {
            Some(conn) => {
                over_tls(conn, &mut io, |mut s| {
                    protocol::write_frame_sealed(&mut s, msg, mac)
                })?;
                // rustls::Stream writes records as it goes; make sure none is left.
                tls::handshake(conn, &mut io)
            }
            None => protocol::write_frame_sealed(&mut io, msg, mac),
        }
    }

    /// Receives a handshake frame of at most `limit` bytes.
    pub fn recv<T: for<'de> Deserialize<'de>>(&mut self, limit: u32) -> Result<T> {
        self.recv_sealed(limit, None)
    }

    /// Receives a handshake frame of at most `limit` bytes, checking its tag
    /// under `mac` when there is one.
    pub fn recv_sealed<T: for<'de> Deserialize<'de>>(
        &mut self,
        limit: u32,
        mac: Option<&mut FrameMac>,
    ) -> Result<T> {
        let mut io = Deadline::new(&self.sock, self.until);
        match self.tls.as_mut() {
            Some(conn) => over_tls(conn, &mut io, |mut s| {
                protocol::read_frame_within(&mut s, limit, mac)
            }),
            None => protocol::read_frame_within(&mut io, limit, mac),
        }
    }

    /// The socket (for its address, or to shut it down).
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Ends the handshake: the session's two halves and the socket to control them
    /// (timeouts, shutdown). `keys` are the frame keys (sending, receiving) when
    /// frames are to be authenticated.
    pub fn into_session(
        self,
        keys: Option<(FrameMac, FrameMac)>,
    ) -> Result<(FrameReader, FrameWriter, TcpStream)> {
        let sock = self.sock;
        sock.set_read_timeout(None)
            .and_then(|()| sock.set_write_timeout(None))
            .map_err(|e| Error::io("socket", e))?;
        let (send_mac, recv_mac) = match keys {
            Some((s, r)) => (Some(s), Some(r)),
            None => (None, None),
        };
        let clone = || sock.try_clone().map_err(|e| Error::io("socket", e));
        let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match self.tls {
            Some(conn) => {
                let (r, w): (TlsReader, TlsWriter) =
                    tls::split(conn, &sock).map_err(|e| Error::io("socket", e))?;
                (Box::new(r), Box::new(w))
            }
            None => (Box::new(clone()?), Box::new(clone()?)),
        };
        Ok((
            FrameReader { r, mac: recv_mac },
            FrameWriter { w, mac: send_mac },
            sock,
        ))
    }
}

/// The reading half of a session.
pub struct FrameReader {
    r: Box<dyn Read + Send>,
    mac: Option<FrameMac>,
}

impl FrameReader {
    /// The next frame; any malformation, or a frame that fails authentication, is
    /// an error (the caller drops the connection).
    pub fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        protocol::read_frame_within(&mut self.r, protocol::MAX_FRAME, self.mac.as_mut())
    }
}

/// The writing half of a session. Frames are buffered: call [`FrameWriter::flush`].
pub struct FrameWriter {
    w: Box<dyn Write + Send>,
    mac: Option<FrameMac>,
}

impl FrameWriter {
    /// Writes one frame (buffered until `flush`).
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        protocol::write_frame_sealed(&mut self.w, msg, self.mac.as_mut())
    }

    /// Buffers writes `capacity` bytes at a time.
    pub fn buffered(self, capacity: usize) -> FrameWriter {
        FrameWriter {
            w: Box::new(io::BufWriter::with_capacity(capacity, self.w)),
            mac: self.mac,
        }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io("sending a frame", e))
    }
}

/// Shuts a session's socket down in both directions (wakes its reader).
pub fn close(sock: &TcpStream) {
    let _ = sock.shutdown(Shutdown::Both);
}

/// The error a peer that refused us gets: permanent, not worth retrying.
pub fn refused(reason: &str) -> Error {
    Error::new(ErrorKind::InvalidHandle, reason.to_owned())
}
