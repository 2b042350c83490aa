//! The `hubspot` destination: HubSpot CRM v3 contacts (`batch/upsert`, `batch/read` +
//! `batch/archive`). docs/destinations/hubspot.md.

mod config;
mod sink;

pub use config::HubspotConfig;
pub use sink::HubspotSink;

use crate::ratelimit::VendorRate;
use sluice_core::{Change, ConsentMode, KindInfo};
use std::time::Duration;

/// HubSpot's documented rate for Free/Starter private apps: 100 requests per 10 seconds.
pub const RATE: VendorRate = VendorRate { requests: 100, per: Duration::from_secs(10) };

/// The `hubspot` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "hubspot",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["access_token"],
        url_settings: &["endpoint"],
        address_settings: &[],
    },
    check: |s| HubspotConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(HubspotSink::new(HubspotConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
