//! `/ui/privacy-requests`: privacy requests (SPEC §12, §13) with each destination's delete
//! status; owners make one with a form (the control API's own handler, as the session's actor),
//! members read.

use super::session::{Posted, Viewer};
use super::{after_change, layout, page, Nav, UiState};
use crate::control::privacy::{self as api, NewRegulationBody};
use crate::control::ApiJson;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use sluice_state::{DeleteStatus, StateStore};

const BACK: &str = "/ui/privacy-requests";

fn badge(s: DeleteStatus) -> Markup {
    let class = match s {
        DeleteStatus::Finished => "badge ok",
        DeleteStatus::Running => "badge run",
        DeleteStatus::Failed => "badge err",
        DeleteStatus::NotSupported => "badge off",
    };
    html! { span class=(class) { (s.as_str()) } }
}

/// `GET /ui/privacy-requests`.
pub async fn list(State(s): State<UiState>, viewer: Viewer) -> Response {
    let dir = (*s.control.state).clone();
    let regs = tokio::task::spawn_blocking(move || StateStore::open_at(&dir).and_then(|st| st.regulations(200))).await;
    let regs = match regs {
        Ok(Ok(r)) => r,
        _ => return super::error_page(&viewer, StatusCode::INTERNAL_SERVER_ERROR, "Error", "internal error"),
    };
    let owner = viewer.owner();
    let body = html! {
        p.lead { "A privacy request acts on a person's data by their userId or anonymousId. "
            strong { "Suppress" } " drops their new events at ingest (answered, counted, never stored) and withholds their "
            "records from every Reverse ETL destination; " strong { "delete" } " asks every destination that holds them "
            "to delete them, and shows each destination's status." }
        @if !owner {
            p.note role="note" { "You are a member: you can read privacy requests. Owners make them." }
        }
        @if regs.is_empty() {
            div.empty { p { strong { "No privacy requests yet." } } }
        } @else {
            table {
                caption.sr { "Privacy requests" }
                thead { tr { th scope="col" { "Request" } th scope="col" { "Made" } th scope="col" { "Type" }
                    th scope="col" { "Subjects" } th scope="col" { "Status" } th scope="col" { "Destinations" } } }
                tbody {
                    @for r in &regs {
                        tr {
                            td { code { (r.id) } }
                            td { (r.created_at) br; span.muted { (r.created_by) } }
                            td { (r.kind.as_str()) }
                            td { @for (i, id) in r.subject_ids.iter().enumerate() { @if i > 0 { ", " } code { (id) } }
                                 @if !r.joined_ids.is_empty() { br; span.muted { "profile identifiers: " (r.joined_ids.join(", ")) } } }
                            td { (badge(r.overall)) }
                            td {
                                @if r.destinations.is_empty() { span.muted { "no deletes" } }
                                ul.plain { @for d in &r.destinations {
                                    li { (d.id) " " (badge(d.status))
                                         @if let Some(e) = &d.error { " " span.muted { (e) } } }
                                } }
                            }
                        }
                    }
                }
            }
        }
        @if owner {
            h2 { "Make a request" }
            form.card method="post" action=(BACK) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="reg-type" { "What to do" }
                select #reg-type name="regulationType" {
                    option value="SUPPRESS_WITH_DELETE" { "Suppress and delete (SUPPRESS_WITH_DELETE)" }
                    option value="SUPPRESS_ONLY" { "Suppress only (SUPPRESS_ONLY)" }
                    option value="DELETE_ONLY" { "Delete only (DELETE_ONLY)" }
                    option value="UNSUPPRESS" { "Lift a suppression (UNSUPPRESS)" }
                }
                label for="reg-subject" { "The ids are" }
                select #reg-subject name="subjectType" {
                    option value="USER_ID" { "userIds" }
                    option value="ANONYMOUS_ID" { "anonymousIds" }
                }
                label for="reg-ids" { "Ids, one per line (at most 1000)" }
                textarea #reg-ids name="subjectIds" rows="4" required {}
                button type="submit" { "Make the request" }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Privacy, "Privacy requests", body))
}

/// `POST /ui/privacy-requests`: the API's create.
pub async fn create(State(s): State<UiState>, p: Posted) -> Response {
    let body = NewRegulationBody {
        regulation_type: p.get("regulationType").unwrap_or_default().to_string(),
        subject_type: p.get("subjectType").unwrap_or_default().to_string(),
        subject_ids: p
            .get("subjectIds")
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    };
    let r = api::create(State(s.control.clone()), p.viewer.actor.clone(), ApiJson(body)).await;
    let done = match &r {
        Ok((_, b)) => format!("Privacy request {} made.", b.0.data.regulate_id),
        Err(_) => String::new(),
    };
    after_change(&p.viewer, BACK, &done, r)
}
