//! Loading a workspace file, and the checks that need the warehouse (columns exist).

use sluice_core::{validate, ConfigError, ConfigErrors, ModelConfig, SourceKind, WorkspaceFile};
use sluice_state::{SecretBox, StoredWorkspace};
use sluice_warehouse::postgres::{PgOptions, PostgresWarehouse, TlsMode};
use sluice_warehouse::{resolve_column, sqlite::SqliteWarehouse, Warehouse, WarehouseError};
use std::path::{Path, PathBuf};

/// Why a workspace cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The file could not be read.
    #[error("cannot read workspace file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is invalid; every problem is listed.
    #[error("invalid workspace:\n{0}")]
    Invalid(ConfigErrors),
    /// Nothing was applied yet.
    #[error("no workspace applied yet in this state folder; run `sluice apply -f FILE` (or `sluice quickstart`)")]
    NotApplied,
    /// The state store failed.
    #[error(transparent)]
    State(#[from] sluice_state::StateError),
    /// Credentials could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] sluice_state::SecretError),
}

impl Workspace {
    /// The workspace as a workspace file. Credentials become `${SLUICE_SECRET_...}` placeholders
    /// (returned with their values, to set in the environment) unless `reveal`.
    pub fn export(&self, reveal: bool) -> (String, Vec<(String, String)>) {
        let mut config = serde_json::to_value(&self.file).expect("workspace serializes");
        let mut vars = Vec::new();
        if !reveal {
            let mut n = 0;
            for_each_secret(&mut config, &mut |kind, v| {
                if kind == Secret::Url && !sluice_core::url_has_credentials(v) {
                    return;
                }
                n += 1;
                let name = format!("SLUICE_SECRET_{n}");
                vars.push((name.clone(), std::mem::replace(v, format!("${{{name}}}"))));
            });
        }
        let file: WorkspaceFile = serde_json::from_value(config).expect("same shape");
        let yaml = serde_yaml_ng::to_string(&file).expect("workspace serializes as YAML");
        (yaml, vars)
    }
}

/// What kind of credential [`for_each_secret`] visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    /// A value that is a credential as a whole (write key, header, source URL).
    Value,
    /// A destination URL: a credential only when it carries a user, password or query.
    Url,
}

/// Calls `f` on every credential of a workspace (as JSON): source URLs and write keys,
/// destination headers, secret settings ([`sluice_core::is_secret_setting`]) and URLs (sealed
/// whole: user information and query parameters can hold keys).
fn for_each_secret(config: &mut serde_json::Value, f: &mut dyn FnMut(Secret, &mut String)) {
    use serde_json::Value;
    let mut visit = |kind: Secret, v: Option<&mut Value>| {
        if let Some(Value::String(s)) = v {
            f(kind, s);
        }
    };
    if let Some(Value::Array(sources)) = config.get_mut("sources") {
        for s in sources {
            visit(Secret::Value, s.get_mut("url"));
            visit(Secret::Value, s.get_mut("write_key"));
        }
    }
    if let Some(Value::Array(dests)) = config.get_mut("destinations") {
        for d in dests {
            let Some(Value::Object(settings)) = d.get_mut("settings") else { continue };
            for (k, v) in settings.iter_mut() {
                if k == "headers" {
                    if let Value::Object(headers) = v {
                        for v in headers.values_mut() {
                            visit(Secret::Value, Some(v));
                        }
                    }
                } else if k == "url" || k == "endpoint" {
                    visit(Secret::Url, Some(v));
                } else if sluice_core::is_secret_setting(k) {
                    visit(Secret::Value, Some(v));
                }
            }
        }
    }
}

/// A validated workspace, with the folder its relative paths resolve from.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The validated file.
    pub file: WorkspaceFile,
    /// Folder of the workspace file.
    pub base_dir: PathBuf,
    /// Warnings (R4, R5).
    pub warnings: Vec<String>,
}

