//! The `braze` destination: Braze's REST API (`/users/track`, `/users/delete`).
//! docs/destinations/braze.md.

mod config;
mod sink;

pub use config::BrazeConfig;
pub use sink::BrazeSink;

use crate::ratelimit::VendorRate;
use sluice_core::{Change, ConsentMode, KindInfo};
use std::time::Duration;

/// Braze's documented rate for `/users/track`: 3,000 requests per 3 seconds.
pub const RATE: VendorRate = VendorRate { requests: 3000, per: Duration::from_secs(3) };

/// The `braze` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "braze",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["api_key"],
        url_settings: &["endpoint"],
        address_settings: &[],
    },
    check: |s| BrazeConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(BrazeSink::new(BrazeConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
