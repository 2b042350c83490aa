//! The [`WarehouseDiff`] steps shared by the REST warehouses (BigQuery, Databricks): the
//! snapshot is a table of `(id, h)` built and advanced inside the warehouse by Sluice's own
//! statements, with its metadata row in the schema's `sluice_snapshots`. Each warehouse gives
//! its dialect's pieces through [`RestDiff`].

use crate::diff::{DiffDelta, DiffItem, Snapshot, SnapshotInfo, WarehouseDiff, DUPLICATED};
use crate::WarehouseError;
use serde_json::Value;

/// The metadata table of every snapshot in a schema (a dataset on BigQuery).
pub(crate) const META: &str = "sluice_snapshots";
/// Ids per statement (keeps a statement far under the warehouses' limits on query text).
pub(crate) const BATCH: usize = 1000;
/// Retried ids one diff query takes as literals (a few hundred KB of text at most, far under the
/// statement size limits); more make the sync take a full pass.
pub(crate) const MAX_RETRY: usize = 5000;

/// What a REST warehouse's dialect and client give the shared snapshot steps.
pub(crate) trait RestDiff: WarehouseDiff {
    /// The dialect's 64-bit integer type with its article, in error messages (`an INT64`).
    const INT64: &'static str;
    /// A STRING literal of `s` that no escaping rule can misread.
    fn literal(s: &str) -> String;
    /// A schema name as SQL.
    fn schema_sql(schema: &str) -> String;
    /// Whether a SQL error says the metadata table (or its schema) does not exist.
    fn not_found(message: &str) -> bool;
    /// The warehouse named in errors.
    fn target(&self) -> String;
    /// Runs one of Sluice's own statements; the rows it changed, when it is DML.
    fn exec(&mut self, sql: &str) -> Result<Option<i64>, WarehouseError>;
    /// Every row of one of Sluice's own queries, as text cells (at most `limit` rows).
    fn select(&mut self, sql: &str, limit: usize) -> Result<Vec<Vec<Option<String>>>, WarehouseError>;
    /// `SELECT id, h, 1 AS n` over the model, checked to be a query first.
    fn hashed(&mut self, sql: &str, id_column: &str) -> Result<String, WarehouseError>;
    /// Runs the diff query, giving `each` the cells of every row as JSON.
    fn diff_rows(
        &mut self,
        query: &str,
        each: &mut dyn FnMut(&[&Value]) -> Result<(), WarehouseError>,
    ) -> Result<(), WarehouseError>;
}

/// The [`WarehouseDiff`] methods a REST warehouse takes from this module as they are (all but
/// `check_schema`), for its `impl WarehouseDiff`.
macro_rules! rest_diff_methods {
    () => {
        fn snapshot_info(
            &mut self,
            snapshot: &$crate::diff::Snapshot,
        ) -> Result<Option<$crate::diff::SnapshotInfo>, $crate::WarehouseError> {
            $crate::rest_diff::snapshot_info(self, snapshot)
        }

        fn rebuild_snapshot(
            &mut self,
            snapshot: &$crate::diff::Snapshot,
            sql: &str,
            id_column: &str,
            config_hash: &str,
        ) -> Result<$crate::diff::SnapshotInfo, $crate::WarehouseError> {
            $crate::rest_diff::rebuild_snapshot(self, snapshot, sql, id_column, config_hash)
        }

        fn changes(
            &mut self,
            snapshot: &$crate::diff::Snapshot,
            sql: &str,
            id_column: &str,
            retry: &[String],
            sink: &mut dyn FnMut($crate::diff::DiffItem) -> Result<(), String>,
        ) -> Result<(), $crate::WarehouseError> {
            $crate::rest_diff::changes(self, snapshot, sql, id_column, retry, sink)
        }

        fn max_retry(&self) -> Option<usize> {
            Some($crate::rest_diff::MAX_RETRY)
        }

        fn advance_snapshot(
            &mut self,
            snapshot: &$crate::diff::Snapshot,
            delta: &$crate::diff::DiffDelta,
            generation: i64,
        ) -> Result<i64, $crate::WarehouseError> {
            $crate::rest_diff::advance_snapshot(self, snapshot, delta, generation)
        }
    };
}
pub(crate) use rest_diff_methods;

