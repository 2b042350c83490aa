//! HTTP for the warehouses Sluice reads over REST (BigQuery, Databricks): every answer is
//! treated as hostile — bodies read up to a bound, JSON parsed with the error kept short,
//! throttling retried a bounded number of times with backoff (`backon`), `Retry-After` honoured
//! up to a cap — and no credential ever appears in an error message.

use crate::WarehouseError;
use backon::{BackoffBuilder, ExponentialBuilder};
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};

/// The largest answer read (a BigQuery page is at most 10 MB, a Databricks chunk a few MB).
pub(crate) const MAX_BODY: u64 = 64 * 1024 * 1024;
/// How many times a throttled or briefly failing request is tried in all.
const MAX_TRIES: usize = 7;
/// The longest `Retry-After` honoured; a longer one ends the work with the throttling error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of an unparseable answer an error quotes.
const EXCERPT: usize = 200;

/// How long a preview's query may run (less when the source's statement timeout is shorter).
pub(crate) const PREVIEW_TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP answer, read whole (up to [`MAX_BODY`]).
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when sent and a number.
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or an [`WarehouseError::Answer`] quoting its start.
    pub fn json(&self, target: &str, what: &str) -> Result<Value, WarehouseError> {
        parse_json(&self.body, target, what)
    }

    /// The start of the body as text (for errors).
    pub fn excerpt(&self) -> String {
        excerpt(&String::from_utf8_lossy(&self.body))
    }
}

/// `body` as JSON, or an error naming `what` and quoting the start of the body.
pub(crate) fn parse_json(body: &[u8], target: &str, what: &str) -> Result<Value, WarehouseError> {
    serde_json::from_slice(body).map_err(|e| WarehouseError::Answer {
        target: target.to_string(),
        message: format!(
            "{what} is not valid JSON ({e}; {} bytes): {}",
            body.len(),
            excerpt(&String::from_utf8_lossy(body))
        ),
    })
}

/// At most [`EXCERPT`] characters of `s`.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(EXCERPT).collect();
    if s.chars().count() > EXCERPT {
        out.push('…');
    }
    out
}

/// At most 2000 characters of a warehouse's own error message.
pub(crate) fn excerpt_long(s: &str) -> String {
    let mut out: String = s.chars().take(2000).collect();
    if s.chars().count() > 2000 {
        out.push('…');
    }
    out
}

/// A request to send.
pub(crate) struct Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// Headers; values may be credentials (never shown in errors).
    pub headers: Vec<(&'a str, String)>,
    /// A JSON or form body for `POST`.
    pub body: Option<(&'a str, Vec<u8>)>,
}

/// The HTTP client of one warehouse.
#[derive(Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    /// The warehouse, as errors name it (`BigQuery project p`).
    pub target: String,
    /// The first wait before retrying a throttled request.
    pub retry_min: Duration,
}

impl Http {
    /// A client whose requests each take at most `timeout` (answers included).
    pub fn new(target: String, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { agent, target, retry_min: Duration::from_millis(250) }
    }

