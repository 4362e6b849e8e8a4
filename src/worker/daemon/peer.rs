//! Transfers between workers of one manager: each worker serves the files in its
//! cache on a transfer port of its own, and fetches from another worker's port
//! the inputs the manager tells it to ([`InputContent::Peer`]).
//!
//! Who may fetch: a peer that proves, by an HMAC over both sides' challenges,
//! that it knows the peer key of the current manager (see
//! [`protocol::peer_key`]: the manager's password, when it has one, and the
//! random transfer token of the manager's run, which the manager gives each
//! worker at `Welcome` over its authenticated link). The server proves the same
//! back. A worker whose link to its manager uses TLS serves its files under TLS
//! too, with a self-signed certificate it makes at start-up, and fetches from
//! its peers under TLS: the bytes are private, and both proofs are bound to the
//! TLS channel (exported keying material, as on the manager's links), so a
//! party in the middle without the peer key can neither read a file nor relay a
//! proof. Without TLS, every frame after the proofs carries an HMAC under keys
//! derived from the peer key and both challenges, and the bytes travel in the
//! clear.
//!
//! Who is served: at most [`MAX_SERVING`] peers at once that proved the key,
//! and at most [`MAX_UNPROVED_PER_HOST`] connections not yet proved from any
//! one address, so that a host that only opens connections cannot take the
//! slots of peers elsewhere.
//!
//! [`InputContent::Peer`]: crate::protocol::InputContent::Peer

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::channel::Handshake;
use crate::error::{Error, Result};
use crate::protocol::{self, Dest, PeerMsg, Piece};
use crate::transfer::{self, Source};

/// How long a peer has for its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a file on its way to this worker is waited for before a peer
/// asking for it is told it is not here.
const ARRIVAL_WAIT: Duration = Duration::from_secs(120);
/// How long a fetch may go without a byte before it is given up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Peers served at once, at most, once they have proved they are peers; more
/// are turned away (the manager limits transfers per source well below this).
pub const MAX_SERVING: usize = 64;
/// Connections not yet proved, at most, from one address: a host that only
/// opens connections (and never proves anything) holds no more slots than
/// this, and peers elsewhere are still served.
pub const MAX_UNPROVED_PER_HOST: usize = 8;
/// Connections not yet proved, at most, from all addresses.
const MAX_UNPROVED: usize = 256;

/// Test-only knob, documented as such: `N:PATH` makes this worker's transfer
/// server stop sending after N data bytes of a file, create PATH, and hang, so
/// that a test can kill it in the middle of a peer transfer.
pub const STALL_ENV: &str = "VINE_TEST_PEER_STALL";

/// The serving side, shared by the listener and the sessions.
pub struct PeerServer {
    /// The worker's cache directory, where the files it serves are.
    cache: PathBuf,
    state: Mutex<State>,
    /// Notified when a file arrives in the cache or the key changes.
    changed: Condvar,
    /// The port it listens on.
    pub port: u16,
    /// Its TLS identity, when its peers are reached under TLS.
    tls: Option<crate::tls::ServerTls>,
    /// How it connects to peers under TLS (their certificates are self-signed:
    /// the proofs bound to the channel are what authenticate them).
    client: Option<crate::tls::ClientTls>,
}

#[derive(Default)]
struct State {
    /// The current manager's peer key; None between sessions.
    key: Option<Vec<u8>>,
    /// Peers that proved the key, being served.
    serving: usize,
    /// Connections not yet proved, by the address they come from.
    unproved: std::collections::HashMap<std::net::IpAddr, usize>,
    unproved_total: usize,
    /// Files this worker was fetching and failed to get: a peer waiting for
    /// one is told at once that it is not here, rather than after
    /// `ARRIVAL_WAIT` (two workers each waiting for the other's copy of a
    /// file whose source was lost would otherwise hold each other up).
    not_coming: std::collections::HashSet<u64>,
}

/// A connection's slot: unproved until its peer proves the key, then one of
/// those served; given back when the connection ends.
struct Slot<'a> {
    server: &'a PeerServer,
    from: std::net::IpAddr,
    proved: bool,
}

impl Slot<'_> {
    /// The peer proved the key: false if every slot for those is taken.
    fn prove(&mut self) -> bool {
        let mut st = self.server.state();
        if st.serving >= MAX_SERVING {
            return false;
        }
        st.serving += 1;
        unprove(&mut st, self.from);
        self.proved = true;
        true
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut st = self.server.state();
        if self.proved {
            st.serving -= 1;
        } else {
            unprove(&mut st, self.from);
        }
    }
}

/// One connection from `from` is no longer unproved.
fn unprove(st: &mut State, from: std::net::IpAddr) {
    st.unproved_total -= 1;
    if let Some(n) = st.unproved.get_mut(&from) {
        *n -= 1;
        if *n == 0 {
            st.unproved.remove(&from);
        }
    }
}

