//! Scheduled syncs: [`run`] syncs each model of the live workspace whose schedule is due,
//! never two syncs of the same model at once (a lock file per model, shared with `sluice sync`).
//! `sluice serve` runs it on a supervised thread that restarts it if it dies.

use crate::{SyncError, Workspace};
use sluice_core::schedule::Schedule;
use sluice_core::WorkspaceFile;
use sluice_state::{StateLocation, StateStore};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// When a model last started a run (from the run history).
fn last_started(store: &StateStore, model: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let runs = store.runs(Some(model), 1).ok()?;
    let r = runs.first()?;
    chrono::DateTime::parse_from_rfc3339(&r.started_at).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// The next run of every scheduled model (for overviews).
pub fn next_runs(ws: &Workspace, store: &StateStore) -> HashMap<String, chrono::DateTime<chrono::Utc>> {
    let now = chrono::Utc::now();
    ws.file
        .models
        .iter()
        .filter_map(|m| {
            let s = Schedule::parse(m.schedule.as_deref().unwrap_or("manual")).ok()?;
            s.next(last_started(store, &m.id), now).map(|t| (m.id.clone(), t))
        })
        .collect()
}

/// Marks a model idle when its sync thread ends, even by a panic.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Runs until `stop`, checking every second which models of the live workspace (`live()`) are
/// due; each due model syncs on its own thread.
pub fn run(live: &dyn Fn() -> Arc<WorkspaceFile>, base_dir: PathBuf, state: StateLocation, stop: Arc<AtomicBool>) {
    let mut store: Option<StateStore> = None;
    let mut running: HashMap<String, Arc<AtomicBool>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let file = live();
        let schedules: Vec<(String, Schedule)> = file
            .models
            .iter()
            .filter_map(|m| Schedule::parse(m.schedule.as_deref().unwrap_or("manual")).ok().map(|s| (m.id.clone(), s)))
            .filter(|(_, s)| !matches!(s, Schedule::Manual))
            .collect();
        if schedules.is_empty() {
            continue;
        }
        if store.is_none() {
            match StateStore::open_at(&state) {
                Ok(s) => store = Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "scheduler cannot open the state store");
                    continue;
                }
            }
        }
        let Some(st) = store.as_ref() else { continue };
        let ws = Arc::new(Workspace { file: (*file).clone(), base_dir: base_dir.clone(), warnings: vec![] });
        let now = chrono::Utc::now();
        for (model, schedule) in &schedules {
            let busy = running.entry(model.clone()).or_insert_with(|| Arc::new(AtomicBool::new(false)));
            if busy.load(Ordering::Relaxed) {
                continue;
            }
            if schedule.next(last_started(st, model), now).is_none_or(|t| t > now) {
                continue;
            }
            busy.store(true, Ordering::Relaxed);
            let (ws, loc, busy, model) = (ws.clone(), state.clone(), busy.clone(), model.clone());
            std::thread::spawn(move || {
                let _idle_after = Busy(busy);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    StateStore::open_at(&loc)
                        .map_err(SyncError::from)
                        .and_then(|mut s| crate::sync_model(&mut s, &ws, &model, &mut |_| {}))
                }));
                match result {
                    Ok(Ok(r)) => {
                        tracing::info!(model = %model, run = r.run_id, status = %r.status, "scheduled sync finished")
                    }
                    Ok(Err(SyncError::Busy(_) | SyncError::Leased { .. })) => {
                        tracing::info!(model = %model, "scheduled sync skipped: already syncing")
                    }
                    Ok(Err(e)) => tracing::error!(model = %model, error = %e, "scheduled sync failed"),
                    Err(p) => {
                        tracing::error!(model = %model, reason = %sluice_core::panic_message(p.as_ref()), "scheduled sync panicked")
                    }
                }
            });
        }
    }
}
