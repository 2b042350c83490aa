//! Leases of Reverse ETL model syncs, so several workers sharing one state never run the same
//! model at once, and a worker that paused past its lease cannot write.
//!
//! A lease is a row per model: who holds it, until when (the database's clock, so workers'
//! clocks never matter) and a fencing token that grows by one at every acquisition. Writes made
//! under a lease (`*_fenced`) check, in their own transaction, that their token is still the
//! model's current, unexpired one; otherwise they are refused with [`StateError::Fenced`] and
//! store nothing. On PostgreSQL, acquisition takes the row `FOR UPDATE SKIP LOCKED` (a worker
//! never waits for another's acquisition or fenced write) and a fenced write holds it `FOR
//! SHARE` until it commits (a takeover waits for the write, or the write sees the takeover); on
//! SQLite both run in `IMMEDIATE` transactions (one writer at a time).

use crate::{on, Result, StateError, StateStore};
use std::time::Duration;

/// A held lease of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The model synced under it.
    pub model: String,
    /// Who holds it (a worker's name, for operators).
    pub worker: String,
    /// The fencing token: strictly greater than every earlier lease of the model.
    pub token: i64,
    /// When it expires unless renewed (unix milliseconds, the database's clock).
    pub expires_at: i64,
}

/// What a fenced write touches; the lease must cover it (a lease of one model never writes
/// another model's mappings or runs).
#[derive(Clone, Copy)]
pub(crate) enum Scope {
    /// The lease's model itself (a run starts).
    Model,
    /// A mapping (its checkpoint, snapshot generation).
    Mapping(i64),
    /// A run.
    Run(i64),
}

impl Scope {
    /// The condition on the lease row `leases` (with the id as parameter `param`), and the id.
    pub(crate) fn condition(self, param: &str) -> (String, Option<i64>) {
        match self {
            Scope::Model => (String::new(), None),
            Scope::Mapping(id) => {
                (format!(" and exists (select 1 from mappings where id = {param} and model = leases.model)"), Some(id))
            }
            Scope::Run(id) => {
                (format!(" and exists (select 1 from runs where id = {param} and model = leases.model)"), Some(id))
            }
        }
    }
}

/// The longest lease (a day): a worker that needs longer renews.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The ttl in milliseconds, or an error naming it.
pub(crate) fn ttl_ms(ttl: Duration) -> Result<i64> {
    if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
        return Err(StateError::Settings(format!("lease ttl must be between 1 ms and 24 h, it is {ttl:?}")));
    }
    Ok(ttl.as_millis() as i64)
}

impl StateStore {
    /// Takes the lease of `model` for `worker` for `ttl` when nobody holds it (never held,
    /// released or expired); `None` when another worker holds it (or is taking it right now).
    /// Its token is greater than every earlier lease's of the model.
    pub fn acquire_lease(&self, model: &str, worker: &str, ttl: Duration) -> Result<Option<Lease>> {
        let ttl = ttl_ms(ttl)?;
        on!(self, b => b.acquire_lease(model, worker, ttl))
    }

    /// Extends a held lease to `ttl` from now; [`StateError::Fenced`] when it expired, was
    /// released or was taken over (the worker must stop: it no longer owns the model).
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let ttl = ttl_ms(ttl)?;
        let expires_at = on!(self, b => b.renew_lease(lease, ttl))?
            .ok_or_else(|| StateError::Fenced { model: lease.model.clone(), token: lease.token })?;
        Ok(Lease { expires_at, ..lease.clone() })
    }

    /// Gives a lease up (another worker may take the model at once); false when it was no longer
    /// held. The token stays: the next lease's is greater.
    pub fn release_lease(&self, lease: &Lease) -> Result<bool> {
        on!(self, b => b.release_lease(lease))
    }

    /// The model's current lease, if one is held and unexpired.
    pub fn current_lease(&self, model: &str) -> Result<Option<Lease>> {
        on!(self, b => b.current_lease(model))
    }
}
