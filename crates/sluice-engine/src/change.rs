//! The one change path: every change to the configuration — `sluice apply`, the control API
//! (and the web UI, which calls the API) — goes through [`apply`]: authorize (role) → validate →
//! check models against their warehouse's real columns → seal credentials → store → audit.
//! The caller then makes the returned workspace live.

use crate::plan::{plan, PlanItem};
use crate::roles::{owner_only_changes, OwnerOnly};
use crate::workspace::{model_column_errors, Workspace, WorkspaceError};
use sluice_core::{ConfigError, ConfigErrors, WorkspaceFile};
use sluice_state::{AuditEntry, Role, StateStore};

/// Who makes a change.
#[derive(Debug, Clone)]
pub struct Actor {
    /// As the audit log names them: `token:<name>` or `cli:<user>`.
    pub name: String,
    /// Members may not make changes that can widen who receives personal data.
    pub role: Role,
}

/// Which models are checked against their warehouse's real columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnCheck {
    /// Every model (`sluice apply`: the whole file is the change).
    All,
    /// Models that are new or changed, or whose source changed (API writes: a change of
    /// something else must not wait on, or fail with, an unrelated warehouse).
    Changed,
    /// None: a dry run with `Changed` already checked this very change against the stored
    /// workspace it replaces (the API checks outside its write lock, then stores under it).
    Checked,
}

/// How a change is applied.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Which models are checked against their warehouse.
    pub columns: ColumnCheck,
    /// Check and plan only; store nothing.
    pub dry_run: bool,
}

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The new workspace is invalid (every problem listed, each naming its field).
    #[error("invalid workspace:\n{0}")]
    Invalid(ConfigErrors),
    /// A member's change contains changes only owners may make.
    #[error("only owners may make changes that can widen who receives personal data: {}", list(.0))]
    Forbidden(Vec<OwnerOnly>),
    /// The state could not be read or written.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

fn list(v: &[OwnerOnly]) -> String {
    v.iter().map(|c| c.what.as_str()).collect::<Vec<_>>().join("; ")
}

/// A change that was applied (or, in a dry run, would be).
#[derive(Debug)]
pub struct Applied {
    /// What was created, changed and removed.
    pub plan: Vec<PlanItem>,
    /// Warnings (R4, R5, the warehouses').
    pub warnings: Vec<String>,
    /// The workspace now stored, validated.
    pub workspace: Workspace,
}

/// Applies `new` to the state: the one change path (see the module docs). Nothing is stored
/// unless every step passes; a dry run stops before storing.
pub fn apply(
    store: &mut StateStore,
    new: WorkspaceFile,
    base_dir: std::path::PathBuf,
    actor: &Actor,
    options: ApplyOptions,
) -> Result<Applied, ChangeError> {
    let old = match Workspace::load(store) {
        Ok(w) => Some(w),
        Err(WorkspaceError::NotApplied) => None,
        Err(e) => return Err(e.into()),
    };
    let old_file = old.as_ref().map(|w| &w.file);
    // authorized first: a member learns nothing from validating a change they may not make
    if actor.role != Role::Owner {
        let refused = owner_only_changes(old_file.unwrap_or(&WorkspaceFile::default()), &new);
        if !refused.is_empty() {
            return Err(ChangeError::Forbidden(refused));
        }
    }
    let validated = sluice_core::validate(new, &sluice_destinations::REGISTRY).map_err(ChangeError::Invalid)?;
    let mut ws = Workspace { file: validated.file, base_dir, warnings: validated.warnings };
    let to_check: Vec<usize> = (0..ws.file.models.len())
        .filter(|i| match options.columns {
            ColumnCheck::All => true,
            ColumnCheck::Changed => changed_model(old_file, &ws.file, *i),
            ColumnCheck::Checked => false,
        })
        .collect();
    let warehouse_warnings = check_models(&ws, &to_check).map_err(ChangeError::Invalid)?;
    ws.warnings.extend(warehouse_warnings);
    let items = plan(old_file, &ws.file);
    if options.dry_run {
        return Ok(Applied { plan: items, warnings: ws.warnings.clone(), workspace: ws });
    }
    let now = chrono::Utc::now().to_rfc3339();
    store.save_workspace(&ws.to_stored(now.clone(), store)?).map_err(WorkspaceError::from)?;
    let entries: Vec<AuditEntry> = items
        .iter()
        .map(|i| AuditEntry {
            id: 0,
            at: now.clone(),
            actor: actor.name.clone(),
            action: i.action.into(),
            kind: i.kind.into(),
            entity: i.id.clone(),
            before: i.before.clone(),
            after: i.after.clone(),
        })
        .collect();
    store.append_audit(&entries).map_err(WorkspaceError::from)?;
    tracing::info!(actor = %actor.name, changes = items.len(), "workspace changed");
    Ok(Applied { plan: items, warnings: ws.warnings.clone(), workspace: ws })
}

/// Whether model `i` of `new` is new or changed, or its source is.
fn changed_model(old: Option<&WorkspaceFile>, new: &WorkspaceFile, i: usize) -> bool {
    let m = &new.models[i];
    let Some(old) = old else { return true };
    let Some(was) = old.models.iter().find(|o| o.id == m.id) else { return true };
    let source = |w: &WorkspaceFile| w.sources.iter().find(|s| s.id == m.source).cloned();
    was != m || source(old) != source(new)
}

/// Checks models `which` of `ws` against their warehouse: the SQL runs, and the unique id,
/// consent and field columns exist. Errors name the model and field at fault.
pub fn check_models(ws: &Workspace, which: &[usize]) -> Result<Vec<String>, ConfigErrors> {
    let mut errs = Vec::new();
    let mut warnings = Vec::new();
    for &i in which {
        let m = &ws.file.models[i];
        let at = format!("models[{i}] ({})", m.id);
        let _span = tracing::info_span!("check_model", model = %m.id, source = %m.source).entered();
        match ws.warehouse(&m.source).and_then(|mut w| {
            warnings.extend(w.warnings().into_iter().map(|x| format!("source `{}`: {x}", m.source)));
            w.columns(&m.sql)
        }) {
            Err(e) => errs.push(ConfigError::new(format!("{at}.sql"), e.to_string())),
            Ok(cols) => errs.extend(model_column_errors(&at, m, &cols)),
        }
    }
    // a source with `diff: warehouse` needs its snapshot schema: named now, not at the first sync
    let mut checked = std::collections::HashSet::new();
    for &i in which {
        let source = &ws.file.models[i].source;
        let Some((at, s)) = ws.file.sources.iter().enumerate().find(|(_, s)| &s.id == source) else { continue };
        let Some(schema) = s.settings.warehouse_diff() else { continue };
        if !checked.insert(source.clone()) {
            continue;
        }
        let r = ws.warehouse(source).and_then(|mut w| match w.diff() {
            Some(d) => d.check_schema(schema),
            None => Ok(()),
        });
        if let Err(e) = r {
            errs.push(ConfigError::new(format!("sources[{at}] ({source}).sluice_schema"), e.to_string()));
        }
    }
    warnings.sort();
    warnings.dedup();
    if errs.is_empty() {
        Ok(warnings)
    } else {
        Err(ConfigErrors(errs))
    }
}
