//! TLS between a manager and its workers, through rustls (ring as the crypto
//! provider).
//!
//! The manager has a certificate: one the user gives (`vine_ssl_create` with a key
//! and a certificate in PEM), or a self-signed one it makes at start-up
//! (`vine_ssl_create_self_signed`). A worker
//! either pins the certificate's SHA-256 fingerprint (`--ssl-fingerprint`),
//! verifies it against certificates it trusts (`--ssl-ca`), or accepts any
//! certificate (`--ssl` alone): then TLS keeps the traffic private from a passive
//! listener, and the password proof, bound to this TLS channel by exported keying
//! material, still keeps an impostor in the middle from logging in with a relayed
//! proof.
//!
//! Blocking sockets are used by two threads at once (one reads, others write), so a
//! connection is split: the rustls state sits under a short lock that neither
//! thread holds while it waits on the socket. Records are encrypted and written
//! under one writer lock, so they reach the socket in the order of their sequence
//! numbers.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, Connection, DigitallySignedStruct, ServerConfig};
use rustls::{ServerConnection, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// The label of the keying material a password proof is bound to (RFC 5705).
const EXPORTER_LABEL: &[u8] = b"EXPORTER-vine-password-proof";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{what}: {e}"))
}

/// SHA-256 of a certificate in DER, in lowercase hex.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manager's TLS identity.
pub struct ServerTls {
    config: Arc<ServerConfig>,
    fingerprint: std::ffi::CString,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerTls({})", self.fingerprint())
    }
}

impl ServerTls {
    /// A self-signed certificate made now, for this manager's life.
    pub fn generate() -> Result<ServerTls> {
        let mut names = vec!["vine-manager".to_owned(), "localhost".to_owned()];
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if !h.is_empty() && !names.iter().any(|n| n == h) {
                names.push(h.to_owned());
            }
        }
        names.push("127.0.0.1".to_owned());
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| tls_error("cannot make a certificate", e))?;
        let key = PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
        Self::with(vec![made.cert.der().clone()], key)
    }

    /// The key and certificate chain in PEM files.
    pub fn from_pem(key: &Path, cert: &Path) -> Result<ServerTls> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(p.display(), e));
        let certs = rustls_pemfile::certs(&mut &read(cert)?[..])
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::io(cert.display(), e))?;
        if certs.is_empty() {
            return Err(Error::invalid(format!(
                "{} holds no PEM certificate",
                cert.display()
            )));
        }
        let key = rustls_pemfile::private_key(&mut &read(key)?[..])
            .map_err(|e| Error::io(key.display(), e))?
            .ok_or_else(|| Error::invalid(format!("{} holds no PEM private key", key.display())))?;
        Self::with(certs, key)
    }

    fn with(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<ServerTls> {
        let fingerprint = std::ffi::CString::new(fingerprint(&certs[0])).expect("hex has no NUL");
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS set-up", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error("the certificate and key do not make a TLS identity", e))?;
        // No resumption: nothing is written after the handshake but frames.
        config.send_tls13_tickets = 0;
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// The SHA-256 fingerprint of the certificate, in lowercase hex.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.to_str().expect("hex is UTF-8")
    }

    /// [`ServerTls::fingerprint`] as a C string.
    pub fn fingerprint_c(&self) -> &std::ffi::CStr {
        &self.fingerprint
    }

    /// A server side of a new connection (the handshake is still to be done).
    pub fn accept(&self) -> Result<Connection> {
        ServerConnection::new(self.config.clone())
            .map(Connection::Server)
            .map_err(|e| tls_error("TLS", e))
    }
}

/// How a worker checks the manager's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Any certificate: private against listeners; the password proof is bound to
    /// the channel, so a relay cannot log in.
    Any,
    /// Only the certificate with this SHA-256 fingerprint.
    Fingerprint([u8; 32]),
    /// A certificate that chains to one in this PEM file, for the host connected to.
    Ca(std::path::PathBuf),
}

