//! A Snowflake fixture: a real HTTP server on 127.0.0.1 answering what `fakesnow` cannot
//! produce — result chunks, key-pair logins, statements still running. It implements these
//! documented parts of the connector protocol (as the Python/JDBC/Go connectors read them):
//! - `POST /session/v1/login-request`: `data.PASSWORD`, or `data.AUTHENTICATOR = SNOWFLAKE_JWT`
//!   with `data.TOKEN` (RS256 checked against the registered public key; `iss` =
//!   `ACCOUNT.USER.SHA256:<fingerprint>`, `sub` = `ACCOUNT.USER`, `exp` ≤ `iat` + 1 h);
//!   `data.SESSION_PARAMETERS.STATEMENT_TIMEOUT_IN_SECONDS`; failures as
//!   `{"code": "390100", "message": "Incorrect username or password was specified.", "success": false}`.
//! - `POST /queries/v1/query-request` with `Authorization: Snowflake Token="…"`: `describeOnly`,
//!   `rowtype`, `rowset` (JSON) or `rowsetBase64` (Arrow IPC stream), `chunks[{url, rowCount}]`
//!   with `qrmk` or `chunkHeaders`, `statementTypeId`; `code 333334` + `data.getResultUrl` for
//!   a statement still running; `000604` when aborted, `000630` at the statement timeout.
//! - `GET <chunk url>`: gzip'd bodies, JSON rows without enclosing brackets or Arrow IPC.
//! - `POST /queries/v1/abort-request` (`requestId`).
//! - `POST /session/token-request` (`Authorization` with the login's `masterToken`,
//!   `{"oldSessionToken", "requestType": "RENEW"}` → `data.sessionToken`) after a `390112`.

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fixture answers a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 100 rows inline (JSON), two JSON chunks of 100 behind the `qrmk`.
    Json,
    /// The same with Arrow rowsets and chunks, behind `chunkHeaders`.
    Arrow,
    /// The second chunk's gzip stream is cut short.
    Truncated,
    /// The second chunk has one row fewer than announced.
    WrongCount,
    /// The second chunk always answers 500.
    Error500,
    /// The chunks' host refuses connections.
    Unreachable,
    /// The second chunk is a gzip bomb: 300 MiB of zeros in a few hundred KiB.
    GzipBomb,
    /// The statement runs for `n` polls, then answers every row inline.
    Slow(u32),
    /// The statement never ends (until aborted or the session's statement timeout).
    Endless,
    /// The statement runs for two polls; the first poll finds the session token expired.
    Expiring,
}

/// Rows of the fixture's model: `idNNNN` and `NNNN`.
pub const ROWS: usize = 300;
/// The password the fixture accepts.
pub const PASSWORD: &str = "right-password";

#[derive(Default)]
pub struct State {
    pub mode: Option<Mode>,
    /// Every login's `data` (with `TOKEN` replaced by its verified claims).
    pub logins: Vec<Value>,
    /// `(path, headers)` of every chunk request.
    pub chunk_requests: Vec<(String, Vec<(String, String)>)>,
    pub aborts: Vec<Value>,
    /// The body of every query request.
    pub queries: Vec<Value>,
    pub polls: u32,
    /// Session tokens issued by `/session/token-request`.
    pub renewals: u32,
    token: String,
    timeout: Option<u64>,
    started: Option<Instant>,
}

pub struct Fixture {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

fn ids() -> Vec<(String, i64)> {
    (0..ROWS).map(|i| (format!("id{i:04}"), i as i64)).collect()
}

fn rowtype() -> Value {
    json!([
        {"name": "TO_VARCHAR(SLUICE_MODEL.\"ID\")", "type": "text", "scale": null, "nullable": true},
        {"name": "ID", "type": "text", "scale": null, "nullable": true},
        {"name": "N", "type": "fixed", "scale": 0, "precision": 38, "nullable": true},
    ])
}

fn json_rows(range: std::ops::Range<usize>) -> Vec<Value> {
    ids()[range].iter().map(|(id, n)| json!([id, id, n.to_string()])).collect()
}

fn arrow_ipc(range: std::ops::Range<usize>) -> Vec<u8> {
    let rows = &ids()[range];
    let id: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()));
    let n: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
    let batch = RecordBatch::try_from_iter(vec![("K", id.clone()), ("ID", id), ("N", n)]).expect("a batch");
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).expect("a writer");
    w.write(&batch).expect("written");
    w.finish().expect("finished");
    drop(w);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// The RSAPublicKey inside a DER SubjectPublicKeyInfo.
