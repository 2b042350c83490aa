//! Home (what is flowing, what failed, what consent withheld today), sources, destinations, the
//! audit log and usage.

use super::funnel::n;
use super::models::{run_value, status_badge};
use super::session::Viewer;
use super::{category_label, layout, num, page, seg, Nav, UiState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;
use sluice_core::WorkspaceFile;
use std::collections::BTreeMap;

/// Minutes since the epoch at today's midnight (UTC).
fn today_minute() -> i64 {
    let now = chrono::Utc::now().timestamp();
    (now - now.rem_euclid(86_400)) / 60
}

/// A stored time for people: `2026-11-27 15:27:59 UTC` (as stored when it is not RFC 3339).
pub fn when(at: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => at.to_string(),
    }
}

/// `GET /ui/`.
pub async fn home(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let store = sluice_state::StateStore::open_at(&s.control.state).ok();
    let firing = super::alerts::firing_banner(store.as_ref(), &ws);
    let runs: Vec<Value> = store
        .as_ref()
        .and_then(|st| st.runs(None, 500).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.started_at.starts_with(&today))
        .map(|r| run_value(&viewer, r))
        .collect();
    let streaming = sluice_stream::store::open(&s.app.dir)
        .ok()
        .and_then(|c| sluice_stream::store::overview(&c, today_minute()).ok())
        .unwrap_or(Value::Null);
    // category id -> (records withheld by syncs, events withheld) today
    let mut withheld: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &runs {
        for m in r.get("mappings").and_then(Value::as_array).into_iter().flatten() {
            for (c, v) in m.get("withheld_by_category").and_then(Value::as_object).into_iter().flatten() {
                withheld.entry(c.clone()).or_default().0 += v.as_u64().unwrap_or(0);
            }
        }
    }
    let dests = streaming.as_object().cloned().unwrap_or_default();
    for d in dests.values() {
        for (c, v) in d.get("withheld_by_category").and_then(Value::as_object).into_iter().flatten() {
            withheld.entry(c.clone()).or_default().1 += v.as_u64().unwrap_or(0);
        }
    }
    let failed: Vec<&Value> = runs
        .iter()
        .filter(|r| {
            matches!(r.get("status").and_then(Value::as_str), Some("failed" | "error" | "partial" | "interrupted"))
        })
        .collect();
    let new = ws.models.is_empty() && ws.consent_categories.is_empty();
    let body = html! {
        (firing)
        @if new {
            div.empty {
                p { strong { "Welcome to Sluice." } " Nothing is configured yet. To start:" }
                ol {
                    li { "Try it on sample data: " code { "sluice quickstart" } " builds a warehouse and a workspace in the current folder." }
                    li { "Or describe your sources, destinations and models in a workspace file and run " code { "sluice apply -f workspace.yaml" } "." }
                    li { a href="/ui/consent-categories" { "Create consent categories" } " and map the destinations each one governs." }
                    li { "Map each model's consent columns on its page, then run a sync and read its delivery overview." }
                }
            }
        }
        section.grid {
            div.card.wide {
                h2 { "Flowing today" }
                @if dests.is_empty() && runs.is_empty() {
                    p.muted { "Nothing has flowed today. Send events to an event source, or run a model's sync from its page." }
                } @else {
                    @let sum = |k: &str| runs.iter().flat_map(|r| r.get("mappings").and_then(Value::as_array).into_iter().flatten()).map(|m| n(m, k)).sum::<u64>();
                    p { (num(runs.len() as u64)) " sync run" @if runs.len() != 1 { "s" } " today: "
                        (num(sum("delivered"))) " records delivered, " (num(sum("failed"))) " failed, "
                        (num(sum("withheld_by_consent"))) " withheld by consent"
                        @if sum("deleted_on_withdrawal") > 0 { ", " (num(sum("deleted_on_withdrawal"))) " deleted because consent was withdrawn" }
                        "." }
                    @if !dests.is_empty() {
                        table {
                            caption { "Events per destination today" }
                            thead { tr { th scope="col" { "Destination" } th scope="col" { "Routed" } th scope="col" { "Delivered" } th scope="col" { "Withheld" } th scope="col" { "Failed" } th scope="col" { "Deleted on withdrawal" } } }
                            tbody { @for (d, v) in &dests { tr {
                                td { (dest_label(&ws, d)) } td { (num(n(v, "routed"))) } td { (num(n(v, "delivered"))) }
                                td { (num(n(v, "withheld"))) } td { (num(n(v, "failed"))) }
                                td { (num(n(v, "deleted_on_withdrawal"))) }
                            } } }
                        }
                    }
                }
            }
            div.card {
                h2 { "Failed today" }
                @if failed.is_empty() { p { span.badge.ok { "none" } " No sync run failed today." } }
                @else { ul { @for r in &failed {
                    @let model = r.get("model").and_then(Value::as_str).unwrap_or("?");
                    li { a href={ "/ui/models/" (seg(model)) "?run=" (r.get("run_id").and_then(Value::as_i64).unwrap_or(0)) "#overview" } { (model) " run #" (r.get("run_id").and_then(Value::as_i64).unwrap_or(0)) }
                        " " (status_badge(r.get("status").and_then(Value::as_str).unwrap_or("?")))
                        @if let Some(e) = r.get("error").and_then(Value::as_str) { " " span.muted { (e) } } }
                } } }
                @let ev_failed: u64 = dests.values().map(|v| n(v, "failed")).sum();
                @if ev_failed > 0 { p { (num(ev_failed)) " event deliveries failed today." } }
            }
            div.card {
                h2 { "Withheld by consent today" }
                @if withheld.is_empty() { p.muted { "Consent withheld nothing today." } }
                @else { table {
                    caption.sr { "Withheld by consent today, per category" }
                    thead { tr { th scope="col" { "Category" } th scope="col" { "Records (syncs)" } th scope="col" { "Events" } } }
                    tbody { @for (c, (r, e)) in &withheld { tr { td { (category_label(&ws, c)) } td { (num(*r)) } td { (num(*e)) } } } }
                } }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Home, "Home", body))
}

fn dest_label(ws: &WorkspaceFile, id: &str) -> String {
    ws.destinations.iter().find(|d| d.id == id).map_or_else(|| id.to_string(), |d| d.display_name().to_string())
}

/// A configuration object's settings, credentials redacted, as a compact list.
fn settings(kind: &str, v: Value, skip: &[&str]) -> Markup {
    let v = sluice_engine::plan::redact(kind, v);
    let show = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    html! {
        @if let Some(o) = v.as_object() {
            ul.settings { @for (k, x) in o { @if !skip.contains(&k.as_str()) {
                // a destination's settings are one map: shown entry by entry
                @if let (true, Some(inner)) = (k == "settings", x.as_object()) {
                    @for (k2, x2) in inner { li { code { (k2) } ": " (show(x2)) } }
                } @else {
                    li { code { (k) } ": " (show(x)) }
                }
            } } }
        }
    }
}

/// `GET /ui/sources`.
pub async fn sources(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let body = html! {
        @if ws.sources.is_empty() {
            div.empty { p { strong { "No sources yet." } } p { "Add a warehouse source (" code { "kind: postgres" } ", " code { "sqlite" } ", …) or an event source ("
                code { "kind: events" } " with a write key) to your workspace file and apply it." } }
        } @else {
            table {
                caption.sr { "Sources" }
                thead { tr { th scope="col" { "Source" } th scope="col" { "Kind" } th scope="col" { "Settings" } th scope="col" { "Used by" } } }
                tbody { @for src in &ws.sources {
                    @let v = serde_json::to_value(src).unwrap_or(Value::Null);
                    @let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?").to_string();
                    tr {
                        td { (src.id) }
                        td { (kind) }
                        td { (settings("source", v.clone(), &["id", "kind"])) }
                        td { @if src.events().is_some() { a href={ "/ui/debugger/" (seg(&src.id)) } { "Event debugger" } }
                             @else { @for (i, m) in ws.models.iter().filter(|m| m.source == src.id).enumerate() { @if i > 0 { ", " } a href={ "/ui/models/" (seg(&m.id)) } { (m.id) } } } }
                    }
                } }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Sources, "Sources", body))
}

/// `GET /ui/destinations`.
pub async fn destinations(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let body = html! {
        @if ws.destinations.is_empty() {
            div.empty { p { strong { "No destinations yet." } } p { "Add one (webhook, file, connections, braze, hubspot, …) to your workspace file and apply it; then map the consent categories that govern it." } }
        } @else {
            table {
                caption.sr { "Destinations" }
                thead { tr { th scope="col" { "Destination" } th scope="col" { "Kind" } th scope="col" { "Status" } th scope="col" { "Consent categories" } th scope="col" { "Models" } th scope="col" { "Settings" } } }
                tbody { @for d in &ws.destinations {
                    @let cats: Vec<String> = ws.consent_categories.iter().filter(|c| c.destinations.contains(&d.id)).map(|c| category_label(&ws, &c.id)).collect();
                    tr {
                        td { (d.display_name()) " " span.muted { "(" (d.id) ")" } }
                        td { (d.kind) }
                        td { @if d.enabled { span.badge.ok { "enabled" } } @else { span.badge.off { "disabled" } } }
                        td { @if cats.is_empty() { span.muted { "none: receives everything (no consent requirement)" } } @else { (cats.join(", ")) } }
                        td { @for (i, m) in ws.models.iter().filter(|m| m.mappings.iter().any(|x| x.destination == d.id)).enumerate() {
                            @if i > 0 { ", " } a href={ "/ui/models/" (seg(&m.id)) } { (m.id) } } }
                        td { (settings("destination", serde_json::to_value(d).unwrap_or(Value::Null), &["id", "name", "kind", "enabled"])) }
                    }
                } }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Destinations, "Destinations", body))
}

/// `GET /ui/audit-log`: the newest 200 changes (credentials redacted, as the API shows them).
pub async fn audit_log(State(s): State<UiState>, viewer: Viewer) -> Response {
    let entries = sluice_state::StateStore::open_at(&s.control.state)
        .ok()
        .and_then(|st| st.audit_log(200).ok())
        .unwrap_or_default();
    let body = html! {
        p.lead { "Every change to the workspace: who, when, before and after." }
        @if entries.is_empty() {
            div.empty { p { "No changes recorded yet. Changes made with " code { "sluice apply" } ", the API or this UI appear here." } }
        } @else {
            table {
                caption.sr { "Audit log" }
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "What" } } }
                tbody { @for e in entries {
                    @let before = e.before.map(|v| sluice_engine::plan::redact(&e.kind, v));
                    @let after = e.after.map(|v| sluice_engine::plan::redact(&e.kind, v));
                    tr {
                        td { (when(&e.at)) } td { (e.actor) } td { (e.action) } td { (e.kind) " " code { (e.entity) } }
                    }
                    tr.detail { td colspan="4" {
                        details { summary { "Before and after: " (e.kind) " " (e.entity) }
                            div.diff {
                                pre { (before.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()).unwrap_or_else(|| "—".into())) }
                                pre { (after.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()).unwrap_or_else(|| "—".into())) }
                            }
                        }
                    } }
                } }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Audit, "Audit log", body))
}

/// `GET /ui/usage`: records synced per month and destination (R11).
pub async fn usage(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let rows =
        sluice_state::StateStore::open_at(&s.control.state).ok().and_then(|st| st.usage().ok()).unwrap_or_default();
    let max = rows.iter().map(|r| r.records).max().unwrap_or(0).max(1);
    let body = html! {
        p.lead { "Records delivered or failed per month and destination. Records withheld by consent never count." }
        @if rows.is_empty() {
            div.empty { p { "No usage yet: it grows as syncs deliver records." } }
        } @else {
            table {
                caption.sr { "Usage" }
                thead { tr { th scope="col" { "Month" } th scope="col" { "Destination" } th scope="col" { "Records" } th scope="col" { span.sr { "Share" } } } }
                tbody { @for r in &rows { tr {
                    td { (r.month) } td { (dest_label(&ws, &r.destination)) } td { (num(r.records.max(0) as u64)) }
                    td { svg width="200" height="12" role="img" aria-label={ (r.records) " records" } {
                        rect.bar-delivered x="0" y="1" height="10" width=((r.records.max(0) as f64 / max as f64 * 200.0).round().max(1.0) as u32) {}
                    } }
                } } }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Usage, "Usage", body))
}
