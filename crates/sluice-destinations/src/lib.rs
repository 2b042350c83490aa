//! Destinations: where Reverse ETL records and streamed events go.
//!
//! Each destination kind lives in its own folder (`config.rs` for its typed settings, `sink.rs`
//! for delivery) and is registered in the one explicit list of [`registry`]. One [`Destination`]
//! contract serves both paths: [`Destination::deliver`] (Reverse ETL records) and
//! [`Destination::deliver_events`] (streamed events), with the same 4xx isolation, the same
//! idempotency keys ([`http::idempotency_key`]) and one owner of retries per path.

pub mod amplitude;
pub mod audience;
pub mod braze;
pub mod connections;
pub mod customerio;
pub mod error;
pub mod file;
pub mod google_ads;
pub mod http;
pub mod hubspot;
pub mod iterable;
pub mod meta;
pub mod mixpanel;
pub mod partial;
pub mod ratelimit;
pub mod registry;
pub mod saas;
pub mod salesforce;
pub mod throttle;
pub mod vendor;
pub mod webhook;

pub use error::{DeliveryError, ErrorClass, RetryPolicy};
pub use registry::{build, BuildContext, Registration, KINDS, REGISTRY};

use serde::Serialize;
use sluice_core::Change;

/// One record change as sent to a destination (SPEC §7 ITEM).
#[derive(Debug, Clone)]
pub struct Item {
    /// `added`, `updated` or `deleted`.
    pub action: Change,
    /// The record's unique id as a string.
    pub id: String,
    /// The mapped fields as JSON object text, encoded once by the engine (`{}` for `deleted`).
    pub data: Box<str>,
    /// The record's consent per mapped category; only destinations that stamp consent use it (R5).
    pub consent: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why a `deleted` item is sent when it is not because the row left the model: consent
    /// withdrawn (R13) or a privacy request. `None` for ordinary changes.
    pub reason: Option<DeleteReason>,
}

/// Why Sluice asks a destination to delete a person's data (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// The person's consent to a category the destination requires was withdrawn (R13).
    ConsentWithdrawn,
    /// A privacy request (`SUPPRESS_WITH_DELETE`, `DELETE_ONLY`).
    PrivacyRequest,
}

impl DeleteReason {
    /// The reason as it appears on the wire (`consent_withdrawn`, `privacy_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::ConsentWithdrawn => "consent_withdrawn",
            DeleteReason::PrivacyRequest => "privacy_request",
        }
    }
}

/// Encodes a JSON value as the `data` of an item.
pub fn raw(v: &serde_json::Value) -> Box<str> {
    v.to_string().into_boxed_str()
}

impl Item {
    /// Appends the item's JSON (`{"action", "id", "data"}`, and `"reason"` when set) to `out` without re-encoding `data`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"action\":\"");
        out.extend_from_slice(self.action.as_str().as_bytes());
        out.extend_from_slice(b"\",\"id\":");
        serde_json::to_writer(&mut *out, &self.id).expect("in-memory writes do not fail");
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.as_bytes());
        if let Some(r) = self.reason {
            out.extend_from_slice(b",\"reason\":\"");
            out.extend_from_slice(r.as_str().as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// `data` as a JSON value.
    pub fn data_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_default()
    }
}

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Item", 3 + usize::from(self.reason.is_some()))?;
        st.serialize_field("action", &self.action)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("data", &self.data_value())?;
        if let Some(r) = self.reason {
            st.serialize_field("reason", &r)?;
        }
        st.end()
    }
}

/// One streamed event due for delivery, as the event log holds it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its place in the log.
    pub seq: i64,
    /// The source it came from.
    pub source: String,
    /// Its JSON text as stored (normalized at ingest, at most 32 KB).
    pub body: String,
}

/// The outcome of one item or event.
pub type Outcome = Result<(), DeliveryError>;

