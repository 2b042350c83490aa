//! Privacy requests on SQLite: requests, each destination's delete status, suppressions and the
//! version counter `serve` polls.

use super::Sqlite;
use crate::privacy::RegulationRow;
use crate::{DeleteStatus, DestinationStatus, NewRegulation, RegulationType, Result};
use rusqlite::{params, OptionalExtension};
use std::collections::HashSet;

/// Now, RFC 3339 with milliseconds in UTC (SQLite's clock; the state crate has no time library).
fn now(conn: &rusqlite::Connection) -> rusqlite::Result<String> {
    conn.query_row("select strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0))
}

impl Sqlite {
    pub(crate) fn now_text(&self) -> Result<String> {
        self.wrap(now(&self.conn))
    }

    pub(crate) fn create_regulation(&mut self, new: &NewRegulation) -> Result<()> {
        let wrap = self.wrapper();
        let at = self.now_text()?;
        let id = &new.id;
        let tx = self.conn.transaction().map_err(&wrap)?;
        tx.execute(
            "insert into regulations (id, type, subject_type, subject_ids, joined_ids, created_by, created_at)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                new.kind.as_str(),
                new.subject_type,
                serde_json::to_string(&new.subject_ids).expect("strings encode"),
                serde_json::to_string(&new.joined_ids).expect("strings encode"),
                new.created_by,
                at
            ],
        )
        .map_err(&wrap)?;
        let idents = new.subject_ids.iter().chain(&new.joined_ids);
        if new.kind.suppresses() {
            for ident in idents {
                tx.execute(
                    "insert into suppressions (ident, regulation, created_at) values (?1, ?2, ?3)
                     on conflict (ident) do update set regulation = excluded.regulation",
                    params![ident, id, at],
                )
                .map_err(&wrap)?;
            }
        } else if new.kind == RegulationType::Unsuppress {
            for ident in idents {
                tx.execute("delete from suppressions where ident = ?1", [ident]).map_err(&wrap)?;
            }
        }
        if new.kind.deletes() {
            for d in &new.destinations {
                let finished = (d.status != DeleteStatus::Running).then(|| at.clone());
                tx.execute(
                    "insert into regulation_destinations (regulation, destination, status, error, finished_at, stream_seq)
                     values (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, d.id, d.status.as_str(), d.error, finished, d.stream_seq],
                )
                .map_err(&wrap)?;
            }
        }
        tx.execute(
            "insert into audit_log (at, actor, action, kind, entity, before, after) values (?1, ?2, 'create', 'privacy_request', ?3, null, ?4)",
            params![at, new.created_by, id, crate::privacy::audit_after(new).to_string()],
        )
        .map_err(&wrap)?;
        tx.execute(
            "insert into privacy_version (id, version) values (1, 1)
             on conflict (id) do update set version = version + 1",
            [],
        )
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn regulation_row(&self, id: &str) -> Result<Option<RegulationRow>> {
        self.wrap(
            self.conn
                .query_row(
                    "select id, type, subject_type, subject_ids, joined_ids, created_by, created_at
                     from regulations where id = ?1",
                    [id],
                    |r| {
                        Ok(RegulationRow {
                            id: r.get(0)?,
                            kind: r.get(1)?,
                            subject_type: r.get(2)?,
                            subject_ids: r.get(3)?,
                            joined_ids: r.get(4)?,
                            created_by: r.get(5)?,
                            created_at: r.get(6)?,
                        })
                    },
                )
                .optional(),
        )
    }

    pub(crate) fn regulation_destinations(&self, id: &str) -> Result<Vec<DestinationStatus>> {
        let mut stmt = self.wrap(self.conn.prepare_cached(
            "select destination, status, attempts, error, finished_at, next_at, stream_seq from regulation_destinations
             where regulation = ?1 order by destination",
        ))?;
        let rows = self.wrap(stmt.query_map([id], |r| {
            Ok(DestinationStatus {
                id: r.get(0)?,
                status: DeleteStatus::parse(&r.get::<_, String>(1)?).unwrap_or(DeleteStatus::Failed),
                attempts: r.get(2)?,
                error: r.get(3)?,
                finished_at: r.get(4)?,
                next_at: r.get(5)?,
                stream_seq: r.get(6)?,
            })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn regulation_ids(&self, limit: usize) -> Result<Vec<String>> {
        let mut stmt =
            self.wrap(self.conn.prepare("select id from regulations order by created_at desc, rowid desc limit ?1"))?;
        let rows = self.wrap(stmt.query_map([limit.min(i64::MAX as usize) as i64], |r| r.get(0)))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn suppressed_ids(&self) -> Result<HashSet<String>> {
        let mut stmt = self.wrap(self.conn.prepare("select ident from suppressions"))?;
        let rows = self.wrap(stmt.query_map([], |r| r.get(0)))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn suppressed_by(&self, ident: &str) -> Result<Option<String>> {
        self.wrap(
            self.conn
                .query_row("select regulation from suppressions where ident = ?1", [ident], |r| r.get(0))
                .optional(),
        )
    }

    pub(crate) fn privacy_version(&self) -> Result<i64> {
        Ok(self
            .wrap(
                self.conn
                    .prepare_cached("select version from privacy_version where id = 1")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)).optional()),
            )?
            .unwrap_or(0))
    }

    pub(crate) fn due_deletes(&self, now_ms: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.wrap(self.conn.prepare_cached(
            "select regulation, destination from regulation_destinations
             where status = 'RUNNING' and next_at <= ?1 order by regulation, destination",
        ))?;
        let rows = self.wrap(stmt.query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?))))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn set_delete_status(
        &self,
        regulation: &str,
        destination: &str,
        status: DeleteStatus,
        error: Option<&str>,
        next_at_ms: i64,
    ) -> Result<()> {
        let finished = if status == DeleteStatus::Running { None } else { Some(self.now_text()?) };
        self.wrap(self.conn.execute(
            "update regulation_destinations set status = ?3, error = ?4, next_at = ?5,
             attempts = attempts + 1, finished_at = ?6 where regulation = ?1 and destination = ?2",
            params![regulation, destination, status.as_str(), error, next_at_ms, finished],
        ))?;
        Ok(())
    }
}
