//! The state store: the applied workspace, per-mapping checkpoints, run history, usage, API
//! tokens, the audit log and Reverse ETL leases.
//!
//! Two backends keep the same contract:
//! - **SQLite** (the embedded default): one file, `state.db`, under the state folder
//!   ([`StateStore::open`]);
//! - **PostgreSQL** (several processes share one state): one PostgreSQL schema (default
//!   `sluice`), created and migrated at open ([`StateStore::open_postgres`]).
//!
//! Credentials stay sealed under a key kept in a local file beside the state ([`secrets`]) with
//! either backend: the database alone reveals nothing.
//!
//! # Layout: adding a table
//! Each table (or group of tables) has one module with its public types and the public methods of
//! [`StateStore`] (`checkpoint.rs`, `runs.rs`, `audit.rs`, `tokens.rs`, `lease.rs`, the workspace
//! and mappings here), and the SQL of each backend in `sqlite/<same name>.rs` and
//! `postgres/<same name>.rs`. To add a table: its DDL in `sqlite/mod.rs`'s `SCHEMA` and in a new
//! step at the end of `postgres/migrations.rs` (never edit a step that shipped); methods with the
//! same name and signature on `sqlite::Sqlite` and `postgres::Postgres`; the public method here
//! calls [`on!`](on) (it does not compile until both backends have the method); tests in
//! `tests/`, added to the `suite!` list so they run on both.
//!
//! # Why an enum, not a trait object
//! The set of backends is closed and small, each keeps its natural connection type (a rusqlite
//! `Connection`, a `postgres::Client`), nothing is boxed, and a missing method on either backend
//! is a compile error at the one `match` that dispatches it.

mod alerts;
mod audit;
mod checkpoint;
pub mod files;
mod lease;
mod location;
mod postgres;
pub mod privacy;
mod runs;
pub mod secrets;
mod sqlite;
mod tokens;

pub use alerts::{AlertChange, AlertEvent, AlertState, Firing, Notify};
pub use audit::AuditEntry;
pub use checkpoint::{CheckpointWrite, ConsentSignature, Entry, Pending, Proof};
pub use lease::Lease;
pub use location::{is_postgres_url, StateLocation, LOCAL_DIR_ENV};
pub use postgres::PostgresState;
pub use privacy::{DeleteStatus, DestinationStatus, NewRegulation, PlannedDelete, Regulation, RegulationType};
pub use runs::{RunRow, RunStatus, UsageRow};
pub use secrets::{SecretBox, SecretError};
pub use tokens::{Role, TokenInfo, TokenRow};

use std::path::{Path, PathBuf};

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The SQLite state database could not be opened or written.
    #[error("state store {path}: {source}")]
    Db {
        /// The state file.
        path: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The PostgreSQL state database could not be reached, migrated or written.
    #[error("state store {db}: {}", postgres::error_text(source))]
    Postgres {
        /// The database (its URL without user, password or database name, and the schema).
        db: String,
        /// The PostgreSQL error.
        source: ::postgres::Error,
    },
    /// The PostgreSQL state settings are wrong (the message names the setting at fault).
    #[error("state store settings: {0}")]
    Settings(String),
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
    /// A write under a lease was refused: another worker took the model's lease (a newer token
    /// exists), the lease expired or was released, or the mapping or run written is not of the
    /// lease's model. Nothing of the write was stored.
    #[error("the lease of model {model} with token {token} is no longer held (expired or taken over): write refused")]
    Fenced {
        /// The model of the lease.
        model: String,
        /// The token the refused write carried.
        token: i64,
    },
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

/// Where the state lives.
pub(crate) enum Backend {
    /// One SQLite file.
    Sqlite(sqlite::Sqlite),
    /// A schema of a PostgreSQL database (boxed: its client is large).
    Postgres(Box<postgres::Postgres>),
}

/// Calls the method of whichever backend the store has (both have it, same name and signature).
/// PostgreSQL calls go through [`postgres::blocking`] (safe inside the server's async handlers).
macro_rules! on {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.backend {
            $crate::Backend::Sqlite($b) => $e,
            $crate::Backend::Postgres($b) => $crate::postgres::blocking(|| $e),
        }
    };
    (mut $self:ident, $b:ident => $e:expr) => {
        match &mut $self.backend {
            $crate::Backend::Sqlite($b) => $e,
            $crate::Backend::Postgres($b) => $crate::postgres::blocking(|| $e),
        }
    };
}
pub(crate) use on;

