use super::print_json;
use crate::progress::Progress;
use sluice_engine::whatif::WhatIf;
use sluice_engine::{ApplyOptions, ChangeError, ColumnCheck, Workspace};
use sluice_state::StateLocation;
use sluice_state::StateStore;
use std::path::Path;
use std::process::ExitCode;

pub fn export(state: &StateLocation, file: Option<&Path>, reveal: bool) -> anyhow::Result<ExitCode> {
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

/// Exit code of `apply --dry-run` when the plan is valid but part of the what-if could not be
/// evaluated (a model's scan failed, the event log could not be read).
const WHAT_IF_INCOMPLETE: u8 = 3;

pub fn run(state: &StateLocation, file: &Path, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let ws = Workspace::from_path(file)?;
    let mut store = StateStore::open_at(state)?;
    // whoever can run the CLI on the state folder owns it: the audit log names them
    let actor = sluice_engine::Actor {
        name: std::env::var("SLUICE_ACTOR")
            .or_else(|_| std::env::var("USER").map(|u| format!("cli:{u}")))
            .unwrap_or_else(|_| "cli".into()),
        role: sluice_state::Role::Owner,
    };
    let options = ApplyOptions { columns: ColumnCheck::All, dry_run };
    let (applied, invalid) =
        match sluice_engine::apply(&mut store, ws.file.clone(), ws.base_dir.clone(), &actor, options) {
            Ok(a) => (a, None),
            // a dry run still shows the plan and the what-if when a model's warehouse check fails
            // (unreachable, bad SQL); it exits non-zero as `apply` would
            Err(ChangeError::Invalid(errs)) if dry_run => {
                let unchecked = ApplyOptions { columns: ColumnCheck::Checked, dry_run };
                (sluice_engine::apply(&mut store, ws.file, ws.base_dir, &actor, unchecked)?, Some(errs))
            }
            Err(e) => return Err(e.into()),
        };
    let what_if = dry_run.then(|| what_if(&store, state, &applied.workspace));
    let items = &applied.plan;
    if json {
        let mut out = serde_json::json!({"plan": items, "warnings": applied.warnings, "applied": !dry_run});
        if let Some(w) = &what_if {
            out["what_if"] = serde_json::to_value(w).expect("serializes");
        }
        if let Some(errs) = &invalid {
            out["errors"] = errs.0.iter().map(|e| serde_json::Value::String(e.to_string())).collect();
        }
        print_json(&out);
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
        if let Some(w) = &what_if {
            print_what_if(w);
        }
        if dry_run {
            outln!("Dry run: nothing applied.");
        } else {
            outln!("Applied {} ({} change{}).", file.display(), items.len(), if items.len() == 1 { "" } else { "s" });
        }
    }
    if let Some(errs) = invalid {
        eprintln!("error: this change would not apply:\n{errs}");
        return Ok(ExitCode::from(2));
    }
    if what_if.as_ref().is_some_and(WhatIf::incomplete) {
        eprintln!("error: part of the what-if could not be evaluated (see the table)");
        return Ok(ExitCode::from(WHAT_IF_INCOMPLETE));
    }
    Ok(ExitCode::SUCCESS)
}

/// The what-if of replacing the applied workspace (none yet: an empty one) by `new`: records
/// of the affected models, and the events of the last 24 hours in the state's event log.
fn what_if(store: &StateStore, state: &StateLocation, new: &Workspace) -> WhatIf {
    let old = match Workspace::load(store) {
        Ok(w) => w,
        Err(e) => {
            if !matches!(e, sluice_engine::WorkspaceError::NotApplied) {
                tracing::warn!(error = %e, "the applied workspace could not be read; what-if compares with none");
            }
            Workspace { file: Default::default(), base_dir: new.base_dir.clone(), warnings: vec![] }
        }
    };
    let mut bars: Vec<(String, Progress)> = Vec::new();
    let mut progress = |model: &str, rows: u64| {
        if bars.last().is_none_or(|(m, _)| m != model) {
            bars.push((model.to_string(), Progress::doing("what-if", model)));
        }
        if let Some((_, p)) = bars.last_mut() {
            p.rows(rows);
        }
    };
    let w = sluice_server::control::whatif::what_if_with_progress(store, &state.dir, &old, new, &mut progress);
    drop(bars);
    w
}

/// The what-if table (Destination, Model or "events (last 24h)", Gains, Loses, Held now).
fn print_what_if(w: &WhatIf) {
    if w.impacts.is_empty() {
        outln!("What-if: no destination gains or loses records or events by consent.");
        return;
    }
    outln!("What-if (who would gain or lose data by consent):");
    let mut t = crate::render::table(["Destination", "Model", "Gains", "Loses", "Of those lost, held now"]);
    for i in &w.impacts {
        let what = match &i.model {
            Some(m) => m.clone(),
            None => "events (last 24h)".into(),
        };
        let n = |v: u64| if i.error.is_some() { "?".to_string() } else { v.to_string() };
        let held = match (&i.error, i.loses_held) {
            (Some(e), _) => format!("not evaluated: {e}"),
            (None, Some(h)) => h.to_string(),
            (None, None) => "-".into(),
        };
        t.add_row([i.destination.clone(), what, n(i.gains), n(i.loses), held]);
    }
    outln!("{t}");
    if w.impacts.iter().any(|i| i.loses_held.is_some_and(|h| h > 0)) {
        outln!(
            "Records a destination holds and would lose stay there, unless the mapping deletes on withdrawal \
             (on_withdrawal: delete), which would delete them at the next sync."
        );
    }
    for n in &w.notes {
        outln!("note: {n}");
    }
}
