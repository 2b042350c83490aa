use crate::http::{check_url, HttpOptions};
use crate::parse_settings;
use serde::Deserialize;
use sluice_core::ConfigError;
use std::collections::BTreeMap;

/// Settings of a `webhook` destination (plus the transport's [`HttpOptions`]).
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
    /// Timeouts and retries.
    #[serde(skip)]
    pub http: Option<HttpOptions>,
}

fn default_batch() -> usize {
    100
}

impl WebhookConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (http, rest) = HttpOptions::split(s)?;
        let mut c: Self = parse_settings(&rest)?;
        check_url("url", &c.url)?;
        crate::http::check_headers("headers", &c.headers)?;
        if c.batch_size == 0 || c.batch_size > 10_000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 10000"));
        }
        c.http = Some(http);
        Ok(c)
    }
}
