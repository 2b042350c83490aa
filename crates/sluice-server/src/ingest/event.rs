//! Normalizing one Segment-spec event as Segment's Tracking API does.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use sluice_stream::rfc3339;

/// Largest event, serialized (Segment: 32 KB).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest request body, decompressed (Segment: 500 KB).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// How far past `receivedAt` a (skew-corrected) event timestamp may lie; later ones are clamped
/// to `receivedAt`, so a client cannot stamp a consent event into the future and outrank every
/// later withdrawal (R9 orders by `timestamp`).
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;

/// The earliest timestamp taken as given (2000-01-01T00:00:00Z); earlier ones are clamped to
/// `receivedAt`.
pub const EARLIEST_TIMESTAMP_SECS: i64 = 946_684_800;

/// The calls of the Tracking API.
pub const TYPES: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// Longest `messageId`, `userId`, `anonymousId` or `previousId` taken.
pub const MAX_ID_BYTES: usize = 1024;

pub(crate) fn nonempty_id(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A normalized event and its JSON text (what is stored and delivered).
pub type Normalized = (Value, String);

/// Checks and completes one event. `kind` is the call the path names (`None` in a batch: the
/// event's own `type`). `sent_at` is the batch's `sentAt` when the event has none. Adds
/// `receivedAt`, `messageId` (when absent), `originalTimestamp` and a clock-skew-corrected
/// `timestamp` (Segment: `receivedAt - (sentAt - timestamp)`). Errors name the problem.
pub fn normalize(
    mut event: Value,
    kind: Option<&str>,
    sent_at: Option<&Value>,
    received: DateTime<Utc>,
    fallback_id: impl FnOnce(&Value) -> String,
) -> Result<Normalized, (String, Value)> {
    match complete(&mut event, kind, sent_at, received, fallback_id) {
        Ok(()) => {
            // straight into a buffer (Display goes through a formatter, token by token)
            let json = serde_json::to_string(&event).expect("a JSON value serializes");
            if json.len() > MAX_EVENT_BYTES {
                return Err((format!("event is {} bytes; the limit is 32 KB", json.len()), event));
            }
            Ok((event, json))
        }
        Err(reason) => Err((reason, event)),
    }
}

fn complete(
    event: &mut Value,
    kind: Option<&str>,
    sent_at: Option<&Value>,
    received: DateTime<Utc>,
    fallback_id: impl FnOnce(&Value) -> String,
) -> Result<(), String> {
    let obj = event.as_object_mut().ok_or("an event must be a JSON object")?;
    let ty = match (kind, obj.get("type").and_then(Value::as_str)) {
        (Some(k), _) => k.to_string(),
        (None, Some(t)) if TYPES.contains(&t) => t.to_string(),
        (None, Some(t)) => return Err(format!("unknown event type `{t}`")),
        (None, None) => return Err("missing `type`".into()),
    };
    obj.insert("type".into(), Value::String(ty.clone()));
    for field in ["userId", "anonymousId"] {
        match nonempty_id(obj.get(field)) {
            Some(id) => {
                obj.insert(field.into(), Value::String(id));
            }
            None => {
                obj.remove(field);
            }
        }
    }
    // an alias's `previousId` is an identifier too: a number is made a string like `userId`, so
    // suppressions (privacy requests) and identity joins see it
    if ty == "alias" {
        if let Some(id) = nonempty_id(obj.get("previousId")) {
            obj.insert("previousId".into(), Value::String(id));
        }
    }
    if !obj.contains_key("userId") && !obj.contains_key("anonymousId") {
        return Err("either `userId` or `anonymousId` is required".into());
    }
    let need = |f: &str, obj: &Map<String, Value>| -> Result<(), String> {
        match obj.get(f) {
            Some(Value::String(s)) if !s.is_empty() => Ok(()),
            Some(Value::Number(_)) if f != "event" => Ok(()),
            _ => Err(format!("a {ty} call needs `{f}`")),
        }
    };
    match ty.as_str() {
        "track" => need("event", obj)?,
        "group" => need("groupId", obj)?,
        "alias" => {
            need("previousId", obj)?;
            need("userId", obj)?;
        }
        _ => {}
    }
    for (f, want_object) in [("context", true), ("integrations", true), ("properties", true), ("traits", true)] {
        if let Some(v) = obj.get(f) {
            if want_object && !v.is_object() && !v.is_null() {
                return Err(format!("`{f}` must be an object"));
            }
        }
    }
    if !matches!(obj.get("messageId"), Some(Value::String(s)) if !s.is_empty()) {
        let id = fallback_id(&Value::Object(obj.clone()));
        obj.insert("messageId".into(), Value::String(id));
    }
    // identifiers are keys (de-duplication, profiles, privacy requests): bounded, printable
    for f in ["messageId", "userId", "anonymousId", "previousId"] {
        if let Some(Value::String(id)) = obj.get(f) {
            if id.len() > MAX_ID_BYTES {
                return Err(format!("`{f}` is {} bytes; an identifier has at most {MAX_ID_BYTES}", id.len()));
            }
            if id.chars().any(char::is_control) {
                return Err(format!("`{f}` contains a control character"));
            }
        }
    }
    let ts = parse_time(obj.get("timestamp"));
    let sent = parse_time(obj.get("sentAt")).or_else(|| parse_time(sent_at));
    let timestamp = match (ts, sent) {
        (Some(t), Some(s)) => received.checked_sub_signed(s - t),
        (Some(t), None) => Some(t),
        (None, _) => None,
    };
    let timestamp = clamp_timestamp(timestamp, received);
    if let Some(t) = obj.get("timestamp").cloned() {
        obj.insert("originalTimestamp".into(), t);
    }
    obj.insert("timestamp".into(), Value::String(rfc3339(timestamp)));
    obj.insert("receivedAt".into(), Value::String(rfc3339(received)));
    if let Some(s) = sent {
        obj.insert("sentAt".into(), Value::String(rfc3339(s)));
    }
    Ok(())
}

/// The event's time as used for ordering: `received` when absent, in the future beyond
/// [`MAX_FUTURE_SKEW_SECS`], or before [`EARLIEST_TIMESTAMP_SECS`].
pub fn clamp_timestamp(t: Option<DateTime<Utc>>, received: DateTime<Utc>) -> DateTime<Utc> {
    match t {
        Some(t)
            if t.timestamp() >= EARLIEST_TIMESTAMP_SECS
                && t.timestamp() <= received.timestamp().saturating_add(MAX_FUTURE_SKEW_SECS) =>
        {
            t
        }
        _ => received,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:10Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn completes_and_corrects_clock_skew() {
        let e = normalize(
            json!({"userId": 42, "event": "Bought", "timestamp": "2024-05-01T11:00:00Z"}),
            Some("track"),
            Some(&json!("2024-05-01T11:00:05Z")),
            now(),
            |_| "gen".into(),
        )
        .unwrap()
        .0;
        assert_eq!(e["type"], "track");
        assert_eq!(e["userId"], "42");
        assert_eq!(e["messageId"], "gen");
        assert_eq!(e["originalTimestamp"], "2024-05-01T11:00:00Z");
        // the client's clock is 1 h behind: timestamp = receivedAt - (sentAt - timestamp)
        assert_eq!(e["timestamp"], "2024-05-01T12:00:05.000Z");
        assert_eq!(e["receivedAt"], "2024-05-01T12:00:10.000Z");
        let e = normalize(json!({"anonymousId": "a", "messageId": "m1"}), Some("page"), None, now(), |_| "x".into())
            .unwrap()
            .0;
        assert_eq!((e["messageId"].as_str(), e["timestamp"].as_str()), (Some("m1"), Some("2024-05-01T12:00:10.000Z")));
    }

    #[test]
    fn finding_10_future_timestamps_are_clamped_to_received_at() {
        let ts = |v: Value, sent: Option<Value>| {
            normalize(v, Some("track"), sent.as_ref(), now(), |_| "x".into()).unwrap().0["timestamp"].clone()
        };
        let far = json!({"userId": "u", "event": "E", "timestamp": "9999-12-31T23:59:59Z"});
        assert_eq!(ts(far.clone(), None), "2024-05-01T12:00:10.000Z");
        // a few seconds ahead (clock skew, no sentAt) stays as sent
        let near = json!({"userId": "u", "event": "E", "timestamp": "2024-05-01T12:01:00Z"});
        assert_eq!(ts(near, None), "2024-05-01T12:01:00.000Z");
        // the original value is kept for the record
        let e = normalize(far, Some("track"), None, now(), |_| "x".into()).unwrap().0;
        assert_eq!(e["originalTimestamp"], "9999-12-31T23:59:59Z");
    }

    #[test]
    fn finding_19_skew_correction_never_yields_absurd_years() {
        let ts = |v: Value| normalize(v, Some("track"), None, now(), |_| "x".into()).unwrap().0["timestamp"].clone();
        // sentAt in year 9999 and timestamp in year 0001: the correction would land in -7974
        let absurd =
            json!({"userId": "u", "event": "E", "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"});
        assert_eq!(ts(absurd), "2024-05-01T12:00:10.000Z");
        assert_eq!(
            ts(json!({"userId": "u", "event": "E", "timestamp": "1969-01-01T00:00:00Z"})),
            "2024-05-01T12:00:10.000Z"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |v: Value, k: Option<&str>| normalize(v, k, None, now(), |_| "x".into()).unwrap_err().0;
        assert!(err(json!({"event": "x"}), Some("track")).contains("userId"));
        assert!(err(json!({"userId": "u"}), Some("track")).contains("`event`"));
        assert!(err(json!({"userId": "u"}), None).contains("missing `type`"));
        assert!(err(json!({"userId": "u", "type": "nope"}), None).contains("unknown event type"));
        assert!(err(json!({"userId": "u"}), Some("alias")).contains("previousId"));
        assert!(err(json!({"userId": "u", "context": 3}), Some("page")).contains("`context`"));
        assert!(err(json!([1]), Some("page")).contains("object"));
        assert!(err(json!({"userId": "u", "properties": {"x": "y".repeat(40_000)}}), Some("page")).contains("32 KB"));
    }

    #[test]
    fn identifiers_are_bounded_and_printable() {
        let long = "u".repeat(MAX_ID_BYTES + 1);
        for (field, value, want) in [
            ("userId", long.as_str(), "`userId` is 1025 bytes"),
            ("anonymousId", "a\u{0}b", "`anonymousId` contains a control character"),
            ("messageId", "m\nx", "`messageId` contains a control character"),
        ] {
            let mut e = json!({"userId": "u", "event": "E"});
            e[field] = json!(value);
            let (reason, _) = normalize(e, Some("track"), None, now(), |_| "x".into()).unwrap_err();
            assert!(reason.starts_with(want), "{field}: {reason}");
        }
        let ok = json!({"userId": "u".repeat(MAX_ID_BYTES), "event": "E", "messageId": "m-ü"});
        assert!(normalize(ok, Some("track"), None, now(), |_| "x".into()).is_ok());
    }
}
