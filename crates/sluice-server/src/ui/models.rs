//! `/ui/models` and `/ui/models/{id}`: SQL, a 10-row preview (the API's preview, with its
//! timeout), the unique id, the consent mapping with a column picker from the model's real
//! columns, the "consent settings" check, recent runs with their delivery overview, "run sync
//! now" and its live progress (`/ui/models/{id}/progress`, polled by the served script).

use super::funnel::{funnel, n, over_time};
use super::session::{Posted, Viewer};
use super::{after_change, category_label, error_page, layout, num, page, seg, Nav, UiState};
use crate::control::resources::{self as api, ConsentMappings};
use crate::control::{ApiJson, ApiPath, ApiQuery};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use serde_json::{json, Value};
use sluice_core::{ModelConfig, WorkspaceFile};
use std::collections::{BTreeMap, HashMap};

/// `GET /ui/models`.
pub async fn list(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let last = last_runs(&s, &viewer);
    let body = html! {
        @if ws.models.is_empty() {
            div.empty {
                p { strong { "No models yet." } }
                p { "A model is a SQL query on a warehouse source. Add one to your workspace file (" code { "models:" } ") and run "
                    code { "sluice apply -f workspace.yaml" } ", or try " code { "sluice quickstart" } " for a sample warehouse and workspace." }
            }
        } @else {
            table {
                caption.sr { "Models" }
                thead { tr { th scope="col" { "Model" } th scope="col" { "Source" } th scope="col" { "Unique id" } th scope="col" { "Consent settings" } th scope="col" { "Destinations" } th scope="col" { "Last run" } } }
                tbody { @for m in &ws.models {
                    tr {
                        td { a href={ "/ui/models/" (seg(&m.id)) } { (m.id) } }
                        td { (m.source) }
                        td { code { (m.unique_id) } }
                        td { (check_badge(&ws, m)) }
                        td { @for (i, mp) in m.mappings.iter().enumerate() { @if i > 0 { ", " } (mp.destination) } }
                        td { @match last.get(&m.id) {
                            Some(r) => { (status_badge(r.get("status").and_then(Value::as_str).unwrap_or("?"))) " " span.muted { (super::pages::when(r.get("started_at").and_then(Value::as_str).unwrap_or_default())) } }
                            None => span.muted { "never" }
                        } }
                    }
                } }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Models, "Models", body))
}

/// The newest run of every model, as the viewer may read it.
fn last_runs(s: &UiState, viewer: &Viewer) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    if let Ok(store) = sluice_state::StateStore::open_at(&s.control.state) {
        for r in store.runs(None, 500).unwrap_or_default() {
            out.entry(r.model.clone()).or_insert_with(|| run_value(viewer, r));
        }
    }
    out
}

/// A stored run as the API shows it to `viewer`.
pub fn run_value(viewer: &Viewer, r: sluice_state::RunRow) -> Value {
    let v = r.report.unwrap_or_else(
        || json!({"run_id": r.id, "model": r.model, "status": r.status.as_str(), "started_at": r.started_at}),
    );
    api::report_for(&viewer.actor, v)
}

pub fn status_badge(status: &str) -> Markup {
    let class = match status {
        "ok" => "ok",
        "running" => "run",
        "partial" | "interrupted" | "stopped" => "warn",
        "disabled" => "off",
        _ => "err",
    };
    html! { span class={ "badge " (class) } { (status) } }
}

/// One line of the consent settings check.
struct CheckLine {
    category: String,
    column: Option<String>,
    verdict: String,
    ok: bool,
}

