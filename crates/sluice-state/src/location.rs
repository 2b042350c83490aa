//! Where the state lives, as every command and `sluice serve` are told (`--state`,
//! `SLUICE_STATE`): a local folder (SQLite, the embedded default) or a PostgreSQL URL.
//!
//! With PostgreSQL some things still stay on the machine: the streaming store (`stream.db`),
//! the lock files of `sluice sync` and, when no `SLUICE_SECRET_KEY_FILE` is named, nothing else
//! (the secret key must then come from `SLUICE_SECRET_KEY`, see [`StateStore::secrets`]). That
//! local folder is `SLUICE_LOCAL_DIR`, else `.sluice` in the folder the command runs in.

use crate::{files, PostgresState, Result, SecretBox, SecretError, StateError, StateStore};
use std::path::{Path, PathBuf};

/// The environment variable naming the local folder when the state is in PostgreSQL.
pub const LOCAL_DIR_ENV: &str = "SLUICE_LOCAL_DIR";

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLocation {
    /// The local folder: the whole state with SQLite; with PostgreSQL what stays on the machine
    /// (`stream.db`, lock files, a `secret.key` named by `SLUICE_SECRET_KEY_FILE` if any).
    pub dir: PathBuf,
    /// The PostgreSQL state, when the state is not in the folder.
    pub postgres: Option<PostgresState>,
}

impl StateLocation {
    /// The SQLite state in `dir`.
    pub fn folder(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), postgres: None }
    }

    /// From `--state`/`SLUICE_STATE`: a `postgres://` or `postgresql://` URL (schema from its
    /// `schema=` parameter, default `sluice`) is PostgreSQL state with the local folder from
    /// `SLUICE_LOCAL_DIR` (default `.sluice`); anything else is a state folder.
    pub fn parse(arg: &Path) -> Self {
        Self::parse_with_local(arg, std::env::var_os(LOCAL_DIR_ENV).map(PathBuf::from))
    }

    /// [`StateLocation::parse`] with the local folder given (`None`: `.sluice`).
    pub fn parse_with_local(arg: &Path, local: Option<PathBuf>) -> Self {
        match arg.to_str().filter(|s| is_postgres_url(s)) {
            Some(url) => Self {
                dir: local.filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from(".sluice")),
                postgres: Some(PostgresState::from_url(url)),
            },
            None => Self::folder(arg),
        }
    }

    /// Whether the state is in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The state as messages name it: the folder, or the PostgreSQL server, database and schema
    /// (never a user or password).
    pub fn describe(&self) -> String {
        match &self.postgres {
            Some(pg) => pg.display_name(),
            None => self.dir.display().to_string(),
        }
    }
}

/// Whether `s` is a PostgreSQL URL (scheme compared without case).
pub fn is_postgres_url(s: &str) -> bool {
    let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl StateStore {
    /// Opens the state wherever `loc` says (creating the local folder, and the SQLite file or the
    /// PostgreSQL schema, when needed).
    pub fn open_at(loc: &StateLocation) -> Result<Self> {
        match &loc.postgres {
            None => Self::open(&loc.dir),
            Some(pg) => Self::open_postgres(pg, &loc.dir),
        }
    }

    /// The key that seals credentials. With SQLite state: `SLUICE_SECRET_KEY`, else the file
    /// `SLUICE_SECRET_KEY_FILE`, else `secret.key` in the state folder (created). With
    /// PostgreSQL state every process of the deployment must use the same key, so a key is never
    /// made up locally: without `SLUICE_SECRET_KEY` or `SLUICE_SECRET_KEY_FILE` this refuses,
    /// naming them (a key created on one node would seal credentials no other node can open).
    pub fn secrets(&self) -> std::result::Result<SecretBox, SecretError> {
        if self.is_postgres()
            && std::env::var_os("SLUICE_SECRET_KEY").is_none()
            && std::env::var_os("SLUICE_SECRET_KEY_FILE").is_none()
        {
            return Err(SecretError::Key(format!(
                "is not set: with the state in PostgreSQL ({}) every Sluice process must share one key; set \
                 SLUICE_SECRET_KEY (base64 of 32 bytes, e.g. `openssl rand -base64 32`) or SLUICE_SECRET_KEY_FILE \
                 on every node",
                self.location()
            )));
        }
        SecretBox::load(self.dir())
    }

    /// Creates the local folder of `loc` (private), e.g. before a lock file is made in it.
    pub fn ensure_local_dir(loc: &StateLocation) -> Result<()> {
        files::private_dir(&loc.dir).map_err(|source| StateError::Dir { path: loc.dir.display().to_string(), source })
    }
}

impl From<PathBuf> for StateLocation {
    fn from(dir: PathBuf) -> Self {
        Self::folder(dir)
    }
}

impl From<&Path> for StateLocation {
    fn from(dir: &Path) -> Self {
        Self::folder(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_postgres_anything_else_a_folder() {
        let loc = StateLocation::parse_with_local(Path::new("postgres://u:pw@db:5432/app?schema=s1"), None);
        let pg = loc.postgres.as_ref().unwrap();
        assert_eq!((pg.url.as_str(), pg.schema.as_str()), ("postgres://u:pw@db:5432/app", "s1"));
        assert_eq!(loc.dir, PathBuf::from(".sluice"));
        assert!(!loc.describe().contains("pw") && !format!("{loc:?}").contains("pw"), "{loc:?}");
        let loc = StateLocation::parse_with_local(Path::new("POSTGRESQL://db/app"), Some("/var/lib/sl".into()));
        assert_eq!((loc.dir.as_path(), loc.postgres.unwrap().schema.as_str()), (Path::new("/var/lib/sl"), "sluice"));
        for folder in ["./postgres", "postgres:/x", ".sluice", "/tmp/postgres://x"] {
            assert_eq!(StateLocation::parse_with_local(Path::new(folder), None), StateLocation::folder(folder));
        }
    }
}
