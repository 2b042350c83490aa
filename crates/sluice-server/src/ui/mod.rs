//! The web UI under `/ui/` (SPEC §13): server-rendered pages (maud, which escapes everything it
//! interpolates) for the people who own consent, on the private side only.
//!
//! - Login with an API token ([`session`]): the token stays on the server, in a session whose id
//!   is an `HttpOnly`, `SameSite=Strict` cookie; every request checks the token again, so a
//!   disabled token ends its sessions at once.
//! - Roles are the control API's: every change calls the control API's own handler with the
//!   session's [`Actor`](crate::control::Actor), so the API's role checks, validation, audit and
//!   change path decide; the UI only hides controls a member could not use.
//! - Every POST carries the session's CSRF token; a strict Content-Security-Policy (no inline
//!   script or style) covers every page; the only script is [`ASSET_JS`], served by the binary.

mod alerts;
mod categories;
mod funnel;
mod models;
mod pages;
mod privacy;
mod session;
mod stream;
mod whatif;

use crate::control::ControlState;
use crate::state::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
pub use session::Sessions;
use session::Viewer;
use std::sync::Arc;

/// What the pages share.
#[derive(Clone)]
pub struct UiState {
    /// The control API's state: its handlers make every change.
    pub control: ControlState,
    /// The streaming side's state (event log, live workspace).
    pub app: AppState,
    /// Logged-in sessions.
    pub sessions: Arc<Sessions>,
}

/// The stylesheet, served at `/ui/assets/ui.css`.
pub const ASSET_CSS: &str = include_str!("assets/ui.css");
/// The one script, served at `/ui/assets/ui.js`.
pub const ASSET_JS: &str = include_str!("assets/ui.js");

/// The Content-Security-Policy of every UI answer: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
                       object-src 'none'";

