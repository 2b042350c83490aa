use crate::ratelimit::VendorRate;
use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Customer.io's fair-use rate of the Track API: about 100 requests per second per workspace.
pub const RATE: VendorRate = VendorRate::per_second(100);

/// Which Customer.io identifier a record fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    /// `identifiers.id` (default).
    #[default]
    Id,
    /// `identifiers.email`.
    Email,
}

impl IdKind {
    /// The key in `identifiers`.
    pub fn key(self) -> &'static str {
        match self {
            IdKind::Id => "id",
            IdKind::Email => "email",
        }
    }
}

/// Settings of a `customerio` destination (plus the shared vendor options: timeouts, retries,
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerIoConfig {
    /// Base URL of the Track API: `https://track.customer.io` (default) or
    /// `https://track-eu.customer.io` for EU workspaces.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The workspace's Track API site id (the HTTP Basic user).
    pub site_id: String,
    /// The workspace's Track API key (the HTTP Basic password).
    pub api_key: Secret,
    /// Which identifier a record fills: `id` (default) or `email`.
    #[serde(default)]
    pub identifier: IdKind,
    /// A mapped field whose value identifies the person instead of the record's unique id.
    /// Deletes then cannot be sent (a deleted row's fields are gone) and are reported so.
    #[serde(default)]
    pub id_field: Option<String>,
    /// Records per request (1–1000); a request also stays under 500 KB.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://track.customer.io".into()
}

fn default_batch() -> usize {
    100
}

impl CustomerIoConfig {
    /// Parses and checks the settings without I/O, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        if c.site_id.trim().is_empty() || c.site_id.contains(':') || c.site_id.chars().any(|ch| !ch.is_ascii_graphic())
        {
            return Err(ConfigError::new("site_id", "must be the Track API site id (visible characters, no `:`)"));
        }
        check_secret("api_key", &c.api_key)?;
        if c.id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(ConfigError::new("id_field", "must name a mapped field, not be empty"));
        }
        if c.batch_size == 0 || c.batch_size > 1000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 1000"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
