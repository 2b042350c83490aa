//! Streamed events as `connections` forwards them.

use crate::Event;
use serde_json::Value;

/// An event as `connections` forwards it: `messageId` becomes `{source}:{messageId}`, so the
/// same messageId sent to two sources stays two events downstream (where de-duplication is by
/// messageId); the original stays in `context.sluice` (`source`, `originalMessageId`). A body
/// that is not a JSON object is forwarded as it is.
pub fn namespaced(e: &Event) -> String {
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(&e.body) else { return e.body.clone() };
    let original = event.get("messageId").and_then(Value::as_str).unwrap_or_default().to_string();
    event.insert("messageId".into(), Value::String(format!("{}:{original}", e.source)));
    let context = event.entry("context").or_insert_with(|| Value::Object(Default::default()));
    if !context.is_object() {
        *context = Value::Object(Default::default());
    }
    if let Value::Object(context) = context {
        let ours = context.entry("sluice").or_insert_with(|| Value::Object(Default::default()));
        if !ours.is_object() {
            *ours = Value::Object(Default::default());
        }
        if let Value::Object(ours) = ours {
            ours.insert("source".into(), Value::String(e.source.clone()));
            ours.insert("originalMessageId".into(), Value::String(original));
        }
    }
    Value::Object(event).to_string()
}