/// The state store.
pub struct StateStore {
    pub(crate) backend: Backend,
    /// The local state folder (the secret key, sync lock files; the SQLite file too).
    dir: PathBuf,
    /// The PostgreSQL state, when the store is on PostgreSQL (to open another store on it).
    pg: Option<PostgresState>,
}

impl StateStore {
    /// Opens (creating if needed) the SQLite state in folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        files::private_dir(dir).map_err(|source| StateError::Dir { path: dir.display().to_string(), source })?;
        Ok(Self { backend: Backend::Sqlite(sqlite::Sqlite::open(dir)?), dir: dir.to_path_buf(), pg: None })
    }

    /// Opens the state in a PostgreSQL schema, creating and migrating it when needed (several
    /// processes may open it at once: migrations run under an advisory lock). `dir` is the local
    /// state folder, which keeps what stays local: the secret key and lock files.
    pub fn open_postgres(state: &PostgresState, dir: &Path) -> Result<Self> {
        files::private_dir(dir).map_err(|source| StateError::Dir { path: dir.display().to_string(), source })?;
        Ok(Self {
            backend: Backend::Postgres(Box::new(postgres::blocking(|| postgres::Postgres::open(state))?)),
            dir: dir.to_path_buf(),
            pg: Some(state.clone()),
        })
    }

    /// Where the state lives, for messages: the SQLite file, or the PostgreSQL server and schema
    /// (never a password).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite(b) => b.path.display().to_string(),
            Backend::Postgres(b) => b.name.clone(),
        }
    }

    /// Whether the state is in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The SQLite state database file; with PostgreSQL, the local state folder (there is no file).
    pub fn path(&self) -> &Path {
        match &self.backend {
            Backend::Sqlite(b) => &b.path,
            Backend::Postgres(_) => &self.dir,
        }
    }

    /// The local state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where this store's state lives (to hand to another thread or process).
    pub fn state_location(&self) -> StateLocation {
        StateLocation { dir: self.dir.clone(), postgres: self.pg.clone() }
    }

    /// Opens another store (another connection) on the same state, e.g. for a heartbeat thread.
    pub fn reopen(&self) -> Result<Self> {
        Self::open_at(&self.state_location())
    }

    /// Stores the applied workspace, replacing the previous one.
    pub fn save_workspace(&self, ws: &StoredWorkspace) -> Result<()> {
        on!(self, b => b.save_workspace(ws))
    }

    /// The applied workspace, if any.
    pub fn workspace(&self) -> Result<Option<StoredWorkspace>> {
        on!(self, b => b.workspace())
    }

    /// Folds SQLite's write-ahead log into the database file (for measuring its size); nothing
    /// with PostgreSQL (the server manages its own files).
    pub fn compact(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(b) => b.compact(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// The id order a mapping's checkpoint keys follow (`None` for a new mapping).
    pub fn mapping_id_order(&self, mapping: i64) -> Result<Option<String>> {
        on!(self, b => b.mapping_id_order(mapping))
    }

    /// Records the id order of a mapping's checkpoint keys.
    pub fn set_mapping_id_order(&self, mapping: i64, order: &str) -> Result<()> {
        on!(self, b => b.set_mapping_id_order(mapping, order))
    }

    /// The numeric id of the mapping (model, destination) if it was ever synced; unlike
    /// [`StateStore::mapping_id`] it writes nothing (a what-if reads the state, never changes it).
    pub fn find_mapping_id(&self, model: &str, destination: &str) -> Result<Option<i64>> {
        on!(self, b => b.find_mapping_id(model, destination))
    }

    /// The numeric id of the mapping (model, destination), created on first use.
    pub fn mapping_id(&self, model: &str, destination: &str) -> Result<i64> {
        on!(self, b => b.mapping_id(model, destination))
    }
}

#[cfg(test)]
impl StateStore {
    /// Test access: the text of every cell of a query's rows.
    pub(crate) fn raw_strings(&self, sql: &str) -> Result<Vec<String>> {
        on!(self, b => b.raw_strings(sql))
    }

    /// Test access: runs statements as they are.
    pub(crate) fn raw_execute(&self, sql: &str) -> Result<()> {
        on!(self, b => b.raw_execute(sql))
    }
}

/// Parses stored JSON text.
pub(crate) fn parse_json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StateError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests;
