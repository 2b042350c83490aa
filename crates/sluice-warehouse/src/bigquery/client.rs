//! The BigQuery REST API v2 calls Sluice makes (`https://bigquery.googleapis.com/bigquery/v2`):
//! `jobs.insert` with `configuration.dryRun` (statement type and schema without running),
//! `jobs.query` (`POST projects/{p}/queries`), `jobs.getQueryResults`
//! (`GET projects/{p}/queries/{jobId}`, polled while `jobComplete` is false, then paged by
//! `pageToken`) and `jobs.cancel` (`POST projects/{p}/jobs/{jobId}/cancel`). Errors come as
//! `{"error": {"code", "message", "status", "errors": [{"reason", "location", "message"}]}}`.

use super::auth::ServiceAccount;
use super::rows::{self, Field};
use crate::rest::{self, Answer, Http, Poll, Request};
use crate::{Canceller, WarehouseError};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one `getQueryResults` call may wait on the server for the job (`timeoutMs`).
const WAIT_MS: u64 = 10_000;
/// The most pages without rows in a row before the paging is taken as endless.
const MAX_EMPTY_PAGES: u32 = 100;
/// The most pages of one result (at 10 000 rows a page, ten billion rows).
const MAX_PAGES: u64 = 1_000_000;

/// What a dry run says of a statement.
pub(crate) struct DryRun {
    /// `SELECT`, `INSERT`, `SCRIPT`, ...
    pub statement_type: String,
    /// The columns it returns.
    pub fields: Vec<Field>,
}

/// Takes each row of a result (with its schema); false: no more rows wanted.
pub(crate) type EachRow<'a> = dyn FnMut(&[Field], &Value) -> Result<bool, WarehouseError> + 'a;

/// A job under way, for its cancellation from another thread: the cancel URL and the token.
pub(crate) use crate::rest::Running;

/// The client of one project.
pub(crate) struct Client {
    pub http: Http,
    /// The project the jobs run in.
    pub project: String,
    /// `{endpoint}/bigquery/v2/projects/{project}`.
    base: String,
    location: Option<String>,
    account: ServiceAccount,
    job_timeout: Duration,
    pub running: Running,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `message` with the model's line shown under a `[line:column]` position BigQuery gave.
fn with_position(message: &str, sql: &str) -> String {
    let Some(start) = message.rfind(" at [") else { return message.to_string() };
    let pos = &message[start + 5..];
    let Some((line, rest)) = pos.split_once(':') else { return message.to_string() };
    let Some(col) = rest.strip_suffix(']') else { return message.to_string() };
    let (Ok(line), Ok(col)) = (line.parse::<usize>(), col.parse::<usize>()) else { return message.to_string() };
    match sql.lines().nth(line.saturating_sub(1)) {
        Some(text) if col >= 1 && col <= text.chars().count() + 1 => {
            format!("{} at line {line}, column {col}:\n    {text}\n    {}^", &message[..start], " ".repeat(col - 1))
        }
        _ => message.to_string(),
    }
}

/// The API's error answer as a [`WarehouseError`], with its message, reason and location.
pub(crate) fn api_error(a: &Answer, target: &str, sql: Option<&str>) -> WarehouseError {
    let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let e = &v["error"];
    let Some(message) = e["message"].as_str() else {
        return WarehouseError::Answer {
            target: target.to_string(),
            message: format!("HTTP {} without an error object: {}", a.status, a.excerpt()),
        };
    };
    let first = &e["errors"][0];
    let reason = first["reason"].as_str().unwrap_or_else(|| e["status"].as_str().unwrap_or(""));
    let mut text = match sql {
        Some(sql) => with_position(&rest::excerpt_long(message), sql),
        None => rest::excerpt_long(message),
    };
    if !reason.is_empty() {
        text.push_str(&format!(" (reason: {reason}"));
        if let Some(loc) = first["location"].as_str().filter(|l| !l.is_empty()) {
            text.push_str(&format!(", location: {loc}"));
        }
        text.push(')');
    }
    if a.status == 401 {
        return WarehouseError::Connect { target: target.to_string(), message: text };
    }
    let retryable = matches!(reason, "backendError" | "internalError" | "rateLimitExceeded" | "jobRateLimitExceeded")
        || a.status >= 500;
    WarehouseError::Sql { message: text, sqlstate: None, retryable }
}

/// Whether an answer is throttling or a passing failure worth retrying: 429, 5xx, or a 403
/// whose reason is `rateLimitExceeded` (BigQuery's documented throttling answers).
fn throttled(a: &Answer) -> bool {
    if a.status == 429 || a.status >= 500 {
        return true;
    }
    if a.status == 403 {
        let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
        return v["error"]["errors"]
            .as_array()
            .is_some_and(|es| es.iter().any(|e| matches!(e["reason"].as_str(), Some("rateLimitExceeded"))));
    }
    false
}

impl Client {
    /// A client for `project` at `endpoint` (without a trailing `/`).
    pub fn new(
        endpoint: &str,
        project: &str,
        location: Option<String>,
        account: ServiceAccount,
        job_timeout: Duration,
    ) -> Self {
        let target = format!("BigQuery project {project}");
        let http = Http::new(target, Duration::from_millis(WAIT_MS) + Duration::from_secs(60));
        let base = format!("{}/bigquery/v2/projects/{}", endpoint.trim_end_matches('/'), enc(project));
        let project = project.to_string();
        Self { http, project, base, location, account, job_timeout, running: Arc::new(Mutex::new(None)) }
    }

