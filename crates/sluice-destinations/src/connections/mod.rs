//! The `connections` destination (R5): each record becomes a Segment-spec event, stamped with
//! the record's consent, sent to any endpoint that speaks Segment's HTTP Tracking API
//! (`POST {url}/v1/batch`, write key by HTTP Basic auth). Not filtered in Reverse ETL: the
//! event router downstream enforces consent per destination. Streamed events are forwarded as
//! stored, their `messageId` namespaced by source ([`namespaced`]), within the Tracking API's
//! limits (32 KB per event, 500 KB per request).

mod config;
mod forward;
mod sink;

pub use config::{ConnectionsConfig, EventType};
pub use forward::namespaced;
pub use sink::{ConnectionsSink, MAX_BATCH_BYTES, MAX_EVENT_BYTES};

use sluice_core::{Change, ConsentMode, KindInfo};

/// The `connections` kind in the registry: it stamps consent (R5), and the Tracking API has no
/// delete call.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "connections",
        consent: ConsentMode::Stamps,
        changes: &[Change::Added, Change::Updated],
        events: true,
        deletes_person: false,
        secret_settings: &["write_key"],
        url_settings: &["url"],
        address_settings: &[],
    },
    check: |s| ConnectionsConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(ConnectionsSink::new(ConnectionsConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
