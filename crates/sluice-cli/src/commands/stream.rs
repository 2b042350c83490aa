//! `serve`, `profile` and `debugger`: the streaming half.

use super::{open, print_json};
use sluice_state::StateLocation;
use std::io::Write;
use std::process::ExitCode;

/// The flags of `sluice serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the public side (ingestion, health); also of the private side unless
    /// --admin-listen is given.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: String,
    /// Serve the private side (control API, debugger, profiles, overview, metrics) only on
    /// this address; the public address then answers 404 for it.
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Days delivered events stay in the log for the debugger and audits.
    #[arg(long, default_value_t = 7)]
    pub retention_days: i64,
    /// Open connections at most (per address); more clients wait.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Where browsers reach this server (e.g. https://track.example.com): the host
    /// Analytics.js is told to post to. Default: the Host of its settings request.
    #[arg(long)]
    pub public_url: Option<String>,
    /// NATS JetStream of a deployment of several processes (nats://HOST:PORT, several
    /// separated by commas); needs --state postgres://... (SPEC §8, README "Several nodes").
    #[arg(long, env = "SLUICE_BUS")]
    pub bus: Option<String>,
    /// What this process does: ingest, router, delivery, sync, api (several: repeat or
    /// separate by commas). Default: every role. Needs --bus.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Names the deployment's streams and consumers on NATS (two deployments sharing one
    /// NATS use different prefixes).
    #[arg(long, default_value = "sluice")]
    pub bus_prefix: String,
    /// JetStream replicas of each stream (3 on a three-server NATS cluster).
    #[arg(long, default_value_t = 1)]
    pub bus_replicas: usize,
}

/// The deployment `args` ask for: `--role` needs `--bus`, and `--bus` needs the state on
/// PostgreSQL (profiles and de-duplication are shared there).
fn deployment(
    state: &StateLocation,
    args: &ServeArgs,
) -> anyhow::Result<Option<sluice_server::deployment::BusDeployment>> {
    let roles = sluice_server::deployment::Roles::parse(&args.roles).map_err(anyhow::Error::msg)?;
    let Some(url) = &args.bus else {
        if !args.roles.is_empty() {
            anyhow::bail!("--role needs --bus nats://HOST:PORT: without a bus one process has every role");
        }
        return Ok(None);
    };
    let Some(postgres) = &state.postgres else {
        anyhow::bail!(
            "--bus needs the state on PostgreSQL (--state postgres://USER@HOST:PORT/DB): the processes of a deployment \
             share profiles and de-duplication there"
        );
    };
    let settings = sluice_stream::bus::BusSettings {
        url: url.clone(),
        prefix: args.bus_prefix.clone(),
        replicas: args.bus_replicas,
    };
    settings.validate()?;
    Ok(Some(sluice_server::deployment::BusDeployment { settings, state: postgres.clone(), roles }))
}

