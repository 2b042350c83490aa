//! Privacy requests (SPEC §12, Segment's regulations): the requests with their status per
//! destination, the suppressed identifiers, and a version counter that `sluice serve` polls so a
//! suppression made by the CLI reaches its in-memory set without a restart.

use crate::{on, AuditEntry, Result, StateError, StateStore};
use serde::Serialize;
use std::collections::HashSet;

/// Most subject ids one request may name (more is refused with a 400 naming `subjectIds`).
pub const MAX_SUBJECT_IDS: usize = 1000;
/// Longest subject id, in characters.
pub const MAX_SUBJECT_ID_CHARS: usize = 512;

/// What a privacy request asks for (Segment's `regulationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegulationType {
    /// Drop the person's new events and withhold their records; delete nothing.
    SuppressOnly,
    /// Lift a suppression.
    Unsuppress,
    /// Suppress, and delete the person from every destination that holds them.
    SuppressWithDelete,
    /// Delete the person from every destination that holds them; do not suppress.
    DeleteOnly,
}

impl RegulationType {
    /// Every type, as named on the wire.
    pub const ALL: [&'static str; 4] = ["SUPPRESS_ONLY", "UNSUPPRESS", "SUPPRESS_WITH_DELETE", "DELETE_ONLY"];

    /// From its wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SUPPRESS_ONLY" => Some(Self::SuppressOnly),
            "UNSUPPRESS" => Some(Self::Unsuppress),
            "SUPPRESS_WITH_DELETE" => Some(Self::SuppressWithDelete),
            "DELETE_ONLY" => Some(Self::DeleteOnly),
            _ => None,
        }
    }

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        Self::ALL[self as usize]
    }

    /// Whether it suppresses the subjects.
    pub fn suppresses(self) -> bool {
        matches!(self, Self::SuppressOnly | Self::SuppressWithDelete)
    }

    /// Whether it deletes the subjects from destinations.
    pub fn deletes(self) -> bool {
        matches!(self, Self::SuppressWithDelete | Self::DeleteOnly)
    }
}

/// Where a delete stands at one destination (Segment's per-destination statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeleteStatus {
    /// Being sent (or waiting for a retry).
    Running,
    /// The destination accepted every delete (or held nothing of the person).
    Finished,
    /// The destination refused, or retries ran out; re-submit to try again.
    Failed,
    /// The destination kind has no delete call.
    NotSupported,
}

impl DeleteStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::NotSupported => "NOT_SUPPORTED",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUNNING" => Some(Self::Running),
            "FINISHED" => Some(Self::Finished),
            "FAILED" => Some(Self::Failed),
            "NOT_SUPPORTED" => Some(Self::NotSupported),
            _ => None,
        }
    }
}

