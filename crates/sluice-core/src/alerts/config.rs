//! The `alerts` section of the workspace file and its checks (no I/O; every error names the
//! field at fault, e.g. `alerts[0] (sync-failed).threshold`).

use crate::config::WorkspaceFile;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOn {
    /// A sync failed: a Reverse ETL run that could not complete (bad SQL, warehouse gone) or a
    /// mapping that delivered nothing of what it sent; a streaming destination that accepted
    /// nothing and failed something over the window.
    FailedSync,
    /// `delivered / (delivered + failed)` fell under `threshold` percent (default 95).
    DeliveryRateBelow,
    /// `withheld / extracted` (Reverse ETL) or `withheld / received` (streaming) rose by more than
    /// `threshold` percentage points (default 20) since the mapping's previous run, or the
    /// destination's previous window.
    WithheldRateJump,
}

impl AlertOn {
    /// The name written in the workspace file and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedSync => "failed_sync",
            Self::DeliveryRateBelow => "delivery_rate_below",
            Self::WithheldRateJump => "withheld_rate_jump",
        }
    }
}

/// One alert: a condition on the sync runs of a model or the deliveries of a destination, sent to
/// a Slack-compatible webhook and shown in the UI. It fires once when its condition starts and
/// resolves when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Unique id of the alert (letters, digits, `_`, `.`, `-`).
    pub id: String,
    /// The condition: `failed_sync`, `delivery_rate_below` or `withheld_rate_jump`.
    pub on: AlertOn,
    /// Only runs of this model (absent: every model; and, unless `destination` is set, every
    /// streaming destination too). Setting it makes the alert Reverse ETL only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Only this destination (absent: every destination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Percent (0–100): the delivery rate under which `delivery_rate_below` fires (default 95),
    /// or the rise in percentage points over which `withheld_rate_jump` fires (default 20).
    /// Not taken by `failed_sync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Streaming: the minutes of delivery outcomes and routing decisions judged (1–1440,
    /// default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
    /// Where notifications go (a Slack incoming webhook or any endpoint taking its JSON): a
    /// credential, sealed at rest and never shown. Absent: `workspace.alert_webhook`; neither:
    /// the alert is shown in the UI and the API only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<Secret>,
    /// Whether a "resolved" notification is sent when the condition ends (default true).
    #[serde(default = "yes")]
    pub send_recovery: bool,
    /// A disabled alert is not evaluated (its state is kept).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Default window of streaming alerts, in minutes.
pub const DEFAULT_WINDOW_MINUTES: u32 = 15;
/// Longest window of streaming alerts, in minutes (one day).
pub const MAX_WINDOW_MINUTES: u32 = 1440;

impl AlertConfig {
    /// The threshold, or the condition's default.
    pub fn threshold_or_default(&self) -> f64 {
        self.threshold.unwrap_or(match self.on {
            AlertOn::FailedSync => 0.0,
            AlertOn::DeliveryRateBelow => 95.0,
            AlertOn::WithheldRateJump => 20.0,
        })
    }

    /// The streaming window in minutes.
    pub fn window(&self) -> u32 {
        self.window_minutes.unwrap_or(DEFAULT_WINDOW_MINUTES).clamp(1, MAX_WINDOW_MINUTES)
    }

    /// Whether it watches the mapping `model` → `destination`.
    pub fn covers_mapping(&self, model: &str, destination: &str) -> bool {
        self.model.as_deref().is_none_or(|m| m == model) && self.destination.as_deref().is_none_or(|d| d == destination)
    }

    /// Whether it watches a whole run of `model` (a run that could not complete).
    pub fn covers_model(&self, model: &str) -> bool {
        self.model.as_deref().is_none_or(|m| m == model)
    }

    /// Whether it watches the streaming deliveries of `destination`.
    pub fn covers_stream(&self, destination: &str) -> bool {
        self.model.is_none() && self.destination.as_deref().is_none_or(|d| d == destination)
    }

    /// The webhook notifications go to: its own, else the workspace's.
    pub fn webhook<'a>(&'a self, file: &'a WorkspaceFile) -> Option<&'a Secret> {
        self.webhook_url.as_ref().or(file.workspace.alert_webhook.as_ref()).filter(|s| !s.is_empty())
    }
}

fn check_webhook(at: String, url: &Secret, err: &mut dyn FnMut(String, String)) {
    let v = url.expose();
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        // the value is a credential: never repeated in the error
        _ => err(at, "must be an http(s) URL with a host (the value is not shown: it is a credential)".into()),
    }
}

/// Checks the `alerts` section and `workspace.alert_webhook`, reporting each problem with the
/// field at fault.
pub fn validate_alerts(file: &WorkspaceFile, err: &mut dyn FnMut(String, String)) {
    if let Some(w) = &file.workspace.alert_webhook {
        check_webhook("workspace.alert_webhook".into(), w, err);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in file.alerts.iter().enumerate() {
        let at = crate::validate::label("alerts", i, &a.id);
        if let Some(why) = crate::validate::check_id(&a.id) {
            err(format!("{at}.id"), format!("alert id {why}"));
        } else if !seen.insert(a.id.as_str()) {
            err(format!("{at}.id"), format!("duplicate alert id `{}`", a.id));
        }
        if let Some(m) = &a.model {
            match file.models.iter().find(|x| &x.id == m) {
                None => err(format!("{at}.model"), format!("unknown model `{m}`")),
                Some(model) => {
                    if let Some(d) = &a.destination {
                        if !model.mappings.iter().any(|mp| &mp.destination == d) {
                            err(format!("{at}.destination"), format!("model `{m}` has no mapping to `{d}`"));
                        }
                    }
                }
            }
        }
        if let Some(d) = &a.destination {
            if !file.destinations.iter().any(|x| &x.id == d) {
                err(format!("{at}.destination"), format!("unknown destination `{d}`"));
            }
        }
        match (a.on, a.threshold) {
            (AlertOn::FailedSync, Some(_)) => {
                err(format!("{at}.threshold"), "`failed_sync` takes no threshold".into());
            }
            (_, Some(t)) if !t.is_finite() || !(0.0..=100.0).contains(&t) => {
                err(format!("{at}.threshold"), format!("must be a percentage between 0 and 100 (it is {t})"));
            }
            _ => {}
        }
        if let Some(w) = a.window_minutes {
            if w == 0 || w > MAX_WINDOW_MINUTES {
                err(format!("{at}.window_minutes"), format!("must be between 1 and {MAX_WINDOW_MINUTES} (it is {w})"));
            }
        }
        if let Some(w) = &a.webhook_url {
            check_webhook(format!("{at}.webhook_url"), w, err);
        }
    }
}
