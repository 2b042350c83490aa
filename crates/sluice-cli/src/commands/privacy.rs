//! `sluice privacy suppress|unsuppress|delete ID...`, `privacy list`, `privacy status REQ`:
//! privacy requests (SPEC §12) made on the state folder directly, through the control API's own
//! path ([`sluice_server::control::privacy::submit`]: same checks, same audit). A running
//! `sluice serve` picks up a suppression within a second; `delete` runs the deletes in the
//! foreground with progress lines and prints each destination's status.

use super::{open, print_json};
use sluice_engine::privacy::DeleteOptions;
use sluice_server::control::privacy::{submit, NewRegulationBody};
use sluice_state::StateLocation;
use sluice_state::{DeleteStatus, Regulation, StateStore};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What to ask for.
pub struct Request<'a> {
    /// `SUPPRESS_ONLY`, `UNSUPPRESS`, `SUPPRESS_WITH_DELETE` or `DELETE_ONLY`.
    pub kind: &'a str,
    /// The ids.
    pub ids: Vec<String>,
    /// The ids are anonymousIds.
    pub anonymous: bool,
    /// Print JSON.
    pub json: bool,
    /// Longest time `delete` waits for the destinations before leaving the rest to `serve`.
    pub wait: Duration,
}

fn actor() -> String {
    std::env::var("SLUICE_ACTOR")
        .or_else(|_| std::env::var("USER").map(|u| format!("cli:{u}")))
        .unwrap_or_else(|_| "cli".into())
}

/// Exit code of a request: 0 done, 1 a destination failed, 3 deletes still running.
fn code(r: &Regulation) -> ExitCode {
    match r.overall {
        DeleteStatus::Failed => ExitCode::from(1),
        DeleteStatus::Running => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    }
}

pub fn run(state: &StateLocation, req: Request<'_>) -> anyhow::Result<ExitCode> {
    let (mut store, ws) = open(state)?;
    let body = NewRegulationBody {
        regulation_type: req.kind.to_string(),
        subject_type: if req.anonymous { "ANONYMOUS_ID" } else { "USER_ID" }.into(),
        subject_ids: req.ids,
    };
    // with the state in PostgreSQL, the event log is not this machine's: the running servers
    // (on a bus deployment: the bus) queue streaming deletes, so they take the request
    if state.postgres.is_some() {
        if let Some(kind) = sluice_state::RegulationType::parse(req.kind) {
            let plan = sluice_engine::privacy::plan(&ws.file, kind);
            let streaming = sluice_engine::privacy::streaming_targets(&ws.file, &plan);
            if !streaming.is_empty() {
                anyhow::bail!(
                    "{} deletes people at streaming destinations ({}): with the state in PostgreSQL, make the request \
                     through a running server, `POST /api/v1/regulations` or the web UI's Privacy requests, which queue \
                     the deletes where its event log is",
                    req.kind,
                    streaming.join(", ")
                );
            }
        }
    }
    let mut reg = submit(state, &ws.file, &body, actor(), None).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    if !req.json {
        outln!("Privacy request {} ({}) for {}", reg.id, reg.kind.as_str(), reg.subject_ids.join(", "));
        if !reg.joined_ids.is_empty() {
            outln!("  identifiers of their profiles in the event log: {}", reg.joined_ids.join(", "));
        }
        if reg.kind.suppresses() {
            outln!("  suppressed: new events are dropped at ingest and records withheld in Reverse ETL");
        }
    }
    let log = sluice_stream::store::open(&state.dir)?;
    let stream_done = |dest: &str, seq: i64| sluice_stream::store::delivered_past(&log, dest, seq).unwrap_or(false);
    let deadline = Instant::now() + req.wait;
    while reg.overall == DeleteStatus::Running && Instant::now() < deadline {
        let now = chrono::Utc::now().timestamp_millis();
        let mut waited = true;
        for d in reg.destinations.iter().filter(|d| d.status == DeleteStatus::Running && d.next_at <= now) {
            waited = false;
            let a =
                sluice_engine::privacy::attempt(&mut store, &ws, &reg, &d.id, DeleteOptions::default(), &stream_done)?;
            let why = a.error.map(|e| format!(" ({e})")).unwrap_or_default();
            eprintln!("  {}: {} deleted, {}{why}", a.destination, a.deleted, a.status.as_str());
        }
        if waited {
            std::thread::sleep(Duration::from_millis(200));
        }
        reg = store.regulation(&reg.id)?.ok_or_else(|| anyhow::anyhow!("privacy request {} vanished", reg.id))?;
    }
    show(&reg, req.json);
    if reg.overall == DeleteStatus::Running && !req.json {
        outln!(
            "Deletes still running: `sluice serve` retries them (and delivers the streaming deletes); see `sluice privacy status {}`.",
            reg.id
        );
    }
    Ok(code(&reg))
}

fn show(reg: &Regulation, json: bool) {
    if json {
        print_json(reg);
        return;
    }
    if reg.destinations.is_empty() {
        outln!("{}: {}", reg.id, reg.overall.as_str());
        return;
    }
    let mut t = crate::render::table(["Destination", "Status", "Attempts", "Error"]);
    for d in &reg.destinations {
        t.add_row(vec![
            d.id.clone(),
            d.status.as_str().to_string(),
            d.attempts.to_string(),
            d.error.clone().unwrap_or_default(),
        ]);
    }
    outln!("{}: {}\n{t}", reg.id, reg.overall.as_str());
}

pub fn status(state: &StateLocation, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let store = StateStore::open_at(state)?;
    let reg = store.regulation(id)?.ok_or_else(|| anyhow::anyhow!("no privacy request `{id}`"))?;
    show(&reg, json);
    Ok(code(&reg))
}

pub fn list(state: &StateLocation, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let store = StateStore::open_at(state)?;
    let regs = store.regulations(limit)?;
    if json {
        print_json(&serde_json::json!({ "regulations": regs }));
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = crate::render::table(["Id", "Created", "By", "Type", "Subjects", "Status"]);
    for r in &regs {
        t.add_row(vec![
            r.id.clone(),
            r.created_at.clone(),
            r.created_by.clone(),
            r.kind.as_str().to_string(),
            r.subject_ids.join(", "),
            r.overall.as_str().to_string(),
        ]);
    }
    outln!("{t}");
    Ok(ExitCode::SUCCESS)
}
