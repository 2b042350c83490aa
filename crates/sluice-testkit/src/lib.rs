//! A real HTTP receiver on 127.0.0.1 whose answers the test scripts, recording every request
//! (as vector's `src/sinks/util/test.rs` does for its sinks), and a raw one ([`raw`]) that
//! answers whatever bytes a test wants: bad headers, endless bodies, resets.

pub mod bigquery;
pub mod databricks;
pub mod fakesnow;
pub mod raw;
pub mod sqlfake;
pub mod vendor;
pub mod vendors;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with an empty body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany(u32),
    /// Take the request (it is recorded) but answer only after this delay (provokes a client timeout).
    Hang(Duration),
    /// This status with these headers (e.g. `Retry-After: nan`, `Location: …`).
    With(u16, Vec<(String, String)>),
    /// This status, answered after this delay (a slow receiver; the client does not time out).
    Slow(u16, Duration),
}

impl Reply {
    /// This status with one header.
    pub fn header(status: u16, name: &str, value: &str) -> Self {
        Reply::With(status, vec![(name.to_string(), value.to_string())])
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query.
    pub url: String,
    /// Header name (lowercase) -> value.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body (Null if not JSON).
    pub body: serde_json::Value,
    /// The status answered.
    pub status: u16,
    /// The receiver took the request but answered late (the client likely timed out).
    pub hung: bool,
}

impl Request {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    default: Option<u16>,
    delay: Duration,
    /// Standing answers by path: they bypass the script and the default.
    by_path: HashMap<String, Reply>,
    requests: Vec<Request>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    addr: String,
    shared: Arc<Mutex<Shared>>,
    server: Arc<tiny_http::Server>,
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1; answers 200 unless scripted otherwise.
    pub fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind receiver"));
        let addr = format!("http://{}", server.server_addr().to_ip().expect("ip addr"));
        let shared = Arc::new(Mutex::new(Shared { default: Some(200), ..Default::default() }));
        for _ in 0..4 {
            let (server, shared) = (server.clone(), shared.clone());
            thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    let (reply, delay) = {
                        let mut s = shared.lock().unwrap();
                        let path = req.url().split('?').next().unwrap_or_default().to_string();
                        let reply = match s.by_path.get(&path) {
                            Some(r) => r.clone(),
                            None => s.script.pop_front().unwrap_or(Reply::Status(s.default.unwrap_or(200))),
                        };
                        (reply, s.delay)
                    };
                    if !delay.is_zero() {
                        thread::sleep(delay);
                    }
                    if let Reply::Slow(_, d) = &reply {
                        thread::sleep(*d);
                    }
                    let status = match &reply {
                        Reply::Status(s) | Reply::With(s, _) | Reply::Slow(s, _) => *s,
                        Reply::TooMany(_) => 429,
                        Reply::Hang(_) => 200,
                    };
                    shared.lock().unwrap().requests.push(Request {
                        url: req.url().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
                            .collect(),
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                        status,
                        hung: matches!(reply, Reply::Hang(_)),
                    });
                    let mut resp = tiny_http::Response::from_string("").with_status_code(status);
                    match reply {
                        Reply::TooMany(secs) => {
                            resp.add_header(tiny_http::Header::from_bytes("Retry-After", secs.to_string()).unwrap())
                        }
                        Reply::Hang(d) => thread::sleep(d),
                        Reply::With(_, headers) => {
                            for (k, v) in headers {
                                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                                    resp.add_header(h);
                                }
                            }
                        }
                        Reply::Status(_) | Reply::Slow(..) => {}
                    }
                    let _ = req.respond(resp);
                }
            });
        }
        Self { addr, shared, server }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.addr
    }

    /// Queues replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    /// Every answer waits this long (a slow but healthy receiver).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().unwrap().delay = delay;
    }

    /// Answers every request to `path` (without query) with `reply`, script and default aside.
    pub fn answer_path(&self, path: &str, reply: Reply) {
        self.shared.lock().unwrap().by_path.insert(path.to_string(), reply);
    }

    /// Stops answering `path` specially (see [`Receiver::answer_path`]).
    pub fn clear_path(&self, path: &str) {
        self.shared.lock().unwrap().by_path.remove(path);
    }

    /// Requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.url == path).collect()
    }

    /// Drops the replies not used yet.
    pub fn clear_script(&self) {
        self.shared.lock().unwrap().script.clear();
    }

    /// The status answered once the script is used up.
    pub fn set_default(&self, status: u16) {
        self.shared.lock().unwrap().default = Some(status);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Requests answered 2xx (what the receiver actually accepted).
    pub fn accepted(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }

    /// Every item of every accepted batch posted to `path`, in arrival order.
    pub fn items(&self, path: &str) -> Vec<serde_json::Value> {
        self.accepted()
            .into_iter()
            .filter(|r| r.url == path)
            .flat_map(|r| r.body["batch"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Forgets recorded requests.
    pub fn clear(&self) {
        self.shared.lock().unwrap().requests.clear();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// The PostgreSQL server tests use: `SLUICE_TEST_PG_URL`, else the local one (trust auth).
/// Tests fail, never skip, when it is down: the test command starts it.
pub fn pg_url() -> String {
    std::env::var("SLUICE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A name unique to this test process and call, for tables and schemas.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        % 1_000_000_000;
    format!("{prefix}_{}_{t}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A superuser connection to the test database ([`pg_url`]).
pub fn pg_admin() -> postgres::Client {
    postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running")
}

/// Waits (up to 15 s) until a query containing `marker` is (`want`) or is not active on the
/// server; returns whether it was running at the end.
pub fn pg_wait_running(want: bool, marker: &str) -> bool {
    let mut c = pg_admin();
    let t = std::time::Instant::now();
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()
                 AND query LIKE '%' || $1 || '%'",
                &[&marker],
            )
            .expect("pg_stat_activity")
            .get(0);
        if (n > 0) == want || t.elapsed() > std::time::Duration::from_secs(15) {
            return n > 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits until `cond` holds, polling every 20 ms; fails the test naming `what` after `timeout`.
/// Tests synchronise on conditions, never on sleeps.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
