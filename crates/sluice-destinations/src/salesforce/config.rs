use crate::ratelimit::VendorRate;
use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Salesforce limits API calls per rolling 24 hours (and Bulk API batches), not per second;
/// Sluice paces at 20 requests per second by default.
pub const RATE: VendorRate = VendorRate::per_second(20);

/// Salesforce's limit of one upload (150 MB); Sluice's default stays at 100 MB, as Salesforce
/// recommends for data that grows when base64-encoded internally.
pub const MAX_UPLOAD_BYTES: usize = 150_000_000;

/// Settings of a `salesforce` destination (plus the shared vendor options: timeouts, retries,
/// `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// The org's instance URL, e.g. `https://mycompany.my.salesforce.com`.
    pub endpoint: String,
    /// REST API version (default `v62.0`).
    #[serde(default = "default_version")]
    pub api_version: String,
    /// An OAuth 2.0 access token for the org (`Authorization: Bearer`).
    pub access_token: Secret,
    /// The sObject's API name, e.g. `Contact` or `Member__c`.
    pub object: String,
    /// The object's external id field that holds the record's unique id, e.g. `Sluice_Id__c`.
    pub external_id_field: String,
    /// Records per job (1–10000): the result CSVs of one job must fit in 4 MiB.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Most bytes of one CSV upload (1 KB–150 MB, default 100 MB); more records go in more jobs.
    #[serde(default = "default_upload")]
    pub max_upload_bytes: usize,
    /// Most status polls of one job (1–1000).
    #[serde(default = "default_polls")]
    pub max_polls: u32,
    /// First wait between polls in milliseconds (doubles, at most 30 s).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_version() -> String {
    "v62.0".into()
}
fn default_batch() -> usize {
    2_000
}
fn default_upload() -> usize {
    100_000_000
}
fn default_polls() -> u32 {
    120
}
fn default_poll_ms() -> u64 {
    1_000
}

/// Whether `s` is a Salesforce API name (a letter, then letters, digits and `_`).
pub fn is_api_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && s.len() <= 80
}

impl SalesforceConfig {
    /// Parses and checks the settings without I/O, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("access_token", &c.access_token)?;
        for (field, v) in [("object", &c.object), ("external_id_field", &c.external_id_field)] {
            if !is_api_name(v) {
                return Err(ConfigError::new(field, format!("`{}` is not a Salesforce API name", v.escape_debug())));
            }
        }
        let v = c.api_version.strip_prefix('v').unwrap_or("");
        if v.len() > 6 || v.parse::<f64>().is_err() {
            return Err(ConfigError::new("api_version", "must be a REST API version such as v62.0"));
        }
        if c.batch_size == 0 || c.batch_size > 10_000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 10000"));
        }
        if c.max_upload_bytes < 1024 || c.max_upload_bytes > MAX_UPLOAD_BYTES {
            return Err(ConfigError::new(
                "max_upload_bytes",
                "must be between 1024 and 150000000 (Salesforce's limit)",
            ));
        }
        if c.max_polls == 0 || c.max_polls > 1000 {
            return Err(ConfigError::new("max_polls", "must be between 1 and 1000"));
        }
        if c.poll_interval_ms == 0 || c.poll_interval_ms > 30_000 {
            return Err(ConfigError::new("poll_interval_ms", "must be between 1 and 30000"));
        }
        c.options = Some(opts);
        Ok(c)
    }
}
