//! The `iterable` destination: Iterable's Users API (`bulkUpdate`, `DELETE byUserId`) and
//! Events API (`trackBulk`). docs/destinations/iterable.md.

mod config;
mod sink;

pub use config::IterableConfig;
pub use sink::IterableSink;

use crate::ratelimit::VendorRate;
use sluice_core::{Change, ConsentMode, KindInfo};

/// Iterable's rate for `users/bulkUpdate` and `events/trackBulk`: 5 requests per second.
pub const RATE: VendorRate = VendorRate::per_second(5);

/// The `iterable` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "iterable",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["api_key"],
        url_settings: &["endpoint"],
        address_settings: &[],
    },
    check: |s| IterableConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(IterableSink::new(IterableConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
