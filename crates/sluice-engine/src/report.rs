//! The delivery overview of a sync run (SPEC §3 and the `sync --json` contract of §7).

use serde::{Deserialize, Serialize};
pub use sluice_state::RunStatus;
use std::collections::BTreeMap;

/// Most samples kept per kind of failure.
pub const MAX_SAMPLES: usize = 10;

/// A sample of a record that was not delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureSample {
    /// Record id.
    pub id: String,
    /// `added`, `updated` or `deleted`.
    pub action: String,
    /// The error (status and response body).
    pub error: String,
    /// `user`, `external` or `internal`.
    pub class: String,
    /// The item that was sent.
    pub payload: serde_json::Value,
}

/// Samples of failures, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureSamples {
    /// Retried on later syncs.
    pub retryable: Vec<FailureSample>,
    /// Rejected by the destination, or retries exhausted.
    pub permanent: Vec<FailureSample>,
}

/// How one mapping's part of a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MappingStatus {
    /// Everything sent was delivered (or nothing was due).
    #[default]
    Ok,
    /// Part of what was sent was delivered.
    Partial,
    /// Nothing of what was sent was delivered.
    Failed,
    /// The destination is disabled: nothing was sent, its checkpoint did not move (R12).
    Disabled,
    /// The configuration changed during the run (the destination disabled, re-pointed or
    /// removed, the model or its consent changed): the mapping stopped sending at its next batch.
    Stopped,
}

impl MappingStatus {
    /// The name shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
            Self::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for MappingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overview of one mapping in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MappingReport {
    /// Destination id.
    pub destination: String,
    /// Destination name (what the integrations object uses).
    pub destination_name: String,
    /// How it ended.
    pub status: MappingStatus,
    /// Rows read from the model.
    pub extracted: u64,
    /// Rows rejected (null or duplicate id).
    pub rejected: u64,
    /// Changes sent or attempted after the consent filter.
    pub added: u64,
    /// See `added`.
    pub updated: u64,
    /// See `added`. Includes `deleted_on_withdrawal`.
    pub deleted: u64,
    /// Of `deleted`: delete calls because consent was withdrawn from a record the destination
    /// held (R13, `on_withdrawal: delete`); such a row is counted in `withheld_by_consent` too.
    pub deleted_on_withdrawal: u64,
    /// Rows consent kept from the destination this run.
    pub withheld_by_consent: u64,
    /// Category id -> rows it refused (a row refused by two categories counts under both).
    pub withheld_by_category: BTreeMap<String, u64>,
    /// Rows a privacy request (a suppressed record id) kept from the destination this run: never
    /// sent, not counted as usage (SPEC §12).
    pub withheld_by_privacy_request: u64,
    /// Discard code of consent-withheld rows.
    pub discard_code: String,
    /// Items the destination accepted.
    pub delivered: u64,
    /// Items not delivered (`failed_retryable + failed_permanent`).
    pub failed: u64,
    /// Not delivered; retried on later syncs.
    pub failed_retryable: u64,
    /// Rejected by the destination (4xx) or out of retries; resent only if the row changes.
    pub failed_permanent: u64,
    /// Items sent again after failing in an earlier sync.
    pub retried: u64,
    /// Rows the destination already holds as they are.
    pub unchanged: u64,
    /// Rows not sent because their last version was rejected or gave up and has not changed.
    pub skipped_rejected: u64,
    /// Deletes not sent because they exceeded `max_delete_fraction` of what the destination holds.
    pub deletes_held_back: u64,
    /// Category ids the destination requires (R1: empty).
    pub required_categories: Vec<String>,
    /// Which consent rule governs this mapping, in words.
    pub consent_rule: String,
    /// Up to 10 samples of each kind of failure.
    pub failure_samples: FailureSamples,
    /// Milliseconds spent delivering.
    pub delivery_ms: u64,
    /// Why the mapping stopped sending mid-run (status `stopped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl MappingReport {
    /// Computes `status` from the counts.
    pub fn settle_status(&mut self) {
        if matches!(self.status, MappingStatus::Disabled | MappingStatus::Stopped) {
            return;
        }
        self.status = if self.failed == 0 {
            MappingStatus::Ok
        } else if self.delivered == 0 {
            MappingStatus::Failed
        } else {
            MappingStatus::Partial
        };
    }
}

/// The overview of one sync run of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunReport {
    /// Run number.
    pub run_id: i64,
    /// Model id.
    pub model: String,
    /// `ok`, `partial`, `failed` (some mapping failed) or `error` (the run could not complete).
    pub status: RunStatus,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Rows read from the model.
    pub extracted: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Reason (`null_id`, `duplicate_id`) -> rows.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Up to 10 ids of rejected rows per reason.
    pub rejected_samples: BTreeMap<String, Vec<String>>,
    /// Category id -> rows whose consent value was NULL or not a boolean (counted as refused).
    pub consent_warnings: BTreeMap<String, u64>,
    /// Warnings about the configuration (R4).
    pub warnings: Vec<String>,
    /// With `diff: warehouse`: `full` (every row read, the snapshot rebuilt) or `sparse` (only
    /// what the warehouse said changed; `extracted` counts those rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_pass: Option<String>,
    /// Why the run stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One entry per mapping of the model.
    pub mappings: Vec<MappingReport>,
}
