//! Loading a workspace file, and the checks that need the warehouse (columns exist).

use sluice_core::credentials::{for_each_in_workspace, CredentialKind, Keep};
use sluice_core::{exposing, validate, ConfigError, ConfigErrors, ModelConfig, WorkspaceFile};
use sluice_destinations::REGISTRY;
use sluice_state::StoredWorkspace;
use sluice_warehouse::{resolve_column, Warehouse, WarehouseError};
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
    /// (returned with their values, to set in the environment) unless `reveal`; a URL becomes
    /// one only when it carries a credential.
    pub fn export(&self, reveal: bool) -> (String, Vec<(String, String)>) {
        let mut file = self.file.clone();
        let mut vars = Vec::new();
        if !reveal {
            for_each_in_workspace(&mut file, &REGISTRY, &mut |c, v| {
                // a URL stays readable only when nothing of it is hidden elsewhere (API, audit log):
                // a user, a query, or a path (Slack's /services/T/B/<secret>) makes it a placeholder
                if c.kind == CredentialKind::Url && sluice_core::redact_url(v) == *v {
                    return Keep::Yes;
                }
                let name = format!("SLUICE_SECRET_{}", vars.len() + 1);
                vars.push((name.clone(), std::mem::replace(v, format!("${{{name}}}"))));
                Keep::Yes
            });
        }
        let yaml = exposing(|| serde_yaml_ng::to_string(&file)).expect("workspace serializes as YAML");
        (yaml, vars)
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
        let v = validate(file, &REGISTRY).map_err(WorkspaceError::Invalid)?;
        Ok(Self { file: v.file, base_dir, warnings: v.warnings })
    }

    /// The workspace last applied to a state store.
    pub fn load(store: &sluice_state::StateStore) -> Result<Self, WorkspaceError> {
        let stored = store.workspace()?.ok_or(WorkspaceError::NotApplied)?;
        let secrets = store.secrets()?;
        let mut file: WorkspaceFile = serde_json::from_value(stored.config).map_err(|e| {
            WorkspaceError::Invalid(ConfigErrors(vec![ConfigError::new("stored workspace", e.to_string())]))
        })?;
        let mut open_err = None;
        for_each_in_workspace(&mut file, &REGISTRY, &mut |_, v| {
            match secrets.open(v) {
                Ok(plain) => *v = plain,
                Err(e) => open_err = Some(e),
            }
            Keep::Yes
        });
        if let Some(e) = open_err {
            return Err(e.into());
        }
        Self::from_file(file, stored.base_dir)
    }

    /// The form stored in the state store: credentials sealed with the state's secret key.
    pub fn to_stored(
        &self,
        applied_at: String,
        store: &sluice_state::StateStore,
    ) -> Result<StoredWorkspace, WorkspaceError> {
        let secrets = store.secrets()?;
        let mut file = self.file.clone();
        for_each_in_workspace(&mut file, &REGISTRY, &mut |_, v| {
            *v = secrets.seal(v);
            Keep::Yes
        });
        let config = exposing(|| serde_json::to_value(&file)).expect("workspace serializes");
        Ok(StoredWorkspace { config, base_dir: self.base_dir.clone(), applied_at })
    }

    /// A model by id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.file.models.iter().find(|m| m.id == id)
    }

    /// Opens the warehouse a model runs on ([`sluice_warehouse::open`]).
    pub fn warehouse(&self, source_id: &str) -> Result<Box<dyn Warehouse>, WarehouseError> {
        let src = self
            .file
            .sources
            .iter()
            .find(|s| s.id == source_id)
            .ok_or_else(|| WarehouseError::UnknownSource { source_id: source_id.to_string() })?;
        sluice_warehouse::open(src, &self.base_dir)
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
