//! What browsers need from the public edge (SPEC §9): CORS on every ingestion path, the settings
//! Analytics.js fetches from its `cdnURL`, and `POST /v1/m` (Analytics.js's own metrics, discarded).
//!
//! How a source's `allowed_origins` applies. A preflight carries no write key, so it is answered
//! for the whole workspace: with the request's `Origin` when some event source lists it, `*`
//! when some event source has no list, and 403 otherwise. The request that follows names its
//! source (its write key); [`check_origin`] refuses it with 403 when that source has a list
//! without the origin. Every answer on these paths, errors included, carries
//! `Access-Control-Allow-Origin` (`*` when the source has no list, else the request's `Origin`),
//! so the page can read a refusal: Analytics.js then drops the event instead of retrying it.

use crate::state::host_char;
pub use crate::state::PublicUrl;
use crate::state::{error, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;
use sluice_core::{SourceConfig, SourceKind, WorkspaceFile};

/// The ingestion paths (long and short) a browser may post to.
pub const INGEST_PATHS: [&str; 15] = [
    "/v1/identify",
    "/v1/track",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
    "/v1/import",
    "/v1/i",
    "/v1/t",
    "/v1/p",
    "/v1/s",
    "/v1/g",
    "/v1/a",
    "/v1/b",
];

/// The request headers a page may send (Analytics.js sends the first, second and fourth).
const ALLOW_HEADERS: &str = "authorization, content-type, content-encoding, x-retry-count";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "86400";

/// The routes of this module: the settings endpoint and `POST /v1/m`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/projects/{write_key}/settings", get(settings))
        // the body is read (so the body limit applies) and discarded
        .route("/v1/m", post(|_: Bytes| async { Json(json!({"success": true})) }))
}

/// What `Access-Control-Allow-Origin` answers.
#[derive(Debug, PartialEq, Eq)]
enum Allow {
    /// `*`: no list applies.
    Any,
    /// The request's `Origin`.
    Echo,
    /// The origin is not allowed.
    Refuse,
}

/// The rule for one source: `*` without a list, the origin when the list has it.
fn allow_for(source: &SourceConfig, origin: &str) -> Allow {
    let Some(events) = source.events() else { return Allow::Refuse };
    match &events.allowed_origins {
        None => Allow::Any,
        Some(list) if list.iter().any(|o| o == origin) => Allow::Echo,
        Some(_) => Allow::Refuse,
    }
}

/// The rule for a preflight, which names no source: the best any event source grants.
fn allow_any_source(ws: &WorkspaceFile, origin: &str) -> Allow {
    let events = ws.sources.iter().filter(|s| s.kind() == SourceKind::Events);
    let mut best = Allow::Refuse;
    for s in events {
        match allow_for(s, origin) {
            Allow::Echo => return Allow::Echo,
            Allow::Any => best = Allow::Any,
            Allow::Refuse => {}
        }
    }
    best
}

/// Refuses (403) a request from a page whose `Origin` the source's `allowed_origins` lacks.
/// Requests without `Origin` (servers, apps) are not concerned.
#[allow(clippy::result_large_err)] // the error is the response itself
pub fn check_origin(headers: &HeaderMap, source: &SourceConfig) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    if allow_for(source, origin) == Allow::Refuse {
        tracing::info!(source = %source.id, origin, "request from an origin the source does not allow");
        return Err(error(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            &format!("the origin `{origin}` is not in the allowed_origins of this write key's source"),
            Some("Origin"),
        ));
    }
    Ok(())
}

/// The method a browser path allows (its preflight names it); `None` for every other path.
fn allowed_method(path: &str) -> Option<&'static str> {
    if INGEST_PATHS.contains(&path) || path == "/v1/m" {
        Some("POST")
    } else if path
        .strip_prefix("/v1/projects/")
        .and_then(|p| p.strip_suffix("/settings"))
        .is_some_and(|k| !k.contains('/'))
    {
        Some("GET")
    } else {
        None
    }
}

/// The write key a request names without reading its body: the Basic auth user, or the
/// settings path's key.
fn key_of(req: &Request) -> Option<String> {
    let path = req.uri().path();
    if let Some(k) = path.strip_prefix("/v1/projects/").and_then(|p| p.strip_suffix("/settings")) {
        return Some(k.to_string());
    }
    let basic = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = basic.strip_prefix("Basic ").or_else(|| basic.strip_prefix("basic "))?;
    let user = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let user = String::from_utf8(user).ok()?;
    Some(user.split(':').next().unwrap_or_default().to_string())
}

