//! A fake of Meta's Custom Audiences users edge (Graph API), a real HTTP server on 127.0.0.1.
//!
//! Documented behaviour it implements (developers.facebook.com/docs/marketing-api/reference/custom-audience/users/
//! and developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences#hash,
//! error codes: developers.facebook.com/docs/graph-api/guides/error-handling and
//! developers.facebook.com/docs/marketing-api/error-reference):
//! - `POST /{version}/{audience_id}/users` adds, `DELETE` on the same path removes; body
//!   `{"payload": {"schema": [...], "data": [[...], ...]}}` with schema keys `EXTERN_ID`
//!   (plain), `EMAIL` and `PHONE` (SHA-256 hex, an empty cell allowed in a multi-key row).
//! - Auth: `Authorization: Bearer <token>` or `access_token=`; a wrong token gets Graph error
//!   190 (`OAuthException`, HTTP 400). An unknown audience: error 100 (HTTP 400).
//! - At most 10,000 rows per request: more gets error 100 "Too many users" (HTTP 400).
//! - Answer `{"audience_id", "session_id", "num_received", "num_invalid_entries",
//!   "invalid_entry_samples": {value: reason}}`: a row whose hashes are not SHA-256 hex is
//!   counted invalid (and named in the samples unless [`MetaFake::name_invalid`] is off).
//! - Throttling: Graph error 17 (subcode 2446079, "User request limit reached", HTTP 400,
//!   `is_transient`); an outage: HTTP 503 with error code 2.

use super::serve::{sha256_hex, Answer, Hostile, Http, Next, Script, Server};
use crate::vendor::{Fault, VendorFake};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The token the fake accepts.
pub const TOKEN: &str = "EAAB-meta-token";
/// The audience it holds.
pub const AUDIENCE_ID: &str = "23850000000000001";

struct State {
    script: Script,
    held: BTreeSet<String>,
    held_hashes: BTreeSet<String>,
    deleted: Vec<String>,
    ever: Vec<String>,
    plain: HashMap<String, String>,
    name_invalid: bool,
    requests: Vec<(String, usize)>,
    calls: usize,
}

