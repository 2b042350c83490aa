//! [`WarehouseDiff`] on Snowflake (docs/DIFF.md, "Snowflake").
//!
//! The model only ever runs as the subquery of Sluice's own statement, as the scan runs it: it
//! is first compiled alone (`describeOnly`) as `SELECT … FROM (<model>) AS sluice_model`, and
//! refused unless the server reports a SELECT. A subquery cannot hold a statement, and one
//! request runs one statement (`MULTI_STATEMENT_COUNT = 1`), so the model cannot write, whether
//! it is then read by a SELECT or by `CREATE TABLE … AS SELECT` into the snapshot schema. The
//! snapshot is built inside Snowflake (no row leaves it); only `SLUICE_SNAPSHOTS` and the
//! snapshot tables of `sluice_schema` are ever written.
//!
//! Row hash: `HASH(col, …)` over every column of the model (HASH never returns NULL and a NULL
//! column changes it), folded into `NUMBER(19,0)` with `% 9223372036854775807` so it is the
//! same signed 64-bit value on Snowflake and on fakesnow (whose DuckDB `hash` is unsigned).

use super::{wrapped, SnowflakeWarehouse};
use crate::diff::{DiffDelta, DiffItem, Snapshot, SnapshotInfo, WarehouseDiff, DUPLICATED};
use crate::{quote_ident, IdOrder, WarehouseError};

/// The metadata table of every snapshot in a schema.
const META: &str = "SLUICE_SNAPSHOTS";
/// Ids per statement (an `IN` list or a `VALUES` list): keeps each statement well under
/// Snowflake's statement size.
const BATCH: usize = 1000;
/// Retried ids one diff query takes as literals (a few hundred KB of text at most, far under the
/// statement size limits); more make the sync take a full pass.
const MAX_RETRY: usize = 5000;

/// A Snowflake string literal of `s` (backslash escaped, as Snowflake reads it; a quote doubled).
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// `ids` in `order` (the order a scan returns them), without repeats, as `IN` lists of at most
/// [`BATCH`] literals.
pub(super) fn id_batches(ids: &[String], order: IdOrder) -> Vec<String> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort_by(|a, b| order.key(a).cmp(&order.key(b)).then_with(|| a.cmp(b)));
    ids.dedup();
    ids.chunks(BATCH).map(|c| c.iter().map(|i| literal(i)).collect::<Vec<_>>().join(", ")).collect()
}

impl SnowflakeWarehouse {
    fn refused(snapshot: &Snapshot, message: impl Into<String>) -> WarehouseError {
        WarehouseError::Snapshot { model: snapshot.model.clone(), message: message.into() }
    }

