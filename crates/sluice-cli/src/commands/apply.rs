use super::print_json;
use sluice_engine::{ApplyOptions, ColumnCheck, Workspace};
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
    let ws = Workspace::from_path(file)?;
    let mut store = StateStore::open(state)?;
    // whoever can run the CLI on the state folder owns it: the audit log names them
    let actor = sluice_engine::Actor {
        name: std::env::var("SLUICE_ACTOR")
            .or_else(|_| std::env::var("USER").map(|u| format!("cli:{u}")))
            .unwrap_or_else(|_| "cli".into()),
        role: sluice_state::Role::Owner,
    };
    let options = ApplyOptions { columns: ColumnCheck::All, dry_run };
    let applied = sluice_engine::apply(&mut store, ws.file, ws.base_dir, &actor, options)?;
    let items = &applied.plan;
    if json {
        print_json(&serde_json::json!({"plan": items, "warnings": applied.warnings, "applied": !dry_run}));
    } else {
        if items.is_empty() {
            outln!("No changes: the workspace is up to date.");
        }
        for i in items {
            let sign = match i.action {
                "create" => "+",
                "change" => "~",
                _ => "-",
            };
            let fields = if i.fields.is_empty() { String::new() } else { format!(" ({})", i.fields.join(", ")) };
            outln!("  {sign} {} {} {}{fields}", i.action, i.kind.replace('_', " "), i.id);
        }
        for w in &applied.warnings {
            outln!("warning: {w}");
        }
        if dry_run {
            outln!("Dry run: nothing applied.");
        } else {
            outln!("Applied {} ({} change{}).", file.display(), items.len(), if items.len() == 1 { "" } else { "s" });
        }
    }
    Ok(ExitCode::SUCCESS)
}
