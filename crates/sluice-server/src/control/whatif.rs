//! Asking before applying (SPEC §12 "What-if"): `?dry_run=true` on the consent-changing writes
//! (consent categories create/update/delete, `PUT /models/{id}/consent`, `PUT /models/{id}`,
//! `PUT /destinations/{id}`) answers `{"plan", "warnings", "what_if", "allowed", "errors"}` and
//! changes nothing: no state, no audit entry (nothing happened to audit), no live workspace.
//! Members may ask too: a dry run reveals counts only (how many records and events each
//! destination would gain or lose), never a record; `allowed` says whether the asker could
//! apply the change.

use super::{Actor, ApiError, ControlState};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::WorkspaceFile;
use sluice_engine::whatif::WhatIf;
use sluice_engine::{ApplyOptions, ChangeError, ColumnCheck, Workspace};
use sluice_state::{Role, StateStore};
use std::path::Path;
use utoipa::IntoParams;

/// Serializes what-ifs in this process (they run whole models on their warehouses).
static WHAT_IF: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// `?dry_run=true`: plan and what-if only. Any other query parameter is refused (400): a
/// misspelt `dryRun=true` must never be taken as the real write.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    /// `true`: change nothing and answer the plan and the what-if (per destination, how many
    /// records of each model and events of the last 24 hours it would gain or lose). Members
    /// may ask.
    pub dry_run: Option<bool>,
}

impl DryRun {
    /// Whether this is a dry run.
    pub fn on(&self) -> bool {
        self.dry_run == Some(true)
    }
}

/// The what-if of replacing `old` by `new` in the state folder `state_dir`: the records of the
/// affected models (read-only scans) and the events of the last 24 hours in `stream.db`.
pub fn what_if(store: &StateStore, state_dir: &Path, old: &Workspace, new: &Workspace) -> WhatIf {
    what_if_with_progress(store, state_dir, old, new, &mut |_, _| {})
}

/// [`what_if`], telling `progress` (model, rows read so far) as the model scans go (the CLI's
/// progress bars).
pub fn what_if_with_progress(
    store: &StateStore,
    state_dir: &Path,
    old: &Workspace,
    new: &Workspace,
    progress: &mut dyn FnMut(&str, u64),
) -> WhatIf {
    let mut w = sluice_engine::whatif::what_if(store, old, new, progress);
    let since = sluice_stream::rfc3339(chrono::Utc::now() - chrono::Duration::hours(24));
    match sluice_stream::whatif::events(state_dir, &old.file, &new.file, &since) {
        Ok(lines) => {
            if !lines.is_empty() {
                w.notes.push(sluice_stream::whatif::NOTES.into());
            }
            for l in lines {
                w.add_events(&l.destination, l.gains, l.loses);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "what-if: the event log could not be read");
            for d in sluice_stream::whatif::affected(&old.file, &new.file) {
                w.add_events(d, 0, 0);
                if let Some(last) = w.impacts.last_mut() {
                    last.error = Some("the event log could not be read (see the log)".into());
                }
            }
        }
    }
    w
}

impl ControlState {
    /// A dry run of `change` for `actor` ([`ControlState::preview_now`] off the async runtime).
    /// `owners_only`: the write is for owners whatever it changes (consent management, SPEC §6).
    pub(crate) async fn preview(
        &self,
        actor: Actor,
        owners_only: bool,
        change: impl Fn(&mut WorkspaceFile) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<Json<Value>, ApiError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.preview_now(&actor, owners_only, change))
            .await
            .map_err(ApiError::internal)?
            .map(Json)
    }

    /// `change` applied to a copy of the stored workspace, validated and checked against the
    /// warehouses of the changed models as a real change would be, then the what-if; nothing
    /// is stored. A failing warehouse check is reported in `errors` (with the plan and what-if
    /// still answered) rather than refused, so the owner sees what else the change does.
    pub(crate) fn preview_now(
        &self,
        actor: &Actor,
        owners_only: bool,
        change: impl Fn(&mut WorkspaceFile) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        // one what-if at a time: each may scan whole models, and members may ask
        let _one_at_a_time = WHAT_IF.lock();
        let mut store = StateStore::open_at(&self.state).map_err(ApiError::internal)?;
        let old = Workspace::load(&store).map_err(ApiError::internal)?;
        let mut file = old.file.clone();
        change(&mut file)?;
        let refused: Vec<String> = match actor.role {
            Role::Owner => vec![],
            Role::Member if owners_only => {
                vec!["consent management is for owners; members have read-only access".into()]
            }
            Role::Member => {
                sluice_engine::roles::owner_only_changes(&old.file, &file).into_iter().map(|r| r.what).collect()
            }
        };
        // checked as the owner would be: a member learns only counts, and whether they may apply it
        let who = sluice_engine::Actor { name: format!("token:{}", actor.name), role: Role::Owner };
        let base = (*self.base_dir).clone();
        let dry = ApplyOptions { columns: ColumnCheck::Changed, dry_run: true };
        let (applied, errors) = match sluice_engine::apply(&mut store, file.clone(), base.clone(), &who, dry) {
            Ok(a) => (a, vec![]),
            Err(ChangeError::Invalid(errs)) => {
                let unchecked = ApplyOptions { columns: ColumnCheck::Checked, dry_run: true };
                let a = sluice_engine::apply(&mut store, file, base, &who, unchecked).map_err(ApiError::from_change)?;
                (a, errs.0.iter().map(|e| json!({"field": e.at, "message": e.message})).collect())
            }
            Err(e) => return Err(ApiError::from_change(e)),
        };
        let w = what_if(&store, &self.state.dir, &old, &applied.workspace);
        Ok(json!({
            "plan": applied.plan,
            "warnings": applied.warnings,
            "what_if": w,
            "allowed": refused.is_empty() && errors.is_empty(),
            "refused": refused,
            "errors": errors,
        }))
    }
}
