//! A fake of Google BigQuery's REST API v2 and Google's OAuth 2.0 token endpoint, a real HTTP
//! server on 127.0.0.1, answering from a real SQLite file ([`crate::sqlfake`]).
//!
//! Documented fields it implements (cloud.google.com/bigquery/docs/reference/rest/v2):
//! - `POST /token` (developers.google.com/identity/protocols/oauth2/service-account): form
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion` = an RS256 JWT it
//!   verifies with the test service account's public key (`iss` = `client_email`, `aud` = the
//!   token URI, `scope` with `https://www.googleapis.com/auth/bigquery`, `exp` - `iat` ≤ 3600,
//!   header `kid` = `private_key_id`); answers `{access_token, expires_in, token_type}` or
//!   `400 {"error": "invalid_grant", "error_description"}`.
//! - `Authorization: Bearer` on every API call, else `401` with the API error object.
//! - `jobs.insert` (`POST /bigquery/v2/projects/{projectId}/jobs`) with
//!   `configuration.dryRun: true` and `configuration.query.{query, useLegacySql}` only:
//!   answers a Job with `statistics.query.{statementType, schema}`.
//! - `jobs.query` (`POST .../queries`): `query`, `useLegacySql` (must be false), `maxResults`,
//!   `location` (must match when the fake has one), `formatOptions.useInt64Timestamp`,
//!   `jobTimeoutMs`, `requestId`; answers a QueryResponse: `jobReference{projectId, jobId,
//!   location}`, `jobComplete`, `schema.fields[{name, type, mode, fields}]`, `totalRows`
//!   (a string), `rows[{f: [{v}]}]`, `pageToken`. A DDL or DML statement (`CREATE [OR REPLACE]
//!   TABLE`, `DROP`, `INSERT`, `UPDATE`, `DELETE`) completes at once with no rows and
//!   `ddlOperationPerformed` or `numDmlAffectedRows` (a string); tables of a dataset made with
//!   [`FakeBigQuery::create_dataset`] are `dataset.table`. Functions: `FARM_FINGERPRINT`,
//!   `FROM_HEX`, `TO_JSON_STRING(STRUCT(...))` (see [`crate::sqlfake`]).
//! - `jobs.getQueryResults` (`GET .../queries/{jobId}`): `pageToken`, `maxResults`,
//!   `timeoutMs`, `location`, `formatOptions.useInt64Timestamp`; same answer fields.
//! - `jobs.cancel` (`POST .../jobs/{jobId}/cancel`): `{kind, job}`; the job then fails with
//!   reason `stopped`.
//! - Errors: `{"error": {"code", "message", "status", "errors": [{"reason", "domain",
//!   "location", "message"}]}}` with reasons `invalidQuery` (and `[line:column]` in the
//!   message), `notFound`, `unauthorized`, `rateLimitExceeded` (HTTP 429 or 403).
//!
//! Cells follow the documented encodings: every scalar a string (INTEGER decimal, FLOAT,
//! BOOLEAN `true`/`false`, TIMESTAMP as int64 microseconds with `useInt64Timestamp`, else float
//! seconds like `1.7E9`), RECORD `{"f": [...]}`, REPEATED `[{"v": ...}]`.

use crate::sqlfake::{self, Db, Kind, Table};
use rusqlite::types::Value as Sql;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The test service account's private key (test-only: it protects nothing).
pub const ACCOUNT_KEY: &str = include_str!("../keys/test-account.pem");
const ACCOUNT_PUBLIC_KEY: &str = include_str!("../keys/test-account.pub.pem");
/// Another private key, which the fake does not know (bad credentials).
pub const OTHER_KEY: &str = include_str!("../keys/test-other.pem");
/// The test service account's email.
pub const ACCOUNT_EMAIL: &str = "sluice-test@sluice-test.iam.gserviceaccount.com";
const KEY_ID: &str = "fake-key-1";

/// A hostile behaviour the fake can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Result pages are cut in the middle of their JSON.
    TruncatedJson,
    /// Every row has one value less than the schema has fields.
    WrongColumnCount,
    /// Every page hands back the same `pageToken`.
    SamePageToken,
    /// Every page repeats the first rows with a new `pageToken`, forever.
    EndlessPages,
    /// Every page is empty and hands out a new `pageToken`, forever.
    EmptyPages,
    /// The job never completes.
    NeverComplete,
}

struct Job {
    table: Table,
    polls_left: u32,
    cancelled: bool,
}

