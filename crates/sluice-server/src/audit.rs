//! The audit of one person (`sluice audit ID`, the web UI's profile page): everything Sluice did
//! with their data, for a privacy officer. Reverse ETL: what each destination holds of the
//! record, what the last sync decided and the consent it was delivered (or withheld) under.
//! Streaming: every event of the person's profile, and per destination what was routed or
//! withheld, and why.

use serde_json::{json, Value};
use sluice_core::WorkspaceFile;
use sluice_state::{Pending, StateStore};
use sluice_warehouse::IdOrder;
use std::collections::BTreeMap;
use std::path::Path;

/// A failure reading the state or the event log.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

fn pending_word(p: Pending) -> &'static str {
    match p {
        Pending::None => "delivered (up to date)",
        Pending::Withheld => "withheld by consent at the last sync",
        Pending::Failed { .. } => "delivery failed; retried at the next sync",
        Pending::Rejected { .. } => "rejected by the destination",
        Pending::GaveUp { .. } => "delivery failed; retries exhausted",
    }
}

/// A proof of consent for people: `delivered in run 3 (2026-...) under C0004=true (R2: ...)`.
pub fn proof_words(p: &Value) -> String {
    if p.is_null() {
        return "-".into();
    }
    let consent = p["consent"].as_object().map(|o| {
        o.iter()
            .map(|(k, v)| format!("{k}={}", if v == true { "true" } else { "false" }))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let consent = match consent {
        Some(c) if !c.is_empty() => c,
        _ => "no consent required".into(),
    };
    let mut s = format!(
        "{} in run {} ({}) under {} [{}]",
        p["what"].as_str().unwrap_or("?"),
        p["run_id"],
        p["at"].as_str().unwrap_or("?"),
        consent,
        p["rule"].as_str().unwrap_or("?")
    );
    if let Some(r) = p["refused"].as_array().filter(|r| !r.is_empty()) {
        let r: Vec<&str> = r.iter().filter_map(Value::as_str).collect();
        s.push_str(&format!("; refused by {}", r.join(", ")));
    }
    s
}

/// The audit report of `id` (a record id, `userId` or `anonymousId`) as JSON: `reverse_etl` (per
/// model and destination, with `proof`), `profile`, `streaming` (per destination) and `events`.
pub fn person(store: &StateStore, ws: &WorkspaceFile, state: &Path, id: &str) -> Result<Value, Error> {
    let mut retl = Vec::new();
    for m in &ws.models {
        for mp in &m.mappings {
            let mapping = store.mapping_id(&m.id, &mp.destination)?;
            let order = store.mapping_id_order(mapping)?.and_then(|o| IdOrder::parse(&o)).unwrap_or(IdOrder::Text);
            let Some(key) = order.key(id) else { continue };
            let requires = sluice_core::consent::required_categories(ws, &mp.destination);
            let entry = store.checkpoint_entry(mapping, &key)?;
            let proof = match entry.as_ref().and_then(|e| e.proof.map(|p| (e, p))) {
                Some((e, p)) => {
                    let sig = store.consent_signature_by_id(mapping, p.signature)?;
                    let at = store.run(p.run)?.and_then(|r| r.finished_at.or(Some(r.started_at)));
                    let what = if e.held.is_some() { "delivered" } else { "withheld" };
                    let refused: Vec<&String> = sig
                        .as_ref()
                        .map(|s| s.consent.iter().filter(|(_, v)| !**v).map(|(k, _)| k).collect())
                        .unwrap_or_default();
                    json!({
                        "what": what,
                        "run_id": p.run,
                        "at": at,
                        "rule": sig.as_ref().map(|s| s.rule.clone()),
                        "consent": sig.as_ref().map(|s| json!(s.consent)),
                        "refused": if what == "withheld" { json!(refused) } else { Value::Null },
                    })
                }
                None => Value::Null,
            };
            retl.push(json!({
                "model": m.id,
                "destination": mp.destination,
                "requires": requires,
                "holds_a_version": entry.as_ref().is_some_and(|e| e.held.is_some()),
                "last_sync": entry.as_ref().map(|e| pending_word(e.pending)).unwrap_or("never sent (not in the model, or never synced)"),
                "proof": proof,
            }));
        }
    }
    let conn = sluice_stream::store::open(state)?;
    let profile = sluice_stream::store::profile_of(&conn, id)?;
    let idents: Vec<String> = match &profile {
        Some(p) => p.user_ids.iter().chain(&p.anonymous_ids).cloned().collect(),
        None => vec![id.to_string()],
    };
    let events = sluice_stream::store::events_of(&conn, &idents)?;
    let mut per_dest: BTreeMap<String, (u64, u64, u64, String)> = BTreeMap::new();
    let mut timeline = Vec::new();
    for e in &events {
        let decisions = e.decisions.as_object().cloned().unwrap_or_default();
        for (d, v) in &decisions {
            let entry = per_dest.entry(d.clone()).or_default();
            match v["route"].as_str() {
                Some("deliver") => {
                    entry.0 += 1;
                    entry.3 = e.received_at.clone();
                }
                Some("withheld") => entry.1 += 1,
                _ => entry.2 += 1,
            }
        }
        timeline.push(json!({
            "seq": e.seq,
            "received_at": e.received_at,
            "type": e.event["type"],
            "event": e.event.get("event"),
            "consent": e.event.pointer("/context/consent"),
            "decisions": decisions,
        }));
    }
    let streaming: BTreeMap<&String, Value> = per_dest
        .iter()
        .map(|(d, (sent, withheld, off, last))| {
            (d, json!({"routed": sent, "withheld_by_consent": withheld, "not_routed_otherwise": off, "last_routed_at": if last.is_empty() { Value::Null } else { json!(last) }}))
        })
        .collect();
    Ok(json!({
        "id": id,
        "reverse_etl": retl,
        "profile": profile.as_ref().map(sluice_stream::store::profile_json),
        "streaming": streaming,
        "events": timeline,
    }))
}
