use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Settings of a `hubspot` destination (plus the transport's options and
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// The API base URL (default `https://api.hubapi.com`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// A private app (or OAuth) access token with `crm.objects.contacts.write` (sent as `Bearer`).
    pub access_token: Secret,
    /// The unique contact property the record's unique id is matched on (default `email`).
    #[serde(default = "default_id_property")]
    pub id_property: String,
    /// Records per request (1–100: HubSpot's batch limit).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://api.hubapi.com".into()
}
fn default_id_property() -> String {
    "email".into()
}
fn default_batch() -> usize {
    100
}

impl HubspotConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, super::RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("access_token", &c.access_token)?;
        if c.batch_size == 0 || c.batch_size > 100 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 100 (HubSpot's batch limit)"));
        }
        if c.id_property.is_empty() || !c.id_property.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
            return Err(ConfigError::new("id_property", "must be a HubSpot property name (letters, digits, _)"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
