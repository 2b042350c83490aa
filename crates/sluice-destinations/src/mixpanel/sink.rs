use super::MixpanelConfig;
use crate::http::Retries;
use crate::partial::{outcomes, RecordFailure};
use crate::saas::{self, all, Api, Limits, Op};
use crate::vendor::{basic, unreadable, Req, VendorClient};
use crate::{BuildContext, DeliveryError, Destination, Event, Item, Outcome, RetryPolicy};
use serde_json::{json, Value};

/// Mixpanel's limits: 2,000 updates or events and 10 MB (uncompressed) per request (else 413).
pub const LIMITS: Limits = Limits { upserts: 2000, tracks: 2000, deletes: 2000, bytes: 10_000_000 };

/// Records as `/engage` `$set` profile updates, deletes as `$delete`, `track` events through
/// `/import?strict=1`.
pub struct MixpanelSink {
    config: MixpanelConfig,
    client: VendorClient,
    import_auth: String,
}

impl MixpanelSink {
    /// A sink for `config`.
    pub fn new(config: MixpanelConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions::of(super::RATE));
        let client = VendorClient::new("mixpanel", &opts, ctx, None);
        let import_auth = match &config.service_account {
            Some(sa) => {
                let (u, p) = sa.expose().split_once(':').unwrap_or((sa.expose(), ""));
                basic(u, p)
            }
            None => basic(config.project_token.expose(), ""),
        };
        Self { config, client, import_auth }
    }

    /// `/engage?verbose=1`: answers 200 even when an update is refused; the body says
    /// `{"status":1}` or `{"status":0,"error":..}`.
    fn engage(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let url = format!("{}/engage?verbose=1", self.config.endpoint);
        let token = self.config.project_token.expose();
        saas::isolated(ops, retries, |ops| {
            let updates: Vec<Value> = ops
                .iter()
                .map(|o| match o {
                    Op::Upsert { id, attrs } => json!({"$token": token, "$distinct_id": id, "$set": attrs}),
                    _ => json!({"$token": token, "$distinct_id": o.id(), "$delete": "null", "$ignore_alias": false}),
                })
                .collect();
            let body = Value::Array(updates).to_string();
            let a = self.client.post_json(&url, &[], body.as_bytes(), retries)?;
            let Some(v) = a.json() else { return Err(unreadable("Mixpanel engage answer", &a)) };
            if v["status"] == 1 {
                Ok(())
            } else {
                Err(DeliveryError::rejected(format!(
                    "Mixpanel: {}",
                    v["error"].as_str().unwrap_or("the update was refused")
                )))
            }
        })
    }
}

impl Api for MixpanelSink {
    fn limits(&self) -> Limits {
        Limits {
            upserts: self.config.batch_size,
            tracks: self.config.batch_size,
            deletes: self.config.batch_size,
            ..LIMITS
        }
    }

    fn upserts(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        self.engage(ops, retries)
    }

    fn tracks(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        let events: Vec<Value> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Track { id, name, props, time, insert_id } => {
                    let mut p = props.clone();
                    p.insert("time".into(), json!(saas::millis(time.as_deref())));
                    p.insert("distinct_id".into(), json!(id));
                    p.insert("$insert_id".into(), json!(insert_id));
                    Some(json!({"event": name, "properties": p}))
                }
                _ => None,
            })
            .collect();
        let mut url = format!("{}/import?strict=1", self.config.endpoint);
        if let Some(p) = &self.config.project_id {
            url.push_str(&format!("&project_id={p}"));
        }
        let body = Value::Array(events).to_string();
        let req = Req {
            method: "POST",
            url: &url,
            headers: &[("Authorization", &self.import_auth)],
            body: Some(("application/json", body.as_bytes())),
        };
        // 400 with failed_records is a partial success: the others were imported
        let a = match self.client.call(req, retries, |a| a.status == 400) {
            Ok(a) if a.ok() => return all(ops.len(), Ok(())),
            Ok(a) => a,
            Err(e) => return all(ops.len(), Err(e)),
        };
        let v = a.json().unwrap_or_default();
        let Some(failed) = v["failed_records"].as_array().filter(|f| !f.is_empty()) else {
            return all(ops.len(), Err(crate::throttle::classify(&a, None)));
        };
        outcomes(
            ops.len(),
            &[],
            failed.iter().filter_map(|f| {
                let i = f["index"].as_u64()? as usize;
                Some(RecordFailure::at(
                    i,
                    format!(
                        "Mixpanel: {} ({})",
                        f["message"].as_str().unwrap_or("invalid"),
                        f["field"].as_str().unwrap_or("")
                    ),
                ))
            }),
        )
    }

    fn deletes(&self, ops: &[&Op], retries: Retries) -> Vec<Outcome> {
        self.engage(ops, retries)
    }
}

impl Destination for MixpanelSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        saas::run(self, saas::item_ops(items, self.config.user_id_field.as_deref()), Retries::Transport)
    }

    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        let ops = events.iter().map(|e| saas::event_op(e, "mixpanel", true)).collect();
        saas::run(self, ops, Retries::Caller)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
