use super::BrazeConfig;
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::saas::{self, all, Api, Limits, Op};
use crate::vendor::{unreadable, VendorClient};
use crate::{BuildContext, Destination, Event, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};

/// Braze's limits: 75 attributes or events per `/users/track` request, 50 external ids per
/// `/users/delete`; Braze documents no byte limit, 4 MB is kept as a bound.
pub const LIMITS: Limits = Limits { upserts: 75, tracks: 75, deletes: 50, bytes: 4_000_000 };

/// Sends records as `/users/track` attributes, `track` events as its events, deletes through
/// `/users/delete`.
pub struct BrazeSink {
    config: BrazeConfig,
    client: VendorClient,
    auth: String,
}

impl BrazeSink {
    /// A sink for `config`.
    pub fn new(config: BrazeConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions::of(super::RATE));
        let client = VendorClient::new("braze", &opts, ctx, None);
        let auth = format!("Bearer {}", config.api_key.expose());
        Self { config, client, auth }
    }

    fn track(&self, array: &str, entries: Vec<Value>, retries: Retries) -> Vec<Outcome> {
        let n = entries.len();
        let body = json!({ array: entries }).to_string();
        let batch = if n > 1 { "true" } else { "false" };
        let url = format!("{}/users/track", self.config.endpoint);
        let headers = [("Authorization", self.auth.as_str()), ("X-Braze-Batch", batch)];
        let a = match self.client.post_json(&url, &headers, body.as_bytes(), retries) {
            Ok(a) => a,
            Err(e) => return all(n, Err(e)),
        };
        // 2xx: {"message":"success", "errors":[{"type","input_array","index"}]}; a fatal error
        // has another message
        let Some(v) = a.json() else { return all(n, Err(unreadable("Braze answer", &a))) };
        let message = v["message"].as_str().unwrap_or("");
        let errors = v["errors"].as_array().cloned().unwrap_or_default();
        if message != "success" && errors.is_empty() {
            return all(n, Err(crate::DeliveryError::rejected(format!("Braze: {}", a.text()))));
        }
        outcomes(
            n,
            &[],
            errors.iter().filter(|e| e["input_array"].as_str().is_none_or(|x| x == array)).filter_map(|e| {
                let i = e["index"].as_u64()? as usize;
                Some(RecordFailure::at(i, format!("Braze: {}", e["type"].as_str().unwrap_or("rejected"))))
            }),
        )
    }
}

impl Api for BrazeSink {
    fn limits(&self) -> Limits {
        Limits { upserts: self.config.batch_size, ..LIMITS }
    }

    fn upserts(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let entries = ops
            .iter()
            .filter_map(|o| match o {
                Op::Upsert { id, attrs } => {
                    let mut m = attrs.clone();
                    m.insert("external_id".into(), json!(id));
                    Some(Value::Object(m))
                }
                _ => None,
            })
            .collect();
        self.track("attributes", entries, retries)
    }

    fn tracks(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let entries = ops
            .iter()
            .filter_map(|o| match o {
                Op::Track { id, name, props, time, .. } => Some(json!({
                    "external_id": id, "name": name, "properties": props,
                    "time": time.clone().unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
                })),
                _ => None,
            })
            .collect();
        self.track("events", entries, retries)
    }

    fn deletes(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let ids: Vec<&str> = ops.iter().map(|o| o.id()).collect();
        let body = json!({ "external_ids": ids }).to_string();
        let url = format!("{}/users/delete", self.config.endpoint);
        let r = self.client.post_json(&url, &[("Authorization", &self.auth)], body.as_bytes(), retries).map(|_| ());
        all(ops.len(), r)
    }
}

impl Destination for BrazeSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        saas::run(self, saas::item_ops(items, self.config.user_id_field.as_deref()), Retries::Transport)
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let ops = events.iter().map(|e| saas::event_op(e, "braze", true)).collect();
        saas::run(self, ops, Retries::Caller)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
