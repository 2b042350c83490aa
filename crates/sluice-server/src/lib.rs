//! `sluice serve`: the Segment-compatible Tracking API with consent routing (R6–R10), durable
//! per-destination delivery, profiles, a debugger, a delivery overview and Prometheus metrics.
//!
//! ```text
//!  HTTP (axum) ──► normalize ──► writer thread: dedupe, profiles, route, log + outboxes (1 tx)
//!                                      │ commit, then 200
//!                                      ▼
//!                  one delivery thread per destination ──► webhook / file
//! ```

pub mod api;
pub mod control;
pub mod delivery;
pub mod ingest;
pub mod metrics;
pub mod scheduler;
pub mod store;
pub mod writer;

/// The workspace every part of the server follows; the control API swaps it on each change.
/// Readers never block and nothing can poison it.
pub type Live = Arc<arc_swap::ArcSwap<WorkspaceFile>>;

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
    Store(#[from] store::StoreError),
    /// `--public-url` is not a URL browsers can use.
    #[error("{0}")]
    PublicUrl(String),
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
    /// The state folder (`stream.db` lives there).
    pub state_dir: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Days delivered events stay in the log (debugger, audits).
    pub retention_days: i64,
    /// Where browsers reach the server (`https://track.example.com`), for the settings
    /// endpoint; `None`: the request's `Host`.
    pub public_url: Option<String>,
}

/// Runs the server until Ctrl-C / SIGTERM. `ready` is called with the bound address.
pub fn serve(config: ServeConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let public_url = config.public_url.as_deref().map(ingest::browser::PublicUrl::parse).transpose();
    let public_url = public_url.map_err(ServeError::PublicUrl)?.map(Arc::new);
    let ws = Arc::new(config.workspace);
    let live: Live = Arc::new(arc_swap::ArcSwap::new(ws.clone()));
    let metrics = Arc::new(metrics::Metrics::default());
    let wake = Arc::new(delivery::Wake::default());
    let stop = Arc::new(AtomicBool::new(false));
    let conn = store::open(&config.state_dir)?;
    let (jobs, rx) = std::sync::mpsc::sync_channel::<writer::Job>(4096);
    let router = writer::Router {
        plans: writer::plans(&ws),
        ws: ws.clone(),
        live: live.clone(),
        metrics: metrics.clone(),
        retention_secs: config.retention_days * 86_400,
    };
    let w = wake.clone();
    let writer = std::thread::Builder::new()
        .name("sluice-writer".into())
        .spawn(move || writer::run(conn, router, rx, || w.notify()))?;
    let supervisor = {
        let (l, dir, base, m, wk, st) = (
            live.clone(),
            config.state_dir.clone(),
            config.base_dir.clone(),
            metrics.clone(),
            wake.clone(),
            stop.clone(),
        );
        std::thread::Builder::new()
            .name("sluice-delivery".into())
            .spawn(move || delivery::supervise(l, dir, base, m, wk, st))?
    };
    let scheduler = {
        let (l, base, dir, st) = (live.clone(), config.base_dir.clone(), config.state_dir.clone(), stop.clone());
        std::thread::Builder::new().name("sluice-scheduler".into()).spawn(move || scheduler::run(l, base, dir, st))?
    };
    let state =
        api::AppState { live: live.clone(), jobs, dir: Arc::new(config.state_dir.clone()), metrics, public_url };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: config.listen.clone(), source })?;
        ready(listener.local_addr()?);
        let control = control::ControlState {
            state_dir: Arc::new(config.state_dir.clone()),
            base_dir: Arc::new(config.base_dir.clone()),
            live: live.clone(),
            write: Arc::new(parking_lot::Mutex::new(())),
        };
        let app = api::router(state).merge(control::router(control));
        axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
        Ok::<_, ServeError>(())
    })?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    wake.notify();
    drop(rt);
    let _ = writer.join();
    let _ = scheduler.join();
    let _ = supervisor.join();
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