impl Verify {
    /// Parses a fingerprint as 64 hex digits (colons allowed, as tools print them).
    pub fn fingerprint(text: &str) -> Result<Verify> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bad = || Error::invalid(format!("{text:?} is not a SHA-256 fingerprint"));
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut fp = [0u8; 32];
        for (i, byte) in fp.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Verify::Fingerprint(fp))
    }
}

/// Accepts a certificate by its fingerprint, or any certificate, but always checks
/// that the server holds its key (the handshake signature).
#[derive(Debug)]
struct Pinned {
    fingerprint: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.fingerprint {
            Some(want) => {
                let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
                // Not secret, but compared in full either way.
                if got
                    .iter()
                    .zip(want.iter())
                    .fold(0u8, |d, (a, b)| d | (a ^ b))
                    == 0
                {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(
                        "the manager's certificate does not have the pinned fingerprint".into(),
                    ))
                }
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A worker's TLS settings.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Settings that check the manager's certificate as `verify` says.
    pub fn new(verify: &Verify) -> Result<ClientTls> {
        let p = provider();
        let builder = ClientConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS set-up", e))?;
        let mut config = match verify {
            Verify::Any | Verify::Fingerprint(_) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    fingerprint: match verify {
                        Verify::Fingerprint(f) => Some(*f),
                        _ => None,
                    },
                    provider: p,
                }))
                .with_no_client_auth(),
            Verify::Ca(path) => {
                let pem = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut &pem[..]) {
                    let cert = cert.map_err(|e| Error::io(path.display(), e))?;
                    roots
                        .add(cert)
                        .map_err(|e| tls_error(&path.display().to_string(), e))?;
                }
                if roots.is_empty() {
                    return Err(Error::invalid(format!(
                        "{} holds no PEM certificate",
                        path.display()
                    )));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        config.resumption = rustls::client::Resumption::disabled();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// A client side of a new connection to `host` (the handshake is still to be done).
    pub fn connect(&self, host: &str) -> Result<Connection> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| tls_error(&format!("{host:?} as a TLS server name"), e))?;
        ClientConnection::new(self.config.clone(), name)
            .map(Connection::Client)
            .map_err(|e| tls_error("TLS", e))
    }
}

/// Runs the TLS handshake over `io` (a socket, with whatever deadline it enforces).
/// A failure of TLS itself (a certificate refused, a peer that does not speak TLS)
/// is an `InvalidHandle` error: trying again would fail again. A socket error is `Io`.
pub fn handshake(conn: &mut Connection, io: &mut (impl Read + Write)) -> Result<()> {
    let client = matches!(conn, Connection::Client(_));
    let failed = |e: io::Error| {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            // The other side answered with something that is not TLS at all:
            // say which setting differs, not only that the bytes were wrong.
            let hint = match tls {
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                    if client =>
                {
                    " (the manager does not use TLS: one made by vine_create, not \
                     vine_ssl_create, takes workers started without --ssl)"
                }
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    " (the peer does not speak TLS: this manager takes workers started \
                     with --ssl)"
                }
                _ => "",
            };
            Error::new(
                ErrorKind::InvalidHandle,
                format!("TLS handshake: {e}{hint}"),
            )
        } else if !client
            && matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            )
        {
            // A worker without --ssl waits for a greeting that a TLS manager
            // never sends, until one of them gives up.
            Error::io(
                "TLS handshake (the peer did not start TLS: a worker started without \
                 --ssl does not)",
                e,
            )
        } else {
            Error::io("TLS handshake", e)
        }
    };
    while conn.is_handshaking() {
        conn.complete_io(io).map_err(failed)?;
    }
    // Flush the last flight (the client's Finished).
    while conn.wants_write() {
        conn.write_tls(io).map_err(failed)?;
    }
    Ok(())
}

/// Keying material of this TLS channel that a password proof is bound to: a relay
/// has another channel on each side, so a proof made on one fails on the other.
pub fn channel_binding(conn: &Connection) -> Result<[u8; 32]> {
    conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| tls_error("TLS keying material", e))
}

