use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Settings of a `braze` destination (plus the transport's options and
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrazeConfig {
    /// The REST endpoint of the Braze instance, e.g. `https://rest.iad-01.braze.com`.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// A REST API key with `users.track` and `users.delete` permissions (sent as `Bearer`).
    pub api_key: Secret,
    /// A mapped field holding the Braze `external_id` (default: the record's unique id).
    #[serde(default)]
    pub user_id_field: Option<String>,
    /// Records per request (1–75: Braze takes at most 75 attributes objects per request).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://rest.iad-01.braze.com".into()
}
fn default_batch() -> usize {
    75
}

impl BrazeConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, super::RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("api_key", &c.api_key)?;
        if c.batch_size == 0 || c.batch_size > 75 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 75 (Braze's limit per request)"));
        }
        if c.user_id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(ConfigError::new("user_id_field", "must name a mapped field"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
