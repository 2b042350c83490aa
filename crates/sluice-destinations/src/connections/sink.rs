use super::{ConnectionsConfig, EventType};
use crate::http::{encode, idempotency_key, Retries, Transport};
use crate::{BuildContext, DeliveryError, Destination, Event, Item, Outcome, RetryPolicy};
use base64::Engine;
use serde_json::{json, Value};

/// Segment's documented limits: bytes of one event, and of one batch request.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// See [`MAX_EVENT_BYTES`].
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// Sends records as Segment events.
pub struct ConnectionsSink {
    config: ConnectionsConfig,
    transport: Transport,
    endpoint: String,
    auth: String,
    mapping_key: String,
}

impl ConnectionsSink {
    /// A sink for `config`.
    pub fn new(config: ConnectionsConfig, ctx: &BuildContext) -> Self {
        let transport = Transport::new(&config.http.clone().unwrap_or_default());
        let endpoint = format!("{}/v1/batch", config.url.trim_end_matches('/'));
        let auth =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:", config.write_key)));
        Self { config, transport, endpoint, auth, mapping_key: ctx.mapping_key.clone() }
    }

    /// The Segment event of an item. Its `messageId` derives from the record's content, so a
    /// retried record keeps it and the receiver can de-duplicate; it is namespaced by the model
    /// (`{model}:sluice-…`, as streaming forwards `{source}:{messageId}`), so no two senders
    /// into one downstream source can collide.
    pub fn event(&self, item: &Item) -> Value {
        let data = item.data_value();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [self.mapping_key.as_bytes(), item.id.as_bytes(), item.action.as_str().as_bytes()] {
            h.update(part);
            h.update(&[0]);
        }
        h.update(item.data.as_bytes());
        let mut e = match self.config.event {
            EventType::Identify => json!({"type": "identify", "userId": item.id, "traits": data}),
            EventType::Track => {
                json!({"type": "track", "userId": item.id, "event": self.config.event_name, "properties": data})
            }
        };
        let model = self.mapping_key.split('/').next().unwrap_or_default();
        e["messageId"] = json!(format!("{model}:sluice-{:032x}", h.digest128()));
        e["context"] = json!({
            "library": {"name": "sluice", "version": env!("CARGO_PKG_VERSION")},
            "sluice": {"model": model},
        });
        if let Some(consent) = &item.consent {
            // R5: both field names, identical content
            e["context"]["consent"] = json!({"categoryPreferences": consent, "consentPreferences": consent});
        }
        e
    }

    fn send(&self, events: &[Value]) -> Result<(), DeliveryError> {
        let body = encode(&crate::http::Batch { batch: events })?;
        if body.len() > MAX_BATCH_BYTES && events.len() > 1 {
            let (a, b) = events.split_at(events.len() / 2);
            return self.send(a).and_then(|_| self.send(b));
        }
        self.post(&body, Retries::Transport)
    }

    /// Sends forwarded events (JSON texts, each at most [`MAX_EVENT_BYTES`]) in one request.
    fn send_texts(&self, texts: &[String]) -> Result<(), DeliveryError> {
        self.post(&crate::http::event_batch(texts.iter().map(String::as_str)), Retries::Caller)
    }

    fn post(&self, body: &[u8], retries: Retries) -> Result<(), DeliveryError> {
        // derived from the body: a retry of the same batch carries the same key
        let key = idempotency_key(&self.mapping_key, body);
        self.transport.post(&self.endpoint, &[("Authorization", &self.auth), ("Idempotency-Key", &key)], body, retries)
    }
}

fn too_big(size: usize) -> DeliveryError {
    DeliveryError::rejected(format!("event is {size} bytes; the Tracking API takes at most 32 KB"))
}

impl Destination for ConnectionsSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        let events: Vec<Value> = items.iter().map(|i| self.event(i)).collect();
        let sizes: Vec<usize> = events.iter().map(|e| e.to_string().len()).collect();
        let mut out: Vec<Outcome> =
            sizes.iter().map(|s| if *s > MAX_EVENT_BYTES { Err(too_big(*s)) } else { Ok(()) }).collect();
        let idx: Vec<usize> = (0..items.len()).filter(|i| out[*i].is_ok()).collect();
        let sendable: Vec<Value> = idx.iter().map(|i| events[*i].clone()).collect();
        let results = crate::deliver_isolating(&sendable, |batch| self.send(batch));
        for (i, r) in idx.into_iter().zip(results) {
            out[i] = r;
        }
        out
    }

    /// Forwards events as stored, each [`namespaced`](super::namespaced): an event over 32 KB
    /// once namespaced is rejected for good (it would be refused downstream), the others go in
    /// requests of at most [`MAX_BATCH_BYTES`], in order.
    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let texts: Vec<String> = events.iter().map(super::namespaced).collect();
        let mut out: Vec<Outcome> =
            texts.iter().map(|t| if t.len() > MAX_EVENT_BYTES { Err(too_big(t.len())) } else { Ok(()) }).collect();
        let idx: Vec<usize> = (0..texts.len()).filter(|i| out[*i].is_ok()).collect();
        // `{"batch":[` + texts joined by `,` + `]}`
        let mut chunks: Vec<Vec<String>> = Vec::new();
        let mut size = usize::MAX;
        for i in &idx {
            let t = &texts[*i];
            if size.saturating_add(t.len() + 1) > MAX_BATCH_BYTES {
                chunks.push(Vec::new());
                size = 12;
            }
            size += t.len() + 1;
            if let Some(c) = chunks.last_mut() {
                c.push(t.clone());
            }
        }
        let results = crate::deliver_chunks(chunks, |batch| self.send_texts(batch));
        for (i, r) in idx.into_iter().zip(results) {
            out[i] = r;
        }
        out
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.transport.policy())
    }
}
