//! The SQLite backend: one file, `state.db`, in the state folder (the embedded default).

mod alerts;
mod audit;
mod checkpoint;
mod leases;
mod privacy;
mod runs;
mod tokens;

use crate::{files, parse_json, Result, StateError, StoredWorkspace};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// The SQLite state.
pub(crate) struct Sqlite {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// The schema; every statement is idempotent (run at each open). A table added here is added to
/// `postgres/migrations.rs` as a new step too.
const SCHEMA: &str = "
create table if not exists workspace (
    id integer primary key check (id = 1),
    config text not null,
    base_dir text not null,
    applied_at text not null
);
create table if not exists mappings (
    id integer primary key,
    model text not null,
    destination text not null,
    id_order text,
    unique (model, destination)
);
create table if not exists checkpoint (
    mapping integer not null,
    id text not null,
    held integer,
    pending integer not null default 0,
    hash integer,
    attempts integer not null default 0,
    first_failed integer,
    -- proof of consent: run << 16 | consent signature (checkpoint.rs Proof)
    proof integer,
    primary key (mapping, id)
) without rowid;
-- the entries waiting for a retry (pending = 2), so a sparse pass lists them without reading
-- every entry; normally empty, so it costs nothing per record (docs/DIFF.md)
create index if not exists checkpoint_failed on checkpoint (mapping, id) where pending = 2;
-- the warehouse snapshot generation each mapping has caught up with (docs/DIFF.md)
create table if not exists snapshot_generations (
    mapping integer primary key,
    generation integer not null
);
create table if not exists runs (
    id integer primary key,
    model text not null,
    started_at text not null,
    finished_at text,
    status text not null,
    report text
);
create table if not exists audit_log (
    id integer primary key,
    at text not null,
    actor text not null,
    action text not null,
    kind text not null,
    entity text not null,
    before text,
    after text
);
create trigger if not exists audit_log_no_update before update on audit_log
    begin select raise(abort, 'the audit log is append-only'); end;
create trigger if not exists audit_log_no_delete before delete on audit_log
    begin select raise(abort, 'the audit log is append-only'); end;
create table if not exists tokens (
    id integer primary key,
    name text not null,
    role text not null,
    hash text not null unique,
    created_at text not null,
    disabled integer not null default 0
);
-- privacy requests (SPEC §12, docs/PRIVACY.md): the request, each destination's delete status,
-- the suppressed identifiers, and a counter `serve` polls to reload its in-memory set
create table if not exists regulations (
    id text primary key,
    type text not null,
    subject_type text not null,
    subject_ids text not null,
    joined_ids text not null,
    created_by text not null,
    created_at text not null
);
create table if not exists regulation_destinations (
    regulation text not null,
    destination text not null,
    status text not null,
    attempts integer not null default 0,
    next_at integer not null default 0,
    error text,
    finished_at text,
    stream_seq integer,
    primary key (regulation, destination)
) without rowid;
create index if not exists regulation_destinations_running on regulation_destinations (next_at)
    where status = 'RUNNING';
create table if not exists suppressions (
    ident text primary key,
    regulation text not null,
    created_at text not null
) without rowid;
create table if not exists privacy_version (
    id integer primary key check (id = 1),
    version integer not null
);
create table if not exists usage (
    month text not null,
    destination text not null,
    records integer not null,
    primary key (month, destination)
);
-- Reverse ETL leases: one row per model, kept after release so its token only grows
-- (expires_at: unix milliseconds of the database clock; 0 when released)
create table if not exists leases (
    model text primary key,
    token integer not null,
    worker text not null,
    expires_at integer not null
);
";

impl Sqlite {
    /// Opens (creating) `state.db` in `dir` (which exists).
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("state.db");
        let conn =
            Connection::open(&path).map_err(|source| StateError::Db { path: path.display().to_string(), source })?;
        files::tighten_db(&path).map_err(|source| StateError::Dir { path: path.display().to_string(), source })?;
        let store = Self { conn, path };
        store.wrap(
            store
                .conn
                .execute_batch("pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 10000;"),
        )?;
        store.wrap(store.conn.execute_batch(SCHEMA))?;
        store.wrap(store.conn.execute_batch(alerts::SCHEMA))?;
        store.wrap(store.conn.execute_batch(crate::checkpoint::PROOF_SCHEMA))?;
        // proof of consent (a column added after the first release): added to older state files
        let has_proof: bool = store.wrap(store.conn.query_row(
            "select count(*) > 0 from pragma_table_info('checkpoint') where name = 'proof'",
            [],
            |r| r.get(0),
        ))?;
        if !has_proof {
            store.wrap(store.conn.execute_batch("alter table checkpoint add column proof integer"))?;
        }
        Ok(store)
    }

