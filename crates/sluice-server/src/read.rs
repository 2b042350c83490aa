//! The private read endpoints: debugger, profiles, overview, metrics (behind a token).

use crate::state::{error, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub use sluice_stream::store::profile_json;
use std::collections::HashMap;

#[allow(clippy::result_large_err)] // the error is the response itself
fn read_conn(s: &AppState) -> Result<rusqlite::Connection, Response> {
    sluice_stream::store::open(&s.dir).map_err(|e| {
        tracing::error!(error = %e, "cannot open the event log");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", None)
    })
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "read endpoint failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", None)
}

pub async fn debugger(
    State(s): State<AppState>,
    Path(source): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50usize).clamp(1, 1000);
    if let Some(b) = &s.bus {
        let src = source.clone();
        let read = b
            .with(move |c| {
                let limit = limit as i64;
                let (events, truncated) =
                    sluice_stream::bus::pg::recent_events(c, &src, limit, sluice_stream::store::DEBUG_BYTES)?;
                Ok((events, truncated, sluice_stream::bus::pg::recent_invalid(c, &src, limit.min(100))?))
            })
            .await;
        return match read {
            Ok((events, truncated, invalid)) => {
                Json(json!({"source": source, "events": events, "invalid": invalid, "truncated": truncated}))
                    .into_response()
            }
            Err(e) => internal(e),
        };
    }
    let conn = match read_conn(&s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (events, truncated) = match sluice_stream::store::recent_events(&conn, &source, limit) {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let invalid = sluice_stream::store::recent_invalid(&conn, &source, limit.min(100)).unwrap_or_default();
    Json(json!({"source": source, "events": events, "invalid": invalid, "truncated": truncated})).into_response()
}

pub async fn profile(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let found = match &s.bus {
        Some(b) => {
            let i = id.clone();
            b.with(move |c| sluice_stream::bus::pg::profile_of(c, &i)).await
        }
        None => match read_conn(&s) {
            Ok(conn) => sluice_stream::store::profile_of(&conn, &id).map_err(|e| e.to_string()),
            Err(r) => return r,
        },
    };
    match found {
        Ok(Some(p)) => Json(profile_json(&p)).into_response(),
        Ok(None) => {
            error(StatusCode::NOT_FOUND, "not_found", &format!("no profile has the identifier `{id}`"), Some("id"))
        }
        Err(e) => internal(e),
    }
}

/// The counters of the streaming overview, each per destination.
pub const OVERVIEW_COUNTERS: [&str; 9] =
    ["received", "routed", "withheld", "turned_off", "disabled", "delivered", "failed", "retried", "pending"];

pub async fn overview(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let minutes: i64 = q.get("minutes").and_then(|m| m.parse().ok()).unwrap_or(60).clamp(1, 60 * 24 * 90);
    let since = chrono::Utc::now().timestamp() / 60 - minutes + 1;
    let read = match &s.bus {
        Some(b) => {
            let ids: Vec<String> = s.live.load().destinations.iter().map(|d| d.id.clone()).collect();
            let pending = b.pending(&ids).await;
            b.with(move |c| sluice_stream::bus::pg::overview(c, since)).await.map(|(mut v, dropped)| {
                for (d, n) in pending {
                    if let Some(m) = v.as_object_mut() {
                        m.entry(d).or_insert_with(|| json!({}))["pending"] = json!(n);
                    }
                }
                (v, dropped)
            })
        }
        None => match read_conn(&s) {
            Ok(conn) => sluice_stream::store::overview(&conn, since)
                .map(|v| (v, sluice_stream::store::dropped_suppressed(&conn, since).unwrap_or(0)))
                .map_err(|e| e.to_string()),
            Err(r) => return r,
        },
    };
    match read {
        Ok((mut v, dropped)) => {
            // every destination of the workspace, every counter: a zero is an answer too
            if let Some(map) = v.as_object_mut() {
                for d in &s.live.load().destinations {
                    let entry = map.entry(d.id.clone()).or_insert_with(|| json!({}));
                    if let Some(e) = entry.as_object_mut() {
                        for k in OVERVIEW_COUNTERS {
                            e.entry(k).or_insert(json!(0));
                        }
                    }
                }
            }
            // events of suppressed identifiers dropped at ingest (privacy requests, never stored)
            Json(json!({"window_minutes": minutes, "destinations": v, "dropped_suppressed": dropped})).into_response()
        }
        Err(e) => internal(e),
    }
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        // Reverse ETL runs in this process too (scheduled and API-started syncs)
        s.metrics.render_with(sluice_engine::metrics::register),
    )
        .into_response()
}