/// `ids` in byte order without repeats, as `IN` lists of at most [`BATCH`] literals.
pub(crate) fn id_batches(ids: &[String], literal: fn(&str) -> String) -> Vec<String> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort();
    ids.dedup();
    ids.chunks(BATCH).map(|c| c.iter().map(|i| literal(i)).collect::<Vec<_>>().join(", ")).collect()
}

fn refused(snapshot: &Snapshot, message: impl Into<String>) -> WarehouseError {
    WarehouseError::Snapshot { model: snapshot.model.clone(), message: message.into() }
}

fn number<W: RestDiff>(w: &mut W, sql: &str) -> Result<i64, WarehouseError> {
    let rows = w.select(sql, 1)?;
    let cell = rows.first().and_then(|r| r.first()).cloned().flatten();
    cell.as_deref().and_then(|c| c.parse().ok()).ok_or_else(|| WarehouseError::Answer {
        target: w.target(),
        message: format!("a count that is not a number: {cell:?}"),
    })
}

/// The metadata table and the snapshot's table, as SQL.
pub(crate) fn tables<W: RestDiff>(snapshot: &Snapshot) -> (String, String) {
    let ds = W::schema_sql(&snapshot.schema);
    (format!("{ds}.{META}"), format!("{ds}.{}", crate::rest::backquote(&snapshot.table())))
}

pub(crate) fn snapshot_info<W: RestDiff>(
    w: &mut W,
    snapshot: &Snapshot,
) -> Result<Option<SnapshotInfo>, WarehouseError> {
    let (meta, _) = tables::<W>(snapshot);
    let sql =
        format!("SELECT generation, config_hash, row_count FROM {meta} WHERE name = {}", W::literal(&snapshot.table()));
    let rows = match w.select(&sql, 2) {
        Ok(rows) => rows,
        // no metadata table (or schema) yet: never built
        Err(WarehouseError::Sql { message, .. }) if W::not_found(&message) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(r) = rows.into_iter().next() else { return Ok(None) };
    let int = |i: usize| r.get(i).cloned().flatten().and_then(|v| v.parse::<i64>().ok());
    match (int(0), r.get(1).cloned().flatten(), int(2)) {
        (Some(generation), Some(config_hash), Some(rows)) => Ok(Some(SnapshotInfo { generation, config_hash, rows })),
        _ => Err(WarehouseError::Answer { target: w.target(), message: format!("a malformed row of {meta}") }),
    }
}

pub(crate) fn rebuild_snapshot<W: RestDiff>(
    w: &mut W,
    snapshot: &Snapshot,
    sql: &str,
    id_column: &str,
    config_hash: &str,
) -> Result<SnapshotInfo, WarehouseError> {
    // the model is checked (a query) before anything is written
    let hashed = w.hashed(sql, id_column)?;
    w.check_schema(&snapshot.schema).map_err(|e| refused(snapshot, e.to_string()))?;
    let (meta, table) = tables::<W>(snapshot);
    let name = W::literal(&snapshot.table());
    // first the metadata stops matching any configuration and moves on a generation, so a
    // crash part way leaves a snapshot no sparse pass uses and no advance applies to
    let moved =
        w.exec(&format!("UPDATE {meta} SET generation = generation + 1, config_hash = '' WHERE name = {name}"))?;
    if moved == Some(0) {
        w.exec(&format!("INSERT INTO {meta} (name, generation, config_hash, row_count) VALUES ({name}, 0, '', 0)"))?;
    }
    w.exec(&format!(
        "CREATE OR REPLACE TABLE {table} AS SELECT id, CASE WHEN COUNT(*) = 1 THEN MIN(h) ELSE {} - 1 END AS h \
         FROM ({hashed}) AS m WHERE id IS NOT NULL GROUP BY id",
        DUPLICATED + 1
    ))?;
    let rows = number(w, &format!("SELECT COUNT(*) FROM {table}"))?;
    w.exec(&format!(
        "UPDATE {meta} SET generation = generation + 1, config_hash = {}, row_count = {rows} WHERE name = {name}",
        W::literal(config_hash)
    ))?;
    let generation = number(w, &format!("SELECT generation FROM {meta} WHERE name = {name}"))?;
    Ok(SnapshotInfo { generation, config_hash: config_hash.to_string(), rows })
}

pub(crate) fn changes<W: RestDiff>(
    w: &mut W,
    snapshot: &Snapshot,
    sql: &str,
    id_column: &str,
    retry: &[String],
    sink: &mut dyn FnMut(DiffItem) -> Result<(), String>,
) -> Result<(), WarehouseError> {
    let hashed = w.hashed(sql, id_column)?;
    let (_, table) = tables::<W>(snapshot);
    let retried: String =
        id_batches(retry, W::literal).into_iter().map(|list| format!(" OR m.id IN ({list})")).collect();
    let query = format!(
        "SELECT COALESCE(m.id, s.id) AS id, m.h AS h FROM ({hashed}) AS m FULL OUTER JOIN {table} AS s ON s.id = m.id \
         WHERE m.n IS NULL OR m.id IS NULL OR s.id IS NULL OR s.h != m.h{retried} ORDER BY 1"
    );
    let target = w.target();
    let bad = |m: String| WarehouseError::Answer { target: target.clone(), message: m };
    w.diff_rows(&query, &mut |cells| {
        let text = |i: usize| match cells.get(i).copied() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(bad(format!("a diff cell is not a string: {}", crate::rest::excerpt(&other.to_string()))))
            }
        };
        let item = match (text(0)?, text(1)?) {
            (None, _) => DiffItem::NullId,
            (Some(id), None) => DiffItem::Gone(id),
            (Some(id), Some(h)) => {
                let hash = h.parse().map_err(|_| bad(format!("a row hash that is not {}: {h:?}", W::INT64)))?;
                DiffItem::Upsert { id, hash }
            }
        };
        sink(item).map_err(WarehouseError::Aborted)
    })
}

