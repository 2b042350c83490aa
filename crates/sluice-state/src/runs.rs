//! Run history and usage metering (R11).

use crate::{on, Lease, Result, StateStore};

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
    /// Records the start of a run and returns its id (ids grow with every run). A run of the
    /// model still marked running was cut short (the process died): it is marked `interrupted`.
    pub fn start_run(&self, model: &str, started_at: &str) -> Result<i64> {
        on!(self, b => b.start_run(model, started_at, None))
    }

    /// [`start_run`](Self::start_run) of the lease's model under the lease (refused with
    /// [`StateError::Fenced`](crate::StateError::Fenced), storing nothing, unless it is still held).
    pub fn start_run_fenced(&self, lease: &Lease, started_at: &str) -> Result<i64> {
        on!(self, b => b.start_run(&lease.model, started_at, Some(lease)))
    }

    /// Records the end of a run with its overview.
    pub fn finish_run(&self, id: i64, finished_at: &str, status: RunStatus, report: &serde_json::Value) -> Result<()> {
        on!(self, b => b.finish_run(id, finished_at, status, report, None))
    }

    /// [`finish_run`](Self::finish_run) under a lease (refused as [`start_run_fenced`](Self::start_run_fenced)).
    pub fn finish_run_fenced(
        &self,
        lease: &Lease,
        id: i64,
        finished_at: &str,
        status: RunStatus,
        report: &serde_json::Value,
    ) -> Result<()> {
        on!(self, b => b.finish_run(id, finished_at, status, report, Some(lease)))
    }

    /// Runs, newest first, optionally of one model.
    pub fn runs(&self, model: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        on!(self, b => b.runs(model, limit))
    }

    /// One run by id (without its report).
    pub fn run(&self, id: i64) -> Result<Option<RunRow>> {
        on!(self, b => b.run(id))
    }

    /// Adds metered records for a destination in a month.
    pub fn add_usage(&self, month: &str, destination: &str, records: i64) -> Result<()> {
        if records == 0 {
            return Ok(());
        }
        on!(self, b => b.add_usage(month, destination, records))
    }

    /// Usage rows, newest month first.
    pub fn usage(&self) -> Result<Vec<UsageRow>> {
        on!(self, b => b.usage())
    }
}

/// What a run cut short reads as (the same on both backends).
pub(crate) const INTERRUPTED: &str = "the process stopped before the run finished";
