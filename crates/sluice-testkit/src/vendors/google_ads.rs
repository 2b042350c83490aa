//! A fake of the Google Ads API's Customer Match path (REST), a real HTTP server on 127.0.0.1.
//!
//! Documented behaviour it implements (developers.google.com/google-ads/api/docs/remarketing/audience-segments/customer-match/get-started,
//! REST reference developers.google.com/google-ads/api/rest/reference/rest/v22/customers.offlineUserDataJobs,
//! partial failure developers.google.com/google-ads/api/docs/best-practices/partial-failures,
//! quota errors developers.google.com/google-ads/api/docs/best-practices/quotas):
//! - Headers `Authorization: Bearer`, `developer-token` (else `401 UNAUTHENTICATED`).
//! - `POST /{v}/customers/{cid}/offlineUserDataJobs:create` with `{"job": {"type":
//!   "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {"userList", "consent"}}}`
//!   → `{"resourceName": "customers/{cid}/offlineUserDataJobs/{id}"}`; an unknown list: `400
//!   INVALID_ARGUMENT`.
//! - `POST /{v}/{job}:addOperations` with `{"enablePartialFailure": true, "operations": [{"create"
//!   | "remove": {"userIdentifiers": [{"hashedEmail"} | {"hashedPhoneNumber"} |
//!   {"thirdPartyUserId"}]}}]}` while the job is `PENDING`; at most 20 identifiers per
//!   operation and 100,000 per request; a hash that is not SHA-256 hex is refused
//!   (`INVALID_SHA256_FORMAT`). With partial failure the answer is `{"partialFailureError":
//!   {"code": 3, "message", "details": [{"@type": "...GoogleAdsFailure", "errors": [{"errorCode",
//!   "message", "location": {"fieldPathElements": [{"fieldName": "operations", "index"}]}}]}]}}`.
//! - `POST /{v}/{job}:run` → a long-running operation `{"name"}`; the job goes `RUNNING`, then
//!   `SUCCESS` (or `FAILED` with `failureReason`) after some polls.
//! - `POST /{v}/customers/{cid}/googleAds:search` with a GAQL query on `offline_user_data_job`
//!   by `resource_name` → `{"results": [{"offlineUserDataJob": {"resourceName", "status",
//!   "failureReason"}}]}`.
//! - Throttling: `429 RESOURCE_EXHAUSTED` with `quotaErrorDetails.retryDelay`; an outage: `503
//!   UNAVAILABLE`.

use super::serve::{sha256_hex, Answer, Hostile, Http, Next, Script, Server};
use crate::vendor::{Fault, VendorFake};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The credentials and ids the fake accepts.
pub const TOKEN: &str = "ya29.google-token";
/// See [`TOKEN`].
pub const DEVELOPER_TOKEN: &str = "dev-token-123";
/// See [`TOKEN`].
pub const CUSTOMER_ID: &str = "1234567890";
/// See [`TOKEN`].
pub const USER_LIST_ID: &str = "987654";

struct Job {
    status: &'static str,
    ops: Vec<(bool, Vec<Value>)>,
    polls: u32,
}

#[derive(Default)]
struct State {
    script: Script,
    jobs: HashMap<String, Job>,
    held: BTreeSet<String>,
    deleted: Vec<String>,
    ever: Vec<String>,
    plain: HashMap<String, String>,
    fail_jobs: Option<String>,
    polls: u32,
    paths: Vec<String>,
}

/// The fake; stops when dropped.
pub struct GoogleAdsFake {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Default for GoogleAdsFake {
    fn default() -> Self {
        Self::start()
    }
}

impl GoogleAdsFake {
    /// Starts the fake.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State { polls: 1, ..Default::default() }));
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

    /// Jobs run from now on end `FAILED` with this reason (`None`: they succeed).
    pub fn fail_jobs(&self, reason: Option<&str>) {
        self.state.lock().unwrap().fail_jobs = reason.map(str::to_string);
    }

    /// Polls a job answers `RUNNING` before it ends.
    pub fn polls_before_done(&self, n: u32) {
        self.state.lock().unwrap().polls = n;
    }

    /// Paths requested, in order.
    pub fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().paths.clone()
    }
}

