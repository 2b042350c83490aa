//! The deletes of privacy requests (SPEC §12, docs/PRIVACY.md): for one request and one
//! destination, a `deleted` ITEM with `reason: privacy_request` for every identifier the
//! destination holds, sent through the destination's own delete call; statuses persist in
//! `state.db` and are retried with backoff until `FINISHED` or, after a bound, `FAILED`.
//!
//! What a destination holds of a person:
//! - Reverse ETL: every mapping to it whose checkpoint holds one of the request's identifiers as a
//!   record id; once deleted, the checkpoint no longer holds it.
//! - Streaming (kinds that take events): every identifier of the person's profile the event log
//!   knows (found when the request was made). Whether a past event reached the destination is
//!   not kept after retention, so the delete is asked whenever the person has a profile: a
//!   delete of someone the destination never got is harmless, a missed one is not. It goes
//!   through R13's durable path (`sluice_stream::person_delete`, queued by the edge when the
//!   request is made, delivered by the destination's streaming worker in log order, retried
//!   until it lands); here the destination is `FINISHED` only once that entry is delivered
//!   (`stream_done`), and waits for it without a bound (the worker never drops it).

use crate::Workspace;
use sluice_core::{Change, WorkspaceFile};
use sluice_destinations::{BuildContext, DeleteReason, Item};
use sluice_state::{CheckpointWrite, DeleteStatus, PlannedDelete, Regulation, RegulationType, StateStore};
use sluice_warehouse::IdOrder;
use std::time::Duration;

/// How deletes are retried.
#[derive(Debug, Clone, Copy)]
pub struct DeleteOptions {
    /// After this long since the request, a destination still failing is `FAILED`.
    pub give_up_after: Duration,
    /// The longest wait between two attempts (the wait doubles from one second).
    pub max_backoff: Duration,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        Self { give_up_after: Duration::from_secs(24 * 3600), max_backoff: Duration::from_secs(300) }
    }
}

/// Each destination's first status for a request of `kind`: `RUNNING` where the kind has a
/// delete call, `NOT_SUPPORTED` (with why) where it has none; nothing unless the request deletes.
pub fn plan(ws: &WorkspaceFile, kind: RegulationType) -> Vec<PlannedDelete> {
    if !kind.deletes() {
        return vec![];
    }
    ws.destinations
        .iter()
        .map(|d| match sluice_destinations::registry::info(&d.kind) {
            Some(k) if k.changes.contains(&Change::Deleted) => {
                PlannedDelete { id: d.id.clone(), status: DeleteStatus::Running, error: None, stream_seq: None }
            }
            _ => PlannedDelete {
                id: d.id.clone(),
                status: DeleteStatus::NotSupported,
                error: Some(format!("destination kind `{}` has no delete call", d.kind)),
                stream_seq: None,
            },
        })
        .collect()
}

/// The destinations of `planned` whose streaming worker should delete the person (running,
/// enabled, a kind that takes events): where the edge queues R13's person-delete.
pub fn streaming_targets<'a>(ws: &WorkspaceFile, planned: &'a [PlannedDelete]) -> Vec<&'a str> {
    planned
        .iter()
        .filter(|p| p.status == DeleteStatus::Running)
        .filter(|p| {
            ws.destinations.iter().any(|d| {
                d.id == p.id && d.enabled && sluice_destinations::registry::info(&d.kind).is_some_and(|k| k.events)
            })
        })
        .map(|p| p.id.as_str())
        .collect()
}

/// Whether a destination's worker delivered the event log entry `seq` (a streaming
/// person-delete); the caller reads `stream.db`, which this crate does not.
pub type StreamDone<'a> = &'a dyn Fn(&str, i64) -> bool;

/// The outcome of one attempt at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The request.
    pub regulation: String,
    /// The destination.
    pub destination: String,
    /// Where it stands now.
    pub status: DeleteStatus,
    /// Deletes the destination accepted in this attempt.
    pub deleted: usize,
    /// Why it is not finished (or why it failed).
    pub error: Option<String>,
}

/// A failure of the state store while running deletes.
pub type Result<T> = std::result::Result<T, sluice_state::StateError>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs every delete due now (a `RUNNING` destination whose next attempt has come), one attempt
/// each, and records the outcomes.
pub fn run_due(
    store: &mut StateStore,
    ws: &Workspace,
    options: DeleteOptions,
    stream_done: StreamDone<'_>,
) -> Result<Vec<Attempt>> {
    let mut out = Vec::new();
    for (reg_id, dest) in store.due_deletes(now_ms())? {
        let Some(reg) = store.regulation(&reg_id)? else { continue };
        out.push(attempt(store, ws, &reg, &dest, options, stream_done)?);
    }
    Ok(out)
}

