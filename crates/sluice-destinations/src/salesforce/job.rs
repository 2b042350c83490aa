//! One Bulk API 2.0 ingest job from creation to its results, and the SOQL lookup of record
//! `Id`s by external id that a delete job needs.

use super::results::{File, Results};
use super::SalesforceConfig;
use crate::error::excerpt;
use crate::http::Retries;
use crate::throttle::Answer;
use crate::vendor::{unreadable, Req, VendorClient};
use crate::{DeliveryError, ErrorClass};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Longest wait between two polls.
const MAX_POLL_WAIT: Duration = Duration::from_secs(30);
/// Most pages of one SOQL lookup.
const MAX_QUERY_PAGES: usize = 50;
/// Longest SOQL text of one lookup (its URL stays well under the 16,384-byte URI limit).
pub const MAX_SOQL: usize = 8_000;

/// The org's REST API for one destination.
pub struct Api<'a> {
    /// Its settings.
    pub config: &'a SalesforceConfig,
    /// The client (rate limit, retries, throttling signal).
    pub client: &'a VendorClient,
    /// `Bearer <token>`.
    pub auth: &'a str,
}

/// What a finished job says per record.
pub struct Finished {
    /// The result files.
    pub results: Results,
    /// The job's final state (`JobComplete`, `Failed`, `Aborted`).
    pub state: String,
    /// The job's `errorMessage`, if any.
    pub error: Option<String>,
}

