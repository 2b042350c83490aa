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

    /// The key type a new snapshot of this model gets: the model's own integer ids stay
    /// integers (so the diff can merge-join the model's primary key index with the snapshot's),
    /// every other id is kept as text.
    fn model_key(&mut self, sql: &str, id_column: &str) -> Result<Key, WarehouseError> {
        Ok(match crate::Warehouse::id_order(self, sql, id_column)? {
            crate::IdOrder::Integer => Key::Integer,
            crate::IdOrder::Text => Key::Text,
        })
    }

    /// The key type of an existing snapshot table (`Text` for one built before integer keys).
    fn snapshot_key(&mut self, snapshot: &Snapshot) -> Result<Key, WarehouseError> {
        let row = self
            .client
            .query_opt(
                "SELECT format_type(a.atttypid, NULL) FROM pg_attribute a
                 WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND a.attname = 'id'",
                &[&snapshot.schema, &snapshot.table()],
            )
            .map_err(|e| db_err(&e))?;
        Ok(match row.map(|r| r.get::<_, String>(0)).as_deref() {
            Some("bigint") => Key::Integer,
            _ => Key::Text,
        })
    }
}

/// A snapshot's id column: the model's integer ids natively, or any id as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Integer,
    Text,
}

impl Key {
    /// The column's SQL type.
    fn sql_type(self) -> &'static str {
        match self {
            Key::Integer => "bigint",
            Key::Text => "text",
        }
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
        // the ids and hashes go through a temporary file, not memory: a model of any size keeps
        // Sluice's memory bounded (about 30 bytes a row on disk, removed when dropped)
        let spill_err = |e: std::io::Error| Self::refused(snapshot, format!("a temporary file for the snapshot: {e}"));
        let mut spill = tempfile::tempfile().map_err(spill_err)?;
        {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut spill);
            let mut line = Vec::with_capacity(64);
            let mut tx = read_only(&mut self.client)?;
            let mut rows = tx.query_raw(query.as_str(), std::iter::empty::<i32>()).map_err(|e| sql_error(e, sql))?;
            while let Some(r) = rows.next().map_err(|e| sql_error(e, sql))? {
                let (id, h): (String, i64) = (r.get(0), r.get(1));
                line.clear();
                copy_line(&mut line, &id, h);
                out.write_all(&line).map_err(spill_err)?;
            }
            drop(rows);
            end(tx)?;
            out.flush().map_err(spill_err)?;
        }
        std::io::Seek::rewind(&mut spill).map_err(spill_err)?;
        let key = self.model_key(sql, id_column)?.sql_type();
        let (schema, table) = (quote_ident(&snapshot.schema), quote_ident(&snapshot.table()));
        let fresh = quote_ident(&format!("{}_new", snapshot.table()));
        let mut tx = writable(&mut self.client)?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {schema}.{META} (name text PRIMARY KEY, generation bigint NOT NULL,
                 config_hash text NOT NULL, rows bigint NOT NULL, built_at timestamptz NOT NULL DEFAULT now());
             DROP TABLE IF EXISTS {schema}.{fresh};
             CREATE TABLE {schema}.{fresh} (id {key} NOT NULL, h bigint NOT NULL);"
        ))
        .map_err(|e| {
            Self::refused(snapshot, format!("cannot write in schema `{}`: {}", snapshot.schema, super::error_text(&e)))
        })?;
        let mut w = tx.copy_in(&format!("COPY {schema}.{fresh} (id, h) FROM STDIN")).map_err(|e| db_err(&e))?;
        std::io::copy(&mut std::io::BufReader::with_capacity(1 << 16, spill), &mut w)
            .map_err(|e| Self::refused(snapshot, format!("writing the snapshot: {e}")))?;
        let rows = w.finish().map_err(|e| db_err(&e))? as i64;
        tx.batch_execute(&format!(
            "ALTER TABLE {schema}.{fresh} ADD PRIMARY KEY (id);
             ANALYZE {schema}.{fresh};
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
        // integer ids on both sides join natively (the planner can then merge-join the model's
        // primary key index with the snapshot's); any other pairing joins as text
        let native = self.snapshot_key(snapshot)? == Key::Integer && self.model_key(sql, id_column)? == Key::Integer;
        let (m_id, s_id, order, retry_type) = if native {
            ("m.id", "s.id", "", "bigint[]")
        } else {
            ("m.id::text", "s.id::text", " COLLATE \"C\"", "text[]")
        };
        // every row of the model (NULL ids included, to be counted), joined to the snapshot;
        // no grouping by id (it would double the cost): a duplicated id is caught when one of
        // its rows differs from the snapshot, and then kept at DUPLICATED (read every pass)
        let hash = self.row_hash()?;
        let id = quote_ident(id_column);
        let mut tx = read_only(&mut self.client)?;
        // a model the warehouse reads in id order from an index (a table's primary key) is
        // asked for that order: the planner then merge-joins the two indexes instead of
        // hashing a million snapshot rows (measured 2x faster); any other model is hashed
        let ordered =
            native && index_ordered(&mut tx, &format!("SELECT q.{id} FROM ({}) AS q ORDER BY q.{id}", model_sql(sql)))?;
        let model = format!(
            "SELECT q.{id} AS id, {hash} AS h, 1 AS n FROM ({sql}) AS q{order}",
            sql = model_sql(sql),
            order = if ordered { format!(" ORDER BY q.{id}") } else { String::new() }
        );
        // (both sides ordered, so the merge join needs no sort and wins on cost)
        let snap = if ordered {
            format!("(SELECT id, h FROM {schema}.{table} ORDER BY id)")
        } else {
            format!("{schema}.{table}")
        };
        let query = format!(
            "SELECT coalesce({m_id}, {s_id})::text AS id, m.h, m.n FROM ({model}) AS m
             FULL OUTER JOIN {snap} AS s ON {s_id} = {m_id}
             WHERE m.n IS NULL OR m.id IS NULL OR s.id IS NULL OR s.h <> m.h OR {m_id} = ANY($1::{retry_type})
             ORDER BY coalesce({m_id}, {s_id}){order}"
        );
        // retried ids as the key type (an id that is not an integer is not in an integer model)
        let retry_ints: Vec<i64> = retry.iter().filter_map(|id| id.parse().ok()).collect();
        let param: &(dyn postgres::types::ToSql + Sync) = if native { &retry_ints } else { &retry };
        let mut rows = tx.query_raw(query.as_str(), [param]).map_err(|e| sql_error(e, sql))?;
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
        let key = self.snapshot_key(snapshot)?.sql_type();
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
        // the row count moves by the ids added and the ids removed (no count of the whole table)
        let added: i64 = tx
            .query_one(
                &format!(
                    "WITH up AS (INSERT INTO {schema}.{table} (id, h)
                         SELECT u.id::{key}, u.h FROM unnest($1::text[], $2::bigint[]) AS u(id, h)
                         ON CONFLICT (id) DO UPDATE SET h = excluded.h RETURNING (xmax = 0) AS fresh)
                     SELECT count(*) FILTER (WHERE fresh) FROM up"
                ),
                &[&ids, &hashes],
            )
            .map_err(|e| db_err(&e))?
            .get(0);
        // (an id that is not an integer cannot be in an integer-keyed snapshot)
        let gone: Vec<&String> = delta.gone.iter().filter(|id| key == "text" || id.parse::<i64>().is_ok()).collect();
        let removed = tx
            .execute(&format!("DELETE FROM {schema}.{table} WHERE id = ANY($1::text[]::{key}[])"), &[&gone])
            .map_err(|e| db_err(&e))? as i64;
        let next: i64 = tx
            .query_one(
                &format!(
                    "UPDATE {schema}.{META} SET generation = generation + 1, rows = rows + $2, built_at = now()
                     WHERE name = $1 RETURNING generation"
                ),
                &[&snapshot.table(), &(added - removed)],
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

/// Whether the planner reads `query` (ordered by the id) without sorting it: from an index.
/// Planning only; nothing runs.
fn index_ordered(tx: &mut postgres::Transaction<'_>, query: &str) -> Result<bool, WarehouseError> {
    let plan: serde_json::Value =
        tx.query_one(&format!("EXPLAIN (FORMAT JSON) {query}"), &[]).map_err(|e| db_err(&e))?.get(0);
    fn sorts(node: &serde_json::Value) -> bool {
        let kind = node.get("Node Type").and_then(|k| k.as_str()).unwrap_or("");
        kind.contains("Sort")
            || node.get("Plans").and_then(|p| p.as_array()).is_some_and(|children| children.iter().any(sorts))
    }
    Ok(plan.get(0).and_then(|p| p.get("Plan")).is_some_and(|p| !sorts(p)))
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