fn pkcs1_of_spki(spki: &[u8]) -> Option<&[u8]> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let (len, rest) = if len < 0x80 {
            (len as usize, rest)
        } else {
            let n = (len & 0x7f) as usize;
            let len = rest.get(..n)?.iter().fold(0usize, |a, b| (a << 8) | *b as usize);
            (len, &rest[n..])
        };
        Some((tag, rest.get(..len)?, rest.get(len..)?))
    }
    let (_, seq, _) = tlv(spki)?;
    let (_, _alg, rest) = tlv(seq)?;
    let (tag, bits, _) = tlv(rest)?;
    (tag == 0x03).then(|| &bits[1..])
}

/// The claims of a JWT whose RS256 signature `spki` verifies.
fn verified_claims(token: &str, spki: &[u8]) -> Option<Value> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    let header: Value = serde_json::from_slice(&b64.decode(h).ok()?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, pkcs1_of_spki(spki)?);
    key.verify(format!("{h}.{p}").as_bytes(), &b64.decode(s).ok()?).ok()?;
    serde_json::from_slice(&b64.decode(p).ok()?).ok()
}

fn respond(req: tiny_http::Request, status: u16, body: Vec<u8>) {
    let _ = req.respond(tiny_http::Response::from_data(body).with_status_code(status));
}

fn answer(req: tiny_http::Request, v: Value) {
    respond(req, 200, v.to_string().into_bytes());
}