/// A destination that takes batches of Reverse ETL items and, when its kind says so
/// ([`sluice_core::KindInfo::events`]), batches of streamed events.
///
/// Who retries: [`Destination::deliver`] retries retryable failures itself, as the destination's
/// [`RetryPolicy`] says (a Reverse ETL sync has no durable queue to come back to within the
/// sync). [`Destination::deliver_events`] makes **one attempt per request** and hands retryable
/// failures back: its caller (the streaming worker) retries durably with its own backoff,
/// honouring `Retry-After` up to [`Destination::retry_policy`]'s `max_retry_after`. A failing
/// batch is so never retried attempts × worker-retries times.
pub trait Destination: Send {
    /// How many items a batch should hold.
    fn batch_size(&self) -> usize;
    /// Delivers a batch, retrying retryable failures as [`RetryPolicy`] says, and returns one
    /// outcome per item, in order. Never reports success for an item the receiver did not take.
    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome>;
    /// How many streamed events a batch should hold (the same `batch_size` setting).
    fn event_batch_size(&self) -> usize {
        self.batch_size()
    }
    /// Delivers streamed events, one attempt per request (the caller retries), and returns one
    /// outcome per event, in order. A batch the receiver rejects (4xx) is split to find the
    /// events it refuses, as [`Destination::deliver`] does; after the first retryable failure
    /// nothing more is sent and every later event carries that failure, so the caller's cursor
    /// can stop before it. Only a 2xx (or a synced write) is success.
    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let e = DeliveryError {
            class: ErrorClass::Internal,
            retryable: false,
            message: "this destination kind does not take streamed events".into(),
            retry_after: None,
        };
        events.iter().map(|_| Err(e.clone())).collect()
    }
    /// The retry policy of its transport (`None`: not an HTTP destination); the streaming
    /// worker reads how long a `Retry-After` may be honoured from it.
    fn retry_policy(&self) -> Option<RetryPolicy> {
        None
    }
}

/// Reads a typed settings struct out of a destination's `settings` map.
pub(crate) fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, sluice_core::ConfigError> {
    serde_path_to_error::deserialize(serde_json::Value::Object(settings.clone())).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        // serde names the field in its message ("unknown field `x`", "missing field `url`");
        // a bad value (an unknown variant, a wrong type) is named by its path
        let field = match msg.split('`').nth(1).filter(|_| msg.contains("field")) {
            Some(f) => f.to_string(),
            None if path != "." => path,
            None => String::new(),
        };
        sluice_core::ConfigError::new(field, msg)
    })
}

/// Sends a batch; when the receiver rejects it permanently, sends each item alone to find
/// which records it refuses. Returns one outcome per item.
pub(crate) fn deliver_isolating<T: Clone>(items: &[T], send: impl FnMut(&[T]) -> Outcome) -> Vec<Outcome> {
    isolate(items, Isolation::Every, send)
}

/// How [`isolate`] goes on after a retryable failure while sending items one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Every item is tried (Reverse ETL: what is not taken stays pending for the next sync).
    Every,
    /// Nothing more is sent; later items carry the failure (streaming: the cursor stops there).
    StopAtRetryable,
}

/// The one 4xx isolation of both paths: a batch rejected for good is sent again item by item.
pub(crate) fn isolate<T: Clone>(items: &[T], mode: Isolation, mut send: impl FnMut(&[T]) -> Outcome) -> Vec<Outcome> {
    match send(items) {
        Ok(()) => items.iter().map(|_| Ok(())).collect(),
        Err(e) if !e.retryable && items.len() > 1 => {
            let mut out = Vec::with_capacity(items.len());
            let mut stopped: Option<DeliveryError> = None;
            for item in items {
                if let Some(e) = &stopped {
                    out.push(Err(e.clone()));
                    continue;
                }
                let r = send(std::slice::from_ref(item));
                if mode == Isolation::StopAtRetryable {
                    if let Err(e) = &r {
                        if e.retryable {
                            stopped = Some(e.clone());
                        }
                    }
                }
                out.push(r);
            }
            out
        }
        Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Streamed events in order, in chunks: each chunk is sent with [`isolate`]; after a chunk
/// fails retryably, later chunks are not sent and carry that failure.
pub(crate) fn deliver_chunks<T: Clone>(chunks: Vec<Vec<T>>, mut send: impl FnMut(&[T]) -> Outcome) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut stopped: Option<DeliveryError> = None;
    for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
        if let Some(e) = &stopped {
            out.extend(chunk.iter().map(|_| Err(e.clone())));
            continue;
        }
        let results = isolate(&chunk, Isolation::StopAtRetryable, &mut send);
        stopped = results.iter().find_map(|r| r.as_ref().err().filter(|e| e.retryable).cloned());
        out.extend(results);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_carries_its_delete_reason_only_when_set() {
        let mut item =
            Item { action: Change::Deleted, id: "u\"1".into(), data: "{}".into(), consent: None, reason: None };
        let mut out = Vec::new();
        item.write_json(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"action":"deleted","id":"u\"1","data":{}}"#);
        for (reason, word) in
            [(DeleteReason::ConsentWithdrawn, "consent_withdrawn"), (DeleteReason::PrivacyRequest, "privacy_request")]
        {
            item.reason = Some(reason);
            let mut out = Vec::new();
            item.write_json(&mut out);
            let written: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(written, serde_json::json!({"action": "deleted", "id": "u\"1", "data": {}, "reason": word}));
            // the serde form (file destination, debugging) says the same
            assert_eq!(serde_json::to_value(&item).unwrap(), written);
        }
    }
}
