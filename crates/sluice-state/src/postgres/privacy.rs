//! Privacy requests on PostgreSQL: requests, each destination's delete status, suppressions and
//! the version counter `serve` polls (migration step 3).

use super::Postgres;
use crate::privacy::RegulationRow;
use crate::{DeleteStatus, DestinationStatus, NewRegulation, RegulationType, Result};
use std::collections::HashSet;

/// Now as SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` writes it (the database's clock).
pub(crate) const NOW_TEXT: &str = r#"to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

impl Postgres {
    pub(crate) fn now_text(&self) -> Result<String> {
        let wrap = self.wrapper();
        Ok(self.client()?.query_one(&format!("select {NOW_TEXT}"), &[]).map_err(wrap)?.get(0))
    }

    pub(crate) fn create_regulation(&self, new: &NewRegulation) -> Result<()> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        let at: String = tx.query_one(&format!("select {NOW_TEXT}"), &[]).map_err(&wrap)?.get(0);
        let id = &new.id;
        tx.execute(
            "insert into regulations (id, type, subject_type, subject_ids, joined_ids, created_by, created_at)
             values ($1, $2, $3, $4, $5, $6, $7)",
            &[
                id,
                &new.kind.as_str(),
                &new.subject_type,
                &serde_json::to_string(&new.subject_ids).expect("strings encode"),
                &serde_json::to_string(&new.joined_ids).expect("strings encode"),
                &new.created_by,
                &at,
            ],
        )
        .map_err(&wrap)?;
        let idents: Vec<&str> = new.subject_ids.iter().chain(&new.joined_ids).map(String::as_str).collect();
        if new.kind.suppresses() {
            tx.execute(
                "insert into suppressions (ident, regulation, created_at)
                 select distinct i, $2, $3 from unnest($1::text[]) as i
                 on conflict (ident) do update set regulation = excluded.regulation",
                &[&idents, id, &at],
            )
            .map_err(&wrap)?;
        } else if new.kind == RegulationType::Unsuppress {
            tx.execute("delete from suppressions where ident = any($1)", &[&idents]).map_err(&wrap)?;
        }
        if new.kind.deletes() {
            for d in &new.destinations {
                let finished = (d.status != DeleteStatus::Running).then(|| at.clone());
                tx.execute(
                    "insert into regulation_destinations (regulation, destination, status, error, finished_at, stream_seq)
                     values ($1, $2, $3, $4, $5, $6)",
                    &[id, &d.id, &d.status.as_str(), &d.error, &finished, &d.stream_seq],
                )
                .map_err(&wrap)?;
            }
        }
        tx.execute(
            "insert into audit_log (at, actor, action, kind, entity, before, after)
             values ($1, $2, 'create', 'privacy_request', $3, null, $4)",
            &[&at, &new.created_by, id, &crate::privacy::audit_after(new).to_string()],
        )
        .map_err(&wrap)?;
        tx.execute(
            "insert into privacy_version (id, version) values (1, 1)
             on conflict (id) do update set version = privacy_version.version + 1",
            &[],
        )
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn regulation_row(&self, id: &str) -> Result<Option<RegulationRow>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt(
                "select id, type, subject_type, subject_ids, joined_ids, created_by, created_at
                 from regulations where id = $1",
                &[&id],
            )
            .map_err(wrap)?;
        Ok(row.map(|r| RegulationRow {
            id: r.get(0),
            kind: r.get(1),
            subject_type: r.get(2),
            subject_ids: r.get(3),
            joined_ids: r.get(4),
            created_by: r.get(5),
            created_at: r.get(6),
        }))
    }

    pub(crate) fn regulation_destinations(&self, id: &str) -> Result<Vec<DestinationStatus>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select destination, status, attempts, error, finished_at, next_at, stream_seq
                 from regulation_destinations where regulation = $1 order by destination",
                &[&id],
            )
            .map_err(wrap)?;
        Ok(rows
            .iter()
            .map(|r| DestinationStatus {
                id: r.get(0),
                status: DeleteStatus::parse(r.get(1)).unwrap_or(DeleteStatus::Failed),
                attempts: r.get(2),
                error: r.get(3),
                finished_at: r.get(4),
                next_at: r.get(5),
                stream_seq: r.get(6),
            })
            .collect())
    }

    pub(crate) fn regulation_ids(&self, limit: usize) -> Result<Vec<String>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select id from regulations order by created_at desc, seq desc limit $1",
                &[&(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(wrap)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) fn suppressed_ids(&self) -> Result<HashSet<String>> {
        let wrap = self.wrapper();
        let rows = self.client()?.query("select ident from suppressions", &[]).map_err(wrap)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) fn suppressed_by(&self, ident: &str) -> Result<Option<String>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt("select regulation from suppressions where ident = $1", &[&ident])
            .map_err(wrap)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) fn privacy_version(&self) -> Result<i64> {
        let wrap = self.wrapper();
        let row = self.client()?.query_opt("select version from privacy_version where id = 1", &[]).map_err(wrap)?;
        Ok(row.map(|r| r.get(0)).unwrap_or(0))
    }

    pub(crate) fn due_deletes(&self, now_ms: i64) -> Result<Vec<(String, String)>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select regulation, destination from regulation_destinations
                 where status = 'RUNNING' and next_at <= $1 order by regulation, destination",
                &[&now_ms],
            )
            .map_err(wrap)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) fn set_delete_status(
        &self,
        regulation: &str,
        destination: &str,
        status: DeleteStatus,
        error: Option<&str>,
        next_at_ms: i64,
    ) -> Result<()> {
        let wrap = self.wrapper();
        let finished = status != DeleteStatus::Running;
        self.client()?
            .execute(
                &format!(
                    "update regulation_destinations set status = $3, error = $4, next_at = $5,
                     attempts = attempts + 1, finished_at = case when $6 then {NOW_TEXT} end
                     where regulation = $1 and destination = $2"
                ),
                &[&regulation, &destination, &status.as_str(), &error, &next_at_ms, &finished],
            )
            .map_err(wrap)?;
        Ok(())
    }
}
