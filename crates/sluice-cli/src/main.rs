//! The `sluice` binary: the CLI edge (anyhow lives here and nowhere else).

/// `println!` that ends the program quietly when stdout is closed (`sluice debugger web | head`)
/// instead of panicking.
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that ends the program quietly when stdout is closed.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write(format_args!($($t)*)) };
}

mod commands;
mod output;
mod progress;
mod render;

use clap::{Parser, Subcommand};
use sluice_state::StateLocation;

/// Rows are decoded on one thread and freed on another: mimalloc handles that far better than
/// the system allocator (measured by `sluice bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;

/// Sluice: a consent-aware customer data router (Reverse ETL and event streaming).
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// State folder (default ./.sluice), or `postgres://USER@HOST:PORT/DB[?schema=NAME]` for state
    /// shared by several processes (the local folder is then SLUICE_LOCAL_DIR, default ./.sluice).
    #[arg(long, global = true, env = "SLUICE_STATE")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a workspace file, print the plan, and apply it.
    Apply {
        /// The workspace file (YAML).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Only print the plan.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the applied workspace back as a workspace file (credentials as ${VAR} placeholders).
    Export {
        /// File to write (default: standard output).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Write credentials in clear instead of placeholders.
        #[arg(long)]
        reveal_secrets: bool,
    },
    /// Show a model's columns and first 10 rows.
    Preview {
        /// Model id.
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run every mapping of a model once and print its delivery overview.
    Sync {
        /// Model id.
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delivery overview of the latest runs (of one model, or all).
    Overview {
        /// Model id.
        model: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Records synced per month and destination (consent-withheld records never count).
    Usage {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the Tracking API (Segment-compatible) with consent routing, debugger, profiles, metrics.
    Serve(commands::stream::ServeArgs),
    /// A profile's identifiers, traits and consent (by userId or anonymousId).
    Profile {
        /// A userId or anonymousId.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Streaming delivery overview per destination over the last minutes.
    StreamOverview {
        /// The window, in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The last events of an event source and what was decided for each destination, and why.
    Debugger {
        /// Event source id.
        source: String,
        /// How many events.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The append-only log of configuration changes (who, when, what, before and after).
    AuditLog {
        /// How many entries, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// API tokens for the control API of `sluice serve`.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Everything Sluice did with one person's data (Reverse ETL state and streamed events).
    Audit {
        /// A record id, userId or anonymousId.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Privacy requests (SPEC §12): suppress, unsuppress or delete people by userId/anonymousId.
    Privacy {
        #[command(subcommand)]
        action: PrivacyAction,
    },
    /// Measure Reverse ETL from PostgreSQL against the raw COPY floor of the same rows.
    Bench {
        /// Rows in the benchmark model.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// PostgreSQL to build the model in.
        #[arg(long, env = "SLUICE_BENCH_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
        pg_url: String,
        /// Records per webhook request.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Rebuild the benchmark table even if it exists.
        #[arg(long)]
        rebuild: bool,
        /// Also sync to a second destination gated by two consent categories.
        #[arg(long)]
        with_consent_mapping: bool,
        /// Benchmark the Tracking API (sluice serve) instead of Reverse ETL.
        #[arg(long)]
        ingest: bool,
        /// Ingest mode: seconds per measured phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Ingest mode: concurrent client connections.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Benchmark routing on a deployment (one, two and three router processes on this NATS
        /// JetStream, state in --pg-url) against the embedded default.
        #[arg(long)]
        bus: Option<String>,
        /// Bus mode: events routed per measurement.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
    },
    /// Build a sample warehouse and workspace here, sync it, and show what went where.
    Quickstart {
        /// Folder to build in (default: the current folder).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PrivacyAction {
    /// Drop the people's new events at ingest and withhold their records in Reverse ETL
    /// (SUPPRESS_ONLY).
    Suppress {
        /// userIds (or anonymousIds with --anonymous).
        #[arg(required = true)]
        ids: Vec<String>,
        /// The ids are anonymousIds.
        #[arg(long)]
        anonymous: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lift a suppression (UNSUPPRESS).
    Unsuppress {
        /// userIds (or anonymousIds with --anonymous).
        #[arg(required = true)]
        ids: Vec<String>,
        /// The ids are anonymousIds.
        #[arg(long)]
        anonymous: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the people from every destination that holds them and suppress them
    /// (SUPPRESS_WITH_DELETE; DELETE_ONLY with --no-suppress); waits for the destinations.
    Delete {
        /// userIds (or anonymousIds with --anonymous).
        #[arg(required = true)]
        ids: Vec<String>,
        /// The ids are anonymousIds.
        #[arg(long)]
        anonymous: bool,
        /// Delete only: new data of these people keeps flowing (DELETE_ONLY).
        #[arg(long)]
        no_suppress: bool,
        /// Seconds to wait for the destinations before leaving the rest to `sluice serve`.
        #[arg(long, default_value_t = 300)]
        wait: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Privacy requests, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One request's status overall and per destination (exit 0 done, 1 failed, 3 running).
    Status {
        /// The request id (`reg_...`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (the only time it is shown).
    Create {
        /// `owner` (may change consent management and tokens) or `member` (read-only).
        #[arg(long)]
        role: String,
        /// Who uses it (shown in the audit log).
        #[arg(long)]
        name: String,
    },
}

fn privacy(state: &StateLocation, action: PrivacyAction) -> anyhow::Result<ExitCode> {
    use commands::privacy::{run, Request};
    let wait = |s: u64| std::time::Duration::from_secs(s);
    match action {
        PrivacyAction::Suppress { ids, anonymous, json } => {
            run(state, Request { kind: "SUPPRESS_ONLY", ids, anonymous, json, wait: wait(0) })
        }
        PrivacyAction::Unsuppress { ids, anonymous, json } => {
            run(state, Request { kind: "UNSUPPRESS", ids, anonymous, json, wait: wait(0) })
        }
        PrivacyAction::Delete { ids, anonymous, no_suppress, wait: w, json } => {
            let kind = if no_suppress { "DELETE_ONLY" } else { "SUPPRESS_WITH_DELETE" };
            run(state, Request { kind, ids, anonymous, json, wait: wait(w) })
        }
        PrivacyAction::List { limit, json } => commands::privacy::list(state, limit, json),
        PrivacyAction::Status { id, json } => commands::privacy::status(state, &id, json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    // a folder (SQLite), or a postgres:// URL (the local folder then is SLUICE_LOCAL_DIR or .sluice)
    let given = cli.state.as_deref().map(StateLocation::parse);
    let state = given.clone().unwrap_or_else(|| StateLocation::folder(".sluice"));
    let result = match cli.command {
        Command::Apply { file, dry_run, json } => commands::apply::run(&state, &file, dry_run, json),
        Command::Export { file, reveal_secrets } => commands::apply::export(&state, file.as_deref(), reveal_secrets),
        Command::Preview { model, json } => commands::preview::run(&state, &model, json),
        Command::Sync { model, json } => commands::sync::run(&state, &model, json),
        Command::Overview { model, json } => commands::overview::run(&state, model.as_deref(), json),
        Command::Usage { json } => commands::overview::usage(&state, json),
        Command::Token { action: TokenAction::Create { role, name } } => commands::stream::token(&state, &role, &name),
        Command::AuditLog { limit, json } => commands::overview::audit_log(&state, limit, json),
        Command::Audit { id, json } => commands::audit::run(&state, &id, json),
        Command::Serve(args) => commands::stream::serve(&state, args),
        Command::Profile { id, json } => commands::stream::profile(&state, &id, json),
        Command::StreamOverview { minutes, json } => commands::stream::overview(&state, minutes, json),
        Command::Debugger { source, limit, json } => commands::stream::debugger(&state, &source, limit, json),
        Command::Bench { bus: Some(bus), pg_url, events, .. } => {
            commands::bench_bus::run(&commands::bench_bus::BusBenchOptions { bus, pg_url, events })
        }
        Command::Bench { ingest: true, seconds, clients, .. } => {
            commands::bench_ingest::run(&commands::bench_ingest::IngestOptions { seconds, clients })
        }
        Command::Bench { rows, pg_url, batch_size, rebuild, with_consent_mapping, .. } => {
            commands::bench::run(&commands::bench::BenchOptions {
                rows,
                pg_url,
                batch_size,
                rebuild,
                with_consent_mapping,
            })
        }
        Command::Privacy { action } => privacy(&state, action),
        Command::Quickstart { dir } => commands::quickstart::run(given.as_ref(), &dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
