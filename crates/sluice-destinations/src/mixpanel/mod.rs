//! The `mixpanel` destination: Mixpanel's Engage API (`/engage` `$set`, `$delete`) and Import
//! API (`/import?strict=1`). docs/destinations/mixpanel.md.

mod config;
mod sink;

pub use config::MixpanelConfig;
pub use sink::MixpanelSink;

use crate::ratelimit::VendorRate;
use sluice_core::{Change, ConsentMode, KindInfo};

/// Mixpanel documents volume limits (2 GB per minute, about 30k events/s), not a request
/// rate: Sluice keeps to 50 requests per second per destination unless lowered.
pub const RATE: VendorRate = VendorRate::per_second(50);

/// The `mixpanel` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "mixpanel",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["project_token", "service_account"],
        url_settings: &["endpoint"],
        address_settings: &[],
    },
    check: |s| MixpanelConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(MixpanelSink::new(MixpanelConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
