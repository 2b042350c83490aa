//! The workspace file (README, "Workspace file"): typed, with unknown fields rejected.

use crate::source::SourceConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole workspace file as written by the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFile {
    /// Workspace-wide settings (consent policy and retry limits).
    #[serde(default)]
    pub workspace: WorkspaceSettings,
    /// Warehouse and event sources.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Destinations records and events are delivered to.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// Consent categories and the destinations each governs.
    #[serde(default)]
    pub consent_categories: Vec<CategoryConfig>,
    /// Reverse ETL models.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Alerts on sync runs and deliveries (SPEC §12), sent to a Slack-compatible webhook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<crate::alerts::AlertConfig>,
}

/// How a destination mapped to several categories is decided (R2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The user must consent to every category of the destination.
    #[default]
    All,
    /// Consent to at least one category of the destination is enough.
    Any,
}

/// What happens to a model that maps no consent column while categories exist (R4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmappedModels {
    /// No enforcement (warned on every sync).
    #[default]
    Allow,
    /// Fail closed: every category counts as false.
    Block,
}

/// How streaming events without a consent object are routed (R7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingConsent {
    /// Not restricted by consent.
    #[default]
    Allow,
    /// Routed by the consent stored on the sender's profile.
    Profile,
    /// Treated like an empty preferences object.
    Block,
}

/// Workspace settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// `all` (default) or `any`: see R2.
    #[serde(default)]
    pub policy: Policy,
    /// `allow` (default) or `block`: see R4.
    #[serde(default)]
    pub unmapped_models: UnmappedModels,
    /// `allow` (default), `profile` or `block`: see R7.
    #[serde(default)]
    pub missing_consent: MissingConsent,
    /// A record that failed retryably is retried on at most this many later syncs.
    #[serde(default = "default_retry_syncs")]
    pub retry_max_syncs: u32,
    /// ... and for at most this many days after its first failure.
    #[serde(default = "default_retry_days")]
    pub retry_max_days: u32,
    /// A sync that would delete more than this fraction of the records a destination holds (and
    /// at least 10) sends no deletes and reports them held back: a model that suddenly returns
    /// few rows must not wipe destinations. `1.0` turns the guard off.
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
    /// The webhook alerts notify when they name none (a Slack incoming webhook URL): a
    /// credential, sealed at rest and never shown. Owners only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook: Option<crate::Secret>,
}

fn default_max_delete_fraction() -> f64 {
    0.5
}

fn default_retry_syncs() -> u32 {
    5
}
fn default_retry_days() -> u32 {
    14
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        Self {
            policy: Policy::All,
            unmapped_models: UnmappedModels::Allow,
            missing_consent: MissingConsent::Allow,
            retry_max_syncs: default_retry_syncs(),
            retry_max_days: default_retry_days(),
            max_delete_fraction: default_max_delete_fraction(),
            alert_webhook: None,
        }
    }
}

/// A destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Unique id of the destination.
    pub id: String,
    /// Display name; the integrations object matches it exactly. Defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The destination kind (`webhook`, `file`, `connections`, ...): one of the kinds the
    /// destinations registry lists, checked by validation.
    pub kind: String,
    /// A disabled destination never syncs and its checkpoints do not move (R12).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Settings of the destination kind (validated by the destination's own config type).
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// `all` or `any`: how this destination's required categories combine (R2), overriding the
    /// workspace `policy` for it (SPEC §12). Absent: the workspace's. Owners only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_policy: Option<Policy>,
    /// Streaming (R13): `keep` (default) or `delete`. With `delete`, a consent event that turns
    /// a category of this destination false sends it the delete call for the profile's
    /// identifiers. Needs a kind that can delete. Owners only.
    #[serde(default, skip_serializing_if = "OnWithdrawal::is_keep")]
    pub on_withdrawal: OnWithdrawal,
}

/// What a destination is asked to do with a person's data when consent to one of its
/// categories is withdrawn (R13, SPEC §12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnWithdrawal {
    /// The destination keeps what it received; nothing more is sent (Segment's behaviour).
    #[default]
    Keep,
    /// The destination gets its delete call (`deleted` with reason `consent_withdrawn`).
    Delete,
}

impl OnWithdrawal {
    /// Whether this is the default, `keep`.
    pub fn is_keep(&self) -> bool {
        *self == Self::Keep
    }

    /// Name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Delete => "delete",
        }
    }
}

impl DestinationConfig {
    /// The name the integrations object uses.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

fn yes() -> bool {
    true
}

/// A consent category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    /// The CMP's key for the category (e.g. OneTrust `C0004`); case-sensitive.
    pub id: String,
    /// Human name, 1–20 characters, unique.
    pub name: String,
    /// Ids of the destinations this category governs.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// A disabled category is not enforced.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// Record changes a mapping can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Never delivered before.
    Added,
    /// Delivered before, and the row changed.
    Updated,
    /// Delivered before, and gone from the model.
    Deleted,
}

impl Change {
    /// Name as written in files and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }
}

fn all_changes() -> Vec<Change> {
    vec![Change::Added, Change::Updated, Change::Deleted]
}

/// A model: SQL on a warehouse source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Unique id of the model.
    pub id: String,
    /// Id of the warehouse source the SQL runs on.
    pub source: String,
    /// The query, run as a subquery.
    pub sql: String,
    /// Column holding a unique, non-null id per record.
    pub unique_id: String,
    /// Category id -> column of the model holding that consent.
    #[serde(default)]
    pub consent: BTreeMap<String, String>,
    /// Where the model's records go.
    #[serde(default)]
    pub mappings: Vec<MappingConfig>,
    /// When `sluice serve` syncs it: `manual` (default), `every 15m`, or a cron expression (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// A mapping (subscription) of a model to a destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Destination id.
    pub destination: String,
    /// Which changes are sent (default: all three).
    #[serde(default = "all_changes")]
    pub on: Vec<Change>,
    /// Destination field -> model column. Empty: every column is sent.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// `keep` (default) or `delete` (R13): with `delete`, a record the destination holds whose
    /// consent is withdrawn gets the destination's delete call (reason `consent_withdrawn`) and
    /// is then recorded as not held. Needs a kind that can delete. Owners only.
    #[serde(default, skip_serializing_if = "OnWithdrawal::is_keep")]
    pub on_withdrawal: OnWithdrawal,
}

impl WorkspaceFile {
    /// Parses YAML text (after `${VAR}` substitution).
    pub fn from_yaml(text: &str) -> Result<Self, crate::ConfigErrors> {
        serde_yaml_ng::from_str(text).map_err(|e| {
            let at = e.location().map(|l| format!("line {}, column {}", l.line(), l.column()));
            crate::ConfigErrors(vec![crate::ConfigError::new(at.unwrap_or_else(|| "file".into()), e.to_string())])
        })
    }
}
