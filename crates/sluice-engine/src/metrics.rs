//! Every metric of Reverse ETL, declared in one place. The engine runs in the CLI, the
//! scheduler and API-started syncs alike, so its metrics live in one process-wide set that
//! `sluice serve` registers beside the streaming ones (exported at `/metrics`).

use crate::report::{RunReport, RunStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

/// A model's sync run and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// Model id.
    pub model: String,
    /// `ok`, `partial`, `failed` or `error`.
    pub status: String,
}

/// Records of a model to a destination, by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    /// Model id.
    pub model: String,
    /// Destination id.
    pub destination: String,
    /// `delivered`, `withheld_by_consent`, `failed_retryable`, `failed_permanent`, `rejected`
    /// (bad id), `deletes_held_back` or `deleted_on_withdrawal` (R13).
    pub outcome: &'static str,
}

/// An alert's transitions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// Alert id.
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
}

/// Alert notifications by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `sent`, `failed` (kept for a later attempt) or `dropped` (its alert or webhook removed).
    pub outcome: &'static str,
}

/// The engine's metrics.
pub struct Metrics {
    /// Alert transitions, by alert and state.
    pub alerts: Family<AlertLabels, Counter>,
    /// Alert notification attempts, by outcome.
    pub alert_notifications: Family<NotificationLabels, Counter>,
    /// Sync run durations in seconds, by model and status.
    pub sync_seconds: Family<RunLabels, Histogram>,
    /// Records by model, destination and outcome.
    pub records: Family<RecordLabels, Counter>,
}

fn histogram() -> Histogram {
    // 10 ms .. ~1.5 h
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.01, 3.0, 14))
}

/// The process-wide set.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    alerts: Family::default(),
    alert_notifications: Family::default(),
    sync_seconds: Family::new_with_constructor(histogram),
    records: Family::default(),
});

/// Registers the engine's metrics in `r` (`sluice serve`'s `/metrics`).
pub fn register(r: &mut Registry) {
    r.register("sluice_alerts", "Alert transitions by alert and state (firing, resolved)", METRICS.alerts.clone());
    r.register(
        "sluice_alert_notifications",
        "Alert notification attempts by outcome (sent, failed: kept for a later attempt, dropped)",
        METRICS.alert_notifications.clone(),
    );
    r.register("sluice_sync_duration_seconds", "Reverse ETL sync run duration", METRICS.sync_seconds.clone());
    r.register(
        "sluice_sync_records",
        "Reverse ETL records by model, destination and outcome (withheld_by_consent: FILTERED_BY_END_USER_CONSENT)",
        METRICS.records.clone(),
    );
}

/// Counts a finished run.
pub fn record_run(report: &RunReport) {
    if report.status == RunStatus::Running {
        return;
    }
    let labels = RunLabels { model: report.model.clone(), status: report.status.as_str().to_string() };
    METRICS.sync_seconds.get_or_create(&labels).observe(report.duration_ms as f64 / 1000.0);
    for m in &report.mappings {
        for (outcome, n) in [
            ("delivered", m.delivered),
            ("withheld_by_consent", m.withheld_by_consent),
            ("failed_retryable", m.failed_retryable),
            ("failed_permanent", m.failed_permanent),
            ("rejected", m.rejected),
            ("deletes_held_back", m.deletes_held_back),
            ("deleted_on_withdrawal", m.deleted_on_withdrawal),
        ] {
            if n > 0 {
                let l = RecordLabels { model: report.model.clone(), destination: m.destination.clone(), outcome };
                METRICS.records.get_or_create(&l).inc_by(n);
            }
        }
    }
}

/// The engine's metrics alone, as Prometheus text (for tests and `sluice` commands).
pub fn render() -> String {
    let mut r = Registry::default();
    register(&mut r);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r).expect("writing to a String does not fail");
    out
}

/// Counts an alert's transition.
pub fn alert_transition(alert: &str, firing: bool) {
    let state = if firing { "firing" } else { "resolved" };
    METRICS.alerts.get_or_create(&AlertLabels { alert: alert.to_string(), state }).inc();
}

/// Counts a notification attempt.
pub fn alert_notification(outcome: &'static str) {
    METRICS.alert_notifications.get_or_create(&NotificationLabels { outcome }).inc();
}
