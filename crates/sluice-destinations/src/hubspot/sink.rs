use super::HubspotConfig;
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::saas::{self, all, Api, Limits, Op};
use crate::vendor::{unreadable, VendorClient};
use crate::{BuildContext, DeliveryError, Destination, Event, Item, Outcome, RetryPolicy};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};

/// HubSpot's limits: 100 inputs per batch call; HubSpot documents no byte limit, 3 MB kept.
pub const LIMITS: Limits = Limits { upserts: 100, tracks: 100, deletes: 100, bytes: 3_000_000 };

/// Upserts contacts by `id_property`; deletes archive them after resolving their record ids.
pub struct HubspotSink {
    config: HubspotConfig,
    client: VendorClient,
    auth: String,
}

fn key(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The ids each 207 error names (`context.ids`, else `context.id`), with its message.
fn named_errors(v: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    for e in v["errors"].as_array().into_iter().flatten() {
        let msg =
            format!("HubSpot {}: {}", e["category"].as_str().unwrap_or("error"), e["message"].as_str().unwrap_or(""));
        let ctx = &e["context"];
        let ids = ctx["ids"].as_array().cloned().or_else(|| ctx["id"].as_array().cloned()).unwrap_or_default();
        for id in ids.iter().filter_map(Value::as_str) {
            out.push((key(id), msg.clone()));
        }
    }
    out
}

impl HubspotSink {
    /// A sink for `config`.
    pub fn new(config: HubspotConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions::of(super::RATE));
        let client = VendorClient::new("hubspot", &opts, ctx, None);
        let auth = format!("Bearer {}", config.access_token.expose());
        Self { config, client, auth }
    }

    fn post(&self, path: &str, body: &Value, retries: Retries) -> Result<crate::throttle::Answer, DeliveryError> {
        let url = format!("{}/crm/v3/objects/contacts/{path}", self.config.endpoint);
        self.client.post_json(&url, &[("Authorization", &self.auth)], body.to_string().as_bytes(), retries)
    }
}

impl Api for HubspotSink {
    fn limits(&self) -> Limits {
        Limits { upserts: self.config.batch_size, deletes: self.config.batch_size, ..LIMITS }
    }

    fn upserts(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        // one input per id (HubSpot refuses duplicates in a batch): later fields win
        let mut merged: BTreeMap<String, (String, Map<String, Value>)> = BTreeMap::new();
        for op in ops {
            if let Op::Upsert { id, attrs } = op {
                let e = merged.entry(key(id)).or_insert_with(|| (id.clone(), Map::new()));
                e.1.extend(attrs.clone());
            }
        }
        let inputs: Vec<Value> = merged
            .values()
            .map(|(id, props)| json!({"idProperty": self.config.id_property, "id": id, "properties": props}))
            .collect();
        let a = match self.post("batch/upsert", &json!({ "inputs": inputs }), retries) {
            Ok(a) => a,
            Err(e) => return all(ops.len(), Err(e)),
        };
        if a.status != 207 {
            return all(ops.len(), Ok(()));
        }
        let Some(v) = a.json() else { return all(ops.len(), Err(unreadable("HubSpot batch answer", &a))) };
        let confirmed: HashSet<String> = v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["properties"][&self.config.id_property].as_str().map(key))
            .collect();
        let named = named_errors(&v);
        let first = named.first().map(|(_, m)| m.clone()).unwrap_or_else(|| a.text());
        let keys: Vec<String> = ops.iter().map(|o| key(o.id())).collect();
        let ids: Vec<&str> = keys.iter().map(String::as_str).collect();
        let unconfirmed = keys
            .iter()
            .filter(|k| !confirmed.contains(*k) && !named.iter().any(|(n, _)| n == *k))
            .map(|k| RecordFailure::of(k.clone(), format!("not confirmed by HubSpot's 207 answer ({first})")));
        outcomes(
            ops.len(),
            &ids,
            named.iter().map(|(k, m)| RecordFailure::of(k.clone(), m.clone())).chain(unconfirmed).collect::<Vec<_>>(),
        )
    }

    fn tracks(&self, ops: &[&Op], _: Retries) -> Vec<Outcome> {
        all(ops.len(), Err(DeliveryError::rejected("hubspot takes no track events")))
    }

    fn deletes(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        // resolve record ids by id_property, then archive them; a contact HubSpot does not know
        // is not held there: nothing to delete
        let inputs: Vec<Value> = ops.iter().map(|o| json!({"id": o.id()})).collect();
        let body =
            json!({"idProperty": self.config.id_property, "inputs": inputs, "properties": [self.config.id_property]});
        let a = match self.post("batch/read", &body, retries) {
            Ok(a) => a,
            Err(e) => return all(ops.len(), Err(e)),
        };
        let Some(v) = a.json() else { return all(ops.len(), Err(unreadable("HubSpot batch/read answer", &a))) };
        let mut record_of: BTreeMap<String, String> = BTreeMap::new();
        for r in v["results"].as_array().into_iter().flatten() {
            if let (Some(rid), Some(p)) = (r["id"].as_str(), r["properties"][&self.config.id_property].as_str()) {
                record_of.insert(key(p), rid.to_string());
            }
        }
        let ids: Vec<Value> = record_of.values().map(|rid| json!({"id": rid})).collect();
        if ids.is_empty() {
            return all(ops.len(), Ok(()));
        }
        let r = self.post("batch/archive", &json!({ "inputs": ids }), retries).map(|_| ());
        ops.iter().map(|o| if record_of.contains_key(&key(o.id())) { r.clone() } else { Ok(()) }).collect()
    }
}

impl Destination for HubspotSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        saas::run(self, saas::item_ops(items, None), Retries::Transport)
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let ops = events.iter().map(|e| saas::event_op(e, "hubspot", false)).collect();
        saas::run(self, ops, Retries::Caller)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