fn error(status: u16, grpc: &str, message: &str, code: Value) -> Answer {
    Answer::json(
        status,
        json!({"error": {"code": status, "message": message, "status": grpc, "details": [
            {"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure",
             "errors": [{"errorCode": code, "message": message}], "requestId": "fake-req"}]}}),
    )
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn answer(s: &mut State, h: &Http, next: Next) -> Answer {
    s.paths.push(h.path.clone());
    if h.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            json!({"authenticationError": "OAUTH_TOKEN_INVALID"}),
        );
    }
    if h.header("developer-token") != Some(DEVELOPER_TOKEN) {
        return error(
            401,
            "UNAUTHENTICATED",
            "The developer token is not valid.",
            json!({"authenticationError": "DEVELOPER_TOKEN_INVALID"}),
        );
    }
    match next {
        Next::Outage => {
            return error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                json!({"internalError": "TRANSIENT_ERROR"}),
            )
        }
        Next::Throttle(d) => {
            let mut a = error(
                429,
                "RESOURCE_EXHAUSTED",
                "Too many requests. Retry in some time.",
                json!({"quotaError": "RESOURCE_EXHAUSTED"}),
            );
            let mut v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
            v["error"]["details"][0]["errors"][0]["details"] = json!({"quotaErrorDetails": {"rateScope": "DEVELOPER", "rateName": "Requests", "retryDelay": format!("{}s", d.as_secs_f64().ceil().max(1.0))}});
            a.body = v.to_string().into_bytes();
            return a;
        }
        Next::Normal => {}
    }
    let Some(body) = h.json() else {
        return error(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            json!({"requestError": "BAD_REQUEST"}),
        );
    };
    let prefix = format!("customers/{CUSTOMER_ID}/");
    let path = h.path.trim_start_matches('/');
    let Some((version, rest)) = path.split_once('/') else {
        return error(404, "NOT_FOUND", "unknown path", json!({}));
    };
    if !version.starts_with('v') || h.method != "POST" {
        return error(404, "NOT_FOUND", "unknown path", json!({}));
    }
    if rest == format!("{prefix}offlineUserDataJobs:create") {
        let job = &body["job"];
        let list = format!("{prefix}userLists/{USER_LIST_ID}");
        if job["type"] != "CUSTOMER_MATCH_USER_LIST"
            || job["customerMatchUserListMetadata"]["userList"] != list.as_str()
        {
            return error(
                400,
                "INVALID_ARGUMENT",
                "The user list does not exist or is not a Customer Match list.",
                json!({"offlineUserDataJobError": "INVALID_USER_LIST_ID"}),
            );
        }
        let name = format!("{prefix}offlineUserDataJobs/{}", 1000 + s.jobs.len());
        s.jobs.insert(name.clone(), Job { status: "PENDING", ops: Vec::new(), polls: 0 });
        return Answer::json(200, json!({"resourceName": name}));
    }
    if rest == format!("{prefix}googleAds:search") {
        let q = body["query"].as_str().unwrap_or_default();
        let Some(name) = q.split('\'').nth(1).filter(|_| q.contains("FROM offline_user_data_job")) else {
            return error(
                400,
                "INVALID_ARGUMENT",
                "Error in query: unexpected input.",
                json!({"queryError": "UNEXPECTED_INPUT"}),
            );
        };
        let (limit, fail, hostile) = (s.polls, s.fail_jobs.clone(), s.script.hostile);
        let Some(job) = s.jobs.get_mut(name) else { return Answer::json(200, json!({"results": []})) };
        let mut reason = Value::Null;
        if job.status == "RUNNING" && hostile != Some(Hostile::NeverFinish) {
            job.polls += 1;
            if job.polls > limit {
                job.status = if fail.is_some() { "FAILED" } else { "SUCCESS" };
            }
        }
        if job.status == "FAILED" {
            reason = json!(fail.unwrap_or_default());
        }
        let status = job.status;
        let ops = if status == "SUCCESS" { std::mem::take(&mut job.ops) } else { Vec::new() };
        for (remove, idents) in ops {
            let who = who(s, &idents);
            if remove {
                s.held.remove(&who);
                s.deleted.push(who);
            } else {
                s.held.insert(who);
            }
        }
        return Answer::json(
            200,
            json!({"results": [{"offlineUserDataJob": {"resourceName": name, "status": status, "failureReason": reason}}]}),
        );
    }
    if let Some((job_name, verb)) = rest.rsplit_once(':') {
        if !s.jobs.contains_key(job_name) {
            return error(
                404,
                "NOT_FOUND",
                "The offline user data job does not exist.",
                json!({"offlineUserDataJobError": "INVALID_JOB"}),
            );
        }
        match verb {
            "addOperations" => return add_operations(s, job_name, &body),
            "run" => {
                let job = s.jobs.get_mut(job_name).expect("checked");
                if job.status != "PENDING" {
                    return error(
                        400,
                        "FAILED_PRECONDITION",
                        "The job is not pending.",
                        json!({"offlineUserDataJobError": "INVALID_JOB_STATUS"}),
                    );
                }
                job.status = "RUNNING";
                return Answer::json(
                    200,
                    json!({"name": format!("{prefix}operations/{}", job_name.rsplit('/').next().unwrap_or(""))}),
                );
            }
            _ => {}
        }
    }
    error(404, "NOT_FOUND", "unknown path", json!({}))
}

