//! "Preview impact" (SPEC §12 What-if) for the consent forms: the edit and disable forms of a
//! consent category and a model's consent mapping post, with their own values and CSRF token, to
//! a preview route here. It answers the plan and the what-if table (per destination, records of
//! each model and events of the last 24 hours it would gain or lose) computed by the control
//! API's dry run of the very same edit, and a confirm form carrying the same values to the
//! form's real action. No JavaScript needed; nothing changes until the owner confirms.

use super::session::{Posted, Viewer};
use super::{error_page, layout, num, page, seg, Nav, UiState};
use crate::control::categories::{edit_category, CategoryChange};
use crate::control::resources::edit_consent;
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::BTreeMap;

/// The what-if of a dry run (`what_if` of the control API's answer) as a table.
pub fn table(w: &Value) -> Markup {
    let impacts = w.get("impacts").and_then(Value::as_array).cloned().unwrap_or_default();
    let n = |i: &Value, k: &str| i.get(k).and_then(Value::as_u64).unwrap_or(0);
    html! {
        @if impacts.is_empty() {
            p.note role="note" #what-if-none { "No destination gains or loses records or events by this change." }
        } @else {
            table #what-if {
                caption { "Who would gain or lose data by consent" }
                thead { tr { th scope="col" { "Destination" } th scope="col" { "Model or events" } th scope="col" { "Gains" }
                             th scope="col" { "Loses" } th scope="col" { "Of those lost, held now" } } }
                tbody {
                    @for i in &impacts {
                        @let err = i.get("error").and_then(Value::as_str);
                        tr {
                            td { (i.get("destination").and_then(Value::as_str).unwrap_or("?")) }
                            td { @match i.get("model").and_then(Value::as_str) { Some(m) => { "model " code { (m) } }, None => "events (last 24h)" } }
                            @if let Some(e) = err {
                                td colspan="3" { span.badge.warn { "not evaluated" } " " (e) }
                            } @else {
                                td.num data-gains=(n(i, "gains")) { (num(n(i, "gains"))) }
                                td.num data-loses=(n(i, "loses")) { (num(n(i, "loses"))) }
                                td.num { @match i.get("loses_held").and_then(Value::as_u64) { Some(h) => (num(h)), None => "—" } }
                            }
                        }
                    }
                }
            }
            @if impacts.iter().any(|i| i.get("loses_held").and_then(Value::as_u64).is_some_and(|h| h > 0)) {
                p.note { "Records a destination holds and would lose stay there, unless its mapping deletes on withdrawal "
                    "(on_withdrawal: delete), which would delete them at the next sync." }
            }
        }
        @for note in w.get("notes").and_then(Value::as_array).into_iter().flatten() {
            p.muted { (note.as_str().unwrap_or_default()) }
        }
    }
}

/// The preview page: plan, what-if, problems, and `confirm` (the form that applies it).
fn render(viewer: &Viewer, title: &str, back: &str, r: Result<Value, ApiError>, confirm: Markup) -> Response {
    let v = match r {
        Ok(v) => v,
        Err(e) if e.status() == StatusCode::FORBIDDEN || e.status() == StatusCode::UNAUTHORIZED => {
            return error_page(viewer, e.status(), "Not allowed", e.message())
        }
        Err(e) => {
            viewer.flash(false, e.message());
            return super::see_other(back);
        }
    };
    let plan = v.get("plan").and_then(Value::as_array).cloned().unwrap_or_default();
    let errors = v.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
    let body = html! {
        p.lead { "Nothing has changed yet. This is what the change would do; confirm below to apply it." }
        h2 { "Changes" }
        @if plan.is_empty() { p.muted { "Nothing: the workspace already says this." } }
        ul { @for i in &plan {
            li { (i.get("action").and_then(Value::as_str).unwrap_or("?")) " "
                 (i.get("kind").and_then(Value::as_str).unwrap_or("?").replace('_', " ")) " "
                 code { (i.get("id").and_then(Value::as_str).unwrap_or("?")) } }
        } }
        @for e in &errors {
            p.flash.err role="alert" { (e.get("field").and_then(Value::as_str).unwrap_or("")) ": " (e.get("message").and_then(Value::as_str).unwrap_or("")) }
        }
        @for w in v.get("warnings").and_then(Value::as_array).into_iter().flatten() {
            p.flash.warn { (w.as_str().unwrap_or_default()) }
        }
        h2 { "Impact" }
        (table(v.get("what_if").unwrap_or(&Value::Null)))
        @if errors.is_empty() { (confirm) } @else { p { "Fix the problems above before applying this change." } }
        p { a href=(back) { "Cancel" } }
    };
    page(StatusCode::OK, layout(Some(viewer), Nav::None, title, body))
}

