use super::{open, print_json};
use crate::progress::Progress;
use sluice_state::StateLocation;
use std::process::ExitCode;

pub fn run(state: &StateLocation, model: &str, json: bool) -> anyhow::Result<ExitCode> {
    let (mut store, ws) = open(state)?;
    let mut progress = Progress::new(model);
    let report = sluice_engine::sync_model(&mut store, &ws, model, &mut |n| progress.rows(n))?;
    drop(progress);
    if json {
        print_json(&report);
    } else {
        crate::render::run_report(&report, &ws);
    }
    Ok(if report.status == sluice_engine::report::RunStatus::Error { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
