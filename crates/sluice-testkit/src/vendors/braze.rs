//! A fake of Braze's REST API.
//!
//! Documented behaviour it implements:
//! - `POST /users/track` (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/):
//!   `Authorization: Bearer <REST API key>` (else 401 `{"message":"Invalid API key"}`); body
//!   `{"attributes":[...],"events":[...],"purchases":[...]}`, at most 75 objects per array
//!   (else 400 with a fatal `message`); each object needs `external_id`; events need `name` and
//!   `time`. Non-fatal per-object errors come back in a 201
//!   `{"message":"success","attributes_processed":n,"errors":[{"type","input_array","index"}]}`.
//! - `POST /users/delete` (https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/):
//!   `{"external_ids":[...]}`, at most 50, answered `{"deleted":n,"message":"success"}`.
//! - Rate limits (https://www.braze.com/docs/api/api_limits/): 429 with the lowercase
//!   `x-ratelimit-limit/-remaining/-reset` headers, `reset` in epoch seconds (no `Retry-After`).

use super::{bearer, Book, Http, Resp, Vendor};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The API key the fake accepts.
pub const API_KEY: &str = "braze-test-key";

/// The Braze fake's contract.
pub struct Braze;

/// A running Braze fake.
pub type BrazeFake = super::FakeServer<Braze>;

/// Starts a Braze fake.
pub fn start() -> BrazeFake {
    super::FakeServer::start(Braze)
}

fn ids(v: &Value, array: &str, key: &str) -> Vec<String> {
    v[array].as_array().into_iter().flatten().filter_map(|o| o[key].as_str().map(str::to_string)).collect()
}

impl Vendor for Braze {
    fn kind(&self) -> &'static str {
        "braze"
    }

    fn settings(&self, base: &str) -> serde_json::Map<String, Value> {
        json!({"endpoint": base, "api_key": API_KEY}).as_object().cloned().unwrap_or_default()
    }

    fn identifiers(&self, req: &Http) -> Vec<String> {
        let Some(v) = req.json() else { return vec![] };
        let mut out = ids(&v, "attributes", "external_id");
        out.extend(ids(&v, "events", "external_id"));
        out.extend(v["external_ids"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)));
        out
    }

    fn throttle(&self, wait: Duration) -> Resp {
        let reset = (SystemTime::now() + wait).duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + 1;
        Resp::json(429, json!({"message": "API rate limit exceeded"}))
            .header("x-ratelimit-limit", "3000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", reset.to_string())
    }

    fn handle(&self, req: &Http, book: &mut Book) -> Resp {
        if bearer(req) != Some(API_KEY) {
            return Resp::json(401, json!({"message": "Invalid API key: (redacted)"}));
        }
        let Some(v) = req.json().filter(|_| req.method == "POST") else {
            return Resp::json(400, json!({"message": "Invalid JSON in request body"}));
        };
        match req.path.as_str() {
            "/users/track" => track(&v, book),
            "/users/delete" => {
                let list = v["external_ids"].as_array().cloned().unwrap_or_default();
                if list.len() > 50 {
                    return Resp::json(400, json!({"message": "You can only delete up to 50 users at a time"}));
                }
                for id in list.iter().filter_map(Value::as_str) {
                    book.delete(id);
                }
                Resp::json(201, json!({"deleted": list.len(), "message": "success"}))
            }
            _ => Resp::json(404, json!({"message": "Not found"})),
        }
    }
}

fn track(v: &Value, book: &mut Book) -> Resp {
    for array in ["attributes", "events", "purchases"] {
        if v[array].as_array().is_some_and(|a| a.len() > 75) {
            return Resp::json(
                400,
                json!({"message": format!("Too many {array} objects: the limit is 75 per request"), "errors": []}),
            );
        }
    }
    let mut errors = vec![];
    let mut processed = 0;
    for (array, required) in [("attributes", &[][..]), ("events", &["name", "time"][..])] {
        for (i, o) in v[array].as_array().into_iter().flatten().enumerate() {
            let Some(id) = o["external_id"].as_str() else {
                errors.push(json!({"type": "Received null or no external_id, braze_id, user_alias, email or phone", "input_array": array, "index": i}));
                continue;
            };
            if let Some(f) = required.iter().find(|f| o[**f].is_null()) {
                errors.push(json!({"type": format!("'{f}' is required"), "input_array": array, "index": i}));
                continue;
            }
            if book.reject.contains(id) {
                errors.push(json!({"type": "'email' is not a valid email address", "input_array": array, "index": i}));
                continue;
            }
            if array == "attributes" {
                let mut attrs = o.clone();
                if let Some(m) = attrs.as_object_mut() {
                    m.remove("external_id");
                }
                book.upsert(id, &attrs);
                processed += 1;
            } else {
                book.events.push((id.to_string(), o["name"].as_str().unwrap_or("").to_string()));
            }
        }
    }
    let mut body = json!({"message": "success", "attributes_processed": processed});
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    Resp::json(201, body)
}
