//! Alerts (SPEC §12, docs/PRIVACY.md "Alerts"): evaluated after every Reverse ETL run (by
//! [`crate::sync_model`], so the CLI, the API and the scheduler all get them) and, for
//! streaming, periodically by `sluice serve` over a window of delivery statistics
//! ([`evaluate_stream`]). Each (alert, subject) fires once when its condition starts and
//! resolves once when it ends; the state and a firing/resolved history live in state.db, and
//! the history rows are the outbox of the webhook notifications ([`notify`]).
//!
//! Nothing here may fail a sync or stop a server: every error is logged and counted, and a
//! notification that cannot be sent stays pending for the next attempt. Alerts carry ids of
//! models, destinations and runs, counts and rates: never a record value, an event property or
//! an error text (a warehouse error can quote a value).

pub mod notify;

use crate::report::{MappingStatus, RunReport, RunStatus};
use serde_json::{json, Value};
use sluice_core::alerts::{check, transition, AlertConfig, AlertOn, Check, Sample, Transition};
use sluice_core::WorkspaceFile;
use sluice_state::{AlertChange, StateError, StateStore};
use std::collections::BTreeMap;

pub use notify::{send_due, Sent};

/// The subject of a mapping's runs.
pub fn mapping_subject(model: &str, destination: &str) -> String {
    format!("model/{model}/{destination}")
}

/// The subject of a model's whole runs (a run that could not complete).
pub fn model_subject(model: &str) -> String {
    format!("model/{model}")
}

