//! `sluice serve`: the HTTP edge. The Segment-compatible Tracking API (ingest, browser
//! settings, health) and the private side (control API, debugger, profiles, overview, metrics);
//! the streaming runtime behind it (event log, writer, delivery) is `sluice-stream`.
//!
//! ```text
//!  HTTP (axum) ──► normalize ──► sluice_stream::writer: dedupe, profiles, route, log (1 tx)
//!                                      │ commit, then 200
//!                                      ▼
//!                  sluice_stream::delivery: one worker per destination ──► Destination (registry)
//! ```

pub mod alerts;
pub mod api;
pub mod audit;
pub mod control;
pub mod deployment;
pub mod edge;
pub mod error;
pub mod follow;
pub mod ingest;
pub mod privacy;
pub mod read;
pub mod scheduler;
pub mod state;
pub mod ui;

// the streaming runtime, also under the paths the control API, the scheduler, the follower
// and the server's tests have always used
pub use sluice_stream::{delivery, metrics, store, writer, Live};

use sluice_core::WorkspaceFile;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The event log could not be opened.
    #[error(transparent)]
    Store(#[from] sluice_stream::store::StoreError),
    /// `--public-url` is not a URL browsers can use.
    #[error("{0}")]
    PublicUrl(String),
    /// The suppressions of privacy requests could not be loaded (the server does not start
    /// without them: it would let suppressed people's events through).
    #[error("cannot load privacy suppressions: {0}")]
    Privacy(String),
    /// The bus (NATS JetStream) could not be reached or set up.
    #[error("{0}")]
    Bus(String),
    /// The runtime failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the server needs.
pub struct ServeConfig {
    /// The applied workspace.
    pub workspace: WorkspaceFile,
    /// Folder relative paths resolve from.
    pub base_dir: PathBuf,
    /// Where the state lives (`--state`): its local folder holds `stream.db` either way.
    pub state: sluice_state::StateLocation,
    /// Address to listen on (the public side: ingestion and health; also the private side
    /// unless `admin_listen` is set).
    pub listen: String,
    /// Address of the private side (control API, debugger, profiles, overview, metrics). When
    /// set, the public address answers 404 for private paths.
    pub admin_listen: Option<String>,
    /// Connection cap and read timeouts of the listeners.
    pub limits: edge::Limits,
    /// Days delivered events stay in the log (debugger, audits).
    pub retention_days: i64,
    /// Where browsers reach the server (`https://track.example.com`), for the settings
    /// endpoint; `None`: the request's `Host`.
    pub public_url: Option<String>,
    /// Seconds between two rounds of the alert thread (streaming alerts, pending notifications).
    pub alert_interval_secs: u64,
    /// The bus and this process's roles in a deployment of several processes; `None`: one
    /// process with every role, events in `stream.db`.
    pub bus: Option<deployment::BusDeployment>,
}

impl ServeConfig {
    /// A server of `workspace` on `listen` with every other setting at its default (one address
    /// for both sides, 7 days of retention, default limits).
    pub fn new(
        workspace: WorkspaceFile,
        base_dir: PathBuf,
        state: impl Into<sluice_state::StateLocation>,
        listen: impl Into<String>,
    ) -> Self {
        Self {
            workspace,
            base_dir,
            state: state.into(),
            listen: listen.into(),
            admin_listen: None,
            public_url: None,
            retention_days: 7,
            limits: edge::Limits::default(),
            alert_interval_secs: alerts::DEFAULT_INTERVAL_SECS,
            bus: None,
        }
    }
}

/// The addresses the server listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The public side.
    pub public: SocketAddr,
    /// The private side, when it has its own address.
    pub admin: Option<SocketAddr>,
}

