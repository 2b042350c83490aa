//! [`WarehouseDiff`] on BigQuery (docs/DIFF.md, "BigQuery"). `sluice_schema` is a dataset of
//! the source's project.
//!
//! The model only ever runs as the subquery of Sluice's own statement, after its dry run said
//! `SELECT` (as the scan runs it): a subquery cannot hold DML, DDL or a script, so the model
//! cannot write whether it is read by a SELECT or by `CREATE OR REPLACE TABLE dataset.snap AS
//! SELECT …` (the snapshot is built inside BigQuery; no row leaves it). Only
//! `dataset.sluice_snapshots` and the dataset's snapshot tables are ever written.
//!
//! Row hash: `FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(col, …)))` over every column of the model
//! (TO_JSON_STRING writes a NULL field as `null`, so a NULL changes it).

use super::{rows, BigQueryWarehouse, PAGE_ROWS};
use crate::diff::WarehouseDiff;
use crate::rest::backquote;
use crate::rest_diff::{self, RestDiff, META};
use crate::{model_sql, WarehouseError};
use serde_json::Value;
use std::time::Duration;

/// A STRING literal of `s` that reads the same in every dialect: its UTF-8 bytes in hex.
pub(super) fn literal(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    format!("CAST(FROM_HEX('{hex}') AS STRING)")
}

/// `ids` in byte order without repeats, as `IN` lists of at most [`rest_diff::BATCH`] literals.
pub(super) fn id_batches(ids: &[String]) -> Vec<String> {
    rest_diff::id_batches(ids, literal)
}

impl RestDiff for BigQueryWarehouse {
    const INT64: &'static str = "an INT64";

    fn literal(s: &str) -> String {
        literal(s)
    }

    fn schema_sql(schema: &str) -> String {
        backquote(schema)
    }

    fn not_found(message: &str) -> bool {
        message.contains("Not found")
    }

    fn target(&self) -> String {
        self.client.http.target.clone()
    }

    fn exec(&mut self, sql: &str) -> Result<Option<i64>, WarehouseError> {
        let _busy = self.canceller.busy()?;
        let canceller = self.canceller.clone();
        self.client.exec(sql, &canceller).map_err(|e| canceller.explain(e))
    }

    fn select(&mut self, sql: &str, limit: usize) -> Result<Vec<Vec<Option<String>>>, WarehouseError> {
        let _busy = self.canceller.busy()?;
        let canceller = self.canceller.clone();
        let target = self.client.http.target.clone();
        let mut out = Vec::new();
        self.client.run(sql, Duration::MAX, PAGE_ROWS, &canceller, &mut |fs, row| {
            let cells = rows::cells(row, fs.len())
                .map_err(|m| WarehouseError::Answer { target: target.clone(), message: m })?;
            out.push(cells.iter().map(|c| c["v"].as_str().map(String::from)).collect());
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// The row hash, after a dry run said the model is a `SELECT`.
    fn hashed(&mut self, sql: &str, id_column: &str) -> Result<String, WarehouseError> {
        let fields = self.describe(sql)?;
        let cols: Vec<String> = fields.iter().map(|f| format!("sluice_model.{}", backquote(&f.name))).collect();
        Ok(format!(
            "SELECT CAST(sluice_model.{id} AS STRING) AS id, FARM_FINGERPRINT(TO_JSON_STRING(STRUCT({cols}))) AS h, 1 AS n \
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
        let target = self.client.http.target.clone();
        self.client.run(query, Duration::MAX, PAGE_ROWS, &canceller, &mut |fs, row| {
            let cells = rows::cells(row, fs.len())
                .map_err(|m| WarehouseError::Answer { target: target.clone(), message: m })?;
            let values: Vec<&Value> = cells.iter().map(|c| &c["v"]).collect();
            each(&values)?;
            Ok(true)
        })
    }
}

impl WarehouseDiff for BigQueryWarehouse {
    fn check_schema(&mut self, schema: &str) -> Result<(), WarehouseError> {
        // creating the metadata table (when missing) is the check that the dataset exists and
        // Sluice may create tables in it
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {}.{META} (name STRING NOT NULL, generation INT64 NOT NULL, \
             config_hash STRING NOT NULL, row_count INT64 NOT NULL)",
            backquote(schema)
        );
        self.exec(&sql).map(|_| ()).map_err(|e| {
            let project = &self.client.project;
            WarehouseError::SnapshotSchema(format!(
                "dataset `{schema}` is missing or Sluice's service account may not create tables in it ({e}): run \
                 `CREATE SCHEMA `{project}`.{schema}` (in the models' location) and grant the service account \
                 `roles/bigquery.dataEditor` on that dataset only"
            ))
        })
    }

    rest_diff::rest_diff_methods!();
}
