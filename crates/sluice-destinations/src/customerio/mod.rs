//! The `customerio` destination: Customer.io's Track API v2 (`POST {endpoint}/api/v2/batch`,
//! HTTP Basic `site_id:api_key`). Records become `identify` actions (mapped fields as
//! attributes), `deleted` records `delete` actions; streamed `identify`, `track`, `page` and
//! `screen` become `identify`, `event`, `page` and `screen` actions. A 207 answer lists the
//! items Customer.io refused by `batch_index`; each is reported with its reason, the others
//! were taken. Limits: 500 KB per request, 32 KB per item (docs/destinations/customerio.md).

mod config;
mod sink;

pub use config::{CustomerIoConfig, IdKind};
pub use sink::{CustomerIoSink, MAX_ITEM_BYTES, MAX_REQUEST_BYTES};

use sluice_core::{Change, ConsentMode, KindInfo};

/// The `customerio` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "customerio",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["api_key"],
        url_settings: &["endpoint"],
        address_settings: &["site_id"],
    },
    check: |s| CustomerIoConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(CustomerIoSink::new(CustomerIoConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
