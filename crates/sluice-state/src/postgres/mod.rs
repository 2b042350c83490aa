//! The PostgreSQL backend: the state of several Sluice processes in one schema of a PostgreSQL
//! database, created and migrated at open under an advisory lock (concurrent opens are safe).
//!
//! One connection per store, like SQLite's; `postgres::Client` needs `&mut` for every
//! statement, so it sits in a `RefCell` (the store is `Send`, not `Sync`, as with SQLite) and
//! every method borrows it once, never across a call to another method. A connection the server
//! closed (a restart, a failover) is replaced at the next call.

mod alerts;
mod audit;
mod checkpoint;
mod leases;
pub(crate) mod migrations;
mod privacy;
mod runs;
mod tokens;

use crate::{parse_json, Result, StateError, StoredWorkspace};
use postgres::{Client, NoTls};
use std::cell::{RefCell, RefMut};
use std::time::Duration;

/// Where the PostgreSQL state lives: a connection URL and the schema Sluice owns in it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresState {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?options]`.
    pub url: String,
    /// The schema holding the state tables (created when missing).
    pub schema: String,
}

/// The schema when none is named.
pub const DEFAULT_SCHEMA: &str = "sluice";

impl std::fmt::Debug for PostgresState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresState")
            .field("url", &sluice_core::redact::redact_url(&self.url))
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresState {
    /// The state at `url`: the schema is its `schema` query parameter (taken out of the URL),
    /// else `sluice`.
    pub fn from_url(url: &str) -> Self {
        let Some((base, query)) = url.split_once('?') else {
            return Self { url: url.to_string(), schema: DEFAULT_SCHEMA.to_string() };
        };
        let mut schema = None;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix("schema=") {
                Some(s) => {
                    schema = Some(s.to_string());
                    false
                }
                None => true,
            })
            .collect();
        let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        Self { url, schema: schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string()) }
    }

    /// The database as messages show it: server, database and schema, never a user or password
    /// (`postgres://<set>@host:5432/<set> (database app, schema sluice)`).
    pub fn display_name(&self) -> String {
        let url = sluice_core::redact::redact_url(&self.url);
        match self.url.parse::<postgres::Config>().ok().and_then(|c| c.get_dbname().map(str::to_string)) {
            Some(db) => format!("{url} (database {db}, schema {})", self.schema),
            None => format!("{url} (schema {})", self.schema),
        }
    }
}

/// What went wrong, in words: the server's message and SQLSTATE, or the client's error with its
/// causes (`postgres::Error`'s own `Display` says only "db error").
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        // never the detail: it can quote a row's values (a record id, a token's hash)
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// Runs `f`, which blocks on the `postgres` client's own runtime. On a worker thread of a
/// multi-threaded tokio runtime (the handlers of `sluice serve`) that would panic ("cannot start
/// a runtime from within a runtime"), so it runs there through `block_in_place`, which also lets
/// the worker's other tasks move elsewhere meanwhile; anywhere else it simply runs.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The PostgreSQL state.
pub(crate) struct Postgres {
    /// Always `Some` but while being dropped (see `Drop`).
    client: RefCell<Option<Client>>,
    config: postgres::Config,
    schema: String,
    /// The database as errors name it ([`PostgresState::display_name`]).
    pub(crate) name: String,
}

fn connect(config: &postgres::Config, schema: &str, name: &str) -> Result<Client> {
    let wrap = |source| StateError::Postgres { db: name.to_string(), source };
    let mut client = config.connect(NoTls).map_err(wrap)?;
    // a process paused (SIGSTOP, a frozen VM) inside a transaction must not hold rows others
    // need for longer than this: the server ends its session, its locks go, it reconnects later
    client
        .batch_execute(&format!(
            "set search_path to {}; set idle_in_transaction_session_timeout = '10s'",
            quote_ident(schema)
        ))
        .map_err(wrap)?;
    Ok(client)
}