    pub(crate) fn wrap<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| StateError::Db { path: self.path.display().to_string(), source })
    }

    /// The error wrapper for use while a transaction borrows the connection.
    pub(crate) fn wrapper(&self) -> impl Fn(rusqlite::Error) -> StateError {
        let path = self.path.display().to_string();
        move |source| StateError::Db { path: path.clone(), source }
    }

    pub(crate) fn save_workspace(&self, ws: &StoredWorkspace) -> Result<()> {
        self.wrap(self.conn.execute(
            "insert into workspace (id, config, base_dir, applied_at) values (1, ?1, ?2, ?3)
             on conflict (id) do update set config = excluded.config, base_dir = excluded.base_dir,
             applied_at = excluded.applied_at",
            params![ws.config.to_string(), ws.base_dir.to_string_lossy(), ws.applied_at],
        ))?;
        Ok(())
    }

    pub(crate) fn workspace(&self) -> Result<Option<StoredWorkspace>> {
        let row: Option<(String, String, String)> = self.wrap(
            self.conn
                .query_row("select config, base_dir, applied_at from workspace where id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional(),
        )?;
        row.map(|(config, base_dir, applied_at)| {
            Ok(StoredWorkspace { config: parse_json(&config)?, base_dir: base_dir.into(), applied_at })
        })
        .transpose()
    }

    pub(crate) fn compact(&self) -> Result<()> {
        self.wrap(self.conn.execute_batch("pragma wal_checkpoint(truncate);"))
    }

    pub(crate) fn mapping_id_order(&self, mapping: i64) -> Result<Option<String>> {
        self.wrap(self.conn.query_row("select id_order from mappings where id = ?1", [mapping], |r| r.get(0)))
    }

    pub(crate) fn set_mapping_id_order(&self, mapping: i64, order: &str) -> Result<()> {
        self.wrap(self.conn.execute("update mappings set id_order = ?2 where id = ?1", params![mapping, order]))?;
        Ok(())
    }

    pub(crate) fn find_mapping_id(&self, model: &str, destination: &str) -> Result<Option<i64>> {
        self.wrap(
            self.conn
                .query_row(
                    "select id from mappings where model = ?1 and destination = ?2",
                    params![model, destination],
                    |r| r.get(0),
                )
                .optional(),
        )
    }

    pub(crate) fn mapping_id(&self, model: &str, destination: &str) -> Result<i64> {
        self.wrap(self.conn.execute(
            "insert into mappings (model, destination) values (?1, ?2) on conflict do nothing",
            params![model, destination],
        ))?;
        self.wrap(self.conn.query_row(
            "select id from mappings where model = ?1 and destination = ?2",
            params![model, destination],
            |r| r.get(0),
        ))
    }

    /// Test access: the text of every cell of a query's rows (for hostile and raw checks).
    #[cfg(test)]
    pub(crate) fn raw_strings(&self, sql: &str) -> Result<Vec<String>> {
        let mut stmt = self.wrap(self.conn.prepare(sql))?;
        let n = stmt.column_count();
        let mut rows = self.wrap(stmt.query([]))?;
        let mut out = Vec::new();
        while let Some(r) = self.wrap(rows.next())? {
            for i in 0..n {
                let v: rusqlite::types::Value = self.wrap(r.get(i))?;
                out.push(match v {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                });
            }
        }
        Ok(out)
    }

    /// Test access: runs a statement as is.
    #[cfg(test)]
    pub(crate) fn raw_execute(&self, sql: &str) -> Result<()> {
        self.wrap(self.conn.execute_batch(sql))
    }
}