/// The CORS layer (`axum::middleware::from_fn_with_state`) of the browser paths; every other
/// path passes through untouched.
pub async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(method) = allowed_method(req.uri().path()) else {
        return next.run(req).await;
    };
    let origin = req.headers().get(header::ORIGIN).cloned();
    let origin_str = origin.as_ref().and_then(|o| o.to_str().ok()).map(String::from);
    if req.method() == Method::OPTIONS {
        let allow = match &origin_str {
            None => Allow::Any,
            Some(o) => allow_any_source(&state.live.load(), o),
        };
        if allow == Allow::Refuse {
            let mut r = error(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "no event source allows this origin (allowed_origins)",
                Some("Origin"),
            );
            r.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
            return r;
        }
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        set_allow_origin(h, allow, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(method));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        return r;
    }
    // a readable answer for every request, errors included; the handlers refuse what is not allowed
    let allow = match &origin_str {
        None => Allow::Any,
        Some(o) => match key_of(&req).and_then(|k| state.source_for_key(&k)) {
            Some(source) => allow_for(&source, o),
            None => allow_any_source(&state.live.load(), o),
        },
    };
    let mut r = next.run(req).await;
    set_allow_origin(r.headers_mut(), allow, origin);
    r
}

/// Sets `Access-Control-Allow-Origin`; a refused origin is echoed so that the page can read the
/// refusal (the handlers answer it with 403).
fn set_allow_origin(h: &mut HeaderMap, allow: Allow, origin: Option<HeaderValue>) {
    let value = match (allow, origin) {
        (Allow::Echo | Allow::Refuse, Some(o)) => o,
        _ => HeaderValue::from_static("*"),
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// `GET /v1/projects/{writeKey}/settings`: what Analytics.js loads from its `cdnURL`. Only the
/// Segment.io integration (pointed here) and the consent settings; nothing that makes
/// Analytics.js load more code; its metrics sampling off.
async fn settings(State(s): State<AppState>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    let Some(source) = s.source_for_key(&key) else {
        return error(StatusCode::NOT_FOUND, "unknown_write_key", "unknown write key", Some("writeKey"));
    };
    if let Err(r) = check_origin(&headers, &source) {
        return r;
    }
    let (protocol, host) = match &s.public_url {
        Some(u) => (u.protocol, u.host.clone()),
        None => {
            let Some(host) = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && h.chars().all(|c| host_char(c) && c != '/'))
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_host",
                    "the request has no valid Host header",
                    Some("Host"),
                );
            };
            let https = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
            (if https { "https" } else { "http" }, host.to_string())
        }
    };
    let ws = s.live.load();
    let all_categories: Vec<&str> = ws.consent_categories.iter().filter(|c| c.enabled).map(|c| c.id.as_str()).collect();
    // R1: an enabled destination that no enabled category governs receives every event
    let has_unmapped = ws
        .destinations
        .iter()
        .filter(|d| d.enabled)
        .any(|d| !ws.consent_categories.iter().any(|c| c.enabled && c.destinations.contains(&d.id)));
    let body = json!({
        "integrations": {"Segment.io": {
            "apiKey": key,
            "apiHost": format!("{host}/v1"),
            "protocol": protocol,
            "unbundledIntegrations": [],
            "addBundledMetadata": true,
            "maybeBundledConfigIds": {},
        }},
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
        "edgeFunction": {},
        "consentSettings": {"allCategories": all_categories, "hasUnmappedDestinations": has_unmapped},
    });
    // a rotated key or a changed category is seen at the next page load
    ([(header::CACHE_CONTROL, "no-cache")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_gives_protocol_and_host() {
        let u = PublicUrl::parse("https://track.example.com/").unwrap();
        assert_eq!((u.protocol, u.host.as_str()), ("https", "track.example.com"));
        let u = PublicUrl::parse("http://127.0.0.1:8088/sluice").unwrap();
        assert_eq!((u.protocol, u.host.as_str()), ("http", "127.0.0.1:8088/sluice"));
        for bad in ["track.example.com", "ftp://x", "https://", "https://u@x", "https://x?q=1", "https://x#f"] {
            assert!(PublicUrl::parse(bad).unwrap_err().contains("--public-url"), "{bad}");
        }
    }

    #[test]
    fn preflight_takes_the_best_rule_of_any_event_source() {
        let ws = |yaml: &str| WorkspaceFile::from_yaml(yaml).unwrap();
        let listed = ws("sources: [{id: a, kind: events, write_key: a, allowed_origins: [\"https://a.example\"]}]");
        assert_eq!(allow_any_source(&listed, "https://a.example"), Allow::Echo);
        assert_eq!(allow_any_source(&listed, "https://b.example"), Allow::Refuse);
        let open = ws("sources: [{id: a, kind: events, write_key: a, allowed_origins: [\"https://a.example\"]},
            {id: b, kind: events, write_key: b}]");
        assert_eq!(allow_any_source(&open, "https://a.example"), Allow::Echo);
        assert_eq!(allow_any_source(&open, "https://b.example"), Allow::Any);
        let none = ws("sources: [{id: w, kind: sqlite, path: w.db}]");
        assert_eq!(allow_any_source(&none, "https://a.example"), Allow::Refuse);
    }
}
