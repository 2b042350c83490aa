//! What the SaaS kinds (braze, hubspot, amplitude, mixpanel, iterable, ...) share: records and
//! streamed events become [`Op`]s (an upsert of attributes, a tracked event, a delete), grouped
//! by what they are, cut into requests by the vendor's record and byte limits, sent through
//! the kind's [`Api`], and the per-request outcomes spread back to one outcome per item.

use crate::http::Retries;
use crate::{DeliveryError, Event, Item, Outcome};
use serde_json::{Map, Value};
use sluice_core::Change;

/// One thing to tell the vendor about a person.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Set these attributes on the user `id`.
    Upsert {
        /// The vendor's user identifier.
        id: String,
        /// Attributes (the mapped fields, or an `identify`'s traits).
        attrs: Map<String, Value>,
    },
    /// An event of user `id` (a streamed `track`).
    Track {
        /// The vendor's user identifier.
        id: String,
        /// The event name.
        name: String,
        /// Its properties.
        props: Map<String, Value>,
        /// When it happened (RFC 3339 as sent, if given).
        time: Option<String>,
        /// A dedupe key (the event's `messageId`).
        insert_id: String,
    },
    /// Delete the user `id` through the vendor's delete call.
    Delete {
        /// The vendor's user identifier.
        id: String,
    },
}

impl Op {
    /// The vendor's user identifier it concerns.
    pub fn id(&self) -> &str {
        match self {
            Op::Upsert { id, .. } | Op::Track { id, .. } | Op::Delete { id } => id,
        }
    }

    /// Roughly how many bytes it takes in a request.
    pub fn size(&self) -> usize {
        let map = |m: &Map<String, Value>| serde_json::to_vec(m).map(|v| v.len()).unwrap_or(0);
        64 + self.id().len()
            + match self {
                Op::Upsert { attrs, .. } => map(attrs),
                Op::Track { name, props, .. } => name.len() + map(props) + 80,
                Op::Delete { .. } => 0,
            }
    }
}

/// The ops of a Reverse ETL batch: the user identifier is the record's unique id, or the mapped
/// field `id_field` names. A deleted record has no mapped fields (the engine sends `{}`), so
/// with `id_field` set its delete cannot be addressed: it fails, saying so.
pub fn item_ops(items: &[Item], id_field: Option<&str>) -> Vec<Result<Op, DeliveryError>> {
    items
        .iter()
        .map(|item| {
            let attrs = match serde_json::from_str::<Value>(&item.data) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let id = match id_field {
                None => item.id.clone(),
                Some(_) if item.action == Change::Deleted => {
                    return Err(DeliveryError::rejected(
                        "cannot delete: the user identifier comes from a mapped field (`user_id_field`), which a deleted record no longer has; remove the setting to address users by the record's unique id",
                    ))
                }
                Some(f) => match attrs.get(f) {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(DeliveryError::rejected(format!(
                            "the mapped field `{f}` (user_id_field) is missing or empty in this record"
                        )))
                    }
                },
            };
            Ok(match item.action {
                Change::Deleted => Op::Delete { id },
                _ => Op::Upsert { id, attrs },
            })
        })
        .collect()
}

/// The op of a streamed event: `identify` sets its traits, `track` is an event (when the vendor
/// has events); the user is `userId` (else `anonymousId`). Other types are refused, naming them.
pub fn event_op(e: &Event, kind: &str, has_events: bool) -> Result<Op, DeliveryError> {
    let v: Value = serde_json::from_str(&e.body)
        .map_err(|err| DeliveryError::rejected(format!("event {} is not JSON: {err}", e.seq)))?;
    let str_of = |k: &str| match &v[k] {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let Some(id) = str_of("userId").or_else(|| str_of("anonymousId")) else {
        return Err(DeliveryError::rejected(format!("event {} has neither userId nor anonymousId", e.seq)));
    };
    let obj = |k: &str| v[k].as_object().cloned().unwrap_or_default();
    match v["type"].as_str().unwrap_or("") {
        "identify" => Ok(Op::Upsert { id, attrs: obj("traits") }),
        "track" if has_events => Ok(Op::Track {
            id,
            name: str_of("event").unwrap_or_else(|| "track".into()),
            props: obj("properties"),
            time: str_of("timestamp"),
            insert_id: str_of("messageId").unwrap_or_else(|| format!("{}:{}", e.source, e.seq)),
        }),
        t => Err(DeliveryError::rejected(format!(
            "`{}` events are not sent to {kind} (it takes identify{})",
            t.escape_debug(),
            if has_events { " and track" } else { "" }
        ))),
    }
}

/// A vendor's request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most upserts per request.
    pub upserts: usize,
    /// Most events per request.
    pub tracks: usize,
    /// Most deletes per request.
    pub deletes: usize,
    /// Most bytes per request body (an op larger than this alone is refused unsent).
    pub bytes: usize,
}

