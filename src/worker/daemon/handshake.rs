//! The worker's side of the handshake: TLS if asked for, the challenges, and the
//! password proofs both ways.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::options::WorkerOptions;
use super::store::stored_names;
use super::Ended;
use crate::channel::{FrameReader, FrameWriter, Handshake};
use crate::error::{Error, ErrorKind};
use crate::protocol::{self, ToManager, ToWorker};
use crate::resources::Resources;

/// Runs the handshake: TLS if asked for, then registration with the password
/// proofs both ways, bound to the TLS channel when there is one. Returns the
/// session's halves, its socket, how often to send keepalives and the manager run's transfer token.
#[allow(clippy::too_many_arguments)]
pub(super) fn handshake(
    opts: &WorkerOptions,
    stream: TcpStream,
    tls: Option<&crate::tls::ClientTls>,
    resources: Resources,
    store: Option<&Path>,
    end: Option<Instant>,
    status: bool,
    transfer_port: u16,
) -> std::result::Result<(FrameReader, FrameWriter, TcpStream, Duration, [u8; 32]), Ended> {
    use Ended::{BeforeSession, Refused};
    // Long enough for a manager that holds connections until it is configured,
    // but never past the time the worker (or vine_status) was given to find one.
    let bound = Duration::from_secs(30).min(opts.timeout.max(Duration::from_secs(1)));
    let until = Instant::now() + bound;
    let conn = tls
        .map(|t| t.connect(&opts.host))
        .transpose()
        .map_err(Refused)?;
    let mut h = Handshake::start(stream, conn, until).map_err(|e| {
        if e.kind() == ErrorKind::InvalidHandle {
            Refused(e)
        } else {
            BeforeSession(e)
        }
    })?;
    let hello: ToWorker = h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(BeforeSession)?;
    let ToWorker::Hello { challenge, auth } = hello else {
        return Err(BeforeSession(Error::invalid(
            "the manager did not start with Hello",
        )));
    };
    if auth && opts.password.is_none() {
        return Err(Refused(crate::channel::refused(
            "the manager requires a password (--password FILE)",
        )));
    }
    let mine = protocol::challenge();
    let binding = h.binding().map_err(BeforeSession)?;
    let context = protocol::ProofContext {
        manager: &challenge,
        worker: &mine,
        binding: &binding,
    };
    let proof = opts
        .password
        .as_ref()
        .map(|pw| protocol::prove(pw, &context, protocol::ROLE_WORKER));
    let r = resources;
    h.send(&ToManager::Register {
        resources: (r.millicores, r.memory_mb, r.disk_mb, r.gpus),
        functions: crate::registry::names(),
        hostname: hostname(),
        proof,
        challenge: mine,
        stored: store.map(stored_names).unwrap_or_default(),
        features: opts.features.clone(),
        factory_job: opts.factory_job.clone(),
        time_left_s: end.map(|e| e.saturating_duration_since(Instant::now()).as_secs()),
        status,
        transfer_port,
    })
    .map_err(BeforeSession)?;
    let welcome: ToWorker = h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(BeforeSession)?;
    let (proof, keepalive_ms, token) = match welcome {
        ToWorker::Welcome {
            proof,
            keepalive_ms,
            transfer_token,
            ..
        } => (proof, keepalive_ms, transfer_token),
        ToWorker::Refused { reason } => {
            return Err(Refused(crate::channel::refused(&format!(
                "the manager refused this worker: {reason}"
            ))))
        }
        _ => {
            return Err(BeforeSession(Error::invalid(
                "the manager did not welcome this worker",
            )))
        }
    };
    let mut keys = None;
    if let Some(pw) = &opts.password {
        // Never run anything for a manager that cannot prove it knows the password.
        let ok = proof.is_some_and(|p| protocol::verify(pw, &context, protocol::ROLE_MANAGER, &p));
        if !ok {
            return Err(Refused(crate::channel::refused(
                "the manager failed authentication",
            )));
        }
        if !h.is_tls() {
            // The worker sends with the worker-to-manager key.
            let (m2w, w2m) = protocol::session_keys(pw, &challenge, &mine);
            keys = Some((w2m, m2w));
        }
    }
    let (incoming, outgoing, sock) = h.into_session(keys).map_err(BeforeSession)?;
    // Keep alive as often as the manager needs, or more often if asked to.
    let keepalive = opts
        .keepalive
        .min(Duration::from_millis(keepalive_ms.max(1)));
    Ok((incoming, outgoing, sock, keepalive, token))
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
