//! A fake of Mixpanel's ingestion APIs.
//!
//! Documented behaviour it implements:
//! - `POST /engage` (https://developer.mixpanel.com/reference/profile-set,
//!   .../reference/delete-profile, .../reference/profile-batch-update): a JSON array of at most
//!   2,000 updates `{"$token","$distinct_id","$set":{..}}` or `{..,"$delete":"null"}`; no auth
//!   header, the token is in each update. It answers **200 even when an update is refused**:
//!   with `?verbose=1` the body is `{"status":1,"error":null}` or `{"status":0,"error":".."}`
//!   (a wrong token, too many updates, a refused record: the whole request is refused).
//! - `POST /import?strict=1` (https://developer.mixpanel.com/reference/import-events): Basic
//!   auth (the project token as user with an empty password, or a service account plus
//!   `project_id`), a JSON array of at most 2,000 events and 10 MB (else 413); every event needs
//!   `properties.time`, `distinct_id` and `$insert_id`. Success:
//!   `{"code":200,"num_records_imported":n,"status":"OK"}`; **400 is a partial success**:
//!   `{"code":400,"num_records_imported":k,"status":"Bad Request","failed_records":[{"index",
//!   "$insert_id","field","message"}]}` (the others were imported).
//! - Throttling (https://developer.mixpanel.com/reference/import-events#rate-limits): 429.

use super::{basic, Book, Http, Resp, Vendor};
use serde_json::{json, Value};

/// The project token the fake accepts.
pub const TOKEN: &str = "mp-test-token";

/// The Mixpanel fake's contract.
pub struct Mixpanel;

/// A running Mixpanel fake.
pub type MixpanelFake = super::FakeServer<Mixpanel>;

/// Starts a Mixpanel fake.
pub fn start() -> MixpanelFake {
    super::FakeServer::start(Mixpanel)
}

impl Vendor for Mixpanel {
    fn kind(&self) -> &'static str {
        "mixpanel"
    }

    fn settings(&self, base: &str) -> serde_json::Map<String, Value> {
        json!({"endpoint": base, "project_token": TOKEN}).as_object().cloned().unwrap_or_default()
    }

    fn identifiers(&self, req: &Http) -> Vec<String> {
        let Some(Value::Array(a)) = req.json() else { return vec![] };
        a.iter()
            .filter_map(|u| u["$distinct_id"].as_str().or(u["properties"]["distinct_id"].as_str()).map(str::to_string))
            .collect()
    }

    fn handle(&self, req: &Http, book: &mut Book) -> Resp {
        if req.method != "POST" {
            return Resp::text(405, "Method Not Allowed");
        }
        if req.body.len() > 10_000_000 {
            return Resp::json(
                413,
                json!({"code": 413, "error": "request body too large", "status": "Payload Too Large"}),
            );
        }
        match req.path.as_str() {
            "/engage" => {
                let refuse = |e: &str| Resp::json(200, json!({"status": 0, "error": e}));
                let Some(Value::Array(updates)) = req.json() else { return refuse("data, missing or empty") };
                if updates.len() > 2000 {
                    return refuse("too many updates: at most 2000 per request");
                }
                for u in &updates {
                    if u["$token"] != TOKEN {
                        return refuse("$token, invalid token");
                    }
                    match u["$distinct_id"].as_str() {
                        Some(id) if book.reject.contains(id) => {
                            return refuse(&format!("$distinct_id {id}: invalid $set value"))
                        }
                        Some(_) => {}
                        None => return refuse("$distinct_id, missing"),
                    }
                }
                for u in &updates {
                    let id = u["$distinct_id"].as_str().unwrap_or_default();
                    if u.get("$delete").is_some() {
                        book.delete(id);
                    } else {
                        book.upsert(id, &u["$set"]);
                    }
                }
                Resp::json(200, json!({"status": 1, "error": null}))
            }
            "/import" => {
                let ok_auth = match basic(req) {
                    Some((u, p)) => (u == TOKEN && p.is_empty()) || req.query_param("project_id").is_some(),
                    None => false,
                };
                if !ok_auth {
                    return Resp::json(
                        401,
                        json!({"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}),
                    );
                }
                let Some(Value::Array(events)) = req.json() else {
                    return Resp::json(
                        400,
                        json!({"code": 400, "error": "unable to parse request body", "status": "Bad Request"}),
                    );
                };
                if events.len() > 2000 {
                    return Resp::json(
                        413,
                        json!({"code": 413, "error": "too many events: at most 2000", "status": "Payload Too Large"}),
                    );
                }
                let mut failed = vec![];
                for (i, e) in events.iter().enumerate() {
                    let p = &e["properties"];
                    let bad = if p["time"].is_null() {
                        Some(("properties.time", "'properties.time' is invalid: must be specified"))
                    } else if p["$insert_id"].is_null() {
                        Some(("properties.$insert_id", "'properties.$insert_id' is required with strict=1"))
                    } else if p["distinct_id"].as_str().is_none_or(|d| book.reject.contains(d)) {
                        Some(("properties.distinct_id", "'properties.distinct_id' is invalid"))
                    } else {
                        None
                    };
                    match bad {
                        Some((field, message)) => failed.push(
                            json!({"index": i, "$insert_id": p["$insert_id"], "field": field, "message": message}),
                        ),
                        None => book.events.push((
                            p["distinct_id"].as_str().unwrap_or_default().into(),
                            e["event"].as_str().unwrap_or_default().into(),
                        )),
                    }
                }
                let imported = events.len() - failed.len();
                if failed.is_empty() {
                    Resp::json(200, json!({"code": 200, "num_records_imported": imported, "status": "OK"}))
                } else {
                    Resp::json(
                        400,
                        json!({"code": 400, "num_records_imported": imported, "status": "Bad Request", "failed_records": failed}),
                    )
                }
            }
            _ => Resp::text(404, "Not Found"),
        }
    }
}
