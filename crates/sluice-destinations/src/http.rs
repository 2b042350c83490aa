//! The HTTP transport shared by HTTP destinations: one agent, one retry policy, one
//! classification of answers.

use crate::error::{excerpt, parse_retry_after, MAX_MESSAGE_BODY};
use crate::{parse_settings, DeliveryError, ErrorClass, RetryPolicy};
use serde::Deserialize;
use sluice_core::ConfigError;
use std::io::Read;
use std::time::Duration;

/// Longest `timeout_secs` accepted (one hour).
pub const MAX_TIMEOUT_SECS: f64 = 3600.0;
/// Longest retry delay (`retry_initial_ms`, `retry_max_ms`) accepted, in milliseconds (one hour).
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;
/// Longest `max_retry_after_secs` accepted (one day).
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;
/// Most attempts per request accepted.
pub const MAX_ATTEMPTS: u32 = 100;
/// Most bytes of a response body read: enough for an error message, bounded whatever the
/// receiver sends (a huge or endless body is cut, the connection dropped).
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024;

/// Transport settings every HTTP destination accepts (flat, beside its own settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// Seconds before a request times out (then it is retried).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Attempts per request within one sync, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay in milliseconds (doubles up to `retry_max_ms`, with jitter).
    #[serde(default = "default_initial")]
    pub retry_initial_ms: u64,
    /// Largest retry delay in milliseconds.
    #[serde(default = "default_max")]
    pub retry_max_ms: u64,
    /// Longest `Retry-After` honoured within a sync, in seconds; longer: retried next sync.
    #[serde(default = "default_retry_after")]
    pub max_retry_after_secs: u64,
}

fn default_timeout() -> f64 {
    30.0
}
fn default_attempts() -> u32 {
    4
}
fn default_initial() -> u64 {
    500
}
fn default_max() -> u64 {
    30_000
}
fn default_retry_after() -> u64 {
    120
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout_secs: default_timeout(),
            max_attempts: default_attempts(),
            retry_initial_ms: default_initial(),
            retry_max_ms: default_max(),
            max_retry_after_secs: default_retry_after(),
        }
    }
}

const KEYS: [&str; 5] = ["timeout_secs", "max_attempts", "retry_initial_ms", "retry_max_ms", "max_retry_after_secs"];

type Settings = serde_json::Map<String, serde_json::Value>;

impl HttpOptions {
    /// Splits `settings` into the transport's options and the rest (the kind's own settings).
    pub fn split(settings: &Settings) -> Result<(Self, Settings), ConfigError> {
        let (http, rest): (Settings, Settings) =
            settings.clone().into_iter().partition(|(k, _)| KEYS.contains(&k.as_str()));
        let o: Self = parse_settings(&http)?;
        o.check()?;
        Ok((o, rest))
    }

    /// Checks every value is finite and within its bounds, naming the field at fault.
    pub fn check(&self) -> Result<(), ConfigError> {
        let t = self.timeout_secs;
        if !t.is_finite() || t <= 0.0 || t > MAX_TIMEOUT_SECS {
            return Err(ConfigError::new(
                "timeout_secs",
                format!("must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECS} (got {t})"),
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(ConfigError::new("max_attempts", format!("must be between 1 and {MAX_ATTEMPTS}")));
        }
        for (field, ms) in [("retry_initial_ms", self.retry_initial_ms), ("retry_max_ms", self.retry_max_ms)] {
            if ms == 0 || ms > MAX_RETRY_DELAY_MS {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "must be between 1 and {MAX_RETRY_DELAY_MS} (one hour): a zero backoff retries in a tight loop"
                    ),
                ));
            }
        }
        if self.max_retry_after_secs > MAX_RETRY_AFTER_SECS {
            return Err(ConfigError::new(
                "max_retry_after_secs",
                format!("must be at most {MAX_RETRY_AFTER_SECS} (one day)"),
            ));
        }
        Ok(())
    }

    /// The request timeout, whatever `timeout_secs` holds (unchecked options are clamped).
    pub fn timeout(&self) -> Duration {
        let t = if self.timeout_secs.is_nan() { default_timeout() } else { self.timeout_secs };
        Duration::try_from_secs_f64(t.clamp(0.001, MAX_TIMEOUT_SECS)).unwrap_or(Duration::from_secs(30))
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial: Duration::from_millis(self.retry_initial_ms),
            max_delay: Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms)),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
        }
    }
}

