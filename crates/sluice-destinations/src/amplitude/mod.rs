//! The `amplitude` destination: Amplitude's Identify API (`/identify`), HTTP V2 API
//! (`/2/httpapi`) and User Privacy API (`/api/2/deletions/users`).
//! docs/destinations/amplitude.md.

mod config;
mod sink;

pub use config::AmplitudeConfig;
pub use sink::AmplitudeSink;

use crate::ratelimit::VendorRate;
use sluice_core::{Change, ConsentMode, KindInfo};

/// Amplitude documents per-user/device limits (30 events/s), not a request rate: Sluice keeps
/// to 100 requests per second per destination unless lowered.
pub const RATE: VendorRate = VendorRate::per_second(100);

/// The `amplitude` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "amplitude",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["api_key", "secret_key"],
        url_settings: &["endpoint", "deletion_endpoint"],
        address_settings: &[],
    },
    check: |s| AmplitudeConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(AmplitudeSink::new(AmplitudeConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
