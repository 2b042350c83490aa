use crate::audience::IdentifierFields;
use crate::ratelimit::VendorRate;
use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Meta publishes no fixed rate for audience uploads (its limits are usage-based and
/// signalled by Graph error codes); Sluice paces at 10 requests per second by default.
pub const RATE: VendorRate = VendorRate::per_second(10);

/// Settings of a `meta` destination (plus the shared vendor options: timeouts, retries,
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// Graph API base URL (default `https://graph.facebook.com`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Graph API version (default `v24.0`).
    #[serde(default = "default_version")]
    pub api_version: String,
    /// A system-user access token with `ads_management` on the audience's ad account.
    pub access_token: Secret,
    /// The Custom Audience's id (digits).
    pub audience_id: String,
    /// The mapped field that holds the email address.
    #[serde(default)]
    pub email_field: Option<String>,
    /// The mapped field that holds the phone number.
    #[serde(default)]
    pub phone_field: Option<String>,
    /// Country calling code for phone numbers written without one (e.g. `1`).
    #[serde(default)]
    pub phone_country_code: Option<String>,
    /// Rows per request (1–10000, Meta's limit).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://graph.facebook.com".into()
}

fn default_version() -> String {
    "v24.0".into()
}

fn default_batch() -> usize {
    10_000
}

impl MetaConfig {
    /// Parses and checks the settings without I/O, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("access_token", &c.access_token)?;
        if c.audience_id.is_empty() || !c.audience_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new("audience_id", "must be the Custom Audience's numeric id"));
        }
        if !c.api_version.starts_with('v') || c.api_version.len() > 8 || c.api_version[1..].parse::<f64>().is_err() {
            return Err(ConfigError::new("api_version", "must be a Graph API version such as v24.0"));
        }
        c.identifiers().check(false)?;
        if c.batch_size == 0 || c.batch_size > super::MAX_ROWS {
            return Err(ConfigError::new("batch_size", "must be between 1 and 10000 (Meta's limit per request)"));
        }
        c.options = Some(opts);
        Ok(c)
    }

    /// Where the identifiers are.
    pub fn identifiers(&self) -> IdentifierFields {
        IdentifierFields {
            email_field: self.email_field.clone(),
            phone_field: self.phone_field.clone(),
            phone_country_code: self.phone_country_code.clone(),
        }
    }
}
