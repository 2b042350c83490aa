//! `/ui/consent-categories`: list; owners create, edit, disable (after typing the name) and
//! enable. Every change is the control API's own handler, called as the session's actor.

use super::session::{Posted, Viewer};
use super::{after_change, layout, page, seg, Nav, UiState};
use crate::control::categories::{self as api, CategoryChange, NewCategory};
use crate::control::{ApiJson, ApiPath, ApiQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use sluice_core::WorkspaceFile;

const BACK: &str = "/ui/consent-categories";

fn destination_picker(ws: &WorkspaceFile, chosen: &[String], prefix: &str) -> Markup {
    html! {
        fieldset.picks {
            legend { "Destinations it governs" }
            @if ws.destinations.is_empty() {
                p.muted { "No destinations yet: add one to the workspace file (" code { "destinations:" } ") or with the API." }
            }
            @for d in &ws.destinations {
                @let id = format!("{prefix}-{}", d.id);
                label for=(id) {
                    input #(id) type="checkbox" name="destinations" value=(d.id) checked[chosen.contains(&d.id)];
                    " " (d.display_name()) " " span.muted { "(" (d.id) ")" }
                }
            }
        }
    }
}

/// `GET /ui/consent-categories`.
pub async fn list(State(s): State<UiState>, viewer: Viewer) -> Response {
    let ws = s.control.live.load_full();
    let owner = viewer.owner();
    let body = html! {
        p.lead { "A consent category is a kind of data use your visitors allow or refuse (Advertising, Analytics…). "
            "Its id is your consent tool's key (OneTrust uses group ids like " code { "C0004" } "). A destination mapped to a category "
            "only gets the data of people who consented to it." }
        @if !owner {
            p.note role="note" { "You are a member: you can read consent management. Owners create, edit and disable categories." }
        }
        @if ws.consent_categories.is_empty() {
            div.empty {
                p { strong { "No consent categories yet." } }
                p { @if owner { "Create one below for each category your consent tool asks about, then pick the destinations it governs." }
                    @else { "Ask an owner to create the categories your consent tool asks about." } }
            }
        } @else {
            table {
                caption.sr { "Consent categories" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Destinations" } th scope="col" { "Status" } th scope="col" { "Models mapping it" } } }
                tbody {
                    @for c in &ws.consent_categories {
                        tr {
                            td { (c.name) }
                            td { code { (c.id) } }
                            td { @if c.destinations.is_empty() { span.muted { "none" } }
                                 @for (i, d) in c.destinations.iter().enumerate() { @if i > 0 { ", " } (dest_name(&ws, d)) } }
                            td { @if c.enabled { span.badge.ok { "enabled" } } @else { span.badge.off { "disabled" } } }
                            td { @let ms: Vec<&str> = ws.models.iter().filter(|m| m.consent.contains_key(&c.id)).map(|m| m.id.as_str()).collect();
                                 @if ms.is_empty() { span.muted { "none" } }
                                 @for (i, m) in ms.iter().enumerate() { @if i > 0 { ", " } a href={ "/ui/models/" (seg(m)) } { (m) } } }
                        }
                    }
                }
            }
            @if owner {
                h2 { "Edit" }
                @for c in &ws.consent_categories {
                    details.card {
                        summary { "Edit " (c.name) " (" (c.id) ")" }
                        form method="post" action={ "/ui/consent-categories/" (seg(&c.id)) } {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            @let nid = format!("name-{}", seg(&c.id));
                            label for=(nid) { "Name" }
                            input #(nid) name="name" value=(c.name) required maxlength="20";
                            (destination_picker(&ws, &c.destinations, &format!("d-{}", seg(&c.id))))
                            button type="submit" formaction={ "/ui/consent-categories/" (seg(&c.id)) "/preview" } { "Preview impact" }
                            " "
                            button type="submit" { "Save " (c.name) }
                        }
                        @if c.enabled {
                            form.danger method="post" action={ "/ui/consent-categories/" (seg(&c.id)) "/disable" } data-confirm-name=(c.name) {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                @let cid = format!("confirm-{}", seg(&c.id));
                                label for=(cid) { "Disabling stops enforcing " strong { (c.name) } " for every destination it governs. Type its name to confirm:" }
                                input #(cid) name="confirm" autocomplete="off" required;
                                button.danger type="submit" { "Disable " (c.name) }
                                " "
                                button type="submit" name="op" value="disable" formnovalidate
                                    formaction={ "/ui/consent-categories/" (seg(&c.id)) "/preview" } { "Preview impact" }
                            }
                        } @else {
                            form method="post" action={ "/ui/consent-categories/" (seg(&c.id)) "/enable" } {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Enable " (c.name) }
                            }
                        }
                    }
                }
            }
        }
        @if owner {
            h2 { "Create a category" }
            form.card method="post" action=(BACK) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="new-id" { "Id (your consent tool's key, e.g. C0004)" }
                input #new-id name="id" required maxlength="34";
                label for="new-name" { "Name (1–20 characters)" }
                input #new-name name="name" required maxlength="20";
                (destination_picker(&ws, &[], "new-d"))
                button type="submit" { "Create category" }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Categories, "Consent categories", body))
}

fn dest_name(ws: &WorkspaceFile, id: &str) -> String {
    ws.destinations.iter().find(|d| d.id == id).map_or_else(|| id.to_string(), |d| d.display_name().to_string())
}

/// `POST /ui/consent-categories`: the API's create.
pub async fn create(State(s): State<UiState>, p: Posted) -> Response {
    let body = NewCategory {
        id: p.get("id").unwrap_or_default().trim().to_string(),
        name: p.get("name").unwrap_or_default().trim().to_string(),
        destinations: p.all("destinations"),
        enabled: Some(true),
    };
    let done = format!("Created consent category {}.", body.name);
    let actor = p.viewer.actor.clone();
    let r = api::create(State(s.control.clone()), actor, ApiQuery(Default::default()), ApiJson(body)).await;
    after_change(&p.viewer, BACK, &done, r)
}

/// The API's update of category `id` as the form's viewer (never a dry run: the preview has its
/// own route).
async fn apply_update(
    s: &UiState,
    p: &Posted,
    id: &str,
    change: CategoryChange,
) -> Result<Response, crate::error::ApiError> {
    api::update(
        State(s.control.clone()),
        p.viewer.actor.clone(),
        ApiPath(id.to_string()),
        ApiQuery(Default::default()),
        ApiJson(change),
    )
    .await
}

/// `POST /ui/consent-categories/{id}`: rename and remap (the API's update).
pub async fn update(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    let change = CategoryChange {
        name: p.get("name").map(|n| n.trim().to_string()),
        destinations: Some(p.all("destinations")),
        enabled: None,
    };
    let r = apply_update(&s, &p, &id, change).await;
    after_change(&p.viewer, BACK, &format!("Saved consent category {id}."), r)
}

/// `POST /ui/consent-categories/{id}/disable`: only with the category's name typed in `confirm`.
pub async fn disable(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    // the API's role check first: a member is refused as such, whatever was typed
    if let Err(e) = p.viewer.actor.owner() {
        return after_change::<()>(&p.viewer, BACK, "", Err(e));
    }
    let name = s.control.live.load().consent_categories.iter().find(|c| c.id == id).map(|c| c.name.clone());
    if let Some(name) = &name {
        if p.get("confirm").map(str::trim) != Some(name.as_str()) {
            p.viewer.flash(false, &format!("Not disabled: type the category's name, {name}, exactly to confirm."));
            return super::see_other(BACK);
        }
    }
    let change = CategoryChange { name: None, destinations: None, enabled: Some(false) };
    let r = apply_update(&s, &p, &id, change).await;
    after_change(&p.viewer, BACK, &format!("Disabled consent category {}.", name.unwrap_or(id)), r)
}

/// `POST /ui/consent-categories/{id}/enable`.
pub async fn enable(State(s): State<UiState>, Path(id): Path<String>, p: Posted) -> Response {
    let change = CategoryChange { name: None, destinations: None, enabled: Some(true) };
    let r = apply_update(&s, &p, &id, change).await;
    after_change(&p.viewer, BACK, &format!("Enabled consent category {id}."), r)
}
