//! SaaS vendor fakes (issue 12), each a real HTTP server on 127.0.0.1 enforcing its vendor's
//! documented contract, all implementing [`crate::vendor::VendorFake`].
//!
//! [`FakeServer`] carries what every fake shares: the server loop, the scripted
//! [`Fault`]s (outage, the vendor's own throttling answer, hangs), the request log, and the
//! bookkeeping the shared suites read ([`Book`]: held, deleted, ever received). A vendor
//! supplies a [`Vendor`]: its contract (`handle`), the identifiers a request carries
//! (`identifiers`, for "ever received"), its throttling answer and its settings.

pub mod amplitude;
pub mod braze;
pub mod hubspot;
pub mod iterable;
pub mod mixpanel;

// customerio, salesforce, google_ads, meta: their own loop in `serve` (scripted faults,
// hostile answers, job state machines)
pub mod customerio;
pub mod google_ads;
pub mod meta;
pub mod salesforce;
pub mod serve;

use crate::vendor::{Fault, VendorFake};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Starts a fake of one destination kind.
pub type StartFake = fn() -> Box<dyn VendorFake>;

/// Every vendor fake, one line per kind: the fault suite
/// (`sluice-destinations/tests/every_kind.rs`) and the "no withheld record ever arrives"
/// property (`sluice-engine/tests/every_kind_consent.rs`) run against each.
pub fn every_kind() -> Vec<StartFake> {
    vec![
        || Box::new(braze::start()),
        || Box::new(hubspot::start()),
        || Box::new(amplitude::start()),
        || Box::new(mixpanel::start()),
        || Box::new(iterable::start()),
        || Box::new(customerio::CustomerIoFake::start()),
        || Box::new(salesforce::SalesforceFake::start()),
        || Box::new(google_ads::GoogleAdsFake::start()),
        || Box::new(meta::MetaFake::start()),
    ]
}

/// Most bytes of a request body a fake reads (beyond: 413, as the vendors do for oversize).
pub const MAX_FAKE_BODY: usize = 32 * 1024 * 1024;

/// One request as a fake sees it.
#[derive(Debug, Clone)]
pub struct Http {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query (after `?`, undecoded).
    pub query: String,
    /// Header name (lowercase) -> value.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Vec<u8>,
}

impl Http {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    /// A form-encoded body's field.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// A fake's answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Resp {
    /// This status with a JSON body.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, headers: vec![("Content-Type".into(), "application/json".into())], body: body.to_string() }
    }

    /// This status with a text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, headers: vec![], body: body.into() }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// What a fake's vendor holds, as the shared suites read it.
#[derive(Debug, Default)]
pub struct Book {
    /// Identifier -> its attributes (upserted and not deleted).
    pub held: BTreeMap<String, serde_json::Value>,
    /// Identifiers deleted through the delete call, in order.
    pub deleted: Vec<String>,
    /// Every identifier any request carried, in order.
    pub ever: Vec<String>,
    /// Events taken: (identifier, event name).
    pub events: Vec<(String, String)>,
    /// Identifiers the vendor rejects (scripted with [`Fault::RejectRecord`]).
    pub reject: HashSet<String>,
}

impl Book {
    /// Upserts `id` with `attrs` merged into what it holds.
    pub fn upsert(&mut self, id: &str, attrs: &serde_json::Value) {
        let e = self.held.entry(id.to_string()).or_insert_with(|| serde_json::json!({}));
        if let (Some(e), Some(a)) = (e.as_object_mut(), attrs.as_object()) {
            for (k, v) in a {
                e.insert(k.clone(), v.clone());
            }
        }
    }

    /// Deletes `id` (recorded even if it was not held, as vendors answer).
    pub fn delete(&mut self, id: &str) {
        self.held.remove(id);
        self.deleted.push(id.to_string());
    }
}

/// A vendor's contract, as its fake answers it.
pub trait Vendor: Send + Sync + 'static {
    /// The destination kind.
    fn kind(&self) -> &'static str;
    /// Settings pointing a destination at the fake at `base` (`http://127.0.0.1:port`).
    fn settings(&self, base: &str) -> serde_json::Map<String, serde_json::Value>;
    /// Answers a request as the vendor documents it, updating `book`.
    fn handle(&self, req: &Http, book: &mut Book) -> Resp;
    /// The identifiers a request carries (whether it is taken or not).
    fn identifiers(&self, req: &Http) -> Vec<String>;
    /// The vendor's own throttling answer asking to wait `wait`.
    fn throttle(&self, wait: Duration) -> Resp {
        Resp::text(429, "Too Many Requests").header("Retry-After", wait.as_secs().max(1).to_string())
    }
    /// The vendor's outage answer.
    fn outage(&self) -> Resp {
        Resp::text(503, "Service Unavailable")
    }
}

