//! What-if for streamed events (SPEC §12): of the events received since a time, how many each
//! streaming destination would gain (routed by the new workspace, not by the old) or lose.
//!
//! Each stored event is routed under both workspaces by THE routing decision
//! ([`DestinationPlan::route`], after [`effective_consent`] as the writer applies it). The log
//! is read in one pass, row by row (bounded memory), on a read-only connection: nothing is
//! written. Approximations, listed in [`NOTES`]: an event the writer routed by a profile's
//! consent, by `missing_consent: block`, or under Global Privacy Control was stored with the
//! consent it was routed under stamped in, so it is re-routed by that consent; an event without
//! a consent object is routed by its profile's consent as the profile is now (not as it was when
//! the event arrived); events of a source the new workspace removes count as not routed.

use crate::store::{self, StoreError};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use sluice_core::events::{effective_consent, read_consent, DestinationPlan, EventConsent, Route};
use sluice_core::{DestinationConfig, MissingConsent, WorkspaceFile};
use std::path::Path;

/// What the events' counts cannot see; shown with them.
pub const NOTES: &str = "events: each stored event of the last 24 h is routed again under both workspaces; events the \
writer routed by profile consent, `missing_consent: block` or Global Privacy Control are re-routed by the consent \
stamped on them then, and profile consent is taken as it is now";

/// One streaming destination's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventImpact {
    /// The destination's id.
    pub destination: String,
    /// Events the new workspace routes to it and the old one does not.
    pub gains: u64,
    /// Events the old workspace routes to it and the new one does not.
    pub loses: u64,
}

/// The routing of one workspace, for the destinations the what-if compares.
struct Side<'a> {
    ws: &'a WorkspaceFile,
    /// Per compared destination, its plan in this workspace (absent: never routed).
    plans: Vec<Option<DestinationPlan>>,
}

impl<'a> Side<'a> {
    fn new(ws: &'a WorkspaceFile, dests: &[&str]) -> Self {
        let plans = dests
            .iter()
            .map(|id| ws.destinations.iter().find(|d| d.id == *id).map(|d| DestinationPlan::new(ws, d)))
            .collect();
        Self { ws, plans }
    }

    fn has_source(&self, source: &str) -> bool {
        self.ws.sources.iter().any(|s| s.id == source)
    }
}

/// Whether `d` takes streamed events (its kind says so).
fn streams(d: &DestinationConfig) -> bool {
    sluice_destinations::registry::info(&d.kind).is_some_and(|k| k.events)
}

/// The streaming destinations whose routing can differ between `old` and `new`: those whose
/// plan differs, or every one when `missing_consent` or the set of sources changes.
pub fn affected<'a>(old: &'a WorkspaceFile, new: &'a WorkspaceFile) -> Vec<&'a str> {
    let ids = |w: &'a WorkspaceFile| w.destinations.iter().filter(|d| streams(d)).map(|d| d.id.as_str());
    let mut dests: Vec<&str> = ids(new).collect();
    dests.extend(ids(old).filter(|id| !new.destinations.iter().any(|d| d.id == *id)));
    let sources = |w: &'a WorkspaceFile| {
        let mut s: Vec<&'a str> = w.sources.iter().map(|s| s.id.as_str()).collect();
        s.sort_unstable();
        s
    };
    let global = old.workspace.missing_consent != new.workspace.missing_consent || sources(old) != sources(new);
    let plan = |w: &WorkspaceFile, id: &str| {
        w.destinations.iter().find(|d| d.id == id).filter(|d| streams(d)).map(|d| DestinationPlan::new(w, d))
    };
    dests.retain(|id| global || plan(old, id) != plan(new, id));
    dests
}

/// Counts, for each destination of [`affected`], the events received at or after `since`
/// (RFC 3339, as [`crate::rfc3339`] writes it) in the state folder `dir` that it would gain or
/// lose. No `stream.db` (nothing was ever streamed): every count is 0.
pub fn events(
    dir: &Path,
    old: &WorkspaceFile,
    new: &WorkspaceFile,
    since: &str,
) -> Result<Vec<EventImpact>, StoreError> {
    let dests = affected(old, new);
    let mut out: Vec<EventImpact> =
        dests.iter().map(|d| EventImpact { destination: d.to_string(), gains: 0, loses: 0 }).collect();
    let path = store::db_path(dir);
    if dests.is_empty() || !path.exists() {
        return Ok(out);
    }
    let wrap = |source| StoreError { path: path.display().to_string(), source };
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(wrap)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(wrap)?;
    let (a, b) = (Side::new(old, &dests), Side::new(new, &dests));
    let mut stmt =
        conn.prepare("select source, body from events where received_at >= ?1 order by seq").map_err(wrap)?;
    let mut rows = stmt.query([since]).map_err(wrap)?;
    while let Some(row) = rows.next().map_err(wrap)? {
        let source: String = row.get(0).map_err(wrap)?;
        let body: String = row.get(1).map_err(wrap)?;
        let Ok(event) = serde_json::from_str::<Value>(&body) else { continue };
        let (consent, _) = read_consent(&event);
        let integrations = event.get("integrations").and_then(Value::as_object);
        // the profile's consent is read once per event, only when a side routes by it
        let mut profile: Option<Option<std::collections::BTreeMap<String, bool>>> = None;
        let mut routed = |side: &Side<'_>, i: usize| -> Result<bool, StoreError> {
            let Some(plan) = &side.plans[i] else { return Ok(false) };
            if !side.has_source(&source) {
                return Ok(false);
            }
            let mode = side.ws.workspace.missing_consent;
            let stored = if consent == EventConsent::Missing && mode == MissingConsent::Profile {
                if profile.is_none() {
                    profile = Some(profile_consent(&conn, &event)?);
                }
                profile.as_ref().and_then(Option::as_ref)
            } else {
                None
            };
            let c = effective_consent(mode, consent.clone(), stored);
            Ok(matches!(plan.route(&c, integrations), Route::Deliver { .. }))
        };
        for (i, line) in out.iter_mut().enumerate() {
            match (routed(&a, i)?, routed(&b, i)?) {
                (false, true) => line.gains += 1,
                (true, false) => line.loses += 1,
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The routing consent of the profile of an event's `userId` (else `anonymousId`), as it is now.
fn profile_consent(
    conn: &Connection,
    event: &Value,
) -> Result<Option<std::collections::BTreeMap<String, bool>>, StoreError> {
    for key in ["userId", "anonymousId"] {
        if let Some(id) = event.get(key).and_then(Value::as_str) {
            if let Some(p) = store::profile_of(conn, id)? {
                return Ok(Some(p.routing_consent()).filter(|c| !c.is_empty()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