#[derive(Default)]
struct State {
    tokens: HashSet<String>,
    jobs: HashMap<String, Job>,
    throttle: Vec<u16>,
    incomplete_polls: u32,
    page_rows: Option<usize>,
    hostile: Option<Hostile>,
    location: Option<String>,
    log: Vec<String>,
    bodies: Vec<Value>,
    cancelled: u32,
}

/// The fake; stops when dropped.
pub struct FakeBigQuery {
    url: String,
    db: Db,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

impl Drop for FakeBigQuery {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// The project the fake serves.
pub const PROJECT: &str = "sluice-test";

impl FakeBigQuery {
    /// Starts on a free port, answering from the SQLite file `db` (created if missing).
    pub fn start(db: &Path) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake BigQuery"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let db = Db::new(db);
        for _ in 0..4 {
            let (server, state, db, url) = (server.clone(), state.clone(), db.clone(), url.clone());
            std::thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let mut body = Vec::new();
                    let _ = req.as_reader().take(16 << 20).read_to_end(&mut body);
                    let (status, text) = handle(&state, &db, &url, &req, &body);
                    let resp = tiny_http::Response::from_data(text).with_status_code(status).with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json; charset=UTF-8")
                            .expect("header"),
                    );
                    let _ = req.respond(resp);
                }
            });
        }
        Self { url, db, state, server }
    }

    /// The `endpoint` setting of a source using the fake.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs SQL on the fake's data.
    pub fn sql(&self, sql: &str) {
        self.db.exec(sql);
    }

    /// Creates dataset `name` of the project (its tables are `name.table`, an SQLite file of
    /// their own).
    pub fn create_dataset(&self, name: &str) {
        self.db.create_schema(name);
    }

    /// Writes a service account key file whose `token_uri` is the fake, signed by `private_key`
    /// ([`ACCOUNT_KEY`] is accepted, [`OTHER_KEY`] is not); returns its path.
    pub fn key_file(&self, dir: &Path, private_key: &str) -> PathBuf {
        let path = dir.join(if private_key == ACCOUNT_KEY { "sa.json" } else { "sa-other.json" });
        let key = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": private_key,
            "client_email": ACCOUNT_EMAIL,
            "client_id": "1",
            "token_uri": format!("{}/token", self.url),
        });
        std::fs::write(&path, key.to_string()).expect("write key file");
        path
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The next API calls are answered with these throttling statuses (429, or 403 with reason
    /// `rateLimitExceeded`), one each.
    pub fn throttle(&self, statuses: &[u16]) {
        self.with(|s| s.throttle = statuses.to_vec());
    }

    /// Each new job answers `jobComplete: false` this many times first.
    pub fn incomplete_polls(&self, n: u32) {
        self.with(|s| s.incomplete_polls = n);
    }

    /// Pages hold at most this many rows whatever `maxResults` says.
    pub fn page_rows(&self, n: usize) {
        self.with(|s| s.page_rows = Some(n));
    }

    /// Turns a hostile behaviour on (`None`: off).
    pub fn hostile(&self, h: Option<Hostile>) {
        self.with(|s| s.hostile = h);
    }

    /// The location the datasets are in: queries naming another fail with `notFound`.
    pub fn location(&self, l: &str) {
        self.with(|s| s.location = Some(l.to_string()));
    }

    /// `METHOD path` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    /// JSON bodies of the API requests so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.with(|s| s.bodies.clone())
    }

    /// Forgets every access token it handed out (they expired or were revoked).
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// How many `jobs.cancel` calls arrived.
    pub fn cancelled(&self) -> u32 {
        self.with(|s| s.cancelled)
    }
}

