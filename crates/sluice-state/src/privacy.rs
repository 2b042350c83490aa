//! Privacy requests (SPEC §12, Segment's regulations): the requests with their status per
//! destination, the suppressed identifiers, and a version counter that `sluice serve` polls so a
//! suppression made by the CLI reaches its in-memory set without a restart.

use crate::{AuditEntry, Result, StateError, StateStore};
use rusqlite::{params, OptionalExtension};
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

/// Now, RFC 3339 with milliseconds in UTC (SQLite's clock; the state crate has no time library).
fn now(conn: &rusqlite::Connection) -> rusqlite::Result<String> {
    conn.query_row("select strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0))
}

impl StateStore {
    /// Stores a request: its suppressions (or their removal), its destinations' first statuses
    /// and its audit entry, and bumps the privacy version, in one transaction.
    pub fn create_regulation(&mut self, new: &NewRegulation) -> Result<Regulation> {
        let path = self.location();
        let wrap = |source| StateError::Db { path: path.clone(), source };
        let id = new.id.clone();
        let at = self.wrap(now(&self.sqlite()?.conn))?;
        let tx = self.sqlite_mut()?.conn.transaction().map_err(wrap)?;
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
        .map_err(wrap)?;
        let idents = new.subject_ids.iter().chain(&new.joined_ids);
        if new.kind.suppresses() {
            for ident in idents {
                tx.execute(
                    "insert into suppressions (ident, regulation, created_at) values (?1, ?2, ?3)
                     on conflict (ident) do update set regulation = excluded.regulation",
                    params![ident, id, at],
                )
                .map_err(wrap)?;
            }
        } else if new.kind == RegulationType::Unsuppress {
            for ident in idents {
                tx.execute("delete from suppressions where ident = ?1", [ident]).map_err(wrap)?;
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
                .map_err(wrap)?;
            }
        }
        tx.execute(
            "insert into audit_log (at, actor, action, kind, entity, before, after) values (?1, ?2, 'create', 'privacy_request', ?3, null, ?4)",
            params![
                at,
                new.created_by,
                id,
                serde_json::json!({"regulationType": new.kind.as_str(), "subjectType": new.subject_type,
                    "subjectIds": new.subject_ids, "joinedIds": new.joined_ids})
                .to_string()
            ],
        )
        .map_err(wrap)?;
        tx.execute(
            "insert into privacy_version (id, version) values (1, 1)
             on conflict (id) do update set version = version + 1",
            [],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        self.regulation(&id)?.ok_or_else(|| StateError::Corrupt(format!("privacy request {id} vanished")))
    }

    /// A request by id.
    pub fn regulation(&self, id: &str) -> Result<Option<Regulation>> {
        type Row = (String, String, String, String, String, String, String);
        let row: Option<Row> = self.wrap(
            self.sqlite()?
                .conn
                .query_row(
                    "select id, type, subject_type, subject_ids, joined_ids, created_by, created_at
                     from regulations where id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                )
                .optional(),
        )?;
        let Some((id, kind, subject_type, subject_ids, joined_ids, created_by, created_at)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| StateError::Corrupt(format!("privacy request {id}: {what}"));
        let kind = RegulationType::parse(&kind).ok_or_else(|| corrupt("unknown type"))?;
        let list = |s: &str| serde_json::from_str::<Vec<String>>(s).map_err(|e| corrupt(&e.to_string()));
        let destinations = self.regulation_destinations(&id)?;
        Ok(Some(Regulation {
            overall: overall(kind, &destinations),
            subject_ids: list(&subject_ids)?,
            joined_ids: list(&joined_ids)?,
            id,
            kind,
            subject_type,
            created_by,
            created_at,
            destinations,
        }))
    }

    fn regulation_destinations(&self, id: &str) -> Result<Vec<DestinationStatus>> {
        let mut stmt = self.wrap(self.sqlite()?.conn.prepare_cached(
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

    /// The newest `limit` requests, newest first.
    pub fn regulations(&self, limit: usize) -> Result<Vec<Regulation>> {
        let ids: Vec<String> = {
            let mut stmt = self.wrap(
                self.sqlite()?.conn.prepare("select id from regulations order by created_at desc, rowid desc limit ?1"),
            )?;
            let rows = self.wrap(stmt.query_map([limit as i64], |r| r.get(0)))?;
            rows.map(|r| self.wrap(r)).collect::<Result<_>>()?
        };
        ids.iter().filter_map(|id| self.regulation(id).transpose()).collect()
    }

    /// Every suppressed identifier (loaded once per change into `serve`'s in-memory set, once
    /// per sync by Reverse ETL).
    pub fn suppressed_ids(&self) -> Result<HashSet<String>> {
        let mut stmt = self.wrap(self.sqlite()?.conn.prepare("select ident from suppressions"))?;
        let rows = self.wrap(stmt.query_map([], |r| r.get(0)))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    /// Whether `ident` is suppressed, and by which request.
    pub fn suppressed_by(&self, ident: &str) -> Result<Option<String>> {
        self.wrap(
            self.sqlite()?
                .conn
                .query_row("select regulation from suppressions where ident = ?1", [ident], |r| r.get(0))
                .optional(),
        )
    }

    /// A counter bumped by every request: `serve` reloads its suppressions when it moves.
    pub fn privacy_version(&self) -> Result<i64> {
        Ok(self
            .wrap(
                self.sqlite()?
                    .conn
                    .prepare_cached("select version from privacy_version where id = 1")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)).optional()),
            )?
            .unwrap_or(0))
    }

    /// Deletes due now (`RUNNING` with `next_at <= now_ms`): (request id, destination id).
    pub fn due_deletes(&self, now_ms: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.wrap(self.sqlite()?.conn.prepare_cached(
            "select regulation, destination from regulation_destinations
             where status = 'RUNNING' and next_at <= ?1 order by regulation, destination",
        ))?;
        let rows = self.wrap(stmt.query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?))))?;
        rows.map(|r| self.wrap(r)).collect()
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
        let finished = if status == DeleteStatus::Running { None } else { Some(self.wrap(now(&self.sqlite()?.conn))?) };
        self.wrap(self.sqlite()?.conn.execute(
            "update regulation_destinations set status = ?3, error = ?4, next_at = ?5,
             attempts = attempts + 1, finished_at = ?6 where regulation = ?1 and destination = ?2",
            params![regulation, destination, status.as_str(), error, next_at_ms, finished],
        ))?;
        Ok(())
    }

    /// Appends one audit entry for a privacy request made by `actor` (used for refusals that
    /// stored nothing, e.g. by the CLI).
    pub fn audit_privacy(&mut self, actor: &str, entity: &str, after: serde_json::Value) -> Result<()> {
        self.append_audit(&[AuditEntry {
            id: 0,
            at: self.wrap(now(&self.sqlite()?.conn))?,
            actor: actor.into(),
            action: "create".into(),
            kind: "privacy_request".into(),
            entity: entity.into(),
            before: None,
            after: Some(after),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: RegulationType, ids: &[&str]) -> NewRegulation {
        NewRegulation {
            id: new_regulation_id(),
            kind,
            subject_type: "USER_ID".into(),
            subject_ids: ids.iter().map(|s| s.to_string()).collect(),
            joined_ids: vec!["anon-1".into()],
            destinations: vec![
                PlannedDelete { id: "hook".into(), status: DeleteStatus::Running, error: None, stream_seq: Some(7) },
                PlannedDelete {
                    id: "tracking".into(),
                    status: DeleteStatus::NotSupported,
                    error: Some("no delete call".into()),
                    stream_seq: None,
                },
            ],
            created_by: "cli:me".into(),
        }
    }

    #[test]
    fn suppress_unsuppress_and_statuses_persist_with_audit_and_version() {
        let d = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(d.path()).unwrap();
        assert_eq!(s.privacy_version().unwrap(), 0);
        let r = s.create_regulation(&new(RegulationType::SuppressWithDelete, &["u1", "u2"])).unwrap();
        assert_eq!(s.privacy_version().unwrap(), 1);
        assert_eq!(r.overall, DeleteStatus::Running);
        assert_eq!(s.suppressed_ids().unwrap(), ["u1", "u2", "anon-1"].map(String::from).into_iter().collect());
        assert_eq!(s.due_deletes(i64::MAX).unwrap(), vec![(r.id.clone(), "hook".to_string())]);
        s.set_delete_status(&r.id, "hook", DeleteStatus::Finished, None, 0).unwrap();
        let r2 = StateStore::open(d.path()).unwrap().regulation(&r.id).unwrap().unwrap();
        assert_eq!(r2.overall, DeleteStatus::Finished);
        assert_eq!(r2.destinations[0].attempts, 1);
        assert!(r2.destinations[0].finished_at.is_some());
        assert_eq!(r2.destinations[1].status, DeleteStatus::NotSupported);
        assert_eq!(r2.destinations[0].stream_seq, Some(7));
        let audit = s.audit_log(5).unwrap();
        assert_eq!((audit[0].kind.as_str(), audit[0].entity.as_str()), ("privacy_request", r.id.as_str()));
        let u = s.create_regulation(&new(RegulationType::Unsuppress, &["u1"])).unwrap();
        assert!(u.destinations.is_empty() && u.overall == DeleteStatus::Finished);
        assert_eq!(s.suppressed_ids().unwrap(), ["u2"].map(String::from).into_iter().collect());
        assert_eq!(s.privacy_version().unwrap(), 2);
        assert_eq!(s.regulations(10).unwrap().len(), 2);
        assert!(s.regulation("reg_nope").unwrap().is_none());
    }

    #[test]
    fn subject_ids_are_bounded_and_hostile_ones_named() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_subject_ids(&[]).unwrap_err().field, "subjectIds");
        assert_eq!(check_subject_ids(&vec!["x".to_string(); MAX_SUBJECT_IDS + 1]).unwrap_err().field, "subjectIds");
        assert_eq!(check_subject_ids(&ids(&["ok", "a\u{0}b"])).unwrap_err().field, "subjectIds[1]");
        assert_eq!(check_subject_ids(&ids(&["ok", "a\nb"])).unwrap_err().field, "subjectIds[1]");
        assert_eq!(check_subject_ids(&["x".repeat(1 << 20)]).unwrap_err().field, "subjectIds[0]");
        assert_eq!(check_subject_ids(&ids(&[""])).unwrap_err().field, "subjectIds[0]");
        assert!(check_subject_ids(&["é".repeat(MAX_SUBJECT_ID_CHARS)]).is_ok(), "characters, not bytes");
        assert_eq!(check_subject_ids(&ids(&["a", "b", "a"])).unwrap(), ids(&["a", "b"]));
    }
}
