//! Alerts in `sluice serve` (docs/PRIVACY.md "Alerts"): a supervised thread evaluates the
//! streaming alerts every round over each destination's recent statistics (stream.db) and sends
//! pending notifications (also those Reverse ETL runs left behind); `GET /api/v1/alerts` and the
//! web UI read the firing alerts and the history through [`view`].

use crate::delivery::supervisor::{keep_alive, Backoff};
use crate::metrics::Metrics;
use serde::Serialize;
use sluice_core::WorkspaceFile;
use sluice_engine::alerts::StreamWindow;
use sluice_state::StateLocation;
use sluice_state::{AlertEvent, Firing, StateStore};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default seconds between two rounds of the alert thread.
pub const DEFAULT_INTERVAL_SECS: u64 = 30;

/// Where the streaming statistics of the alerts come from: this process's `stream.db`, or the
/// shared tables of a deployment (`serve --bus`).
pub enum Stats {
    /// One process.
    Local(rusqlite::Connection),
    /// A deployment.
    Shared(postgres::Client),
}

impl Stats {
    fn window(&mut self, from: i64, to: i64) -> Result<BTreeMap<String, crate::store::WindowStats>, String> {
        match self {
            Stats::Local(c) => crate::store::window_stats(c, from, to).map_err(|e| e.to_string()),
            Stats::Shared(c) => sluice_stream::bus::pg::window_stats(c, from, to).map_err(|e| e.to_string()),
        }
    }
}

/// One round: the streaming alerts over the streaming statistics, then due notifications.
pub fn round(store: &mut StateStore, stream: &mut Stats, file: &WorkspaceFile, now_minute: i64) {
    let mut windows = |minutes: u32, back: u32| {
        let to = now_minute + 1 - i64::from(minutes) * i64::from(back);
        let from = to - i64::from(minutes);
        match stream.window(from, to) {
            Ok(m) => Some(
                m.into_iter()
                    .map(|(d, w)| {
                        let w = StreamWindow {
                            received: w.received,
                            withheld: w.withheld,
                            delivered: w.delivered,
                            failed: w.failed,
                        };
                        (d, w)
                    })
                    .collect::<BTreeMap<_, _>>(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "streaming statistics could not be read for alerts");
                None
            }
        }
    };
    sluice_engine::alerts::evaluate_stream(store, file, &mut windows);
}

/// Runs rounds every `interval` until `stop`, restarting whenever a round panics.
pub fn supervise(
    live: crate::Live,
    state: StateLocation,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shared: Option<sluice_state::PostgresState>,
) {
    keep_alive("alerts", &stop, &metrics, Backoff::default(), || {
        let mut store = StateStore::open_at(&state).map_err(|e| e.to_string())?;
        let mut stream = match &shared {
            Some(pg) => Stats::Shared(sluice_stream::bus::pg::connect(pg, "sluice-alerts").map_err(|e| e.to_string())?),
            None => Stats::Local(crate::store::open(&state.dir).map_err(|e| e.to_string())?),
        };
        let mut last: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            if last.is_none_or(|t| t.elapsed() >= interval) {
                last = Some(Instant::now());
                let file = live.load_full();
                round(&mut store, &mut stream, &file, chrono::Utc::now().timestamp() / 60);
            }
            std::thread::sleep(Duration::from_millis(200).min(interval));
        }
        Ok(())
    });
}

/// A configured alert as shown (its webhook `<set>`, never the URL).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShownAlert {
    /// Its id.
    pub id: String,
    /// `failed_sync`, `delivery_rate_below` or `withheld_rate_jump`.
    pub on: String,
    /// The model it watches, if one.
    pub model: Option<String>,
    /// The destination it watches, if one.
    pub destination: Option<String>,
    /// The threshold in percent (rates) or percentage points (jumps).
    pub threshold: Option<f64>,
    /// Streaming window in minutes.
    pub window_minutes: u32,
    /// Whether notifications have a webhook to go to.
    pub webhook: bool,
    /// Whether it is evaluated.
    pub enabled: bool,
}

/// Firing alerts and recent history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertsView {
    /// Subjects firing now (of configured, enabled alerts), oldest first.
    #[schema(value_type = Vec<Object>)]
    pub firing: Vec<Firing>,
    /// Firings and resolutions, newest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<AlertEvent>,
    /// Notifications waiting to be sent (their webhook did not accept them yet).
    pub pending_notifications: i64,
    /// The alerts configured.
    pub alerts: Vec<ShownAlert>,
}

/// Firing alerts, the last `limit` history entries and the configured alerts.
pub fn view(store: &StateStore, file: &WorkspaceFile, limit: usize) -> Result<AlertsView, sluice_state::StateError> {
    let on = |id: &str| file.alerts.iter().any(|a| a.id == id && a.enabled);
    Ok(AlertsView {
        firing: store.firing_alerts()?.into_iter().filter(|f| on(&f.alert)).collect(),
        history: store.alert_history(limit)?,
        pending_notifications: store.pending_notifications()?,
        alerts: file
            .alerts
            .iter()
            .map(|a| ShownAlert {
                id: a.id.clone(),
                on: a.on.as_str().into(),
                model: a.model.clone(),
                destination: a.destination.clone(),
                threshold: (a.on != sluice_core::alerts::AlertOn::FailedSync).then(|| a.threshold_or_default()),
                window_minutes: a.window(),
                webhook: a.webhook(file).is_some(),
                enabled: a.enabled,
            })
            .collect(),
    })
}