/// Why a subject list is refused: the field at fault (`subjectIds`, `subjectIds[3]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SubjectError {
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Checks a request's subject ids: 1 to [`MAX_SUBJECT_IDS`] ids, each 1 to
/// [`MAX_SUBJECT_ID_CHARS`] characters without control characters; returns them de-duplicated in
/// order.
pub fn check_subject_ids(ids: &[String]) -> std::result::Result<Vec<String>, SubjectError> {
    let bad = |field: String, message: String| Err(SubjectError { field, message });
    if ids.is_empty() {
        return bad("subjectIds".into(), "must name at least one id".into());
    }
    if ids.len() > MAX_SUBJECT_IDS {
        return bad("subjectIds".into(), format!("names {} ids; at most {MAX_SUBJECT_IDS} per request", ids.len()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() {
            return bad(format!("subjectIds[{i}]"), "is empty".into());
        }
        // bytes bound the count first: a 1 MB id is refused without walking it
        if id.len() > 4 * MAX_SUBJECT_ID_CHARS || id.chars().count() > MAX_SUBJECT_ID_CHARS {
            return bad(format!("subjectIds[{i}]"), format!("is longer than {MAX_SUBJECT_ID_CHARS} characters"));
        }
        if id.chars().any(char::is_control) {
            return bad(format!("subjectIds[{i}]"), "contains a control character".into());
        }
        if seen.insert(id.as_str()) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// A destination's part of a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDelete {
    /// Destination id.
    pub id: String,
    /// `RUNNING`, or `NOT_SUPPORTED` where the kind has no delete call.
    pub status: DeleteStatus,
    /// Why it is not supported.
    pub error: Option<String>,
    /// The event log entry (`stream.db` seq) of its streaming person-delete, when one was queued
    /// (R13's durable path, `sluice_stream::person_delete`): done once its cursor passes it.
    pub stream_seq: Option<i64>,
}

/// A new request id (`reg_` and 24 hex digits).
pub fn new_regulation_id() -> String {
    new_id()
}

/// A request to store.
#[derive(Debug, Clone)]
pub struct NewRegulation {
    /// Its id ([`new_regulation_id`]; chosen first, so a streaming delete queued before the
    /// request is stored names it).
    pub id: String,
    /// What it asks for.
    pub kind: RegulationType,
    /// `USER_ID` or `ANONYMOUS_ID` (as given; an id is matched as either).
    pub subject_type: String,
    /// The ids named (checked by [`check_subject_ids`]).
    pub subject_ids: Vec<String>,
    /// The identifiers of the people's profiles in the event log (joined by identify or alias;
    /// the subjects too, when the log knows them): suppressed with the subjects, and what
    /// streaming destinations are asked to delete.
    pub joined_ids: Vec<String>,
    /// Each destination's first status (deletes only; empty otherwise).
    pub destinations: Vec<PlannedDelete>,
    /// Who asks (`token:NAME`, `cli:USER`, `ui:NAME`).
    pub created_by: String,
}

/// One destination's part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DestinationStatus {
    /// Destination id.
    pub id: String,
    /// `RUNNING`, `FINISHED`, `FAILED` or `NOT_SUPPORTED`.
    pub status: DeleteStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// The last error, or why it is not supported.
    #[serde(rename = "errorString")]
    pub error: Option<String>,
    /// When it finished (RFC 3339).
    #[serde(rename = "finishedAt")]
    pub finished_at: Option<String>,
    /// Unix milliseconds of the next attempt (while running).
    #[serde(skip)]
    pub next_at: i64,
    /// The event log entry of its streaming person-delete (see [`PlannedDelete::stream_seq`]).
    #[serde(skip)]
    pub stream_seq: Option<i64>,
}

/// A stored request with its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Regulation {
    /// Its id (`reg_...`).
    pub id: String,
    /// What it asks for.
    #[serde(rename = "regulationType")]
    pub kind: RegulationType,
    /// `USER_ID` or `ANONYMOUS_ID`.
    #[serde(rename = "subjectType")]
    pub subject_type: String,
    /// The ids named.
    #[serde(rename = "subjectIds")]
    pub subject_ids: Vec<String>,
    /// The identifiers of the people's profiles in the event log (the subjects too, when seen).
    #[serde(rename = "joinedIds")]
    pub joined_ids: Vec<String>,
    /// Who asked.
    #[serde(rename = "createdBy")]
    pub created_by: String,
    /// When (RFC 3339).
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// `FINISHED` once every destination is done (`FAILED` if one failed), else `RUNNING`.
    #[serde(rename = "overallStatus")]
    pub overall: DeleteStatus,
    /// Each destination's status (deletes only).
    pub destinations: Vec<DestinationStatus>,
}

impl Regulation {
    /// Every identifier it covers: the subjects and the joined ids.
    pub fn identifiers(&self) -> impl Iterator<Item = &String> {
        self.subject_ids.iter().chain(&self.joined_ids)
    }
}

fn overall(kind: RegulationType, dests: &[DestinationStatus]) -> DeleteStatus {
    if !kind.deletes() {
        return DeleteStatus::Finished;
    }
    if dests.iter().any(|d| d.status == DeleteStatus::Running) {
        DeleteStatus::Running
    } else if dests.iter().any(|d| d.status == DeleteStatus::Failed) {
        DeleteStatus::Failed
    } else {
        DeleteStatus::Finished
    }
}

fn new_id() -> String {
    let mut raw = [0u8; 12];
    getrandom::getrandom(&mut raw).expect("the operating system provides randomness");
    format!("reg_{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A request's row as stored (lists as JSON text), before it is checked.
pub(crate) struct RegulationRow {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) subject_type: String,
    pub(crate) subject_ids: String,
    pub(crate) joined_ids: String,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
}

/// The audit log's `after` side of a request.
pub(crate) fn audit_after(new: &NewRegulation) -> serde_json::Value {
    serde_json::json!({"regulationType": new.kind.as_str(), "subjectType": new.subject_type,
        "subjectIds": new.subject_ids, "joinedIds": new.joined_ids})
}

impl StateStore {
    /// Stores a request: its suppressions (or their removal), its destinations' first statuses
    /// and its audit entry, and bumps the privacy version, in one transaction.
    pub fn create_regulation(&mut self, new: &NewRegulation) -> Result<Regulation> {
        on!(mut self, b => b.create_regulation(new))?;
        let id = &new.id;
        self.regulation(id)?.ok_or_else(|| StateError::Corrupt(format!("privacy request {id} vanished")))
    }

    /// A request by id.
    pub fn regulation(&self, id: &str) -> Result<Option<Regulation>> {
        let Some(row) = on!(self, b => b.regulation_row(id))? else {
            return Ok(None);
        };
        let corrupt = |what: &str| StateError::Corrupt(format!("privacy request {}: {what}", row.id));
        let kind = RegulationType::parse(&row.kind).ok_or_else(|| corrupt("unknown type"))?;
        let list = |s: &str| serde_json::from_str::<Vec<String>>(s).map_err(|e| corrupt(&e.to_string()));
        let destinations = on!(self, b => b.regulation_destinations(&row.id))?;
        Ok(Some(Regulation {
            overall: overall(kind, &destinations),
            subject_ids: list(&row.subject_ids)?,
            joined_ids: list(&row.joined_ids)?,
            id: row.id,
            kind,
            subject_type: row.subject_type,
            created_by: row.created_by,
            created_at: row.created_at,
            destinations,
        }))
    }

    /// The newest `limit` requests, newest first.
    pub fn regulations(&self, limit: usize) -> Result<Vec<Regulation>> {
        let ids = on!(self, b => b.regulation_ids(limit))?;
        ids.iter().filter_map(|id| self.regulation(id).transpose()).collect()
    }

    /// Every suppressed identifier (loaded once per change into `serve`'s in-memory set, once
    /// per sync by Reverse ETL).
    pub fn suppressed_ids(&self) -> Result<HashSet<String>> {
        on!(self, b => b.suppressed_ids())
    }

    /// Whether `ident` is suppressed, and by which request.
    pub fn suppressed_by(&self, ident: &str) -> Result<Option<String>> {
        on!(self, b => b.suppressed_by(ident))
    }

    /// A counter bumped by every request: `serve` reloads its suppressions when it moves.
    pub fn privacy_version(&self) -> Result<i64> {
        on!(self, b => b.privacy_version())
    }

    /// Deletes due now (`RUNNING` with `next_at <= now_ms`): (request id, destination id).
    pub fn due_deletes(&self, now_ms: i64) -> Result<Vec<(String, String)>> {
        on!(self, b => b.due_deletes(now_ms))
    }

    /// Records the outcome of an attempt at one destination's deletes.
    pub fn set_delete_status(
        &self,
        regulation: &str,
        destination: &str,
        status: DeleteStatus,
        error: Option<&str>,
        next_at_ms: i64,
    ) -> Result<()> {
        on!(self, b => b.set_delete_status(regulation, destination, status, error, next_at_ms))
    }

    /// Appends one audit entry for a privacy request made by `actor` (used for refusals that
    /// stored nothing, e.g. by the CLI).
    pub fn audit_privacy(&mut self, actor: &str, entity: &str, after: serde_json::Value) -> Result<()> {
        let at = on!(self, b => b.now_text())?;
        self.append_audit(&[AuditEntry {
            id: 0,
            at,
            actor: actor.into(),
            action: "create".into(),
            kind: "privacy_request".into(),
            entity: entity.into(),
            before: None,
            after: Some(after),
        }])
    }
}
