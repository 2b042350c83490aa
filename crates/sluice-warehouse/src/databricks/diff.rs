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
use crate::diff::WarehouseDiff;
use crate::rest::backquote;
use crate::rest_diff::{self, RestDiff, META};
use crate::{model_sql, WarehouseError};
use serde_json::Value;
use std::time::Duration;

/// A STRING literal of `s` that no escaping rule can misread: its UTF-8 bytes in hex.
pub(super) fn literal(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    format!("CAST(unhex('{hex}') AS STRING)")
}

/// `ids` in byte order without repeats, as `IN` lists of at most [`rest_diff::BATCH`] literals.
pub(super) fn id_batches(ids: &[String]) -> Vec<String> {
    rest_diff::id_batches(ids, literal)
}

impl RestDiff for DatabricksWarehouse {
    const INT64: &'static str = "a BIGINT";

    fn literal(s: &str) -> String {
        literal(s)
    }

    fn schema_sql(schema: &str) -> String {
        schema_name(schema)
    }

    fn not_found(message: &str) -> bool {
        message.contains("TABLE_OR_VIEW_NOT_FOUND") || message.contains("SCHEMA_NOT_FOUND")
    }

    fn target(&self) -> String {
        self.client.http.target.clone()
    }

    /// Returns `num_affected_rows` when the statement is DML.
    fn exec(&mut self, sql: &str) -> Result<Option<i64>, WarehouseError> {
        let rows = self.select(sql, 2)?;
        Ok(rows.first().and_then(|r| r.first()).cloned().flatten().and_then(|n| n.parse().ok()))
    }

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

    /// The row hash, after the model's first keyword was checked to be a query's.
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

    fn diff_rows(
        &mut self,
        query: &str,
        each: &mut dyn FnMut(&[&Value]) -> Result<(), WarehouseError>,
    ) -> Result<(), WarehouseError> {
        let _busy = self.canceller.busy()?;
        let canceller = self.canceller.clone();
        self.client.run(query, Disposition::ExternalLinks, Duration::MAX, &canceller, &mut |_, cells| {
            let values: Vec<&Value> = cells.iter().collect();
            each(&values)?;
            Ok(true)
        })?;
        Ok(())
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

    rest_diff::rest_diff_methods!();
}

/// A schema name as SQL: `schema` or `catalog.schema`, each part backquoted.
fn schema_name(schema: &str) -> String {
    schema.split('.').map(backquote).collect::<Vec<_>>().join(".")
}
