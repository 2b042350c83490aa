//! Every metric of the streaming runtime and of the threads it supervises (the server's scheduler
//! and follower count restarts here too), declared in one place; the server exports them at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// A destination.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Dest {
    /// Destination id.
    pub destination: String,
}

/// An event source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Src {
    /// Source id.
    pub source: String,
}

/// A destination and a consent category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestCategory {
    /// Destination id.
    pub destination: String,
    /// Category id.
    pub category: String,
}

/// A supervised thread: `deliver-{destination}` or `scheduler`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Worker {
    /// Thread name.
    pub worker: String,
}

/// The streaming runtime's counters (and restarts of every supervised thread).
#[derive(Default)]
pub struct Metrics {
    /// Events accepted (durably stored), per source.
    pub received: Family<Src, Counter>,
    /// Events routed to a destination's queue.
    pub routed: Family<Dest, Counter>,
    /// Events consent withheld from a destination, per refusing category.
    pub withheld: Family<DestCategory, Counter>,
    /// Events the integrations object turned off for a destination.
    pub turned_off: Family<Dest, Counter>,
    /// Events a destination accepted.
    pub delivered: Family<Dest, Counter>,
    /// Delivery attempts that failed.
    pub failed: Family<Dest, Counter>,
    /// Events sent again after a failed attempt.
    pub retried: Family<Dest, Counter>,
    /// Events dropped at ingest because an identifier is suppressed by a privacy request.
    pub dropped_suppressed: Family<Src, Counter>,
    /// People a destination deleted (R13 consent withdrawal, privacy requests).
    pub deleted_people: Family<Dest, Counter>,
    /// Restarts of a delivery worker or the scheduler that stopped unexpectedly.
    pub restarts: Family<Worker, Counter>,
}

impl Metrics {
    /// Renders the Prometheus text exposition.
    pub fn render(&self) -> String {
        self.render_with(|_| {})
    }

    /// Renders the streaming metrics and whatever `more` registers (the server adds Reverse
    /// ETL's, which run in the same process) as one exposition.
    pub fn render_with(&self, more: impl FnOnce(&mut Registry)) -> String {
        let mut r = Registry::default();
        r.register("sluice_events_routed", "Events queued for a destination", self.routed.clone());
        r.register(
            "sluice_events_withheld_by_consent",
            "Events consent withheld from a destination (FILTERED_BY_END_USER_CONSENT), by refusing category",
            self.withheld.clone(),
        );
        r.register("sluice_events_turned_off", "Events the integrations object turned off", self.turned_off.clone());
        r.register("sluice_events_delivered", "Events a destination accepted", self.delivered.clone());
        r.register("sluice_events_failed", "Events whose delivery attempt failed", self.failed.clone());
        r.register("sluice_events_retried", "Events sent again after a failure", self.retried.clone());
        r.register(
            "sluice_people_deleted",
            "People a destination deleted (consent withdrawn, privacy requests)",
            self.deleted_people.clone(),
        );
        r.register(
            "sluice_worker_restarts",
            "Times a delivery worker or the scheduler stopped unexpectedly (panic or early return) and was restarted",
            self.restarts.clone(),
        );
        r.register(
            "sluice_events_dropped_suppressed",
            "Events dropped at ingest, never stored, because an identifier is suppressed by a privacy request",
            self.dropped_suppressed.clone(),
        );
        r.register("sluice_events_received", "Events accepted and stored, by source", self.received.clone());
        more(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).expect("writing to a String does not fail");
        out
    }
}

/// A destination label.
pub fn dest(id: &str) -> Dest {
    Dest { destination: id.to_string() }
}
