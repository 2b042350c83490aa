use super::AmplitudeConfig;
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::saas::{self, all, form_value, Api, Limits, Op};
use crate::vendor::{basic, VendorClient};
use crate::{BuildContext, DeliveryError, Destination, Event, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};

/// Amplitude's limits: 2,000 events and under 1 MB per `/2/httpapi` request (else 413);
/// 100 user ids per deletion request.
pub const LIMITS: Limits = Limits { upserts: 2000, tracks: 2000, deletes: 100, bytes: 1_000_000 };

/// Records as `/identify` user properties (`$set`), `track` events through `/2/httpapi`,
/// deletes through the User Privacy API.
pub struct AmplitudeSink {
    config: AmplitudeConfig,
    client: VendorClient,
}

/// The record indices a 400 of `/2/httpapi` names, with why
/// (`events_with_invalid_fields`/`events_with_missing_fields`: field → indices; `silenced_events`).
fn named(v: &Value) -> Vec<RecordFailure> {
    let mut out = vec![];
    for (what, key) in [("invalid", "events_with_invalid_fields"), ("missing", "events_with_missing_fields")] {
        for (field, idx) in v[key].as_object().into_iter().flatten() {
            for i in idx.as_array().into_iter().flatten().filter_map(Value::as_u64) {
                out.push(RecordFailure::at(i as usize, format!("Amplitude: {what} field `{field}`")));
            }
        }
    }
    for i in v["silenced_events"].as_array().into_iter().flatten().filter_map(Value::as_u64) {
        out.push(RecordFailure::at(i as usize, "Amplitude: silenced event"));
    }
    out
}

impl AmplitudeSink {
    /// A sink for `config`.
    pub fn new(config: AmplitudeConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions::of(super::RATE));
        let client = VendorClient::new("amplitude", &opts, ctx, None);
        Self { config, client }
    }

    fn httpapi(&self, events: &[Value], retries: Retries) -> Vec<Outcome> {
        let body = json!({"api_key": self.config.api_key.expose(), "events": events, "options": {"min_id_length": 1}})
            .to_string();
        let url = format!("{}/2/httpapi", self.config.endpoint);
        let req = crate::vendor::Req {
            method: "POST",
            url: &url,
            headers: &[],
            body: Some(("application/json", body.as_bytes())),
        };
        let a = match self.client.call(req, retries, |a| a.status == 400) {
            Ok(a) if a.ok() => return all(events.len(), Ok(())),
            Ok(a) => a,
            Err(e) => return all(events.len(), Err(e)),
        };
        // a 400 rejects the request; the events it names are refused, the rest sent again once
        let failures = a.json().map(|v| named(&v)).unwrap_or_default();
        if failures.is_empty() {
            return all(events.len(), Err(crate::throttle::classify(&a, None)));
        }
        let mut out = outcomes(events.len(), &[], failures);
        let rest: Vec<usize> = (0..events.len()).filter(|i| out[*i].is_ok()).collect();
        if !rest.is_empty() {
            let again: Vec<Value> = rest.iter().map(|i| events[*i].clone()).collect();
            let retried = self.httpapi_plain(&again, retries);
            for i in rest {
                out[i] = retried.clone();
            }
        }
        out
    }

    fn httpapi_plain(&self, events: &[Value], retries: Retries) -> Result<(), DeliveryError> {
        let body = json!({"api_key": self.config.api_key.expose(), "events": events, "options": {"min_id_length": 1}});
        let url = format!("{}/2/httpapi", self.config.endpoint);
        self.client.post_json(&url, &[], body.to_string().as_bytes(), retries).map(|_| ())
    }
}

impl Api for AmplitudeSink {
    fn limits(&self) -> Limits {
        Limits { upserts: self.config.batch_size, tracks: self.config.batch_size, ..LIMITS }
    }

    fn upserts(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let url = format!("{}/identify", self.config.endpoint);
        saas::isolated(ops, retries, |ops| {
            let ids: Vec<Value> = ops
                .iter()
                .filter_map(|o| match o {
                    Op::Upsert { id, attrs } => Some(json!({"user_id": id, "user_properties": {"$set": attrs}})),
                    _ => None,
                })
                .collect();
            let body = format!(
                "api_key={}&identification={}",
                form_value(self.config.api_key.expose()),
                form_value(&Value::Array(ids).to_string())
            );
            let req = crate::vendor::Req {
                method: "POST",
                url: &url,
                headers: &[],
                body: Some(("application/x-www-form-urlencoded", body.as_bytes())),
            };
            self.client.call(req, retries, |_| false).map(|_| ())
        })
    }

    fn tracks(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let events: Vec<Value> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Track { id, name, props, time, insert_id } => Some(json!({
                    "user_id": id, "event_type": name, "event_properties": props,
                    "time": saas::millis(time.as_deref()), "insert_id": insert_id,
                })),
                _ => None,
            })
            .collect();
        self.httpapi(&events, retries)
    }

    fn deletes(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let ids: Vec<&str> = ops.iter().map(|o| o.id()).collect();
        let body = json!({"user_ids": ids, "requester": "sluice", "ignore_invalid_id": true, "delete_from_org": false});
        let url = format!("{}/api/2/deletions/users", self.config.deletion_endpoint);
        let auth = basic(self.config.api_key.expose(), self.config.secret_key.expose());
        let r =
            self.client.post_json(&url, &[("Authorization", &auth)], body.to_string().as_bytes(), retries).map(|_| ());
        all(ops.len(), r)
    }
}

impl Destination for AmplitudeSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        saas::run(self, saas::item_ops(items, self.config.user_id_field.as_deref()), Retries::Transport)
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let ops = events.iter().map(|e| saas::event_op(e, "amplitude", true)).collect();
        saas::run(self, ops, Retries::Caller)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
