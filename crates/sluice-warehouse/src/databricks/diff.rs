//! [`WarehouseDiff`] on Databricks SQL (docs/DIFF.md, "Databricks"). `sluice_schema` is
//! `schema` (in the source's `catalog`) or `catalog.schema`.
//!
//! The model only ever runs as the subquery of Sluice's own statement, after its first keyword
//! was checked to be a query's (as the scan runs it): a subquery cannot hold DML, DDL or a
//! second statement, so the model cannot write whether it is read by a SELECT or by `CREATE OR
//! REPLACE TABLE schema.snap AS SELECT …` (the snapshot is built inside Databricks; no row
//! leaves it). Only `sluice_snapshots` and the snapshot tables of that schema are written.
//!
//! Row hash: `xxhash64(to_json(named_struct('c1', c1, …)))` over every column of the model.
//! Spark's `xxhash64(a, b)` skips NULL arguments (so `('x', NULL)` and `(NULL, 'x')` would hash
//! alike); the JSON object keeps each value under its column's name, so a NULL, or a value
//! moving between columns, changes the hash.

use super::client::Disposition;
use super::DatabricksWarehouse;
use crate::diff::{DiffDelta, DiffItem, Snapshot, SnapshotInfo, WarehouseDiff, DUPLICATED};
use crate::rest::backquote;
use crate::{model_sql, WarehouseError};
use serde_json::Value;
use std::time::Duration;

/// The metadata table of every snapshot in a dataset.
const META: &str = "sluice_snapshots";
/// Ids per statement (keeps a statement far under BigQuery's 1 MB of query text).
const BATCH: usize = 1000;
/// Retried ids one diff query takes as literals (a few hundred KB of text at most, far under the
/// statement size limits); more make the sync take a full pass.
const MAX_RETRY: usize = 5000;

/// A STRING literal of `s` that no escaping rule can misread: its UTF-8 bytes in hex.
pub(super) fn literal(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    format!("CAST(unhex('{hex}') AS STRING)")
}

/// `ids` in byte order without repeats, as `IN` lists of at most [`BATCH`] literals.
pub(super) fn id_batches(ids: &[String]) -> Vec<String> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort();
    ids.dedup();
    ids.chunks(BATCH).map(|c| c.iter().map(|i| literal(i)).collect::<Vec<_>>().join(", ")).collect()
}

impl DatabricksWarehouse {
    fn refused(snapshot: &Snapshot, message: impl Into<String>) -> WarehouseError {
        WarehouseError::Snapshot { model: snapshot.model.clone(), message: message.into() }
    }

    /// Runs one of Sluice's own statements; returns `num_affected_rows` when it is DML.
    fn exec(&mut self, sql: &str) -> Result<Option<i64>, WarehouseError> {
        let rows = self.select(sql, 2)?;
        Ok(rows.first().and_then(|r| r.first()).cloned().flatten().and_then(|n| n.parse().ok()))
    }

    /// Every row of one of Sluice's own statements, as text cells (at most `limit` rows).
    fn select(&mut self, sql: &str, limit: usize) -> Result<Vec<Vec<Option<String>>>, WarehouseError> {
        let _busy = self.canceller.busy()?;
        let canceller = self.canceller.clone();
        let mut out = Vec::new();
        self.client.run(sql, Disposition::Inline, Duration::MAX, &canceller, &mut |_, cells| {
            if out.len() < limit {
                out.push(cells.iter().map(|c| c.as_str().map(String::from)).collect());
            }
            Ok(true)
        })?;
        Ok(out)
    }

    fn number(&mut self, sql: &str) -> Result<i64, WarehouseError> {
        let rows = self.select(sql, 1)?;
        let cell = rows.first().and_then(|r| r.first()).cloned().flatten();
        cell.as_deref().and_then(|c| c.parse().ok()).ok_or_else(|| WarehouseError::Answer {
            target: self.client.http.target.clone(),
            message: format!("a count that is not a number: {cell:?}"),
        })
    }

    fn tables(snapshot: &Snapshot) -> (String, String) {
        let ds = schema_name(&snapshot.schema);
        (format!("{ds}.{META}"), format!("{ds}.{}", backquote(&snapshot.table())))
    }

