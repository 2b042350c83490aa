//! The Tracking API: `POST /v1/{identify,track,page,screen,group,alias,batch}` (and the short
//! paths Segment's libraries use), compatible with Segment's HTTP Tracking API.

pub mod browser;
pub mod event;

use crate::state::{error, AppState};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use sluice_stream::writer::Job;
use std::io::Read;

/// The write key of a request: HTTP Basic auth user, else `writeKey` in the body.
fn write_key(headers: &HeaderMap, body: &Value) -> Option<String> {
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| s.split(':').next().unwrap_or_default().to_string())
        .filter(|s| !s.is_empty());
    basic.or_else(|| body.get("writeKey").and_then(Value::as_str).map(String::from))
}

/// The request body, gunzipped when `Content-Encoding: gzip`, within `limit` bytes.
#[allow(clippy::result_large_err)] // the error is the response itself
fn body_bytes(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, Response> {
    let gzip = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let too_large =
        || error(StatusCode::BAD_REQUEST, "body_too_large", &format!("the body exceeds {} KB", limit / 1024), None);
    if !gzip {
        return if raw.len() > limit { Err(too_large()) } else { Ok(raw) };
    }
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_gzip", &format!("the gzip body cannot be read: {e}"), None))?;
    if out.len() > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

fn message_id(source: &str, e: &Value) -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(source.as_bytes());
    h.update(e.to_string().as_bytes());
    h.update(&nanos.to_le_bytes());
    format!("sluice-{:032x}", h.digest128())
}

/// Longest a request waits for room in the in-flight budget before it is answered 503.
const INFLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the request says `Sec-GPC: 1`. A refusal signal fails closed: any `Sec-GPC` header,
/// or any element of one a proxy joined (`1, 1`), that is `1` counts.
fn gpc_signal(headers: &HeaderMap) -> bool {
    headers.get_all("sec-gpc").iter().any(|v| v.as_bytes().split(|b| *b == b',').any(|x| x.trim_ascii() == b"1"))
}

/// Handles one request; `kind` is the call of a single-event path, `None` for `/v1/batch`.
pub async fn handle(state: AppState, kind: Option<&'static str>, headers: HeaderMap, raw: Bytes) -> Response {
    use tracing::Instrument;
    let span = tracing::debug_span!("ingest", call = kind.unwrap_or("batch"), bytes = raw.len());
    handle_in_span(state, kind, headers, raw).instrument(span).await
}

async fn handle_in_span(state: AppState, kind: Option<&'static str>, headers: HeaderMap, raw: Bytes) -> Response {
    let limit = if kind.is_some() { event::MAX_EVENT_BYTES } else { event::MAX_BATCH_BYTES };
    let bytes = match body_bytes(&headers, raw, limit) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // held until the writer answered: what many clients post at once waits here, bounded
    let kb = u32::try_from(bytes.len() / 1024 + 1).unwrap_or(u32::MAX);
    let _budget = match tokio::time::timeout(INFLIGHT_WAIT, state.inflight.clone().acquire_many_owned(kb)).await {
        Ok(Ok(permit)) => permit,
        _ => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many events are being received right now; retry",
                None,
            );
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            return r;
        }
    };
    let mut body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_json", &format!("malformed JSON: {e}"), None),
    };
    let Some(key) = write_key(&headers, &body) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing_write_key",
            "no write key: send it as the HTTP Basic auth user or as `writeKey`",
            None,
        );
    };
    let Some(source) = state.source_for_key(&key) else {
        return error(StatusCode::UNAUTHORIZED, "unknown_write_key", "unknown write key", None);
    };
    if let Err(r) = browser::check_origin(&headers, &source) {
        return r;
    }
    // R14: Global Privacy Control, for a source that reads it
    let gpc: Vec<String> = match source.events().and_then(|e| e.gpc_refuses.as_ref()) {
        Some(refuses) if gpc_signal(&headers) => refuses.clone(),
        _ => Vec::new(),
    };
    let source = source.id;
    if let Some(o) = body.as_object_mut() {
        o.remove("writeKey");
    }
    let received = chrono::Utc::now();
    let (items, sent_at) = match kind {
        Some(_) => (vec![body], None),
        None => {
            let sent_at = body.get("sentAt").cloned();
            match body.get_mut("batch").map(Value::take) {
                Some(Value::Array(items)) => (items, sent_at),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_batch",
                        "`batch` must be an array of events",
                        Some("batch"),
                    )
                }
            }
        }
    };
    let mut events = Vec::with_capacity(items.len());
    let mut invalid = Vec::new();
    for item in items {
        match event::normalize(item, kind, sent_at.as_ref(), received, |e| message_id(&source, e)) {
            Ok(e) if gpc.is_empty() => events.push(sluice_stream::writer::Prepared::new(e)),
            Ok(e) => events.push(sluice_stream::writer::Prepared::new(e).with_gpc(&gpc)),
            Err((reason, raw)) => {
                // its identifiers, read before the body is cut, so a suppressed person's invalid
                // event is dropped like a valid one
                let ids = ["userId", "anonymousId", "previousId"]
                    .into_iter()
                    .filter_map(|k| event::nonempty_id(raw.get(k)))
                    .collect();
                invalid.push(sluice_stream::writer::Invalid {
                    reason,
                    body: sluice_stream::store::truncate_invalid(raw.to_string()),
                    ids,
                })
            }
        }
    }
    // a single-event call with an invalid event is refused; in a batch it is reported, not lost
    if kind.is_some() && events.is_empty() {
        if let Some(i) = invalid.first() {
            return error(StatusCode::BAD_REQUEST, "invalid_event", &i.reason, None);
        }
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    let job = Job { source, events, invalid, reply };
    if state.jobs.send(job).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down", None);
    }
    match rx.await.map(|a| a.result) {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"success": true}))).into_response(),
        Ok(Err(_)) | Err(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "store_failed", "the events could not be stored; retry", None)
        }
    }
}