/// `POST /ui/consent-categories/{id}/preview`: the edit form's values (`name`, `destinations`),
/// or with `op=disable` the disable form's (`confirm`).
pub async fn category(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    const BACK: &str = "/ui/consent-categories";
    if let Err(e) = p.viewer.actor.owner() {
        return error_page(&p.viewer, e.status(), "Not allowed", e.message());
    }
    let disable = p.get("op") == Some("disable");
    let change = if disable {
        CategoryChange { name: None, destinations: None, enabled: Some(false) }
    } else {
        CategoryChange {
            name: p.get("name").map(|n| n.trim().to_string()),
            destinations: Some(p.all("destinations")),
            enabled: None,
        }
    };
    let name = s.control.live.load().consent_categories.iter().find(|c| c.id == id).map(|c| c.name.clone());
    let r = s.control.preview(p.viewer.actor.clone(), true, edit_category(id.clone(), change)).await.map(|j| j.0);
    let csrf = &p.viewer.csrf;
    let action = format!("/ui/consent-categories/{}", seg(&id));
    let confirm = if disable {
        let name = name.clone().unwrap_or_else(|| id.clone());
        html! {
            form.danger method="post" action={ (action) "/disable" } data-confirm-name=(name) {
                input type="hidden" name="csrf" value=(csrf);
                label for="confirm" { "Type the category's name, " strong { (name) } ", to disable it:" }
                input #confirm name="confirm" autocomplete="off" required value=(p.get("confirm").unwrap_or_default());
                button.danger type="submit" { "Disable " (name) }
            }
        }
    } else {
        html! {
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="name" value=(p.get("name").unwrap_or_default());
                @for d in p.all("destinations") { input type="hidden" name="destinations" value=(d); }
                button type="submit" { "Apply this change" }
            }
        }
    };
    let title = format!("Preview: {} {}", if disable { "disable" } else { "edit" }, name.unwrap_or(id));
    render(&p.viewer, &title, BACK, r, confirm)
}

/// `POST /ui/models/{id}/consent/preview`: the consent mapping form's values (`map:<category>`).
pub async fn consent(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    let back = format!("/ui/models/{}#consent", seg(&id));
    if let Err(e) = p.viewer.actor.owner() {
        return error_page(&p.viewer, e.status(), "Not allowed", e.message());
    }
    let fields: Vec<(String, String)> = p
        .fields
        .iter()
        .filter(|(k, _)| k.starts_with("map:"))
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    let consent: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("map:")?.to_string(), v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let r = s.control.preview(p.viewer.actor.clone(), true, edit_consent(id.clone(), consent)).await.map(|j| j.0);
    let confirm = html! {
        form method="post" action={ "/ui/models/" (seg(&id)) "/consent" } {
            input type="hidden" name="csrf" value=(p.viewer.csrf);
            @for (k, v) in &fields { input type="hidden" name=(k) value=(v); }
            button type="submit" { "Apply this consent mapping" }
        }
    };
    render(&p.viewer, &format!("Preview: consent mapping of {id}"), &back, r, confirm)
}
