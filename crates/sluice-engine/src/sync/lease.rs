//! The model's lease for the length of a run (docs/SCALE.md "How the engine uses leases"):
//! taken at the start, renewed every ttl/3 by a heartbeat thread with its own store (the run's
//! store is busy streaming), released at the end. Every write of the run is fenced by it, so a
//! worker that paused past its lease cannot write once another worker took the model over.

use super::SyncError;
use sluice_state::{Lease, StateError, StateStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable setting the lease's time to live, in seconds (default 30).
pub const TTL_ENV: &str = "SLUICE_LEASE_TTL_SECS";
/// The lease's time to live when [`TTL_ENV`] is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The lease's time to live: [`TTL_ENV`] (seconds, fractions allowed), else 30 s.
pub fn ttl() -> Result<Duration, SyncError> {
    let Ok(text) = std::env::var(TTL_ENV) else { return Ok(DEFAULT_TTL) };
    match text.trim().parse::<f64>() {
        Ok(s) if (0.1..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(SyncError::Settings(format!("{TTL_ENV} must be a number of seconds from 0.1 to 86400, not `{text}`"))),
    }
}

/// This worker's name in leases: host and process id.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}

/// A lease held for a run; dropping it stops the heartbeat and releases the lease.
pub(crate) struct Held {
    /// The lease (its token fences the run's writes).
    pub(crate) lease: Lease,
    /// Set by the heartbeat when a renewal was refused: the run must stop sending.
    pub(crate) lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

/// The holder's name and expiry, for the message of a busy model.
fn holder(store: &StateStore, model: &str) -> (String, String) {
    match store.current_lease(model) {
        Ok(Some(l)) => {
            let until = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(l.expires_at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| l.expires_at.to_string());
            (l.worker, until)
        }
        _ => ("another worker".into(), "it is released or expires".into()),
    }
}

/// Takes the lease of `model` and starts its heartbeat. `local_lock_held`: this process holds
/// the model's local lock file; with SQLite state (one machine) that proves the holder of a
/// lease still in the store died, so its lease is released and taken over at once.
pub(crate) fn take(store: &StateStore, model: &str, local_lock_held: bool) -> Result<Held, SyncError> {
    let ttl = ttl()?;
    let worker = worker_id();
    let mut lease = store.acquire_lease(model, &worker, ttl)?;
    // held by this very process: its previous run of the model has recorded its end and is
    // releasing the lease right now (a run started through the API or the scheduler just after)
    let t = Instant::now();
    // also when nobody holds it validly (expired or released) but its row is locked by a worker
    // paused inside a write: the database ends that transaction within 10 s
    while lease.is_none()
        && t.elapsed() < Duration::from_secs(15)
        && store.current_lease(model)?.is_none_or(|l| l.worker == worker && t.elapsed() < Duration::from_secs(2))
    {
        std::thread::sleep(Duration::from_millis(10));
        lease = store.acquire_lease(model, &worker, ttl)?;
    }
    if lease.is_none() && local_lock_held && !store.is_postgres() {
        if let Some(stale) = store.current_lease(model)? {
            tracing::warn!(model, worker = %stale.worker, "the lease of a sync that died is released");
            store.release_lease(&stale)?;
        }
        lease = store.acquire_lease(model, &worker, ttl)?;
    }
    let Some(lease) = lease else {
        let (worker, until) = holder(store, model);
        return Err(SyncError::Leased { model: model.to_string(), worker, until });
    };
    let beat = store.reopen();
    let (stop, lost) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let heartbeat = match beat {
        Ok(other) => {
            let (l, st, lo) = (lease.clone(), stop.clone(), lost.clone());
            Some(
                std::thread::Builder::new()
                    .name("sluice-lease".into())
                    .spawn(move || heartbeat(other, l, ttl, &st, &lo))
                    .map_err(|source| SyncError::Lock { path: "lease heartbeat thread".into(), source })?,
            )
        }
        Err(e) => {
            let _ = store.release_lease(&lease);
            return Err(e.into());
        }
    };
    Ok(Held { lease, lost, stop, heartbeat })
}

/// Renews `lease` every ttl/3 until `stop`, then releases it; a refused renewal sets `lost`
/// (and nothing is released: the lease is another worker's now).
fn heartbeat(store: StateStore, mut lease: Lease, ttl: Duration, stop: &AtomicBool, lost: &AtomicBool) {
    let every = ttl / 3;
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20).min(every));
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + every;
        match store.renew_lease(&lease, ttl) {
            Ok(l) => lease = l,
            Err(StateError::Fenced { .. }) => {
                tracing::error!(model = %lease.model, token = lease.token,
                    "this worker's lease was lost (expired or taken over): the run stops");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            // the state database unreachable for a moment: retried; if the lease runs out
            // meanwhile, the run's next write is refused
            Err(e) => tracing::warn!(model = %lease.model, error = %e, "lease renewal failed; retrying"),
        }
    }
    if let Err(e) = store.release_lease(&lease) {
        tracing::warn!(model = %lease.model, error = %e, "lease not released; it expires by itself");
    }
}
