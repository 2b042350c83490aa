use super::{open, print_json};
use sluice_state::StateLocation;
use std::process::ExitCode;

pub fn run(state: &StateLocation, model_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let (_store, ws) = open(state)?;
    let model = ws.model(model_id).ok_or_else(|| anyhow::anyhow!("unknown model `{model_id}`"))?;
    let mut wh = ws.warehouse(&model.source)?;
    for w in wh.warnings() {
        eprintln!("warning: source `{}`: {w}", model.source);
    }
    let p = wh.preview(&model.sql, 10).map_err(|e| anyhow::anyhow!("model `{model_id}`: {e}"))?;
    let errs = sluice_engine::workspace::model_column_errors(&format!("models ({model_id})"), model, &p.columns);
    if !errs.is_empty() {
        anyhow::bail!("{}", sluice_core::ConfigErrors(errs));
    }
    if json {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            p.rows.iter().map(|r| p.columns.iter().cloned().zip(r.iter().cloned()).collect()).collect();
        print_json(&serde_json::json!({"columns": p.columns, "rows": rows}));
    } else {
        let mut t = crate::render::table(p.columns.iter().map(String::as_str));
        for r in &p.rows {
            t.add_row(r.iter().map(crate::render::cell));
        }
        outln!("{t}");
        outln!("{} column(s), first {} row(s) of model `{model_id}`", p.columns.len(), p.rows.len());
    }
    Ok(ExitCode::SUCCESS)
}
