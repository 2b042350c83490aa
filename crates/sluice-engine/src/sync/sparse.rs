//! The warehouse-side diff in a sync (docs/DIFF.md): which pass a run takes, and moving the
//! warehouse's snapshot and the mappings' generations forward only when that is safe.
//!
//! - A *full* pass rebuilds the snapshot **before** it scans: a row that changes between the two
//!   is seen by the scan and left older in the snapshot, so the snapshot is never ahead of what
//!   the mappings processed. The mappings catch up with the new generation only if the pass
//!   completed for them.
//! - A *sparse* pass fetches only what the warehouse says changed since the snapshot (plus the
//!   ids that failed retryably), then advances the snapshot with the hashes the diff query saw
//!   (again never newer than what was fetched) by compare-and-set.

use super::Mappings;
use crate::workspace::Workspace;
use sluice_core::ModelConfig;
use sluice_state::StateStore;
use sluice_warehouse::diff::{DiffDelta, DiffItem, Snapshot};
use sluice_warehouse::{IdOrder, Warehouse, WarehouseError};

/// What a run does.
pub(super) enum Pass {
    /// Every row, the local diff (no warehouse-side diff configured).
    Local,
    /// Every row; the snapshot was rebuilt just before, at `generation`.
    Full { generation: i64 },
    /// Only what changed since the snapshot at `generation`.
    Sparse { snapshot: Snapshot, generation: i64, items: Vec<DiffItem> },
}

/// The schema of the warehouse-side diff of a model's source, when configured.
pub(super) fn configured(ws: &Workspace, model: &ModelConfig) -> Option<Snapshot> {
    let source = ws.file.sources.iter().find(|s| s.id == model.source)?;
    Some(Snapshot { schema: source.settings.warehouse_diff()?.to_string(), model: model.id.clone() })
}

/// A hash of everything that decides what a row becomes for the model's mappings: the model,
/// the workspace's consent settings, and per mapping its destination's kind, state and consent.
/// A change forces a full pass (consent is re-evaluated for every row, SPEC §3).
pub(super) fn config_hash(ws: &Workspace, model: &ModelConfig) -> String {
    let reg = &sluice_destinations::REGISTRY;
    let mappings: Vec<serde_json::Value> = model
        .mappings
        .iter()
        .map(|mp| {
            let d = ws.file.destinations.iter().find(|d| d.id == mp.destination);
            serde_json::json!({
                "destination": mp.destination,
                "kind": d.map(|d| d.kind.as_str()),
                "enabled": d.map(|d| d.enabled),
                "required": sluice_core::consent::required_categories(&ws.file, &mp.destination),
                "policy": sluice_core::consent::policy_for(&ws.file, &mp.destination),
                "stamps": sluice_core::consent::stamps_consent(&ws.file, reg, &mp.destination),
            })
        })
        .collect();
    let all = serde_json::json!({
        "model": model,
        "policy": ws.file.workspace.policy,
        "unmapped_models": ws.file.workspace.unmapped_models,
        "max_delete_fraction": ws.file.workspace.max_delete_fraction,
        "categories": ws.file.consent_categories,
        "mappings": mappings,
    });
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(all.to_string().as_bytes()))
}