impl Fixture {
    /// Starts the fixture; `spki_pem` is the public key registered for key-pair logins.
    pub fn start(mode: Mode, spki_pem: &str) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("a port on 127.0.0.1");
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let url = format!("http://127.0.0.1:{port}");
        let spki = super::auth::pem_block(spki_pem).expect("a public key PEM").1;
        let state = Arc::new(Mutex::new(State { mode: Some(mode), ..Default::default() }));
        let (st, base) = (state.clone(), url.clone());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let path = req.url().split('?').next().unwrap_or("").to_string();
                let role = req.url().split(['?', '&']).find_map(|p| p.strip_prefix("roleName=")).map(String::from);
                let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut s = st.lock().unwrap();
                let mode = s.mode.unwrap_or(Mode::Json);
                if path == "/session/v1/login-request" {
                    let mut data = v["data"].clone();
                    data["roleName"] = json!(role);
                    let ok = if data["AUTHENTICATOR"] == "SNOWFLAKE_JWT" {
                        let claims = data["TOKEN"].as_str().and_then(|t| verified_claims(t, &spki));
                        data["TOKEN"] = claims.clone().unwrap_or(Value::Null);
                        claims.is_some()
                    } else {
                        data["PASSWORD"] == PASSWORD
                    };
                    s.timeout = data["SESSION_PARAMETERS"]["STATEMENT_TIMEOUT_IN_SECONDS"].as_u64();
                    s.token = "session-token-1".into();
                    s.logins.push(data.clone());
                    drop(s);
                    if !ok && data["AUTHENTICATOR"] == "SNOWFLAKE_JWT" {
                        answer(
                            req,
                            json!({"data": null, "code": "390144", "message": "JWT token is invalid.", "success": false}),
                        );
                    } else if !ok {
                        answer(
                            req,
                            json!({"data": {"nextAction": "RETRY_LOGIN"}, "code": "390100", "message": "Incorrect username or password was specified.", "success": false}),
                        );
                    } else {
                        answer(
                            req,
                            json!({"data": {"token": "session-token-1", "masterToken": "m", "parameters": [],
                                "sessionInfo": {"roleName": data["roleName"].as_str().unwrap_or("PUBLIC")}},
                                "code": null, "message": null, "success": true}),
                        );
                    }
                    continue;
                }
                if let Some(chunk) = path.strip_prefix("/chunks/") {
                    let headers = req.headers().iter().map(|h| (h.field.to_string(), h.value.to_string())).collect();
                    s.chunk_requests.push((path.clone(), headers));
                    drop(s);
                    let i: usize = chunk.parse().unwrap_or(0);
                    let range = 100 * (i + 1)..100 * (i + 2);
                    let arrow = mode == Mode::Arrow;
                    let mut raw = if arrow {
                        arrow_ipc(range.clone())
                    } else {
                        let rows: Vec<String> = json_rows(range).iter().map(Value::to_string).collect();
                        rows.join(",").into_bytes()
                    };
                    if i == 1 && mode == Mode::WrongCount {
                        let rows: Vec<String> = json_rows(200..299).iter().map(Value::to_string).collect();
                        raw = rows.join(",").into_bytes();
                    }
                    let mut body = gzip(&raw);
                    if i == 1 && mode == Mode::GzipBomb {
                        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                        let zeros = vec![0u8; 1 << 20];
                        for _ in 0..300 {
                            e.write_all(&zeros).expect("gzip");
                        }
                        body = e.finish().expect("gzip");
                    }
                    if i == 1 && mode == Mode::Truncated {
                        body.truncate(body.len() / 2);
                    }
                    let status = if i == 1 && mode == Mode::Error500 { 500 } else { 200 };
                    respond(req, status, body);
                    continue;
                }
                if path == "/session/token-request" {
                    let ok = auth.as_deref() == Some("Snowflake Token=\"m\"")
                        && v["requestType"] == "RENEW"
                        && v["oldSessionToken"] == s.token.as_str();
                    let answer_v = if ok {
                        s.renewals += 1;
                        s.token = format!("session-token-{}", s.renewals + 1);
                        json!({"data": {"sessionToken": s.token, "masterToken": "m"}, "success": true})
                    } else {
                        json!({"data": null, "code": "390114", "message": "Authentication token has expired.", "success": false})
                    };
                    drop(s);
                    answer(req, answer_v);
                    continue;
                }
                if auth != Some(format!("Snowflake Token=\"{}\"", s.token)) {
                    drop(s);
                    let e = json!({"data": null, "code": "390104", "message": "User must login again to access the service.", "success": false});
                    respond(req, 401, e.to_string().into_bytes());
                    continue;
                }
                if path == "/session" {
                    drop(s);
                    answer(req, json!({"data": null, "success": true}));
                    continue;
                }
                if path == "/queries/v1/abort-request" {
                    s.aborts.push(v);
                    drop(s);
                    answer(req, json!({"data": null, "success": true}));
                    continue;
                }
                let all = json!({"data": {"rowtype": rowtype(), "rowset": json_rows(0..ROWS), "total": ROWS,
                    "queryResultFormat": "json", "statementTypeId": 4096}, "success": true});
                if path == "/queries/q1/result" {
                    s.polls += 1;
                    let elapsed = s.started.map(|t| t.elapsed()).unwrap_or_default();
                    let v = if mode == Mode::Expiring && s.polls == 1 {
                        json!({"data": {"errorCode": "390112"}, "code": "390112", "message": "Your session has expired. Please login again.", "success": false})
                    } else if !s.aborts.is_empty() {
                        json!({"data": {"sqlState": "57014"}, "code": "000604", "message": "SQL execution canceled", "success": false})
                    } else if s.timeout.is_some_and(|t| elapsed >= Duration::from_secs(t)) {
                        json!({"data": {"sqlState": "57014"}, "code": "000630", "message": format!("Statement reached its statement or warehouse timeout of {} second(s) and was canceled.", s.timeout.unwrap_or(0)), "success": false})
                    } else if matches!(mode, Mode::Slow(n) if s.polls >= n) || (mode == Mode::Expiring && s.polls >= 2)
                    {
                        all
                    } else {
                        json!({"data": {"queryId": "q1", "getResultUrl": "/queries/q1/result"}, "code": "333334", "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.", "success": false})
                    };
                    drop(s);
                    answer(req, v);
                    continue;
                }
                let sql = v["sqlText"].as_str().unwrap_or("").to_string();
                s.queries.push(v.clone());
                if v["describeOnly"] == true {
                    drop(s);
                    let mut rt = rowtype();
                    rt.as_array_mut().unwrap().remove(0);
                    answer(
                        req,
                        json!({"data": {"rowtype": rt, "rowset": [], "total": 0, "statementTypeId": 4096, "queryResultFormat": "json"}, "success": true}),
                    );
                    continue;
                }
                if matches!(mode, Mode::Slow(_) | Mode::Endless | Mode::Expiring) {
                    s.started = Some(Instant::now());
                    drop(s);
                    answer(
                        req,
                        json!({"data": {"queryId": "q1", "getResultUrl": "/queries/q1/result"}, "code": "333334", "message": "Asynchronous execution in progress.", "success": false}),
                    );
                    continue;
                }
                drop(s);
                assert!(sql.contains("ORDER BY"), "the fixture only answers scans: {sql}");
                let chunks: Vec<Value> =
                    (0..2).map(|i| {
                        let host = if mode == Mode::Unreachable { "http://127.0.0.1:1" } else { base.as_str() };
                        json!({"url": format!("{host}/chunks/{i}?X-Amz-Signature=secret"), "rowCount": 100, "uncompressedSize": 5000})
                    }).collect();
                let mut data = json!({"rowtype": rowtype(), "total": ROWS, "returned": 100, "statementTypeId": 4096, "chunks": chunks});
                if mode == Mode::Arrow {
                    data["queryResultFormat"] = json!("arrow");
                    data["rowsetBase64"] = json!(base64::engine::general_purpose::STANDARD.encode(arrow_ipc(0..100)));
                    data["chunkHeaders"] = json!({"x-custom-chunk-header": "yes"});
                } else {
                    data["queryResultFormat"] = json!("json");
                    data["rowset"] = json!(json_rows(0..100));
                    data["qrmk"] = json!("the-result-key");
                }
                answer(req, json!({"data": data, "code": null, "message": null, "success": true}));
            }
        });
        Self { url, state }
    }
}
