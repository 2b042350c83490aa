//! What travels on the bus, as JSON. An accepted request (ingest → router) is one message: its
//! source, its normalized events as they will be stored and delivered, and its invalid events;
//! a routed message (router → delivery) holds the events one destination gets from one accepted
//! message, or one person-delete (R13). Every field is checked on the way in: a message that
//! does not decode is dead-lettered, never guessed at.

use crate::person_delete::PersonDelete;
use crate::writer::{Invalid, Prepared};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An accepted request, as the router reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The event source's id.
    pub source: String,
    /// The normalized events.
    pub events: Vec<AcceptedEvent>,
    /// Events that failed validation (kept for the record, never routed).
    #[serde(default)]
    pub invalid: Vec<AcceptedInvalid>,
}

/// One normalized event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedEvent {
    /// The event as normalized at ingest.
    pub e: Box<RawValue>,
    /// Categories Global Privacy Control refused for it (R14).
    #[serde(default)]
    pub gpc: Vec<String>,
}

/// One invalid event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedInvalid {
    /// Why it is invalid.
    pub reason: String,
    /// Its raw JSON, cut.
    pub body: String,
    /// Its identifiers (for suppression).
    pub ids: Vec<String>,
}

/// The message of an accepted request: the events' JSON texts are written as they are (they
/// were produced by serde_json at ingest), the rest through serde.
pub fn encode_accepted(source: &str, events: &[Prepared], invalid: &[Invalid]) -> Vec<u8> {
    let size: usize = events.iter().map(|e| e.json.len() + 16).sum::<usize>() + 64;
    let mut out = String::with_capacity(size);
    out.push_str("{\"source\":");
    out.push_str(&serde_json::Value::String(source.to_string()).to_string());
    out.push_str(",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"e\":");
        out.push_str(&e.json);
        if !e.gpc_refused.is_empty() {
            out.push_str(",\"gpc\":");
            out.push_str(&serde_json::to_string(&e.gpc_refused).unwrap_or_else(|_| "[]".into()));
        }
        out.push('}');
    }
    out.push_str("],\"invalid\":");
    let invalid: Vec<AcceptedInvalid> = invalid
        .iter()
        .map(|i| AcceptedInvalid { reason: i.reason.clone(), body: i.body.clone(), ids: i.ids.clone() })
        .collect();
    out.push_str(&serde_json::to_string(&invalid).unwrap_or_else(|_| "[]".into()));
    out.push('}');
    out.into_bytes()
}

impl Accepted {
    /// Decodes a message; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an accepted request: {e}"))
    }

    /// The events as the writer's routing takes them (GPC applied again, R14).
    pub fn prepared(&self) -> Result<Vec<Prepared>, String> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let v: serde_json::Value =
                    serde_json::from_str(e.e.get()).map_err(|err| format!("events[{i}]: {err}"))?;
                if !v.is_object() {
                    return Err(format!("events[{i}]: not an object"));
                }
                let p = Prepared::new((v, e.e.get().to_string()));
                Ok(if e.gpc.is_empty() { p } else { p.with_gpc(&e.gpc) })
            })
            .collect()
    }
}

/// A routed message: what one destination gets.
#[derive(Debug)]
pub enum Routed {
    /// Events, in the order they were accepted.
    Events {
        /// The events.
        events: Vec<RoutedEvent>,
    },
    /// Delete a person (R13), after the events before it and before those after it.
    Delete {
        /// Who and why.
        request: PersonDelete,
    },
}

/// One routed event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutedEvent {
    /// Its source.
    pub source: String,
    /// Its `messageId`.
    pub message_id: String,
    /// The event as delivered (with the consent it was routed under stamped, when it was).
    pub body: Box<RawValue>,
}

/// A routed message as it travels (`RawValue` cannot sit in a serde-tagged enum).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutedWire {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<Vec<RoutedEvent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<PersonDelete>,
}

impl Routed {
    /// Decodes a message; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let w: RoutedWire = serde_json::from_slice(bytes).map_err(|e| format!("not a routed message: {e}"))?;
        match (w.kind.as_str(), w.events, w.request) {
            ("events", Some(events), None) => Ok(Routed::Events { events }),
            ("delete", None, Some(request)) => Ok(Routed::Delete { request }),
            (kind, _, _) => Err(format!(
                "not a routed message: kind {kind:?} with the wrong fields (events: `events`; delete: `request`)"
            )),
        }
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let w = match self {
            Routed::Events { events } => RoutedWire {
                kind: "events".into(),
                events: Some(
                    events
                        .iter()
                        .map(|e| RoutedEvent {
                            source: e.source.clone(),
                            message_id: e.message_id.clone(),
                            body: e.body.clone(),
                        })
                        .collect(),
                ),
                request: None,
            },
            Routed::Delete { request } => {
                RoutedWire { kind: "delete".into(), events: None, request: Some(request.clone()) }
            }
        };
        serde_json::to_vec(&w).unwrap_or_default()
    }
}
