//! Alert state and history (SPEC §12): per (alert, subject) whether it is firing and the last
//! measured value; a firing/resolved history whose rows are also the notification outbox (a
//! notification that cannot be sent stays pending and is retried, never dropped).

use crate::{on, Result, StateStore};

/// Where an alert stands for one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// Firing now.
    pub firing: bool,
    /// Since when (RFC 3339), when firing.
    pub since: Option<String>,
    /// The last value measured (a rate in percent).
    pub value: Option<f64>,
}

/// Whether a history entry's notification was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Nothing to send: no webhook configured, or a recovery the alert does not send.
    None,
    /// Waiting for (another) attempt.
    Pending,
    /// The webhook accepted it.
    Sent,
}

impl Notify {
    pub(crate) fn from_i64(n: i64) -> Self {
        match n {
            1 => Self::Pending,
            2 => Self::Sent,
            _ => Self::None,
        }
    }
}

/// One firing or resolution.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertEvent {
    /// Entry number.
    pub id: i64,
    /// The alert's id.
    pub alert: String,
    /// What it is about: `model/destination`, `model`, or `stream/destination`.
    pub subject: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// When (RFC 3339).
    pub at: String,
    /// Ids, counts and rates (never a record value).
    pub detail: serde_json::Value,
    /// Whether its notification was sent.
    pub notify: Notify,
    /// Attempts to send it so far.
    pub attempts: i64,
    /// The last sending error (redacted by the transport).
    pub last_error: Option<String>,
}

/// A firing subject.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Firing {
    /// The alert's id.
    pub alert: String,
    /// What it is about.
    pub subject: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// The last value measured.
    pub value: Option<f64>,
}

/// A firing or a resolution to record.
#[derive(Debug, Clone, Copy)]
pub struct AlertChange<'a> {
    /// The alert's id.
    pub alert: &'a str,
    /// What it is about.
    pub subject: &'a str,
    /// Fired (`true`) or resolved.
    pub firing: bool,
    /// The value measured.
    pub value: Option<f64>,
    /// When (RFC 3339).
    pub at: &'a str,
    /// Ids, counts and rates for the history and the notification.
    pub detail: &'a serde_json::Value,
    /// Whether a notification is to be sent.
    pub notify: bool,
}

pub(crate) const EVENT_COLS: &str = "id, alert, subject, state, at, detail, notify, attempts, last_error";

impl StateStore {
    /// Where `alert` stands for `subject` (never evaluated: not firing, no value).
    pub fn alert_state(&self, alert: &str, subject: &str) -> Result<AlertState> {
        let row = on!(self, b => b.alert_state(alert, subject))?;
        Ok(row.unwrap_or(AlertState { firing: false, since: None, value: None }))
    }

    /// Stores the last measured value without a change of state.
    pub fn set_alert_value(&self, alert: &str, subject: &str, value: Option<f64>, now: &str) -> Result<()> {
        on!(self, b => b.set_alert_value(alert, subject, value, now))
    }

    /// Records a firing or a resolution, with its history entry, in one transaction. Returns
    /// the entry's id.
    pub fn record_alert(&mut self, c: &AlertChange<'_>) -> Result<i64> {
        on!(mut self, b => b.record_alert(c))
    }

    /// Subjects firing now, of alerts still configured or not (the caller filters), oldest first.
    pub fn firing_alerts(&self) -> Result<Vec<Firing>> {
        on!(self, b => b.firing_alerts())
    }

    /// The history, newest first.
    pub fn alert_history(&self, limit: usize) -> Result<Vec<AlertEvent>> {
        on!(self, b => b.alert_history(limit))
    }

    /// Notifications due for an attempt at `now_ms` (Unix milliseconds), oldest first.
    pub fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<AlertEvent>> {
        on!(self, b => b.due_notifications(now_ms, limit))
    }

    /// Notifications not sent yet.
    pub fn pending_notifications(&self) -> Result<i64> {
        on!(self, b => b.pending_notifications())
    }

    /// Marks a notification sent.
    pub fn notification_sent(&self, id: i64) -> Result<()> {
        on!(self, b => b.notification_sent(id))
    }

    /// Records a failed attempt; the next one is due at `next_at_ms`.
    pub fn notification_failed(&self, id: i64, error: &str, next_at_ms: i64) -> Result<()> {
        on!(self, b => b.notification_failed(id, error, next_at_ms))
    }

    /// Marks a notification as having nothing to send (its alert or webhook was removed).
    pub fn notification_dropped(&self, id: i64, why: &str) -> Result<()> {
        on!(self, b => b.notification_dropped(id, why))
    }
}