/// One attempt at the deletes of `reg` at destination `dest_id`, recorded in the state store.
pub fn attempt(
    store: &mut StateStore,
    ws: &Workspace,
    reg: &Regulation,
    dest_id: &str,
    options: DeleteOptions,
    stream_done: StreamDone<'_>,
) -> Result<Attempt> {
    let part = reg.destinations.iter().find(|d| d.id == dest_id);
    let attempts = part.map(|d| d.attempts).unwrap_or(0);
    let stream_seq = part.and_then(|d| d.stream_seq);
    let mut wait = Duration::from_secs(1u64 << attempts.clamp(0, 16)).min(options.max_backoff);
    let (status, deleted, error) = match send(store, ws, reg, dest_id)? {
        Sent::Done(n) => match stream_seq {
            Some(seq) if !stream_done(dest_id, seq) => {
                // R13's worker delivers it, retrying until it lands: look again soon, no bound
                wait = Duration::from_secs(1);
                let why = format!("the streaming delete (event log entry {seq}) waits for the destination's worker");
                (DeleteStatus::Running, n, Some(why))
            }
            _ => (DeleteStatus::Finished, n, None),
        },
        Sent::Refused(n, why) => (DeleteStatus::Failed, n, Some(why)),
        Sent::Retry(n, why) => {
            let age = chrono::DateTime::parse_from_rfc3339(&reg.created_at)
                .map(|t| chrono::Utc::now().signed_duration_since(t).to_std().unwrap_or_default())
                .unwrap_or_default();
            if age >= options.give_up_after {
                let why = format!("{why} (gave up after {} s; re-submit the request to try again)", age.as_secs());
                (DeleteStatus::Failed, n, Some(why))
            } else {
                (DeleteStatus::Running, n, Some(why))
            }
        }
    };
    let next_at = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
    store.set_delete_status(&reg.id, dest_id, status, error.as_deref(), next_at)?;
    tracing::info!(regulation = %reg.id, destination = dest_id, status = status.as_str(), deleted,
                   error = error.as_deref().unwrap_or(""), "privacy request delete attempt");
    Ok(Attempt { regulation: reg.id.clone(), destination: dest_id.to_string(), status, deleted, error })
}

enum Sent {
    /// Every delete accepted (or nothing held).
    Done(usize),
    /// Refused for good.
    Refused(usize, String),
    /// Try again later.
    Retry(usize, String),
}

/// A record a mapping's checkpoint holds: (mapping id, checkpoint key, record id).
type Held = (i64, String, String);

fn held_records(store: &StateStore, ws: &WorkspaceFile, reg: &Regulation, dest: &str) -> Result<Vec<Held>> {
    let mut out = Vec::new();
    for m in ws.models.iter().filter(|m| m.mappings.iter().any(|mp| mp.destination == dest)) {
        let mapping = store.mapping_id(&m.id, dest)?;
        let order = store.mapping_id_order(mapping)?.and_then(|o| IdOrder::parse(&o)).unwrap_or(IdOrder::Text);
        for ident in reg.identifiers() {
            let Some(key) = order.key(ident) else { continue };
            if store.checkpoint_entry(mapping, &key)?.is_some_and(|e| e.held.is_some()) {
                out.push((mapping, key.into_owned(), ident.clone()));
            }
        }
    }
    Ok(out)
}

fn send(store: &mut StateStore, ws: &Workspace, reg: &Regulation, dest_id: &str) -> Result<Sent> {
    let Some(dest) = ws.file.destinations.iter().find(|d| d.id == dest_id) else {
        return Ok(Sent::Refused(0, format!("destination `{dest_id}` is no longer in the workspace")));
    };
    // Reverse ETL's part; the streaming part is R13's person-delete in the event log
    let held = held_records(store, &ws.file, reg, dest_id)?;
    let mut ids: Vec<String> = held.iter().map(|h| h.2.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Sent::Done(0));
    }
    if !dest.enabled {
        return Ok(Sent::Retry(0, "the destination is disabled; the deletes wait until it is enabled".into()));
    }
    let ctx = BuildContext { base_dir: ws.base_dir.clone(), mapping_key: format!("privacy/{}/{}", reg.id, dest.id) };
    let mut sink = match sluice_destinations::build(dest, &ctx) {
        Ok(s) => s,
        Err(e) => return Ok(Sent::Refused(0, format!("destination settings.{}: {}", e.at, e.message))),
    };
    let items: Vec<Item> = ids
        .iter()
        .map(|id| Item {
            action: Change::Deleted,
            id: id.clone(),
            data: "{}".into(),
            consent: None,
            reason: Some(DeleteReason::PrivacyRequest),
        })
        .collect();
    let mut outcomes = Vec::with_capacity(items.len());
    for chunk in items.chunks(sink.batch_size().max(1)) {
        outcomes.extend(sink.deliver(chunk));
    }
    let ok: std::collections::HashSet<&str> =
        items.iter().zip(&outcomes).filter(|(_, o)| o.is_ok()).map(|(i, _)| i.id.as_str()).collect();
    // what the destination deleted, it no longer holds
    let mut by_mapping: std::collections::BTreeMap<i64, Vec<CheckpointWrite>> = Default::default();
    for (mapping, key, id) in &held {
        if ok.contains(id.as_str()) {
            by_mapping.entry(*mapping).or_default().push(CheckpointWrite::Remove(key.clone()));
        }
    }
    for (mapping, writes) in by_mapping {
        store.write_checkpoint(mapping, &writes)?;
    }
    let failures: Vec<&sluice_destinations::DeliveryError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    let Some(first) = failures.first() else { return Ok(Sent::Done(ok.len())) };
    let why = format!("{} of {} deletes failed: {}", failures.len(), items.len(), first.message);
    if failures.iter().any(|f| f.retryable) {
        Ok(Sent::Retry(ok.len(), why))
    } else {
        Ok(Sent::Refused(ok.len(), why))
    }
}