fn api_error(code: u16, status: &str, reason: &str, message: &str) -> (u16, String) {
    let e = json!({"error": {"code": code, "message": message, "status": status,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (code, e.to_string())
}

fn handle(state: &Mutex<State>, db: &Db, url: &str, req: &tiny_http::Request, body: &[u8]) -> (u16, String) {
    let full = req.url().to_string();
    let (path, qs) = full.split_once('?').unwrap_or((&full, ""));
    let params: HashMap<String, String> = url::form_urlencoded::parse(qs.as_bytes()).into_owned().collect();
    let method = req.method().to_string();
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.log.push(format!("{method} {path}"));
    if path == "/token" && method == "POST" {
        return token(&mut st, url, body);
    }
    let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_string());
    let authorized = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).is_some_and(|t| st.tokens.contains(t));
    if !authorized {
        return api_error(401, "UNAUTHENTICATED", "unauthorized",
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.");
    }
    if !st.throttle.is_empty() {
        let code = st.throttle.remove(0);
        return api_error(code, "RESOURCE_EXHAUSTED", "rateLimitExceeded",
            "Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas");
    }
    let prefix = format!("/bigquery/v2/projects/{PROJECT}/");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return api_error(404, "NOT_FOUND", "notFound", &format!("Not found: {path}"));
    };
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
    st.bodies.push(body.clone());
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["jobs"]) => dry_run(db, &body),
        ("POST", ["queries"]) => query(&mut st, db, &body),
        ("GET", ["queries", job]) => results(&mut st, job, &params),
        ("POST", ["jobs", job, "cancel"]) => {
            st.cancelled += 1;
            if let Some(j) = st.jobs.get_mut(*job) {
                j.cancelled = true;
            }
            (200, json!({"kind": "bigquery#jobCancelResponse", "job": {"jobReference": {"projectId": PROJECT, "jobId": job}, "status": {"state": "DONE"}}}).to_string())
        }
        _ => api_error(404, "NOT_FOUND", "notFound", &format!("Not found: {method} {path}")),
    }
}

fn token(st: &mut State, url: &str, body: &[u8]) -> (u16, String) {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let refuse = |d: &str| (400, json!({"error": "invalid_grant", "error_description": d}).to_string());
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            400,
            json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}).to_string(),
        );
    }
    let Some(assertion) = form.get("assertion") else { return refuse("Missing assertion") };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else { return refuse("Invalid JWT") };
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.kid.as_deref() != Some(KEY_ID) {
        return refuse("Invalid JWT: wrong algorithm or key id");
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(ACCOUNT_PUBLIC_KEY.as_bytes()).expect("test public key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{url}/token")]);
    v.set_issuer(&[ACCOUNT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(_) => return refuse("Invalid JWT Signature."),
    };
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(u64::MAX));
    if exp.saturating_sub(iat) > 3600 {
        return refuse("Invalid JWT: Token must be a short-lived token (60 minutes)");
    }
    if !claims["scope"].as_str().unwrap_or("").split(' ').any(|s| s == "https://www.googleapis.com/auth/bigquery") {
        return refuse("Invalid OAuth scope or ID token audience provided.");
    }
    let t = format!("ya29.fake-{}", st.tokens.len() + 1);
    st.tokens.insert(t.clone());
    (200, json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"}).to_string())
}

fn sql_failure(e: &sqlfake::SqlError, sql: &str) -> (u16, String) {
    if e.not_found {
        return api_error(404, "NOT_FOUND", "notFound", &format!("Not found: {}", e.message));
    }
    let at = e.position(sql).map(|(l, c)| format!(" at [{l}:{c}]")).unwrap_or_default();
    let (code, text) = api_error(400, "INVALID_ARGUMENT", "invalidQuery", &format!("Syntax error: {}{at}", e.message));
    let mut v: Value = serde_json::from_str(&text).unwrap_or_default();
    v["error"]["errors"][0]["location"] = json!("q");
    (code, v.to_string())
}

fn statement_type(sql: &str, reads: bool) -> String {
    if reads {
        return "SELECT".into();
    }
    let first = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    match first.as_str() {
        "CREATE" => "CREATE_TABLE".into(),
        "DROP" => "DROP_TABLE".into(),
        other => other.to_string(),
    }
}

fn dry_run(db: &Db, body: &Value) -> (u16, String) {
    let q = &body["configuration"]["query"];
    if body["configuration"]["dryRun"] != json!(true) {
        return api_error(400, "INVALID_ARGUMENT", "invalid", "this fake implements jobs.insert for dry runs only");
    }
    if q["useLegacySql"] != json!(false) {
        return api_error(400, "INVALID_ARGUMENT", "invalidQuery", "legacy SQL is not implemented by this fake");
    }
    let sql = q["query"].as_str().unwrap_or("");
    match db.describe(sql) {
        Err(e) => sql_failure(&e, sql),
        Ok((reads, cols)) => {
            let table = Table { columns: cols, rows: Vec::new() };
            let fields = if reads { schema(&table) } else { json!([]) };
            (200, json!({"kind": "bigquery#job", "configuration": body["configuration"],
                "status": {"state": "DONE"},
                "statistics": {"query": {"statementType": statement_type(sql, reads), "schema": {"fields": fields}, "totalBytesProcessed": "0"}}}).to_string())
        }
    }
}

