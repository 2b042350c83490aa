//! A fake of the Databricks SQL Statement Execution API 2.0, a real HTTP server on 127.0.0.1,
//! answering from a real SQLite file ([`crate::sqlfake`]).
//!
//! Documented fields it implements (docs.databricks.com/api/workspace/statementexecution):
//! - `Authorization: Bearer <token>` on every API call, else `403 {error_code, message}`.
//! - `POST /api/2.0/sql/statements`: `warehouse_id` (must be the fake's), `statement`,
//!   `catalog`, `schema` (recorded), `disposition` (`INLINE` | `EXTERNAL_LINKS`), `format`
//!   (`JSON_ARRAY` only), `wait_timeout` (`0s` or `5s`–`50s`), `on_wait_timeout` (`CONTINUE`).
//! - StatementResponse: `statement_id`, `status {state: PENDING | RUNNING | SUCCEEDED | FAILED
//!   | CANCELED, error {error_code, message}, sql_state}`, `manifest {format, schema
//!   {column_count, columns [{name, position, type_name, type_text}]}, total_chunk_count,
//!   total_row_count, truncated, chunks}`, `result` (chunk 0).
//! - `GET /api/2.0/sql/statements/{statement_id}` (poll) and
//!   `GET /api/2.0/sql/statements/{statement_id}/result/chunks/{chunk_index}`: ResultData
//!   `{chunk_index, row_offset, row_count, data_array, next_chunk_index,
//!   next_chunk_internal_link}` for INLINE, `{external_links: [{chunk_index, row_offset,
//!   row_count, byte_count, external_link, expiration, http_headers, next_chunk_index,
//!   next_chunk_internal_link}]}` for EXTERNAL_LINKS.
//! - External links are served under another path (`/external/...`) that, like cloud storage's
//!   presigned URLs, refuses a request carrying an `Authorization` header and requires the
//!   link's `http_headers`; the body is a JSON array of rows.
//! - `POST /api/2.0/sql/statements/{statement_id}/cancel`: the statement becomes CANCELED.
//! - Throttling: `429` with `Retry-After` and `{error_code: "TOO_MANY_REQUESTS", message}`.
//! - DDL (`CREATE [OR REPLACE] TABLE`, `DROP`) succeeds with an empty result; DML (`INSERT`,
//!   `UPDATE`, `DELETE`) with one row of `num_affected_rows`. Tables of a schema made with
//!   [`FakeDatabricks::create_schema`] are `schema.table`. Functions: `xxhash64` (NULL arguments
//!   skipped, as Spark's hash functions do), `unhex`, `to_json(named_struct(...))` (see
//!   [`crate::sqlfake`]).
//!
//! Values are JSON_ARRAY's: every value a string or `null` (BOOLEAN `true`/`false`,
//! TIMESTAMP ISO 8601, ARRAY/STRUCT JSON text).

use crate::sqlfake::{self, Db, Kind, Table};
use rusqlite::types::Value as Sql;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The token the fake accepts.
pub const TOKEN: &str = "dapi-test-token";
/// The SQL warehouse the fake runs.
pub const WAREHOUSE_ID: &str = "wh0test";
const SIG_HEADER: &str = "x-fake-signature";

/// A hostile behaviour the fake can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Chunks (inline or external) are cut in the middle of their JSON.
    TruncatedJson,
    /// Every row has one value less than the manifest has columns.
    WrongColumnCount,
    /// Every chunk points at chunk 1 again.
    EndlessChunks,
    /// The statement stays RUNNING.
    NeverFinish,
}

struct Statement {
    table: Table,
    external: bool,
    polls_left: u32,
    canceled: bool,
    failed: Option<Value>,
}

#[derive(Default)]
struct State {
    statements: HashMap<String, Statement>,
    throttle: u32,
    pending_polls: u32,
    chunk_rows: usize,
    hostile: Option<Hostile>,
    log: Vec<String>,
    bodies: Vec<Value>,
    cancelled: u32,
    /// External link requests that carried an Authorization header (refused).
    leaked_auth: u32,
}

