//! The streaming runtime of Sluice, below the HTTP edge (`sluice-server`), which only
//! normalizes requests and hands them on:
//!
//! ```text
//!  sluice-server (HTTP) ──Job──► writer thread: dedupe, profiles (R9, R10), route (R6–R8),
//!                                 event log + routes, 1 transaction per group ──► commit, reply
//!                                      │ wake
//!                                      ▼
//!            delivery::supervise: one worker per streaming destination, each with its own
//!            cursor, its Destination built by sluice_destinations::build ──► deliver_events
//! ```
//!
//! - [`store`]: `stream.db` (SQLite, WAL): the event log, cursors, dead letters, profiles,
//!   per-minute statistics, retention; read functions for the debugger, the CLI and audits.
//! - [`writer`]: the one thread that writes the log (group commit).
//! - [`delivery`]: the workers, their durable backoff, and the thread supervisor.
//! - [`metrics`]: every streaming counter, declared in one place.
//! - [`privacy`]: the suppressed identifiers of privacy requests, checked per event in memory.
//! - [`bus`]: the same runtime spread over several processes: NATS JetStream between ingest,
//!   router and delivery processes, PostgreSQL for profiles and de-duplication (SPEC §8).

pub mod bus;
pub mod delivery;
pub mod metrics;
pub mod person_delete;
pub mod privacy;
pub mod store;
pub mod whatif;
pub mod writer;

use std::sync::Arc;

/// The workspace every part of the runtime follows; the control API swaps it on each change.
/// Readers never block and nothing can poison it.
pub type Live = Arc<arc_swap::ArcSwap<sluice_core::WorkspaceFile>>;

/// Formats a time so that strings compare in time order (RFC 3339, milliseconds, `Z`).
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
