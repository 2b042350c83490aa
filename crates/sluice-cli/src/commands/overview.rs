use super::{open, print_json};
use sluice_engine::RunReport;
use sluice_state::StateLocation;
use std::process::ExitCode;

pub fn run(state: &StateLocation, model: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let (store, ws) = open(state)?;
    if let Some(m) = model {
        if ws.model(m).is_none() {
            anyhow::bail!("unknown model `{m}`");
        }
    }
    let models: Vec<&str> = match model {
        Some(m) => vec![m],
        None => ws.file.models.iter().map(|m| m.id.as_str()).collect(),
    };
    let mut out = Vec::new();
    for m in &models {
        let runs = store.runs(Some(m), 20)?;
        let reports: Vec<RunReport> =
            runs.iter().filter_map(|r| r.report.clone()).filter_map(|v| serde_json::from_value(v).ok()).collect();
        out.push((m.to_string(), reports));
    }
    let next = sluice_engine::scheduler::next_runs(&ws, &store);
    let schedule_of = |m: &str| ws.model(m).and_then(|x| x.schedule.clone()).unwrap_or_else(|| "manual".into());
    if json {
        let models: Vec<serde_json::Value> = out
            .iter()
            .map(|(m, reports)| {
                serde_json::json!({"model": m, "schedule": schedule_of(m), "next_run_at": next.get(m).map(|t| t.to_rfc3339()),
                "last_run": reports.first(), "runs": reports.iter().map(|r| serde_json::json!({
                    "run_id": r.run_id, "status": r.status, "started_at": r.started_at, "duration_ms": r.duration_ms,
                    "extracted": r.extracted,
                    "delivered": r.mappings.iter().map(|m| m.delivered).sum::<u64>(),
                    "failed": r.mappings.iter().map(|m| m.failed).sum::<u64>(),
                    "withheld_by_consent": r.mappings.iter().map(|m| m.withheld_by_consent).sum::<u64>(),
                    "deleted_on_withdrawal": r.mappings.iter().map(|m| m.deleted_on_withdrawal).sum::<u64>(),
                })).collect::<Vec<_>>()})
            })
            .collect();
        print_json(&serde_json::json!({"models": models, "usage": store.usage()?}));
        return Ok(ExitCode::SUCCESS);
    }
    for (m, reports) in &out {
        if let Some(t) = next.get(m) {
            outln!("Model `{m}`: schedule `{}`, next run at {} (by `sluice serve`)", schedule_of(m), t.to_rfc3339());
        }
        match reports.first() {
            None => outln!("Model `{m}`: never synced."),
            Some(r) => {
                crate::render::run_report(r, &ws);
                if reports.len() > 1 {
                    outln!("  earlier runs:");
                    for r in &reports[1..] {
                        let d: u64 = r.mappings.iter().map(|m| m.delivered).sum();
                        let w: u64 = r.mappings.iter().map(|m| m.withheld_by_consent).sum();
                        outln!(
                            "    #{} {} {}: {d} delivered, {w} withheld by consent",
                            r.run_id,
                            r.started_at,
                            r.status
                        );
                    }
                }
            }
        }
        outln!();
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit_log(state: &StateLocation, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let store = sluice_state::StateStore::open_at(state)?;
    let mut log = store.audit_log(limit)?;
    for e in &mut log {
        e.before = e.before.take().map(|v| sluice_engine::plan::redact(&e.kind, v));
        e.after = e.after.take().map(|v| sluice_engine::plan::redact(&e.kind, v));
    }
    if json {
        print_json(&serde_json::json!({ "entries": log }));
    } else {
        let mut t = crate::render::table(["#", "When", "Who", "Change"]);
        for e in &log {
            t.add_row(vec![
                e.id.to_string(),
                e.at.clone(),
                e.actor.clone(),
                format!("{} {} {}", e.action, e.kind, e.entity),
            ]);
        }
        outln!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn usage(state: &StateLocation, json: bool) -> anyhow::Result<ExitCode> {
    let (store, _ws) = open(state)?;
    let rows = store.usage()?;
    if json {
        print_json(&serde_json::json!({ "usage": rows }));
    } else {
        let mut t = crate::render::table(["Month", "Destination", "Records synced"]);
        for r in &rows {
            t.add_row(vec![r.month.clone(), r.destination.clone(), r.records.to_string()]);
        }
        outln!("{t}");
        outln!("Records withheld by consent are not counted (R11).");
    }
    Ok(ExitCode::SUCCESS)
}
