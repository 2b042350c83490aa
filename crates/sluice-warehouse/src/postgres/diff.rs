//! [`WarehouseDiff`] on PostgreSQL (docs/DIFF.md). The model's SQL only ever runs in a
//! `READ ONLY` transaction; the snapshot is written in a separate transaction that touches only
//! the schema Sluice owns, from rows the read-only query streamed out (never `CREATE TABLE AS`
//! over the model, which would run the model's SQL with write access).
//!
//! The row hash is `hash_record_extended(row, 0)` (PostgreSQL 14 and later: the binary values,
//! no text rendering); older servers use the first 64 bits of `md5(row::text)`.

use super::{db_err, end, read_only, sql_error, PostgresWarehouse};
use crate::diff::{DiffDelta, DiffItem, Snapshot, SnapshotInfo, WarehouseDiff};
use crate::{model_sql, quote_ident, WarehouseError};
use fallible_iterator::FallibleIterator;
use std::io::Write;

/// The metadata table of every snapshot in a schema.
const META: &str = "sluice_snapshots";

impl PostgresWarehouse {
    /// The SQL expression of a row's hash, for a row named `q`.
    fn row_hash(&mut self) -> Result<&'static str, WarehouseError> {
        let version: i32 = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(|e| db_err(&e))?
            .get(0);
        Ok(if version >= 140_000 {
            "hash_record_extended(q, 0)"
        } else {
            "('x' || substr(md5(q::text), 1, 16))::bit(64)::bigint"
        })
    }

    fn refused(snapshot: &Snapshot, message: impl Into<String>) -> WarehouseError {
        WarehouseError::Snapshot { model: snapshot.model.clone(), message: message.into() }
    }

    /// The model's ids and row hashes: `(id::text, hash)` of every row with a non-NULL id.
    fn hashed(&mut self, sql: &str, id_column: &str) -> Result<String, WarehouseError> {
        let hash = self.row_hash()?;
        Ok(format!(
            "SELECT (q.{id})::text AS id, {hash} AS h FROM ({sql}) AS q WHERE q.{id} IS NOT NULL",
            id = quote_ident(id_column),
            sql = model_sql(sql)
        ))
    }
}

impl WarehouseDiff for PostgresWarehouse {
    fn check_schema(&mut self, schema: &str) -> Result<(), WarehouseError> {
        let refused = WarehouseError::SnapshotSchema;
        let row = self
            .client
            .query_one(
                "SELECT to_regnamespace($1::text) IS NOT NULL, current_user::text,
                        CASE WHEN to_regnamespace($1::text) IS NOT NULL
                             THEN has_schema_privilege($1::text, 'CREATE, USAGE') ELSE false END",
                &[&schema],
            )
            .map_err(|e| db_err(&e))?;
        let (exists, role, may): (bool, String, bool) = (row.get(0), row.get(1), row.get(2));
        if !exists || !may {
            let what = if exists { "exists but role `{role}` may not create tables in it" } else { "does not exist" };
            return Err(refused(format!(
                "schema `{schema}` {}: run `CREATE SCHEMA {schema} AUTHORIZATION {role};` (or GRANT CREATE, USAGE ON SCHEMA {schema} TO {role})",
                what.replace("{role}", &role)
            )));
        }
        Ok(())
    }

