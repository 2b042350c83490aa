//! The audit log on SQLite (triggers in the schema refuse updates and deletes).

use super::Sqlite;
use crate::audit::parse_side;
use crate::{AuditEntry, Result};
use rusqlite::params;

impl Sqlite {
    pub(crate) fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<()> {
        let wrap = self.wrapper();
        let tx = self.conn.transaction().map_err(&wrap)?;
        for e in entries {
            tx.execute(
                "insert into audit_log (at, actor, action, kind, entity, before, after) values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.at,
                    e.actor,
                    e.action,
                    e.kind,
                    e.entity,
                    e.before.as_ref().map(|v| v.to_string()),
                    e.after.as_ref().map(|v| v.to_string())
                ],
            )
            .map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt = self.wrap(self.conn.prepare(
            "select id, at, actor, action, kind, entity, before, after from audit_log order by id desc limit ?1",
        ))?;
        let rows = self.wrap(stmt.query_map([limit as i64], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                kind: r.get(4)?,
                entity: r.get(5)?,
                before: parse_side(r.get(6)?),
                after: parse_side(r.get(7)?),
            })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }
}
