use super::print_json;
use sluice_engine::{plan::plan, Workspace};
use sluice_state::StateStore;
use std::path::Path;
use std::process::ExitCode;

pub fn run(state: &Path, file: &Path, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let ws = Workspace::from_path(file)?;
    ws.check_models().map_err(|e| anyhow::anyhow!("invalid workspace:\n{e}"))?;
    let store = StateStore::open(state)?;
    let old = Workspace::load(&store).ok();
    let items = plan(old.as_ref().map(|w| &w.file), &ws.file);
    if json {
        print_json(&serde_json::json!({"plan": items, "warnings": ws.warnings, "applied": !dry_run}));
    } else {
        if items.is_empty() {
            println!("No changes: the workspace is up to date.");
        }
        for i in &items {
            let sign = match i.action {
                "create" => "+",
                "change" => "~",
                _ => "-",
            };
            let fields = if i.fields.is_empty() { String::new() } else { format!(" ({})", i.fields.join(", ")) };
            println!("  {sign} {} {} {}{fields}", i.action, i.kind.replace('_', " "), i.id);
        }
        for w in &ws.warnings {
            println!("warning: {w}");
        }
        if dry_run {
            println!("Dry run: nothing applied.");
        }
    }
    if !dry_run {
        store.save_workspace(&ws.to_stored(chrono::Utc::now().to_rfc3339(), &store)?)?;
        if !json {
            println!("Applied {} ({} change{}).", file.display(), items.len(), if items.len() == 1 { "" } else { "s" });
        }
    }
    Ok(ExitCode::SUCCESS)
}