    /// The rows of one of Sluice's own statements (small answers: counts, metadata).
    fn rows_of(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, WarehouseError> {
        let answer = self.statement(sql, false, self.statement_timeout)?;
        let mut out = Vec::new();
        self.each_row(answer, &mut |r| {
            out.push(r);
            Ok(out.len() < 10_000)
        })?;
        Ok(out)
    }

    /// The first column of the first row as an integer.
    fn number(&mut self, sql: &str) -> Result<i64, WarehouseError> {
        let rows = self.rows_of(sql)?;
        let cell = rows.first().and_then(|r| r.first()).cloned().flatten();
        parse_int(cell.as_deref()).ok_or_else(|| WarehouseError::Answer {
            target: self.session.target.clone(),
            message: format!("`{}` answered {cell:?}, not a number", sql.lines().next().unwrap_or("")),
        })
    }

    /// The model's `(id as text, row hash)` of every row as `SELECT ID, H, 1 AS N` over the
    /// checked subquery (the model's description must be a SELECT).
    fn hashed(&mut self, sql: &str, id_column: &str) -> Result<String, WarehouseError> {
        let cols = self.describe_model(sql)?;
        let args: Vec<String> = cols.iter().map(|c| format!("sluice_model.{}", quote_ident(&c.name))).collect();
        let hash = format!("CAST(HASH({}) % 9223372036854775807 AS NUMBER(19,0))", args.join(", "));
        Ok(wrapped(&format!("TO_VARCHAR(sluice_model.{}) AS ID, {hash} AS H, 1 AS N", quote_ident(id_column)), sql, ""))
    }

    fn tables(snapshot: &Snapshot) -> (String, String) {
        // the schema unquoted (validated as a plain identifier), so it folds to upper case as
        // the operator's own `CREATE SCHEMA sluice` does
        (format!("{}.{META}", snapshot.schema), format!("{}.{}", snapshot.schema, snapshot.table().to_uppercase()))
    }

    fn rollback(&mut self) {
        if let Err(e) = self.statement("ROLLBACK", false, None) {
            tracing::warn!(error = %e, "snowflake rollback of a snapshot advance failed");
        }
    }

    fn advance_in_tx(
        &mut self,
        snapshot: &Snapshot,
        delta: &DiffDelta,
        generation: i64,
    ) -> Result<i64, WarehouseError> {
        let (meta, table) = Self::tables(snapshot);
        let name = literal(&snapshot.table());
        // compare-and-set: DML locks the table, so of two runs at `generation` one updates
        let moved = self.number(&format!(
            "UPDATE {meta} SET GENERATION = GENERATION + 1 WHERE NAME = {name} AND GENERATION = {generation}"
        ))?;
        if moved != 1 {
            return Err(Self::refused(
                snapshot,
                format!("it is no longer at generation {generation}: another run moved it on; the next sync takes a full pass"),
            ));
        }
        // an upsert as DELETE + INSERT (fakesnow cannot MERGE inside a transaction that
        // already wrote; real Snowflake takes both forms alike)
        for batch in delta.upserts.chunks(BATCH) {
            let ids: Vec<String> = batch.iter().map(|(id, _)| literal(id)).collect();
            let values: Vec<String> = batch.iter().map(|(id, h)| format!("({}, {h})", literal(id))).collect();
            self.statement(
                &format!("DELETE FROM {table} WHERE ID IN ({})", ids.join(", ")),
                false,
                self.statement_timeout,
            )?;
            self.statement(
                &format!("INSERT INTO {table} (ID, H) VALUES {}", values.join(", ")),
                false,
                self.statement_timeout,
            )?;
        }
        for list in id_batches(&delta.gone, IdOrder::Text) {
            self.statement(&format!("DELETE FROM {table} WHERE ID IN ({list})"), false, self.statement_timeout)?;
        }
        let rows = self.number(&format!("SELECT COUNT(*) FROM {table}"))?;
        self.statement(&format!("UPDATE {meta} SET ROWS = {rows} WHERE NAME = {name}"), false, None)?;
        self.statement("COMMIT", false, None)?;
        Ok(generation + 1)
    }
}

/// An integer answered as text (`12`, or `12.0` from a scaled number).
fn parse_int(s: Option<&str>) -> Option<i64> {
    let s = s?.trim();
    s.parse().ok().or_else(|| s.strip_suffix(".0").and_then(|s| s.parse().ok()))
}

impl WarehouseDiff for SnowflakeWarehouse {
    fn check_schema(&mut self, schema: &str) -> Result<(), WarehouseError> {
        // creating the metadata table (when it is missing) is the check that the role may
        // create tables there; nothing outside the schema is touched
        let r = self.statement(
            &format!(
                "CREATE TABLE IF NOT EXISTS {schema}.{META} (NAME VARCHAR NOT NULL, GENERATION NUMBER(19,0) NOT NULL,
                 CONFIG_HASH VARCHAR NOT NULL, ROWS NUMBER(19,0) NOT NULL)"
            ),
            false,
            None,
        );
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let role = self.session.role.clone().unwrap_or_else(|| "<sluice role>".into());
                Err(WarehouseError::SnapshotSchema(format!(
                    "schema `{schema}` is missing or role `{role}` may not create tables in it ({e}): run \
                     `CREATE SCHEMA {schema};` and `GRANT USAGE, CREATE TABLE ON SCHEMA {schema} TO ROLE {role};` \
                     (or create it as that role)"
                )))
            }
        }
    }

    fn snapshot_info(&mut self, snapshot: &Snapshot) -> Result<Option<SnapshotInfo>, WarehouseError> {
        let (meta, _) = Self::tables(snapshot);
        let sql =
            format!("SELECT GENERATION, CONFIG_HASH, ROWS FROM {meta} WHERE NAME = {}", literal(&snapshot.table()));
        let rows = match self.rows_of(&sql) {
            Ok(rows) => rows,
            // no metadata table (or schema) yet: never built (a rebuild then names the grant)
            Err(WarehouseError::Sql { sqlstate: Some(s), .. }) if s == "42S02" => return Ok(None),
            Err(WarehouseError::Sql { message, .. }) if message.contains("does not exist") => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(r) = rows.into_iter().next() else { return Ok(None) };
        let bad = || WarehouseError::Answer {
            target: self.session.target.clone(),
            message: format!("a malformed row of {meta}"),
        };
        match (
            parse_int(r.first().cloned().flatten().as_deref()),
            r.get(1).cloned().flatten(),
            parse_int(r.get(2).cloned().flatten().as_deref()),
        ) {
            (Some(generation), Some(config_hash), Some(rows)) => {
                Ok(Some(SnapshotInfo { generation, config_hash, rows }))
            }
            _ => Err(bad()),
        }
    }

    fn rebuild_snapshot(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
        id_column: &str,
        config_hash: &str,
    ) -> Result<SnapshotInfo, WarehouseError> {
        // the model is checked (a SELECT) before anything is written
        let hashed = self.hashed(sql, id_column)?;
        self.check_schema(&snapshot.schema).map_err(|e| Self::refused(snapshot, e.to_string()))?;
        let (meta, table) = Self::tables(snapshot);
        let name = literal(&snapshot.table());
        // first the metadata stops matching any configuration and moves on a generation, so a
        // crash part way leaves a snapshot no sparse pass uses (and no advance applies to)
        self.statement(
            &format!(
                "MERGE INTO {meta} AS t USING (SELECT {name} AS NAME) AS d ON t.NAME = d.NAME
                 WHEN MATCHED THEN UPDATE SET GENERATION = t.GENERATION + 1, CONFIG_HASH = ''
                 WHEN NOT MATCHED THEN INSERT (NAME, GENERATION, CONFIG_HASH, ROWS) VALUES (d.NAME, 0, '', 0)"
            ),
            false,
            None,
        )?;
        // built inside Snowflake from the checked subquery; an id seen more than once gets a
        // hash no row has; NULL ids are left out (CREATE OR REPLACE swaps the table atomically)
        self.statement(
            &format!(
                "CREATE OR REPLACE TABLE {table} (ID VARCHAR NOT NULL, H NUMBER(19,0) NOT NULL) AS SELECT ID, \
                 CAST(CASE WHEN COUNT(*) = 1 THEN MIN(H) ELSE {DUPLICATED} END AS NUMBER(19,0)) AS H FROM ({hashed}) AS m \
                 WHERE ID IS NOT NULL GROUP BY ID"
            ),
            false,
            self.statement_timeout,
        )
        .map_err(|e| match e {
            WarehouseError::Sql { .. } => super::in_model(e),
            e => e,
        })?;
        let rows = self.number(&format!("SELECT COUNT(*) FROM {table}"))?;
        self.statement(
            &format!(
                "UPDATE {meta} SET GENERATION = GENERATION + 1, CONFIG_HASH = {}, ROWS = {rows} WHERE NAME = {name}",
                literal(config_hash)
            ),
            false,
            None,
        )?;
        let generation = self.number(&format!("SELECT GENERATION FROM {meta} WHERE NAME = {name}"))?;
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
        let retried: Vec<String> =
            id_batches(retry, IdOrder::Text).into_iter().map(|list| format!(" OR m.ID IN ({list})")).collect();
        // every row of the model (NULL ids included, to be counted) against the snapshot; a
        // SELECT, checked as the scan's is
        let query = format!(
            "SELECT COALESCE(m.ID, s.ID) AS ID, TO_VARCHAR(m.H) AS H FROM ({hashed}) AS m FULL OUTER JOIN {table} AS s ON s.ID = m.ID \
             WHERE m.N IS NULL OR m.ID IS NULL OR s.ID IS NULL OR s.H <> m.H{} ORDER BY TO_BINARY(COALESCE(m.ID, s.ID), 'UTF-8')",
            retried.concat()
        );
        let answer = self.run(&query, false, self.statement_timeout)?;
        if answer.columns.len() != 2 {
            return Err(WarehouseError::sql("the diff's columns differ from the query's", None));
        }
        let target = self.session.target.clone();
        self.each_row(answer, &mut |r| {
            let mut r = r.into_iter();
            let (id, hash) = (r.next().flatten(), r.next().flatten());
            let item = match (id, hash) {
                (None, _) => DiffItem::NullId,
                (Some(id), None) => DiffItem::Gone(id),
                (Some(id), Some(h)) => match parse_int(Some(&h)) {
                    Some(hash) => DiffItem::Upsert { id, hash },
                    None => {
                        return Err(WarehouseError::Answer {
                            target: target.clone(),
                            message: format!("a row hash that is not a 64-bit integer: {h:?}"),
                        })
                    }
                },
            };
            sink(item).map_err(WarehouseError::Aborted)?;
            Ok(true)
        })
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
        self.statement("BEGIN", false, None)?;
        let r = self.advance_in_tx(snapshot, delta, generation);
        if r.is_err() {
            self.rollback();
        }
        r
    }
}
