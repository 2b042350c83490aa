use crate::{parse_settings, RetryPolicy};
use serde::Deserialize;
use sluice_core::ConfigError;
use std::collections::BTreeMap;
use std::time::Duration;

/// Settings of a `webhook` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where batches are POSTed (`http://` or `https://`).
    pub url: String,
    /// Items per request (1–10000).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Headers sent with every request, e.g. an `Authorization` secret.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
    /// Longest `Retry-After` honoured within a sync, in seconds.
    #[serde(default = "default_retry_after")]
    pub max_retry_after_secs: u64,
}

fn default_batch() -> usize {
    100
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

impl WebhookConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let c: Self = parse_settings(s)?;
        if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
            return Err(ConfigError::new("url", format!("`{}` is not an http(s) URL", c.url)));
        }
        if c.batch_size == 0 || c.batch_size > 10_000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 10000"));
        }
        if c.timeout_secs.is_nan() || c.timeout_secs <= 0.0 {
            return Err(ConfigError::new("timeout_secs", "must be positive"));
        }
        if c.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        Ok(c)
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
