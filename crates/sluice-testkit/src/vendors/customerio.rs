//! A fake of Customer.io's Track API v2 batch endpoint, a real HTTP server on 127.0.0.1.
//!
//! Documented behaviour it implements (customer.io/docs/api/track/#operation/batch and
//! "Track API v2 limits", customer.io/docs/api/track/#section/Limits):
//! - `POST /api/v2/batch` only, HTTP Basic auth `site_id:api_key` (else `401`).
//! - Body `{"batch": [...]}` of items `{"type": "person", "action", "identifiers": {"id" |
//!   "email" | "cio_id"}, "attributes", "name", "timestamp"}`; actions `identify`, `delete`,
//!   `event` (needs `name`), `page`, `screen`; an event may carry `anonymous_id` instead of
//!   `identifiers`.
//! - Limits: a request over 500 KB is refused whole (`413`); an item over 32 KB, more than 300
//!   attributes or an attribute name over 150 bytes is refused alone.
//! - `200 {}` when every item was taken; `207 {"errors": [{"batch_index", "reason", "field",
//!   "message"}]}` listing only the refused items (the others were taken); `400` when the body
//!   is not a batch at all.
//! - Throttling: `429` with `Retry-After`; an outage: `503`.

use super::serve::{secs, Answer, Hostile, Http, Next, Script, Server};
use crate::vendor::{Fault, VendorFake};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The site id and API key the fake accepts.
pub const SITE_ID: &str = "site_123";
/// See [`SITE_ID`].
pub const API_KEY: &str = "cio_key_456";

#[derive(Default)]
struct State {
    script: Script,
    people: BTreeMap<String, Value>,
    deleted: Vec<String>,
    ever: Vec<String>,
    events: Vec<(String, String, Value)>,
    requests: Vec<Value>,
    calls: usize,
}

/// The fake; stops when dropped.
pub struct CustomerIoFake {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Default for CustomerIoFake {
    fn default() -> Self {
        Self::start()
    }
}

impl CustomerIoFake {
    /// Starts the fake.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let server = Server::start(Arc::new(move |h: &Http| handle(&mut st.lock().unwrap(), h)));
        Self { server, state }
    }

    /// Base URL (the `endpoint` setting).
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Answers hostile from now on (`None`: normally again).
    pub fn hostile(&self, h: Option<Hostile>) {
        self.state.lock().unwrap().script.hostile = h;
    }

    /// A person's attributes as held.
    pub fn person(&self, id: &str) -> Option<Value> {
        self.state.lock().unwrap().people.get(id).cloned()
    }

    /// Events taken: (identifier, action and name, attributes).
    pub fn events(&self) -> Vec<(String, String, Value)> {
        self.state.lock().unwrap().events.clone()
    }

    /// How many requests arrived (whatever their answer).
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// Every request body received (accepted or not), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn handle(s: &mut State, h: &Http) -> Answer {
    let (delay, next) = s.script.take();
    let mut a = answer(s, h, next);
    a.delay = delay;
    a
}

fn answer(s: &mut State, h: &Http, next: Next) -> Answer {
    s.calls += 1;
    if h.method != "POST" || h.path != "/api/v2/batch" {
        return Answer::json(404, json!({"meta": {"error": "not found"}}));
    }
    if h.header("authorization") != Some(&basic(SITE_ID, API_KEY)) {
        return Answer::json(401, json!({"meta": {"error": "Unauthorized request"}}));
    }
    s.requests.push(h.json().unwrap_or(Value::Null));
    match next {
        Next::Outage => return Answer::json(503, json!({"meta": {"error": "service unavailable"}})),
        Next::Throttle(d) => {
            return Answer::json(429, json!({"meta": {"error": "rate limited"}})).header("Retry-After", &secs(d))
        }
        Next::Normal => {}
    }
    if h.body.len() > 500 * 1024 {
        return Answer::json(413, json!({"meta": {"error": "request body exceeds 500KB"}}));
    }
    let Some(batch) = h.json().and_then(|v| v["batch"].as_array().cloned()) else {
        return Answer::json(400, json!({"meta": {"error": "body must be {\"batch\": [...]}"}}));
    };
    let mut errors = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        let ids = &item["identifiers"];
        let id = ["id", "email", "cio_id"].iter().find_map(|k| ids[*k].as_str().map(str::to_string));
        if let Some(id) = &id {
            s.ever.push(id.clone());
        }
        let mut err = |reason: &str, field: &str, message: &str| {
            errors.push(json!({"batch_index": i, "reason": reason, "field": field, "message": message}));
        };
        if item.to_string().len() > 32 * 1024 {
            err("too_large", "", "item exceeds 32KB");
            continue;
        }
        if item["type"] != "person" {
            err("invalid", "type", "type must be person");
            continue;
        }
        let action = item["action"].as_str().unwrap_or_default();
        let anon = item["anonymous_id"].as_str().is_some() && matches!(action, "event" | "page" | "screen");
        if id.is_none() && !anon {
            err("required", "identifiers", "identifiers must hold id, email or cio_id");
            continue;
        }
        let attrs = item["attributes"].as_object().cloned().unwrap_or_default();
        if attrs.len() > 300 || attrs.keys().any(|k| k.len() > 150) {
            err("invalid", "attributes", "at most 300 attributes, names at most 150 bytes");
            continue;
        }
        let who = id.clone().unwrap_or_else(|| item["anonymous_id"].as_str().unwrap_or_default().to_string());
        if s.script.reject.contains(&who) {
            err("malformed", "attributes.email", "the email attribute is not a valid email address");
            continue;
        }
        match action {
            "identify" => {
                let p = s.people.entry(who).or_insert_with(|| json!({}));
                for (k, v) in attrs {
                    p[k] = v;
                }
            }
            "delete" => {
                s.people.remove(&who);
                s.deleted.push(who);
            }
            "event" | "page" | "screen" => {
                let Some(name) = item["name"].as_str() else {
                    err("required", "name", "an event needs a name");
                    continue;
                };
                s.events.push((who, format!("{action}:{name}"), Value::Object(attrs)));
            }
            other => err("invalid", "action", &format!("unknown action {other}")),
        }
    }
    match s.script.hostile {
        Some(Hostile::Garbage) => return Answer::raw(207, "text/html", b"<html>upstream error</html>".to_vec()),
        Some(Hostile::Truncated) => return Answer::raw(207, "application/json", b"{\"errors\":[{\"batch_ind".to_vec()),
        _ => {}
    }
    if errors.is_empty() {
        Answer::json(200, json!({}))
    } else {
        Answer::json(207, json!({"errors": errors}))
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

impl VendorFake for CustomerIoFake {
    fn kind(&self) -> &'static str {
        "customerio"
    }

    fn settings(&self) -> serde_json::Map<String, Value> {
        let v = json!({"endpoint": self.url(), "site_id": SITE_ID, "api_key": API_KEY});
        v.as_object().cloned().unwrap_or_default()
    }

    fn script(&self, fault: Fault) {
        self.state.lock().unwrap().script.add(fault);
    }

    fn held(&self) -> Vec<String> {
        self.state.lock().unwrap().people.keys().cloned().collect()
    }

    fn deleted(&self) -> Vec<String> {
        self.state.lock().unwrap().deleted.clone()
    }

    fn ever_received(&self) -> Vec<String> {
        self.state.lock().unwrap().ever.clone()
    }
}
