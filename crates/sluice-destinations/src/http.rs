//! The HTTP transport shared by HTTP destinations: one agent, one retry policy, one
//! classification of answers.

use crate::error::parse_retry_after;
use crate::{parse_settings, DeliveryError, ErrorClass, RetryPolicy};
use serde::Deserialize;
use sluice_core::ConfigError;
use std::time::Duration;

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

const KEYS: [&str; 5] = ["timeout_secs", "max_attempts", "retry_initial_ms", "retry_max_ms", "max_retry_after_secs"];

type Settings = serde_json::Map<String, serde_json::Value>;

impl HttpOptions {
    /// Splits `settings` into the transport's options and the rest (the kind's own settings).
    pub fn split(settings: &Settings) -> Result<(Self, Settings), ConfigError> {
        let (http, rest): (Settings, Settings) =
            settings.clone().into_iter().partition(|(k, _)| KEYS.contains(&k.as_str()));
        let o: Self = parse_settings(&http)?;
        if o.timeout_secs.is_nan() || o.timeout_secs <= 0.0 {
            return Err(ConfigError::new("timeout_secs", "must be positive"));
        }
        if o.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        Ok((o, rest))
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

/// Checks a URL setting.
pub fn check_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("`{url}` is not an http(s) URL")))
    }
}

/// Posts JSON with retries; a 2xx is the only success.
pub struct Transport {
    agent: ureq::Agent,
    policy: RetryPolicy,
}

impl Transport {
    /// A transport for `options`.
    pub fn new(options: &HttpOptions) -> Self {
        let agent =
            ureq::AgentBuilder::new().timeout(Duration::from_secs_f64(options.timeout_secs)).redirects(0).build();
        Self { agent, policy: options.retry_policy() }
    }

    /// POSTs `body` to `url` with `headers`, retrying as the policy says.
    pub fn post_json(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(), DeliveryError> {
        self.policy.run(|_| {
            let mut req = self.agent.post(url).set("Content-Type", "application/json");
            for (k, v) in headers {
                req = req.set(k, v);
            }
            match req.send_bytes(body) {
                Ok(_) => Ok(()),
                Err(ureq::Error::Status(status, resp)) => {
                    let ra = resp.header("Retry-After").and_then(parse_retry_after);
                    let text = resp.into_string().unwrap_or_default();
                    Err(DeliveryError::from_status(status, &text, ra))
                }
                Err(ureq::Error::Transport(t)) => Err(DeliveryError::external(format!("{url}: {t}"))),
            }
        })
    }
}

/// The body of a batch request: `{"batch": [...]}`.
#[derive(serde::Serialize)]
pub struct Batch<'a, T: serde::Serialize> {
    /// The items or events.
    pub batch: &'a [T],
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
