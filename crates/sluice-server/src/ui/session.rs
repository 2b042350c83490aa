//! Login with an API token, server-side sessions, the CSRF token of every form.
//!
//! The browser holds only a random session id (cookie `sluice_ui`: `HttpOnly`, `SameSite=Strict`,
//! `Path=/ui`, `Secure` behind TLS). The token stays in the session, on the server, and is
//! checked by the control API's own check ([`Actor::from_token`]) on every request: a disabled
//! token's sessions end at once, and a role change shows at the next click.

use super::{layout, page, see_other, Nav, UiState};
use crate::control::Actor;
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "sluice_ui";
/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept at once (the least recently used goes first).
const MAX_SESSIONS: usize = 10_000;
/// Largest form body the UI reads.
const MAX_FORM_BYTES: usize = 256 * 1024;

struct Session {
    /// The API token logged in with (never sent back to the browser).
    token: String,
    /// The CSRF token every form of this session carries.
    csrf: String,
    last_seen: Instant,
    /// A message for the next page (what a form did or why it was refused).
    flash: Option<(bool, String)>,
}

/// The logged-in sessions, by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn open(&self, token: String) -> Result<(String, String), getrandom::Error> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let mut map = self.0.lock();
        map.retain(|_, s| s.last_seen.elapsed() < IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), Session { token, csrf: csrf.clone(), last_seen: Instant::now(), flash: None });
        Ok((id, csrf))
    }

    /// The token and CSRF token of session `id`, if it is alive (and marks it used).
    fn touch(&self, id: &str) -> Option<(String, String)> {
        let mut map = self.0.lock();
        let s = map.get_mut(id)?;
        if s.last_seen.elapsed() >= IDLE {
            map.remove(id);
            return None;
        }
        s.last_seen = Instant::now();
        Some((s.token.clone(), s.csrf.clone()))
    }

    fn close(&self, id: &str) {
        self.0.lock().remove(id);
    }
}

/// 32 random bytes as hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Compares without an early exit (the CSRF token).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who is looking: the session's owner or member.
pub struct Viewer {
    /// As the control API knows them.
    pub actor: Actor,
    /// The session's CSRF token (every form carries it).
    pub csrf: String,
    id: String,
    sessions: Arc<Sessions>,
}

impl Viewer {
    /// Whether the control API lets this viewer change consent management.
    pub fn owner(&self) -> bool {
        self.actor.owner().is_ok()
    }

    /// Leaves a message for the next page.
    pub fn flash(&self, ok: bool, text: &str) {
        if let Some(s) = self.sessions.0.lock().get_mut(&self.id) {
            s.flash = Some((ok, text.chars().take(2000).collect()));
        }
    }