impl PeerServer {
    /// Listens on every interface, on `port` (0: one the system picks),
    /// serving files from `cache`; with `tls`, serves and fetches under TLS.
    pub fn start(cache: &Path, port: u16, tls: bool) -> Result<Arc<PeerServer>> {
        let (tls, client) = if tls {
            (
                Some(crate::tls::ServerTls::generate()?),
                Some(crate::tls::ClientTls::new(&crate::tls::Verify::Any)?),
            )
        } else {
            (None, None)
        };
        let listener = TcpListener::bind(("0.0.0.0", port))
            .map_err(|e| Error::io(format_args!("cannot open transfer port {port}"), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("transfer port", e))?
            .port();
        let server = Arc::new(PeerServer {
            cache: cache.to_path_buf(),
            state: Mutex::default(),
            changed: Condvar::new(),
            port,
            tls,
            client,
        });
        let s = server.clone();
        std::thread::Builder::new()
            .name("vine-peer-listener".into())
            .spawn(move || s.accept_loop(listener))
            .map_err(|e| Error::io("cannot start a thread", e))?;
        Ok(server)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of the session that begins (None: the session ended).
    pub fn set_key(&self, key: Option<Vec<u8>>) {
        let mut st = self.state();
        st.key = key;
        // File ids are the session's: the next one's are others.
        st.not_coming.clear();
        drop(st);
        self.changed.notify_all();
    }

    /// The current peer key.
    pub fn key(&self) -> Option<Vec<u8>> {
        self.state().key.clone()
    }

    /// Fetches file `file_id` from the peer at `host:port` with this worker's
    /// peer key, under TLS when this worker serves under TLS; builds it under
    /// `staging`. With `expected`, what arrives must have that content hash.
    pub fn fetch(
        &self,
        host: &str,
        port: u16,
        file_id: u64,
        expected: Option<&[u8; 32]>,
        staging: &Path,
    ) -> std::result::Result<Fetched, String> {
        let key = self.key().ok_or("this worker has no peer key")?;
        fetch(
            self.client.as_ref(),
            host,
            port,
            file_id,
            expected,
            &key,
            staging,
        )
    }

    /// A file arrived in the cache.
    pub fn arrived(&self) {
        let _guard = self.state();
        self.changed.notify_all();
    }

    /// This worker's fetch of file `file_id` failed: peers waiting for it are
    /// told it is not here.
    pub fn not_coming(&self, file_id: u64) {
        self.state().not_coming.insert(file_id);
        self.changed.notify_all();
    }

    /// File `file_id` is to be fetched again: peers asking for it wait for it.
    /// (A file the manager sends meanwhile is served once it is here; a
    /// peer asking before then is told it is not, and its fetch fails over
    /// as any failed fetch does.)
    pub fn coming(&self, file_id: u64) {
        self.state().not_coming.remove(&file_id);
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for conn in listener.incoming() {
            let Ok(sock) = conn else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let Ok(from) = sock.peer_addr().map(|a| a.ip()) else {
                continue;
            };
            {
                let mut st = self.state();
                let here = st.unproved.get(&from).copied().unwrap_or(0);
                if st.unproved_total >= MAX_UNPROVED || here >= MAX_UNPROVED_PER_HOST {
                    crate::channel::close(&sock);
                    continue;
                }
                st.unproved.insert(from, here + 1);
                st.unproved_total += 1;
            }
            let s = self.clone();
            let spawned = std::thread::Builder::new()
                .name("vine-peer-serve".into())
                .spawn(move || {
                    let slot = Slot {
                        server: &s,
                        from,
                        proved: false,
                    };
                    if let Err(e) = s.serve(sock, slot) {
                        super::log::debug(|| format!("peer transfer not served: {e}"));
                    }
                });
            if spawned.is_err() {
                unprove(&mut self.state(), from);
            }
        }
    }

    fn serve(&self, sock: TcpStream, mut slot: Slot<'_>) -> Result<()> {
        let _ = sock.set_nodelay(true);
        let conn = self.tls.as_ref().map(|t| t.accept()).transpose()?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let mut h = Handshake::start(sock, conn, deadline)?;
        let binding = h.binding()?;
        let mine = protocol::challenge();
        h.send(&PeerMsg::Hello { challenge: mine })?;
        let PeerMsg::Ask {
            challenge: theirs,
            proof,
            file_id,
        } = h.recv(protocol::MAX_HANDSHAKE_FRAME)?
        else {
            return Err(Error::invalid("a peer did not ask for a file"));
        };
        let context = protocol::ProofContext {
            manager: &mine,
            worker: &theirs,
            binding: &binding,
        };
        let key = self.key_by(deadline);
        let ok = key
            .as_ref()
            .is_some_and(|k| protocol::verify(k, &context, protocol::ROLE_PEER_FETCH, &proof));
        let Some(key) = key.filter(|_| ok) else {
            let _ = h.send(&PeerMsg::Refused {
                reason: "not a peer of this worker's manager".into(),
            });
            crate::channel::close(h.socket());
            return Err(Error::invalid("a peer failed authentication"));
        };
        if !slot.prove() {
            let _ = h.send(&PeerMsg::Refused {
                reason: "this worker serves as many peers as it can".into(),
            });
            crate::channel::close(h.socket());
            return Err(Error::invalid("every slot for peers is taken"));
        }
        h.send(&PeerMsg::Welcome {
            proof: protocol::prove(&key, &context, protocol::ROLE_PEER_SERVE),
        })?;
        // Under TLS, TLS keeps the frames whole.
        let keys = (!h.is_tls()).then(|| protocol::session_keys(&key, &mine, &theirs));
        let (_reader, writer, sock) = h.into_session(keys)?;
        let mut writer = writer.buffered(256 * 1024);
        let path = self.cache.join(file_id.to_string());
        if !self.wait_for(file_id, &path, &key) {
            writer.send(&PeerMsg::Refused {
                reason: format!("this worker does not have file {file_id}"),
            })?;
            writer.flush()?;
            crate::channel::close(&sock);
            return Ok(());
        }
        let stall = std::env::var(STALL_ENV).ok().and_then(|v| {
            let (n, marker) = v.split_once(':')?;
            Some((n.parse::<u64>().ok()?, PathBuf::from(marker)))
        });
        let mut data = 0u64;
        let mut sent = 0u64;
        let outcome = transfer::send(
            1,
            Dest::Cache(file_id),
            &Source::Path(path),
            None,
            &mut |piece: Piece| {
                if let Piece::Data { bytes, .. } = &piece {
                    data += bytes.len() as u64;
                }
                writer.send(&PeerMsg::Xfer(piece))?;
                if let Some((after, marker)) = &stall {
                    if data >= *after {
                        writer.flush()?;
                        let _ = std::fs::write(marker, b"stalled");
                        loop {
                            std::thread::park();
                        }
                    }
                }
                Ok(())
            },
            &mut sent,
        )?;
        writer.flush()?;
        let _ = sock.shutdown(std::net::Shutdown::Write);
        // Until the peer has read everything and closed its end.
        let _ = sock.set_read_timeout(Some(STALL_TIMEOUT));
        let _ = std::io::Read::read(&mut &sock, &mut [0u8; 1]);
        outcome.map(|_| ()).map_err(Error::invalid)
    }

    /// Waits until `path` is in the cache, while the session keyed `key` lasts.
    /// The peer key, waiting until `deadline` for a session to set one: the
    /// manager may send a peer here as its session with this worker begins,
    /// before this side has taken the session's key.
    fn key_by(&self, deadline: Instant) -> Option<Vec<u8>> {
        let mut st = self.state();
        loop {
            let now = Instant::now();
            if st.key.is_some() || now >= deadline {
                return st.key.clone();
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn wait_for(&self, file_id: u64, path: &Path, key: &[u8]) -> bool {
        let until = Instant::now() + ARRIVAL_WAIT;
        let mut st = self.state();
        loop {
            if std::fs::symlink_metadata(path).is_ok() {
                return true;
            }
            let now = Instant::now();
            if now >= until || st.key.as_deref() != Some(key) || st.not_coming.contains(&file_id) {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// What a fetch from a peer brought.
pub struct Fetched {
    /// Where it was built (the caller moves it into the cache).
    pub staged: PathBuf,
    /// Data bytes received.
    pub bytes: u64,
}

/// Fetches file `file_id` from the peer at `host:port`, proving `key`, under TLS
/// with `tls`; builds it under `staging`. With `expected` (the content hash the
/// manager gave for the file), what arrives with another hash is thrown away
/// and the fetch fails: a peer proves it belongs to the manager, not that it
/// serves the manager's bytes.
pub fn fetch(
    tls: Option<&crate::tls::ClientTls>,
    host: &str,
    port: u16,
    file_id: u64,
    expected: Option<&[u8; 32]>,
    key: &[u8],
    staging: &Path,
) -> std::result::Result<Fetched, String> {
    // The lookup, if the peer is named, counts in the handshake's time.
    let sock = crate::dial::connect_within(host, port, Instant::now() + HANDSHAKE_TIMEOUT)
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = sock.set_nodelay(true);
    let conn = tls
        .map(|t| t.connect(host))
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut h = Handshake::start(sock, conn, Instant::now() + HANDSHAKE_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let binding = h.binding().map_err(|e| e.to_string())?;
    let PeerMsg::Hello { challenge: theirs } = h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(|e| e.to_string())?
    else {
        return Err("the peer did not start with Hello".into());
    };
    let mine = protocol::challenge();
    let context = protocol::ProofContext {
        manager: &theirs,
        worker: &mine,
        binding: &binding,
    };
    h.send(&PeerMsg::Ask {
        challenge: mine,
        proof: protocol::prove(key, &context, protocol::ROLE_PEER_FETCH),
        file_id,
    })
    .map_err(|e| e.to_string())?;
    match h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(|e| e.to_string())?
    {
        PeerMsg::Welcome { proof }
            if protocol::verify(key, &context, protocol::ROLE_PEER_SERVE, &proof) => {}
        PeerMsg::Refused { reason } => return Err(format!("the peer refused: {reason}")),
        _ => return Err("the peer failed authentication".into()),
    }
    let keys = (!h.is_tls()).then(|| {
        let (m2w, w2m) = protocol::session_keys(key, &theirs, &mine);
        (w2m, m2w)
    });
    let (mut reader, _writer, sock) = h.into_session(keys).map_err(|e| e.to_string())?;
    let _ = sock.set_read_timeout(Some(STALL_TIMEOUT));
    let mut receiver = transfer::Receiver::new(staging.to_path_buf(), &format!("peer-{file_id}-"));
    loop {
        let msg: PeerMsg = reader.recv().map_err(|e| e.to_string())?;
        let piece = match msg {
            PeerMsg::Xfer(p) => p,
            PeerMsg::Refused { reason } => return Err(format!("the peer refused: {reason}")),
            _ => return Err("the peer sent something else than the file".into()),
        };
        // Only the file asked for, into the cache.
        if let Piece::Begin { dest, .. } = &piece {
            if *dest != Dest::Cache(file_id) {
                return Err("the peer sent another file".into());
            }
        }
        if let Some(arrived) = receiver.piece(piece).map_err(|e| e.to_string())? {
            crate::channel::close(&sock);
            let (staged, hash) = arrived.outcome?;
            if expected.is_some_and(|want| *want != hash) {
                transfer::remove_all(&staged);
                return Err(format!(
                    "the peer sent file {file_id} with content hash {}, not the manager's",
                    protocol::hex_name(&hash)
                ));
            }
            return Ok(Fetched {
                staged,
                bytes: arrived.bytes,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(tls: bool) -> (Arc<PeerServer>, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("vine-peer-unit-{}-{}", std::process::id(), tls));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("cache").join("7"), b"the bytes of file 7").unwrap();
        let s = PeerServer::start(&dir.join("cache"), 0, tls).unwrap();
        s.set_key(Some(b"peer key".to_vec()));
        (s, dir)
    }

    #[test]
    fn under_tls_a_peer_with_the_key_gets_the_file_and_a_plain_one_does_not() {
        let (s, dir) = server(true);
        let client = crate::tls::ClientTls::new(&crate::tls::Verify::Any).unwrap();
        let get = |tls, key: &[u8]| fetch(tls, "127.0.0.1", s.port, 7, None, key, &dir.join("out"));
        let got = get(Some(&client), b"peer key").unwrap();
        assert_eq!(std::fs::read(&got.staged).unwrap(), b"the bytes of file 7");
        assert!(get(None, b"peer key").is_err());
        let wrong = get(Some(&client), b"other");
        assert!(wrong.is_err_and(|e| e.contains("refused")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_does_not_hash_as_the_manager_said_is_thrown_away() {
        let dir = std::env::temp_dir().join(format!("vine-peer-unit-{}-hash", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("cache").join("7"), b"what the peer has").unwrap();
        let s = PeerServer::start(&dir.join("cache"), 0, false).unwrap();
        s.set_key(Some(b"peer key".to_vec()));
        let get = |expected: &[u8]| {
            let hash = crate::transfer::hash_source(&Source::Bytes(expected.to_vec().into()));
            s.fetch(
                "127.0.0.1",
                s.port,
                7,
                Some(&hash.unwrap()),
                &dir.join("out"),
            )
        };
        let why = get(b"what the manager has").err().expect("refused");
        assert!(why.contains("not the manager's"), "{why}");
        assert_eq!(
            std::fs::read_dir(dir.join("out")).unwrap().count(),
            0,
            "nothing of it is left"
        );
        let got = get(b"what the peer has").unwrap();
        assert_eq!(std::fs::read(&got.staged).unwrap(), b"what the peer has");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn in_the_clear_a_tls_client_gets_nothing() {
        let (s, dir) = server(false);
        let client = crate::tls::ClientTls::new(&crate::tls::Verify::Any).unwrap();
        let get = |tls, key: &[u8]| fetch(tls, "127.0.0.1", s.port, 7, None, key, &dir.join("out"));
        assert!(get(Some(&client), b"peer key").is_err());
        let got = get(None, b"peer key").unwrap();
        assert_eq!(std::fs::read(&got.staged).unwrap(), b"the bytes of file 7");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