/// The seed's "consent settings" check: does the model map every category in use (enabled and
/// governing a destination)? With what consequence for this model's destinations (R3, R4)?
fn check(ws: &WorkspaceFile, m: &ModelConfig) -> (bool, Vec<CheckLine>) {
    let dests: Vec<&str> = m.mappings.iter().map(|x| x.destination.as_str()).collect();
    let maps_any = !m.consent.is_empty();
    let mut lines = Vec::new();
    let mut all = true;
    for c in &ws.consent_categories {
        let column = m.consent.get(&c.id).cloned();
        let in_use = c.enabled && !c.destinations.is_empty();
        let governs: Vec<&str> =
            c.destinations.iter().filter(|d| dests.contains(&d.as_str())).map(String::as_str).collect();
        let (verdict, ok) = match (&column, c.enabled, in_use) {
            (Some(_), false, _) => ("mapped; the category is disabled, so it is not enforced".to_string(), true),
            (Some(_), true, _) => ("mapped".to_string(), true),
            (None, false, _) => ("not mapped (the category is disabled)".to_string(), true),
            (None, true, false) => ("not mapped (the category governs no destination yet)".to_string(), true),
            (None, true, true) if governs.is_empty() => {
                ("not mapped; none of this model's destinations needs it".to_string(), false)
            }
            (None, true, true) if maps_any => (
                format!(
                    "not mapped: nothing from this model flows to {} (a missing column counts as refused)",
                    governs.join(", ")
                ),
                false,
            ),
            (None, true, true) => (
                match ws.workspace.unmapped_models {
                    sluice_core::UnmappedModels::Block => format!(
                        "not mapped: the model maps no category, so it is blocked from {} (unmapped_models: block)",
                        governs.join(", ")
                    ),
                    _ => format!(
                        "not mapped: the model maps no category, so consent is NOT enforced for {}",
                        governs.join(", ")
                    ),
                },
                false,
            ),
        };
        if in_use && column.is_none() {
            all = false;
        }
        lines.push(CheckLine { category: category_label(ws, &c.id), column, verdict, ok });
    }
    (all, lines)
}

fn check_badge(ws: &WorkspaceFile, m: &ModelConfig) -> Markup {
    let (all, lines) = check(ws, m);
    let missing = lines.iter().filter(|l| !l.ok).count();
    html! {
        @if all { span.badge.ok { "match the workspace" } }
        @else { span.badge.warn { (missing.max(1)) " categor" @if missing == 1 { "y" } @else { "ies" } " not mapped" } }
    }
}

/// `?run=N`: the run whose overview is shown.
#[derive(serde::Deserialize)]
pub struct RunQuery {
    /// Run number.
    run: Option<i64>,
}

