use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Settings of an `iterable` destination (plus the transport's options and
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IterableConfig {
    /// The API host (default `https://api.iterable.com`; EU `https://api.eu.iterable.com`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// A server-side API key (sent as the `Api-Key` header).
    pub api_key: Secret,
    /// A mapped field holding Iterable's `userId` (default: the record's unique id).
    #[serde(default)]
    pub user_id_field: Option<String>,
    /// Records per request (1–1000).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://api.iterable.com".into()
}
fn default_batch() -> usize {
    1000
}

impl IterableConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, super::RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("api_key", &c.api_key)?;
        if c.batch_size == 0 || c.batch_size > 1000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 1000"));
        }
        if c.user_id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(ConfigError::new("user_id_field", "must name a mapped field"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