impl Api<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/services/data/{}/{path}", self.config.endpoint, self.config.api_version)
    }

    /// One call with the destination's retries; an expired session is the configuration's
    /// fault (retryable: the records wait for a new token), other answers are classified.
    fn call(&self, method: &str, url: &str, body: Option<(&str, &[u8])>) -> Result<Answer, DeliveryError> {
        let headers = [("Authorization", self.auth), ("Accept", "application/json")];
        let req = Req { method, url, headers: &headers, body };
        // 403 REQUEST_LIMIT_EXCEEDED is throttling (the client's signal); any other 401/403 is
        // the token's or its permissions' fault
        let refused =
            |a: &Answer| a.status == 401 || (a.status == 403 && crate::throttle::salesforce(403, &a.body).is_none());
        let a = self.client.call(req, Retries::Transport, refused)?;
        if refused(&a) {
            let why =
                if a.status == 401 { "the access token is invalid or expired" } else { "the token lacks a permission" };
            return Err(DeliveryError {
                class: ErrorClass::User,
                retryable: true,
                message: format!("HTTP {}: {why}: {}", a.status, a.text()),
                retry_after: None,
            });
        }
        Ok(a)
    }

    fn json(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, DeliveryError> {
        let text = body.map(|b| b.to_string());
        let a = self.call(method, url, text.as_deref().map(|t| ("application/json", t.as_bytes())))?;
        a.json().ok_or_else(|| unreadable("JSON", &a))
    }

    /// Runs one job (`upsert` or `delete`) over `csv` (header row included) and reads its
    /// results keyed by `key`.
    pub fn run(&self, operation: &str, csv: &[u8], key: &str) -> Result<Finished, DeliveryError> {
        let mut spec =
            json!({"object": self.config.object, "operation": operation, "contentType": "CSV", "lineEnding": "LF"});
        if operation == "upsert" {
            spec["externalIdFieldName"] = json!(self.config.external_id_field);
        }
        let job = self.json("POST", &self.url("jobs/ingest"), Some(&spec))?;
        let id = job["id"]
            .as_str()
            .filter(|id| !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| {
                DeliveryError::external(format!(
                    "job creation answered without a job id: {}",
                    excerpt(&job.to_string(), 200)
                ))
            })?
            .to_string();
        let job_url = self.url(&format!("jobs/ingest/{id}"));
        tracing::debug!(job = %id, operation, bytes = csv.len(), "Bulk API job created");
        let uploaded = self
            .call("PUT", &format!("{job_url}/batches"), Some(("text/csv", csv)))
            .and_then(|_| self.json("PATCH", &job_url, Some(&json!({"state": "UploadComplete"}))));
        if let Err(e) = uploaded {
            // a job left Open never runs: abort it (its own failure is only logged)
            if let Err(a) = self.json("PATCH", &job_url, Some(&json!({"state": "Aborted"}))) {
                tracing::warn!(job = %id, error = %a, "could not abort the job after its upload failed");
            }
            return Err(e);
        }
        let info = self.poll(&id, &job_url)?;
        let state = info["state"].as_str().unwrap_or_default().to_string();
        let mut results = Results::default();
        let mut rows = 0;
        for file in [File::Successful, File::Failed, File::Unprocessed] {
            let a = self.call("GET", &format!("{job_url}/{}", file.path()), None)?;
            if a.truncated {
                return Err(unreadable("result CSV (a job's results must fit in 4 MiB: lower batch_size)", &a));
            }
            let n = results.add(file, &a.body, key).map_err(|e| DeliveryError::external(format!("job {id}: {e}")))?;
            if file != File::Unprocessed {
                rows += n;
            }
        }
        if let Some(processed) = info["numberRecordsProcessed"].as_u64() {
            if rows as u64 != processed {
                return Err(DeliveryError::external(format!(
                    "job {id}: the result CSVs hold {rows} rows but the job processed {processed}"
                )));
            }
        }
        let error = info["errorMessage"].as_str().filter(|e| !e.is_empty()).map(str::to_string);
        Ok(Finished { results, state, error })
    }

    /// Polls the job (bounded, the wait doubling) until it is `JobComplete`, `Failed` or
    /// `Aborted`; a job still running after `max_polls` is aborted and reported.
    fn poll(&self, id: &str, job_url: &str) -> Result<Value, DeliveryError> {
        let mut wait = Duration::from_millis(self.config.poll_interval_ms);
        let mut last = String::new();
        for n in 0..self.config.max_polls {
            if n > 0 {
                std::thread::sleep(wait);
                wait = (wait * 2).min(MAX_POLL_WAIT);
            }
            let info = self.json("GET", job_url, None)?;
            last = info["state"].as_str().unwrap_or_default().to_string();
            match last.as_str() {
                "JobComplete" | "Failed" | "Aborted" => return Ok(info),
                "Open" | "UploadComplete" | "InProgress" => {}
                _ => {
                    return Err(DeliveryError::external(format!(
                        "job {id}: its status has no known state: {}",
                        excerpt(&info.to_string(), 200)
                    )))
                }
            }
        }
        if let Err(e) = self.json("PATCH", job_url, Some(&json!({"state": "Aborted"}))) {
            tracing::warn!(job = %id, error = %e, "could not abort a job that did not finish");
        }
        Err(DeliveryError::external(format!(
            "job {id} was still {last} after {} polls: aborted; its records are sent again next sync",
            self.config.max_polls
        )))
    }

    /// The Salesforce `Id` of each external id that exists (SOQL `IN`, paged, bounded).
    pub fn ids_of(&self, external_ids: &[String]) -> Result<HashMap<String, String>, DeliveryError> {
        let ext = &self.config.external_id_field;
        let mut out = HashMap::new();
        let head = format!("SELECT Id, {ext} FROM {} WHERE {ext} IN (", self.config.object);
        let mut chunks: Vec<String> = Vec::new();
        let mut cur = String::new();
        for id in external_ids {
            let lit = soql_literal(id);
            if !cur.is_empty() && head.len() + cur.len() + lit.len() + 2 > MAX_SOQL {
                chunks.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(',');
            }
            cur.push_str(&lit);
        }
        if !cur.is_empty() {
            chunks.push(cur);
        }
        for list in chunks {
            let q = format!("{head}{list})");
            let mut url = format!("{}?q={}", self.url("query"), form_encode(&q));
            for page in 0.. {
                if page >= MAX_QUERY_PAGES {
                    return Err(DeliveryError::external(format!(
                        "the Id lookup returned more than {MAX_QUERY_PAGES} pages"
                    )));
                }
                let v = self.json("GET", &url, None)?;
                let records = v["records"].as_array().ok_or_else(|| {
                    DeliveryError::external(format!(
                        "the Id lookup answered without records: {}",
                        excerpt(&v.to_string(), 200)
                    ))
                })?;
                for r in records {
                    if let (Some(sf), Some(e)) = (
                        r["Id"].as_str(),
                        r[ext.as_str()]
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| r[ext.as_str()].as_i64().map(|n| n.to_string())),
                    ) {
                        out.insert(e, sf.to_string());
                    }
                }
                match v["nextRecordsUrl"].as_str() {
                    Some(next) if v["done"] == false && next.starts_with("/services/data/") => {
                        url = format!("{}{next}", self.config.endpoint)
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

/// A SOQL string literal: `'`, `\` and line breaks escaped.
pub fn soql_literal(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for c in s.chars() {
        match c {
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '"' => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o.push('\'');
    o
}

/// Percent-encodes a query parameter value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
