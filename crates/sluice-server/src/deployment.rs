//! What one `sluice serve` process of a deployment does (SPEC §8): its roles, and the threads
//! of the bus roles. Without `--bus` a process has every role and the streaming runtime runs on
//! `stream.db` (the embedded default); with `--bus`, events travel through NATS JetStream and the
//! shared state is PostgreSQL (`sluice_stream::bus`).

use sluice_state::PostgresState;
use sluice_stream::bus::{self, Bus, BusSettings};
use sluice_stream::delivery::supervisor::{keep_alive, Backoff};
use sluice_stream::metrics::Metrics;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The roles of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The Tracking API (public side): accepted events are published to the bus.
    pub ingest: bool,
    /// Routing: profiles, consent, one message per destination.
    pub router: bool,
    /// Delivery workers, one per streaming destination.
    pub delivery: bool,
    /// Reverse ETL: the scheduler runs due model syncs (leased, one worker per model).
    pub sync: bool,
    /// The private side: control API, web UI, reads, metrics, alerts, privacy requests.
    pub api: bool,
}

impl Roles {
    /// Every role (the default).
    pub const ALL: Roles = Roles { ingest: true, router: true, delivery: true, sync: true, api: true };
    /// No role.
    pub const NONE: Roles = Roles { ingest: false, router: false, delivery: false, sync: false, api: false };

    /// Roles from their names (`ingest`, `router`, `delivery`, `sync`, `api`), each given alone or
    /// separated by commas; the error names the unknown one.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.is_empty() {
            return Ok(Self::ALL);
        }
        let mut r = Self::NONE;
        for name in names.iter().flat_map(|n| n.as_ref().split(',')).map(str::trim) {
            match name {
                "ingest" => r.ingest = true,
                "router" => r.router = true,
                "delivery" => r.delivery = true,
                "sync" => r.sync = true,
                "api" => r.api = true,
                "all" => r = Self::ALL,
                other => {
                    return Err(format!(
                        "--role {other:?}: expected ingest, router, delivery, sync, api or all (several: --role ingest,router)"
                    ))
                }
            }
        }
        Ok(r)
    }
}

/// A process of a deployment on the bus.
#[derive(Debug, Clone)]
pub struct BusDeployment {
    /// NATS and the streams.
    pub settings: BusSettings,
    /// The shared state (the state store's PostgreSQL schema).
    pub state: PostgresState,
    /// What this process does.
    pub roles: Roles,
}

/// What the private side of a bus process reads from the shared state.
pub struct BusReads {
    /// The bus (pending messages per destination).
    pub bus: Arc<Bus>,
    /// The shared state (debugger, profiles, overview).
    pub state: PostgresState,
}

impl BusReads {
    /// Runs `f` on a connection to the shared state, off the async workers.
    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, bus::pg::PgError> + Send + 'static,
    ) -> Result<T, String> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = bus::pg::open(&state, "sluice-api").map_err(|e| e.to_string())?;
            f(&mut c).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Routed messages waiting for each destination's workers (JetStream's count of its consumer).
    pub async fn pending(&self, destinations: &[String]) -> std::collections::HashMap<String, u64> {
        let mut out = std::collections::HashMap::new();
        let Ok(stream) = self.bus.js.get_stream(self.bus.settings.out_stream()).await else { return out };
        for d in destinations {
            let name = self.bus.settings.delivery_consumer(d);
            if let Ok(mut c) = stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name).await {
                if let Ok(info) = c.info().await {
                    out.insert(d.clone(), info.num_pending + info.num_ack_pending as u64);
                }
            }
        }
        out
    }
}

/// The bus threads of `roles`: the publisher behind ingest, the router, the delivery supervisor.
/// Each is supervised (restarted with backoff when it fails).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    bus: Arc<Bus>,
    deployment: &BusDeployment,
    jobs: std::sync::mpsc::Receiver<sluice_stream::writer::Job>,
    live: sluice_stream::Live,
    base: PathBuf,
    metrics: Arc<Metrics>,
    wake: Arc<sluice_stream::delivery::Wake>,
    stop: Arc<AtomicBool>,
    suppressed: Arc<sluice_stream::privacy::Suppressed>,
    retention_secs: i64,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let roles = deployment.roles;
    let mut threads = Vec::new();
    if roles.ingest {
        let (b, m) = (bus.clone(), metrics.clone());
        threads.push(
            std::thread::Builder::new().name("sluice-publish".into()).spawn(move || bus::ingest::run(b, jobs, m))?,
        );
    }
    if roles.router {
        let (b, state, m, st, lv, sp) =
            (bus.clone(), deployment.state.clone(), metrics.clone(), stop.clone(), live.clone(), suppressed.clone());
        threads.push(std::thread::Builder::new().name("sluice-router".into()).spawn(move || {
            keep_alive("router", &st, &m, Backoff::default(), || {
                // built again on each start: nothing of a failed run survives
                let r = sluice_stream::writer::Router::new(lv.load_full(), lv.clone(), m.clone(), retention_secs)
                    .with_suppressed(sp.clone());
                bus::router::run(b.clone(), state.clone(), r, m.clone(), st.clone())
            })
        })?);
    }
    if roles.delivery {
        let cx = bus::delivery::Context {
            bus,
            state: deployment.state.clone(),
            base,
            metrics: metrics.clone(),
            live: live.clone(),
            suppressed,
        };
        let worker: sluice_stream::delivery::Worker = Arc::new(move |d, own_stop| bus::delivery::run(&cx, d, own_stop));
        threads.push(
            std::thread::Builder::new()
                .name("sluice-delivery".into())
                .spawn(move || sluice_stream::delivery::supervise_with(live, metrics, wake, stop, worker))?,
        );
    }
    Ok(threads)
}
