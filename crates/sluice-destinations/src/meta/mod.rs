//! The `meta` destination: Meta Custom Audiences (Graph API `POST /{audience_id}/users` to
//! add, `DELETE /{audience_id}/users` to remove) with SHA-256 of Meta's normalised email and
//! phone, and the record's unique id as `EXTERN_ID` (so a deleted record, whose fields are
//! gone, can still be removed). At most 10,000 rows per request. Meta answers with counts
//! only: rows it names in `invalid_entry_samples` are reported with its reason, and when it
//! counts invalid rows it does not name, the request is split in halves and sent again (adding
//! and removing are idempotent) until each invalid row is found. Streaming: Custom Audiences
//! have no events; the kind takes no streamed events (docs/destinations/meta.md).

mod config;
mod sink;

pub use config::MetaConfig;
pub use sink::{MetaSink, MAX_ROWS};

use sluice_core::{Change, ConsentMode, KindInfo};

/// The `meta` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "meta",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: false,
        deletes_person: false,
        secret_settings: &["access_token"],
        url_settings: &["endpoint"],
        address_settings: &["audience_id"],
    },
    check: |s| MetaConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(MetaSink::new(MetaConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
