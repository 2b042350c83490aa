//! The warehouse-side diff contract (docs/DIFF.md): a model's snapshot of `(id, row hash)` kept
//! in a schema Sluice owns inside the warehouse, so the warehouse itself says which rows changed
//! and unchanged rows are never transferred. Each warehouse kind implements [`WarehouseDiff`]
//! with its own SQL; the engine decides when a sparse pass is allowed.

use crate::WarehouseError;

/// The hash a snapshot holds for an id the model returns more than once: no row hashes to it
/// (a chance of 2^-64), so the id is read on every pass while it is duplicated.
pub const DUPLICATED: i64 = i64::MIN;

/// Where a model's snapshot lives: a table in `schema` named after the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The schema Sluice owns (created by the operator, granted to Sluice's role).
    pub schema: String,
    /// The model's id.
    pub model: String,
}

impl Snapshot {
    /// The snapshot table's name: derived from the model id, so any id makes a safe name.
    pub fn table(&self) -> String {
        format!("snap_{:016x}", xxhash_rust::xxh3::xxh3_64(self.model.as_bytes()))
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Bumped by every rebuild or advance; a mapping is caught up when it saw this generation.
    pub generation: i64,
    /// The hash of the configuration the snapshot was taken under (a change forces a full pass).
    pub config_hash: String,
    /// Ids in it.
    pub rows: i64,
}

/// One difference between the model now and its snapshot, in id order (text, byte order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffItem {
    /// New, changed, or asked for (a retry): the id and the row's hash now.
    Upsert {
        /// The record's id as text.
        id: String,
        /// The row's hash as the warehouse computes it.
        hash: i64,
    },
    /// In the snapshot, no longer in the model.
    Gone(String),
    /// A row of the model whose id is NULL (rejected by the sync, and counted, every time).
    NullId,
}

/// The differences a pass saw, to advance the snapshot with once every mapping committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffDelta {
    /// Ids and their new hashes.
    pub upserts: Vec<(String, i64)>,
    /// Ids gone from the model.
    pub gone: Vec<String>,
}

impl DiffDelta {
    /// Adds an item the pass saw.
    pub fn add(&mut self, item: &DiffItem) {
        match item {
            DiffItem::Upsert { id, hash } => self.upserts.push((id.clone(), *hash)),
            DiffItem::Gone(id) => self.gone.push(id.clone()),
            DiffItem::NullId => {}
        }
    }

    /// The delta of a pass's items. An id the model returned more than once, or that the sync
    /// rejected as duplicated (`duplicated`), gets [`DUPLICATED`] as its hash: it is in the
    /// snapshot (so its deletion is seen) but matches no row (so it is read on every pass until
    /// it is unique again, as the local diff reads it).
    pub fn of(items: &[DiffItem], duplicated: &std::collections::HashSet<String>) -> Self {
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        for i in items {
            if let DiffItem::Upsert { id, .. } = i {
                *seen.entry(id).or_default() += 1;
            }
        }
        let mut delta = Self::default();
        for i in items {
            match i {
                DiffItem::Upsert { id, .. } if seen.get(id.as_str()) != Some(&1) || duplicated.contains(id) => {
                    if seen.contains_key(id.as_str()) {
                        seen.remove(id.as_str());
                        delta.upserts.push((id.clone(), DUPLICATED));
                    }
                }
                _ => delta.add(i),
            }
        }
        delta
    }
}

/// A warehouse that can keep a model's snapshot and diff the model against it.
pub trait WarehouseDiff {
    /// Checks that `schema` exists and Sluice's role may create tables in it (`apply` calls it,
    /// so a missing grant is named before a sync needs it).
    fn check_schema(&mut self, schema: &str) -> Result<(), WarehouseError>;

    /// The snapshot's state, or `None` when it was never built.
    fn snapshot_info(&mut self, snapshot: &Snapshot) -> Result<Option<SnapshotInfo>, WarehouseError>;

    /// Rebuilds the snapshot from the model as it is now (before a full pass): the model runs
    /// read-only; only the snapshot table and its metadata are written. NULL ids are left out;
    /// an id that appears more than once gets [`DUPLICATED`] (the sync rejects it every time).
    fn rebuild_snapshot(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
        id_column: &str,
        config_hash: &str,
    ) -> Result<SnapshotInfo, WarehouseError>;

    /// Streams the model's differences from the snapshot in id order: new and changed rows,
    /// and every id of `retry` still in the model, as [`DiffItem::Upsert`]; ids gone as
    /// [`DiffItem::Gone`]. Unchanged rows never leave the warehouse.
    fn changes(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
        id_column: &str,
        retry: &[String],
        sink: &mut dyn FnMut(DiffItem) -> Result<(), String>,
    ) -> Result<(), WarehouseError>;

    /// The most retried ids [`WarehouseDiff::changes`] takes (they are written into its query
    /// text on warehouses without array parameters); a sparse pass with more retries takes a
    /// full pass instead. `None`: no limit.
    fn max_retry(&self) -> Option<usize> {
        None
    }

    /// Applies `delta` to the snapshot in one transaction, only if it is still at
    /// `generation` (compare-and-set); returns the new generation.
    fn advance_snapshot(
        &mut self,
        snapshot: &Snapshot,
        delta: &DiffDelta,
        generation: i64,
    ) -> Result<i64, WarehouseError>;
}
