//! Destinations: where Reverse ETL records go.
//!
//! Each destination kind lives in its own folder (`config.rs` for its typed settings, `sink.rs`
//! for delivery) and is registered in the one explicit list of [`registry`].

pub mod connections;
pub mod error;
pub mod file;
pub mod http;
pub mod registry;
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
}

/// Encodes a JSON value as the `data` of an item.
pub fn raw(v: &serde_json::Value) -> Box<str> {
    v.to_string().into_boxed_str()
}

impl Item {
    /// Appends the item's JSON (`{"action", "id", "data"}`) to `out` without re-encoding `data`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"action\":\"");
        out.extend_from_slice(self.action.as_str().as_bytes());
        out.extend_from_slice(b"\",\"id\":");
        serde_json::to_writer(&mut *out, &self.id).expect("in-memory writes do not fail");
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.as_bytes());
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
        let mut st = s.serialize_struct("Item", 3)?;
        st.serialize_field("action", &self.action)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("data", &self.data_value())?;
        st.end()
    }
}

/// The outcome of one item.
pub type Outcome = Result<(), DeliveryError>;

/// A destination that takes batches of items.
pub trait Destination: Send {
    /// How many items a batch should hold.
    fn batch_size(&self) -> usize;
    /// Delivers a batch, retrying retryable failures as [`RetryPolicy`] says, and returns one
    /// outcome per item, in order. Never reports success for an item the receiver did not take.
    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome>;
}

/// Reads a typed settings struct out of a destination's `settings` map.
pub(crate) fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, sluice_core::ConfigError> {
    serde_json::from_value(serde_json::Value::Object(settings.clone())).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in its message ("unknown field `x`", "missing field `url`")
        let field = msg.split('`').nth(1).filter(|_| msg.contains("field")).unwrap_or("").to_string();
        sluice_core::ConfigError::new(field, msg)
    })
}

/// Sends a batch; when the receiver rejects it permanently, sends each item alone to find
/// which records it refuses. Returns one outcome per item.
pub(crate) fn deliver_isolating<T: Clone>(items: &[T], mut send: impl FnMut(&[T]) -> Outcome) -> Vec<Outcome> {
    match send(items) {
        Ok(()) => items.iter().map(|_| Ok(())).collect(),
        Err(e) if !e.retryable && items.len() > 1 => {
            items.iter().map(|item| send(std::slice::from_ref(item))).collect()
        }
        Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
    }
}
