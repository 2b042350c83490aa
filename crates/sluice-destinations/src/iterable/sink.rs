use super::IterableConfig;
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::saas::{self, all, path_segment, Api, Limits, Op};
use crate::vendor::{unreadable, Req, VendorClient};
use crate::{BuildContext, Destination, Event, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};

/// Iterable's limits: 1,000 users or events per bulk request; deletes are one user per call.
/// Iterable documents no byte limit: 4 MB is kept as a bound.
pub const LIMITS: Limits = Limits { upserts: 1000, tracks: 1000, deletes: 1, bytes: 4_000_000 };

/// Records through `users/bulkUpdate` (`dataFields`), `track` events through
/// `events/trackBulk`, deletes through `DELETE /api/users/byUserId/{userId}`.
pub struct IterableSink {
    config: IterableConfig,
    client: VendorClient,
}

/// The user ids a bulk answer lists as failed: `invalidUserIds` and every array of
/// `failedUpdates` (`notFoundUserIds`, `forgottenUserIds`, `conflictUserIds`, `invalidDataUserIds`...).
fn failed_ids(v: &Value) -> Vec<RecordFailure> {
    let mut out = vec![];
    let mut add = |key: &str, list: &Value| {
        for id in list.as_array().into_iter().flatten().filter_map(Value::as_str) {
            out.push(RecordFailure::of(id, format!("Iterable: {key}")));
        }
    };
    add("invalidUserIds", &v["invalidUserIds"]);
    for (k, list) in v["failedUpdates"].as_object().into_iter().flatten() {
        if k.ends_with("UserIds") {
            add(k, list);
        }
    }
    out
}

impl IterableSink {
    /// A sink for `config`.
    pub fn new(config: IterableConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions::of(super::RATE));
        let client = VendorClient::new("iterable", &opts, ctx, None);
        Self { config, client }
    }

    fn bulk(&self, path: &str, body: Value, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let url = format!("{}{path}", self.config.endpoint);
        let a = match self.client.post_json(
            &url,
            &[("Api-Key", self.config.api_key.expose())],
            body.to_string().as_bytes(),
            retries,
        ) {
            Ok(a) => a,
            Err(e) => return all(ops.len(), Err(e)),
        };
        let Some(v) = a.json() else { return all(ops.len(), Err(unreadable("Iterable bulk answer", &a))) };
        let ids: Vec<&str> = ops.iter().map(|o| o.id()).collect();
        let failures = failed_ids(&v);
        let fail_count = v["failCount"].as_u64().unwrap_or(0) as usize;
        let mut out = outcomes(ops.len(), &ids, failures);
        // failures counted but not named (e.g. by email only): the records cannot be told apart
        let named = out.iter().filter(|o| o.is_err()).count();
        if fail_count > named {
            let why = format!("Iterable counted {fail_count} failures but named {named}: {}", a.text());
            out = out.into_iter().map(|o| o.and(Err(crate::DeliveryError::rejected(why.clone())))).collect();
        }
        out
    }
}

impl Api for IterableSink {
    fn limits(&self) -> Limits {
        Limits { upserts: self.config.batch_size, tracks: self.config.batch_size, ..LIMITS }
    }

    fn upserts(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let users: Vec<Value> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Upsert { id, attrs } => {
                    Some(json!({"userId": id, "dataFields": attrs, "preferUserId": true, "mergeNestedObjects": false}))
                }
                _ => None,
            })
            .collect();
        self.bulk("/api/users/bulkUpdate", json!({ "users": users }), ops, retries)
    }

    fn tracks(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let events: Vec<Value> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Track { id, name, props, time, insert_id } => Some(json!({
                    "userId": id, "eventName": name, "dataFields": props, "id": insert_id,
                    "createdAt": saas::millis(time.as_deref()) / 1000,
                })),
                _ => None,
            })
            .collect();
        self.bulk("/api/events/trackBulk", json!({ "events": events }), ops, retries)
    }

    fn deletes(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        ops.iter()
            .map(|o| {
                let url = format!("{}/api/users/byUserId/{}", self.config.endpoint, path_segment(o.id()));
                let req = Req {
                    method: "DELETE",
                    url: &url,
                    headers: &[("Api-Key", self.config.api_key.expose())],
                    body: None,
                };
                self.client.call(req, retries, |_| false).map(|_| ())
            })
            .collect()
    }
}

impl Destination for IterableSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        saas::run(self, saas::item_ops(items, self.config.user_id_field.as_deref()), Retries::Transport)
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let ops = events.iter().map(|e| saas::event_op(e, "iterable", true)).collect();
        saas::run(self, ops, Retries::Caller)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
