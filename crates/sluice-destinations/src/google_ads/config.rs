use crate::audience::IdentifierFields;
use crate::ratelimit::VendorRate;
use crate::vendor::{check_endpoint, check_secret, parse_kind, VendorOptions};
use serde::Deserialize;
use sluice_core::{ConfigError, Secret};

/// Google documents daily operation quotas for Customer Match, not a per-second rate; Sluice
/// paces at 10 requests per second by default (Google's throttling answer is honoured too).
pub const RATE: VendorRate = VendorRate::per_second(10);

/// Google's limit of operations per `addOperations` request it recommends (10,000; the hard
/// limit is 100,000 identifiers).
pub const MAX_OPERATIONS: usize = 10_000;

/// How records are matched to Google accounts (the user list's upload key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    /// Hashed email and/or phone from the mapped fields (`email_field`, `phone_field`).
    /// Deleted records cannot be removed (their fields are gone) and are reported so.
    #[default]
    ContactInfo,
    /// The record's unique id as `thirdPartyUserId` (lists of upload key type `CRM_ID`).
    CrmId,
}

/// A consent value of the Customer Match job (`GRANTED` or `DENIED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConsentStatus {
    /// The people on the list consented.
    #[default]
    Granted,
    /// They did not (Google then refuses the job's additions).
    Denied,
}

impl ConsentStatus {
    /// Google's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Granted => "GRANTED",
            ConsentStatus::Denied => "DENIED",
        }
    }
}

/// Settings of a `google_ads` destination (plus the shared vendor options: timeouts,
/// retries, `max_requests_per_second`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleAdsConfig {
    /// Google Ads API base URL (default `https://googleads.googleapis.com`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// API version (default `v22`).
    #[serde(default = "default_version")]
    pub api_version: String,
    /// The developer token (header `developer-token`).
    pub developer_token: Secret,
    /// An OAuth 2.0 access token with the `adwords` scope (header `Authorization: Bearer`).
    pub access_token: Secret,
    /// The customer (account) id, 10 digits (dashes allowed).
    pub customer_id: String,
    /// The Customer Match user list id (digits).
    pub user_list_id: String,
    /// The manager account id when calling through one (header `login-customer-id`).
    #[serde(default)]
    pub login_customer_id: Option<String>,
    /// `contact_info` (default: hashed email/phone) or `crm_id` (the record's id).
    #[serde(default)]
    pub match_key: MatchKey,
    /// The mapped field that holds the email address (`contact_info`).
    #[serde(default)]
    pub email_field: Option<String>,
    /// The mapped field that holds the phone number (`contact_info`).
    #[serde(default)]
    pub phone_field: Option<String>,
    /// Country calling code for phone numbers written without one (e.g. `1`).
    #[serde(default)]
    pub phone_country_code: Option<String>,
    /// The job's `consent.adUserData` (default `GRANTED`: the records reaching this destination
    /// passed its consent categories).
    #[serde(default)]
    pub ad_user_data: ConsentStatus,
    /// The job's `consent.adPersonalization` (default `GRANTED`).
    #[serde(default)]
    pub ad_personalization: ConsentStatus,
    /// Records per job (1–100000); each `addOperations` request takes at most 10,000.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Most status polls of a job after `run` (1–100).
    #[serde(default = "default_polls")]
    pub max_polls: u32,
    /// First wait between polls in milliseconds (doubles, at most 60 s).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Timeouts, retries and the request rate.
    #[serde(skip)]
    pub options: Option<VendorOptions>,
}

fn default_endpoint() -> String {
    "https://googleads.googleapis.com".into()
}
fn default_version() -> String {
    "v22".into()
}
fn default_batch() -> usize {
    10_000
}
fn default_polls() -> u32 {
    10
}
fn default_poll_ms() -> u64 {
    2_000
}

/// A customer id as Google's paths take it: digits only.
fn customer(field: &str, v: &str) -> Result<String, ConfigError> {
    let d: String = v.chars().filter(|c| *c != '-').collect();
    if d.len() != 10 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::new(
            field,
            format!("`{}` is not a 10-digit customer id (e.g. 123-456-7890)", v.escape_debug()),
        ));
    }
    Ok(d)
}

impl GoogleAdsConfig {
    /// Parses and checks the settings without I/O, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (mut c, opts): (Self, _) = parse_kind(s, RATE)?;
        c.endpoint = check_endpoint("endpoint", &c.endpoint)?;
        check_secret("developer_token", &c.developer_token)?;
        check_secret("access_token", &c.access_token)?;
        c.customer_id = customer("customer_id", &c.customer_id)?;
        if let Some(l) = &c.login_customer_id {
            c.login_customer_id = Some(customer("login_customer_id", l)?);
        }
        if c.user_list_id.is_empty() || !c.user_list_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new("user_list_id", "must be the Customer Match user list's numeric id"));
        }
        if !c.api_version.starts_with('v') || c.api_version.len() > 5 || c.api_version[1..].parse::<u32>().is_err() {
            return Err(ConfigError::new("api_version", "must be a Google Ads API version such as v22"));
        }
        match c.match_key {
            MatchKey::ContactInfo => c.identifiers().check(false)?,
            MatchKey::CrmId => {
                if c.email_field.is_some() || c.phone_field.is_some() {
                    return Err(ConfigError::new(
                        if c.email_field.is_some() { "email_field" } else { "phone_field" },
                        "a crm_id list matches by the record's id only: remove it, or set match_key: contact_info",
                    ));
                }
            }
        }
        if c.batch_size == 0 || c.batch_size > 100_000 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 100000"));
        }
        if c.max_polls == 0 || c.max_polls > 100 {
            return Err(ConfigError::new("max_polls", "must be between 1 and 100"));
        }
        if c.poll_interval_ms == 0 || c.poll_interval_ms > 60_000 {
            return Err(ConfigError::new("poll_interval_ms", "must be between 1 and 60000"));
        }
        c.options = Some(opts);
        Ok(c)
    }

    /// Where the identifiers are (`contact_info`).
    pub fn identifiers(&self) -> IdentifierFields {
        IdentifierFields {
            email_field: self.email_field.clone(),
            phone_field: self.phone_field.clone(),
            phone_country_code: self.phone_country_code.clone(),
        }
    }
}
