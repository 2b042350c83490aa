//! Leases on PostgreSQL: acquisition takes the model's row `FOR UPDATE SKIP LOCKED` (never
//! waits on another worker), a fenced write holds it `FOR SHARE` until it commits; times from
//! the server's clock (`clock_timestamp()`), in unix milliseconds.

use super::Postgres;
use crate::lease::Scope;
use crate::{Lease, Result, StateError};

/// Now, in unix milliseconds (the wall clock, not the transaction's start).
const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

/// Refuses (`Fenced`) unless `lease` is the model's current, unexpired lease and covers `scope`,
/// and keeps the row share-locked until the write's transaction ends (a takeover waits for it).
pub(crate) fn check_fence(
    tx: &mut postgres::Transaction,
    lease: &Lease,
    scope: Scope,
    wrap: &impl Fn(postgres::Error) -> StateError,
) -> Result<()> {
    let (cover, id) = scope.condition("$3");
    let sql = format!("select 1 from leases where model = $1 and token = $2 and expires_at > {NOW}{cover} for share");
    let held = match id {
        Some(id) => tx.query_opt(&sql, &[&lease.model, &lease.token, &id]),
        None => tx.query_opt(&sql, &[&lease.model, &lease.token]),
    }
    .map_err(wrap)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StateError::Fenced { model: lease.model.clone(), token: lease.token }),
    }
}

impl Postgres {
    pub(crate) fn acquire_lease(&self, model: &str, worker: &str, ttl: i64) -> Result<Option<Lease>> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        tx.execute(
            "insert into leases (model, token, worker, expires_at) values ($1, 0, '', 0) on conflict do nothing",
            &[&model],
        )
        .map_err(&wrap)?;
        // a row another worker is taking (or writing under) is skipped, not waited for
        let free = tx
            .query_opt(
                &format!("select token from leases where model = $1 and expires_at <= {NOW} for update skip locked"),
                &[&model],
            )
            .map_err(&wrap)?;
        if free.is_none() {
            tx.rollback().map_err(&wrap)?;
            return Ok(None);
        }
        let row = tx
            .query_one(
                &format!(
                    "update leases set token = token + 1, worker = $2, expires_at = {NOW} + $3
                     where model = $1 returning token, expires_at"
                ),
                &[&model, &worker, &ttl],
            )
            .map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(Some(Lease {
            model: model.to_string(),
            worker: worker.to_string(),
            token: row.get(0),
            expires_at: row.get(1),
        }))
    }

    pub(crate) fn renew_lease(&self, lease: &Lease, ttl: i64) -> Result<Option<i64>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "update leases set expires_at = {NOW} + $3
                     where model = $1 and token = $2 and expires_at > {NOW} returning expires_at"
                ),
                &[&lease.model, &lease.token, &ttl],
            )
            .map_err(wrap)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let wrap = self.wrapper();
        let n = self
            .client()?
            .execute(
                &format!("update leases set expires_at = 0 where model = $1 and token = $2 and expires_at > {NOW}"),
                &[&lease.model, &lease.token],
            )
            .map_err(wrap)?;
        Ok(n > 0)
    }

    pub(crate) fn current_lease(&self, model: &str) -> Result<Option<Lease>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt(
                &format!("select worker, token, expires_at from leases where model = $1 and expires_at > {NOW}"),
                &[&model],
            )
            .map_err(wrap)?;
        Ok(row.map(|r| Lease { model: model.to_string(), worker: r.get(0), token: r.get(1), expires_at: r.get(2) }))
    }
}
