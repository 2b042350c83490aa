//! Runs and usage on SQLite.

use super::Sqlite;
use crate::lease::Scope;
use crate::runs::INTERRUPTED;
use crate::{parse_json, Lease, Result, RunRow, RunStatus, UsageRow};
use rusqlite::{params, TransactionBehavior};

impl Sqlite {
    pub(crate) fn start_run(&self, model: &str, started_at: &str, fence: Option<&Lease>) -> Result<i64> {
        let wrap = self.wrapper();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&tx, lease, Scope::Model, &wrap)?;
        }
        tx.execute(
            "update runs set status = 'interrupted', finished_at = ?2,
                 report = json_object('run_id', id, 'model', model, 'status', 'interrupted', 'started_at', started_at,
                                      'finished_at', ?2, 'error', ?3)
             where model = ?1 and status = 'running'",
            params![model, started_at, INTERRUPTED],
        )
        .map_err(&wrap)?;
        tx.execute(
            "insert into runs (model, started_at, status) values (?1, ?2, 'running')",
            params![model, started_at],
        )
        .map_err(&wrap)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    pub(crate) fn finish_run(
        &self,
        id: i64,
        finished_at: &str,
        status: RunStatus,
        report: &serde_json::Value,
        fence: Option<&Lease>,
    ) -> Result<()> {
        let wrap = self.wrapper();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&tx, lease, Scope::Run(id), &wrap)?;
        }
        tx.execute(
            "update runs set finished_at = ?2, status = ?3, report = ?4 where id = ?1",
            params![id, finished_at, status.as_str(), report.to_string()],
        )
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn runs(&self, model: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        let mut stmt = self.wrap(self.conn.prepare(
            "select id, model, started_at, finished_at, status, report from runs
             where ?1 is null or model = ?1 order by id desc limit ?2",
        ))?;
        let rows = self.wrap(stmt.query_map(params![model, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, String>(4)?, r.get::<_, Option<String>>(5)?))
        }))?;
        let mut out = Vec::new();
        for r in rows {
            let (id, model, started_at, finished_at, status, report) = self.wrap(r)?;
            let report = report.as_deref().map(parse_json).transpose()?;
            out.push(RunRow { id, model, started_at, finished_at, status: RunStatus::parse(&status), report });
        }
        Ok(out)
    }

    pub(crate) fn run(&self, id: i64) -> Result<Option<RunRow>> {
        use rusqlite::OptionalExtension;
        let row: Option<(String, String, Option<String>, String)> = self.wrap(
            self.conn
                .query_row("select model, started_at, finished_at, status from runs where id = ?1", [id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional(),
        )?;
        Ok(row.map(|(model, started_at, finished_at, status)| RunRow {
            id,
            model,
            started_at,
            finished_at,
            status: RunStatus::parse(&status),
            report: None,
        }))
    }

    pub(crate) fn add_usage(&self, month: &str, destination: &str, records: i64) -> Result<()> {
        self.wrap(self.conn.execute(
            "insert into usage (month, destination, records) values (?1, ?2, ?3)
             on conflict (month, destination) do update set records = records + excluded.records",
            params![month, destination, records],
        ))?;
        Ok(())
    }

    pub(crate) fn usage(&self) -> Result<Vec<UsageRow>> {
        let mut stmt = self.wrap(
            self.conn.prepare("select month, destination, records from usage order by month desc, destination"),
        )?;
        let rows = self.wrap(
            stmt.query_map([], |r| Ok(UsageRow { month: r.get(0)?, destination: r.get(1)?, records: r.get(2)? })),
        )?;
        rows.map(|r| self.wrap(r)).collect()
    }
}
