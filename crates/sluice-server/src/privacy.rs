//! The privacy requests' background work in `sluice serve` (SPEC §12, docs/PRIVACY.md), on two
//! supervised threads:
//! - `privacy-suppressions` polls `state.db`'s privacy version (one single-row read every
//!   [`SUPPRESSIONS_EVERY`]) and reloads the writer's in-memory set when a request made by the
//!   CLI (or another server) moved it; the control API reloads it itself, at once.
//! - `privacy-deletes` runs the deletes that are due (`RUNNING`, backoff passed), so deletes
//!   resume after a restart.

use crate::delivery::supervisor::{keep_alive, sleep_unless, Backoff};
use crate::metrics::Metrics;
use sluice_engine::privacy::DeleteOptions;
use sluice_state::{StateLocation, StateStore};
use sluice_stream::privacy::Suppressed;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the stored suppressions are looked at.
pub const SUPPRESSIONS_EVERY: Duration = Duration::from_millis(500);
/// How often due deletes are looked for.
pub const DELETES_EVERY: Duration = Duration::from_secs(1);

/// Keeps `suppressed` equal to the stored suppressions until `stop`.
pub fn supervise_suppressions(
    suppressed: Arc<Suppressed>,
    state: StateLocation,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    keep_alive("privacy-suppressions", &stop, &metrics, Backoff::default(), || {
        let store = StateStore::open_at(&state).map_err(|e| format!("cannot open the state store: {e}"))?;
        while !stop.load(Ordering::Relaxed) {
            match suppressed.refresh(&store) {
                Ok(true) => tracing::info!(suppressed = suppressed.len(), "privacy suppressions reloaded"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "privacy suppressions not reloaded; the last set stays"),
            }
            sleep_unless(&stop, SUPPRESSIONS_EVERY);
        }
        Ok(())
    });
}

/// Runs due deletes of privacy requests until `stop`.
pub fn supervise_deletes(
    live: crate::Live,
    base_dir: PathBuf,
    state: StateLocation,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    bus: Option<Arc<sluice_stream::bus::Bus>>,
) {
    keep_alive("privacy-deletes", &stop, &metrics, Backoff::default(), || {
        let mut store = StateStore::open_at(&state).map_err(|e| format!("cannot open the state store: {e}"))?;
        let log = sluice_stream::store::open(&state.dir).map_err(|e| format!("cannot open the event log: {e}"))?;
        let stream_done = |dest: &str, seq: i64| match &bus {
            // on a deployment: the delete's message left the out stream once its worker delivered it
            Some(b) => u64::try_from(seq).is_ok_and(|s| b.delivered(s)),
            None => sluice_stream::store::delivered_past(&log, dest, seq).unwrap_or(false),
        };
        while !stop.load(Ordering::Relaxed) {
            let ws = sluice_engine::Workspace {
                file: (*live.load_full()).clone(),
                base_dir: base_dir.clone(),
                warnings: vec![],
            };
            if let Err(e) = sluice_engine::privacy::run_due(&mut store, &ws, DeleteOptions::default(), &stream_done) {
                tracing::error!(error = %e, "privacy request deletes could not run; retried");
            }
            sleep_unless(&stop, DELETES_EVERY);
        }
        Ok(())
    });
}
