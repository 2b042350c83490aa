//! The state store: the applied workspace, per-mapping checkpoints, run history and usage,
//! in one SQLite file (`state.db` under the state folder).

mod alerts;
mod audit;
mod checkpoint;
pub mod files;
pub mod privacy;
mod runs;
pub mod secrets;
mod tokens;

pub use alerts::{AlertChange, AlertEvent, AlertState, Firing, Notify};
pub use audit::AuditEntry;
pub use checkpoint::{CheckpointWrite, ConsentSignature, Entry, Pending, Proof};
pub use privacy::{DeleteStatus, DestinationStatus, NewRegulation, PlannedDelete, Regulation, RegulationType};
pub use runs::{RunRow, RunStatus, UsageRow};
pub use secrets::{SecretBox, SecretError};
pub use tokens::{Role, TokenInfo, TokenRow};

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state database could not be opened or written.
    #[error("state store {path}: {source}")]
    Db {
        /// The state file.
        path: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The state folder could not be created.
    #[error("cannot create state folder {path}: {source}")]
    Dir {
        /// The folder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Stored JSON could not be read back.
    #[error("state store holds unreadable data: {0}")]
    Corrupt(String),
}

/// Result of the state store.
pub type Result<T> = std::result::Result<T, StateError>;

/// The applied workspace as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkspace {
    /// The workspace file's content after `${VAR}` substitution, as JSON.
    pub config: serde_json::Value,
    /// The folder relative paths resolve from.
    pub base_dir: PathBuf,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
}

/// The state store.
pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

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
";

impl StateStore {
    /// Opens (creating if needed) the state in folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        files::private_dir(dir).map_err(|source| StateError::Dir { path: dir.display().to_string(), source })?;
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
        store.wrap(store.conn.execute_batch(checkpoint::PROOF_SCHEMA))?;
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

    /// The state database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state folder.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub(crate) fn wrap<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| StateError::Db { path: self.path.display().to_string(), source })
    }

    /// Stores the applied workspace, replacing the previous one.
    pub fn save_workspace(&self, ws: &StoredWorkspace) -> Result<()> {
        self.wrap(self.conn.execute(
            "insert into workspace (id, config, base_dir, applied_at) values (1, ?1, ?2, ?3)
             on conflict (id) do update set config = excluded.config, base_dir = excluded.base_dir,
             applied_at = excluded.applied_at",
            params![ws.config.to_string(), ws.base_dir.to_string_lossy(), ws.applied_at],
        ))?;
        Ok(())
    }

    /// The applied workspace, if any.
    pub fn workspace(&self) -> Result<Option<StoredWorkspace>> {
        let row: Option<(String, String, String)> = self.wrap(
            self.conn
                .query_row("select config, base_dir, applied_at from workspace where id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional(),
        )?;
        row.map(|(config, base_dir, applied_at)| {
            Ok(StoredWorkspace {
                config: serde_json::from_str(&config).map_err(|e| StateError::Corrupt(e.to_string()))?,
                base_dir: base_dir.into(),
                applied_at,
            })
        })
        .transpose()
    }

    /// Folds the write-ahead log into the database file (for measuring its size).
    pub fn compact(&self) -> Result<()> {
        self.wrap(self.conn.execute_batch("pragma wal_checkpoint(truncate);"))
    }

    /// The id order a mapping's checkpoint keys follow (`None` for a new mapping).
    pub fn mapping_id_order(&self, mapping: i64) -> Result<Option<String>> {
        self.wrap(self.conn.query_row("select id_order from mappings where id = ?1", [mapping], |r| r.get(0)))
    }

    /// Records the id order of a mapping's checkpoint keys.
    pub fn set_mapping_id_order(&self, mapping: i64, order: &str) -> Result<()> {
        self.wrap(self.conn.execute("update mappings set id_order = ?2 where id = ?1", params![mapping, order]))?;
        Ok(())
    }

    /// The numeric id of the mapping (model, destination) if it was ever synced; unlike
    /// [`StateStore::mapping_id`] it writes nothing (a what-if reads the state, never changes it).
    pub fn find_mapping_id(&self, model: &str, destination: &str) -> Result<Option<i64>> {
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

    /// The numeric id of the mapping (model, destination), created on first use.
    pub fn mapping_id(&self, model: &str, destination: &str) -> Result<i64> {
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
}

#[cfg(test)]
mod tests;