    /// The deadline of a call made now.
    fn deadline(&self) -> Instant {
        Instant::now() + self.job_timeout + Duration::from_secs(1)
    }

    /// One API call with the bearer token (renewed once if the API refuses it), throttling retried.
    fn call(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        sql: Option<&str>,
    ) -> Result<Value, WarehouseError> {
        let deadline = self.deadline();
        let mut renewed = false;
        loop {
            let token = self.account.token(&self.http, deadline)?;
            let req = Request {
                method,
                url,
                headers: vec![("Authorization", format!("Bearer {token}")), ("Accept", "application/json".into())],
                body: body.map(|b| ("application/json", b.to_string().into_bytes())),
            };
            let a = self.http.send(&req, deadline, throttled)?;
            if a.status == 401 && !renewed {
                self.account.forget();
                renewed = true;
                continue;
            }
            if !a.ok() {
                return Err(api_error(&a, &self.http.target, sql));
            }
            return a.json(&self.http.target, &format!("the answer to {method} {}", rest::strip_query(url)));
        }
    }

    /// Dry-runs `sql` (`jobs.insert` with `dryRun`): its statement type and columns, without running it.
    pub fn dry_run(&mut self, sql: &str) -> Result<DryRun, WarehouseError> {
        let mut job = json!({"configuration": {"dryRun": true, "query": {"query": sql, "useLegacySql": false}}});
        if let Some(l) = &self.location {
            job["jobReference"] = json!({"location": l});
        }
        let url = format!("{}/jobs", self.base);
        let v = self.call("POST", &url, Some(&job), Some(sql))?;
        let q = &v["statistics"]["query"];
        let bad = |m: String| WarehouseError::Answer { target: self.http.target.clone(), message: m };
        let statement_type = q["statementType"]
            .as_str()
            .ok_or_else(|| bad("the dry run's answer has no `statistics.query.statementType`".into()))?
            .to_string();
        let fields = match &q["schema"]["fields"] {
            Value::Null => Vec::new(),
            f => rows::fields(f).map_err(|m| bad(format!("the dry run's schema: {m}")))?,
        };
        Ok(DryRun { statement_type, fields })
    }

