//! Deleting a person at a destination (R13 consent withdrawal; reusable for privacy requests):
//! a durable request in the event log, routed only to the destinations that must delete, and
//! delivered by each destination's own worker in log order as `Destination::deliver` of one
//! `deleted` item per identifier (webhook: `{"action": "deleted", "id", "data": {}, "reason"}`).
//!
//! - [`enqueue`] writes the request as a reserved log entry (source [`SOURCE`], which no event
//!   source can have: ids start with a letter or digit) in the caller's transaction: the writer
//!   commits it with the consent event that caused it, so once the event's 200 is sent the
//!   delete survives a crash.
//! - The worker (`delivery::deliver_once`) sends such an entry alone, after every earlier event
//!   of its destination and before every later one, through [`deliver`]; any failure (even a
//!   4xx) is retried with the destination's durable backoff and never dead-lettered: it is a
//!   privacy obligation, so the destination's queue waits behind it until it lands.

use crate::store;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use sluice_core::profiles::{Profile, Stored};
use sluice_core::withdrawal::{withdrawal_targets, withdrawn};
use sluice_core::{Change, WorkspaceFile};
use sluice_destinations::{DeleteReason, DeliveryError, Destination, Item};
use std::collections::BTreeMap;

/// The `source` of a person-delete entry in the event log (never an event source's id).
pub const SOURCE: &str = "!delete";

/// Who to delete and why: what a person-delete entry of the log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonDelete {
    /// The person's `userId`s.
    pub user_ids: Vec<String>,
    /// The person's `anonymousId`s.
    pub anonymous_ids: Vec<String>,
    /// `consent_withdrawn` or `privacy_request`.
    pub reason: String,
    /// For a withdrawal: the categories withdrawn.
    #[serde(default)]
    pub categories: Vec<String>,
    /// What caused it (the consent event's `messageId`, a request id).
    #[serde(default)]
    pub origin: String,
}

impl PersonDelete {
    /// A request to delete the person with these identifiers for `reason`.
    pub fn new(
        user_ids: impl IntoIterator<Item = String>,
        anonymous_ids: impl IntoIterator<Item = String>,
        reason: DeleteReason,
    ) -> Self {
        Self {
            user_ids: user_ids.into_iter().collect(),
            anonymous_ids: anonymous_ids.into_iter().collect(),
            reason: reason.as_str().to_string(),
            categories: Vec::new(),
            origin: String::new(),
        }
    }

    /// The reason as the wire writes it (an unknown stored reason reads as a privacy request,
    /// which still deletes).
    pub fn delete_reason(&self) -> DeleteReason {
        match self.reason.as_str() {
            "consent_withdrawn" => DeleteReason::ConsentWithdrawn,
            _ => DeleteReason::PrivacyRequest,
        }
    }

    /// One `deleted` item per identifier (userIds first), `data` empty, with the reason.
    pub fn items(&self) -> Vec<Item> {
        let reason = Some(self.delete_reason());
        self.user_ids
            .iter()
            .chain(&self.anonymous_ids)
            .map(|id| Item {
                action: Change::Deleted,
                id: id.clone(),
                data: sluice_destinations::raw(&serde_json::Value::Object(Default::default())),
                consent: None,
                reason,
            })
            .collect()
    }
}

/// A profile's stored consent values (category id -> value), as [`on_consent_change`] compares them.
pub fn stored(p: &Profile) -> BTreeMap<String, Stored> {
    p.consent.iter().map(|(k, c)| (k.clone(), c.value)).collect()
}

/// R13: after a consent event changed profile `p`'s stored consent from `before`, the
/// destinations that must delete the person ([`sluice_core::withdrawal::withdrawal_targets`])
/// and the request (every userId and anonymousId of the profile, the categories withdrawn,
/// `origin` the consent event's messageId); `None` when no destination must.
pub fn on_consent_change(
    ws: &WorkspaceFile,
    before: &BTreeMap<String, Stored>,
    p: &Profile,
    origin: &str,
) -> Option<(Vec<String>, PersonDelete)> {
    let after = stored(p);
    let targets = withdrawal_targets(ws, before, &after);
    if targets.is_empty() {
        return None;
    }
    let mut req =
        PersonDelete::new(p.user_ids.iter().cloned(), p.anonymous_ids.iter().cloned(), DeleteReason::ConsentWithdrawn);
    req.categories = ws
        .consent_categories
        .iter()
        .filter(|c| withdrawn(before.get(&c.id).copied(), after.get(&c.id).copied()))
        .map(|c| c.id.clone())
        .collect();
    req.origin = origin.to_string();
    Some((targets.into_iter().map(String::from).collect(), req))
}

/// Queues `req` for each of `dests` durably, in `conn`'s open transaction (the caller commits),
/// after every event already in the log. Returns the entry's seq (`None`: no destination).
pub fn enqueue(conn: &Connection, dests: &[&str], req: &PersonDelete, received_at: &str) -> store::Result<Option<i64>> {
    if dests.is_empty() {
        return Ok(None);
    }
    let w = store::wrap(conn);
    let body = serde_json::to_string(req).expect("strings serialize");
    store::exec(
        conn,
        "insert into events (source, message_id, received_at, body, decisions, warnings, routes)
         values (?1, ?2, ?3, ?4, '{}', null, ?5)",
        params![SOURCE, req.origin, received_at, body, crate::delivery::routes::encode(dests)],
    )
    .map_err(&w)?;
    Ok(Some(conn.last_insert_rowid()))
}

/// Asks `sink` to delete the person: every identifier's item must be accepted. The first error
/// is returned (the whole request is sent again: a delete is idempotent).
pub fn deliver(sink: &mut dyn Destination, req: &PersonDelete) -> Result<(), DeliveryError> {
    let items = req.items();
    if items.is_empty() {
        return Ok(());
    }
    let outcomes = sink.deliver(&items);
    if outcomes.len() < items.len() {
        return Err(DeliveryError::external("the destination answered for fewer identifiers than it was given"));
    }
    outcomes.into_iter().find_map(Result::err).map_or(Ok(()), Err)
}