struct Shared {
    conn: Mutex<Connection>,
    /// Held while records are made and written, so they leave in order.
    out: Mutex<TcpStream>,
}

impl Shared {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encrypts `data` (may be empty: only what rustls has pending) and writes it.
    fn send(&self, data: &[u8]) -> io::Result<()> {
        let mut sock = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut records = Vec::with_capacity(data.len() + 64);
        {
            let mut conn = self.conn();
            if !data.is_empty() {
                conn.writer().write_all(data)?;
            }
            while conn.wants_write() {
                conn.write_tls(&mut records)?;
            }
        }
        sock.write_all(&records)
    }
}

/// The reading half of a TLS connection.
pub struct TlsReader {
    shared: Arc<Shared>,
    sock: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// The writing half of a TLS connection.
pub struct TlsWriter {
    shared: Arc<Shared>,
}

/// Splits a connection whose handshake is done into halves that two threads use
/// at once. `sock` must be the connection's socket; the halves use clones of it.
pub fn split(mut conn: Connection, sock: &TcpStream) -> io::Result<(TlsReader, TlsWriter)> {
    // Records are drained after every write: no need for rustls to cap its buffer.
    conn.set_buffer_limit(None);
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        out: Mutex::new(sock.try_clone()?),
    });
    Ok((
        TlsReader {
            shared: shared.clone(),
            sock: sock.try_clone()?,
            buf: vec![0u8; 16 << 10].into_boxed_slice(),
            start: 0,
            end: 0,
        },
        TlsWriter { shared },
    ))
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut wants_write = false;
            {
                let mut conn = self.shared.conn();
                if self.start < self.end {
                    let mut pending = &self.buf[self.start..self.end];
                    match conn.read_tls(&mut pending) {
                        Ok(n) => self.start += n,
                        // Its plaintext buffer is full: take plaintext out first.
                        Err(e) if e.kind() == io::ErrorKind::Other => {}
                        Err(e) => return Err(e),
                    }
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    wants_write = conn.wants_write();
                }
                match conn.reader().read(out) {
                    Ok(n) => {
                        drop(conn);
                        if wants_write {
                            self.shared.send(&[])?;
                        }
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if wants_write {
                self.shared.send(&[])?;
            }
            if self.start == self.end {
                let n = self.sock.read(&mut self.buf)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection without a TLS close",
                    ));
                }
                self.start = 0;
                self.end = n;
            }
        }
    }
}

impl Write for TlsWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.shared.send(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// HTTPS for URL downloads (`vine_declare_url`): ureq's connections through
/// rustls with ring, checking servers against the Mozilla roots of
/// `webpki-roots`. It belongs to whoever downloads, so nothing of it outlives
/// them (a process-wide TLS configuration would stay until exit).
pub struct HttpsConnector(Arc<ClientConfig>);

impl HttpsConnector {
    /// Settings that trust the usual public certificate authorities.
    pub fn new() -> Result<HttpsConnector> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS set-up", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HttpsConnector(Arc::new(config)))
    }
}

/// One HTTPS connection of a download.
struct HttpsStream(rustls::StreamOwned<ClientConnection, Box<dyn ureq::ReadWrite>>);

impl Read for HttpsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for HttpsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl std::fmt::Debug for HttpsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpsStream")
    }
}

impl ureq::ReadWrite for HttpsStream {
    fn socket(&self) -> Option<&TcpStream> {
        self.0.sock.socket()
    }
}

impl ureq::TlsConnector for HttpsConnector {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> std::result::Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let name = ServerName::try_from(dns_name.to_owned()).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{dns_name:?}: {e}"))
        })?;
        let conn = ClientConnection::new(self.0.clone(), name)
            .map_err(|e| io::Error::other(format!("TLS with {dns_name}: {e}")))?;
        Ok(Box::new(HttpsStream(rustls::StreamOwned::new(conn, io))))
    }
}