/// The fake; stops when dropped.
pub struct FakeDatabricks {
    url: String,
    db: Db,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

impl Drop for FakeDatabricks {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl FakeDatabricks {
    /// Starts on a free port, answering from the SQLite file `db` (created if missing).
    pub fn start(db: &Path) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake Databricks"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip addr"));
        let state = Arc::new(Mutex::new(State { chunk_rows: 1000, ..Default::default() }));
        let db = Db::new(db);
        for _ in 0..4 {
            let (server, state, db, url) = (server.clone(), state.clone(), db.clone(), url.clone());
            std::thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let mut body = Vec::new();
                    let _ = req.as_reader().take(16 << 20).read_to_end(&mut body);
                    let (status, text, headers) = handle(&state, &db, &url, &req, &body);
                    let mut resp = tiny_http::Response::from_data(text).with_status_code(status).with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header"),
                    );
                    for (k, v) in headers {
                        resp = resp.with_header(tiny_http::Header::from_bytes(k, v).expect("header"));
                    }
                    let _ = req.respond(resp);
                }
            });
        }
        Self { url, db, state, server }
    }

    /// The `host` setting of a source using the fake.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs SQL on the fake's data.
    pub fn sql(&self, sql: &str) {
        self.db.exec(sql);
    }

    /// Creates schema `name` (its tables are `name.table`, an SQLite file of their own).
    pub fn create_schema(&self, name: &str) {
        self.db.create_schema(name);
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The next `n` API calls are answered 429 with `Retry-After: 1`.
    pub fn throttle(&self, n: u32) {
        self.with(|s| s.throttle = n);
    }

    /// Each new statement is PENDING, then RUNNING, for this many polls first.
    pub fn pending_polls(&self, n: u32) {
        self.with(|s| s.pending_polls = n);
    }

    /// Rows per chunk.
    pub fn chunk_rows(&self, n: usize) {
        self.with(|s| s.chunk_rows = n.max(1));
    }

    /// Turns a hostile behaviour on (`None`: off).
    pub fn hostile(&self, h: Option<Hostile>) {
        self.with(|s| s.hostile = h);
    }

    /// `METHOD path` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    /// JSON bodies of the statements submitted so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.with(|s| s.bodies.clone())
    }

    /// How many cancel calls arrived.
    pub fn cancelled(&self) -> u32 {
        self.with(|s| s.cancelled)
    }

    /// How many external link requests carried an Authorization header.
    pub fn leaked_auth(&self) -> u32 {
        self.with(|s| s.leaked_auth)
    }
}

type Answer = (u16, String, Vec<(String, String)>);

fn error(status: u16, code: &str, message: &str) -> Answer {
    (status, json!({"error_code": code, "message": message}).to_string(), Vec::new())
}

fn handle(state: &Mutex<State>, db: &Db, url: &str, req: &tiny_http::Request, body: &[u8]) -> Answer {
    let full = req.url().to_string();
    let path = full.split('?').next().unwrap_or("").to_string();
    let method = req.method().to_string();
    let header =
        |name: &'static str| req.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string());
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.log.push(format!("{method} {path}"));
    if let Some(rest) = path.strip_prefix("/external/") {
        if header("Authorization").is_some() {
            st.leaked_auth += 1;
            return (
                400,
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>".into(),
                Vec::new(),
            );
        }
        let (id, n) = rest.split_once('/').unwrap_or((rest, "0"));
        if header(SIG_HEADER).as_deref() != Some(&format!("sig-{id}")) {
            return (
                403,
                "<Error><Code>AccessDenied</Code><Message>signature header missing</Message></Error>".into(),
                Vec::new(),
            );
        }
        return external(&st, id, n.parse().unwrap_or(usize::MAX));
    }
    if header("Authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return error(403, "PERMISSION_DENIED", "Invalid access token.");
    }
    if st.throttle > 0 {
        st.throttle -= 1;
        let (s, b, _) = error(429, "TOO_MANY_REQUESTS", "Too many requests. Please wait a moment and try again.");
        return (s, b, vec![("Retry-After".into(), "1".into())]);
    }
    let parts: Vec<&str> = path.trim_start_matches("/api/2.0/sql/statements").split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", [""]) => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            st.bodies.push(v.clone());
            submit(&mut st, db, url, &v)
        }
        ("GET", ["", id]) => poll(&mut st, url, id),
        ("GET", ["", id, "result", "chunks", n]) => match st.statements.get(*id) {
            None => error(404, "NOT_FOUND", "The statement was not found."),
            Some(s) => (200, chunk(&st, s, url, id, n.parse().unwrap_or(usize::MAX)).to_string(), Vec::new()),
        },
        ("POST", ["", id, "cancel"]) => {
            st.cancelled += 1;
            if let Some(s) = st.statements.get_mut(*id) {
                s.canceled = true;
            }
            (200, "{}".into(), Vec::new())
        }
        _ => error(404, "ENDPOINT_NOT_FOUND", &format!("No API found for '{method} {path}'")),
    }
}

