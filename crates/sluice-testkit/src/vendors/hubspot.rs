//! A fake of HubSpot's CRM v3 contacts batch API.
//!
//! Documented behaviour it implements
//! (https://developers.hubspot.com/docs/api/crm/contacts, .../docs/api/usage-details):
//! - `Authorization: Bearer <private app token>` on every call, else 401
//!   `{"status":"error","message":...,"category":"INVALID_AUTHENTICATION"}`.
//! - `POST /crm/v3/objects/contacts/batch/upsert` `{"inputs":[{"idProperty","id","properties"}]}`:
//!   at most 100 inputs (else 400 `VALIDATION_ERROR` "Batch input limit"), duplicate ids refused
//!   (400); 200 `{"status":"COMPLETE","results":[{"id","new","properties"}]}`, or **207** with
//!   `numErrors` and `errors[{"status":"error","category":"VALIDATION_ERROR","message",
//!   "context":{"ids":[...]}}]` for the inputs it refuses (the `context` key naming the ids is
//!   how this fake reports them; HubSpot's exact context keys per error vary).
//! - `POST .../batch/read` `{"idProperty","inputs":[{"id"}],"properties"}`: results for known
//!   contacts, 207 with `OBJECT_NOT_FOUND` errors naming unknown ids in `context.ids`.
//! - `POST .../batch/archive` `{"inputs":[{"id":"<record id>"}]}`: 204, no body.
//! - Throttling: 429 `{"status":"error","errorType":"RATE_LIMIT","policyName":"SECONDLY"}`
//!   with `X-HubSpot-RateLimit-*` headers.

use super::{bearer, Book, Http, Resp, Vendor};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// The token the fake accepts.
pub const TOKEN: &str = "pat-na1-test";

/// The HubSpot fake's contract: contacts keyed by id property value, with record ids.
#[derive(Default)]
pub struct Hubspot {
    record_ids: Mutex<BTreeMap<String, String>>,
}

/// A running HubSpot fake.
pub type HubspotFake = super::FakeServer<Hubspot>;

/// Starts a HubSpot fake.
pub fn start() -> HubspotFake {
    super::FakeServer::start(Hubspot::default())
}

fn err(status: u16, category: &str, message: &str) -> Resp {
    Resp::json(status, json!({"status": "error", "category": category, "message": message, "correlationId": "fake"}))
}

impl Vendor for Hubspot {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn settings(&self, base: &str) -> serde_json::Map<String, Value> {
        json!({"endpoint": base, "access_token": TOKEN}).as_object().cloned().unwrap_or_default()
    }

    fn identifiers(&self, req: &Http) -> Vec<String> {
        let Some(v) = req.json() else { return vec![] };
        if req.path.ends_with("/batch/archive") {
            // record ids: name them by the value they were upserted with
            let m = self.record_ids.lock().unwrap_or_else(|p| p.into_inner());
            let ids: HashSet<&str> =
                v["inputs"].as_array().into_iter().flatten().filter_map(|i| i["id"].as_str()).collect();
            return m.iter().filter(|(_, rid)| ids.contains(rid.as_str())).map(|(k, _)| k.clone()).collect();
        }
        v["inputs"].as_array().into_iter().flatten().filter_map(|i| i["id"].as_str().map(str::to_string)).collect()
    }

    fn throttle(&self, wait: Duration) -> Resp {
        Resp::json(429, json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}))
            .header("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
            .header("X-HubSpot-RateLimit-Max", "100")
            .header("X-HubSpot-RateLimit-Remaining", "0")
            .header("Retry-After", wait.as_secs().max(1).to_string())
    }

    fn handle(&self, req: &Http, book: &mut Book) -> Resp {
        if bearer(req) != Some(TOKEN) {
            return err(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.");
        }
        let Some(v) = req.json().filter(|_| req.method == "POST") else {
            return err(400, "VALIDATION_ERROR", "Invalid input JSON on line 1");
        };
        let inputs = v["inputs"].as_array().cloned().unwrap_or_default();
        if inputs.len() > 100 {
            return err(400, "VALIDATION_ERROR", "Batch input limit of 100 exceeded");
        }
        let mut ids = self.record_ids.lock().unwrap_or_else(|p| p.into_inner());
        match req.path.as_str() {
            "/crm/v3/objects/contacts/batch/upsert" => {
                let mut seen = HashSet::new();
                if !inputs.iter().all(|i| seen.insert(i["id"].as_str().unwrap_or("").to_lowercase())) {
                    return err(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input");
                }
                let (mut results, mut errors) = (vec![], vec![]);
                for i in &inputs {
                    let (Some(prop), Some(id)) = (i["idProperty"].as_str(), i["id"].as_str()) else {
                        return err(400, "VALIDATION_ERROR", "idProperty and id are required");
                    };
                    if book.reject.contains(id) {
                        errors.push(json!({"status": "error", "category": "VALIDATION_ERROR",
                            "message": format!("Property values were not valid: {prop} {id}"), "context": {"ids": [id]}}));
                        continue;
                    }
                    let n = ids.len() + 430_001;
                    let new = !ids.contains_key(id);
                    let rid = ids.entry(id.to_string()).or_insert_with(|| n.to_string()).clone();
                    book.upsert(id, &i["properties"]);
                    let mut props = i["properties"].clone();
                    props[prop] = json!(id.to_lowercase());
                    results.push(json!({"id": rid, "new": new, "properties": props}));
                }
                if errors.is_empty() {
                    Resp::json(200, json!({"status": "COMPLETE", "results": results}))
                } else {
                    Resp::json(
                        207,
                        json!({"status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors}),
                    )
                }
            }
            "/crm/v3/objects/contacts/batch/read" => {
                let prop = v["idProperty"].as_str().unwrap_or("hs_object_id");
                let (mut results, mut missing) = (vec![], vec![]);
                for id in inputs.iter().filter_map(|i| i["id"].as_str()) {
                    match ids.get(id).filter(|_| book.held.contains_key(id)) {
                        Some(rid) => results.push(json!({"id": rid, "properties": {prop: id}})),
                        None => missing.push(id.to_string()),
                    }
                }
                if missing.is_empty() {
                    Resp::json(200, json!({"status": "COMPLETE", "results": results}))
                } else {
                    Resp::json(
                        207,
                        json!({"status": "COMPLETE", "results": results, "numErrors": 1, "errors": [{"status": "error",
                        "category": "OBJECT_NOT_FOUND", "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": missing}}]}),
                    )
                }
            }
            "/crm/v3/objects/contacts/batch/archive" => {
                let rids: HashSet<&str> = inputs.iter().filter_map(|i| i["id"].as_str()).collect();
                let gone: Vec<String> =
                    ids.iter().filter(|(_, r)| rids.contains(r.as_str())).map(|(k, _)| k.clone()).collect();
                for k in gone {
                    book.delete(&k);
                }
                Resp::text(204, "")
            }
            _ => err(404, "OBJECT_NOT_FOUND", "Not found"),
        }
    }
}