pub fn serve(state: &StateLocation, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let bus = deployment(state, &args)?;
    let (_store, ws) = open(state)?;
    let config = sluice_server::ServeConfig {
        workspace: ws.file.clone(),
        base_dir: ws.base_dir.clone(),
        state: state.clone(),
        listen: args.listen,
        admin_listen: args.admin_listen,
        retention_days: args.retention_days,
        limits: sluice_server::edge::Limits { max_connections: args.max_connections, ..Default::default() },
        public_url: args.public_url,
        alert_interval_secs: sluice_server::alerts::DEFAULT_INTERVAL_SECS,
        bus,
    };
    sluice_server::serve(config, |bound| {
        // the URL ends each line (scripts read the first line's last word)
        match bound.admin {
            None => outln!("sluice serve: public and private side listening on http://{}", bound.public),
            Some(admin) => {
                outln!("sluice serve: public side listening on http://{}", bound.public);
                outln!("sluice serve: private side listening on http://{admin}");
            }
        }
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn token(state: &StateLocation, role: &str, name: &str) -> anyhow::Result<ExitCode> {
    let role = sluice_state::Role::parse(role)
        .ok_or_else(|| anyhow::anyhow!("--role must be `owner` or `member`, not `{role}`"))?;
    if name.trim().is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    let store = sluice_state::StateStore::open_at(state)?;
    outln!("{}", store.create_token(name, role)?);
    Ok(ExitCode::SUCCESS)
}

/// The shared streaming tables of a deployment (`serve --bus`) in the state's PostgreSQL, when
/// the state is there and a deployment made them; `None`: read the local `stream.db`.
fn shared(state: &StateLocation) -> Option<postgres::Client> {
    let pg = state.postgres.as_ref()?;
    let mut c = sluice_stream::bus::pg::open(pg, "sluice-cli").ok()?;
    let made: bool = c.query_one("select to_regclass('stream_events') is not null", &[]).ok()?.get(0);
    made.then_some(c)
}

pub fn profile(state: &StateLocation, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let found = match shared(state) {
        Some(mut c) => sluice_stream::bus::pg::profile_of(&mut c, id)?,
        None => None,
    };
    let found = match found {
        Some(p) => Some(p),
        None => sluice_stream::store::profile_of(&sluice_stream::store::open(&state.dir)?, id)?,
    };
    let Some(p) = found else {
        anyhow::bail!("no profile has the identifier `{id}` (a userId or anonymousId seen by `sluice serve`)");
    };
    let v = sluice_stream::store::profile_json(&p);
    if json {
        print_json(&v);
    } else {
        outln!("user ids: {}", p.user_ids.iter().cloned().collect::<Vec<_>>().join(", "));
        outln!("anonymous ids: {}", p.anonymous_ids.iter().cloned().collect::<Vec<_>>().join(", "));
        let mut t = crate::render::table(["Category", "Consent", "Set at"]);
        for (cat, c) in &p.consent {
            t.add_row(vec![cat.clone(), v["consent"][cat].to_string(), c.at.clone()]);
        }
        outln!("{t}");
        if p.consent_conflict() {
            outln!("consent conflict: two known users were merged and disagree; a new consent event settles it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn overview(state: &StateLocation, minutes: i64, json: bool) -> anyhow::Result<ExitCode> {
    let minutes = minutes.clamp(1, 60 * 24 * 90);
    let since = chrono::Utc::now().timestamp() / 60 - minutes + 1;
    // a deployment's numbers are shared in PostgreSQL; one process keeps them in stream.db
    let (v, dropped) = match shared(state) {
        Some(mut c) => sluice_stream::bus::pg::overview(&mut c, since)?,
        None => {
            let conn = sluice_stream::store::open(&state.dir)?;
            // events of suppressed identifiers dropped at ingest (privacy requests, never stored)
            (sluice_stream::store::overview(&conn, since)?, sluice_stream::store::dropped_suppressed(&conn, since)?)
        }
    };
    if json {
        print_json(&serde_json::json!({"window_minutes": minutes, "destinations": v, "dropped_suppressed": dropped}));
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = crate::render::table([
        "Destination",
        "Received",
        "Delivered",
        "Withheld by consent",
        "Turned off",
        "Failed",
        "Retried",
        "Pending",
        "Deleted on withdrawal",
    ]);
    let n = |d: &serde_json::Value, k: &str| d[k].as_i64().unwrap_or(0).to_string();
    for (dest, d) in v.as_object().into_iter().flatten() {
        let by_cat = d["withheld_by_category"]
            .as_object()
            .map(|m| m.iter().map(|(c, x)| format!("{c}: {x}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let withheld = if by_cat.is_empty() { n(d, "withheld") } else { format!("{} ({by_cat})", n(d, "withheld")) };
        t.add_row(vec![
            dest.clone(),
            n(d, "received"),
            n(d, "delivered"),
            withheld,
            n(d, "turned_off"),
            n(d, "failed"),
            n(d, "retried"),
            n(d, "pending"),
            // R13: people deleted, of the deletes queued
            match d["withdrawal_deletes_queued"].as_i64() {
                Some(q) => format!("{} of {q}", n(d, "deleted_on_withdrawal")),
                None => n(d, "deleted_on_withdrawal"),
            },
        ]);
    }
    outln!("Streaming, last {minutes} minute(s):\n{t}");
    if dropped > 0 {
        outln!("Dropped at ingest, never stored (suppressed by privacy requests): {dropped}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn debugger(state: &StateLocation, source: &str, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let (events, truncated, invalid) = match shared(state) {
        Some(mut c) => {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let (e, t) =
                sluice_stream::bus::pg::recent_events(&mut c, source, limit, sluice_stream::store::DEBUG_BYTES)?;
            (e, t, sluice_stream::bus::pg::recent_invalid(&mut c, source, limit.min(100))?)
        }
        None => {
            let conn = sluice_stream::store::open(&state.dir)?;
            let (e, t) = sluice_stream::store::recent_events(&conn, source, limit)?;
            (e, t, sluice_stream::store::recent_invalid(&conn, source, limit)?)
        }
    };
    if events.is_empty() && invalid.is_empty() {
        // nothing logged: say so when the name is not an event source of the workspace either
        let known = open(state).ok().is_some_and(|(_, ws)| {
            ws.file.sources.iter().any(|s| s.id == source && s.kind() == sluice_core::SourceKind::Events)
        });
        if !known {
            anyhow::bail!("`{source}` is not an event source of the applied workspace and has no events in the log");
        }
    }
    if json {
        print_json(
            &serde_json::json!({"source": source, "events": events, "invalid": invalid, "truncated": truncated}),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = crate::render::table(["#", "Received", "Event", "Decisions"]);
    for e in &events {
        let what = format!(
            "{} {}",
            e.event["type"].as_str().unwrap_or("?"),
            e.event["event"].as_str().or(e.event["userId"].as_str()).unwrap_or("")
        );
        let decisions: Vec<String> = e
            .decisions
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(d, v)| match v["categories"].as_array() {
                        Some(c) => format!(
                            "{d}: {} ({})",
                            v["route"].as_str().unwrap_or("?"),
                            c.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                        None => format!("{d}: {}", v["route"].as_str().unwrap_or("?")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        t.add_row(vec![e.seq.to_string(), e.received_at.clone(), what, decisions.join("\n")]);
    }
    outln!("{t}");
    for i in &invalid {
        outln!("invalid: {} ({})", i["reason"].as_str().unwrap_or(""), i["received_at"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}