/// The fake; stops when dropped.
pub struct MetaFake {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Default for MetaFake {
    fn default() -> Self {
        Self::start()
    }
}

impl MetaFake {
    /// Starts the fake.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            script: Script::default(),
            held: BTreeSet::new(),
            held_hashes: BTreeSet::new(),
            deleted: Vec::new(),
            ever: Vec::new(),
            plain: HashMap::new(),
            name_invalid: true,
            requests: Vec::new(),
            calls: 0,
        }));
        let st = state.clone();
        let server = Server::start(Arc::new(move |h: &Http| {
            let mut s = st.lock().unwrap();
            let (delay, next) = s.script.take();
            let mut a = answer(&mut s, h, next);
            a.delay = delay;
            a
        }));
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

    /// Whether invalid rows are named in `invalid_entry_samples` (default) or only counted.
    pub fn name_invalid(&self, on: bool) {
        self.state.lock().unwrap().name_invalid = on;
    }

    /// The hashes held (emails and phones).
    pub fn held_hashes(&self) -> Vec<String> {
        self.state.lock().unwrap().held_hashes.iter().cloned().collect()
    }

    /// How many requests arrived (whatever their answer).
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// Every request: (method, rows).
    pub fn requests(&self) -> Vec<(String, usize)> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn graph_error(status: u16, code: i64, subcode: i64, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": {"message": message, "type": "OAuthException", "code": code, "error_subcode": subcode,
                         "is_transient": code == 17 || code == 2, "fbtrace_id": "AbCdEf"}}),
    )
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn answer(s: &mut State, h: &Http, next: Next) -> Answer {
    s.calls += 1;
    let parts: Vec<&str> = h.path.trim_matches('/').split('/').collect();
    let [version, audience, "users"] = parts[..] else {
        return graph_error(400, 100, 33, "Unsupported request: unknown path");
    };
    if !version.starts_with('v') || !(h.method == "POST" || h.method == "DELETE") {
        return graph_error(400, 100, 33, "Unsupported request");
    }
    let bearer = h.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::to_string);
    if bearer.or_else(|| h.param("access_token")).as_deref() != Some(TOKEN) {
        return graph_error(400, 190, 0, "Invalid OAuth access token - Cannot parse access token");
    }
    if audience != AUDIENCE_ID {
        return graph_error(
            400,
            100,
            33,
            &format!("Unsupported post request. Object with ID '{audience}' does not exist"),
        );
    }
    match next {
        Next::Outage => return graph_error(503, 2, 0, "Service temporarily unavailable"),
        Next::Throttle(_) => return graph_error(400, 17, 2446079, "User request limit reached"),
        Next::Normal => {}
    }
    let Some(payload) = h.json().map(|v| v["payload"].clone()).filter(|p| p.is_object()) else {
        return graph_error(400, 100, 0, "(#100) The parameter payload is required");
    };
    let schema: Vec<String> =
        payload["schema"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect();
    if schema.is_empty() || schema.iter().any(|k| !["EXTERN_ID", "EMAIL", "PHONE"].contains(&k.as_str())) {
        return graph_error(400, 100, 0, "(#100) Invalid schema");
    }
    let rows = payload["data"].as_array().cloned().unwrap_or_default();
    s.requests.push((h.method.clone(), rows.len()));
    if rows.len() > 10_000 {
        return graph_error(400, 100, 0, "(#100) Too many users in the payload: the limit is 10000");
    }
    let mut invalid = 0;
    let mut samples = serde_json::Map::new();
    for row in &rows {
        let cells: Vec<String> =
            row.as_array().into_iter().flatten().map(|c| c.as_str().unwrap_or("").to_string()).collect();
        if cells.len() != schema.len() {
            invalid += 1;
            continue;
        }
        let mut who = None;
        let mut bad: Option<(String, &str)> = None;
        let mut hashes = Vec::new();
        for (k, c) in schema.iter().zip(&cells) {
            if c.is_empty() {
                continue;
            }
            if k == "EXTERN_ID" {
                who = Some(c.clone());
            } else if !is_hash(c) {
                bad = Some((c.clone(), "not a SHA-256 hash"));
            } else {
                hashes.push(c.clone());
                who = who.or_else(|| s.plain.get(c).cloned());
            }
        }
        let name = who.clone().or_else(|| hashes.first().cloned()).unwrap_or_default();
        s.ever.push(name.clone());
        for hsh in &hashes {
            if let Some(p) = s.plain.get(hsh) {
                if *p != name {
                    s.ever.push(p.clone());
                }
            }
        }
        if bad.is_none()
            && (s.script.reject.contains(&name)
                || hashes.iter().any(|x| s.plain.get(x).is_some_and(|p| s.script.reject.contains(p))))
        {
            bad = Some((
                cells.iter().find(|c| !c.is_empty()).cloned().unwrap_or_default(),
                "invalid entry for this audience",
            ));
        }
        if let Some((value, why)) = bad {
            invalid += 1;
            if s.name_invalid {
                samples.insert(value, json!(why));
            }
            continue;
        }
        if h.method == "POST" {
            if let Some(w) = who {
                s.held.insert(w);
            }
            s.held_hashes.extend(hashes);
        } else {
            if let Some(w) = &who {
                s.held.remove(w);
                s.deleted.push(w.clone());
            }
            for x in &hashes {
                s.held_hashes.remove(x);
            }
        }
    }
    match s.script.hostile {
        Some(Hostile::Garbage) => {
            return Answer::raw(200, "text/html", b"<html>Sorry, something went wrong.</html>".to_vec())
        }
        Some(Hostile::Truncated) => {
            return Answer::raw(200, "application/json", b"{\"audience_id\":\"2385\",\"num_rec".to_vec())
        }
        _ => {}
    }
    Answer::json(
        200,
        json!({"audience_id": AUDIENCE_ID, "session_id": "9778993", "num_received": rows.len(),
               "num_invalid_entries": invalid, "invalid_entry_samples": samples}),
    )
}

impl VendorFake for MetaFake {
    fn kind(&self) -> &'static str {
        "meta"
    }

    fn settings(&self) -> serde_json::Map<String, Value> {
        let v = json!({"endpoint": self.url(), "access_token": TOKEN, "audience_id": AUDIENCE_ID,
                       "email_field": "email"});
        v.as_object().cloned().unwrap_or_default()
    }

    fn script(&self, fault: Fault) {
        self.state.lock().unwrap().script.add(fault);
    }

    fn held(&self) -> Vec<String> {
        self.state.lock().unwrap().held.iter().cloned().collect()
    }

    fn deleted(&self) -> Vec<String> {
        self.state.lock().unwrap().deleted.clone()
    }

    fn ever_received(&self) -> Vec<String> {
        self.state.lock().unwrap().ever.clone()
    }

    /// Its throttling answer names no wait.
    fn throttle_names_wait(&self) -> bool {
        false
    }

    /// Meta's normalisation: email trimmed and lowercased; phone digits only.
    fn expect_identifier(&self, plain: &str) {
        let mut s = self.state.lock().unwrap();
        s.plain.insert(sha256_hex(&plain.trim().to_lowercase()), plain.to_string());
        let digits: String = plain.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            s.plain.insert(sha256_hex(digits.trim_start_matches('0')), plain.to_string());
        }
    }
}