pub(crate) fn advance_snapshot<W: RestDiff>(
    w: &mut W,
    snapshot: &Snapshot,
    delta: &DiffDelta,
    generation: i64,
) -> Result<i64, WarehouseError> {
    let (meta, table) = tables::<W>(snapshot);
    let name = W::literal(&snapshot.table());
    // compare-and-set first: of two runs at `generation` only one updates the row (BigQuery
    // serializes DML on a table; Delta's optimistic concurrency fails the other's commit); only
    // the winner then applies its delta. A crash part way leaves the snapshot behind (older
    // hashes), never ahead, and the mappings behind (a full pass next)
    let moved = w.exec(&format!(
        "UPDATE {meta} SET generation = generation + 1 WHERE name = {name} AND generation = {generation}"
    ))?;
    if moved != Some(1) {
        return Err(refused(
            snapshot,
            format!(
                "it is no longer at generation {generation}: another run moved it on; the next sync takes a full pass"
            ),
        ));
    }
    for batch in delta.upserts.chunks(BATCH) {
        let ids: Vec<String> = batch.iter().map(|(id, _)| W::literal(id)).collect();
        // (i64::MIN, DUPLICATED, has no literal of its own: every hash is written as a sum)
        let values: Vec<String> =
            batch.iter().map(|(id, h)| format!("({}, {} + ({}))", W::literal(id), h / 2, h - h / 2)).collect();
        w.exec(&format!("DELETE FROM {table} WHERE id IN ({})", ids.join(", ")))?;
        w.exec(&format!("INSERT INTO {table} (id, h) VALUES {}", values.join(", ")))?;
    }
    for list in id_batches(&delta.gone, W::literal) {
        w.exec(&format!("DELETE FROM {table} WHERE id IN ({list})"))?;
    }
    let rows = number(w, &format!("SELECT COUNT(*) FROM {table}"))?;
    w.exec(&format!("UPDATE {meta} SET row_count = {rows} WHERE name = {name}"))?;
    Ok(generation + 1)
}