    /// `SELECT id, h, 1 AS n` over the model, dry-run checked first.
    fn hashed(&mut self, sql: &str, id_column: &str) -> Result<String, WarehouseError> {
        let fields = self.describe(sql)?;
        let cols: Vec<String> =
            fields.iter().map(|f| format!("{}, sluice_model.{}", literal(&f.name), backquote(&f.name))).collect();
        Ok(format!(
            "SELECT CAST(sluice_model.{id} AS STRING) AS id, xxhash64(to_json(named_struct({cols}))) AS h, 1 AS n \
             FROM ({model}) AS sluice_model",
            id = backquote(id_column),
            cols = cols.join(", "),
            model = model_sql(sql)
        ))
    }
}

impl WarehouseDiff for DatabricksWarehouse {
    fn check_schema(&mut self, schema: &str) -> Result<(), WarehouseError> {
        // creating the metadata table (when missing) is the check that the dataset exists and
        // Sluice may create tables in it
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {}.{META} (name STRING NOT NULL, generation BIGINT NOT NULL, \
             config_hash STRING NOT NULL, row_count BIGINT NOT NULL)",
            schema_name(schema)
        );
        self.exec(&sql).map(|_| ()).map_err(|e| {
            WarehouseError::SnapshotSchema(format!(
                "schema `{schema}` is missing or Sluice's principal may not create tables in it ({e}): run \
                 `CREATE SCHEMA IF NOT EXISTS {schema};` and `GRANT USE SCHEMA, CREATE TABLE, MODIFY, SELECT ON SCHEMA \
                 {schema} TO <principal>;` (and USE CATALOG on its catalog)"
            ))
        })
    }

    fn snapshot_info(&mut self, snapshot: &Snapshot) -> Result<Option<SnapshotInfo>, WarehouseError> {
        let (meta, _) = Self::tables(snapshot);
        let sql = format!(
            "SELECT generation, config_hash, row_count FROM {meta} WHERE name = {}",
            literal(&snapshot.table())
        );
        let rows = match self.select(&sql, 2) {
            Ok(rows) => rows,
            // no metadata table (or schema) yet: never built
            Err(WarehouseError::Sql { message, .. })
                if message.contains("TABLE_OR_VIEW_NOT_FOUND") || message.contains("SCHEMA_NOT_FOUND") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let Some(r) = rows.into_iter().next() else { return Ok(None) };
        let int = |i: usize| r.get(i).cloned().flatten().and_then(|v| v.parse::<i64>().ok());
        match (int(0), r.get(1).cloned().flatten(), int(2)) {
            (Some(generation), Some(config_hash), Some(rows)) => {
                Ok(Some(SnapshotInfo { generation, config_hash, rows }))
            }
            _ => Err(WarehouseError::Answer {
                target: self.client.http.target.clone(),
                message: format!("a malformed row of {meta}"),
            }),
        }
    }

    fn rebuild_snapshot(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
        id_column: &str,
        config_hash: &str,
    ) -> Result<SnapshotInfo, WarehouseError> {
        // the model is checked (a query) before anything is written
        let hashed = self.hashed(sql, id_column)?;
        self.check_schema(&snapshot.schema).map_err(|e| Self::refused(snapshot, e.to_string()))?;
        let (meta, table) = Self::tables(snapshot);
        let name = literal(&snapshot.table());
        // first the metadata stops matching any configuration and moves on a generation, so a
        // crash part way leaves a snapshot no sparse pass uses and no advance applies to
        let moved =
            self.exec(&format!("UPDATE {meta} SET generation = generation + 1, config_hash = '' WHERE name = {name}"))?;
        if moved == Some(0) {
            self.exec(&format!(
                "INSERT INTO {meta} (name, generation, config_hash, row_count) VALUES ({name}, 0, '', 0)"
            ))?;
        }
        self.exec(&format!(
            "CREATE OR REPLACE TABLE {table} AS SELECT id, CASE WHEN COUNT(*) = 1 THEN MIN(h) ELSE {} - 1 END AS h \
             FROM ({hashed}) AS m WHERE id IS NOT NULL GROUP BY id",
            DUPLICATED + 1
        ))?;
        let rows = self.number(&format!("SELECT COUNT(*) FROM {table}"))?;
        self.exec(&format!(
            "UPDATE {meta} SET generation = generation + 1, config_hash = {}, row_count = {rows} WHERE name = {name}",
            literal(config_hash)
        ))?;
        let generation = self.number(&format!("SELECT generation FROM {meta} WHERE name = {name}"))?;
        Ok(SnapshotInfo { generation, config_hash: config_hash.to_string(), rows })
    }

    fn changes(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
        id_column: &str,
        retry: &[String],
        sink: &mut dyn FnMut(DiffItem) -> Result<(), String>,
    ) -> Result<(), WarehouseError> {
        let hashed = self.hashed(sql, id_column)?;
        let (_, table) = Self::tables(snapshot);
        let retried: String = id_batches(retry).into_iter().map(|list| format!(" OR m.id IN ({list})")).collect();
        let query = format!(
            "SELECT COALESCE(m.id, s.id) AS id, m.h AS h FROM ({hashed}) AS m FULL OUTER JOIN {table} AS s ON s.id = m.id \
             WHERE m.n IS NULL OR m.id IS NULL OR s.id IS NULL OR s.h != m.h{retried} ORDER BY 1"
        );
        let _busy = self.canceller.busy()?;
        let canceller = self.canceller.clone();
        let target = self.client.http.target.clone();
        let bad = |m: String| WarehouseError::Answer { target: target.clone(), message: m };
        self.client.run(&query, Disposition::ExternalLinks, Duration::MAX, &canceller, &mut |_, cells| {
            let text = |i: usize| match cells.get(i) {
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
                    let hash = h.parse().map_err(|_| bad(format!("a row hash that is not a BIGINT: {h:?}")))?;
                    DiffItem::Upsert { id, hash }
                }
            };
            sink(item).map_err(WarehouseError::Aborted)?;
            Ok(true)
        })?;
        Ok(())
    }

    fn max_retry(&self) -> Option<usize> {
        Some(MAX_RETRY)
    }

    fn advance_snapshot(
        &mut self,
        snapshot: &Snapshot,
        delta: &DiffDelta,
        generation: i64,
    ) -> Result<i64, WarehouseError> {
        let (meta, table) = Self::tables(snapshot);
        let name = literal(&snapshot.table());
        // compare-and-set first: of two runs at `generation` only one updates the row (Delta's
        // optimistic concurrency fails the other's commit); only the winner applies its delta. A crash part way
        // leaves the snapshot behind (older hashes), never ahead, and the mappings behind (a
        // full pass next)
        let moved = self.exec(&format!(
            "UPDATE {meta} SET generation = generation + 1 WHERE name = {name} AND generation = {generation}"
        ))?;
        if moved != Some(1) {
            return Err(Self::refused(
                snapshot,
                format!("it is no longer at generation {generation}: another run moved it on; the next sync takes a full pass"),
            ));
        }
        for batch in delta.upserts.chunks(BATCH) {
            let ids: Vec<String> = batch.iter().map(|(id, _)| literal(id)).collect();
            // (i64::MIN, DUPLICATED, has no literal of its own: every hash is written as a sum)
            let values: Vec<String> =
                batch.iter().map(|(id, h)| format!("({}, {} + ({}))", literal(id), h / 2, h - h / 2)).collect();
            self.exec(&format!("DELETE FROM {table} WHERE id IN ({})", ids.join(", ")))?;
            self.exec(&format!("INSERT INTO {table} (id, h) VALUES {}", values.join(", ")))?;
        }
        for list in id_batches(&delta.gone) {
            self.exec(&format!("DELETE FROM {table} WHERE id IN ({list})"))?;
        }
        let rows = self.number(&format!("SELECT COUNT(*) FROM {table}"))?;
        self.exec(&format!("UPDATE {meta} SET row_count = {rows} WHERE name = {name}"))?;
        Ok(generation + 1)
    }
}

/// A schema name as SQL: `schema` or `catalog.schema`, each part backquoted.
fn schema_name(schema: &str) -> String {
    schema.split('.').map(backquote).collect::<Vec<_>>().join(".")
}