    /// Runs one of Sluice's own DDL or DML statements (`jobs.query`; only the snapshot dataset's
    /// tables, bigquery/diff.rs) and waits for it; returns `numDmlAffectedRows` when the
    /// statement is DML.
    pub fn exec(&mut self, sql: &str, canceller: &Canceller) -> Result<Option<i64>, WarehouseError> {
        let timeout = self.job_timeout;
        let deadline = Instant::now() + timeout + Duration::from_secs(1);
        let mut body = json!({
            "query": sql,
            "useLegacySql": false,
            "timeoutMs": WAIT_MS,
            "jobTimeoutMs": timeout.as_millis().to_string(),
            "requestId": rest::request_id(),
            "jobCreationMode": "JOB_CREATION_REQUIRED",
        });
        if let Some(l) = &self.location {
            body["location"] = json!(l);
        }
        let mut v = self.call("POST", &format!("{}/queries", self.base), Some(&body), Some(sql))?;
        let mut poll = Poll::new();
        while v["jobComplete"] != Value::Bool(true) {
            let job = v["jobReference"]["jobId"].as_str().filter(|j| !j.is_empty() && j.len() <= 1024);
            let job = job.ok_or_else(|| WarehouseError::Answer {
                target: self.http.target.clone(),
                message: "an unfinished job without `jobReference.jobId`".into(),
            })?;
            if canceller.is_cancelled() {
                return Err(WarehouseError::Cancelled);
            }
            if !poll.wait(deadline) {
                return Err(WarehouseError::Timeout { secs: timeout.as_secs() });
            }
            let mut url = format!("{}/queries/{}?maxResults=0&timeoutMs={WAIT_MS}", self.base, enc(job));
            if let Some(l) = v["jobReference"]["location"].as_str().or(self.location.as_deref()) {
                url.push_str(&format!("&location={}", enc(l)));
            }
            v = self.call("GET", &url, None, None)?;
        }
        Ok(match &v["numDmlAffectedRows"] {
            Value::String(n) => n.parse().ok(),
            n => n.as_i64(),
        })
    }

    /// Runs `sql` (`jobs.query`), waits for it and hands every row to `each` page by page
    /// (`page_rows` rows a page) until `each` returns false or the rows end.
    pub fn run(
        &mut self,
        sql: &str,
        timeout: Duration,
        page_rows: usize,
        canceller: &Canceller,
        each: &mut EachRow<'_>,
    ) -> Result<(), WarehouseError> {
        let timeout = timeout.min(self.job_timeout);
        let deadline = Instant::now() + timeout + Duration::from_secs(1);
        let mut body = json!({
            "query": sql,
            "useLegacySql": false,
            "maxResults": page_rows,
            "timeoutMs": WAIT_MS,
            "jobTimeoutMs": timeout.as_millis().to_string(),
            "formatOptions": {"useInt64Timestamp": true},
            "requestId": rest::request_id(),
            "jobCreationMode": "JOB_CREATION_REQUIRED",
        });
        if let Some(l) = &self.location {
            body["location"] = json!(l);
        }
        let url = format!("{}/queries", self.base);
        let mut v = self.call("POST", &url, Some(&body), Some(sql))?;
        let bad = |m: String| WarehouseError::Answer { target: self.http.target.clone(), message: m };
        let job = v["jobReference"]["jobId"]
            .as_str()
            .filter(|j| !j.is_empty() && j.len() <= 1024)
            .ok_or_else(|| bad("the answer to jobs.query has no `jobReference.jobId`".into()))?
            .to_string();
        let location = v["jobReference"]["location"].as_str().map(String::from).or(self.location.clone());
        let mut query = format!("maxResults={page_rows}&formatOptions.useInt64Timestamp=true");
        if let Some(l) = &location {
            query.push_str(&format!("&location={}", enc(l)));
        }
        let results = format!("{}/queries/{}", self.base, enc(&job));
        let cancel = format!(
            "{}/jobs/{}/cancel{}",
            self.base,
            enc(&job),
            match &location {
                Some(l) => format!("?location={}", enc(l)),
                None => String::new(),
            }
        );
        let token = self.account.token(&self.http, deadline)?;
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some((cancel, token));
        let r = self.pages(&mut v, &results, &query, (deadline, timeout), canceller, each);
        let left = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if r.is_err() {
            // stop what the warehouse may still be doing for nothing
            if let Some((url, token)) = left {
                cancel_job(&self.http, &url, &token);
            }
        }
        r.map_err(|e| canceller.explain(e))
    }

