//! The HTTP loop and the scripted faults shared by the `customerio`, `salesforce`,
//! `google_ads` and `meta` fakes: a real tiny_http server on 127.0.0.1 handing each request to
//! the fake's handler.

use crate::vendor::Fault;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// One request as a fake sees it.
#[derive(Debug, Clone)]
pub struct Http {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query (without `?`), percent-encoded as sent.
    pub query: String,
    /// Header name (lowercase) -> value.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Http {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// What a fake answers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering (a hang).
    pub delay: Option<Duration>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, v: serde_json::Value) -> Self {
        Self::raw(status, "application/json", v.to_string().into_bytes())
    }

    /// An answer of this content type.
    pub fn raw(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self { status, headers: vec![("Content-Type".into(), content_type.into())], body, delay: None }
    }

    /// With one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A hostile answer a fake can give instead of its real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// A success whose body is not JSON (or CSV) at all.
    Garbage,
    /// A success whose body is cut in the middle.
    Truncated,
    /// A job that never finishes (Salesforce, Google Ads).
    NeverFinish,
}

/// The faults scripted so far, taken as requests arrive.
#[derive(Debug, Default)]
pub struct Script {
    outage: usize,
    throttle: usize,
    throttle_for: Duration,
    hang: usize,
    hang_for: Duration,
    /// Records refused with the vendor's partial-failure answer.
    pub reject: HashSet<String>,
    /// A hostile behaviour, until cleared.
    pub hostile: Option<Hostile>,
}

/// What a scripted fault asks of the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Answer normally.
    Normal,
    /// The vendor is down.
    Outage,
    /// The vendor throttles, asking to wait this long.
    Throttle(Duration),
}

impl Script {
    /// Adds a fault.
    pub fn add(&mut self, f: Fault) {
        match f {
            Fault::Outage(n) => self.outage += n,
            Fault::Throttle(n, d) => {
                self.throttle += n;
                self.throttle_for = d;
            }
            Fault::RejectRecord(id) => {
                self.reject.insert(id);
            }
            Fault::Hang(n, d) => {
                self.hang += n;
                self.hang_for = d;
            }
        }
    }

    /// Takes what the next request gets: a hang delay (if any) and outage or throttling.
    pub fn take(&mut self) -> (Option<Duration>, Next) {
        let hang = if self.hang > 0 {
            self.hang -= 1;
            Some(self.hang_for)
        } else {
            None
        };
        let next = if self.outage > 0 {
            self.outage -= 1;
            Next::Outage
        } else if self.throttle > 0 {
            self.throttle -= 1;
            Next::Throttle(self.throttle_for)
        } else {
            Next::Normal
        };
        (hang, next)
    }
}

/// A running fake server; stops when dropped.
pub struct Server {
    url: String,
    server: Arc<tiny_http::Server>,
}

impl Server {
    /// Starts a server on a free port of 127.0.0.1 answering with `handler`.
    pub fn start(handler: Arc<dyn Fn(&Http) -> Answer + Send + Sync>) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip addr"));
        for _ in 0..4 {
            let (server, handler) = (server.clone(), handler.clone());
            std::thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let mut body = Vec::new();
                    let _ = std::io::Read::read_to_end(req.as_reader(), &mut body);
                    let (path, query) = match req.url().split_once('?') {
                        Some((p, q)) => (p.to_string(), q.to_string()),
                        None => (req.url().to_string(), String::new()),
                    };
                    let http = Http {
                        method: req.method().as_str().to_string(),
                        path,
                        query,
                        headers: req
                            .headers()
                            .iter()
                            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
                            .collect(),
                        body,
                    };
                    let a = handler(&http);
                    if let Some(d) = a.delay {
                        std::thread::sleep(d);
                    }
                    let mut resp = tiny_http::Response::from_data(a.body).with_status_code(a.status);
                    for (k, v) in a.headers {
                        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                            resp.add_header(h);
                        }
                    }
                    let _ = req.respond(resp);
                }
            });
        }
        Self { url, server }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Seconds for a `Retry-After` header (at least 1).
pub fn secs(d: Duration) -> String {
    d.as_secs_f64().ceil().max(1.0).to_string()
}

/// SHA-256 of `s`, lowercase hex (what the hashed-identifier vendors receive).
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
