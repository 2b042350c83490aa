//! A fake of Iterable's Users and Events APIs.
//!
//! Documented behaviour it implements (https://api.iterable.com/api/docs, "users" and
//! "events"; https://support.iterable.com/hc/en-us/articles/204780579-API-Overview-and-Sample-Payloads):
//! - `Api-Key: <server-side key>` header on every call, else 401
//!   `{"msg":"Invalid API key","code":"InvalidApiKey","params":null}`.
//! - `POST /api/users/bulkUpdate` `{"users":[{"userId","email","dataFields","preferUserId"}]}`,
//!   at most 1,000 users (else 400 `BadParams`): 200
//!   `{"successCount","failCount","invalidEmails":[],"invalidUserIds":[],"failedUpdates":
//!   {"invalidUserIds":[..],"notFoundUserIds":[..],...}}` naming the users it refused.
//! - `POST /api/events/trackBulk` `{"events":[{"userId","eventName","createdAt","dataFields","id"}]}`:
//!   the same success/fail counts and `failedUpdates`.
//! - `DELETE /api/users/byUserId/{userId}`: 200 `{"msg":"...","code":"Success","params":null}`
//!   (asynchronous in Iterable; the fake deletes at once; an unknown user is answered as done).
//! - Rate limits: 429 with a plain-text body (leaky bucket).

use super::{Book, Http, Resp, Vendor};
use serde_json::{json, Value};
use std::time::Duration;

/// The API key the fake accepts.
pub const API_KEY: &str = "iterable-test-key";

/// The Iterable fake's contract.
pub struct Iterable;

/// A running Iterable fake.
pub type IterableFake = super::FakeServer<Iterable>;

/// Starts an Iterable fake.
pub fn start() -> IterableFake {
    super::FakeServer::start(Iterable)
}

fn decode(seg: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", seg.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Vendor for Iterable {
    fn kind(&self) -> &'static str {
        "iterable"
    }

    fn settings(&self, base: &str) -> serde_json::Map<String, Value> {
        json!({"endpoint": base, "api_key": API_KEY}).as_object().cloned().unwrap_or_default()
    }

    fn identifiers(&self, req: &Http) -> Vec<String> {
        if let Some(id) = req.path.strip_prefix("/api/users/byUserId/") {
            return vec![decode(id)];
        }
        let Some(v) = req.json() else { return vec![] };
        ["users", "events"]
            .iter()
            .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
            .filter_map(|u| u["userId"].as_str().map(str::to_string))
            .collect()
    }

    fn throttle(&self, wait: Duration) -> Resp {
        Resp::text(429, "Rate limit exceeded").header("Retry-After", wait.as_secs().max(1).to_string())
    }

    fn handle(&self, req: &Http, book: &mut Book) -> Resp {
        if req.header("api-key") != Some(API_KEY) {
            return Resp::json(401, json!({"msg": "Invalid API key", "code": "InvalidApiKey", "params": null}));
        }
        if req.method == "DELETE" {
            let Some(id) = req.path.strip_prefix("/api/users/byUserId/") else { return Resp::text(404, "Not Found") };
            book.delete(&decode(id));
            return Resp::json(200, json!({"msg": "User deletion queued", "code": "Success", "params": null}));
        }
        let key = match req.path.as_str() {
            "/api/users/bulkUpdate" => "users",
            "/api/events/trackBulk" => "events",
            _ => return Resp::text(404, "Not Found"),
        };
        let Some(list) = req.json().and_then(|v| v[key].as_array().cloned()) else {
            return Resp::json(400, json!({"msg": format!("{key} is required"), "code": "BadParams", "params": null}));
        };
        if list.len() > 1000 {
            return Resp::json(
                400,
                json!({"msg": "Too many items: at most 1000", "code": "BadParams", "params": null}),
            );
        }
        let (mut ok, mut invalid) = (0, vec![]);
        for u in &list {
            let Some(id) = u["userId"].as_str().filter(|id| !book.reject.contains(*id)) else {
                invalid.push(u["userId"].clone());
                continue;
            };
            ok += 1;
            if key == "users" {
                book.upsert(id, &u["dataFields"]);
            } else {
                book.events.push((id.to_string(), u["eventName"].as_str().unwrap_or_default().to_string()));
            }
        }
        Resp::json(
            200,
            json!({"successCount": ok, "failCount": invalid.len(), "invalidEmails": [], "invalidUserIds": [],
            "failedUpdates": {"invalidEmails": [], "invalidUserIds": invalid, "notFoundEmails": [], "notFoundUserIds": []}}),
        )
    }
}