/// `GET /ui/models/{id}`.
pub async fn show(
    State(s): State<UiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    viewer: Viewer,
) -> Response {
    let ws = s.control.live.load_full();
    let Some(m) = ws.models.iter().find(|m| m.id == id).cloned() else {
        return error_page(&viewer, StatusCode::NOT_FOUND, "No such model", &format!("No model has the id `{id}`."));
    };
    let q = RunQuery { run: q.get("run").and_then(|r| r.parse().ok()) };
    let preview = api::preview(State(s.control.clone()), viewer.actor.clone(), ApiPath(id.clone())).await;
    let runs: Vec<Value> = match sluice_state::StateStore::open_at(&s.control.state) {
        Ok(store) => store.runs(Some(&id), 20).unwrap_or_default().into_iter().map(|r| run_value(&viewer, r)).collect(),
        Err(_) => vec![],
    };
    let running = runs.first().is_some_and(|r| r.get("status").and_then(Value::as_str) == Some("running"));
    let shown = match q.run {
        Some(n) => runs.iter().find(|r| r.get("run_id").and_then(Value::as_i64) == Some(n)),
        None => runs.iter().find(|r| r.get("status").and_then(Value::as_str) != Some("running")),
    };
    let owner = viewer.owner();
    let (all, lines) = check(&ws, &m);
    let columns: Vec<String> = preview.as_ref().map(|p| p.0.columns.clone()).unwrap_or_default();
    let base = format!("/ui/models/{}", seg(&id));
    let body = html! {
        dl.facts {
            dt { "Source" } dd { (m.source) }
            dt { "Unique id" } dd { code { (m.unique_id) } }
            dt { "Schedule" } dd { (m.schedule.as_deref().unwrap_or("manual")) }
            dt { "Destinations" } dd { @if m.mappings.is_empty() { span.muted { "none" } }
                @for (i, mp) in m.mappings.iter().enumerate() { @if i > 0 { ", " } (mp.destination) } }
        }
        h2 { "SQL" }
        pre.sql { code { (m.sql) } }
        h2 { "Preview (first 10 rows)" }
        @match &preview {
            Ok(p) => {
                @if p.0.rows.is_empty() { p.muted { "The query returns no rows." } }
                div.scroll { table.preview {
                    caption.sr { "First rows of the model" }
                    thead { tr { @for c in &p.0.columns { th scope="col" { (c) @if c.eq_ignore_ascii_case(&m.unique_id) { " " span.badge.ok { "unique id" } } } } } }
                    tbody { @for r in &p.0.rows { tr { @for c in &p.0.columns { td { (cell(r.get(c))) } } } } }
                } }
            }
            Err(e) => { p.flash.err role="alert" { "The preview failed: " (e.message()) } }
        }
        h2 #consent { "Consent settings" }
        @if ws.consent_categories.is_empty() {
            div.empty { p { "No consent categories exist yet, so nothing is restricted. " a href="/ui/consent-categories" { "Create consent categories" } " first, then map a column of this model to each." } }
        } @else {
            @if all { p.flash.ok { "The consent categories of this model match the ones configured in the workspace." } }
            @else { p.flash.warn role="status" { "Some consent categories in use are not mapped by this model; see below." } }
            table {
                caption.sr { "Consent mapping check" }
                thead { tr { th scope="col" { "Category" } th scope="col" { "Column" } th scope="col" { "Check" } } }
                tbody { @for l in &lines { tr {
                    td { (l.category) }
                    td { @match &l.column { Some(c) => code { (c) }, None => span.muted { "—" } } }
                    td { @if l.ok { span.badge.ok { "ok" } } @else { span.badge.warn { "missing" } } " " (l.verdict) }
                } } }
            }
            @if owner {
                form.card method="post" action={ (base) "/consent" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    p { "Pick, for each category, the column of this model that holds the person's consent (true/false)." }
                    @if columns.is_empty() { p.flash.warn { "The model's columns are unknown (its preview failed); fix the query first." } }
                    @for c in &ws.consent_categories {
                        @let fid = format!("map-{}", seg(&c.id));
                        @let current = m.consent.get(&c.id);
                        label for=(fid) { (c.name) " (" (c.id) ")" }
                        select #(fid) name={ "map:" (c.id) } {
                            option value="" selected[current.is_none()] { "— not mapped —" }
                            @for col in &columns { option value=(col) selected[current.is_some_and(|x| x.eq_ignore_ascii_case(col))] { (col) } }
                            @if let Some(cur) = current.filter(|x| !columns.iter().any(|c| c.eq_ignore_ascii_case(x))) {
                                option value=(cur) selected { (cur) " (not in the preview)" }
                            }
                        }
                    }
                    button type="submit" formaction={ (base) "/consent/preview" } { "Preview impact" }
                    " "
                    button type="submit" { "Save consent mapping" }
                }
            } @else {
                p.note role="note" { "You are a member: owners change consent mappings." }
            }
        }
        h2 #runs { "Sync runs" }
        form.inline method="post" action={ (base) "/sync" } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button type="submit" { "Run sync now" }
        }
        p.progress #progress data-progress-url={ (base) "/progress" } data-running=(running)
            data-last-run=(runs.first().and_then(|r| r.get("run_id")).and_then(Value::as_i64).unwrap_or(0)) aria-live="polite" {
            @if running { "A sync is running…" }
        }
        @if runs.is_empty() {
            div.empty { p { "This model has not synced yet. Press " strong { "Run sync now" } " to send its records to its destinations; each run's delivery overview appears here." } }
        } @else {
            (over_time(&runs))
            table {
                caption.sr { "Recent sync runs" }
                thead { tr { th scope="col" { "Run" } th scope="col" { "Status" } th scope="col" { "Started" } th scope="col" { "Duration" }
                    th scope="col" { "Extracted" } th scope="col" { "Withheld" } th scope="col" { "Delivered" } th scope="col" { "Failed" } } }
                tbody { @for r in &runs {
                    @let ms = r.get("mappings").and_then(Value::as_array);
                    @let sum = |k: &str| ms.map_or(0, |ms| ms.iter().map(|m| n(m, k)).sum::<u64>());
                    @let rid = r.get("run_id").and_then(Value::as_i64).unwrap_or(0);
                    tr {
                        td { a href={ (base) "?run=" (rid) "#overview" } { "#" (rid) } }
                        td { (status_badge(r.get("status").and_then(Value::as_str).unwrap_or("?"))) }
                        td { (super::pages::when(r.get("started_at").and_then(Value::as_str).unwrap_or_default())) }
                        td { @if let Some(ms) = r.get("duration_ms").and_then(Value::as_u64) { (num(ms)) " ms" } }
                        td { (num(n(r, "extracted"))) }
                        td { (num(sum("withheld_by_consent"))) }
                        td { (num(sum("delivered"))) }
                        td { (num(sum("failed"))) }
                    }
                } }
            }
            @if let Some(r) = shown {
                h2 #overview { "Delivery overview of run #" (r.get("run_id").and_then(Value::as_i64).unwrap_or(0)) }
                @if let Some(e) = r.get("error").and_then(Value::as_str) { p.flash.err { (e) } }
                @for w in r.get("warnings").and_then(Value::as_array).into_iter().flatten() {
                    p.flash.warn { (w.as_str().unwrap_or_default()) }
                }
                @for mp in r.get("mappings").and_then(Value::as_array).into_iter().flatten() {
                    h3 { "→ " (mp.get("destination_name").or(mp.get("destination")).and_then(Value::as_str).unwrap_or("?")) " "
                        (status_badge(mp.get("status").and_then(Value::as_str).unwrap_or("?"))) }
                    (funnel(&ws, r, mp))
                }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Models, &format!("Model {id}"), body))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "NULL".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `POST /ui/models/{id}/consent`: fields `map:<category id>` = column (empty: not mapped),