fn record_fields(table: &Table, i: usize) -> Value {
    let first = table.rows.iter().find_map(|r| match &r[i] {
        Sql::Text(t) => serde_json::from_str::<serde_json::Map<String, Value>>(t).ok(),
        _ => None,
    });
    let fields: Vec<Value> = first
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| {
            let t = match v {
                Value::Bool(_) => "BOOLEAN",
                Value::Number(n) if n.is_i64() => "INTEGER",
                Value::Number(_) => "FLOAT",
                _ => "STRING",
            };
            json!({"name": k, "type": t, "mode": "NULLABLE"})
        })
        .collect();
    Value::Array(fields)
}

fn schema(table: &Table) -> Value {
    let fields: Vec<Value> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            Kind::Integer => json!({"name": c.name, "type": "INTEGER", "mode": "NULLABLE"}),
            Kind::Float => json!({"name": c.name, "type": "FLOAT", "mode": "NULLABLE"}),
            Kind::Decimal => json!({"name": c.name, "type": "NUMERIC", "mode": "NULLABLE"}),
            Kind::Bool => json!({"name": c.name, "type": "BOOLEAN", "mode": "NULLABLE"}),
            Kind::Text => json!({"name": c.name, "type": "STRING", "mode": "NULLABLE"}),
            Kind::Timestamp => json!({"name": c.name, "type": "TIMESTAMP", "mode": "NULLABLE"}),
            Kind::Json => json!({"name": c.name, "type": "JSON", "mode": "NULLABLE"}),
            Kind::Repeated => json!({"name": c.name, "type": "STRING", "mode": "REPEATED"}),
            Kind::Record => {
                json!({"name": c.name, "type": "RECORD", "mode": "NULLABLE", "fields": record_fields(table, i)})
            }
        })
        .collect();
    Value::Array(fields)
}

fn cell(kind: Kind, v: &Sql, int64_ts: bool, record: &Value) -> Value {
    if matches!(v, Sql::Null) {
        return json!({"v": null});
    }
    let s = match kind {
        Kind::Bool => Value::String(if matches!(v, Sql::Integer(0)) { "false" } else { "true" }.into()),
        Kind::Timestamp => match sqlfake::epoch_secs(v) {
            Some(secs) if int64_ts => Value::String(((secs * 1e6).round() as i64).to_string()),
            Some(secs) => Value::String(format!("{secs:E}")),
            None => Value::Null,
        },
        Kind::Repeated => {
            let items: Vec<Value> = sqlfake::text(v)
                .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
                .unwrap_or_default()
                .iter()
                .map(|x| json!({"v": sqlfake::json_scalar_text(x)}))
                .collect();
            Value::Array(items)
        }
        Kind::Record => {
            let obj: serde_json::Map<String, Value> =
                sqlfake::text(v).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
            let f: Vec<Value> = record
                .as_array()
                .map(|fs| fs.iter().map(|f| json!({"v": obj.get(f["name"].as_str().unwrap_or("")).and_then(sqlfake::json_scalar_text)})).collect())
                .unwrap_or_default();
            json!({"f": f})
        }
        _ => sqlfake::text(v).map(Value::String).unwrap_or(Value::Null),
    };
    json!({"v": s})
}

fn query(st: &mut State, db: &Db, body: &Value) -> (u16, String) {
    if body["useLegacySql"] != json!(false) {
        return api_error(400, "INVALID_ARGUMENT", "invalidQuery", "legacy SQL is not implemented by this fake");
    }
    if let (Some(want), Some(got)) = (&st.location, body["location"].as_str()) {
        if want != got {
            return api_error(
                404,
                "NOT_FOUND",
                "notFound",
                &format!("Not found: Dataset was not found in location {got}"),
            );
        }
    }
    let sql = body["query"].as_str().unwrap_or("");
    let first = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    if matches!(first.as_str(), "CREATE" | "DROP" | "INSERT" | "UPDATE" | "DELETE") {
        // DDL and DML jobs: done at once, no rows; DML reports `numDmlAffectedRows` (a string)
        let n = match db.execute(sql) {
            Ok(n) => n,
            Err(e) => return sql_failure(&e, sql),
        };
        let id = format!("job_fake_{}", st.jobs.len() + 1);
        st.jobs.insert(id.clone(), Job { table: Table::default(), polls_left: 0, cancelled: false });
        let mut out = json!({"kind": "bigquery#queryResponse",
            "jobReference": {"projectId": PROJECT, "jobId": id, "location": st.location.clone().unwrap_or("US".into())},
            "jobComplete": true});
        if matches!(first.as_str(), "CREATE" | "DROP") {
            out["ddlOperationPerformed"] = json!(if first == "CREATE" { "CREATE" } else { "DROP" });
        } else {
            out["numDmlAffectedRows"] = json!(n.to_string());
        }
        return (200, out.to_string());
    }
    let table = match db.query(sql) {
        Ok(t) => t,
        Err(e) => return sql_failure(&e, sql),
    };
    let id = format!("job_fake_{}", st.jobs.len() + 1);
    let polls_left = st.incomplete_polls;
    st.jobs.insert(id.clone(), Job { table, polls_left, cancelled: false });
    let mut params = HashMap::new();
    if let Some(m) = body["maxResults"].as_u64() {
        params.insert("maxResults".to_string(), m.to_string());
    }
    if body["formatOptions"]["useInt64Timestamp"] == json!(true) {
        params.insert("formatOptions.useInt64Timestamp".to_string(), "true".to_string());
    }
    if polls_left > 0 || st.hostile == Some(Hostile::NeverComplete) {
        return (200, json!({"kind": "bigquery#queryResponse", "jobReference": {"projectId": PROJECT, "jobId": id, "location": st.location.clone().unwrap_or("US".into())}, "jobComplete": false}).to_string());
    }
    page(st, &id, &params)
}

