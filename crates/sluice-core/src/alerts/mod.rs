//! Alerts (SPEC §12): which conditions of a model's sync runs or a destination's deliveries
//! raise an alert, and when it fires and resolves. Pure: the engine measures, stores the state
//! and sends the notifications; this module only decides.

mod config;
#[cfg(test)]
mod tests;

pub use config::{validate_alerts, AlertConfig, AlertOn};

/// What was measured for one subject (a mapping in one run, or a streaming destination over a
/// window): counts only, never a record value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// The run could not complete (the SQL failed, the warehouse went away): Reverse ETL only.
    pub run_failed: bool,
    /// Records or events the destination was meant to get, before consent (extracted rows,
    /// received events).
    pub total: u64,
    /// What consent kept from the destination.
    pub withheld: u64,
    /// What the destination accepted.
    pub delivered: u64,
    /// What it did not accept (retryable or permanent).
    pub failed: u64,
}

impl Sample {
    /// `delivered / (delivered + failed)` in percent; `None` when nothing was sent.
    pub fn delivery_rate(&self) -> Option<f64> {
        let sent = self.delivered.saturating_add(self.failed);
        (sent > 0).then(|| self.delivered as f64 * 100.0 / sent as f64)
    }

    /// `withheld / total` in percent; `None` when there was nothing.
    pub fn withheld_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| (self.withheld.min(self.total)) as f64 * 100.0 / self.total as f64)
    }

    /// Whether the sync failed: the run did not complete, or something was sent and nothing of
    /// it delivered.
    pub fn sync_failed(&self) -> bool {
        self.run_failed || (self.failed > 0 && self.delivered == 0)
    }
}

/// What an alert's condition says about a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    /// Whether the condition holds: `None` when the sample cannot say (nothing sent, nothing
    /// extracted): the alert keeps its state.
    pub holds: Option<bool>,
    /// The measured value (a rate in percent, for the message and the next comparison).
    pub value: Option<f64>,
}

/// Checks `alert` against `sample`. `previous` is the withheld rate of the subject's previous
/// sample (for `withheld_rate_jump`); without one a jump cannot be judged.
pub fn check(alert: &AlertConfig, sample: &Sample, previous: Option<f64>) -> Check {
    match alert.on {
        AlertOn::FailedSync => {
            let known = sample.run_failed || sample.delivered + sample.failed > 0;
            Check { holds: known.then(|| sample.sync_failed()), value: sample.delivery_rate() }
        }
        AlertOn::DeliveryRateBelow => {
            let rate = if sample.run_failed { Some(0.0) } else { sample.delivery_rate() };
            Check { holds: rate.map(|r| r < alert.threshold_or_default()), value: rate }
        }
        AlertOn::WithheldRateJump => {
            let rate = sample.withheld_rate();
            let holds = match (rate, previous) {
                (Some(now), Some(before)) => Some(now - before > alert.threshold_or_default()),
                _ => None,
            };
            Check { holds, value: rate }
        }
    }
}

/// A change of an alert's state for one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The condition started: notify once.
    Fired,
    /// The condition ended: notify (when the alert sends recoveries).
    Resolved,
}

/// The transition from `was_firing` given `check` (none: no change, no notification).
pub fn transition(was_firing: bool, check: &Check) -> Option<Transition> {
    match (was_firing, check.holds) {
        (false, Some(true)) => Some(Transition::Fired),
        (true, Some(false)) => Some(Transition::Resolved),
        _ => None,
    }
}