    /// Sends once; any status is an answer, only a failed exchange is an error.
    pub fn send_once(&self, req: &Request<'_>) -> Result<Answer, WarehouseError> {
        let mut r = self.agent.request(req.method, req.url);
        for (k, v) in &req.headers {
            r = r.set(k, v);
        }
        let sent = match &req.body {
            Some((content_type, body)) => r.set("Content-Type", content_type).send_bytes(body),
            None => r.call(),
        };
        let resp = match sent {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => {
                // ureq's text may quote a header it refused (a token): never kept
                let mut message = match t.kind() {
                    ureq::ErrorKind::BadHeader => "a header is not a valid HTTP header (value not shown)".to_string(),
                    _ => excerpt(&t.to_string()),
                };
                for (_, v) in &req.headers {
                    if !v.trim().is_empty() {
                        message = message.replace(v.trim(), sluice_core::SET);
                    }
                }
                return Err(WarehouseError::Connect {
                    target: self.target.clone(),
                    message: format!("{} {}: {message}", req.method, strip_query(req.url)),
                });
            }
        };
        let status = resp.status();
        let retry_after = resp
            .header("Retry-After")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(86_400)));
        let mut body = Vec::new();
        let read = resp.into_reader().take(MAX_BODY + 1).read_to_end(&mut body);
        if let Err(e) = read {
            return Err(WarehouseError::Answer {
                target: self.target.clone(),
                message: format!("the answer to {} {} broke off: {e}", req.method, strip_query(req.url)),
            });
        }
        if body.len() as u64 > MAX_BODY {
            return Err(WarehouseError::Answer {
                target: self.target.clone(),
                message: format!(
                    "the answer to {} {} is larger than {MAX_BODY} bytes",
                    req.method,
                    strip_query(req.url)
                ),
            });
        }
        Ok(Answer { status, body, retry_after })
    }

    /// Sends, retrying while `throttled` says the answer is throttling or a passing failure
    /// (with exponential backoff and jitter, or the answer's `Retry-After`), at most
    /// [`MAX_TRIES`] times and never past `deadline`. The last answer is returned either way.
    pub fn send(
        &self,
        req: &Request<'_>,
        deadline: Instant,
        throttled: impl Fn(&Answer) -> bool,
    ) -> Result<Answer, WarehouseError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.retry_min)
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(MAX_TRIES - 1)
            .with_jitter()
            .build();
        loop {
            let answer = self.send_once(req)?;
            if !throttled(&answer) {
                return Ok(answer);
            }
            let Some(backoff) = delays.next() else { return Ok(answer) };
            let wait = match answer.retry_after {
                Some(ra) if ra > MAX_RETRY_AFTER => return Ok(answer),
                Some(ra) => ra.max(backoff),
                None => backoff,
            };
            if Instant::now() + wait > deadline {
                return Ok(answer);
            }
            tracing::info!(
                target_warehouse = %self.target,
                status = answer.status,
                wait_ms = wait.as_millis() as u64,
                "warehouse throttled a request; retrying"
            );
            std::thread::sleep(wait);
        }
    }
}

/// The most bytes one streamed answer (a result chunk) may have.
pub(crate) const MAX_STREAM: u64 = 4 * 1024 * 1024 * 1024;

impl Http {
    /// Sends (retrying throttling as [`Http::send`] does) and, on a 2xx, returns the body to
    /// read as it arrives (at most [`MAX_STREAM`] bytes); any other answer is read whole.
    pub fn open(
        &self,
        req: &Request<'_>,
        deadline: Instant,
        throttled: impl Fn(&Answer) -> bool,
    ) -> Result<Result<Box<dyn Read + Send>, Answer>, WarehouseError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.retry_min)
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(MAX_TRIES - 1)
            .with_jitter()
            .build();
        loop {
            let mut r = self.agent.request(req.method, req.url);
            for (k, v) in &req.headers {
                r = r.set(k, v);
            }
            let resp = match r.call() {
                Ok(resp) => return Ok(Ok(Box::new(resp.into_reader().take(MAX_STREAM)))),
                Err(ureq::Error::Status(_, resp)) => resp,
                Err(ureq::Error::Transport(t)) => {
                    return Err(WarehouseError::Connect {
                        target: self.target.clone(),
                        message: format!("GET {}: {}", strip_query(req.url), excerpt(&t.to_string())),
                    })
                }
            };
            let status = resp.status();
            let retry_after =
                resp.header("Retry-After").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            let mut body = Vec::new();
            let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut body);
            let answer = Answer { status, body, retry_after };
            let wait = match delays.next() {
                Some(b) if throttled(&answer) => answer.retry_after.map_or(b, |ra| ra.max(b)),
                _ => return Ok(Err(answer)),
            };
            if wait > MAX_RETRY_AFTER || Instant::now() + wait > deadline {
                return Ok(Err(answer));
            }
            std::thread::sleep(wait);
        }
    }
}

/// Why [`each_in_array`] stopped early.
pub(crate) enum ArrayError {
    /// The consumer failed.
    Stopped(WarehouseError),
    /// The body is not a JSON array (truncated, malformed), with serde's message.
    Json(String),
}

/// Reads a JSON array from `reader`, handing each element to `each` as soon as it is parsed
/// (one element in memory at a time), until the array ends or `each` returns false.
pub(crate) fn each_in_array(
    reader: impl Read,
    each: &mut dyn FnMut(Value) -> Result<bool, WarehouseError>,
) -> Result<(), ArrayError> {
    use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
    struct Seed<'a> {
        each: &'a mut dyn FnMut(Value) -> Result<bool, WarehouseError>,
        failure: Option<WarehouseError>,
        stopped: bool,
    }
    impl<'de> DeserializeSeed<'de> for &mut Seed<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for &mut Seed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<Value>()? {
                match (self.each)(v) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.stopped = true;
                        return Err(A::Error::custom("stopped"));
                    }
                    Err(e) => {
                        self.failure = Some(e);
                        return Err(A::Error::custom("failed"));
                    }
                }
            }
            Ok(())
        }
    }
    let mut seed = Seed { each, failure: None, stopped: false };
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader));
    let r = (&mut seed).deserialize(&mut de).and_then(|()| de.end());
    match (r, seed.failure, seed.stopped) {
        (_, Some(e), _) => Err(ArrayError::Stopped(e)),
        (_, None, true) | (Ok(()), None, false) => Ok(()),
        (Err(e), None, false) => Err(ArrayError::Json(e.to_string())),
    }
}