/// A kind's requests: each gets ops of one sort within [`Limits`] and returns one outcome per op.
pub trait Api {
    /// The vendor's limits.
    fn limits(&self) -> Limits;
    /// Sends upserts.
    fn upserts(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome>;
    /// Sends events (only called when the kind has events).
    fn tracks(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome>;
    /// Sends deletes.
    fn deletes(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome>;
}

/// Sends `ops` (an `Err` is an item that sends nothing) through `api` and returns one outcome per
/// entry. With [`Retries::Caller`] (streaming), nothing more is sent after the first retryable
/// failure; later ops carry it.
pub fn run(api: &dyn Api, ops: Vec<Result<Op, DeliveryError>>, retries: Retries) -> Vec<Outcome> {
    let limits = api.limits();
    let mut out: Vec<Outcome> = ops.iter().map(|o| o.as_ref().map(|_| ()).map_err(Clone::clone)).collect();
    let mut stopped: Option<DeliveryError> = None;
    for sort in 0..3 {
        let (max, pick): (usize, fn(&Op) -> bool) = match sort {
            0 => (limits.upserts, |o| matches!(o, Op::Upsert { .. })),
            1 => (limits.tracks, |o| matches!(o, Op::Track { .. })),
            _ => (limits.deletes, |o| matches!(o, Op::Delete { .. })),
        };
        let mut chunk: Vec<(usize, &Op)> = Vec::new();
        let mut bytes = 0;
        let idx: Vec<(usize, &Op)> =
            ops.iter().enumerate().filter_map(|(i, o)| o.as_ref().ok().filter(|o| pick(o)).map(|o| (i, o))).collect();
        let n = idx.len();
        for (k, (i, op)) in idx.into_iter().enumerate() {
            let size = op.size();
            if size > limits.bytes {
                out[i] = Err(DeliveryError::rejected(format!(
                    "the record takes about {size} bytes, more than the vendor's {} bytes per request",
                    limits.bytes
                )));
            } else {
                if !chunk.is_empty() && (chunk.len() >= max.max(1) || bytes + size > limits.bytes) {
                    send(api, sort, &mut chunk, &mut out, retries, &mut stopped);
                    bytes = 0;
                }
                chunk.push((i, op));
                bytes += size;
            }
            if k + 1 == n && !chunk.is_empty() {
                send(api, sort, &mut chunk, &mut out, retries, &mut stopped);
            }
        }
    }
    out
}

fn send(
    api: &dyn Api,
    sort: u8,
    chunk: &mut Vec<(usize, &Op)>,
    out: &mut [Outcome],
    retries: Retries,
    stopped: &mut Option<DeliveryError>,
) {
    let ops: Vec<&Op> = chunk.iter().map(|(_, o)| *o).collect();
    let results = match stopped {
        Some(e) => ops.iter().map(|_| Err(e.clone())).collect(),
        None => match sort {
            0 => api.upserts(&ops, retries),
            1 => api.tracks(&ops, retries),
            _ => api.deletes(&ops, retries),
        },
    };
    for (k, (i, _)) in chunk.iter().enumerate() {
        out[*i] = results.get(k).cloned().unwrap_or_else(|| Err(DeliveryError::external("no outcome for the record")));
    }
    if retries == Retries::Caller && stopped.is_none() {
        *stopped = results.into_iter().find_map(|r| r.err().filter(|e| e.retryable));
    }
    chunk.clear();
}

/// Sends `ops` in one request; when the vendor rejects it for good without saying which record
/// (a whole-request 4xx), sends each alone to find the records it refuses (the 4xx isolation of
/// [`crate::isolate`]; streaming stops at a retryable failure).
pub fn isolated<'a>(
    ops: &[&'a Op],
    retries: Retries,
    send: impl FnMut(&[&'a Op]) -> Result<(), DeliveryError>,
) -> Vec<Outcome> {
    let mode = match retries {
        Retries::Transport => crate::Isolation::Every,
        Retries::Caller => crate::Isolation::StopAtRetryable,
    };
    crate::isolate(ops, mode, send)
}

/// A path segment percent-encoded (RFC 3986 unreserved characters kept).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form value percent-encoded (`application/x-www-form-urlencoded`).
pub fn form_value(s: &str) -> String {
    path_segment(s)
}

/// Every op of a request gets `r` (a whole-request success or failure).
pub fn all(n: usize, r: Result<(), DeliveryError>) -> Vec<Outcome> {
    (0..n).map(|_| r.clone()).collect()
}

/// The Segment-style milliseconds of an RFC 3339 `time` (now when absent or unreadable).
pub fn millis(time: Option<&str>) -> i64 {
    time.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Counting {
        calls: RefCell<Vec<(u8, usize)>>,
        fail_tracks: bool,
    }
    impl Api for Counting {
        fn limits(&self) -> Limits {
            Limits { upserts: 2, tracks: 3, deletes: 1, bytes: 400 }
        }
        fn upserts(&self, ops: &[&Op], _: Retries) -> Vec<Outcome> {
            self.calls.borrow_mut().push((0, ops.len()));
            all(ops.len(), Ok(()))
        }
        fn tracks(&self, ops: &[&Op], _: Retries) -> Vec<Outcome> {
            self.calls.borrow_mut().push((1, ops.len()));
            all(ops.len(), if self.fail_tracks { Err(DeliveryError::external("down")) } else { Ok(()) })
        }
        fn deletes(&self, ops: &[&Op], _: Retries) -> Vec<Outcome> {
            self.calls.borrow_mut().push((2, ops.len()));
            all(ops.len(), Ok(()))
        }
    }

    fn up(id: &str, bytes: usize) -> Result<Op, DeliveryError> {
        let mut attrs = Map::new();
        attrs.insert("x".into(), Value::String("a".repeat(bytes)));
        Ok(Op::Upsert { id: id.into(), attrs })
    }

    #[test]
    fn ops_are_cut_by_count_and_bytes_and_mapped_back() {
        let api = Counting { calls: RefCell::new(vec![]), fail_tracks: false };
        let ops = vec![
            up("a", 1),
            Ok(Op::Delete { id: "d1".into() }),
            up("b", 1),
            up("c", 1),
            up("huge", 1000),
            Ok(Op::Delete { id: "d2".into() }),
            up("big1", 250),
            up("big2", 250),
            Err(DeliveryError::rejected("bad")),
        ];
        let out = run(&api, ops, Retries::Transport);
        assert_eq!(
            *api.calls.borrow(),
            vec![(0, 2), (0, 2), (0, 1), (2, 1), (2, 1)],
            "a b | c big1 | big2 (bytes) | d1 | d2"
        );
        assert!(out[4].as_ref().unwrap_err().message.contains("400 bytes"));
        assert!(out[8].as_ref().unwrap_err().message.contains("bad"));
        assert_eq!(out.iter().filter(|o| o.is_ok()).count(), 7);
        let _ = up("big", 0);
    }

    #[test]
    fn streaming_stops_after_a_retryable_failure() {
        let api = Counting { calls: RefCell::new(vec![]), fail_tracks: true };
        let t = |id: &str| {
            Ok(Op::Track { id: id.into(), name: "n".into(), props: Map::new(), time: None, insert_id: id.into() })
        };
        let ops = vec![t("1"), t("2"), t("3"), t("4"), Ok(Op::Delete { id: "d".into() })];
        let out = run(&api, ops, Retries::Caller);
        assert_eq!(*api.calls.borrow(), vec![(1, 2)], "two fit in 400 bytes; nothing sent after the failure");
        assert!(out.iter().all(|o| o.as_ref().is_err_and(|e| e.retryable)));
    }

    #[test]
    fn items_and_events_become_ops() {
        let item = |action, id: &str, data: &str| Item {
            action,
            id: id.into(),
            data: data.into(),
            consent: None,
            reason: None,
        };
        let ops = item_ops(
            &[item(Change::Added, "1", r#"{"email":"a@x","uid":"U1"}"#), item(Change::Deleted, "2", "{}")],
            None,
        );
        assert_eq!(ops[0].as_ref().unwrap().id(), "1");
        assert!(matches!(ops[1], Ok(Op::Delete { .. })));
        let ops = item_ops(
            &[
                item(Change::Added, "1", r#"{"uid":"U1"}"#),
                item(Change::Added, "2", "{}"),
                item(Change::Deleted, "3", "{}"),
            ],
            Some("uid"),
        );
        assert_eq!(ops[0].as_ref().unwrap().id(), "U1");
        assert!(ops[1].as_ref().unwrap_err().message.contains("`uid`"));
        assert!(ops[2].as_ref().unwrap_err().message.contains("cannot delete"));
        let ev = |body: &str| Event { seq: 1, source: "web".into(), body: body.into() };
        let op =
            event_op(&ev(r#"{"type":"track","userId":"u","event":"Signed Up","messageId":"m1"}"#), "x", true).unwrap();
        assert!(matches!(op, Op::Track { ref name, ref insert_id, .. } if name == "Signed Up" && insert_id == "m1"));
        let op = event_op(&ev(r#"{"type":"identify","anonymousId":"a","traits":{"plan":"pro"}}"#), "x", true).unwrap();
        assert!(matches!(op, Op::Upsert { ref id, ref attrs } if id == "a" && attrs["plan"] == "pro"));
        assert!(event_op(&ev(r#"{"type":"track","userId":"u"}"#), "hubspot", false)
            .unwrap_err()
            .message
            .contains("identify"));
        assert!(event_op(&ev(r#"{"type":"page"}"#), "x", true).is_err());
    }
}
