//! The Databricks SQL Statement Execution API 2.0 calls Sluice makes:
//! `POST /api/2.0/sql/statements` (`warehouse_id`, `statement`, `catalog`, `schema`,
//! `disposition` INLINE or EXTERNAL_LINKS, `format` JSON_ARRAY, `wait_timeout`,
//! `on_wait_timeout` CONTINUE), `GET /api/2.0/sql/statements/{id}` while the state is PENDING or
//! RUNNING, `GET .../result/chunks/{n}` through each chunk's `next_chunk_internal_link`, the
//! chunks' `external_link`s fetched WITHOUT the Authorization header (with their own
//! `http_headers`, as the API reference requires), and `POST .../cancel`. Errors come as
//! `status.error {error_code, message}` (+ `sql_state`) of a FAILED statement, or as HTTP error
//! bodies `{error_code, message}`.

use super::rows::{self, Column};
use crate::rest::{self, Answer, Http, Poll, Request};
use crate::{Canceller, WarehouseError};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the rows come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// In the answers themselves (at most 25 MiB in all: previews and descriptions).
    Inline,
    /// As links to chunks in cloud storage (any size: scans).
    ExternalLinks,
}

/// Takes each row of a result (with the columns); false: no more rows wanted.
pub(crate) type EachRow<'a> = dyn FnMut(&[Column], Vec<Value>) -> Result<bool, WarehouseError> + 'a;

/// A statement under way: its cancel URL and the token (for a cancellation from another thread).
pub(crate) use crate::rest::Running;

/// The client of one SQL warehouse.
pub(crate) struct Client {
    pub http: Http,
    /// For external links: no credential is ever sent with it.
    links: Http,
    base: String,
    token: String,
    warehouse_id: String,
    catalog: Option<String>,
    schema: Option<String>,
    timeout: Duration,
    pub running: Running,
}

/// 429 and 503 are the API's documented throttling answers; other 5xx are passing failures.
fn throttled(a: &Answer) -> bool {
    a.status == 429 || a.status >= 500
}

impl Client {
    /// A client of `base` (`https://host`).
    pub fn new(
        base: String,
        token: String,
        warehouse_id: String,
        catalog: Option<String>,
        schema: Option<String>,
        timeout: Duration,
    ) -> Self {
        let target = format!("Databricks {}", rest::strip_query(&base));
        let http = Http::new(target.clone(), Duration::from_secs(70));
        let links = Http::new(format!("{target} (result chunk)"), Duration::from_secs(300));
        Self { http, links, base, token, warehouse_id, catalog, schema, timeout, running: Arc::new(Mutex::new(None)) }
    }

    fn bad(&self, message: String) -> WarehouseError {
        WarehouseError::Answer { target: self.http.target.clone(), message }
    }