    fn pages(
        &mut self,
        v: &mut Value,
        results: &str,
        query: &str,
        (deadline, timeout): (Instant, Duration),
        canceller: &Canceller,
        each: &mut EachRow<'_>,
    ) -> Result<(), WarehouseError> {
        let target = self.http.target.clone();
        let bad = |m: String| WarehouseError::Answer { target: target.clone(), message: m };
        let mut poll = Poll::new();
        while v["jobComplete"] != Value::Bool(true) {
            if canceller.is_cancelled() {
                return Err(WarehouseError::Cancelled);
            }
            if !poll.wait(deadline) {
                return Err(WarehouseError::Timeout { secs: timeout.as_secs() });
            }
            let url = format!("{results}?{query}&timeoutMs={WAIT_MS}");
            *v = self.call("GET", &url, None, None)?;
        }
        let fields = rows::fields(&v["schema"]["fields"]).map_err(|m| bad(format!("the result's schema: {m}")))?;
        let total: Option<u64> = match &v["totalRows"] {
            Value::Null => None,
            t => Some(
                t.as_str()
                    .and_then(|s| s.parse().ok())
                    .or(t.as_u64())
                    .ok_or_else(|| bad(format!("`totalRows` is not a count: {}", rest::excerpt(&t.to_string()))))?,
            ),
        };
        let (mut seen, mut pages, mut empty) = (0u64, 0u64, 0u32);
        let mut previous: Option<String> = None;
        loop {
            let page = match v.get_mut("rows").map(Value::take) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(rows)) => rows,
                Some(other) => return Err(bad(format!("`rows` is not a list: {}", rest::excerpt(&other.to_string())))),
            };
            empty = if page.is_empty() { empty + 1 } else { 0 };
            for row in &page {
                seen += 1;
                if total.is_some_and(|t| seen > t) {
                    return Err(bad(format!("more rows than the {} the job reported", total.unwrap_or(0))));
                }
                if !each(&fields, row)? {
                    return Ok(());
                }
            }
            let token = match &v["pageToken"] {
                Value::Null => break,
                Value::String(t) if !t.is_empty() && t.len() <= 4096 => t.clone(),
                other => return Err(bad(format!("`pageToken` is not a token: {}", rest::excerpt(&other.to_string())))),
            };
            pages += 1;
            if previous.as_deref() == Some(token.as_str()) || empty > MAX_EMPTY_PAGES || pages > MAX_PAGES {
                return Err(bad(format!(
                    "the result's pages do not end (page {pages}, {seen} rows, the same or empty pages again and again)"
                )));
            }
            if canceller.is_cancelled() {
                return Err(WarehouseError::Cancelled);
            }
            if Instant::now() > deadline {
                return Err(WarehouseError::Timeout { secs: timeout.as_secs() });
            }
            let url = format!("{results}?{query}&pageToken={}", enc(&token));
            *v = self.call("GET", &url, None, None)?;
            previous = Some(token);
        }
        if let Some(t) = total.filter(|t| seen < *t) {
            return Err(bad(format!("the pages ended after {seen} rows but the job reported {t}")));
        }
        Ok(())
    }
}

/// `jobs.cancel`, once, ignoring the answer (the job may have ended meanwhile).
pub(crate) fn cancel_job(http: &Http, url: &str, token: &str) {
    let req = Request {
        method: "POST",
        url,
        headers: vec![("Authorization", format!("Bearer {token}"))],
        body: Some(("application/json", b"{}".to_vec())),
    };
    match http.send_once(&req) {
        Ok(a) => tracing::info!(status = a.status, "asked BigQuery to cancel the job"),
        Err(e) => tracing::warn!(error = %e, "could not ask BigQuery to cancel the job"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_point_into_the_model() {
        let m = super::with_position("Syntax error: Unexpected identifier \"wher\" at [2:3]", "select 1\nx wher y");
        assert!(m.contains("at line 2, column 3:\n    x wher y\n      ^"), "{m}");
        assert_eq!(super::with_position("no position", "x"), "no position");
        assert_eq!(super::with_position("bad at [9:1]", "x"), "bad at [9:1]");
    }
}
