//! The live event debugger (`/ui/debugger/{source}`: each destination's decision and why) and
//! profiles (`/ui/profiles/{id}`: consent traits and conflicts).

use super::session::Viewer;
use super::{category_label, error_page, layout, page, see_other, seg, Nav, UiState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;
use sluice_core::WorkspaceFile;
use std::collections::HashMap;

/// `GET /ui/debugger`: the event sources.
pub async fn debugger_index(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let sources: Vec<&str> = ws.sources.iter().filter(|x| x.events().is_some()).map(|x| x.id.as_str()).collect();
    let body = html! {
        @if sources.is_empty() {
            div.empty { p { "No event source yet. Add one (" code { "{id: web, kind: events, write_key: …}" } ") to the workspace file, send events to "
                code { "/v1/track" } " with its write key, and watch them here." } }
        } @else {
            p { "Pick an event source to watch its events and where each one went:" }
            ul { @for id in sources { li { a href={ "/ui/debugger/" (seg(id)) } { (id) } } } }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Debugger, "Event debugger", body))
}

/// Why a destination got (or did not get) an event, in words.
fn why(ws: &WorkspaceFile, dest: &str, d: &Value, event: &Value) -> Markup {
    let route = d.get("route").and_then(Value::as_str).unwrap_or("?");
    match route {
        "deliver" => {
            let cats: Vec<String> = ws
                .consent_categories
                .iter()
                .filter(|c| c.enabled && c.destinations.iter().any(|x| x == dest))
                .map(|c| category_label(ws, &c.id))
                .collect();
            // R2: every category of the destination, or (its policy: any) one of them
            let cats = match (sluice_core::consent::policy_for(ws, dest), cats.len()) {
                (sluice_core::Policy::Any, 2..) => vec![format!("one of {}", cats.join(", "))],
                _ => cats,
            };
            let has_consent =
                event.pointer("/context/consent").is_some_and(|c| c.as_object().is_some_and(|o| !o.is_empty()));
            html! {
                span.badge.ok { "sent" } " "
                @if cats.is_empty() { "No consent category governs this destination." }
                @else if !has_consent {
                    @match ws.workspace.missing_consent {
                        sluice_core::MissingConsent::Profile => { "The event carries no consent object; the consent stored on the person's profile allows it (needs " (cats.join(", ")) ")." }
                        _ => { "The event carries no consent object, so consent does not restrict it (needs " (cats.join(", ")) ")." }
                    }
                }
                @else { "Consent allows it (needs " (cats.join(", ")) ")." }
            }
        }
        "withheld" => {
            let cats: Vec<String> = d
                .get("categories")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|c| category_label(ws, c))
                .collect();
            html! {
                span.badge.withheld { "withheld" } " Withheld by consent: " strong { (cats.join(", ")) } " not consented"
                @if let Some(code) = d.get("code").and_then(Value::as_str) { " (" code { (code) } ")" } "."
            }
        }
        "turned_off" => {
            html! { span.badge.off { "turned off" } " The event's integrations object turned this destination off." }
        }
        "disabled" => html! { span.badge.off { "disabled" } " The destination is disabled." },
        other => html! { span.badge { (other) } },
    }
}

