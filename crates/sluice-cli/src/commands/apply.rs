use super::print_json;
use sluice_engine::{plan::plan, Workspace};
use sluice_state::StateStore;
use std::path::Path;
use std::process::ExitCode;

pub fn export(state: &Path, file: Option<&Path>, reveal: bool) -> anyhow::Result<ExitCode> {
    let (_store, ws) = super::open(state)?;
    let (yaml, vars) = ws.export(reveal);
    let header = format!(
        "# Exported by `sluice export` on {}; relative paths resolve from {}\n",
        chrono::Utc::now().to_rfc3339(),
        ws.base_dir.display()
    );
    match file {
        Some(f) => {
            std::fs::write(f, header + &yaml)?;
            eprintln!("wrote {}", f.display());
        }
        None => out!("{header}{yaml}"),
    }
    if !vars.is_empty() {
        eprintln!("credentials were replaced by placeholders; set them before `sluice apply` (values not shown):");
        for (name, _) in &vars {
            eprintln!("  {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(state: &Path, file: &Path, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let mut ws = Workspace::from_path(file)?;
    let connection_warnings = ws.check_models().map_err(|e| anyhow::anyhow!("invalid workspace:\n{e}"))?;
    ws.warnings.extend(connection_warnings);
    let mut store = StateStore::open(state)?;
    // nothing applied yet is fine; a stored workspace that cannot be read (wrong secret key) is not
    let old = match Workspace::load(&store) {
        Ok(w) => Some(w),
        Err(sluice_engine::WorkspaceError::NotApplied) => None,
        Err(e) => return Err(e.into()),
    };
    let items = plan(old.as_ref().map(|w| &w.file), &ws.file);
    if json {
        print_json(&serde_json::json!({"plan": items, "warnings": ws.warnings, "applied": !dry_run}));
    } else {
        if items.is_empty() {
            outln!("No changes: the workspace is up to date.");
        }
        for i in &items {
            let sign = match i.action {
                "create" => "+",
                "change" => "~",
                _ => "-",
            };
            let fields = if i.fields.is_empty() { String::new() } else { format!(" ({})", i.fields.join(", ")) };
            outln!("  {sign} {} {} {}{fields}", i.action, i.kind.replace('_', " "), i.id);
        }
        for w in &ws.warnings {
            outln!("warning: {w}");
        }
        if dry_run {
            outln!("Dry run: nothing applied.");
        }
    }
    if !dry_run {
        let now = chrono::Utc::now().to_rfc3339();
        store.save_workspace(&ws.to_stored(now.clone(), &store)?)?;
        let actor = std::env::var("SLUICE_ACTOR")
            .or_else(|_| std::env::var("USER").map(|u| format!("cli:{u}")))
            .unwrap_or_else(|_| "cli".into());
        let entries: Vec<sluice_state::AuditEntry> = items
            .iter()
            .map(|i| sluice_state::AuditEntry {
                id: 0,
                at: now.clone(),
                actor: actor.clone(),
                action: i.action.into(),
                kind: i.kind.into(),
                entity: i.id.clone(),
                before: i.before.clone(),
                after: i.after.clone(),
            })
            .collect();
        store.append_audit(&entries)?;
        if !json {
            outln!("Applied {} ({} change{}).", file.display(), items.len(), if items.len() == 1 { "" } else { "s" });
        }
    }
    Ok(ExitCode::SUCCESS)
}
