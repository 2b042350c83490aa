//! `/ui/alerts`: the alerts firing now, the firing/resolved history and the configured alerts;
//! [`firing_banner`] puts the firing ones at the top of the home page (docs/UI.md).

use super::pages::when;
use super::session::Viewer;
use super::{layout, page, Nav, UiState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;
use sluice_state::{Firing, Notify};

/// What a firing subject reads as: `model users → crm`, `streaming → crm`.
fn subject(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        ["model", m, d] => format!("model {m} → {d}"),
        ["model", m] => format!("model {m} (whole run)"),
        ["stream", d] => format!("streaming → {d}"),
        _ => s.to_string(),
    }
}

fn value(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v)).unwrap_or_else(|| "—".into())
}

/// The firing alerts of `file` (empty markup when none fire).
pub fn firing_banner(store: Option<&sluice_state::StateStore>, file: &sluice_core::WorkspaceFile) -> Markup {
    let firing: Vec<Firing> = store
        .and_then(|s| s.firing_alerts().ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| file.alerts.iter().any(|a| a.id == f.alert && a.enabled))
        .collect();
    html! {
        @if !firing.is_empty() {
            section.flash.err #alerts-firing role="alert" aria-label="Firing alerts" {
                strong { (firing.len()) " alert" @if firing.len() != 1 { "s" } " firing" }
                ul { @for f in &firing {
                    li { code { (f.alert) } " — " (subject(&f.subject)) " · " (value(f.value)) " · since " (when(&f.since)) }
                } }
                a href="/ui/alerts" { "See alerts" }
            }
        }
    }
}

/// `GET /ui/alerts`.
pub async fn list(State(s): State<UiState>, viewer: Viewer) -> Response {
    let file = s.control.live.load_full();
    let store = sluice_state::StateStore::open_at(&s.control.state).ok();
    let view = store.as_ref().and_then(|st| crate::alerts::view(st, &file, 200).ok());
    let body = html! {
        p.lead { "Alerts watch sync runs and deliveries: a failed sync, a delivery rate under a threshold, a withheld-by-consent rate that jumps. Each fires once when its condition starts and resolves when it ends; notifications carry ids, counts and rates, never personal data." }
        (firing_banner(store.as_ref(), &file))
        @match &view {
            None => { p.flash.err { "The alert state could not be read." } }
            Some(v) => {
                @if v.pending_notifications > 0 {
                    p.flash.warn { (v.pending_notifications) " notification" @if v.pending_notifications != 1 { "s" } " not delivered to the webhook yet: retried automatically." }
                }
                section.card {
                    h2 { "Configured" }
                    @if v.alerts.is_empty() {
                        p.muted { "No alerts configured. Add an " code { "alerts:" } " section to the workspace file (owners only) and run " code { "sluice apply" } "." }
                    } @else {
                        table {
                            caption.sr { "Configured alerts" }
                            thead { tr { th scope="col" { "Alert" } th scope="col" { "On" } th scope="col" { "Model" } th scope="col" { "Destination" } th scope="col" { "Threshold" } th scope="col" { "Webhook" } } }
                            tbody { @for a in &v.alerts { tr {
                                td { code { (a.id) } @if !a.enabled { " " span.badge.off { "disabled" } } }
                                td { (a.on) } td { (a.model.as_deref().unwrap_or("any")) } td { (a.destination.as_deref().unwrap_or("any")) }
                                td { @if let Some(t) = a.threshold { (t) "%" } @else { "—" } }
                                td { @if a.webhook { span.badge.ok { "set" } } @else { span.badge.off { "none (UI only)" } } }
                            } } }
                        }
                    }
                }
                section.card {
                    h2 { "History" }
                    @if v.history.is_empty() {
                        p.muted { "Nothing has fired yet." }
                    } @else {
                        table #alert-history {
                            caption.sr { "Alert history, newest first" }
                            thead { tr { th scope="col" { "When" } th scope="col" { "Alert" } th scope="col" { "State" } th scope="col" { "Subject" } th scope="col" { "Value" } th scope="col" { "Run" } th scope="col" { "Notification" } } }
                            tbody { @for e in &v.history { tr {
                                td { (when(&e.at)) } td { code { (e.alert) } }
                                td { @if e.state == "firing" { span.badge.err { "firing" } } @else { span.badge.ok { "resolved" } } }
                                td { (subject(&e.subject)) }
                                td { (value(e.detail.get("value").and_then(Value::as_f64))) }
                                td { @if let Some(r) = e.detail.get("run_id").and_then(Value::as_i64) { (r) } @else { "—" } }
                                td { @match e.notify {
                                    Notify::Sent => span.badge.ok { "sent" },
                                    Notify::Pending => span.badge.warn title=(e.last_error.clone().unwrap_or_default()) { "pending (" (e.attempts) " attempts)" },
                                    Notify::None => span.muted { "—" },
                                } }
                            } } }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, layout(Some(&viewer), Nav::Alerts, "Alerts", body))
}
