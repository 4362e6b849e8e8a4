//! The worker's side of the handshake: TLS if asked for, the challenges, and the
//! password proofs both ways.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::options::WorkerOptions;
use super::store::stored_names;
use super::Ended;
use crate::channel::{Deadline, FrameReader, FrameWriter, Handshake};
use crate::error::{Error, ErrorKind};
use crate::protocol::{self, FrameMac, ToManager, ToWorker};
use crate::resources::Resources;

/// The largest answer to a status query accepted, well under
/// [`protocol::MAX_FRAME`]: the manager lists at most 64 tasks per worker, so
/// its state takes a few kilobytes per worker, and this holds tens of
/// thousands of them. A peer that announces more is refused on the frame's
/// header, before its payload is read or allocated.
const MAX_STATUS_FRAME: u32 = 64 << 20;

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
    transfer_port: u16,
) -> std::result::Result<(FrameReader, FrameWriter, TcpStream, Duration, [u8; 32]), Ended> {
    // Long enough for a manager that holds connections until it is configured,
    // but never past the time the worker was given to find one.
    let bound = Duration::from_secs(30).min(opts.timeout.max(Duration::from_secs(1)));
    let until = Instant::now() + bound;
    let w = register(
        opts,
        stream,
        tls,
        resources,
        store,
        end,
        false,
        transfer_port,
        until,
    )?;
    let (incoming, outgoing, sock) = w.h.into_session(w.keys).map_err(Ended::BeforeSession)?;
    // Keep alive as often as the manager needs, or more often if asked to.
    let keepalive = opts
        .keepalive
        .min(Duration::from_millis(w.keepalive_ms.max(1)));
    Ok((incoming, outgoing, sock, keepalive, w.token))
}

/// Asks the manager for its state, as `vine_status` does: the registration of
/// a worker, marked as a status query, then the manager's one answer. Every
/// read and write, the answer's included, ends by `until`, however slowly the
/// peer sends; an answer announced longer than [`MAX_STATUS_FRAME`] is refused
/// before it is read.
pub(super) fn query_status(
    opts: &WorkerOptions,
    stream: TcpStream,
    tls: Option<&crate::tls::ClientTls>,
    until: Instant,
) -> std::result::Result<String, Ended> {
    let w = register(
        opts,
        stream,
        tls,
        Resources::default(),
        None,
        None,
        true,
        0,
        until,
    )?;
    let mut h = w.h;
    let answer: ToWorker = match w.keys {
        // Without TLS, with a password: the answer carries its tag under the
        // session's manager-to-worker key, as every frame after Welcome.
        Some((_, mut theirs)) => protocol::read_frame_within(
            &mut Deadline::new(h.socket(), until),
            MAX_STATUS_FRAME,
            Some(&mut theirs),
        ),
        // Under TLS (which authenticates it), or without a password.
        None => h.recv(MAX_STATUS_FRAME),
    }
    .map_err(Ended::Broken)?;
    match answer {
        ToWorker::Status(json) => Ok(json),
        _ => Err(Ended::Broken(Error::invalid(
            "the manager did not answer with its state",
        ))),
    }
}

/// A connection the manager welcomed, still under the handshake's deadline.
struct Welcomed {
    h: Handshake,
    /// The session's frame keys (sending, receiving), when its frames are
    /// authenticated.
    keys: Option<(FrameMac, FrameMac)>,
    keepalive_ms: u64,
    token: [u8; 32],
}

