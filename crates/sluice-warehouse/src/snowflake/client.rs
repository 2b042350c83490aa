//! The Snowflake connector protocol over HTTPS (what Snowflake's own drivers speak):
//! `POST /session/v1/login-request` (password or `SNOWFLAKE_JWT`) gives a session token;
//! `POST /queries/v1/query-request` with `Authorization: Snowflake Token="…"` runs a statement
//! and answers with its `rowtype`, the first rows (`rowset` JSON or `rowsetBase64` Arrow) and
//! the `chunks` holding the rest (fetched from their URLs with `chunkHeaders` or the `qrmk`);
//! a statement still running after the request's wait answers `333333`/`333334` with a
//! `getResultUrl` to poll; `POST /queries/v1/abort-request` cancels it; a session token that
//! expires while a statement runs (`390112`) is renewed with the master token
//! (`POST /session/token-request`).
//!
//! Every answer is read with a size cap, polls end at a deadline, and a failed answer becomes
//! the server's own message and code.

use super::rows::{self, Column};
use crate::WarehouseError;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest answer of the query API read (its first rowset is inline).
const MAX_ANSWER: u64 = 128 << 20;
/// Largest chunk read, after decompression.
const MAX_CHUNK: u64 = 256 << 20;
/// Snowflake's "statement still running" codes.
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];
/// `statementTypeId` of a SELECT.
pub const SELECT: i64 = 0x1000;
/// Attempts per chunk (a 5xx or a broken connection is tried again).
const CHUNK_ATTEMPTS: u32 = 3;
/// Longest a chunk's download may take.
const CHUNK_DEADLINE: Duration = Duration::from_secs(600);
/// Snowflake's "session token expired" code.
const SESSION_EXPIRED: &str = "390112";
/// Token renewals while one statement runs.
const MAX_RENEWALS: u32 = 3;

/// How a session logs in.
pub enum Auth {
    /// The user's password.
    Password(String),
    /// A key-pair JWT (`AUTHENTICATOR: SNOWFLAKE_JWT`).
    Jwt(String),
}

/// What a login needs besides the credential.
pub struct Login<'a> {
    pub account: &'a str,
    pub user: &'a str,
    pub warehouse: Option<&'a str>,
    pub database: Option<&'a str>,
    pub schema: Option<&'a str>,
    pub role: Option<&'a str>,
    pub statement_timeout: Option<u64>,
}

/// The statement in flight, for an abort request from another thread.
type Running = Arc<Mutex<Option<(String, String)>>>;

/// A logged-in session.
pub struct Session {
    agent: ureq::Agent,
    endpoint: String,
    /// The session token, shared with the aborter (a renewal replaces it).
    token: Arc<Mutex<String>>,
    /// Renews the session token when Snowflake says it expired (`390112`).
    master_token: Option<String>,
    sequence: u64,
    /// The result URL of the statement being polled.
    polling: Option<String>,
    running: Running,
    /// Shown in errors: the account and user.
    pub target: String,
    /// The session's role, as the login answer names it.
    pub role: Option<String>,
}

/// Where the rest of a result is.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub url: String,
    pub rows: u64,
}

/// A statement's answer: its columns, first rows and remaining chunks.
#[derive(Debug)]
pub struct Answer {
    pub columns: Vec<Column>,
    pub statement_type: Option<i64>,
    pub arrow: bool,
    pub first: Vec<Vec<Option<String>>>,
    pub chunks: Vec<Chunk>,
    pub chunk_headers: Vec<(String, String)>,
}

fn uuid() -> String {
    let mut b = [0u8; 16];
    // SystemRandom fails only without an OS random source; a fixed id then still works
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A URL without its query (presigned chunk URLs carry credentials there).
fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Reads at most `limit` bytes of a body; more is an error.
fn read_capped(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf).map_err(|e| format!("reading {what}: {e}"))?;
    if buf.len() as u64 > limit {
        return Err(format!("{what} is larger than {} MiB", limit >> 20));
    }
    Ok(buf)
}

/// The message of a failed envelope: `message (code C, SQLSTATE S)`, and the SQLSTATE.
fn failure(v: &Value) -> (String, Option<String>, String) {
    let code = v["code"].as_str().or(v["data"]["errorCode"].as_str()).unwrap_or("").to_string();
    let state = v["data"]["sqlState"].as_str().or(v["sqlState"].as_str()).map(String::from);
    let message = v["message"].as_str().unwrap_or("the server gave no message").trim().to_string();
    let mut text = message;
    match (&*code, &state) {
        ("", None) => {}
        ("", Some(s)) => text.push_str(&format!(" (SQLSTATE {s})")),
        (c, None) => text.push_str(&format!(" (code {c})")),
        (c, Some(s)) => text.push_str(&format!(" (code {c}, SQLSTATE {s})")),
    }
    (text, state, code)
}

