use super::WebhookConfig;
use crate::error::parse_retry_after;
use crate::{BuildContext, DeliveryError, Destination, Item, Outcome, RetryPolicy};
use std::time::Duration;

/// POSTs batches; a 2xx means every item was accepted.
pub struct WebhookSink {
    config: WebhookConfig,
    agent: ureq::Agent,
    policy: RetryPolicy,
    mapping_key: String,
}

impl WebhookSink {
    /// A sink for `config`.
    pub fn new(config: WebhookConfig, ctx: &BuildContext) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs_f64(config.timeout_secs))
            .redirects(0)
            .build();
        let policy = config.retry_policy();
        Self { config, agent, policy, mapping_key: ctx.mapping_key.clone() }
    }

    /// One request; the idempotency key is derived from the body, so a retry of the same batch
    /// carries the same key.
    fn post(&self, body: &[u8], key: &str) -> Result<(), DeliveryError> {
        let mut req = self.agent.post(&self.config.url).set("Content-Type", "application/json");
        for (k, v) in &self.config.headers {
            req = req.set(k, v);
        }
        match req.set("Idempotency-Key", key).send_bytes(body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, resp)) => {
                let ra = resp.header("Retry-After").and_then(parse_retry_after);
                let text = resp.into_string().unwrap_or_default();
                Err(DeliveryError::from_status(status, &text, ra))
            }
            Err(ureq::Error::Transport(t)) => Err(DeliveryError::external(format!("{}: {t}", self.config.url))),
        }
    }

    fn send(&self, items: &[Item]) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&serde_json::json!({ "batch": items })).map_err(|e| DeliveryError {
            class: crate::ErrorClass::Internal,
            retryable: false,
            message: format!("cannot encode batch: {e}"),
            retry_after: None,
        })?;
        let key = idempotency_key(&self.mapping_key, &body);
        self.policy.run(|_| self.post(&body, &key))
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
        match self.send(items) {
            Ok(()) => items.iter().map(|_| Ok(())).collect(),
            // a permanent rejection of a batch: find which records the receiver refuses
            Err(e) if !e.retryable && items.len() > 1 => {
                items.iter().map(|item| self.send(std::slice::from_ref(item))).collect()
            }
            Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}