    fn snapshot_info(&mut self, snapshot: &Snapshot) -> Result<Option<SnapshotInfo>, WarehouseError> {
        let schema = quote_ident(&snapshot.schema);
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                &[&snapshot.schema, &META],
            )
            .map_err(|e| db_err(&e))?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let row = self
            .client
            .query_opt(
                &format!("SELECT generation, config_hash, rows FROM {schema}.{META} WHERE name = $1"),
                &[&snapshot.table()],
            )
            .map_err(|e| db_err(&e))?;
        Ok(row.map(|r| SnapshotInfo { generation: r.get(0), config_hash: r.get(1), rows: r.get(2) }))
    }

    fn rebuild_snapshot(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
        id_column: &str,
        config_hash: &str,
    ) -> Result<SnapshotInfo, WarehouseError> {
        // read-only: the model's ids and hashes, each id once (a duplicated one as DUPLICATED)
        let query = format!(
            "SELECT id, CASE WHEN count(*) = 1 THEN min(h) ELSE {} END FROM ({}) AS m GROUP BY id",
            crate::diff::DUPLICATED,
            self.hashed(sql, id_column)?
        );
        let mut lines = Vec::new();
        {
            let mut tx = read_only(&mut self.client)?;
            let mut rows = tx.query_raw(query.as_str(), std::iter::empty::<i32>()).map_err(|e| sql_error(e, sql))?;
            while let Some(r) = rows.next().map_err(|e| sql_error(e, sql))? {
                let (id, h): (String, i64) = (r.get(0), r.get(1));
                copy_line(&mut lines, &id, h);
            }
            drop(rows);
            end(tx)?;
        }
        let (schema, table) = (quote_ident(&snapshot.schema), quote_ident(&snapshot.table()));
        let fresh = quote_ident(&format!("{}_new", snapshot.table()));
        let mut tx = writable(&mut self.client)?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {schema}.{META} (name text PRIMARY KEY, generation bigint NOT NULL,
                 config_hash text NOT NULL, rows bigint NOT NULL, built_at timestamptz NOT NULL DEFAULT now());
             DROP TABLE IF EXISTS {schema}.{fresh};
             CREATE TABLE {schema}.{fresh} (id text NOT NULL, h bigint NOT NULL);"
        ))
        .map_err(|e| {
            Self::refused(snapshot, format!("cannot write in schema `{}`: {}", snapshot.schema, super::error_text(&e)))
        })?;
        let mut w = tx.copy_in(&format!("COPY {schema}.{fresh} (id, h) FROM STDIN")).map_err(|e| db_err(&e))?;
        w.write_all(&lines).map_err(|e| Self::refused(snapshot, format!("writing the snapshot: {e}")))?;
        let rows = w.finish().map_err(|e| db_err(&e))? as i64;
        tx.batch_execute(&format!(
            "ALTER TABLE {schema}.{fresh} ADD PRIMARY KEY (id);
             DROP TABLE IF EXISTS {schema}.{table};
             ALTER TABLE {schema}.{fresh} RENAME TO {table};"
        ))
        .map_err(|e| db_err(&e))?;
        let generation: i64 = tx
            .query_one(
                &format!(
                    "INSERT INTO {schema}.{META} (name, generation, config_hash, rows) VALUES ($1, 1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET generation = {META}.generation + 1,
                         config_hash = excluded.config_hash, rows = excluded.rows, built_at = now()
                     RETURNING generation"
                ),
                &[&snapshot.table(), &config_hash, &rows],
            )
            .map_err(|e| db_err(&e))?
            .get(0);
        tx.commit().map_err(|e| db_err(&e))?;
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
        let (schema, table) = (quote_ident(&snapshot.schema), quote_ident(&snapshot.table()));
        // every row of the model (NULL ids included, to be counted), joined to the snapshot;
        // no grouping by id (it would double the cost): a duplicated id is caught when one of
        // its rows differs from the snapshot, and then kept at DUPLICATED (read every pass)
        let hash = self.row_hash()?;
        let model = format!(
            "SELECT (q.{id})::text AS id, {hash} AS h, 1 AS n FROM ({sql}) AS q",
            id = quote_ident(id_column),
            sql = model_sql(sql)
        );
        let query = format!(
            "SELECT coalesce(m.id, s.id) AS id, m.h, m.n FROM ({model}) AS m
             FULL OUTER JOIN {schema}.{table} AS s ON s.id = m.id
             WHERE m.n IS NULL OR m.id IS NULL OR s.id IS NULL OR s.h <> m.h OR m.id = ANY($1)
             ORDER BY coalesce(m.id, s.id) COLLATE \"C\""
        );
        let mut tx = read_only(&mut self.client)?;
        let mut rows = tx.query_raw(query.as_str(), [&retry]).map_err(|e| sql_error(e, sql))?;
        while let Some(r) = rows.next().map_err(|e| sql_error(e, sql))? {
            let read = |e: postgres::Error| sql_error(e, sql);
            let (id, hash): (Option<String>, Option<i64>) = (r.try_get(0).map_err(read)?, r.try_get(1).map_err(read)?);
            let item = match (id, hash) {
                (None, _) => DiffItem::NullId,
                (Some(id), Some(hash)) => DiffItem::Upsert { id, hash },
                (Some(id), None) => DiffItem::Gone(id),
            };
            sink(item).map_err(WarehouseError::Aborted)?;
        }
        drop(rows);
        end(tx)
    }

    fn advance_snapshot(
        &mut self,
        snapshot: &Snapshot,
        delta: &DiffDelta,
        generation: i64,
    ) -> Result<i64, WarehouseError> {
        let (schema, table) = (quote_ident(&snapshot.schema), quote_ident(&snapshot.table()));
        let mut tx = writable(&mut self.client)?;
        let now: Option<i64> = tx
            .query_opt(
                &format!("SELECT generation FROM {schema}.{META} WHERE name = $1 FOR UPDATE"),
                &[&snapshot.table()],
            )
            .map_err(|e| db_err(&e))?
            .map(|r| r.get(0));
        if now != Some(generation) {
            return Err(Self::refused(
                snapshot,
                format!("it is at generation {now:?}, not {generation}: another run moved it on; the next sync takes a full pass"),
            ));
        }
        let (ids, hashes): (Vec<&str>, Vec<i64>) = delta.upserts.iter().map(|(i, h)| (i.as_str(), *h)).unzip();
        tx.execute(
            &format!(
                "INSERT INTO {schema}.{table} (id, h) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (id) DO UPDATE SET h = excluded.h"
            ),
            &[&ids, &hashes],
        )
        .map_err(|e| db_err(&e))?;
        tx.execute(&format!("DELETE FROM {schema}.{table} WHERE id = ANY($1)"), &[&delta.gone])
            .map_err(|e| db_err(&e))?;
        let next: i64 = tx
            .query_one(
                &format!(
                    "UPDATE {schema}.{META} SET generation = generation + 1,
                         rows = (SELECT count(*) FROM {schema}.{table}), built_at = now()
                     WHERE name = $1 RETURNING generation"
                ),
                &[&snapshot.table()],
            )
            .map_err(|e| db_err(&e))?
            .get(0);
        tx.commit().map_err(|e| db_err(&e))?;
        Ok(next)
    }
}

/// A transaction that may write the snapshot, also for a role whose default is read-only
/// (`default_transaction_read_only = on`, as README advises for the models).
fn writable(client: &mut postgres::Client) -> Result<postgres::Transaction<'_>, WarehouseError> {
    client.build_transaction().read_only(false).start().map_err(|e| db_err(&e))
}

/// One line of `COPY … FROM STDIN` text format: the id escaped, a tab, the hash.
fn copy_line(out: &mut Vec<u8>, id: &str, hash: i64) {
    for c in id.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'\t');
    out.extend_from_slice(hash.to_string().as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