fn text(v: &Value, ptr: &str) -> String {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// `GET /ui/debugger/{source}`: the newest 50 events.
pub async fn debugger(
    State(s): State<UiState>,
    Path(source): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    viewer: Viewer,
) -> Response {
    let ws = s.control.live.load_full();
    if !ws.sources.iter().any(|x| x.id == source && x.events().is_some()) {
        return error_page(
            &viewer,
            StatusCode::NOT_FOUND,
            "No such event source",
            &format!("No event source has the id `{source}`."),
        );
    }
    let conn = match sluice_stream::store::open(&s.app.dir) {
        Ok(c) => c,
        Err(e) => return crate::error::ApiError::internal(e).into_response(),
    };
    let (events, truncated) = sluice_stream::store::recent_events(&conn, &source, 50).unwrap_or_default();
    let invalid = sluice_stream::store::recent_invalid(&conn, &source, 20).unwrap_or_default();
    let live = q.get("live").is_some_and(|v| v == "1");
    let here = format!("/ui/debugger/{}", seg(&source));
    let body = html! {
        p.lead { "The newest events of " strong { (source) } ", and for each destination whether it was sent and why." }
        p { @if live { a #live href=(here) { "Stop live updates" } } @else { a href={ (here) "?live=1" } { "Follow live" } } " · " a href=(here) { "Refresh" } }
        @if events.is_empty() {
            div.empty { p { "No events yet. Send one with the source's write key, for example:" }
                pre { "curl -u WRITE_KEY: -H 'Content-Type: application/json' \\\n  -d '{\"userId\":\"u1\",\"event\":\"Signed Up\",\"context\":{\"consent\":{\"categoryPreferences\":{\"C0004\":false}}}}' \\\n  http://HOST/v1/track" } }
        }
        @for e in &events {
            @let ev = &e.event;
            @let kind = text(ev, "/type");
            @let user = text(ev, "/userId");
            @let anon = text(ev, "/anonymousId");
            article.event {
                header {
                    strong { (kind) @if let Some(name) = ev.get("event").and_then(Value::as_str) { " · " (name) } }
                    " " span.muted { (super::pages::when(&e.received_at)) }
                    @if !user.is_empty() { " · user " a href={ "/ui/profiles/" (seg(&user)) } { (user) } }
                    @else if !anon.is_empty() { " · anonymous " a href={ "/ui/profiles/" (seg(&anon)) } { (anon) } }
                }
                @if let Some(c) = ev.pointer("/context/consent") {
                    p.muted { "Consent: " code { (c.to_string()) } }
                } @else { p.muted { "No consent object." } }
                @for w in e.warnings.as_array().into_iter().flatten() {
                    p.flash.warn { (w.as_str().map(String::from).unwrap_or_else(|| w.to_string())) }
                }
                table.decisions {
                    caption.sr { "Decisions per destination" }
                    thead { tr { th scope="col" { "Destination" } th scope="col" { "Decision and why" } } }
                    tbody { @for (dest, d) in e.decisions.as_object().into_iter().flatten() {
                        tr { td { (ws.destinations.iter().find(|x| &x.id == dest).map_or(dest.as_str(), |x| x.display_name())) } td { (why(&ws, dest, d, ev)) } }
                    } }
                }
                details { summary { "Event" } pre { (serde_json::to_string_pretty(ev).unwrap_or_default()) } }
            }
        }
        @if truncated { p.muted { "Older events are left out." } }
        @if !invalid.is_empty() {
            h2 { "Invalid events" }
            ul { @for i in &invalid { li { span.muted { (text(i, "/received_at")) } " " (text(i, "/reason")) } } }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Debugger, &format!("Debugger: {source}"), body))
}

fn search_form(value: &str) -> Markup {
    html! {
        form.inline method="get" action="/ui/profiles" role="search" {
            label for="pid" { "userId or anonymousId" }
            input #pid name="id" value=(value) required;
            button type="submit" { "Find profile" }
        }
    }
}

/// `GET /ui/profiles?id=…`: the search form, or a redirect to the profile.
pub async fn profile_search(Query(q): Query<HashMap<String, String>>, viewer: Viewer) -> Response {
    if let Some(id) = q.get("id").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        return see_other(&format!("/ui/profiles/{}", seg(id)));
    }
    let body = html! {
        p.lead { "A profile is one person as seen through events: their identifiers, traits and consent per category." }
        (search_form(""))
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Profiles, "Profiles", body))
}

/// `GET /ui/profiles/{id}`.
pub async fn profile(State(s): State<UiState>, Path(id): Path<String>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let found = sluice_stream::store::open(&s.app.dir)
        .ok()
        .and_then(|c| sluice_stream::store::profile_of(&c, &id).ok().flatten());
    // the proof of consent per destination (Reverse ETL and streaming), as `sluice audit` shows it
    let (dir, who, file) = ((*s.control.state).clone(), id.clone(), ws.clone());
    let audit = tokio::task::spawn_blocking(move || {
        let store = sluice_state::StateStore::open_at(&dir).map_err(|e| e.to_string())?;
        crate::audit::person(&store, &file, &dir.dir, &who).map_err(|e| e.to_string())
    })
    .await
    .ok()
    .and_then(Result::ok);
    let audit = audit.unwrap_or(Value::Null);
    let retl: Vec<Value> = audit["reverse_etl"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["proof"].is_null() || r["holds_a_version"] == true)
        .cloned()
        .collect();
    let Some(p) = found else {
        let body = html! {
            @if retl.is_empty() {
                p.flash.warn role="status" { "No profile has the identifier " code { (id) } ". Profiles are built from the events of event sources." }
            } @else {
                p.muted { "No event source knows " code { (id) } "; Reverse ETL does." }
            }
            (search_form(&id))
            (proof_tables(&retl, &audit))
        };
        let status = if retl.is_empty() { StatusCode::NOT_FOUND } else { StatusCode::OK };
        return page(status, layout(Some(&viewer), Nav::Profiles, &format!("Profile {id}"), body));
    };
    let v = sluice_stream::store::profile_json(&p);
    let conflict = v.get("consent_conflict").and_then(Value::as_bool).unwrap_or(false);
    let body = html! {
        (search_form(&id))
        @if conflict {
            p.flash.err role="alert" { strong { "Consent conflict." } " Two known users with different consent were merged into this profile. "
                "A conflicting category counts as refused until a newer consent event settles it." }
        }
        dl.facts {
            @for (label, key) in [("User ids", "user_ids"), ("Anonymous ids", "anonymous_ids")] {
                @let ids: Vec<&str> = v[key].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                dt { (label) }
                dd { @if ids.is_empty() { span.muted { "none" } } @for (i, u) in ids.iter().enumerate() { @if i > 0 { ", " } code { (u) } } }
            }
        }
        h2 { "Consent" }
        @let consent = v.get("consent").and_then(Value::as_object).cloned().unwrap_or_default();
        @if consent.is_empty() { p.muted { "No consent was collected for this person yet." } }
        @else { table {
            caption.sr { "Consent per category" }
            thead { tr { th scope="col" { "Category" } th scope="col" { "Consent" } } }
            tbody { @for (c, val) in &consent { tr {
                td { (category_label(&ws, c)) }
                td { @match val {
                    Value::Bool(true) => { span.badge.ok { "granted" } }
                    Value::Bool(false) => { span.badge.off { "refused" } }
                    Value::String(x) if x == "conflict" => { span.badge.err { "conflict" } }
                    other => { code { (other.to_string()) } }
                } }
            } } }
        } }
        (proof_tables(&retl, &audit))
        h2 { "Traits" }
        @let traits = v.get("traits").and_then(Value::as_object).cloned().unwrap_or_default();
        @if traits.is_empty() { p.muted { "No traits yet." } }
        @else { table {
            caption.sr { "Traits" }
            tbody { @for (k, t) in &traits { tr { th scope="row" { (k) } td { (match t { Value::String(s) => s.clone(), o => o.to_string() }) } } } }
        } }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Profiles, &format!("Profile {id}"), body))
}

