//! What the core knows about destination kinds: their capabilities, declared by each kind in
//! the destinations crate and read here through [`Catalog`]. The core never names a kind: adding
//! one is a folder and a registry line in `sluice-destinations`, with no edit here.

use crate::config::{Change, DestinationConfig};
use crate::validate::ConfigError;

/// How a destination kind treats a person's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMode {
    /// Records and events reach it only when consent allows (R1–R4, R6–R8).
    Filters,
    /// Reverse ETL stamps each record's consent on what it sends and does not filter; the
    /// receiver enforces it downstream (R5). Streamed events are still routed by consent.
    Stamps,
}

/// The capabilities of a destination kind.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// The name used in the workspace file (`kind:`).
    pub name: &'static str,
    /// Filters by consent, or stamps it (R5).
    pub consent: ConsentMode,
    /// The record changes Reverse ETL can send it (`deleted` needs a delete call).
    pub changes: &'static [Change],
    /// Whether streamed events can be delivered to it.
    pub events: bool,
    /// Whether it can delete or suppress a person on request (R13).
    pub deletes_person: bool,
    /// Settings that hold a credential as a whole (sealed at rest, `<set>` when read). A setting
    /// that is a map (e.g. `headers`) has each of its values sealed.
    pub secret_settings: &'static [&'static str],
    /// Settings that are URLs: they say where data goes, and carry a credential only in their
    /// user information, path or query (sealed whole, redacted when shown).
    pub url_settings: &'static [&'static str],
    /// Other settings that say where data goes (e.g. a file `path`): changing one drops the
    /// stored credentials unless new ones come with the change.
    pub address_settings: &'static [&'static str],
}

impl KindInfo {
    /// Whether `setting` says where data goes (a URL or an address setting).
    pub fn is_address(&self, setting: &str) -> bool {
        self.url_settings.contains(&setting) || self.address_settings.contains(&setting)
    }

    /// Whether `setting` holds a credential as a whole (or, for a map, in each value).
    pub fn is_secret(&self, setting: &str) -> bool {
        self.secret_settings.contains(&setting)
    }

    /// Whether `setting` is a URL that may carry a credential.
    pub fn is_url(&self, setting: &str) -> bool {
        self.url_settings.contains(&setting)
    }
}

/// The destination kinds a build knows (implemented by `sluice-destinations`' registry).
pub trait Catalog: Sync {
    /// The capabilities of kind `name`, or `None` for an unknown kind.
    fn kind(&self, name: &str) -> Option<&KindInfo>;
    /// Every known kind, in registry order.
    fn kinds(&self) -> Vec<&'static str>;
    /// Checks a destination's settings for its (known) kind, without I/O; the error names the
    /// setting at fault.
    fn check_settings(&self, d: &DestinationConfig) -> Result<(), ConfigError>;
}

/// A catalog for tests of the core: `webhook` and `file` filter, `connections` stamps; no
/// settings are checked.
#[doc(hidden)]
pub struct TestCatalog;

const ALL_CHANGES: &[Change] = &[Change::Added, Change::Updated, Change::Deleted];

const TEST_KINDS: [KindInfo; 3] = [
    KindInfo {
        name: "webhook",
        consent: ConsentMode::Filters,
        changes: ALL_CHANGES,
        events: true,
        deletes_person: false,
        secret_settings: &["headers"],
        url_settings: &["url"],
        address_settings: &[],
    },
    KindInfo {
        name: "file",
        consent: ConsentMode::Filters,
        changes: ALL_CHANGES,
        events: true,
        deletes_person: false,
        secret_settings: &[],
        url_settings: &[],
        address_settings: &["path"],
    },
    KindInfo {
        name: "connections",
        consent: ConsentMode::Stamps,
        changes: &[Change::Added, Change::Updated],
        events: true,
        deletes_person: false,
        secret_settings: &["write_key"],
        url_settings: &["url"],
        address_settings: &[],
    },
];

impl Catalog for TestCatalog {
    fn kind(&self, name: &str) -> Option<&KindInfo> {
        TEST_KINDS.iter().find(|k| k.name == name)
    }
    fn kinds(&self) -> Vec<&'static str> {
        TEST_KINDS.iter().map(|k| k.name).collect()
    }
    fn check_settings(&self, _: &DestinationConfig) -> Result<(), ConfigError> {
        Ok(())
    }
}