/// Runs the server until Ctrl-C / SIGTERM. `ready` is called with the bound addresses.
pub fn serve(config: ServeConfig, ready: impl FnOnce(Bound)) -> Result<(), ServeError> {
    let public_url = config.public_url.as_deref().map(ingest::browser::PublicUrl::parse).transpose();
    let public_url = public_url.map_err(ServeError::PublicUrl)?.map(Arc::new);
    let ws = Arc::new(config.workspace);
    let live: Live = Arc::new(arc_swap::ArcSwap::new(ws.clone()));
    let metrics = Arc::new(sluice_stream::metrics::Metrics::default());
    let wake = Arc::new(sluice_stream::delivery::Wake::default());
    let stop = Arc::new(AtomicBool::new(false));
    let conn = sluice_stream::store::open(&config.state.dir)?;
    let (jobs, rx) = std::sync::mpsc::sync_channel::<sluice_stream::writer::Job>(4096);
    // loaded before the first event is taken: a suppressed person is never let through at startup
    let suppressed = Arc::new(sluice_stream::privacy::Suppressed::new());
    if let Err(e) = sluice_state::StateStore::open_at(&config.state).and_then(|s| suppressed.refresh(&s).map(|_| ())) {
        return Err(ServeError::Privacy(e.to_string()));
    }
    let router =
        sluice_stream::writer::Router::new(ws.clone(), live.clone(), metrics.clone(), config.retention_days * 86_400)
            .with_suppressed(suppressed.clone());
    let roles = config.bus.as_ref().map_or(deployment::Roles::ALL, |b| b.roles);
    let bus = match &config.bus {
        Some(b) => Some(Arc::new(
            sluice_stream::bus::Bus::connect(b.settings.clone()).map_err(|e| ServeError::Bus(e.to_string()))?,
        )),
        None => None,
    };
    let mut threads = Vec::new();
    match (&bus, &config.bus) {
        (Some(bus), Some(d)) => threads.extend(deployment::spawn(
            bus.clone(),
            d,
            rx,
            live.clone(),
            config.base_dir.clone(),
            metrics.clone(),
            wake.clone(),
            stop.clone(),
            suppressed.clone(),
            config.retention_days * 86_400,
        )?),
        _ => {
            let w = wake.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sluice-writer".into())
                    .spawn(move || sluice_stream::writer::run(conn, router, rx, || w.notify()))?,
            );
            let (l, dir, base, m, wk, st, sp) = (
                live.clone(),
                config.state.dir.clone(),
                config.base_dir.clone(),
                metrics.clone(),
                wake.clone(),
                stop.clone(),
                suppressed.clone(),
            );
            threads.push(
                std::thread::Builder::new()
                    .name("sluice-delivery".into())
                    .spawn(move || sluice_stream::delivery::supervise(l, dir, base, m, wk, st, sp))?,
            );
        }
    }
    if roles.sync {
        let (l, base, dir, st, m) =
            (live.clone(), config.base_dir.clone(), config.state.clone(), stop.clone(), metrics.clone());
        threads.push(
            std::thread::Builder::new()
                .name("sluice-scheduler".into())
                .spawn(move || scheduler::supervise(l, base, dir, st, m))?,
        );
    }
    if roles.api {
        let (l, dir, st, m) = (live.clone(), config.state.clone(), stop.clone(), metrics.clone());
        let every = std::time::Duration::from_secs(config.alert_interval_secs.clamp(1, 3600));
        // on a deployment the streaming statistics are the shared ones
        let shared = config.bus.as_ref().map(|b| b.state.clone());
        threads.push(
            std::thread::Builder::new()
                .name("sluice-alerts".into())
                .spawn(move || alerts::supervise(l, dir, st, m, every, shared))?,
        );
    }
    {
        let (l, dir, st, m) = (live.clone(), config.state.clone(), stop.clone(), metrics.clone());
        threads.push(
            std::thread::Builder::new().name("sluice-follow".into()).spawn(move || follow::supervise(l, dir, st, m))?,
        );
    }
    {
        let (sp, dir, st, m) = (suppressed.clone(), config.state.clone(), stop.clone(), metrics.clone());
        threads.push(
            std::thread::Builder::new()
                .name("sluice-privacy-suppressions".into())
                .spawn(move || privacy::supervise_suppressions(sp, dir, st, m))?,
        );
    }
    if roles.api {
        let (l, base, dir, st, m, b) =
            (live.clone(), config.base_dir.clone(), config.state.clone(), stop.clone(), metrics.clone(), bus.clone());
        threads.push(
            std::thread::Builder::new()
                .name("sluice-privacy-deletes".into())
                .spawn(move || privacy::supervise_deletes(l, base, dir, st, m, b))?,
        );
    }
    let state = api::AppState {
        live: live.clone(),
        jobs,
        dir: Arc::new(config.state.dir.clone()),
        metrics,
        public_url,
        inflight: Arc::new(tokio::sync::Semaphore::new(api::INFLIGHT_KB)),
        bus: match (&bus, &config.bus) {
            (Some(bus), Some(d)) => Some(Arc::new(deployment::BusReads { bus: bus.clone(), state: d.state.clone() })),
            _ => None,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let bind = |addr: String| async move {
            tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServeError::Bind { addr, source })
        };
        let public = bind(config.listen.clone()).await?;
        let admin = match &config.admin_listen {
            Some(a) => Some(bind(a.clone()).await?),
            None => None,
        };
        ready(Bound { public: public.local_addr()?, admin: admin.as_ref().map(|l| l.local_addr()).transpose()? });
        let control = control::ControlState {
            state: Arc::new(config.state.clone()),
            base_dir: Arc::new(config.base_dir.clone()),
            live: live.clone(),
            write: Arc::new(parking_lot::Mutex::new(())),
            progress: Arc::default(),
            suppressed,
            bus: state.bus.clone(),
        };
        let limits = config.limits;
        let health = || {
            axum::Router::new()
                .route("/health", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        };
        let public_app = if roles.ingest { api::public_router(state.clone()) } else { health() };
        let private_app = if roles.api { api::private_router(state, control) } else { axum::Router::new() };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        match admin {
            None => {
                let app = edge::with_body_deadline(api::with_fallbacks(public_app.merge(private_app)), &limits);
                tasks.push(tokio::spawn(edge::serve(public, app, limits, stop_rx.clone())));
            }
            Some(admin) => {
                let public_app = edge::with_body_deadline(
                    api::with_fallback_message(
                        public_app,
                        "no such endpoint on the public address (the control API, debugger, profiles, overview \
                         and metrics are served on the private address, --admin-listen)",
                    ),
                    &limits,
                );
                let admin_app = edge::with_body_deadline(api::with_fallbacks(private_app.merge(health())), &limits);
                tasks.push(tokio::spawn(edge::serve(public, public_app, limits, stop_rx.clone())));
                tasks.push(tokio::spawn(edge::serve(admin, admin_app, limits, stop_rx.clone())));
            }
        }
        shutdown().await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        Ok::<_, ServeError>(())
    })?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    wake.notify();
    drop(rt);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