/// The proof of consent: per Reverse ETL destination the consent each record was delivered (or
/// withheld) under, and per streaming destination what was routed or withheld.
fn proof_tables(retl: &[Value], audit: &Value) -> Markup {
    let streaming = audit["streaming"].as_object().cloned().unwrap_or_default();
    html! {
        h2 { "Proof of consent" }
        @if retl.is_empty() && streaming.is_empty() { p.muted { "Nothing of this person was delivered or withheld yet." } }
        @if !retl.is_empty() { table.proof-retl {
            caption { "Reverse ETL: the consent each destination's record went out (or was withheld) under" }
            thead { tr { th scope="col" { "Model" } th scope="col" { "Destination" } th scope="col" { "Holds it" } th scope="col" { "Last sync" } th scope="col" { "Proof (at delivery)" } } }
            tbody { @for r in retl { tr {
                td { (r["model"].as_str().unwrap_or("")) }
                td { (r["destination"].as_str().unwrap_or("")) }
                td { @if r["holds_a_version"] == true { span.badge.ok { "yes" } } @else { span.badge.off { "no" } } }
                td { (r["last_sync"].as_str().unwrap_or("")) }
                td { (crate::audit::proof_words(&r["proof"])) }
            } } }
        } }
        @if !streaming.is_empty() { table.proof-stream {
            caption { "Streaming: events per destination (each event's decision keeps the consent it was made under)" }
            thead { tr { th scope="col" { "Destination" } th scope="col" { "Routed" } th scope="col" { "Withheld by consent" } th scope="col" { "Last routed at" } } }
            tbody { @for (d, v) in &streaming { tr {
                td { (d) }
                td { (v["routed"]) }
                td { (v["withheld_by_consent"]) }
                td { (v["last_routed_at"].as_str().unwrap_or("-")) }
            } } }
        } }
    }
}