/// saved by the API's own consent change.
pub async fn set_consent(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    let consent: BTreeMap<String, String> = p
        .fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("map:")?.to_string(), v.trim().to_string())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let back = format!("/ui/models/{}#consent", seg(&id));
    let r = api::set_consent(
        State(s.control.clone()),
        p.viewer.actor.clone(),
        ApiPath(id),
        ApiQuery(Default::default()),
        ApiJson(ConsentMappings { consent }),
    )
    .await;
    after_change(&p.viewer, &back, "Saved the consent mapping.", r)
}

/// `POST /ui/models/{id}/sync`: the API's "start a sync".
pub async fn start_sync(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    let back = format!("/ui/models/{}#runs", seg(&id));
    let r = api::start_sync(State(s.control.clone()), p.viewer.actor.clone(), ApiPath(id)).await;
    after_change(&p.viewer, &back, "Sync started.", r)
}

/// `GET /ui/models/{id}/progress`: `{"running", "run_id", "rows_read", "status"}` of the newest run.
pub async fn progress(State(s): State<UiState>, Path(id): Path<String>, viewer: Viewer) -> Response {
    let _ = &viewer;
    let store = match sluice_state::StateStore::open_at(&s.control.state) {
        Ok(st) => st,
        Err(e) => return crate::error::ApiError::internal(e).into_response(),
    };
    let last = store.runs(Some(&id), 1).unwrap_or_default().into_iter().next();
    let rows = s.control.progress.lock().get(&id).copied();
    let started = rows.is_some();
    match last {
        Some(r) => Json(json!({
            "running": r.status == sluice_state::RunStatus::Running || started,
            "run_id": r.id,
            "status": r.status.as_str(),
            "rows_read": rows,
        })),
        None => Json(json!({"running": started, "run_id": 0, "status": null, "rows_read": rows})),
    }
    .into_response()
}
