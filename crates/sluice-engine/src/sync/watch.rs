//! Configuration changes during a run. A sync takes its gates and destinations from the
//! workspace when it starts; if the stored workspace changes meanwhile (`sluice apply`, the
//! control API) so that a mapping's destination is disabled, removed or re-pointed, its model
//! changes, or the consent that governs it changes, that mapping stops sending at its next batch:
//! nothing more goes out under the old configuration, and what it did not send stays unsent in
//! its checkpoint, for the next sync to decide under the new one.

use crate::workspace::Workspace;
use sluice_core::consent::{required_categories, stamps_consent};
use sluice_core::WorkspaceFile;
use sluice_state::StateStore;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the stored workspace is looked at during a run.
const EVERY: Duration = Duration::from_millis(200);

/// Watches the stored workspace for changes that concern the run's mappings.
pub struct Watch {
    /// The workspace the run started with.
    run: WorkspaceFile,
    /// The model synced.
    model: String,
    /// When the stored workspace the run started beside was applied (`None`: nothing stored).
    started: Option<String>,
    state: RefCell<State>,
    /// Set when this worker lost the model's lease: every mapping stops at once.
    lease_lost: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

#[derive(Default)]
struct State {
    next: Option<Instant>,
    /// The stored workspace last compared (by `applied_at`), and why each destination must stop.
    compared: Option<String>,
    stop: HashMap<String, Option<String>>,
}

impl Watch {
    /// A watch for a run of `model` with `run` as its workspace, beside what `store` holds now.
    pub fn new(store: &StateStore, run: &WorkspaceFile, model: &str) -> Self {
        let started = store.workspace().ok().flatten().map(|w| w.applied_at);
        Self { run: run.clone(), model: model.into(), started, state: RefCell::default(), lease_lost: None }
    }

    /// Why the mapping to `dest` must stop sending (`None`: it may go on). Reads the stored
    /// workspace at most every 200 ms, and opens it only when it was applied again.
    pub fn stop_reason(&self, store: &StateStore, dest: &str) -> Option<String> {
        if self.lease_lost.as_ref().is_some_and(|l| l.load(std::sync::atomic::Ordering::Relaxed)) {
            return Some(format!("this worker lost the lease of model `{}` (expired or taken over)", self.model));
        }
        let mut st = self.state.borrow_mut();
        let now = Instant::now();
        if st.next.is_some_and(|t| now < t) {
            return st.stop.get(dest).cloned().flatten();
        }
        st.next = Some(now + EVERY);
        let applied = store.workspace().ok().flatten().map(|w| w.applied_at);
        if applied.is_none() || applied == self.started || applied == st.compared {
            return st.stop.get(dest).cloned().flatten();
        }
        let Ok(new) = Workspace::load(store) else {
            // a stored workspace that cannot be read stops nothing it cannot judge
            return st.stop.get(dest).cloned().flatten();
        };
        st.compared = applied;
        st.stop = self.run.destinations.iter().map(|d| (d.id.clone(), self.why(&new.file, &d.id))).collect();
        tracing::info!(model = %self.model, stopped = st.stop.values().filter(|w| w.is_some()).count(),
                       "the workspace changed during the sync");
        st.stop.get(dest).cloned().flatten()
    }

    /// Stops every mapping once `lost` is set (the heartbeat could not renew the lease).
    pub fn with_lease_lost(mut self, lost: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.lease_lost = Some(lost);
        self
    }

    /// What changed for the mapping to `dest` between the run's workspace and `new`.
    fn why(&self, new: &WorkspaceFile, dest: &str) -> Option<String> {
        let reg = &sluice_destinations::REGISTRY;
        let (old_d, new_d) =
            (self.run.destinations.iter().find(|d| d.id == dest), new.destinations.iter().find(|d| d.id == dest));
        match new_d {
            None => return Some(format!("destination `{dest}` was removed during the run")),
            Some(d) if !d.enabled => return Some(format!("destination `{dest}` was disabled during the run")),
            Some(d) if Some(d) != old_d => return Some(format!("destination `{dest}` was changed during the run")),
            Some(_) => {}
        }
        let model = |w: &WorkspaceFile| w.models.iter().find(|m| m.id == self.model).cloned();
        if model(&self.run) != model(new) {
            return Some(format!("model `{}` was changed during the run", self.model));
        }
        let consent = |w: &WorkspaceFile| {
            (
                required_categories(w, dest).into_iter().map(String::from).collect::<Vec<_>>(),
                sluice_core::consent::policy_for(w, dest),
                w.workspace.unmapped_models,
                stamps_consent(w, reg, dest),
            )
        };
        if consent(&self.run) != consent(new) {
            return Some(format!("the consent that governs destination `{dest}` was changed during the run"));
        }
        None
    }
}
