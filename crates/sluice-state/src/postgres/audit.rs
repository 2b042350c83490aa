//! The audit log on PostgreSQL (a trigger refuses updates, deletes and truncation).

use super::Postgres;
use crate::audit::parse_side;
use crate::{AuditEntry, Result};

impl Postgres {
    pub(crate) fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<()> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        let insert = tx
            .prepare(
                "insert into audit_log (at, actor, action, kind, entity, before, after)
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .map_err(&wrap)?;
        for e in entries {
            tx.execute(
                &insert,
                &[
                    &e.at,
                    &e.actor,
                    &e.action,
                    &e.kind,
                    &e.entity,
                    &e.before.as_ref().map(|v| v.to_string()),
                    &e.after.as_ref().map(|v| v.to_string()),
                ],
            )
            .map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select id, at, actor, action, kind, entity, before, after from audit_log order by id desc limit $1",
                &[&(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(wrap)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                kind: r.get(4),
                entity: r.get(5),
                before: parse_side(r.get(6)),
                after: parse_side(r.get(7)),
            })
            .collect())
    }
}