/// The plain value a test registered for an operation's identifiers (or the first one).
fn who(s: &State, idents: &[Value]) -> String {
    for i in idents {
        for k in ["thirdPartyUserId", "hashedEmail", "hashedPhoneNumber"] {
            if let Some(v) = i[k].as_str() {
                return s.plain.get(v).cloned().unwrap_or_else(|| v.to_string());
            }
        }
    }
    String::new()
}

fn add_operations(s: &mut State, job_name: &str, body: &Value) -> Answer {
    let ops = body["operations"].as_array().cloned().unwrap_or_default();
    let total: usize = ops
        .iter()
        .map(|o| {
            let u = if o["create"].is_object() { &o["create"] } else { &o["remove"] };
            u["userIdentifiers"].as_array().map_or(0, Vec::len)
        })
        .sum();
    if total > 100_000 {
        return error(
            400,
            "INVALID_ARGUMENT",
            "Too many identifiers in the request.",
            json!({"offlineUserDataJobError": "TOO_MANY_USER_IDENTIFIERS"}),
        );
    }
    if s.jobs.get(job_name).is_some_and(|j| j.status != "PENDING") {
        return error(
            400,
            "FAILED_PRECONDITION",
            "Operations can only be added to a pending job.",
            json!({"offlineUserDataJobError": "INVALID_JOB_STATUS"}),
        );
    }
    let mut errors = Vec::new();
    let mut taken = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let remove = op["remove"].is_object();
        let idents = if remove { &op["remove"] } else { &op["create"] }["userIdentifiers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let w = who(s, &idents);
        s.ever.push(w.clone());
        let mut fail = |code: &str, message: &str| {
            errors.push(json!({"errorCode": {"offlineUserDataJobError": code}, "message": message,
                "location": {"fieldPathElements": [{"fieldName": "operations", "index": i},
                             {"fieldName": if remove { "remove" } else { "create" }}, {"fieldName": "user_identifiers"}]}}));
        };
        if idents.is_empty() {
            fail("INVALID_USER_IDENTIFIER", "The operation has no user identifier.");
        } else if idents.len() > 20 {
            fail("TOO_MANY_USER_IDENTIFIERS", "At most 20 user identifiers per operation.");
        } else if idents
            .iter()
            .any(|x| ["hashedEmail", "hashedPhoneNumber"].iter().any(|k| x[*k].as_str().is_some_and(|v| !is_hash(v))))
        {
            fail("INVALID_SHA256_FORMAT", "The SHA256 encoded value is malformed.");
        } else if s.script.reject.contains(&w) {
            fail("INVALID_USER_IDENTIFIER", "The user identifier is not valid for this list.");
        } else {
            taken.push((remove, idents));
        }
    }
    if !errors.is_empty() && body["enablePartialFailure"] != true {
        return error(
            400,
            "INVALID_ARGUMENT",
            "Operations failed.",
            json!({"offlineUserDataJobError": "INVALID_USER_IDENTIFIER"}),
        );
    }
    if let Some(job) = s.jobs.get_mut(job_name) {
        job.ops.extend(taken);
    }
    match s.script.hostile {
        Some(Hostile::Garbage) => return Answer::raw(200, "text/html", b"<html>502 Bad Gateway</html>".to_vec()),
        Some(Hostile::Truncated) => {
            return Answer::raw(200, "application/json", b"{\"partialFailureError\":{\"code\":3,\"det".to_vec())
        }
        _ => {}
    }
    if errors.is_empty() {
        return Answer::json(200, json!({}));
    }
    Answer::json(
        200,
        json!({"partialFailureError": {"code": 3, "message": "Multiple errors in 'details'.", "details": [
        {"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure", "errors": errors}]}}),
    )
}

impl VendorFake for GoogleAdsFake {
    fn kind(&self) -> &'static str {
        "google_ads"
    }

    fn settings(&self) -> serde_json::Map<String, Value> {
        let v = json!({"endpoint": self.url(), "access_token": TOKEN, "developer_token": DEVELOPER_TOKEN,
                       "customer_id": CUSTOMER_ID, "user_list_id": USER_LIST_ID, "email_field": "email",
                       "poll_interval_ms": 5});
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

    /// Google's normalisation: email trimmed, lowercased, dots removed before `@gmail.com` /
    /// `@googlemail.com`; phone as `+` and its digits.
    fn expect_identifier(&self, plain: &str) {
        let mut s = self.state.lock().unwrap();
        let e = plain.trim().to_lowercase();
        let e = match e.split_once('@') {
            Some((l, d)) if d == "gmail.com" || d == "googlemail.com" => format!("{}@{d}", l.replace('.', "")),
            _ => e,
        };
        s.plain.insert(sha256_hex(&e), plain.to_string());
        let digits: String = plain.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            s.plain.insert(sha256_hex(&format!("+{digits}")), plain.to_string());
        }
        s.plain.insert(plain.to_string(), plain.to_string());
    }
}