fn submit(st: &mut State, db: &Db, url: &str, v: &Value) -> Answer {
    if v["warehouse_id"] != json!(WAREHOUSE_ID) {
        return error(
            400,
            "INVALID_PARAMETER_VALUE",
            &format!("warehouse_id {} is not a SQL warehouse", v["warehouse_id"]),
        );
    }
    if v["format"] != json!("JSON_ARRAY") {
        return error(400, "INVALID_PARAMETER_VALUE", "this fake implements format JSON_ARRAY only");
    }
    let external = match v["disposition"].as_str() {
        Some("INLINE") | None => false,
        Some("EXTERNAL_LINKS") => true,
        Some(d) => return error(400, "INVALID_PARAMETER_VALUE", &format!("unknown disposition {d}")),
    };
    let wait = v["wait_timeout"].as_str().unwrap_or("10s");
    let secs: u32 = wait.strip_suffix('s').and_then(|s| s.parse().ok()).unwrap_or(999);
    if !(secs == 0 || (5..=50).contains(&secs)) {
        return error(400, "INVALID_PARAMETER_VALUE", "wait_timeout must be 0s or between 5s and 50s");
    }
    if v["on_wait_timeout"].as_str().is_some_and(|o| o != "CONTINUE" && o != "CANCEL") {
        return error(400, "INVALID_PARAMETER_VALUE", "on_wait_timeout must be CONTINUE or CANCEL");
    }
    let sql = v["statement"].as_str().unwrap_or("");
    // DDL gives an empty result; DML one row of `num_affected_rows` (as Databricks answers)
    let first = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    let run = |sql: &str| -> Result<Table, sqlfake::SqlError> {
        match first.as_str() {
            "CREATE" | "DROP" => db.execute(sql).map(|_| Table::default()),
            "INSERT" | "UPDATE" | "DELETE" => db.execute(sql).map(|n| Table {
                columns: vec![sqlfake::Column { name: "num_affected_rows".into(), kind: Kind::Integer }],
                rows: vec![vec![Sql::Integer(n as i64)]],
            }),
            _ => db.query(sql),
        }
    };
    let (table, failed) = match run(sql) {
        Ok(t) => (t, None),
        Err(e) => {
            let (class, state) =
                if e.not_found { ("TABLE_OR_VIEW_NOT_FOUND", "42P01") } else { ("PARSE_SYNTAX_ERROR", "42601") };
            let at = e.position(sql).map(|(l, c)| format!(" (line {l}, pos {})", c - 1)).unwrap_or_default();
            let message = format!("[{class}] {}. SQLSTATE: {state}{at}", e.message);
            (
                Table::default(),
                Some(
                    json!({"state": "FAILED", "error": {"error_code": "BAD_REQUEST", "message": message}, "sql_state": state}),
                ),
            )
        }
    };
    let id = format!("01ef-fake-{}", st.statements.len() + 1);
    let polls_left = st.pending_polls;
    st.statements.insert(id.clone(), Statement { table, external, polls_left, canceled: false, failed });
    response(st, url, &id)
}

fn poll(st: &mut State, url: &str, id: &str) -> Answer {
    match st.statements.get_mut(id) {
        None => error(404, "NOT_FOUND", "The statement was not found."),
        Some(s) => {
            s.polls_left = s.polls_left.saturating_sub(1);
            response(st, url, id)
        }
    }
}

fn response(st: &State, url: &str, id: &str) -> Answer {
    let Some(s) = st.statements.get(id) else { return error(404, "NOT_FOUND", "The statement was not found.") };
    if s.canceled {
        return (200, json!({"statement_id": id, "status": {"state": "CANCELED"}}).to_string(), Vec::new());
    }
    if s.polls_left > 0 || st.hostile == Some(Hostile::NeverFinish) {
        let state = if s.polls_left > 1 { "PENDING" } else { "RUNNING" };
        return (200, json!({"statement_id": id, "status": {"state": state}}).to_string(), Vec::new());
    }
    if let Some(f) = &s.failed {
        return (200, json!({"statement_id": id, "status": f}).to_string(), Vec::new());
    }
    let columns: Vec<Value> = s
        .table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = type_name(c.kind);
            json!({"name": c.name, "position": i, "type_name": t, "type_text": t.to_lowercase()})
        })
        .collect();
    let total = s.table.rows.len();
    let n = total.div_ceil(st.chunk_rows);
    let chunks: Vec<Value> = (0..n)
        .map(|i| json!({"chunk_index": i, "row_offset": i * st.chunk_rows, "row_count": st.chunk_rows.min(total - i * st.chunk_rows)}))
        .collect();
    let mut out = json!({"statement_id": id, "status": {"state": "SUCCEEDED"},
        "manifest": {"format": "JSON_ARRAY", "schema": {"column_count": columns.len(), "columns": columns},
            "total_chunk_count": n, "total_row_count": total, "truncated": false, "chunks": chunks}});
    if n > 0 {
        out["result"] = chunk(st, s, url, id, 0);
    }
    let text = out.to_string();
    if st.hostile == Some(Hostile::TruncatedJson) && !s.external {
        return (200, crate::sqlfake::half(&text), Vec::new());
    }
    (200, text, Vec::new())
}