/// Chooses the pass: sparse only when the snapshot exists under the same configuration and
/// every mapping that runs has caught up with its generation; otherwise a full pass after
/// rebuilding the snapshot.
pub(super) fn choose(
    store: &StateStore,
    warehouse: &mut dyn Warehouse,
    snapshot: Snapshot,
    ws: &Workspace,
    model: &ModelConfig,
    (id_column, order): (&str, IdOrder),
    maps: &Mappings,
) -> Result<Pass, super::SyncError> {
    let wh = |source: WarehouseError| super::SyncError::Warehouse { model: model.id.clone(), source };
    let hash = config_hash(ws, model);
    let Some(diff) = warehouse.diff() else { return Ok(Pass::Local) };
    let info = diff.snapshot_info(&snapshot).map_err(wh)?;
    let mut caught_up = info.as_ref().is_some_and(|i| i.config_hash == hash);
    for m in &maps.runs {
        let g = store.snapshot_generation(m.setup.mapping_id)?;
        caught_up &= g.is_some() && g == info.as_ref().map(|i| i.generation);
    }
    if !caught_up || maps.runs.is_empty() {
        let info = diff.rebuild_snapshot(&snapshot, &model.sql, id_column, &hash).map_err(wh)?;
        return Ok(Pass::Full { generation: info.generation });
    }
    let generation = info.map(|i| i.generation).unwrap_or_default();
    let t = std::time::Instant::now();
    // records that failed retryably are retried whether or not their row changed
    let mut retry: Vec<String> = Vec::new();
    for m in &maps.runs {
        retry.extend(store.checkpoint_failed_ids(m.setup.mapping_id)?.iter().map(|k| order.id(k)));
    }
    retry.sort();
    retry.dedup();
    // more retries than the warehouse's diff query takes (a destination was down for a large
    // pass): a full pass reads them all anyway
    if diff.max_retry().is_some_and(|max| retry.len() > max) {
        tracing::info!(model = %model.id, retries = retry.len(), "too many retries for a sparse pass; full pass");
        let info = diff.rebuild_snapshot(&snapshot, &model.sql, id_column, &hash).map_err(wh)?;
        return Ok(Pass::Full { generation: info.generation });
    }
    let retry_ms = t.elapsed().as_millis() as u64;
    let mut items = Vec::new();
    diff.changes(&snapshot, &model.sql, id_column, &retry, &mut |i| {
        items.push(i);
        Ok(())
    })
    .map_err(wh)?;
    // a retried id the model no longer returns is gone (a failed delete is retried this way:
    // the snapshot dropped it when it first went)
    let seen: std::collections::HashSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            DiffItem::Upsert { id, .. } | DiffItem::Gone(id) => Some(id.as_str()),
            DiffItem::NullId => None,
        })
        .collect();
    let gone: Vec<DiffItem> =
        retry.iter().filter(|id| !seen.contains(id.as_str())).cloned().map(DiffItem::Gone).collect();
    items.extend(gone);
    tracing::info!(model = %model.id, retries = retry.len(), items = items.len(), retry_ms,
                   changes_ms = t.elapsed().as_millis() as u64 - retry_ms, "sparse pass planned");
    Ok(Pass::Sparse { snapshot, generation, items })
}

/// After the run: the mappings that completed catch up with the snapshot (a sparse pass first
/// advances it); a stopped or failed mapping, or a disabled one, is left behind, so the next
/// run of the model takes a full pass. Returns a warning when the snapshot could not move.
pub(super) fn after(
    store: &StateStore,
    warehouse: &mut dyn Warehouse,
    pass: &Pass,
    maps: &Mappings,
    completed: bool,
) -> Result<Option<String>, sluice_state::StateError> {
    let generation = match pass {
        Pass::Local => return Ok(None),
        Pass::Full { generation } => Some(*generation),
        // deletes the mass-delete guard held back stay candidates (as with the local diff) only
        // while the snapshot still holds them: it does not move then
        Pass::Sparse { snapshot, generation, items }
            if completed && maps.runs.iter().all(|m| !m.is_stopped() && m.setup.report.deletes_held_back == 0) =>
        {
            let delta = DiffDelta::of(items, &maps.duplicated);
            match warehouse.diff().map(|d| d.advance_snapshot(snapshot, &delta, *generation)) {
                Some(Ok(next)) => Some(next),
                Some(Err(e)) => {
                    return Ok(Some(format!(
                        "the warehouse snapshot did not move ({e}); the next sync takes a full pass"
                    )))
                }
                None => None,
            }
        }
        Pass::Sparse { generation, .. } => Some(*generation),
    };
    for m in &maps.runs {
        let caught_up = completed && !m.is_stopped() && generation.is_some();
        let generation = if caught_up { generation } else { None };
        store.set_snapshot_generation_fenced(&m.setup.lease, m.setup.mapping_id, generation)?;
    }
    Ok(None)
}