/// Checks the `headers` setting: each name an HTTP token, each value a valid field value
/// (visible ASCII, spaces and tabs inside; no line breaks or control characters, which a YAML
/// block scalar or a copied key file brings). The error names the header, never its value.
pub fn check_headers(field: &str, headers: &std::collections::BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(ConfigError::new(
                format!("{field}.{}", name.escape_debug()),
                "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            ));
        }
        let bad = value.chars().find(|c| !(*c == ' ' || *c == '\t' || c.is_ascii_graphic()));
        if let Some(c) = bad {
            return Err(ConfigError::new(
                format!("{field}.{name}"),
                format!(
                    "the value holds {} (value not shown): a header value takes visible ASCII, spaces and tabs only",
                    if c == '\n' || c == '\r' {
                        "a line break".to_string()
                    } else {
                        format!("the character U+{:04X}", c as u32)
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a URL setting.
pub fn check_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("`{}` is not an http(s) URL", sluice_core::redact_url(url))))
    }
}

/// Who retries a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// The transport, as its [`RetryPolicy`] says, within the call (Reverse ETL).
    Transport,
    /// The caller, with its own durable backoff (the streaming worker): one attempt per call.
    Caller,
}

/// A stable key for a request body of a mapping (Reverse ETL: `model/destination`; streaming:
/// `stream/destination`): the xxh3-128 of the key and the body, as 32 hex digits. A retry of
/// the same batch sends the same body, so it carries the same key.
pub fn idempotency_key(mapping_key: &str, body: &[u8]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(mapping_key.as_bytes());
    h.update(&[0]);
    h.update(body);
    format!("{:032x}", h.digest128())
}

/// Posts JSON with retries; a 2xx is the only success.
pub struct Transport {
    agent: ureq::Agent,
    policy: RetryPolicy,
}

impl Transport {
    /// A transport for `options`. The timeout bounds the whole request, body reads included.
    pub fn new(options: &HttpOptions) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(options.timeout()).redirects(0).build();
        Self { agent, policy: options.retry_policy() }
    }

    /// The retry policy requests follow.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// POSTs `body` to `url` with `headers`, retrying as the policy says. Only a 2xx is a
    /// success; a 3xx is not followed (see [`DeliveryError::redirected`]).
    pub fn post_json(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(), DeliveryError> {
        self.policy.run(|_| self.post_once(url, headers, body))
    }

    /// POSTs `body` once ([`Retries::Caller`]) or with the policy's retries
    /// ([`Retries::Transport`]).
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        retries: Retries,
    ) -> Result<(), DeliveryError> {
        match retries {
            Retries::Transport => self.post_json(url, headers, body),
            Retries::Caller => self.post_once(url, headers, body),
        }
    }

    /// One attempt, no retries.
    pub fn post_once(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(), DeliveryError> {
        let mut req = self.agent.post(url).set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.send_bytes(body) {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => return Err(transport_error(url, headers, &t)),
        };
        let status = resp.status();
        if (200..300).contains(&status) {
            // read what little there is so the connection can be reused; never more
            let _ = std::io::copy(&mut resp.into_reader().take(MAX_RESPONSE_BYTES), &mut std::io::sink());
            return Ok(());
        }
        if (300..400).contains(&status) {
            return Err(DeliveryError::redirected(status, resp.header("Location")));
        }
        let retry_after = resp.header("Retry-After").and_then(parse_retry_after);
        Err(DeliveryError::from_status(status, &read_excerpt(resp), retry_after))
    }
}

/// A request that did not get an answer (refused, timed out, bad answer): retryable, naming
/// the URL. ureq may quote what the receiver sent (a bad status line): kept short. The URL (and
/// ureq's text, which repeats it) may carry credentials: never kept; nor a header (ureq quotes
/// one it refuses, `Authorization: Bearer …` included).
pub(crate) fn transport_error(url: &str, headers: &[(&str, &str)], t: &ureq::Transport) -> DeliveryError {
    let mut text = format!("{url}: {}", excerpt(&t.to_string(), MAX_MESSAGE_BODY));
    if t.kind() == ureq::ErrorKind::BadHeader {
        text = format!("{url}: a header is not a valid HTTP header (value not shown)");
    }
    for (_, v) in headers.iter().filter(|(_, v)| !v.trim().is_empty()) {
        text = text.replace(v.trim(), sluice_core::SET);
    }
    DeliveryError::external(sluice_core::redact_urls_in(&text))
}

/// The start of a response body as text: at most [`MAX_RESPONSE_BYTES`] read, at most
/// [`MAX_MESSAGE_BODY`] characters kept; a body that fails midway keeps what arrived.
fn read_excerpt(resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(MAX_RESPONSE_BYTES).read_to_end(&mut buf);
    excerpt(&String::from_utf8_lossy(&buf), MAX_MESSAGE_BODY)
}

/// The body of a batch request: `{"batch": [...]}`.
#[derive(serde::Serialize)]
pub struct Batch<'a, T: serde::Serialize> {
    /// The items or events.
    pub batch: &'a [T],
}

/// `{"batch":[...]}` of JSON texts taken as they are (streamed events as stored).
pub fn event_batch<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut body = b"{\"batch\":[".to_vec();
    for (n, t) in texts.into_iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(t.as_bytes());
    }
    body.extend_from_slice(b"]}");
    body
}

/// Encodes a body, or an internal error.
pub fn encode(v: &impl serde::Serialize) -> Result<Vec<u8>, DeliveryError> {
    serde_json::to_vec(v).map_err(|e| DeliveryError {
        class: ErrorClass::Internal,
        retryable: false,
        message: format!("cannot encode batch: {e}"),
        retry_after: None,
    })
}