fn type_name(k: Kind) -> &'static str {
    match k {
        Kind::Integer => "LONG",
        Kind::Float => "DOUBLE",
        Kind::Decimal => "DECIMAL",
        Kind::Bool => "BOOLEAN",
        Kind::Text | Kind::Json => "STRING",
        Kind::Timestamp => "TIMESTAMP",
        Kind::Repeated => "ARRAY",
        Kind::Record => "STRUCT",
    }
}

fn value(k: Kind, v: &Sql) -> Value {
    match (k, v) {
        (_, Sql::Null) => Value::Null,
        (Kind::Bool, v) => json!(if matches!(v, Sql::Integer(0)) { "false" } else { "true" }),
        (Kind::Timestamp, v) => match sqlfake::epoch_secs(v) {
            Some(secs) => {
                let ms = (secs * 1000.0).round() as i64;
                let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
                let days = s.div_euclid(86_400);
                let rem = s.rem_euclid(86_400);
                let (y, m, d) = civil(days);
                json!(format!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:03}Z",
                    rem / 3600,
                    rem % 3600 / 60,
                    rem % 60
                ))
            }
            None => Value::Null,
        },
        (_, v) => sqlfake::text(v).map(Value::String).unwrap_or(Value::Null),
    }
}

/// Days since 1970-01-01 as (year, month, day) (H. Hinnant's civil_from_days).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn rows(st: &State, s: &Statement, n: usize) -> Vec<Value> {
    let start = (n * st.chunk_rows).min(s.table.rows.len());
    let end = (start + st.chunk_rows).min(s.table.rows.len());
    s.table.rows[start..end]
        .iter()
        .map(|r| {
            let mut cells: Vec<Value> = s.table.columns.iter().zip(r).map(|(c, v)| value(c.kind, v)).collect();
            if st.hostile == Some(Hostile::WrongColumnCount) {
                cells.pop();
            }
            Value::Array(cells)
        })
        .collect()
}

/// Chunk `n` of a statement as ResultData.
fn chunk(st: &State, s: &Statement, url: &str, id: &str, n: usize) -> Value {
    let total = s.table.rows.len();
    let count = total.div_ceil(st.chunk_rows);
    let next = if st.hostile == Some(Hostile::EndlessChunks) { Some(1) } else { Some(n + 1).filter(|x| *x < count) };
    let row_count = st.chunk_rows.min(total.saturating_sub(n * st.chunk_rows));
    let mut c = json!({"chunk_index": n, "row_offset": n * st.chunk_rows, "row_count": row_count});
    if let Some(x) = next {
        c["next_chunk_index"] = json!(x);
        c["next_chunk_internal_link"] = json!(format!("/api/2.0/sql/statements/{id}/result/chunks/{x}"));
    }
    if s.external {
        c["external_link"] = json!(format!("{url}/external/{id}/{n}?X-Amz-Signature=fake"));
        c["expiration"] = json!("2099-01-01T00:00:00.000Z");
        c["byte_count"] = json!(0);
        c["http_headers"] = json!({SIG_HEADER: format!("sig-{id}")});
        json!({"external_links": [c]})
    } else {
        c["data_array"] = Value::Array(rows(st, s, n));
        c
    }
}

fn external(st: &State, id: &str, n: usize) -> Answer {
    let Some(s) = st.statements.get(id).filter(|s| s.external) else {
        return (404, "<Error><Code>NoSuchKey</Code></Error>".into(), Vec::new());
    };
    let text = Value::Array(rows(st, s, n)).to_string();
    if st.hostile == Some(Hostile::TruncatedJson) {
        return (200, crate::sqlfake::half(&text), Vec::new());
    }
    (200, text, Vec::new())
}
