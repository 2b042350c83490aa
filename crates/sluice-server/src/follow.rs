//! Follows the stored workspace: a change `sluice apply` (another process) stored takes effect in
//! the running server within seconds, as a control-API change does at once (write keys, routes,
//! destinations, schedules).

use crate::delivery::supervisor::{keep_alive, sleep_unless, Backoff};
use crate::metrics::Metrics;
use sluice_engine::Workspace;
use sluice_state::{StateLocation, StateStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the stored workspace is looked at.
pub const EVERY: Duration = Duration::from_secs(2);

/// Runs until `stop`, restarted if it dies.
pub fn supervise(live: crate::Live, state: StateLocation, stop: Arc<AtomicBool>, metrics: Arc<Metrics>) {
    keep_alive("workspace-follower", &stop, &metrics, Backoff::default(), || run(&live, &state, &stop));
}

fn applied_at(store: &StateStore) -> Option<String> {
    store.workspace().ok().flatten().map(|w| w.applied_at)
}

fn run(live: &crate::Live, state: &StateLocation, stop: &AtomicBool) -> Result<(), String> {
    let store = StateStore::open_at(state).map_err(|e| format!("cannot open the state store: {e}"))?;
    let mut seen = applied_at(&store);
    while !stop.load(Ordering::Relaxed) {
        sleep_unless(stop, EVERY);
        let now = applied_at(&store);
        if now == seen {
            continue;
        }
        match Workspace::load(&store) {
            Ok(ws) => {
                // the control API's own changes come back here too, with the same content
                if *live.load_full() != ws.file {
                    tracing::info!(
                        applied_at = now.as_deref().unwrap_or(""),
                        "the stored workspace changed; following it"
                    );
                    live.store(Arc::new(ws.file));
                }
                seen = now;
            }
            Err(e) => {
                // keep serving the last good workspace; say why once per stored version
                tracing::error!(error = %e, "the stored workspace cannot be loaded; the running one stays");
                seen = now;
            }
        }
    }
    Ok(())
}