    /// The message left for this page, once.
    pub fn take_flash(&self) -> Option<(bool, String)> {
        self.sessions.0.lock().get_mut(&self.id).and_then(|s| s.flash.take())
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<UiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, Self::Rejection> {
        let to_login = || see_other("/ui/login");
        let id = session_id(&parts.headers).ok_or_else(to_login)?;
        let (token, csrf) = state.sessions.touch(&id).ok_or_else(to_login)?;
        let (control, t) = (state.control.clone(), token.clone());
        let actor = tokio::task::spawn_blocking(move || Actor::from_token(&control, &t))
            .await
            .map_err(|e| crate::error::ApiError::internal(e).into_response())?;
        match actor {
            Ok(actor) => Ok(Viewer { actor, csrf, id, sessions: state.sessions.clone() }),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                // the token was disabled: its sessions end
                state.sessions.close(&id);
                Err(to_login())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A form posted by a logged-in viewer, its CSRF token checked: the fields in order.
pub struct Posted {
    /// Who posted it.
    pub viewer: Viewer,
    /// Its fields (name, value), in order; names may repeat (checkboxes).
    pub fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of field `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

fn refused(why: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        layout(
            None,
            Nav::None,
            "Request refused",
            html! { p.flash.err role="alert" { (why) } p { a href="/ui/" { "Home" } } },
        ),
    )
}

/// Refuses a POST whose `Origin` names another site than the one it was sent to (the refusal).
fn cross_origin(headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or_default();
    if origin_host.is_empty() || origin_host != host {
        return Some(refused("this form was posted from another site"));
    }
    None
}

async fn read_form(req: axum::extract::Request) -> Result<Vec<(String, String)>, Response> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| refused("the form is too large or could not be read"))?;
    serde_urlencoded::from_bytes(&bytes).map_err(|_| refused("the form could not be read"))
}

impl FromRequest<UiState> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &UiState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        if let Some(refusal) = cross_origin(&parts.headers) {
            return Err(refusal);
        }
        let fields = read_form(axum::extract::Request::from_parts(parts, body)).await?;
        let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
        if !same(sent, &viewer.csrf) {
            tracing::warn!(actor = %viewer.actor.name, "web UI form refused: missing or wrong CSRF token");
            return Err(refused("this form is out of date or was not sent by Sluice's own page (CSRF token); reload the page and try again"));
        }
        Ok(Posted { viewer, fields })
    }
}

fn login_form(error: Option<&str>) -> maud::Markup {
    layout(
        None,
        Nav::None,
        "Log in",
        html! {
            @if let Some(e) = error {
                p.flash.err role="alert" { (e) }
            }
            form.card.login method="post" action="/ui/login" {
                p { "Log in with an API token. An owner makes one with "
                    code { "sluice token create --role owner --name NAME" } " (or " code { "--role member" } " for read-only access to consent management)." }
                label for="token" { "API token" }
                input #token type="password" name="token" required autocomplete="current-password" autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `GET /ui/login`.
pub async fn login_page() -> Response {
    page(StatusCode::OK, login_form(None))
}

/// Whether the browser reached us over TLS (a proxy in front says so).
fn behind_tls(headers: &HeaderMap) -> bool {
    let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let fwd = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()).unwrap_or_default();
    proto.eq_ignore_ascii_case("https") || fwd.to_ascii_lowercase().contains("proto=https")
}

/// `POST /ui/login` (field `token`): opens a session.
pub async fn login(State(s): State<UiState>, req: axum::extract::Request) -> Response {
    if let Some(r) = cross_origin(req.headers()) {
        return r;
    }
    let secure = if behind_tls(req.headers()) { "; Secure" } else { "" };
    let fields = match read_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let token = fields.iter().find(|(k, _)| k == "token").map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    if token.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, login_form(Some("Enter an API token.")));
    }
    let (control, t) = (s.control.clone(), token.clone());
    let checked = tokio::task::spawn_blocking(move || Actor::from_token(&control, &t)).await;
    match checked {
        Ok(Ok(actor)) => {
            let Ok((id, _)) = s.sessions.open(token) else {
                return crate::error::ApiError::internal("no randomness for a session id").into_response();
            };
            tracing::info!(actor = %actor.name, "web UI login");
            let cookie =
                format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", IDLE.as_secs());
            let mut res = see_other("/ui/");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Ok(Err(e)) if e.status() == StatusCode::UNAUTHORIZED => {
            page(StatusCode::UNAUTHORIZED, login_form(Some("Unknown or disabled token.")))
        }
        Ok(Err(e)) => e.into_response(),
        Err(e) => crate::error::ApiError::internal(e).into_response(),
    }
}

/// `POST /ui/logout`: ends the session.
pub async fn logout(p: Posted) -> Response {
    p.viewer.sessions.close(&p.viewer.id);
    let mut res = see_other("/ui/login");
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sluice_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn csrf_comparison_needs_every_byte() {
        assert!(super::same("abc", "abc"));
        assert!(!super::same("abc", "abd"));
        assert!(!super::same("abc", "ab"));
        assert!(!super::same("", "a"));
    }

    #[test]
    fn session_ids_are_random_and_long() {
        let (a, b) = (super::random_hex().unwrap(), super::random_hex().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