fn results(st: &mut State, job: &str, params: &HashMap<String, String>) -> (u16, String) {
    let never = st.hostile == Some(Hostile::NeverComplete);
    let location = st.location.clone().unwrap_or("US".into());
    let Some(j) = st.jobs.get_mut(job) else {
        return api_error(404, "NOT_FOUND", "notFound", &format!("Not found: Job {PROJECT}:{job}"));
    };
    if j.cancelled {
        return api_error(
            400,
            "INVALID_ARGUMENT",
            "stopped",
            "Job execution was cancelled: User requested cancellation",
        );
    }
    if j.polls_left > 0 || never {
        j.polls_left = j.polls_left.saturating_sub(1);
        return (200, json!({"kind": "bigquery#getQueryResultsResponse", "jobReference": {"projectId": PROJECT, "jobId": job, "location": location}, "jobComplete": false}).to_string());
    }
    page(st, job, params)
}

fn page(st: &mut State, job: &str, params: &HashMap<String, String>) -> (u16, String) {
    let hostile = st.hostile;
    let cap = st.page_rows;
    let location = st.location.clone().unwrap_or("US".into());
    let Some(j) = st.jobs.get(job) else { return api_error(404, "NOT_FOUND", "notFound", "Not found: Job") };
    let max = params.get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(100_000).max(1);
    let max = cap.map_or(max, |c| max.min(c));
    let int64_ts = params.get("formatOptions.useInt64Timestamp").is_some_and(|v| v == "true");
    let start: usize = params.get("pageToken").and_then(|t| t.strip_prefix("tok-")?.parse().ok()).unwrap_or(0);
    let fields = schema(&j.table);
    let total = j.table.rows.len();
    let start = match hostile {
        Some(Hostile::EndlessPages) => 0,
        Some(Hostile::EmptyPages) => start.clamp(1, total.max(1)),
        _ => start.min(total),
    };
    let end = if hostile == Some(Hostile::EmptyPages) && start > 0 { start } else { (start + max).min(total) };
    let rows: Vec<Value> = j.table.rows[start..end]
        .iter()
        .map(|r| {
            let mut f: Vec<Value> = j
                .table
                .columns
                .iter()
                .zip(r)
                .enumerate()
                .map(|(i, (c, v))| cell(c.kind, v, int64_ts, &fields[i]["fields"]))
                .collect();
            if hostile == Some(Hostile::WrongColumnCount) {
                f.pop();
            }
            json!({"f": f})
        })
        .collect();
    let mut out = json!({"kind": "bigquery#getQueryResultsResponse",
        "jobReference": {"projectId": PROJECT, "jobId": job, "location": location},
        "jobComplete": true, "schema": {"fields": fields}, "totalRows": total.to_string(), "rows": rows});
    let next = match hostile {
        Some(Hostile::SamePageToken) => Some("tok-same".to_string()),
        Some(Hostile::EndlessPages | Hostile::EmptyPages) => Some(format!("tok-{}", st.log.len())),
        _ if end < total => Some(format!("tok-{end}")),
        _ => None,
    };
    if let Some(t) = next {
        out["pageToken"] = json!(t);
    }
    let text = out.to_string();
    if hostile == Some(Hostile::TruncatedJson) {
        return (200, crate::sqlfake::half(&text));
    }
    (200, text)
}