#[derive(Default)]
struct Core {
    book: Book,
    faults: VecDeque<Fault>,
    requests: Vec<Http>,
}

/// A vendor fake: a real HTTP server on 127.0.0.1 answering as `V`; stops when dropped.
pub struct FakeServer<V: Vendor> {
    base: String,
    vendor: Arc<V>,
    core: Arc<Mutex<Core>>,
    server: Arc<tiny_http::Server>,
}

impl<V: Vendor> FakeServer<V> {
    /// Starts `vendor`'s fake on a free port.
    pub fn start(vendor: V) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind vendor fake"));
        let base = format!("http://{}", server.server_addr().to_ip().expect("ip addr"));
        let vendor = Arc::new(vendor);
        let core = Arc::new(Mutex::new(Core::default()));
        for _ in 0..4 {
            let (server, core, vendor) = (server.clone(), core.clone(), vendor.clone());
            thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let mut body = Vec::new();
                    let _ = req.as_reader().take(MAX_FAKE_BODY as u64 + 1).read_to_end(&mut body);
                    let url = req.url().to_string();
                    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                    let http = Http {
                        method: req.method().as_str().to_string(),
                        path: path.to_string(),
                        query: query.to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
                            .collect(),
                        body,
                    };
                    let (resp, hang) = answer(&*vendor, &core, http);
                    if let Some(d) = hang {
                        thread::sleep(d);
                    }
                    let mut r = tiny_http::Response::from_string(resp.body).with_status_code(resp.status);
                    for (k, v) in resp.headers {
                        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                            r.add_header(h);
                        }
                    }
                    let _ = req.respond(r);
                }
            });
        }
        Self { base, vendor, core, server }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Http> {
        self.lock().requests.clone()
    }

    /// Events taken: (identifier, name).
    pub fn events(&self) -> Vec<(String, String)> {
        self.lock().book.events.clone()
    }

    /// The attributes held for `id`.
    pub fn attributes(&self, id: &str) -> Option<serde_json::Value> {
        self.lock().book.held.get(id).cloned()
    }

    /// Reads the book.
    pub fn with_book<T>(&self, f: impl FnOnce(&mut Book) -> T) -> T {
        f(&mut self.lock().book)
    }

    /// The vendor.
    pub fn vendor(&self) -> &V {
        &self.vendor
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn answer<V: Vendor>(vendor: &V, core: &Mutex<Core>, http: Http) -> (Resp, Option<Duration>) {
    let ids = vendor.identifiers(&http);
    let mut c = core.lock().unwrap_or_else(|p| p.into_inner());
    c.requests.push(http.clone());
    c.book.ever.extend(ids);
    if http.body.len() > MAX_FAKE_BODY {
        return (Resp::text(413, "Request Entity Too Large"), None);
    }
    let fault = match c.faults.front().cloned() {
        Some(f @ (Fault::Outage(n) | Fault::Throttle(n, _) | Fault::Hang(n, _))) => {
            if n <= 1 {
                c.faults.pop_front();
            } else if let Some(Fault::Outage(n) | Fault::Throttle(n, _) | Fault::Hang(n, _)) = c.faults.front_mut() {
                *n -= 1;
            }
            Some(f).filter(|_| n > 0)
        }
        _ => None,
    };
    match fault {
        Some(Fault::Outage(_)) => (vendor.outage(), None),
        Some(Fault::Throttle(_, wait)) => (vendor.throttle(wait), None),
        Some(Fault::Hang(_, d)) => (vendor.handle(&http, &mut c.book), Some(d)),
        _ => (vendor.handle(&http, &mut c.book), None),
    }
}

impl<V: Vendor> VendorFake for FakeServer<V> {
    fn kind(&self) -> &'static str {
        self.vendor.kind()
    }

    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        self.vendor.settings(&self.base)
    }

    fn script(&self, fault: Fault) {
        let mut c = self.lock();
        match fault {
            Fault::RejectRecord(id) => {
                c.book.reject.insert(id);
            }
            f => c.faults.push_back(f),
        }
    }

    fn held(&self) -> Vec<String> {
        self.lock().book.held.keys().cloned().collect()
    }

    fn deleted(&self) -> Vec<String> {
        self.lock().book.deleted.clone()
    }

    fn ever_received(&self) -> Vec<String> {
        self.lock().book.ever.clone()
    }
}

impl<V: Vendor> Drop for FakeServer<V> {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// The `Authorization: Bearer` token of a request, if any.
pub fn bearer(req: &Http) -> Option<&str> {
    req.header("authorization").and_then(|v| v.strip_prefix("Bearer "))
}

/// The `(user, password)` of a request's `Authorization: Basic`, if any.
pub fn basic(req: &Http) -> Option<(String, String)> {
    use base64::Engine;
    let b = req.header("authorization")?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}
