//! The routers: the public side (ingest, browser settings, health) and the private side (read
//! endpoints, control API), and their fallbacks. Handlers share [`crate::state`], not this
//! module, so nothing imports back into it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use crate::state::{error, AppState, INFLIGHT_KB};

macro_rules! call {
    ($kind:expr) => {
        post(|State(s): State<AppState>, h: HeaderMap, b: Result<Bytes, BytesRejection>| async move {
            match b {
                Ok(b) => crate::ingest::handle(s, $kind, h, b).await,
                Err(e) => body_rejection(e),
            }
        })
    };
}

/// A body that could not be read (too large, too slow, broken) in the one error shape.
pub fn body_rejection(e: BytesRejection) -> Response {
    let status = e.status();
    let (code, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ("body_too_large", format!("the body exceeds {} KB", crate::ingest::event::MAX_BATCH_BYTES / 1024))
    } else {
        ("unreadable_body", format!("the body could not be read: {}", e.body_text()))
    };
    error(status, code, &message, None)
}

/// The public side (SPEC §9): ingestion (long and short paths) and `/health`, authenticated by
/// write keys only. Nothing here reveals stored data.
pub fn public_router(state: AppState) -> Router {
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
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(crate::ingest::browser::routes())
        // before the layers, so that preflights and 405s pass through the CORS layer
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::ingest::browser::cors))
        .layer(axum::extract::DefaultBodyLimit::max(crate::ingest::event::MAX_BATCH_BYTES + 64 * 1024))
        .with_state(state)
}

/// The private side: the read endpoints (debugger, profiles, overview, metrics) and the control
/// API, every route behind an owner or member token; and the web UI ([`crate::ui`]), behind its
/// login.
pub fn private_router(state: AppState, control: crate::control::ControlState) -> Router {
    let reads = Router::new()
        .route("/v1/debugger/{source}", get(crate::read::debugger))
        .route("/v1/profiles/{id}", get(crate::read::profile))
        .route("/v1/overview", get(crate::read::overview))
        .route("/metrics", get(crate::read::metrics))
        .with_state(state.clone());
    // every private route, the OpenAPI document included, answers 401 without a token
    let ui = crate::ui::router(state, control.clone());
    reads
        .merge(crate::control::router(control.clone()))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(control, crate::control::require_token))
        // the web UI has its own sessions: a page without one redirects to its login page
        .merge(ui)
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method", None)
}

/// Answers paths no route serves in the one error shape (methods a route does not take are
/// answered by each side's own router, inside its layers).
pub fn with_fallbacks(app: Router) -> Router {
    with_fallback_message(app, "no such endpoint")
}

/// [`with_fallbacks`] with its own message (the public side of a split server says where the
/// private endpoints are).
pub fn with_fallback_message(app: Router, message: &'static str) -> Router {
    app.fallback(move || async move { error(StatusCode::NOT_FOUND, "not_found", message, Some("path")) })
}
