//! The `connections` destination (R5): each record becomes a Segment-spec event, stamped with
//! the record's consent, sent to any endpoint that speaks Segment's HTTP Tracking API
//! (`POST {url}/v1/batch`, write key by HTTP Basic auth). Not filtered in Reverse ETL: the
//! event router downstream enforces consent per destination.

mod config;
mod sink;

pub use config::{ConnectionsConfig, EventType};
pub use sink::ConnectionsSink;

#[cfg(test)]
mod tests;