impl Session {
    /// Logs in at `endpoint`; bad credentials are the server's own message.
    pub fn login(endpoint: &str, login: &Login, auth: Auth) -> Result<Self, WarehouseError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let target = format!("snowflake account {} as {} ({})", login.account, login.user, endpoint);
        let connect = |message: String| WarehouseError::Connect { target: target.clone(), message };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            // the query API holds a request up to ~45 s before answering "still running"
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(60))
            // any one call, body included (a statement that runs longer answers "still running")
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut params = serde_json::Map::new();
        params.insert("QUERY_TAG".into(), json!("sluice"));
        params.insert("AUTOCOMMIT".into(), json!(true));
        if let Some(t) = login.statement_timeout {
            params.insert("STATEMENT_TIMEOUT_IN_SECONDS".into(), json!(t));
        }
        let mut data = json!({
            // the account without region or domain, as the connectors send it
            "ACCOUNT_NAME": login.account.split('.').next().unwrap_or(login.account),
            "LOGIN_NAME": login.user,
            "CLIENT_ENVIRONMENT": {"APPLICATION": "sluice", "OS": std::env::consts::OS},
            "SESSION_PARAMETERS": params,
        });
        match auth {
            Auth::Password(p) => data["PASSWORD"] = json!(p),
            Auth::Jwt(t) => {
                data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                data["TOKEN"] = json!(t);
            }
        }
        let mut req = agent
            .post(&format!("{endpoint}/session/v1/login-request"))
            .query("request_id", &uuid())
            .set("Accept", "application/json");
        for (k, v) in [
            ("warehouse", login.warehouse),
            ("databaseName", login.database),
            ("schemaName", login.schema),
            ("roleName", login.role),
        ] {
            if let Some(v) = v {
                req = req.query(k, v);
            }
        }
        let v = Self::envelope(req.send_json(json!({"data": data}))).map_err(connect)?;
        if v["success"] != json!(true) {
            return Err(connect(format!("login refused: {}", failure(&v).0)));
        }
        let token = v["data"]["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| connect("the login answer has no session token".into()))?;
        tracing::debug!(account = login.account, user = login.user, "snowflake session opened");
        let master_token = v["data"]["masterToken"].as_str().map(String::from);
        let role = v["data"]["sessionInfo"]["roleName"].as_str().map(String::from);
        Ok(Self {
            agent,
            endpoint,
            token: Arc::new(Mutex::new(token.to_string())),
            master_token,
            sequence: 0,
            polling: None,
            running: Arc::default(),
            target,
            role,
        })
    }

    /// Reads a JSON envelope; HTTP errors with a JSON body keep the server's message.
    fn envelope(r: Result<ureq::Response, ureq::Error>) -> Result<Value, String> {
        let (status, resp) = match r {
            Ok(resp) => (200, resp),
            Err(ureq::Error::Status(s, resp)) => (s, resp),
            Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
        };
        let body = read_capped(resp.into_reader(), MAX_ANSWER, "the answer")?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() && (status == 200 || v.get("message").is_some_and(Value::is_string)) => Ok(v),
            _ if status != 200 => {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                Err(format!("HTTP {status}: {}", text.trim()))
            }
            Ok(_) | Err(_) => Err("the answer is not a JSON object".into()),
        }
    }

    fn authorization(&self) -> String {
        let token = self.token.lock().map(|t| t.clone()).unwrap_or_default();
        format!("Snowflake Token=\"{token}\"")
    }

    /// Trades the master token for a new session token (`POST /session/token-request`).
    fn renew(&self) -> Result<(), WarehouseError> {
        let expired = |m: String| self.transport(format!("the session expired and could not be renewed: {m}"));
        let master = self.master_token.as_deref().ok_or_else(|| expired("the login gave no master token".into()))?;
        let old = self.token.lock().map(|t| t.clone()).unwrap_or_default();
        let r = self
            .agent
            .post(&format!("{}/session/token-request", self.endpoint))
            .query("requestId", &uuid())
            .set("Authorization", &format!("Snowflake Token=\"{master}\""))
            .set("Accept", "application/snowflake")
            .send_json(json!({"oldSessionToken": old, "requestType": "RENEW"}));
        let v = Self::envelope(r).map_err(expired)?;
        let token = v["data"]["sessionToken"].as_str().filter(|t| !t.is_empty() && v["success"] == json!(true));
        let token = token.ok_or_else(|| expired(failure(&v).0))?;
        if let Ok(mut t) = self.token.lock() {
            *t = token.to_string();
        }
        tracing::debug!("snowflake session token renewed");
        Ok(())
    }

    /// Stops the statement in flight on the server (from any thread).
    pub fn aborter(&self) -> impl Fn() + Send + Sync + 'static {
        let (agent, running, token) = (self.agent.clone(), self.running.clone(), self.token.clone());
        let url = format!("{}/queries/v1/abort-request", self.endpoint);
        move || {
            let Some((request_id, sql)) = running.lock().ok().and_then(|r| r.clone()) else { return };
            let auth = format!("Snowflake Token=\"{}\"", token.lock().map(|t| t.clone()).unwrap_or_default());
            let r = agent
                .post(&url)
                .query("request_id", &uuid())
                .set("Authorization", &auth)
                .set("Accept", "application/snowflake")
                .send_json(json!({"sqlText": sql, "requestId": request_id}));
            tracing::debug!(request_id, ok = r.is_ok(), "snowflake abort request sent");
        }
    }

    /// Runs one statement (`describe_only`: compiled, not run) with statement `params`, waiting
    /// for it until `deadline`; `cancelled` is asked between polls.
    pub fn query(
        &mut self,
        sql: &str,
        describe_only: bool,
        params: Value,
        deadline: Instant,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Answer, WarehouseError> {
        self.sequence += 1;
        self.polling = None;
        let request_id = uuid();
        if let Ok(mut r) = self.running.lock() {
            *r = Some((request_id.clone(), sql.to_string()));
        }
        let result = self.run(sql, &request_id, describe_only, params, deadline, cancelled);
        if let Ok(mut r) = self.running.lock() {
            *r = None;
        }
        result
    }

    fn transport(&self, message: String) -> WarehouseError {
        WarehouseError::Connect { target: self.target.clone(), message }
    }

    fn run(
        &mut self,
        sql: &str,
        request_id: &str,
        describe_only: bool,
        params: Value,
        deadline: Instant,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Answer, WarehouseError> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": self.sequence,
            "querySubmissionTime": now_ms,
            "describeOnly": describe_only,
            "parameters": params,
        });
        let r = self
            .agent
            .post(&format!("{}/queries/v1/query-request", self.endpoint))
            .query("requestId", request_id)
            .query("request_guid", &uuid())
            .set("Authorization", &self.authorization())
            .set("Accept", "application/snowflake")
            .send_json(body);
        let mut v = Self::envelope(r).map_err(|m| self.transport(m))?;
        let mut pause = Duration::from_millis(200);
        let mut renewals = 0;
        loop {
            let code = v["code"].as_str().unwrap_or("");
            if code == SESSION_EXPIRED && renewals < MAX_RENEWALS && v["data"]["getResultUrl"].is_null() {
                // a long statement outlived the session token: renew it and poll on
                if let Some(url) = self.polling.take() {
                    renewals += 1;
                    self.renew()?;
                    v = json!({"code": IN_PROGRESS[0], "data": {"getResultUrl": url}});
                    continue;
                }
            }
            if v["success"] == json!(true) && !IN_PROGRESS.contains(&code) {
                return self.answer(v);
            }
            if !IN_PROGRESS.contains(&code) {
                let (message, state, code) = failure(&v);
                tracing::debug!(code, "snowflake statement failed");
                return Err(WarehouseError::sql(message, state.as_deref()));
            }
            // still running: poll the result URL until the deadline
            let url = v["data"]["getResultUrl"]
                .as_str()
                .filter(|u| u.starts_with('/'))
                .ok_or_else(|| self.transport("a statement still running came without a getResultUrl".into()))?
                .to_string();
            self.polling = Some(url.clone());
            if cancelled() {
                return Err(WarehouseError::Cancelled);
            }
            if Instant::now() + pause > deadline {
                return Err(WarehouseError::sql(
                    "the statement was still running at the source's timeout; Sluice stopped waiting",
                    Some("57014"),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(5));
            let r = self
                .agent
                .get(&format!("{}{url}", self.endpoint))
                .set("Authorization", &self.authorization())
                .set("Accept", "application/snowflake")
                .call();
            v = Self::envelope(r).map_err(|m| self.transport(m))?;
        }
    }

    fn answer(&self, v: Value) -> Result<Answer, WarehouseError> {
        let bad = |m: String| self.transport(format!("a malformed query answer: {m}"));
        let data = &v["data"];
        let columns: Vec<Column> =
            serde_json::from_value(data["rowtype"].clone()).map_err(|e| bad(format!("rowtype: {e}")))?;
        let arrow = data["queryResultFormat"].as_str().is_some_and(|f| f.eq_ignore_ascii_case("arrow"));
        let first = if arrow {
            use base64::Engine as _;
            let b64 = data["rowsetBase64"].as_str().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("rowsetBase64: {e}")))?;
            rows::arrow_stream(&bytes, &columns).map_err(bad)?
        } else {
            match data.get("rowset") {
                None | Some(Value::Null) => Vec::new(),
                Some(r) => rows::json_rows(r.clone(), columns.len()).map_err(bad)?,
            }
        };
        let chunks = match data.get("chunks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(cs)) => cs
                .iter()
                .map(|c| {
                    let url = c["url"].as_str().filter(|u| u.starts_with("http://") || u.starts_with("https://"));
                    match (url, c["rowCount"].as_u64()) {
                        (Some(url), Some(rows)) => Ok(Chunk { url: url.to_string(), rows }),
                        _ => Err(bad("a chunk without an http(s) url or rowCount".into())),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("chunks is not an array".into())),
        };
        let mut chunk_headers: Vec<(String, String)> = match &data["chunkHeaders"] {
            Value::Object(h) => h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect(),
            _ => Vec::new(),
        };
        if chunk_headers.is_empty() {
            if let Some(qrmk) = data["qrmk"].as_str() {
                chunk_headers = vec![
                    ("x-amz-server-side-encryption-customer-algorithm".into(), "AES256".into()),
                    ("x-amz-server-side-encryption-customer-key".into(), qrmk.to_string()),
                ];
            }
        }
        Ok(Answer { columns, statement_type: data["statementTypeId"].as_i64(), arrow, first, chunks, chunk_headers })
    }

    /// Fetches and decodes chunk `index` of `answer`; its row count must be the announced one.
    pub fn chunk(&self, answer: &Answer, index: usize) -> Result<Vec<Vec<Option<String>>>, WarehouseError> {
        let chunk = &answer.chunks[index];
        let what = format!("chunk {} of {} ({})", index + 1, answer.chunks.len(), shown(&chunk.url));
        let bad = |m: String| self.transport(format!("{what}: {m}"));
        let mut attempt = 0;
        let body = loop {
            attempt += 1;
            // the whole download, however slowly the store sends it
            let mut req = self.agent.get(&chunk.url).timeout(CHUNK_DEADLINE);
            for (k, v) in &answer.chunk_headers {
                req = req.set(k, v);
            }
            let retry = match req.call() {
                Ok(resp) => break read_capped(resp.into_reader(), MAX_CHUNK, "the chunk").map_err(&bad)?,
                Err(ureq::Error::Status(s, _)) if s >= 500 || s == 429 => format!("HTTP {s}"),
                Err(ureq::Error::Status(s, _)) => return Err(bad(format!("HTTP {s}"))),
                // not its Display: that starts with the URL, whose query is a credential
                Err(ureq::Error::Transport(t)) => match t.message() {
                    Some(m) => format!("{}: {m}", t.kind()),
                    None => t.kind().to_string(),
                },
            };
            if attempt >= CHUNK_ATTEMPTS {
                return Err(bad(format!("{retry} after {attempt} attempts")));
            }
            tracing::warn!(chunk = index + 1, attempt, error = %retry, "snowflake chunk download failed; retrying");
            std::thread::sleep(Duration::from_millis(300 * u64::from(attempt)));
        };
        let body = if body.starts_with(&[0x1f, 0x8b]) {
            read_capped(flate2::read::MultiGzDecoder::new(&body[..]), MAX_CHUNK, "the chunk (gunzipped)")
                .map_err(&bad)?
        } else {
            body
        };
        let rows = if answer.arrow {
            rows::arrow_stream(&body, &answer.columns).map_err(&bad)?
        } else {
            // JSON chunks are the rows without the enclosing brackets: `["1","a"],["2","b"]`
            let mut text = Vec::with_capacity(body.len() + 2);
            text.push(b'[');
            text.extend_from_slice(&body);
            text.push(b']');
            let v: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON rows: {e}")))?;
            rows::json_rows(v, answer.columns.len()).map_err(&bad)?
        };
        if rows.len() as u64 != chunk.rows {
            return Err(bad(format!("{} rows where the answer announced {}", rows.len(), chunk.rows)));
        }
        Ok(rows)
    }

    /// Ends the session on the server (best effort).
    pub fn close(&self) {
        let _ = self
            .agent
            .post(&format!("{}/session", self.endpoint))
            .query("delete", "true")
            .set("Authorization", &self.authorization())
            .call();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_the_servers_words() {
        let v = json!({"data": {"errorCode": "002003", "sqlState": "42S02"}, "code": "002003",
            "message": "SQL compilation error:\nObject 'NOPE' does not exist or not authorized.", "success": false});
        let (m, s, c) = failure(&v);
        assert!(m.starts_with("SQL compilation error:\nObject 'NOPE'") && m.ends_with("(code 002003, SQLSTATE 42S02)"));
        assert_eq!((s.as_deref(), c.as_str()), (Some("42S02"), "002003"));
        assert_eq!(failure(&json!({})).0, "the server gave no message");
        assert_eq!(shown("https://s3/x?X-Amz-Signature=secret"), "https://s3/x");
        assert_eq!(uuid().len(), 36);
    }
}