/// TLS if asked for, then registration with the password proofs both ways,
/// everything done by `until`.
#[allow(clippy::too_many_arguments)]
fn register(
    opts: &WorkerOptions,
    stream: TcpStream,
    tls: Option<&crate::tls::ClientTls>,
    resources: Resources,
    store: Option<&Path>,
    end: Option<Instant>,
    status: bool,
    transfer_port: u16,
    until: Instant,
) -> std::result::Result<Welcomed, Ended> {
    use Ended::{BeforeSession, Refused};
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
    let hello: ToWorker = h.recv(protocol::MAX_HANDSHAKE_FRAME).map_err(|e| {
        if tls.is_none() && e.kind() == ErrorKind::Io {
            // A manager that uses TLS waits for the worker to begin it, and
            // says nothing to a worker that does not, until it gives up on it
            // (or the worker does).
            BeforeSession(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the manager sent no greeting ({}); a manager made by vine_ssl_create \
                     waits for the worker to start TLS: if it is one, start this worker \
                     with --ssl",
                    e.message()
                ),
            ))
        } else {
            BeforeSession(e)
        }
    })?;
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
    h.send(&ToManager::Register {
        proof,
        challenge: mine,
        status,
    })
    .map_err(BeforeSession)?;
    let proved: ToWorker = h
        .recv(protocol::MAX_HANDSHAKE_FRAME)
        .map_err(BeforeSession)?;
    let proof = match proved {
        ToWorker::Proved { proof } => proof,
        ToWorker::Refused { reason } => return Err(refused_by_manager(&reason, status)),
        _ => {
            return Err(BeforeSession(Error::invalid(
                "the manager did not answer the worker's proof",
            )))
        }
    };
    let mut keys = None;
    if let Some(pw) = &opts.password {
        // Never run anything for a manager that cannot prove it knows the
        // password, nor tell it anything about this worker.
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
    if status {
        // A status query is answered at once, in the session.
        return Ok(Welcomed {
            h,
            keys,
            keepalive_ms: 0,
            token: [0; 32],
        });
    }
    let r = resources;
    let mut details = protocol::WorkerDetails {
        resources: (r.millicores, r.memory_mb, r.disk_mb, r.gpus),
        functions: crate::registry::names(),
        hostname: hostname(),
        stored: store.map(stored_names).unwrap_or_default(),
        features: opts.features.clone(),
        factory_job: opts.factory_job.clone(),
        time_left_s: end.map(|e| e.saturating_duration_since(Instant::now()).as_secs()),
        transfer_port,
    };
    fit_details(&mut details).map_err(Ended::Refused)?;
    let (mut send_mac, mut recv_mac) = match keys {
        Some((s, r)) => (Some(s), Some(r)),
        None => (None, None),
    };
    h.send_sealed(&ToManager::Details(Box::new(details)), send_mac.as_mut())
        .map_err(BeforeSession)?;
    let welcome: ToWorker = h
        .recv_sealed(protocol::MAX_HANDSHAKE_FRAME, recv_mac.as_mut())
        .map_err(BeforeSession)?;
    let (keepalive_ms, token) = match welcome {
        ToWorker::Welcome {
            keepalive_ms,
            transfer_token,
            ..
        } => (keepalive_ms, transfer_token),
        ToWorker::Refused { reason } => return Err(refused_by_manager(&reason, false)),
        _ => {
            return Err(BeforeSession(Error::invalid(
                "the manager did not welcome this worker",
            )))
        }
    };
    Ok(Welcomed {
        h,
        keys: send_mac.zip(recv_mac),
        keepalive_ms,
        token,
    })
}

/// The size of `details` as sent, in bytes.
fn details_len(details: &protocol::WorkerDetails) -> u64 {
    bincode::serialized_size(&ToManager::Details(Box::new(details.clone()))).unwrap_or(u64::MAX)
}

/// Fits `details` in a handshake frame ([`protocol::MAX_HANDSHAKE_FRAME`]): a
/// store too full to list whole is listed in part (the manager sends again
/// what it does not know is there, which changes nothing in the store); an
/// error, which trying again would not mend, if the function names and
/// features alone do not fit.
fn fit_details(details: &mut protocol::WorkerDetails) -> Result<(), Error> {
    let limit = u64::from(protocol::MAX_HANDSHAKE_FRAME);
    let len = details_len(details);
    if len <= limit {
        return Ok(());
    }
    // Each name costs the same (content names have one length).
    let per_name = details
        .stored
        .first()
        .map_or(1, |n| bincode::serialized_size(n).unwrap_or(1).max(1));
    let over = (len - limit).div_ceil(per_name);
    let keep = details.stored.len().saturating_sub(over as usize);
    details.stored.truncate(keep);
    let len = details_len(details);
    if len <= limit {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "this worker's function names and features take {len} bytes to tell the manager; \
         at most {limit} fit (register fewer functions, or shorter names)"
    )))
}

/// The manager refused this worker (or status query, `status`) for
/// `reason`: for good.
fn refused_by_manager(reason: &str, status: bool) -> Ended {
    let who = if status { "status query" } else { "worker" };
    Ended::Refused(crate::channel::refused(&format!(
        "the manager refused this {who}: {reason}"
    )))
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_too_full_is_listed_in_part_and_too_many_function_names_are_an_error() {
        let limit = u64::from(protocol::MAX_HANDSHAKE_FRAME);
        let mut d = protocol::WorkerDetails {
            stored: (0..20_000u32).map(|i| format!("{i:064x}")).collect(),
            functions: vec![b"f".to_vec()],
            ..Default::default()
        };
        fit_details(&mut d).unwrap();
        assert!(details_len(&d) <= limit);
        assert!(
            d.stored.len() > 10_000,
            "only what does not fit is left out"
        );

        let mut d = protocol::WorkerDetails {
            functions: (0..20_000u32)
                .map(|i| format!("{i:064x}").into_bytes())
                .collect(),
            stored: vec!["0".repeat(64)],
            ..Default::default()
        };
        let e = fit_details(&mut d).unwrap_err();
        assert!(e.to_string().contains("function names"), "{e}");
    }
}