/// The UI's routes (served on the private side, outside the bearer-token layer: a page without
/// a session redirects to the login page instead of answering 401).
pub fn router(app: AppState, control: ControlState) -> Router {
    let state = UiState { control, app, sessions: Arc::new(Sessions::default()) };
    Router::new()
        .route("/ui", get(|| async { axum::response::Redirect::to("/ui/") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/ui.css", get(|| async { asset("text/css; charset=utf-8", ASSET_CSS) }))
        .route("/ui/assets/ui.js", get(|| async { asset("text/javascript; charset=utf-8", ASSET_JS) }))
        .route("/ui/", get(pages::home))
        .route("/ui/consent-categories", get(categories::list).post(categories::create))
        .route("/ui/consent-categories/{id}", post(categories::update))
        .route("/ui/consent-categories/{id}/disable", post(categories::disable))
        .route("/ui/consent-categories/{id}/enable", post(categories::enable))
        .route("/ui/consent-categories/{id}/preview", post(whatif::category))
        .route("/ui/sources", get(pages::sources))
        .route("/ui/destinations", get(pages::destinations))
        .route("/ui/models", get(models::list))
        .route("/ui/models/{id}", get(models::show))
        .route("/ui/models/{id}/consent", post(models::set_consent))
        .route("/ui/models/{id}/consent/preview", post(whatif::consent))
        .route("/ui/models/{id}/sync", post(models::start_sync))
        .route("/ui/models/{id}/progress", get(models::progress))
        .route("/ui/debugger", get(stream::debugger_index))
        .route("/ui/debugger/{source}", get(stream::debugger))
        .route("/ui/profiles", get(stream::profile_search))
        .route("/ui/profiles/{id}", get(stream::profile))
        .route("/ui/privacy-requests", get(privacy::list).post(privacy::create))
        .route("/ui/audit-log", get(pages::audit_log))
        .route("/ui/usage", get(pages::usage))
        .route("/ui/alerts", get(alerts::list))
        // an unknown page: to the login page without a session, else a page saying so
        .route("/ui/{*rest}", get(|_: Viewer| async { not_found_page() }))
        .layer(axum::middleware::from_fn(headers))
        .with_state(state)
}

/// Static text with a long cache life (the binary serves one version of it).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// The security headers of every UI answer.
async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Where a page sits in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Home,
    Categories,
    Sources,
    Models,
    Destinations,
    Debugger,
    Profiles,
    Usage,
    Privacy,
    Alerts,
    Audit,
    None,
}

const NAV: [(Nav, &str, &str); 11] = [
    (Nav::Home, "/ui/", "Home"),
    (Nav::Categories, "/ui/consent-categories", "Consent categories"),
    (Nav::Sources, "/ui/sources", "Sources"),
    (Nav::Models, "/ui/models", "Models"),
    (Nav::Destinations, "/ui/destinations", "Destinations"),
    (Nav::Debugger, "/ui/debugger", "Debugger"),
    (Nav::Profiles, "/ui/profiles", "Profiles"),
    (Nav::Usage, "/ui/usage", "Usage"),
    (Nav::Privacy, "/ui/privacy-requests", "Privacy requests"),
    (Nav::Alerts, "/ui/alerts", "Alerts"),
    (Nav::Audit, "/ui/audit-log", "Audit log"),
];

/// A whole page: head, navigation, the session's flash message, `body`.
fn layout(viewer: Option<&Viewer>, nav: Nav, title: &str, body: Markup) -> Markup {
    let flash = viewer.and_then(|v| v.take_flash());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sluice" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/ui.css";
                script src="/ui/assets/ui.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "Sluice" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            ul {
                                @for (item, href, label) in NAV {
                                    li {
                                        @if item == nav {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form.who method="post" action="/ui/logout" {
                            span { (v.actor.name) " · " span.role { (role_name(v)) } }
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main {
                    @if let Some((ok, text)) = flash {
                        @if ok {
                            p.flash.ok role="status" { (text) }
                        } @else {
                            p.flash.err role="alert" { (text) }
                        }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn role_name(v: &Viewer) -> &'static str {
    match v.actor.role {
        sluice_state::Role::Owner => "owner",
        sluice_state::Role::Member => "member",
    }
}

/// An HTML answer.
fn page(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

fn not_found_page() -> Response {
    page(
        StatusCode::NOT_FOUND,
        layout(None, Nav::None, "Not found", html! { p { "No such page. " a href="/ui/" { "Go home" } } }),
    )
}

/// A page saying what went wrong, with its status (a refused change, a missing thing).
fn error_page(viewer: &Viewer, status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        layout(
            Some(viewer),
            Nav::None,
            title,
            html! { p.flash.err role="alert" { (message) } p { a href="/ui/" { "Back to the home page" } } },
        ),
    )
}

/// A 303 to `to`.
fn see_other(to: &str) -> Response {
    axum::response::Redirect::to(to).into_response()
}

/// The answer to a form whose change the control API made or refused: back to `back` with the
/// outcome as a flash message; a refusal by role (403) is answered as such.
fn after_change<T>(viewer: &Viewer, back: &str, done: &str, r: Result<T, crate::error::ApiError>) -> Response {
    match r {
        Ok(_) => {
            viewer.flash(true, done);
            see_other(back)
        }
        Err(e) if e.status() == StatusCode::FORBIDDEN || e.status() == StatusCode::UNAUTHORIZED => {
            error_page(viewer, e.status(), "Not allowed", e.message())
        }
        Err(e) => {
            viewer.flash(false, e.message());
            see_other(back)
        }
    }
}

/// A path segment, percent-encoded (ids may hold `/`, `?`, `#`, spaces…).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A number for people: `12 345`.
fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && matches!((s.len() - i) % 3, 0) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A category's name with its id: `Advertising (C0004)`.
fn category_label(ws: &sluice_core::WorkspaceFile, id: &str) -> String {
    match ws.consent_categories.iter().find(|c| c.id == id) {
        Some(c) => format!("{} ({})", c.name, c.id),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(super::seg("C0004"), "C0004");
        assert_eq!(super::seg("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(super::seg("é"), "%C3%A9");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(super::num(0), "0");
        assert_eq!(super::num(999), "999");
        assert_eq!(super::num(1000), "1\u{202f}000");
        assert_eq!(super::num(1234567), "1\u{202f}234\u{202f}567");
    }
}
