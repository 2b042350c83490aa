//! The one explicit list of destination kinds ([`KINDS`]). Each kind's folder declares its
//! [`Registration`]: its capabilities ([`KindInfo`]: consent filtered or stamped, supported
//! changes, credentials), how its settings are checked, and how it is built. Adding a kind is a
//! folder and a line here; the core reads capabilities through [`Catalog`] and never names a kind.

use crate::{
    amplitude, braze, connections, customerio, file, google_ads, hubspot, iterable, meta, mixpanel, salesforce,
    webhook, Destination,
};
use sluice_core::{Catalog, ConfigError, DestinationConfig, KindInfo};
use std::path::PathBuf;

/// What a destination needs to know beyond its own settings.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Folder relative paths resolve from (the workspace file's folder).
    pub base_dir: PathBuf,
    /// Stable key of the mapping, part of every idempotency key: `model/destination` for
    /// Reverse ETL, `stream/destination` for streaming (`sluice_stream::delivery::stream_key`).
    pub mapping_key: String,
}

/// How a kind builds a destination ready to deliver.
pub type Builder = fn(&DestinationConfig, &BuildContext) -> Result<Box<dyn Destination>, ConfigError>;

/// A destination kind as its folder declares it.
pub struct Registration {
    /// Its name and capabilities.
    pub info: KindInfo,
    /// Checks its settings without I/O, naming the setting at fault.
    pub check: fn(&serde_json::Map<String, serde_json::Value>) -> Result<(), ConfigError>,
    /// Builds it, ready to deliver.
    pub build: Builder,
}

/// Every destination kind, in the order `sluice` lists them.
pub static KINDS: &[&Registration] = &[
    &webhook::KIND,     // SPEC §7
    &file::KIND,        // SPEC §7
    &connections::KIND, // Segment-compatible
    &braze::KIND,       // SPEC §10
    &hubspot::KIND,     // SPEC §10
    &amplitude::KIND,   // SPEC §10
    &mixpanel::KIND,    // SPEC §10
    &iterable::KIND,    // SPEC §10
    &customerio::KIND,  // SPEC §10
    &salesforce::KIND,  // SPEC §10
    &google_ads::KIND,  // SPEC §10
    &meta::KIND,        // SPEC §10
];

/// The registry as the core sees it.
pub struct Registry;

/// The registry.
pub static REGISTRY: Registry = Registry;

impl Registry {
    fn get(&self, name: &str) -> Option<&'static Registration> {
        KINDS.iter().copied().find(|r| r.info.name == name)
    }
}

impl Catalog for Registry {
    fn kind(&self, name: &str) -> Option<&KindInfo> {
        self.get(name).map(|r| &r.info)
    }

    fn kinds(&self) -> Vec<&'static str> {
        KINDS.iter().map(|r| r.info.name).collect()
    }

    fn check_settings(&self, d: &DestinationConfig) -> Result<(), ConfigError> {
        match self.get(&d.kind) {
            Some(r) => (r.check)(&d.settings),
            None => Err(ConfigError::new("", format!("unknown destination kind `{}`", d.kind.escape_debug()))),
        }
    }
}

/// Builds a destination ready to deliver.
pub fn build(d: &DestinationConfig, ctx: &BuildContext) -> Result<Box<dyn Destination>, ConfigError> {
    match REGISTRY.get(&d.kind) {
        Some(r) => (r.build)(d, ctx),
        None => Err(ConfigError::new("kind", format!("unknown destination kind `{}`", d.kind.escape_debug()))),
    }
}

/// The capabilities of `d`'s kind (`None`: a kind this build does not know).
pub fn info(kind: &str) -> Option<&'static KindInfo> {
    REGISTRY.get(kind).map(|r| &r.info)
}