/// The subject of a streaming destination.
pub fn stream_subject(destination: &str) -> String {
    format!("stream/{destination}")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Applies `check` to one subject: records a transition (with a pending notification when a
/// webhook is configured) or just the value measured. Returns the transition.
fn observe(
    store: &mut StateStore,
    file: &WorkspaceFile,
    alert: &AlertConfig,
    subject: &str,
    c: Check,
    mut detail: Value,
) -> Result<Option<Transition>, StateError> {
    let was = store.alert_state(&alert.id, subject)?;
    let at = now();
    let Some(t) = transition(was.firing, &c) else {
        store.set_alert_value(&alert.id, subject, c.value, &at)?;
        return Ok(None);
    };
    let firing = t == Transition::Fired;
    detail["alert"] = json!(alert.id);
    detail["on"] = json!(alert.on.as_str());
    detail["state"] = json!(if firing { "firing" } else { "resolved" });
    detail["subject"] = json!(subject);
    if alert.on != AlertOn::FailedSync {
        detail["threshold"] = json!(alert.threshold_or_default());
    }
    if let Some(v) = c.value {
        detail["value"] = json!(round(v));
    }
    if !firing {
        if let Some(since) = &was.since {
            detail["since"] = json!(since);
        }
    }
    let notify = alert.webhook(file).is_some() && (firing || alert.send_recovery);
    store.record_alert(&AlertChange {
        alert: &alert.id,
        subject,
        firing,
        value: c.value,
        at: &at,
        detail: &detail,
        notify,
    })?;
    crate::metrics::alert_transition(&alert.id, firing);
    tracing::warn!(alert = %alert.id, on = alert.on.as_str(), subject, state = if firing { "firing" } else { "resolved" },
                   value = c.value, "alert");
    Ok(Some(t))
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn enabled(file: &WorkspaceFile) -> impl Iterator<Item = &AlertConfig> {
    file.alerts.iter().filter(|a| a.enabled)
}

/// Evaluates the alerts of `report`'s model after a finished run, then sends due notifications.
/// Never fails: problems are logged.
pub fn after_run(store: &mut StateStore, file: &WorkspaceFile, report: &RunReport) {
    if let Err(e) = evaluate_run(store, file, report) {
        tracing::error!(model = %report.model, error = %e, "alerts could not be evaluated");
    }
    send_now(store, file);
}

/// Evaluates the `failed_sync` alerts of a model whose run could not even start (the SQL
/// failed, the warehouse is unreachable, a column is missing), then sends due notifications.
pub fn after_failed_start(store: &mut StateStore, file: &WorkspaceFile, model: &str) {
    let r = (|| {
        for a in enabled(file).filter(|a| a.on != AlertOn::WithheldRateJump && covers_run(a, file, model)) {
            let c = Check { holds: Some(true), value: None };
            observe(
                store,
                file,
                a,
                &model_subject(model),
                c,
                json!({"source": "reverse_etl", "model": model, "run_status": "error"}),
            )?;
        }
        Ok::<_, StateError>(())
    })();
    if let Err(e) = r {
        tracing::error!(model, error = %e, "alerts could not be evaluated");
    }
    send_now(store, file);
}

fn send_now(store: &mut StateStore, file: &WorkspaceFile) {
    let sent = send_due(store, file, chrono::Utc::now().timestamp_millis());
    if sent.failed > 0 {
        tracing::warn!(
            sent = sent.sent,
            failed = sent.failed,
            "alert notifications not sent; kept for a later attempt"
        );
    }
}

/// Whether `alert` watches whole runs of `model` (its destination, if any, is one of the
/// model's mappings: a run that fails fails every mapping).
fn covers_run(alert: &AlertConfig, file: &WorkspaceFile, model: &str) -> bool {
    alert.covers_model(model)
        && alert.destination.as_deref().is_none_or(|d| {
            file.models.iter().any(|m| m.id == model && m.mappings.iter().any(|mp| mp.destination == d))
        })
}

/// Evaluates every enabled alert that watches `report`'s model.
pub fn evaluate_run(store: &mut StateStore, file: &WorkspaceFile, report: &RunReport) -> Result<(), StateError> {
    let errored = report.status == RunStatus::Error;
    let base = |extra: Value| {
        let mut d = json!({"source": "reverse_etl", "model": report.model, "run_id": report.run_id,
                           "run_status": report.status.as_str()});
        if let (Value::Object(d), Value::Object(e)) = (&mut d, extra) {
            d.extend(e);
        }
        d
    };
    for a in enabled(file) {
        // the run as a whole: fires when it could not complete, resolves when one does
        if a.on != AlertOn::WithheldRateJump && covers_run(a, file, &report.model) {
            let subject = model_subject(&report.model);
            let c = Check { holds: Some(errored), value: None };
            // a delivery-rate alert resolves a whole-run failure it raised, never raises one
            // from a complete run
            if a.on == AlertOn::FailedSync || errored || store.alert_state(&a.id, &subject)?.firing {
                observe(store, file, a, &subject, c, base(json!({})))?;
            }
        }
        if errored {
            continue;
        }
        for m in &report.mappings {
            if matches!(m.status, MappingStatus::Disabled | MappingStatus::Stopped)
                || !a.covers_mapping(&report.model, &m.destination)
            {
                continue;
            }
            let sample = Sample {
                run_failed: false,
                total: m.extracted.saturating_sub(m.rejected),
                withheld: m.withheld_by_consent,
                delivered: m.delivered,
                failed: m.failed,
            };
            let subject = mapping_subject(&report.model, &m.destination);
            let previous = store.alert_state(&a.id, &subject)?.value;
            let c = check(a, &sample, previous);
            let mut counts = json!({"extracted": m.extracted, "rejected": m.rejected, "withheld_by_consent": m.withheld_by_consent,
                                    "delivered": m.delivered, "failed": m.failed});
            if a.on == AlertOn::WithheldRateJump {
                counts["withheld_by_category"] = json!(m.withheld_by_category);
            }
            let mut detail = base(json!({"counts": counts}));
            detail["destination"] = json!(m.destination);
            detail["mapping_status"] = json!(m.status.as_str());
            if let (AlertOn::WithheldRateJump, Some(p)) = (a.on, previous) {
                detail["previous_value"] = json!(round(p));
            }
            observe(store, file, a, &subject, c, detail)?;
        }
    }
    Ok(())
}

/// A streaming destination's statistics over one window (from stream.db's per-minute stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamWindow {
    /// Events stored for it (routed or not).
    pub received: u64,
    /// Events consent withheld from it.
    pub withheld: u64,
    /// Events it accepted.
    pub delivered: u64,
    /// Events whose delivery failed.
    pub failed: u64,
}

impl StreamWindow {
    fn sample(&self) -> Sample {
        Sample {
            run_failed: false,
            total: self.received,
            withheld: self.withheld,
            delivered: self.delivered,
            failed: self.failed,
        }
    }
}

/// Evaluates the streaming alerts. `windows(minutes, back)` gives each destination's
/// statistics over the `minutes` before now (`back` = 0) or the window before that (`back` = 1,
/// the previous window a withheld-rate jump compares with). Then sends due notifications.
/// Never fails: problems are logged.
pub fn evaluate_stream(
    store: &mut StateStore,
    file: &WorkspaceFile,
    windows: &mut dyn FnMut(u32, u32) -> Option<BTreeMap<String, StreamWindow>>,
) {
    let r = (|| {
        let mut cache: BTreeMap<(u32, u32), BTreeMap<String, StreamWindow>> = BTreeMap::new();
        let streaming: Vec<&str> = file
            .destinations
            .iter()
            .filter(|d| {
                d.enabled
                    && sluice_core::Catalog::kind(&sluice_destinations::REGISTRY, &d.kind).is_some_and(|k| k.events)
            })
            .map(|d| d.id.as_str())
            .collect();
        for a in enabled(file) {
            let w = a.window();
            for back in [0, 1] {
                if back == 1 && a.on != AlertOn::WithheldRateJump {
                    continue;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = cache.entry((w, back)) {
                    match windows(w, back) {
                        Some(m) => {
                            e.insert(m);
                        }
                        None => return Ok(()),
                    }
                }
            }
            for d in streaming.iter().filter(|d| a.covers_stream(d)) {
                let now = cache[&(w, 0)].get(*d).copied().unwrap_or_default();
                let previous = match a.on {
                    AlertOn::WithheldRateJump => {
                        cache[&(w, 1)].get(*d).copied().unwrap_or_default().sample().withheld_rate()
                    }
                    _ => None,
                };
                let c = check(a, &now.sample(), previous);
                let mut detail = json!({"source": "streaming", "destination": d, "window_minutes": w,
                    "counts": {"received": now.received, "withheld_by_consent": now.withheld, "delivered": now.delivered, "failed": now.failed}});
                if let Some(p) = previous {
                    detail["previous_value"] = json!(round(p));
                }
                observe(store, file, a, &stream_subject(d), c, detail)?;
            }
        }
        Ok::<_, StateError>(())
    })();
    if let Err(e) = r {
        tracing::error!(error = %e, "streaming alerts could not be evaluated");
    }
    send_now(store, file);
}

#[cfg(test)]
mod tests;
