use crate::http::{check_url, HttpOptions};
use crate::parse_settings;
use serde::Deserialize;
use sluice_core::ConfigError;

/// The Segment call a record becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// `identify`: the mapped fields become traits.
    #[default]
    Identify,
    /// `track`: the mapped fields become properties of `event_name`.
    Track,
}

/// Settings of a `connections` destination (plus the transport's [`HttpOptions`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Base URL of a Tracking API endpoint; events go to `{url}/v1/batch`.
    pub url: String,
    /// The source's write key, sent by HTTP Basic auth (key as user, empty password).
    pub write_key: String,
    /// `identify` (default) or `track`.
    #[serde(default)]
    pub event: EventType,
    /// Event name of `track` calls.
    #[serde(default)]
    pub event_name: Option<String>,
    /// Events per batch request (1–500; a request also stays under 500 KB).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Timeouts and retries.
    #[serde(skip)]
    pub http: Option<HttpOptions>,
}

fn default_batch() -> usize {
    100
}

impl ConnectionsConfig {
    /// Parses and checks the settings, naming the field at fault.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let (http, rest) = HttpOptions::split(s)?;
        let mut c: Self = parse_settings(&rest)?;
        check_url("url", &c.url)?;
        if c.write_key.is_empty() {
            return Err(ConfigError::new("write_key", "must not be empty"));
        }
        if c.batch_size == 0 || c.batch_size > 500 {
            return Err(ConfigError::new("batch_size", "must be between 1 and 500"));
        }
        if c.event == EventType::Track && c.event_name.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::new("event_name", "a track event needs `event_name`"));
        }
        c.http = Some(http);
        Ok(c)
    }
}
