//! What every handler shares ([`AppState`]) and the one error shape of the HTTP edge. The
//! routers ([`crate::api`]) and the handlers (ingest, read) both import this module, never each
//! other.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sluice_stream::metrics::Metrics;
use sluice_stream::writer::Job;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The live workspace (event sources and their write keys follow it at once).
    pub live: crate::Live,
    /// The writer's queue.
    pub jobs: SyncSender<Job>,
    /// The state folder (for read connections).
    pub dir: Arc<PathBuf>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `serve --public-url`: where browsers reach the server (else the request's `Host`).
    pub public_url: Option<Arc<PublicUrl>>,
    /// KB of (decompressed) request bodies being parsed or waiting for the writer: parsed events
    /// take ~25 times their JSON size, so this bounds ingest's memory however many clients post.
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// On a bus deployment: the shared state the reads (debugger, profiles, overview) come from
    /// instead of the local `stream.db`.
    pub bus: Option<Arc<crate::deployment::BusReads>>,
}

/// KB of request bodies in flight at most ([`AppState::inflight`]): 4 MB, ~100 MB once parsed.
pub const INFLIGHT_KB: usize = 4 * 1024;

impl AppState {
    /// The event source whose write key is `key`, in the live workspace: a rotated or removed
    /// key stops working at once, a new one works at once.
    pub fn source_for_key(&self, key: &str) -> Option<sluice_core::SourceConfig> {
        if key.is_empty() {
            return None;
        }
        self.live.load().sources.iter().find(|s| s.events().is_some_and(|e| e.write_key.expose() == key)).cloned()
    }
}

/// An error answer in the one shape ([`crate::error::ApiError`]).
pub fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    crate::error::ApiError::new(status, code, message, field).into_response()
}

/// `--public-url`: where browsers reach this server, e.g. `https://track.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `http` or `https`.
    pub(crate) protocol: &'static str,
    /// Host, port and path prefix, without a trailing slash (`track.example.com`).
    pub(crate) host: String,
}

impl PublicUrl {
    /// Parses `http(s)://host[:port][/prefix]`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("--public-url `{url}` {why}"));
        let (protocol, rest) = match url.split_once("://") {
            Some(("https", rest)) => ("https", rest),
            Some(("http", rest)) => ("http", rest),
            _ => return bad("must start with http:// or https://"),
        };
        let host = rest.trim_end_matches('/');
        let authority = host.split('/').next().unwrap_or_default();
        if authority.is_empty() || !host.chars().all(host_char) || host.contains("//") {
            return bad("must be scheme://host[:port][/path] with no user, query or fragment");
        }
        Ok(Self { protocol, host: host.to_string() })
    }
}

/// Characters of a host, port and plain path.
pub(crate) fn host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '/' | '_' | '~')
}
