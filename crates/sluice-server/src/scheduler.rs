//! Scheduled syncs on a supervised thread: [`sluice_engine::scheduler::run`] restarted (with a
//! backoff, a log line giving the panic message and a count in
//! `sluice_worker_restarts{worker="scheduler"}`) whenever it dies.

use crate::delivery::supervisor::{keep_alive, Backoff};
use crate::metrics::Metrics;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Runs the scheduler until `stop`, restarting it whenever it dies.
pub fn supervise(
    live: crate::Live,
    base_dir: PathBuf,
    state: sluice_state::StateLocation,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    keep_alive("scheduler", &stop, &metrics, Backoff::default(), || {
        sluice_engine::scheduler::run(&|| live.load_full(), base_dir.clone(), state.clone(), stop.clone());
        Ok(())
    });
}
