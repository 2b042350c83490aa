use super::WebhookConfig;
use crate::http::{idempotency_key, Retries, Transport};
use crate::{BuildContext, DeliveryError, Destination, Event, Item, Outcome, RetryPolicy};

/// POSTs `{"batch": [ITEM, ...]}` (records) or `{"batch": [EVENT, ...]}` (streamed events, as
/// stored); a 2xx means every item was accepted.
pub struct WebhookSink {
    config: WebhookConfig,
    transport: Transport,
    mapping_key: String,
}

impl WebhookSink {
    /// A sink for `config`.
    pub fn new(config: WebhookConfig, ctx: &BuildContext) -> Self {
        let transport = Transport::new(&config.http.clone().unwrap_or_default());
        Self { config, transport, mapping_key: ctx.mapping_key.clone() }
    }

    fn send(&self, items: &[Item]) -> Result<(), DeliveryError> {
        let mut body = Vec::with_capacity(64 + items.iter().map(|i| i.data.len() + 48).sum::<usize>());
        body.extend_from_slice(b"{\"batch\":[");
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            item.write_json(&mut body);
        }
        body.extend_from_slice(b"]}");
        self.post(&body, Retries::Transport)
    }

    fn send_events(&self, events: &[Event]) -> Result<(), DeliveryError> {
        let body = crate::http::event_batch(events.iter().map(|e| e.body.as_str()));
        self.post(&body, Retries::Caller)
    }

    fn post(&self, body: &[u8], retries: Retries) -> Result<(), DeliveryError> {
        // derived from the body: a retry of the same batch carries the same key
        let key = idempotency_key(&self.mapping_key, body);
        let mut headers: Vec<(&str, &str)> =
            self.config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        headers.push(("Idempotency-Key", &key));
        self.transport.post(&self.config.url, &headers, body, retries)
    }
}

impl Destination for WebhookSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        crate::deliver_isolating(items, |batch| self.send(batch))
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        crate::deliver_chunks(vec![events.to_vec()], |batch| self.send_events(batch))
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.transport.policy())
    }
}
