//! `sluice audit ID`: everything Sluice did with one person's data, for a privacy officer
//! (the report is `sluice_server::audit::person`, which the web UI's profile page shows too).

use super::{open, print_json};
use comfy_table::Cell;
use serde_json::{json, Value};
use sluice_server::audit::proof_words;
use sluice_state::StateLocation;
use std::process::ExitCode;

pub fn run(state: &StateLocation, id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let (store, ws) = open(state)?;
    let report = sluice_server::audit::person(&store, &ws.file, &state.dir, id).map_err(|e| anyhow::anyhow!(e))?;
    if json_out {
        print_json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("Audit of `{id}`");
    let mut t = crate::render::table([
        "Model",
        "Destination",
        "Requires consent to",
        "Holds a version",
        "Last sync",
        "Proof of consent (at delivery)",
    ]);
    for r in report["reverse_etl"].as_array().into_iter().flatten() {
        t.add_row(vec![
            Cell::new(r["model"].as_str().unwrap_or("")),
            Cell::new(r["destination"].as_str().unwrap_or("")),
            Cell::new(
                r["requires"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
            ),
            Cell::new(if r["holds_a_version"] == true { "yes" } else { "no" }),
            Cell::new(r["last_sync"].as_str().unwrap_or("")),
            Cell::new(proof_words(&r["proof"])),
        ]);
    }
    outln!("Reverse ETL:\n{t}");
    if let Some(p) = report["profile"].as_object() {
        outln!(
            "Profile: user ids {}, anonymous ids {}, consent {}",
            json!(p.get("user_ids")),
            json!(p.get("anonymous_ids")),
            json!(p.get("consent"))
        );
    }
    let mut t = crate::render::table(["Destination", "Events routed", "Withheld by consent", "Last routed at"]);
    let streaming = report["streaming"].as_object().cloned().unwrap_or_default();
    for (d, v) in &streaming {
        t.add_row(vec![
            Cell::new(d),
            Cell::new(&v["routed"]),
            Cell::new(&v["withheld_by_consent"]),
            Cell::new(v["last_routed_at"].as_str().unwrap_or("-")),
        ]);
    }
    let timeline = report["events"].as_array().cloned().unwrap_or_default();
    outln!("Streaming ({} events):\n{t}", timeline.len());
    for e in &timeline {
        let routed: Vec<&str> = e["decisions"]
            .as_object()
            .map(|m| m.iter().filter(|(_, v)| v["route"] == "deliver").map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        outln!(
            "  {} {} {} -> {}",
            e["received_at"].as_str().unwrap_or(""),
            e["type"].as_str().unwrap_or(""),
            e["event"].as_str().unwrap_or(""),
            if routed.is_empty() { "nowhere".to_string() } else { routed.join(", ") }
        );
    }
    Ok(ExitCode::SUCCESS)
}
