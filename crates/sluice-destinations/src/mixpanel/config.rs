use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Settings of a `mixpanel` destination (plus the transport's options and
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixpanelConfig {
    /// The API host (default `https://api.mixpanel.com`; EU `https://api-eu.mixpanel.com`, India `https://api-in.mixpanel.com`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The project token (in each `/engage` update, and the `/import` Basic user without a service account).
    pub project_token: Secret,
    /// A service account as `username:secret` for `/import` (Basic auth); needs `project_id`.
    #[serde(default)]
    pub service_account: Option<Secret>,
    /// The project id (`/import?project_id=`), required with a service account.
    #[serde(default)]
    pub project_id: Option<String>,
    /// A mapped field holding the `$distinct_id` (default: the record's unique id).
    #[serde(default)]
    pub user_id_field: Option<String>,
    /// Records per request (1–2000: Mixpanel's limit per request).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://api.mixpanel.com".into()
}
fn default_batch() -> usize {
    2000
}

impl MixpanelConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, super::RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("project_token", &c.project_token)?;
        if let Some(sa) = &c.service_account {
            check_secret("service_account", sa)?;
            if !sa.expose().contains(':') {
                return Err(ConfigError::new("service_account", "must be `username:secret` (value not shown)"));
            }
            if c.project_id.as_deref().is_none_or(|p| p.trim().is_empty()) {
                return Err(ConfigError::new("project_id", "is required with a service account"));
            }
        }
        if c.project_id.as_deref().is_some_and(|p| !p.chars().all(|ch| ch.is_ascii_digit())) {
            return Err(ConfigError::new("project_id", "must be the numeric project id"));
        }
        if c.batch_size == 0 || c.batch_size > 2000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 2000 (Mixpanel's limit per request)"));
        }
        if c.user_id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(ConfigError::new("user_id_field", "must name a mapped field"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