    /// An HTTP error answer as a [`WarehouseError`].
    fn http_error(&self, a: &Answer) -> WarehouseError {
        let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
        let (code, message) = (v["error_code"].as_str(), v["message"].as_str());
        let text = match (code, message) {
            (Some(c), Some(m)) => format!("{}: {}", rest::excerpt(c), rest::excerpt_long(m)),
            (None, Some(m)) => rest::excerpt_long(m),
            _ => format!("HTTP {}: {}", a.status, a.excerpt()),
        };
        match a.status {
            401 | 403 => WarehouseError::Connect {
                target: self.http.target.clone(),
                message: format!("HTTP {} (check the token and the principal's permissions): {text}", a.status),
            },
            s => WarehouseError::Sql { message: text, sqlstate: None, retryable: s == 429 || s >= 500 },
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>, deadline: Instant) -> Result<Value, WarehouseError> {
        let url = format!("{}{path}", self.base);
        let req = Request {
            method,
            url: &url,
            headers: vec![("Authorization", format!("Bearer {}", self.token)), ("Accept", "application/json".into())],
            body: body.map(|b| ("application/json", b.to_string().into_bytes())),
        };
        let a = self.http.send(&req, deadline, throttled)?;
        if !a.ok() {
            return Err(self.http_error(&a));
        }
        a.json(&self.http.target, &format!("the answer to {method} {path}"))
    }

    /// Runs `sql`, hands its rows to `each` chunk by chunk until `each` returns false; returns
    /// the columns.
    pub fn run(
        &self,
        sql: &str,
        disposition: Disposition,
        timeout: Duration,
        canceller: &Canceller,
        each: &mut EachRow<'_>,
    ) -> Result<Vec<Column>, WarehouseError> {
        let timeout = timeout.min(self.timeout);
        let deadline = Instant::now() + timeout;
        let mut body = json!({
            "warehouse_id": self.warehouse_id,
            "statement": sql,
            "disposition": match disposition { Disposition::Inline => "INLINE", Disposition::ExternalLinks => "EXTERNAL_LINKS" },
            "format": "JSON_ARRAY",
            "wait_timeout": "10s",
            "on_wait_timeout": "CONTINUE",
        });
        if let Some(c) = &self.catalog {
            body["catalog"] = json!(c);
        }
        if let Some(s) = &self.schema {
            body["schema"] = json!(s);
        }
        let mut v = self.call("POST", "/api/2.0/sql/statements", Some(&body), deadline)?;
        let id = v["statement_id"]
            .as_str()
            .filter(|s| {
                !s.is_empty() && s.len() <= 256 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .ok_or_else(|| self.bad("the answer to the statement has no usable `statement_id`".into()))?
            .to_string();
        let path = format!("/api/2.0/sql/statements/{id}");
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((format!("{}{path}/cancel", self.base), self.token.clone()));
        let r = self.follow(&mut v, &path, (deadline, timeout), canceller, each);
        let left = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if r.is_err() {
            if let Some((url, token)) = left {
                cancel_statement(&self.http, &url, &token);
            }
        }
        r.map_err(|e| canceller.explain(e))
    }

    fn follow(
        &self,
        v: &mut Value,
        path: &str,
        (deadline, timeout): (Instant, Duration),
        canceller: &Canceller,
        each: &mut EachRow<'_>,
    ) -> Result<Vec<Column>, WarehouseError> {
        let mut poll = Poll::new();
        loop {
            match v["status"]["state"].as_str() {
                Some("PENDING" | "RUNNING") => {}
                Some("SUCCEEDED") => break,
                Some("FAILED") => {
                    let e = &v["status"]["error"];
                    let message =
                        e["message"].as_str().map(rest::excerpt_long).unwrap_or_else(|| "the statement failed".into());
                    let code = e["error_code"].as_str().map(|c| format!(" ({})", rest::excerpt(c))).unwrap_or_default();
                    let sqlstate = v["status"]["sql_state"].as_str().or(e["sql_state"].as_str()).map(String::from);
                    return Err(WarehouseError::Sql {
                        message: format!("{message}{code}"),
                        sqlstate,
                        retryable: false,
                    });
                }
                Some(s @ ("CANCELED" | "CLOSED")) if !canceller.is_cancelled() => {
                    return Err(self.bad(format!("the statement was {s} on the warehouse")));
                }
                Some("CANCELED" | "CLOSED") => return Err(WarehouseError::Cancelled),
                other => {
                    return Err(self.bad(format!("unknown statement state {}", rest::excerpt(&format!("{other:?}")))))
                }
            }
            if canceller.is_cancelled() {
                return Err(WarehouseError::Cancelled);
            }
            if !poll.wait(deadline) {
                return Err(WarehouseError::Timeout { secs: timeout.as_secs() });
            }
            *v = self.call("GET", path, None, deadline)?;
        }
        let manifest = &v["manifest"];
        let columns =
            rows::columns(&manifest["schema"]["columns"]).map_err(|m| self.bad(format!("the manifest: {m}")))?;
        if manifest["truncated"] == json!(true) {
            return Err(self.bad("the result was truncated by the warehouse".into()));
        }
        let chunks = manifest["total_chunk_count"].as_u64().unwrap_or(0);
        let total_rows = manifest["total_row_count"].as_u64();
        let mut result = v.get_mut("result").map(Value::take).unwrap_or(Value::Null);
        let (mut fetched, mut last_index): (u64, Option<u64>) = (0, None);
        let mut rows =
            RowSink { columns: &columns, each, total: total_rows, seen: 0, stopped: false, target: &self.http.target };
        loop {
            if result.is_null() || rows.stopped {
                break;
            }
            let mut next = None;
            let mut chunks_here = 0;
            let mut more = |fetched: &mut u64| {
                chunks_here += 1;
                *fetched += 1;
                if *fetched > chunks.max(1) {
                    return Err(self.bad(format!("more chunks than the {chunks} the manifest lists")));
                }
                Ok(())
            };
            if let Some(data) = result.get_mut("data_array").map(Value::take) {
                more(&mut fetched)?;
                next = result["next_chunk_internal_link"].as_str().map(String::from);
                check_index(&result, &mut last_index).map_err(|m| self.bad(m))?;
                let Value::Array(list) = data else { return Err(self.bad("a chunk's rows are not a list".into())) };
                for row in list {
                    if !rows.push(row)? {
                        break;
                    }
                }
            }
            if let Some(links) = result["external_links"].as_array() {
                for link in links {
                    if rows.stopped {
                        break;
                    }
                    check_index(link, &mut last_index).map_err(|m| self.bad(m))?;
                    more(&mut fetched)?;
                    if canceller.is_cancelled() {
                        return Err(WarehouseError::Cancelled);
                    }
                    self.external(link, deadline, &mut rows)?;
                    next = link["next_chunk_internal_link"].as_str().map(String::from);
                }
            }
            if rows.stopped {
                break;
            }
            let Some(link) = next else { break };
            if chunks_here == 0 {
                return Err(self.bad("a chunk without rows or links points to another chunk".into()));
            }
            if !link.starts_with(&format!("{path}/result/chunks/")) || link.contains("://") || link.contains("..") {
                return Err(self.bad(format!(
                    "`next_chunk_internal_link` is not a chunk of this statement: {}",
                    rest::excerpt(&link)
                )));
            }
            if canceller.is_cancelled() {
                return Err(WarehouseError::Cancelled);
            }
            if Instant::now() > deadline {
                return Err(WarehouseError::Timeout { secs: timeout.as_secs() });
            }
            result = self.call("GET", &link, None, deadline)?;
        }
        let seen = rows.seen;
        if let Some(t) = total_rows.filter(|t| seen < *t && !rows.stopped) {
            return Err(self.bad(format!("the chunks ended after {seen} rows but the manifest lists {t}")));
        }
        Ok(columns)
    }

    /// One external link's rows, parsed one at a time as they arrive: fetched without the
    /// Authorization header, with the link's own `http_headers`.
    fn external(&self, link: &Value, deadline: Instant, rows: &mut RowSink<'_>) -> Result<(), WarehouseError> {
        let url =
            link["external_link"].as_str().ok_or_else(|| self.bad("an external link has no `external_link`".into()))?;
        let parsed = url::Url::parse(url).map_err(|_| self.bad("an `external_link` is not a URL".into()))?;
        let local = matches!(parsed.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || parsed.host_str() == Some("localhost");
        if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && local)) {
            return Err(self.bad(format!("an `external_link` is not https: {}", rest::strip_query(url))));
        }
        let mut headers = Vec::new();
        if let Some(h) = link["http_headers"].as_object() {
            for (k, v) in h.iter().take(32) {
                if k.eq_ignore_ascii_case("authorization") {
                    continue;
                }
                if let Some(v) = v.as_str() {
                    headers.push((k.as_str(), v.to_string()));
                }
            }
        }
        let req = Request { method: "GET", url, headers, body: None };
        let body = self.links.open(&req, deadline, throttled)?;
        let body = match body {
            Ok(reader) => reader,
            Err(a) => {
                return Err(self.bad(format!(
                    "fetching a result chunk ({}) answered HTTP {}: {}",
                    rest::strip_query(url),
                    a.status,
                    a.excerpt()
                )))
            }
        };
        rest::each_in_array(body, &mut |row| rows.push(row)).map_err(|e| match e {
            rest::ArrayError::Stopped(e) => e,
            rest::ArrayError::Json(m) => {
                self.bad(format!("a result chunk ({}) is not valid JSON: {m}", rest::strip_query(url)))
            }
        })
    }
}

/// Where a statement's rows go, one by one, checked against the manifest.
struct RowSink<'a> {
    columns: &'a [Column],
    each: &'a mut EachRow<'a>,
    total: Option<u64>,
    seen: u64,
    stopped: bool,
    target: &'a str,
}

impl RowSink<'_> {
    /// Hands one row on; false once the consumer wants no more.
    fn push(&mut self, row: Value) -> Result<bool, WarehouseError> {
        let bad = |message: String| WarehouseError::Answer { target: self.target.to_string(), message };
        self.seen += 1;
        if self.total.is_some_and(|t| self.seen > t) {
            return Err(bad(format!("more rows than the {} the manifest lists", self.total.unwrap_or(0))));
        }
        let Value::Array(cells) = row else { return Err(bad("a row is not a list of values".into())) };
        if cells.len() != self.columns.len() {
            return Err(bad(format!("a row has {} values, the manifest {} columns", cells.len(), self.columns.len())));
        }
        let go_on = (self.each)(self.columns, cells)?;
        self.stopped = !go_on;
        Ok(go_on)
    }
}

/// Chunks must come in increasing `chunk_index` order.
fn check_index(chunk: &Value, last: &mut Option<u64>) -> Result<(), String> {
    let Some(i) = chunk["chunk_index"].as_u64() else { return Ok(()) };
    if last.is_some_and(|l| i <= l) {
        return Err(format!("chunk {i} came after chunk {}", last.unwrap_or(0)));
    }
    *last = Some(i);
    Ok(())
}

/// `POST .../cancel`, once, ignoring the answer (the statement may have ended meanwhile).
pub(crate) fn cancel_statement(http: &Http, url: &str, token: &str) {
    let req = Request {
        method: "POST",
        url,
        headers: vec![("Authorization", format!("Bearer {token}"))],
        body: Some(("application/json", b"{}".to_vec())),
    };
    match http.send_once(&req) {
        Ok(a) => tracing::info!(status = a.status, "asked Databricks to cancel the statement"),
        Err(e) => tracing::warn!(error = %e, "could not ask Databricks to cancel the statement"),
    }
}
