//! A fake of Amplitude's ingestion and deletion APIs.
//!
//! Documented behaviour it implements:
//! - `POST /2/httpapi` (https://amplitude.com/docs/apis/analytics/http-v2): JSON
//!   `{"api_key","events":[{"user_id","event_type","time","insert_id",...}],"options":{"min_id_length"}}`;
//!   a wrong key is 400 `{"code":400,"error":"Invalid API key: ..."}`; more than 2,000 events or
//!   a body of 1 MB or more is 413 `{"code":413,"error":"Payload too large"}`; a `user_id`
//!   shorter than `min_id_length` (default 5) or a missing `event_type` rejects the whole
//!   request with 400 `{"code":400,"error":..,"events_with_invalid_fields":{"user_id":[i]},
//!   "events_with_missing_fields":{"event_type":[i]}}`; success is
//!   `{"code":200,"events_ingested":n,"payload_size_bytes":..,"server_upload_time":..}`.
//! - Throttling (same page): 429 `{"code":429,"error":"Too many requests for some devices and users",
//!   "eps_threshold":30,"throttled_users":{...},"throttled_events":[...]}` (no `Retry-After`:
//!   the doc says to pause 15-30 s; the fake adds `Retry-After` so tests stay short).
//! - `POST /identify` (https://amplitude.com/docs/apis/analytics/identify): form
//!   `api_key=..&identification=[{"user_id","user_properties":{"$set":{..}}}]`; 200 `success`;
//!   a bad key or missing `identification` is 400 with a text body.
//! - `POST /api/2/deletions/users` (https://amplitude.com/docs/apis/analytics/user-privacy):
//!   Basic `api_key:secret_key`, `{"user_ids":[≤100],"requester","ignore_invalid_id","delete_from_org"}`;
//!   200 with the deletion job `[{"day","status":"staging","amplitude_ids":[..]}]`.
//!
//! A record scripted with `Fault::RejectRecord` is treated as an invalid `user_id` (httpapi:
//! named in `events_with_invalid_fields`; identify: the whole request 400, as Amplitude answers).

use super::{basic, Book, Http, Resp, Vendor};
use serde_json::{json, Value};
use std::time::Duration;

/// The API key the fake accepts.
pub const API_KEY: &str = "amp-test-key";
/// The secret key the fake accepts.
pub const SECRET_KEY: &str = "amp-test-secret";

/// The Amplitude fake's contract.
pub struct Amplitude;

/// A running Amplitude fake.
pub type AmplitudeFake = super::FakeServer<Amplitude>;

/// Starts an Amplitude fake.
pub fn start() -> AmplitudeFake {
    super::FakeServer::start(Amplitude)
}

fn identification(req: &Http) -> Option<Vec<Value>> {
    serde_json::from_str::<Value>(&req.form("identification")?).ok()?.as_array().cloned()
}

impl Vendor for Amplitude {
    fn kind(&self) -> &'static str {
        "amplitude"
    }

    fn settings(&self, base: &str) -> serde_json::Map<String, Value> {
        json!({"endpoint": base, "deletion_endpoint": base, "api_key": API_KEY, "secret_key": SECRET_KEY})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn identifiers(&self, req: &Http) -> Vec<String> {
        let pick = |a: &[Value]| a.iter().filter_map(|e| e["user_id"].as_str().map(str::to_string)).collect::<Vec<_>>();
        match req.path.as_str() {
            "/identify" => identification(req).map(|a| pick(&a)).unwrap_or_default(),
            "/2/httpapi" => req.json().and_then(|v| v["events"].as_array().map(|a| pick(a))).unwrap_or_default(),
            _ => req
                .json()
                .and_then(|v| v["user_ids"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        }
    }

    fn throttle(&self, wait: Duration) -> Resp {
        Resp::json(
            429,
            json!({"code": 429, "error": "Too many requests for some devices and users", "eps_threshold": 30,
            "throttled_users": {}, "throttled_events": [0]}),
        )
        .header("Retry-After", wait.as_secs().max(1).to_string())
    }

    fn handle(&self, req: &Http, book: &mut Book) -> Resp {
        if req.method != "POST" {
            return Resp::text(405, "Method Not Allowed");
        }
        match req.path.as_str() {
            "/2/httpapi" => httpapi(req, book),
            "/identify" => {
                if req.form("api_key").as_deref() != Some(API_KEY) {
                    return Resp::text(400, "invalid api_key");
                }
                let Some(list) = identification(req) else { return Resp::text(400, "missing identification") };
                if list.len() > 2000 {
                    return Resp::text(413, "Payload too large");
                }
                if list.iter().any(|u| u["user_id"].as_str().is_none_or(|id| book.reject.contains(id))) {
                    return Resp::text(400, "invalid user_id in identification");
                }
                for u in &list {
                    let id = u["user_id"].as_str().unwrap_or_default();
                    book.upsert(id, &u["user_properties"]["$set"]);
                }
                Resp::text(200, "success")
            }
            "/api/2/deletions/users" => {
                if basic(req) != Some((API_KEY.into(), SECRET_KEY.into())) {
                    return Resp::text(401, "Invalid credentials");
                }
                let ids: Vec<String> = self.identifiers(req);
                if ids.len() > 100 {
                    return Resp::json(400, json!({"error": "user_ids: at most 100 per request"}));
                }
                for id in &ids {
                    book.delete(id);
                }
                Resp::json(200, json!([{"day": "2026-01-01", "status": "staging", "amplitude_ids": [], "app": 1}]))
            }
            _ => Resp::text(404, "Not Found"),
        }
    }
}

fn httpapi(req: &Http, book: &mut Book) -> Resp {
    let Some(v) = req.json() else {
        return Resp::json(400, json!({"code": 400, "error": "Invalid JSON request body"}));
    };
    if v["api_key"] != API_KEY {
        return Resp::json(400, json!({"code": 400, "error": "Invalid API key: (redacted)"}));
    }
    let events = v["events"].as_array().cloned().unwrap_or_default();
    if events.len() > 2000 || req.body.len() >= 1_000_000 {
        return Resp::json(413, json!({"code": 413, "error": "Payload too large"}));
    }
    let min = v["options"]["min_id_length"].as_u64().unwrap_or(5) as usize;
    let (mut invalid, mut missing) = (vec![], vec![]);
    for (i, e) in events.iter().enumerate() {
        match e["user_id"].as_str() {
            Some(id) if id.len() >= min && !book.reject.contains(id) => {}
            _ => invalid.push(i),
        }
        if e["event_type"].as_str().is_none() {
            missing.push(i);
        }
    }
    if !invalid.is_empty() || !missing.is_empty() {
        let mut body = json!({"code": 400, "error": "Request missing required field or has invalid field values"});
        if !invalid.is_empty() {
            body["events_with_invalid_fields"] = json!({"user_id": invalid});
        }
        if !missing.is_empty() {
            body["events_with_missing_fields"] = json!({"event_type": missing});
        }
        return Resp::json(400, body);
    }
    for e in &events {
        book.events.push((
            e["user_id"].as_str().unwrap_or_default().into(),
            e["event_type"].as_str().unwrap_or_default().into(),
        ));
    }
    Resp::json(
        200,
        json!({"code": 200, "events_ingested": events.len(), "payload_size_bytes": req.body.len(), "server_upload_time": 1}),
    )
}