impl Workspace {
    /// Reads, substitutes `${VAR}`, parses and validates a workspace file.
    pub fn from_path(path: &Path) -> Result<Self, WorkspaceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| WorkspaceError::Read { path: path.display().to_string(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base =
            std::path::absolute(if base.as_os_str().is_empty() { Path::new(".") } else { &base }).unwrap_or(base);
        Self::from_yaml(&text, base)
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str, base_dir: PathBuf) -> Result<Self, WorkspaceError> {
        let text = sluice_core::env::substitute(text, |k| std::env::var(k).ok()).map_err(WorkspaceError::Invalid)?;
        let file = WorkspaceFile::from_yaml(&text).map_err(WorkspaceError::Invalid)?;
        Self::from_file(file, base_dir)
    }

    fn from_file(file: WorkspaceFile, base_dir: PathBuf) -> Result<Self, WorkspaceError> {
        let v = validate(file, &sluice_destinations::REGISTRY).map_err(WorkspaceError::Invalid)?;
        Ok(Self { file: v.file, base_dir, warnings: v.warnings })
    }

    /// The workspace last applied to a state store.
    pub fn load(store: &sluice_state::StateStore) -> Result<Self, WorkspaceError> {
        let mut stored = store.workspace()?.ok_or(WorkspaceError::NotApplied)?;
        let secrets = SecretBox::load(store.dir())?;
        let mut open_err = None;
        for_each_secret(&mut stored.config, &mut |_, v| match secrets.open(v) {
            Ok(plain) => *v = plain,
            Err(e) => open_err = Some(e),
        });
        if let Some(e) = open_err {
            return Err(e.into());
        }
        let file: WorkspaceFile = serde_json::from_value(stored.config).map_err(|e| {
            WorkspaceError::Invalid(ConfigErrors(vec![ConfigError::new("stored workspace", e.to_string())]))
        })?;
        Self::from_file(file, stored.base_dir)
    }

    /// The form stored in the state store: credentials sealed with the state's secret key.
    pub fn to_stored(
        &self,
        applied_at: String,
        store: &sluice_state::StateStore,
    ) -> Result<StoredWorkspace, WorkspaceError> {
        let secrets = SecretBox::load(store.dir())?;
        let mut config = serde_json::to_value(&self.file).expect("workspace serializes");
        for_each_secret(&mut config, &mut |_, v| *v = secrets.seal(v));
        Ok(StoredWorkspace { config, base_dir: self.base_dir.clone(), applied_at })
    }

    /// A model by id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.file.models.iter().find(|m| m.id == id)
    }

    /// Opens the warehouse a model runs on.
    pub fn warehouse(&self, source_id: &str) -> Result<Box<dyn Warehouse>, WarehouseError> {
        let src = self
            .file
            .sources
            .iter()
            .find(|s| s.id == source_id)
            .ok_or_else(|| WarehouseError::Model(format!("unknown source `{source_id}`")))?;
        match src.kind {
            SourceKind::Sqlite => {
                let path = self.base_dir.join(src.path.as_deref().unwrap_or_default());
                Ok(Box::new(SqliteWarehouse::open(&path)?))
            }
            SourceKind::Postgres => {
                let opts = PgOptions {
                    url: src.url.clone().unwrap_or_default(),
                    tls: src.tls.as_deref().and_then(TlsMode::parse),
                    ca_file: src.ca_file.as_ref().map(|f| self.base_dir.join(f)),
                    statement_timeout: src.statement_timeout_secs.map(std::time::Duration::from_secs),
                    allow_privileged_role: src.allow_privileged_role,
                    preview_timeout: None,
                };
                Ok(Box::new(PostgresWarehouse::connect(&opts)?))
            }
            SourceKind::Events => Err(WarehouseError::Model(format!("source `{}` is an event source", src.id))),
        }
    }

    /// Checks every model against its warehouse: the SQL runs, and the unique id, consent and
    /// field columns exist. Errors name the model and field at fault.
    pub fn check_models(&self) -> Result<Vec<String>, ConfigErrors> {
        crate::change::check_models(self, &(0..self.file.models.len()).collect::<Vec<_>>())
    }
}

/// Errors for columns a model's configuration names but its SQL does not return.
pub fn model_column_errors(at: &str, m: &ModelConfig, cols: &[String]) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    if let Err(e) = resolve_column(cols, &m.unique_id) {
        errs.push(ConfigError::new(format!("{at}.unique_id"), e));
    }
    for (cat, col) in &m.consent {
        if let Err(e) = resolve_column(cols, col) {
            errs.push(ConfigError::new(format!("{at}.consent.{cat}"), e));
        }
    }
    for (j, mp) in m.mappings.iter().enumerate() {
        for (field, col) in &mp.fields {
            if let Err(e) = resolve_column(cols, col) {
                errs.push(ConfigError::new(format!("{at}.mappings[{j}].fields.{field}"), e));
            }
        }
    }
    errs
}
