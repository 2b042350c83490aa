use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Settings of an `amplitude` destination (plus the transport's options and
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmplitudeConfig {
    /// The ingestion host (default `https://api2.amplitude.com`; EU: `https://api.eu.amplitude.com`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The host of the User Privacy API (default `https://amplitude.com`; EU: `https://analytics.eu.amplitude.com`).
    #[serde(default = "default_deletion")]
    pub deletion_endpoint: String,
    /// The project's API key (sent in the body, as Amplitude's ingestion APIs take it).
    pub api_key: Secret,
    /// The project's secret key (Basic auth of the deletion API, with the API key).
    pub secret_key: Secret,
    /// A mapped field holding Amplitude's `user_id` (default: the record's unique id).
    #[serde(default)]
    pub user_id_field: Option<String>,
    /// Records per request (1–2000: Amplitude's limit per request).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://api2.amplitude.com".into()
}
fn default_deletion() -> String {
    "https://amplitude.com".into()
}
fn default_batch() -> usize {
    1000
}

impl AmplitudeConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, super::RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        c.deletion_endpoint = check_endpoint("deletion_endpoint", &c.deletion_endpoint)?;
        check_secret("api_key", &c.api_key)?;
        check_secret("secret_key", &c.secret_key)?;
        if c.batch_size == 0 || c.batch_size > 2000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 2000 (Amplitude's limit per request)"));
        }
        if c.user_id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(ConfigError::new("user_id_field", "must name a mapped field"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
