use super::CustomerIoConfig;
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::vendor::{basic, unreadable, Req, VendorClient};
use crate::{BuildContext, DeliveryError, Destination, Event, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};
use sluice_core::Change;

/// Customer.io's documented limit of one request body (500 KB).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Customer.io's documented limit of one item of a batch (32 KB).
pub const MAX_ITEM_BYTES: usize = 32 * 1024;
/// Most attributes of one `identify`.
pub const MAX_ATTRIBUTES: usize = 300;
/// Longest attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME: usize = 150;

/// Sends records and events to `POST {endpoint}/api/v2/batch`.
pub struct CustomerIoSink {
    config: CustomerIoConfig,
    client: VendorClient,
    url: String,
    auth: String,
}

impl CustomerIoSink {
    /// A sink for `config`.
    pub fn new(config: CustomerIoConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions {
            http: Default::default(),
            rate: crate::ratelimit::Rate::new(super::config::RATE, None).expect("the vendor rate is valid"),
        });
        let client = VendorClient::new("customerio", &opts, ctx, None);
        let url = format!("{}/api/v2/batch", config.endpoint);
        let auth = basic(&config.site_id, config.api_key.expose());
        Self { config, client, url, auth }
    }

    /// The batch entry of a record.
    pub fn entry(&self, item: &Item) -> Result<Value, DeliveryError> {
        let key = self.config.identifier.key();
        let data = item.data_value();
        let id = match &self.config.id_field {
            None => item.id.clone(),
            Some(f) if item.action == Change::Deleted => {
                return Err(DeliveryError::rejected(format!(
                    "not supported: `id_field` names the mapped field `{f}` and a deleted record's fields are gone, so \
                     its Customer.io identifier is unknown (record {})",
                    item.id
                )))
            }
            Some(f) => crate::audience::field_text(&data, f).ok_or_else(|| {
                DeliveryError::rejected(format!("the mapped field `{f}` (id_field) is empty or missing"))
            })?,
        };
        if item.action == Change::Deleted {
            return Ok(json!({"type": "person", "action": "delete", "identifiers": {key: id}}));
        }
        let attributes = match data {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(DeliveryError::rejected(format!(
                "{} attributes: Customer.io takes at most {MAX_ATTRIBUTES} per identify",
                attributes.len()
            )));
        }
        if let Some(k) = attributes.keys().find(|k| k.len() > MAX_ATTRIBUTE_NAME) {
            return Err(DeliveryError::rejected(format!(
                "attribute name `{}…` is {} bytes: Customer.io takes at most {MAX_ATTRIBUTE_NAME}",
                crate::error::excerpt(k, 40),
                k.len()
            )));
        }
        Ok(json!({"type": "person", "action": "identify", "identifiers": {key: id}, "attributes": attributes}))
    }

    /// The batch entry of a streamed event: `identify`, `track` (an `event` action), `page`
    /// and `screen`; other calls are refused with the reason.
    pub fn event_entry(&self, event: &Event) -> Result<Value, DeliveryError> {
        let e: Value = serde_json::from_str(&event.body)
            .map_err(|err| DeliveryError::rejected(format!("event {} is not JSON: {err}", event.seq)))?;
        let kind = e["type"].as_str().unwrap_or_default();
        let user = e["userId"].as_str().filter(|s| !s.is_empty());
        let anon = e["anonymousId"].as_str().filter(|s| !s.is_empty());
        let mut out = json!({"type": "person"});
        match (user, anon) {
            (Some(u), _) => out["identifiers"] = json!({"id": u}),
            (None, Some(a)) if kind != "identify" => out["anonymous_id"] = json!(a),
            _ => {
                return Err(DeliveryError::rejected(format!(
                    "a `{kind}` event without userId cannot be sent to Customer.io (identify needs a userId)"
                )))
            }
        }
        let obj = |v: &Value| if v.is_object() { v.clone() } else { json!({}) };
        match kind {
            "identify" => {
                out["action"] = json!("identify");
                out["attributes"] = obj(&e["traits"]);
            }
            "track" => {
                let name = e["event"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                    DeliveryError::rejected("a track event without an `event` name cannot be sent to Customer.io")
                })?;
                out["action"] = json!("event");
                out["name"] = json!(name);
                out["attributes"] = obj(&e["properties"]);
            }
            "page" | "screen" => {
                let name = e["name"].as_str().or(e["properties"]["url"].as_str()).unwrap_or(kind);
                out["action"] = json!(kind);
                out["name"] = json!(name);
                out["attributes"] = obj(&e["properties"]);
            }
            other => {
                return Err(DeliveryError::rejected(format!(
                    "not supported: Customer.io's Track API has no `{other}` call for people"
                )))
            }
        }
        if let Some(ts) = e["timestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            out["timestamp"] = json!(ts.timestamp());
        }
        Ok(out)
    }

    /// Entries in requests of at most [`MAX_REQUEST_BYTES`]; an entry over
    /// [`MAX_ITEM_BYTES`] is refused for good. After a retryable failure nothing more is sent
    /// when `stop` (streaming), and later entries carry that failure.
    fn deliver_entries(
        &self,
        entries: Vec<Result<Value, DeliveryError>>,
        retries: Retries,
        stop: bool,
    ) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = Vec::with_capacity(entries.len());
        let mut texts: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            match e.and_then(|v| crate::http::encode(&v)) {
                Ok(t) if t.len() > MAX_ITEM_BYTES => {
                    out.push(Err(DeliveryError::rejected(format!(
                        "the item is {} bytes: Customer.io takes at most 32 KB per item",
                        t.len()
                    ))));
                }
                Ok(t) => {
                    texts.push((i, t));
                    out.push(Ok(()));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        let mut chunks: Vec<Vec<(usize, Vec<u8>)>> = Vec::new();
        let mut size = usize::MAX;
        for t in texts {
            if size.saturating_add(t.1.len() + 1) > MAX_REQUEST_BYTES {
                chunks.push(Vec::new());
                size = 12;
            }
            size += t.1.len() + 1;
            if let Some(c) = chunks.last_mut() {
                c.push(t);
            }
        }
        let mut stopped: Option<DeliveryError> = None;
        for chunk in chunks {
            for (i, r) in self.send_isolating(&chunk, retries, stop, &mut stopped) {
                out[i] = r;
            }
        }
        out
    }

    /// Sends a chunk; a request Customer.io refuses whole (400) is sent again entry by entry.
    fn send_isolating(
        &self,
        chunk: &[(usize, Vec<u8>)],
        retries: Retries,
        stop: bool,
        stopped: &mut Option<DeliveryError>,
    ) -> Vec<(usize, Outcome)> {
        if let Some(e) = stopped {
            return chunk.iter().map(|(i, _)| (*i, Err(e.clone()))).collect();
        }
        let results = match self.post(chunk, retries) {
            Ok(per) => per,
            Err(e) if !e.retryable && chunk.len() > 1 => {
                let mut v = Vec::with_capacity(chunk.len());
                for one in chunk {
                    v.extend(self.send_isolating(std::slice::from_ref(one), retries, stop, stopped));
                }
                return v;
            }
            Err(e) => chunk.iter().map(|_| Err(e.clone())).collect(),
        };
        if stop {
            *stopped = results.iter().find_map(|r| r.as_ref().err().filter(|e| e.retryable).cloned());
        }
        chunk.iter().map(|(i, _)| *i).zip(results).collect()
    }

    /// One request: `{"batch": [...]}`; a 207 names the entries refused by `batch_index`.
    fn post(&self, chunk: &[(usize, Vec<u8>)], retries: Retries) -> Result<Vec<Outcome>, DeliveryError> {
        let body = crate::http::event_batch(chunk.iter().map(|(_, t)| std::str::from_utf8(t).unwrap_or("null")));
        let headers = [("Authorization", self.auth.as_str())];
        let req = Req { method: "POST", url: &self.url, headers: &headers, body: Some(("application/json", &body)) };
        let a = self.client.call(req, retries, |a| a.status == 401 || a.status == 403)?;
        if a.status == 401 || a.status == 403 {
            // the credentials' fault, not the records': retryable (they wait for a fixed key),
            // and never split record by record
            return Err(DeliveryError {
                class: crate::ErrorClass::User,
                retryable: true,
                message: format!("HTTP {}: Customer.io refused the site id / API key: {}", a.status, a.text()),
                retry_after: None,
            });
        }
        if a.status != 207 {
            return Ok(chunk.iter().map(|_| Ok(())).collect());
        }
        let v = a.json().filter(|v| v["errors"].is_array()).ok_or_else(|| unreadable("207 body with `errors`", &a))?;
        let failures = v["errors"].as_array().into_iter().flatten().filter_map(|e| {
            let i = e["batch_index"].as_u64()? as usize;
            let mut reason = [&e["reason"], &e["field"], &e["message"]]
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(": ");
            if reason.is_empty() {
                reason = e.to_string();
            }
            Some(RecordFailure::at(i, format!("Customer.io: {reason}")))
        });
        Ok(outcomes(chunk.len(), &[], failures))
    }
}

impl Destination for CustomerIoSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        let entries = items.iter().map(|i| self.entry(i)).collect();
        self.deliver_entries(entries, Retries::Transport, false)
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let entries = events.iter().map(|e| self.event_entry(e)).collect();
        self.deliver_entries(entries, Retries::Caller, true)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
