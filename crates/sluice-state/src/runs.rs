//! Run history and usage metering (R11).

use crate::{Result, StateError, StateStore};
use rusqlite::params;

/// How a sync run ended (or that it has not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still going (or the process died: the next run of the model marks it `interrupted`).
    #[default]
    Running,
    /// Every mapping delivered everything it sent.
    Ok,
    /// Some mapping delivered part of what it sent.
    Partial,
    /// Some mapping delivered nothing of what it sent.
    Failed,
    /// The run could not complete (the SQL failed, the warehouse went away).
    Error,
    /// The process stopped before the run finished.
    Interrupted,
}

impl RunStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Error => "error",
            Self::Interrupted => "interrupted",
        }
    }

    /// From its stored name (an unknown name reads as `error`, never as success).
    pub fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "ok" => Self::Ok,
            "partial" => Self::Partial,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            _ => Self::Error,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored sync run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run number.
    pub id: i64,
    /// Model synced.
    pub model: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339), if finished.
    pub finished_at: Option<String>,
    /// How it ended.
    pub status: RunStatus,
    /// The delivery overview (JSON).
    pub report: Option<serde_json::Value>,
}

/// Records synced in a month to a destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    /// `YYYY-MM`.
    pub month: String,
    /// Destination id.
    pub destination: String,
    /// Records delivered or failed (consent-withheld records never count).
    pub records: i64,
}

impl StateStore {
    /// Records the start of a run and returns its id. A run of the model still marked running
    /// was cut short (the process died): it is marked `interrupted`.
    pub fn start_run(&self, model: &str, started_at: &str) -> Result<i64> {
        self.wrap(self.conn.execute(
            "update runs set status = 'interrupted', finished_at = ?2,
                 report = json_object('run_id', id, 'model', model, 'status', 'interrupted', 'started_at', started_at,
                                      'finished_at', ?2, 'error', 'the process stopped before the run finished')
             where model = ?1 and status = 'running'",
            params![model, started_at],
        ))?;
        self.wrap(self.conn.execute(
            "insert into runs (model, started_at, status) values (?1, ?2, 'running')",
            params![model, started_at],
        ))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the end of a run with its overview.
    pub fn finish_run(&self, id: i64, finished_at: &str, status: RunStatus, report: &serde_json::Value) -> Result<()> {
        self.wrap(self.conn.execute(
            "update runs set finished_at = ?2, status = ?3, report = ?4 where id = ?1",
            params![id, finished_at, status.as_str(), report.to_string()],
        ))?;
        Ok(())
    }

    /// Runs, newest first, optionally of one model.
    pub fn runs(&self, model: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
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
            let status = RunStatus::parse(&status);
            let report =
                report.map(|t| serde_json::from_str(&t).map_err(|e| StateError::Corrupt(e.to_string()))).transpose()?;
            out.push(RunRow { id, model, started_at, finished_at, status, report });
        }
        Ok(out)
    }

    /// One run by id.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>> {
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

    /// Adds metered records for a destination in a month.
    pub fn add_usage(&self, month: &str, destination: &str, records: i64) -> Result<()> {
        if records == 0 {
            return Ok(());
        }
        self.wrap(self.conn.execute(
            "insert into usage (month, destination, records) values (?1, ?2, ?3)
             on conflict (month, destination) do update set records = records + excluded.records",
            params![month, destination, records],
        ))?;
        Ok(())
    }

    /// Usage rows, newest month first.
    pub fn usage(&self) -> Result<Vec<UsageRow>> {
        let mut stmt = self.wrap(
            self.conn.prepare("select month, destination, records from usage order by month desc, destination"),
        )?;
        let rows = self.wrap(
            stmt.query_map([], |r| Ok(UsageRow { month: r.get(0)?, destination: r.get(1)?, records: r.get(2)? })),
        )?;
        rows.map(|r| self.wrap(r)).collect()
    }
}
