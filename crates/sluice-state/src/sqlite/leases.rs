//! Leases on SQLite: every change in an `IMMEDIATE` transaction (one writer at a time, across
//! connections and processes), times from SQLite's clock in unix milliseconds.

use super::Sqlite;
use crate::lease::Scope;
use crate::{Lease, Result, StateError};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

/// Now, in unix milliseconds.
const NOW: &str = "cast(unixepoch('subsec') * 1000 as integer)";

/// Refuses (`Fenced`) unless `lease` is the model's current, unexpired lease and covers `scope`;
/// run inside the write's transaction.
pub(crate) fn check_fence(
    tx: &rusqlite::Transaction,
    lease: &Lease,
    scope: Scope,
    wrap: &impl Fn(rusqlite::Error) -> StateError,
) -> Result<()> {
    let (cover, id) = scope.condition("?3");
    let sql = format!("select 1 from leases where model = ?1 and token = ?2 and expires_at > {NOW}{cover}");
    let held: Option<i64> = match id {
        Some(id) => tx.query_row(&sql, params![lease.model, lease.token, id], |r| r.get(0)),
        None => tx.query_row(&sql, params![lease.model, lease.token], |r| r.get(0)),
    }
    .optional()
    .map_err(wrap)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StateError::Fenced { model: lease.model.clone(), token: lease.token }),
    }
}

impl Sqlite {
    fn immediate(&self) -> Result<rusqlite::Transaction<'_>> {
        self.wrap(rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate))
    }

    pub(crate) fn acquire_lease(&self, model: &str, worker: &str, ttl: i64) -> Result<Option<Lease>> {
        let wrap = self.wrapper();
        let tx = self.immediate()?;
        tx.execute(
            "insert into leases (model, token, worker, expires_at) values (?1, 0, '', 0) on conflict do nothing",
            [model],
        )
        .map_err(&wrap)?;
        let taken: Option<(i64, i64)> = tx
            .query_row(
                &format!(
                    "update leases set token = token + 1, worker = ?2, expires_at = {NOW} + ?3
                     where model = ?1 and expires_at <= {NOW} returning token, expires_at"
                ),
                params![model, worker, ttl],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(taken.map(|(token, expires_at)| Lease {
            model: model.to_string(),
            worker: worker.to_string(),
            token,
            expires_at,
        }))
    }

    pub(crate) fn renew_lease(&self, lease: &Lease, ttl: i64) -> Result<Option<i64>> {
        let wrap = self.wrapper();
        let tx = self.immediate()?;
        let at = tx
            .query_row(
                &format!(
                    "update leases set expires_at = {NOW} + ?3
                     where model = ?1 and token = ?2 and expires_at > {NOW} returning expires_at"
                ),
                params![lease.model, lease.token, ttl],
                |r| r.get(0),
            )
            .optional()
            .map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(at)
    }

    pub(crate) fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let n = self.wrap(self.conn.execute(
            &format!("update leases set expires_at = 0 where model = ?1 and token = ?2 and expires_at > {NOW}"),
            params![lease.model, lease.token],
        ))?;
        Ok(n > 0)
    }

    pub(crate) fn current_lease(&self, model: &str) -> Result<Option<Lease>> {
        self.wrap(
            self.conn
                .query_row(
                    &format!("select worker, token, expires_at from leases where model = ?1 and expires_at > {NOW}"),
                    [model],
                    |r| {
                        Ok(Lease {
                            model: model.to_string(),
                            worker: r.get(0)?,
                            token: r.get(1)?,
                            expires_at: r.get(2)?,
                        })
                    },
                )
                .optional(),
        )
    }
}
