//! A fake of Salesforce's Bulk API 2.0 ingest jobs and the SOQL query resource, a real HTTP
//! server on 127.0.0.1.
//!
//! Documented behaviour it implements (developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
//! `create_job.htm`, `upload_job_data.htm`, `close_job.htm`, `get_job_info.htm`,
//! `get_job_successful_results.htm`, `get_job_failed_results.htm`, `get_job_unprocessed_results.htm`,
//! limits: `bulk_common_limits.htm`; REST errors and `REQUEST_LIMIT_EXCEEDED`:
//! developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm; SOQL query:
//! `resources_query.htm`):
//! - `Authorization: Bearer <token>` on every call, else `401 [{"errorCode":
//!   "INVALID_SESSION_ID", "message"}]`.
//! - `POST /services/data/vXX.X/jobs/ingest` `{"object", "operation": "upsert" | "delete",
//!   "externalIdFieldName" (upsert), "contentType": "CSV", "lineEnding": "LF"}` → job info
//!   with `id` and `state: "Open"`.
//! - `PUT .../jobs/ingest/{id}/batches` (`Content-Type: text/csv`, once per job, only while
//!   `Open`) → `201`; a body over the upload limit (150 MB; lowered for tests with
//!   [`SalesforceFake::max_upload_bytes`]) → `400 [{"errorCode": "INVALIDBATCH"}]`.
//! - `PATCH .../jobs/ingest/{id}` `{"state": "UploadComplete" | "Aborted"}`.
//! - `GET .../jobs/ingest/{id}`: `UploadComplete → InProgress → JobComplete` (after a few
//!   polls; the CSV is processed then), with `numberRecordsProcessed`, `numberRecordsFailed`.
//! - `GET .../successfulResults/` (`sf__Id, sf__Created, <columns>`), `.../failedResults/`
//!   (`sf__Id, sf__Error, <columns>`), `.../unprocessedrecords/` (`<columns>`), each in
//!   **shuffled** order, as Salesforce does not keep the upload's order.
//! - `GET .../query?q=SELECT Id, <ext> FROM <object> WHERE <ext> IN ('a', ...)`
//!   → `{"totalSize", "done", "records": [{"attributes", "Id", <ext>}]}`.
//! - Upserts need the external id column; deletes an `Id` column of existing records.
//! - Throttling: `403 [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message"}]`; an outage: `503`.

use super::serve::{Answer, Hostile, Http, Next, Script, Server};
use crate::vendor::{Fault, VendorFake};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The token the fake accepts.
pub const TOKEN: &str = "00Dfake!session-token";
/// The object and external id field it knows.
pub const OBJECT: &str = "Contact";
/// See [`OBJECT`].
pub const EXT_FIELD: &str = "Sluice_Id__c";

struct Job {
    operation: String,
    state: &'static str,
    csv: Option<Vec<u8>>,
    polls: u32,
    ok: Vec<Vec<String>>,
    failed: Vec<Vec<String>>,
    unprocessed: Vec<Vec<String>>,
    header: Vec<String>,
}

#[derive(Default)]
struct State {
    script: Script,
    jobs: HashMap<String, Job>,
    records: BTreeMap<String, (String, BTreeMap<String, String>)>,
    deleted: Vec<String>,
    ever: Vec<String>,
    next_id: u64,
    max_upload: usize,
    polls: u32,
    calls: Vec<String>,
}

/// The fake; stops when dropped.
pub struct SalesforceFake {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Default for SalesforceFake {
    fn default() -> Self {
        Self::start()
    }
}

impl SalesforceFake {
    /// Starts the fake.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State { max_upload: 150_000_000, polls: 2, ..Default::default() }));
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

    /// Lowers the upload limit (Salesforce's is 150 MB).
    pub fn max_upload_bytes(&self, n: usize) {
        self.state.lock().unwrap().max_upload = n;
    }

    /// A record's fields by external id.
    pub fn record(&self, ext_id: &str) -> Option<BTreeMap<String, String>> {
        self.state.lock().unwrap().records.get(ext_id).map(|r| r.1.clone())
    }

