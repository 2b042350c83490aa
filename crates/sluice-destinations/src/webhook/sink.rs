use super::WebhookConfig;
use crate::http::Transport;
use crate::{BuildContext, DeliveryError, Destination, Item, Outcome};

/// POSTs `{"batch": [ITEM, ...]}`; a 2xx means every item was accepted.
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
        // derived from the body: a retry of the same batch carries the same key
        let key = idempotency_key(&self.mapping_key, &body);
        let mut headers: Vec<(&str, &str)> =
            self.config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        headers.push(("Idempotency-Key", &key));
        self.transport.post_json(&self.config.url, &headers, &body)
    }
}

/// A stable key for a batch of a mapping.
pub fn idempotency_key(mapping_key: &str, body: &[u8]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(mapping_key.as_bytes());
    h.update(&[0]);
    h.update(body);
    format!("{:032x}", h.digest128())
}

impl Destination for WebhookSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        crate::deliver_isolating(items, |batch| self.send(batch))
    }
}