/// `url` without its query (which may hold a signature).
pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Waits between polls of a statement that is still running: 50 ms doubling to 2 s.
pub(crate) struct Poll {
    pause: Duration,
    /// Polls so far.
    pub count: u32,
}

/// The most polls of one statement (with [`Poll`]'s pauses, days; the deadline ends it first).
pub(crate) const MAX_POLLS: u32 = 100_000;

impl Poll {
    /// The first pause.
    pub fn new() -> Self {
        Self { pause: Duration::from_millis(50), count: 0 }
    }

    /// Sleeps before the next poll; false when the polls are used up or the deadline passed.
    pub fn wait(&mut self, deadline: Instant) -> bool {
        self.count += 1;
        if self.count > MAX_POLLS || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(self.pause.min(deadline.saturating_duration_since(Instant::now())));
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        true
    }
}

/// A fresh id for an idempotent request (a UUID-shaped hex string).
pub(crate) fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let seed = format!("{now}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let h = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    let s = format!("{h:032x}");
    format!("{}-{}-{}-{}-{}", &s[0..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

/// A column name not among `columns`, for the id Sluice selects beside the model's columns.
pub(crate) fn free_alias(columns: &[String]) -> String {
    let mut alias = "sluice_id".to_string();
    let mut n = 0;
    while columns.iter().any(|c| c.eq_ignore_ascii_case(&alias)) {
        n += 1;
        alias = format!("sluice_id_{n}");
    }
    alias
}

/// Quotes an identifier with backquotes (BigQuery and Databricks).
pub(crate) fn backquote(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// The job or statement a REST warehouse is running: its cancel URL and the token to call it
/// with (`None` when idle).
pub(crate) type Running = std::sync::Arc<std::sync::Mutex<Option<(String, String)>>>;

/// Makes `canceller` stop what `running` names, once, with the warehouse's own cancel call.
pub(crate) fn install_cancel(
    canceller: &crate::Canceller,
    running: &Running,
    http: &Http,
    cancel: fn(&Http, &str, &str),
) {
    let (running, http) = (running.clone(), http.clone());
    canceller.install(Box::new(move || {
        // one cancel request per job or statement
        let job = running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((url, token)) = job {
            cancel(&http, &url, &token);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(free_alias(&["a".into(), "SLUICE_ID".into()]), "sluice_id_1");
        assert_eq!(backquote("a`b"), "`a\\`b`");
        assert_eq!(strip_query("https://x/y?sig=1"), "https://x/y");
        assert_eq!(request_id().len(), 36);
        assert_ne!(request_id(), request_id());
        assert!(excerpt(&"x".repeat(500)).ends_with('…'));
    }

    #[test]
    fn arrays_are_read_element_by_element() {
        // a body that breaks off after two rows: both were handed on before the error
        let mut got = Vec::new();
        let r = each_in_array(std::io::Cursor::new(b"[[\"1\"],[\"2\"],[\"3".to_vec()), &mut |v| {
            got.push(v);
            Ok(true)
        });
        assert!(matches!(r, Err(ArrayError::Json(m)) if m.contains("EOF")));
        assert_eq!(got, vec![serde_json::json!(["1"]), serde_json::json!(["2"])]);
        let mut n = 0;
        let r = each_in_array(std::io::Cursor::new(b"[1,2,3] x".to_vec()), &mut |_| {
            n += 1;
            Ok(n < 2)
        });
        assert!(r.is_ok() && n == 2, "stops when asked, before trailing garbage");
        assert!(matches!(
            each_in_array(std::io::Cursor::new(b"[1] x".to_vec()), &mut |_| Ok(true)),
            Err(ArrayError::Json(_))
        ));
        assert!(matches!(
            each_in_array(std::io::Cursor::new(b"{}".to_vec()), &mut |_| Ok(true)),
            Err(ArrayError::Json(_))
        ));
    }
}