    /// `METHOD path` of every call, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// How many jobs were created.
    pub fn jobs(&self) -> usize {
        self.state.lock().unwrap().jobs.len()
    }
}

fn err(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(status, json!([{"errorCode": code, "message": message}]))
}

fn info(id: &str, j: &Job) -> Value {
    json!({"id": id, "operation": j.operation, "object": OBJECT, "state": j.state, "contentType": "CSV",
           "lineEnding": "LF", "apiVersion": 62.0, "externalIdFieldName": if j.operation == "upsert" { EXT_FIELD } else { "" },
           "numberRecordsProcessed": j.ok.len() + j.failed.len(), "numberRecordsFailed": j.failed.len(),
           "errorMessage": ""})
}

fn answer(s: &mut State, h: &Http, next: Next) -> Answer {
    s.calls.push(format!("{} {}", h.method, h.path));
    if h.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return err(401, "INVALID_SESSION_ID", "Session expired or invalid");
    }
    match next {
        Next::Outage => return err(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable"),
        Next::Throttle(_) => return err(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        Next::Normal => {}
    }
    let Some(rest) = h.path.strip_prefix("/services/data/").and_then(|p| p.split_once('/')).map(|(_, r)| r.to_string())
    else {
        return err(404, "NOT_FOUND", "The requested resource does not exist");
    };
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match (h.method.as_str(), parts.as_slice()) {
        ("GET", ["query"]) => query(s, h),
        ("POST", ["jobs", "ingest"]) => create(s, h),
        ("PUT", ["jobs", "ingest", id, "batches"]) => upload(s, id, h),
        ("PATCH", ["jobs", "ingest", id]) => {
            let want = h.json().and_then(|v| v["state"].as_str().map(str::to_string)).unwrap_or_default();
            let Some(j) = s.jobs.get_mut(*id) else { return err(404, "NOT_FOUND", "job not found") };
            match (want.as_str(), j.state) {
                ("UploadComplete", "Open") => j.state = "UploadComplete",
                ("Aborted", "Open" | "UploadComplete" | "InProgress") => j.state = "Aborted",
                _ => return err(400, "INVALIDJOBSTATE", &format!("cannot change a {} job to {want}", j.state)),
            }
            Answer::json(200, info(id, j))
        }
        ("GET", ["jobs", "ingest", id]) => poll(s, id),
        ("GET", ["jobs", "ingest", id, file]) => results(s, id, file),
        _ => err(404, "NOT_FOUND", "The requested resource does not exist"),
    }
}

fn create(s: &mut State, h: &Http) -> Answer {
    let Some(v) = h.json() else { return err(400, "JSON_PARSER_ERROR", "Unexpected character") };
    let op = v["operation"].as_str().unwrap_or_default().to_string();
    if v["object"] != OBJECT {
        return err(
            400,
            "INVALIDENTITY",
            &format!("sObject type '{}' is not supported", v["object"].as_str().unwrap_or("")),
        );
    }
    if op != "upsert" && op != "delete" {
        return err(400, "INVALID_REQUEST", "operation must be upsert or delete here");
    }
    if op == "upsert" && v["externalIdFieldName"] != EXT_FIELD {
        return err(400, "INVALIDFIELD", "externalIdFieldName is not an external id field of Contact");
    }
    if v["contentType"] != "CSV" && !v["contentType"].is_null() {
        return err(400, "INVALID_REQUEST", "contentType must be CSV");
    }
    s.next_id += 1;
    let id = format!("7505g00000{:08}", s.next_id);
    let j = Job {
        operation: op,
        state: "Open",
        csv: None,
        polls: 0,
        ok: vec![],
        failed: vec![],
        unprocessed: vec![],
        header: vec![],
    };
    let a = Answer::json(200, info(&id, &j));
    s.jobs.insert(id, j);
    a
}

fn upload(s: &mut State, id: &str, h: &Http) -> Answer {
    let max = s.max_upload;
    let Some(j) = s.jobs.get_mut(id) else { return err(404, "NOT_FOUND", "job not found") };
    if !h.header("content-type").is_some_and(|c| c.starts_with("text/csv")) {
        return err(400, "INVALID_REQUEST", "Content-Type must be text/csv");
    }
    if j.state != "Open" || j.csv.is_some() {
        return err(400, "INVALIDJOBSTATE", "data can be uploaded once, while the job is Open");
    }
    if h.body.len() > max {
        return err(400, "INVALIDBATCH", &format!("the upload is over {max} bytes"));
    }
    j.csv = Some(h.body.clone());
    Answer::raw(201, "text/plain", Vec::new())
}

fn poll(s: &mut State, id: &str) -> Answer {
    let (limit, never) = (s.polls, s.script.hostile == Some(Hostile::NeverFinish));
    let Some(j) = s.jobs.get_mut(id) else { return err(404, "NOT_FOUND", "job not found") };
    if j.state == "UploadComplete" {
        j.state = "InProgress";
    } else if j.state == "InProgress" && !never {
        j.polls += 1;
        if j.polls >= limit {
            process(s, id);
        }
    }
    let j = &s.jobs[id];
    Answer::json(200, info(id, j))
}

/// Runs the job's CSV against the records.
fn process(s: &mut State, id: &str) {
    let Some(j) = s.jobs.get_mut(id) else { return };
    let csv = j.csv.take().unwrap_or_default();
    let op = j.operation.clone();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut r = csv::ReaderBuilder::new().from_reader(&csv[..]);
    let header: Vec<String> = r.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
    let mut bad_csv = None;
    for rec in r.records() {
        match rec {
            Ok(rec) => rows.push(rec.iter().map(str::to_string).collect()),
            Err(e) => bad_csv = Some(e.to_string()),
        }
    }
    let key = if op == "upsert" { EXT_FIELD } else { "Id" };
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    let state = match (header.iter().position(|h| h == key), bad_csv) {
        (Some(k), None) => {
            for row in rows {
                let kv = row[k].clone();
                if op == "upsert" {
                    s.ever.push(kv.clone());
                    if s.script.reject.contains(&kv) {
                        failed.push(
                            [
                                vec![
                                    String::new(),
                                    "FIELD_CUSTOM_VALIDATION_EXCEPTION:Email must be a company address:Email --".into(),
                                ],
                                row,
                            ]
                            .concat(),
                        );
                        continue;
                    }
                    s.next_id += 1;
                    let next = format!("003{:015}", s.next_id);
                    let e = s.records.entry(kv).or_insert_with(|| (next, BTreeMap::new()));
                    let created = e.1.is_empty();
                    for (h, v) in header.iter().zip(&row) {
                        if !v.is_empty() {
                            e.1.insert(h.clone(), v.clone());
                        }
                    }
                    ok.push([vec![e.0.clone(), created.to_string()], row].concat());
                } else {
                    let found = s.records.iter().find(|(_, (sf, _))| *sf == kv).map(|(ext, _)| ext.clone());
                    match found {
                        Some(ext) => {
                            s.ever.push(ext.clone());
                            s.records.remove(&ext);
                            s.deleted.push(ext);
                            ok.push([vec![kv.clone(), "false".into()], row].concat());
                        }
                        None => failed
                            .push([vec![kv.clone(), "ENTITY_IS_DELETED:entity is deleted:--".into()], row].concat()),
                    }
                }
            }
            "JobComplete"
        }
        _ => "Failed",
    };
    if let Some(j) = s.jobs.get_mut(id) {
        j.header = header;
        j.ok = ok;
        j.failed = failed;
        j.state = state;
    }
}

/// A deterministic shuffle (the order differs from the upload's).
fn shuffle(rows: &mut [Vec<String>], seed: u64) {
    let mut x = seed | 1;
    for i in (1..rows.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rows.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

fn results(s: &mut State, id: &str, file: &str) -> Answer {
    let hostile = s.script.hostile;
    let Some(j) = s.jobs.get(id) else { return err(404, "NOT_FOUND", "job not found") };
    if !matches!(j.state, "JobComplete" | "Failed" | "Aborted") {
        return err(400, "INVALIDJOBSTATE", "results are available once the job is finished");
    }
    let (lead, mut rows): (Vec<&str>, Vec<Vec<String>>) = match file {
        "successfulResults" => (vec!["sf__Id", "sf__Created"], j.ok.clone()),
        "failedResults" => (vec!["sf__Id", "sf__Error"], j.failed.clone()),
        "unprocessedrecords" => (vec![], j.unprocessed.clone()),
        _ => return err(404, "NOT_FOUND", "The requested resource does not exist"),
    };
    shuffle(&mut rows, s.next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let header: Vec<&str> = lead.iter().copied().chain(j.header.iter().map(String::as_str)).collect();
    let _ = w.write_record(&header);
    for r in &rows {
        let _ = w.write_record(r);
    }
    let mut body = w.into_inner().unwrap_or_default();
    match hostile {
        Some(Hostile::Garbage) if file == "successfulResults" => {
            body = b"<html><body>Maintenance</body></html>".to_vec()
        }
        Some(Hostile::Truncated) if file == "successfulResults" && body.len() > 4 => {
            // cut inside the last row, before its last column
            let end = body.len() - 1;
            let cut = body[..end].iter().rposition(|b| *b == b',').unwrap_or(end);
            body.truncate(cut);
        }
        _ => {}
    }
    Answer::raw(200, "text/csv", body)
}

/// SOQL: `SELECT Id, <ext> FROM Contact WHERE <ext> IN ('a', 'b')` only.
fn query(s: &mut State, h: &Http) -> Answer {
    let q = h.param("q").unwrap_or_default();
    let head = format!("SELECT Id, {EXT_FIELD} FROM {OBJECT} WHERE {EXT_FIELD} IN (");
    let Some(list) = q.strip_prefix(&head).and_then(|l| l.strip_suffix(')')) else {
        return err(400, "MALFORMED_QUERY", &format!("unexpected query: {q}"));
    };
    // SOQL string literals: 'x', with \' and \\ escapes
    let mut ids = Vec::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        v.push(match n {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            o => o,
                        })
                    }
                }
                '\'' => break,
                o => v.push(o),
            }
        }
        ids.push(v);
    }
    let records: Vec<Value> = ids
        .iter()
        .filter_map(|e| s.records.get(e).map(|(sf, _)| json!({"attributes": {"type": OBJECT, "url": format!("/services/data/v62.0/sobjects/Contact/{sf}")}, "Id": sf, EXT_FIELD: e})))
        .collect();
    Answer::json(200, json!({"totalSize": records.len(), "done": true, "records": records}))
}

impl VendorFake for SalesforceFake {
    fn kind(&self) -> &'static str {
        "salesforce"
    }

    fn settings(&self) -> serde_json::Map<String, Value> {
        let v = json!({"endpoint": self.url(), "access_token": TOKEN, "object": OBJECT, "external_id_field": EXT_FIELD,
                       "poll_interval_ms": 5});
        v.as_object().cloned().unwrap_or_default()
    }

    fn script(&self, fault: Fault) {
        self.state.lock().unwrap().script.add(fault);
    }

    fn held(&self) -> Vec<String> {
        self.state.lock().unwrap().records.keys().cloned().collect()
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
}
