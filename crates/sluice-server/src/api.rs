//! Routes, shared state, the error shape, and the read endpoints (debugger, profiles, overview,
//! metrics).

use crate::metrics::Metrics;
use crate::writer::Job;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The live workspace (event sources and their write keys follow it at once).
    pub live: crate::Live,
    /// The writer's queue.
    pub jobs: SyncSender<Job>,
    /// The state folder (for read connections).
    pub dir: Arc<PathBuf>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `serve --public-url`: where browsers reach the server (else the request's `Host`).
    pub public_url: Option<Arc<crate::ingest::browser::PublicUrl>>,
}

impl AppState {
    /// The event source whose write key is `key`, in the live workspace: a rotated or removed
    /// key stops working at once, a new one works at once.
    pub fn source_for_key(&self, key: &str) -> Option<sluice_core::SourceConfig> {
        if key.is_empty() {
            return None;
        }
        self.live
            .load()
            .sources
            .iter()
            .find(|s| s.kind == sluice_core::SourceKind::Events && s.write_key.as_deref() == Some(key))
            .cloned()
    }
}

/// The one error shape: `{"error": {"code", "message", "field"}}`; internals never leak.
pub fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    (status, Json(json!({"success": false, "error": {"code": code, "message": message, "field": field}})))
        .into_response()
}

macro_rules! call {
    ($kind:expr) => {
        post(|State(s): State<AppState>, h: HeaderMap, b: Bytes| crate::ingest::handle(s, $kind, h, b))
    };
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/identify", call!(Some("identify")))
        .route("/v1/track", call!(Some("track")))
        .route("/v1/page", call!(Some("page")))
        .route("/v1/screen", call!(Some("screen")))
        .route("/v1/group", call!(Some("group")))
        .route("/v1/alias", call!(Some("alias")))
        .route("/v1/batch", call!(None))
        .route("/v1/import", call!(None))
        // the short paths Segment's browser library posts to
        .route("/v1/i", call!(Some("identify")))
        .route("/v1/t", call!(Some("track")))
        .route("/v1/p", call!(Some("page")))
        .route("/v1/s", call!(Some("screen")))
        .route("/v1/g", call!(Some("group")))
        .route("/v1/a", call!(Some("alias")))
        .route("/v1/b", call!(None))
        .route("/v1/debugger/{source}", get(debugger))
        .route("/v1/profiles/{id}", get(profile))
        .route("/v1/overview", get(overview))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(crate::ingest::browser::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::ingest::browser::cors))
        .layer(axum::extract::DefaultBodyLimit::max(crate::ingest::event::MAX_BATCH_BYTES + 64 * 1024))
        .with_state(state)
}

#[allow(clippy::result_large_err)] // the error is the response itself
fn read_conn(s: &AppState) -> Result<rusqlite::Connection, Response> {
    crate::store::open(&s.dir).map_err(|e| {
        tracing::error!(error = %e, "cannot open the event log");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", None)
    })
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "read endpoint failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", None)
}

async fn debugger(
    State(s): State<AppState>,
    Path(source): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50usize).min(1000);
    let conn = match read_conn(&s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let events = match crate::store::recent_events(&conn, &source, limit) {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let invalid = crate::store::recent_invalid(&conn, &source, limit).unwrap_or_default();
    Json(json!({"source": source, "events": events, "invalid": invalid})).into_response()
}

/// The profile JSON of SPEC §7 (`consent`, `consent_conflict`) with identifiers and traits.
pub fn profile_json(p: &sluice_core::profiles::Profile) -> Value {
    json!({
        "user_ids": p.user_ids,
        "anonymous_ids": p.anonymous_ids,
        "traits": p.traits,
        "consent": p.consent_traits(),
        "consent_conflict": p.consent_conflict(),
    })
}

async fn profile(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let conn = match read_conn(&s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::store::profile_of(&conn, &id) {
        Ok(Some(p)) => Json(profile_json(&p)).into_response(),
        Ok(None) => {
            error(StatusCode::NOT_FOUND, "not_found", &format!("no profile has the identifier `{id}`"), Some("id"))
        }
        Err(e) => internal(e),
    }
}

async fn overview(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let minutes: i64 = q.get("minutes").and_then(|m| m.parse().ok()).unwrap_or(60).clamp(1, 60 * 24 * 90);
    let conn = match read_conn(&s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let since = chrono::Utc::now().timestamp() / 60 - minutes + 1;
    match crate::store::overview(&conn, since) {
        Ok(v) => Json(json!({"window_minutes": minutes, "destinations": v})).into_response(),
        Err(e) => internal(e),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(),
    )
        .into_response()
}