impl Postgres {
    pub(crate) fn open(state: &PostgresState) -> Result<Self> {
        let name = state.display_name();
        if state.schema.is_empty() || state.schema.len() > 63 || state.schema.contains('\0') {
            return Err(StateError::Settings(format!(
                "schema {:?}: a PostgreSQL schema name has 1 to 63 bytes and no NUL",
                state.schema
            )));
        }
        let mut config: postgres::Config = state.url.parse().map_err(|e| {
            StateError::Settings(format!("state URL {}: {e}", sluice_core::redact::redact_url(&state.url)))
        })?;
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(StateError::Settings(format!(
                "state URL {}: sslmode=require: TLS to the state database is not supported yet (plain TCP only; \
                 docs/SCALE.md)",
                sluice_core::redact::redact_url(&state.url)
            )));
        }
        config.application_name("sluice-state");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = connect(&config, &state.schema, &name)?;
        migrations::migrate(&mut client, &state.schema, &name)?;
        Ok(Self { client: RefCell::new(Some(client)), config, schema: state.schema.clone(), name })
    }

    /// The connection, reconnected if the server closed it.
    pub(crate) fn client(&self) -> Result<RefMut<'_, Client>> {
        let mut c = self.client.borrow_mut();
        if c.as_ref().is_none_or(Client::is_closed) {
            *c = Some(connect(&self.config, &self.schema, &self.name)?);
        }
        Ok(RefMut::map(c, |c| c.as_mut().expect("connected above")))
    }

    /// The error wrapper naming this database.
    pub(crate) fn wrapper(&self) -> impl Fn(postgres::Error) -> StateError {
        let db = self.name.clone();
        move |source| StateError::Postgres { db: db.clone(), source }
    }

    pub(crate) fn save_workspace(&self, ws: &StoredWorkspace) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute(
                "insert into workspace (id, config, base_dir, applied_at) values (1, $1, $2, $3)
                 on conflict (id) do update set config = excluded.config, base_dir = excluded.base_dir,
                 applied_at = excluded.applied_at",
                &[&ws.config.to_string(), &ws.base_dir.to_string_lossy().as_ref(), &ws.applied_at],
            )
            .map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn workspace(&self) -> Result<Option<StoredWorkspace>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt("select config, base_dir, applied_at from workspace where id = 1", &[])
            .map_err(wrap)?;
        row.map(|r| {
            Ok(StoredWorkspace {
                config: parse_json(r.get::<_, &str>(0))?,
                base_dir: r.get::<_, String>(1).into(),
                applied_at: r.get(2),
            })
        })
        .transpose()
    }

    pub(crate) fn mapping_id_order(&self, mapping: i64) -> Result<Option<String>> {
        let wrap = self.wrapper();
        let row = self.client()?.query_one("select id_order from mappings where id = $1", &[&mapping]).map_err(wrap)?;
        Ok(row.get(0))
    }

    pub(crate) fn set_mapping_id_order(&self, mapping: i64, order: &str) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?.execute("update mappings set id_order = $2 where id = $1", &[&mapping, &order]).map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn find_mapping_id(&self, model: &str, destination: &str) -> Result<Option<i64>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt("select id from mappings where model = $1 and destination = $2", &[&model, &destination])
            .map_err(wrap)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) fn mapping_id(&self, model: &str, destination: &str) -> Result<i64> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        c.execute(
            "insert into mappings (model, destination) values ($1, $2) on conflict do nothing",
            &[&model, &destination],
        )
        .map_err(&wrap)?;
        let row = c
            .query_one("select id from mappings where model = $1 and destination = $2", &[&model, &destination])
            .map_err(&wrap)?;
        Ok(row.get(0))
    }

    /// Test access: the text of every cell of a query's rows (for hostile and raw checks).
    #[cfg(test)]
    pub(crate) fn raw_strings(&self, sql: &str) -> Result<Vec<String>> {
        let wrap = self.wrapper();
        let rows = self.client()?.simple_query(sql).map_err(wrap)?;
        let mut out = Vec::new();
        for m in rows {
            if let postgres::SimpleQueryMessage::Row(r) = m {
                for i in 0..r.len() {
                    out.push(r.get(i).unwrap_or("NULL").to_string());
                }
            }
        }
        Ok(out)
    }

    /// Test access: runs statements as they are.
    #[cfg(test)]
    pub(crate) fn raw_execute(&self, sql: &str) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?.batch_execute(sql).map_err(wrap)
    }
}

impl Drop for Postgres {
    /// Closing the client blocks on its runtime too: done through [`blocking`], so a store
    /// dropped at the end of an async handler does not panic.
    fn drop(&mut self) {
        if let Some(c) = self.client.get_mut().take() {
            blocking(move || drop(c));
        }
    }
}
