//! The writer: one thread that owns the event log. It takes accepted events in groups, and in
//! one transaction per group de-duplicates by messageId, resolves profiles (R9, R10), routes each
//! event to every destination (R6–R8) and queues it in their outboxes. A request is answered only
//! after its group committed, so an acknowledged event survives a crash.

use crate::metrics::{dest, DestCategory, Metrics};
use crate::person_delete::{self, PersonDelete};
use crate::store::{self, exec, query_row, ProfileStore, Stat};
use rusqlite::{params, CachedStatement, Connection, Transaction};
use serde_json::Value;
use sluice_core::events::{read_consent, DestinationPlan, EventConsent};
use sluice_core::{DestinationConfig, WorkspaceFile};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

mod decide;
use decide::quoted_ids;
pub use decide::Categories;
pub(crate) use decide::Decided;

/// Reserved names of the consent event (R9): today's and the seed's.
pub const CONSENT_EVENTS: [&str; 2] = ["Segment Consent Preference Updated", "Segment Consent Preference"];

/// What the writer needs of one event, extracted on the request's own thread so the single
/// writer thread never walks JSON.
pub struct Prepared {
    /// The event's JSON text, as stored and delivered.
    pub json: String,
    /// `messageId`.
    pub message_id: String,
    /// `receivedAt`.
    pub received_at: String,
    /// `timestamp` (normalized).
    pub timestamp: String,
    /// `userId`.
    pub user_id: Option<String>,
    /// `anonymousId`.
    pub anonymous_id: Option<String>,
    /// `previousId` of an alias call.
    pub previous_id: Option<String>,
    /// Traits of an identify call.
    pub traits: Option<serde_json::Map<String, Value>>,
    /// Whether it is the reserved consent event (R9).
    pub reserved: bool,
    /// The consent object (R6).
    pub consent: EventConsent,
    /// Validation warnings of the consent object.
    pub warnings: Vec<String>,
    /// The integrations object (R8).
    pub integrations: Option<serde_json::Map<String, Value>>,
    /// Categories Global Privacy Control refuses for this event (R14: sent with `Sec-GPC: 1`
    /// to a source with `gpc_refuses`); empty otherwise.
    pub gpc_refused: Vec<String>,
}

impl Prepared {
    /// Extracts what the writer needs from a normalized event and its JSON text.
    pub fn new((mut event, json): (Value, String)) -> Self {
        let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(String::from);
        let ty = s(&event, "type").unwrap_or_default();
        let (consent, warnings) = read_consent(&event);
        let reserved =
            ty == "track" && CONSENT_EVENTS.contains(&event.get("event").and_then(Value::as_str).unwrap_or(""));
        let take_obj = |e: &mut Value, k: &str| match e.get_mut(k).map(Value::take) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let traits = if ty == "identify" { take_obj(&mut event, "traits").filter(|t| !t.is_empty()) } else { None };
        Self {
            message_id: s(&event, "messageId").unwrap_or_default(),
            received_at: s(&event, "receivedAt").unwrap_or_default(),
            timestamp: s(&event, "timestamp").unwrap_or_default(),
            user_id: s(&event, "userId"),
            anonymous_id: s(&event, "anonymousId"),
            previous_id: if ty == "alias" { s(&event, "previousId") } else { None },
            integrations: take_obj(&mut event, "integrations"),
            traits,
            reserved,
            consent,
            warnings,
            json,
            gpc_refused: Vec::new(),
        }
    }

    /// R14: the event came with `Sec-GPC: 1` and its source refuses `categories` for it. A
    /// consent event (R9) so records the refusal on the profile too.
    pub fn with_gpc(mut self, categories: &[String]) -> Self {
        if let EventConsent::Given(prefs) = &mut self.consent {
            for c in categories {
                prefs.insert(c.clone(), false);
            }
        }
        self.gpc_refused = categories.to_vec();
        self
    }
}

/// An event that failed validation.
pub struct Invalid {
    /// Why it is invalid.
    pub reason: String,
    /// Its raw JSON (cut to [`crate::store::INVALID_BODY_BYTES`]).
    pub body: String,
    /// Its `userId`, `anonymousId` and `previousId` as strings, read before the body was cut:
    /// when one is suppressed by a privacy request, nothing of it is stored.
    pub ids: Vec<String>,
}

/// Events of one request.
pub struct Job {
    /// The event source.
    pub source: String,
    /// Normalized events.
    pub events: Vec<Prepared>,
    /// Events that failed validation. Stored for the debugger, not routed.
    pub invalid: Vec<Invalid>,
    /// Answered after the commit.
    pub reply: tokio::sync::oneshot::Sender<Answer>,
}

/// The writer's answer to a [`Job`].
pub struct Answer {
    /// What was stored, or why nothing was.
    pub result: Result<Accepted, String>,
    /// The job's events, handed back so the request's thread frees them (freeing another
    /// thread's allocations is the slow path of the allocator, and the writer is the one
    /// thread everything waits on).
    pub spent: Vec<Prepared>,
}

/// What happened to a request's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Stored and routed.
    pub accepted: usize,
    /// Dropped: a messageId already seen from this source.
    pub duplicates: usize,
    /// Dropped: an identifier of the event is suppressed by a privacy request (never stored).
    pub suppressed: usize,
}

/// Routing context shared by the writer.
pub struct Router {
    /// The workspace as of the current group.
    pub ws: Arc<WorkspaceFile>,
    /// Each destination's routing plan for `ws`, in the order of its destinations.
    pub plans: Vec<DestinationPlan>,
    /// Category ids of `ws` in order, and their positions (so routing never searches them).
    pub categories: Categories,
    /// The live workspace the control API updates; read at the start of every group.
    pub live: crate::Live,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// How long delivered events stay in the log for the debugger and audits.
    pub retention_secs: i64,
    /// Each destination's id as a JSON string, in the order of `ws.destinations` (the debugger's
    /// decisions and the stored routes are written from them without re-encoding).
    quoted: Vec<String>,
    /// Identifiers known to have a row in `identities` (see [`KnownIdents`]).
    known: KnownIdents,
    /// Identifiers suppressed by privacy requests: their events are dropped before anything is
    /// stored (SPEC §12).
    suppressed: Arc<crate::privacy::Suppressed>,
    /// Events of a group dropped as suppressed, per source (written with the group).
    dropped: HashMap<String, u64>,
}

/// A positive cache of identifiers committed to `identities`, so the common event (one known
/// identifier, nothing to read or change) needs no identities lookup. Only "exists" is cached,
/// never which profile: identities are never deleted (a merge re-points them, retention never
/// touches them), so an entry stays true; routing by a profile's consent always reads the
/// profile. Entries are seeded 128-bit hashes of the identifier (a collision cannot be aimed at
/// without the process's seed), the cache is emptied when it reaches [`KnownIdents::MAX`], and
/// whenever a group's transaction does not commit (what it added may have been rolled back).
pub struct KnownIdents {
    set: HashSet<u128, BuildHasherDefault<PreHashed>>,
    seed: u64,
}

impl Default for KnownIdents {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Self { set: HashSet::default(), seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) }
    }
}

impl KnownIdents {
    /// Most identifiers remembered (about 20 MB).
    pub const MAX: usize = 1 << 20;

    fn key(&self, kind: u8, id: &str) -> u128 {
        let mut h = xxhash_rust::xxh3::Xxh3::with_seed(self.seed);
        h.update(&[kind]);
        h.update(id.as_bytes());
        h.digest128()
    }

    pub(crate) fn contains(&self, kind: u8, id: &str) -> bool {
        self.set.contains(&self.key(kind, id))
    }

    pub(crate) fn insert(&mut self, kind: u8, id: &str) {
        if self.set.len() >= Self::MAX {
            self.set.clear();
        }
        let k = self.key(kind, id);
        self.set.insert(k);
    }

    /// Forgets everything (after a group that did not commit).
    pub fn clear(&mut self) {
        self.set.clear();
    }

    /// How many identifiers are remembered.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// A multiplicative hasher for small keys that are not attacker-chosen (statistics keys, and
/// identifiers already hashed with a secret seed).
#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hasher for keys that are already uniform hashes (the known identifiers): their low bits.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = (i as u64) ^ ((i >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The statements every event runs, prepared once per group.
struct Hot<'c> {
    dedupe: CachedStatement<'c>,
    dedupe_prev: CachedStatement<'c>,
    event: CachedStatement<'c>,
}

impl<'c> Hot<'c> {
    fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            dedupe: conn.prepare_cached("insert or ignore into dedupe (source, message_id) values (?1, ?2)")?,
            dedupe_prev: conn
                .prepare_cached("select exists(select 1 from dedupe_prev where source = ?1 and message_id = ?2)")?,
            event: conn.prepare_cached(
                "insert into events (source, message_id, received_at, body, decisions, warnings, routes)
                 values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
        })
    }

    /// [`store::remember`] through the prepared statements.
    fn remember(&mut self, source: &str, message_id: &str) -> rusqlite::Result<bool> {
        if self.dedupe.execute(params![source, message_id])? == 0 {
            return Ok(false);
        }
        Ok(!self.dedupe_prev.query_row(params![source, message_id], |r| r.get::<_, bool>(0))?)
    }
}

/// Counts of a group, keyed by (minute, destination index, metric, category index or NONE).
pub(crate) type Stats = HashMap<(i64, usize, Stat, usize), u64, BuildHasherDefault<FastHasher>>;
pub(crate) const NONE: usize = usize::MAX;

impl Router {
    /// A router of `ws` that follows `live`.
    pub fn new(ws: Arc<WorkspaceFile>, live: crate::Live, metrics: Arc<Metrics>, retention_secs: i64) -> Self {
        Self {
            plans: DestinationPlan::all(&ws),
            categories: Categories::of(&ws),
            quoted: quoted_ids(&ws),
            ws,
            live,
            metrics,
            retention_secs,
            known: KnownIdents::default(),
            suppressed: Arc::default(),
            dropped: HashMap::new(),
        }
    }

    /// Drops the events of the identifiers in `suppressed` (the server's set, which follows
    /// `state.db` and the control API).
    pub fn with_suppressed(mut self, suppressed: Arc<crate::privacy::Suppressed>) -> Self {
        self.suppressed = suppressed;
        self
    }

    /// Whether an identifier of the event (`userId`, `anonymousId`, an alias's `previousId`)
    /// is suppressed: O(1) per identifier, no I/O.
    pub(crate) fn is_suppressed(&self, e: &Prepared) -> bool {
        !self.suppressed.is_empty()
            && [&e.user_id, &e.anonymous_id, &e.previous_id]
                .into_iter()
                .any(|i| i.as_deref().is_some_and(|i| self.suppressed.contains(i)))
    }

    /// The suppressed identifiers this router drops.
    pub(crate) fn suppressed(&self) -> &crate::privacy::Suppressed {
        &self.suppressed
    }

    /// Whether one of `ids` is suppressed (an invalid event's identifiers).
    pub(crate) fn suppressed_any(&self, ids: &[String]) -> bool {
        !self.suppressed.is_empty() && ids.iter().any(|i| self.suppressed.contains(i))
    }

    /// The identifiers this router knows exist (for tests and diagnostics).
    pub fn known(&self) -> &KnownIdents {
        &self.known
    }

    /// Follows the live workspace: plans and indexes are rebuilt only when it changed.
    pub(crate) fn refresh(&mut self) {
        let current = self.live.load_full();
        if !Arc::ptr_eq(&current, &self.ws) {
            self.plans = DestinationPlan::all(&current);
            self.categories = Categories::of(&current);
            self.quoted = quoted_ids(&current);
            self.ws = current;
        }
    }

    fn process_event(
        &mut self,
        tx: &Transaction,
        hot: &mut Hot<'_>,
        source: &str,
        event: &Prepared,
        minute: i64,
        stats: &mut Stats,
    ) -> store::Result<bool> {
        let w = store::wrap(tx);
        let message_id = event.message_id.as_str();
        let fresh = hot.remember(source, message_id).map_err(&w)?;
        if !fresh {
            return Ok(false);
        }
        let ids = self.idents(event, |prev| ProfileStore::is_user(tx, prev))?;
        let writes = ids.writes;
        // the common case, one known identifier and nothing to read or change: no profile I/O
        let profile = match ids.only() {
            Some((kind, id)) => {
                if !self.known.contains(kind, id) {
                    ProfileStore::ensure(tx, ids.users.first().copied(), ids.anon.first().copied())?;
                    self.known.insert(kind, id);
                }
                None
            }
            None => ProfileStore::resolve(tx, &ids.users, &ids.anon)?,
        };
        let mut stored_consent = None;
        let mut notes: Vec<String> = Vec::new();
        // R13: destinations that must delete this person, and the request
        let mut withdrawal: Option<(Vec<String>, PersonDelete)> = None;
        if let Some(store::profiles::Resolved { id: pid, profile: mut p, changed, left_out }) = profile {
            let seq = || -> store::Result<u64> {
                let seq: i64 =
                    query_row(tx, "select coalesce(max(seq), 0) + 1 from events", [], |r| r.get(0)).map_err(&w)?;
                Ok(seq as u64)
            };
            withdrawal = self.update_profile(&mut p, event, left_out, source, seq, &mut notes)?;
            if writes || changed {
                ProfileStore::save(tx, pid, &p)?;
            }
            if !p.consent.is_empty() {
                stored_consent = Some(p.routing_consent());
            }
        }
        let Decided { stamped, decisions, routes, .. } = self.decide(event, stored_consent, minute, stats);
        hot.event
            .execute(params![
                source,
                message_id,
                event.received_at,
                stamped.as_deref().unwrap_or(&event.json),
                decisions,
                warnings_json(&event.warnings, &notes),
                routes,
            ])
            .map_err(&w)?;
        if let Some((targets, req)) = withdrawal {
            // after the consent event, in its transaction: durable once the event is acknowledged
            let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
            person_delete::enqueue(tx, &targets, &req, &event.received_at)?;
            for t in &targets {
                if let Some(di) = self.ws.destinations.iter().position(|d| d.id == *t) {
                    *stats.entry((minute, di, Stat::WithdrawalQueued, NONE)).or_default() += 1;
                }
            }
        }
        Ok(true)
    }

    fn process(
        &mut self,
        tx: &Transaction,
        hot: &mut Hot<'_>,
        job: &Job,
        stats: &mut Stats,
    ) -> store::Result<Accepted> {
        let w = store::wrap(tx);
        let now = sluice_core_now();
        let mut acc = Accepted::default();
        for Invalid { reason, body, ids } in &job.invalid {
            if self.suppressed_any(ids) {
                acc.suppressed += 1;
                continue;
            }
            exec(
                tx,
                "insert into invalid (source, received_at, reason, body) values (?1, ?2, ?3, ?4)",
                params![job.source, now, reason, body],
            )
            .map_err(&w)?;
        }
        let minute = chrono::Utc::now().timestamp() / 60;
        for e in &job.events {
            if self.is_suppressed(e) {
                // dropped before dedupe, profiles or the log: nothing of it is stored
                acc.suppressed += 1;
                continue;
            }
            if self.process_event(tx, hot, &job.source, e, minute, stats)? {
                acc.accepted += 1;
            } else {
                acc.duplicates += 1;
            }
        }
        self.metrics
            .received
            .get_or_create(&crate::metrics::Src { source: job.source.clone() })
            .inc_by(acc.accepted as u64);
        if acc.suppressed > 0 {
            *self.dropped.entry(job.source.clone()).or_default() += acc.suppressed as u64;
        }
        Ok(acc)
    }
}

/// The warnings stored with an event: its consent warnings, then notes of the writer.
pub(crate) fn warnings_json(warnings: &[String], notes: &[String]) -> String {
    if warnings.is_empty() && notes.is_empty() {
        return "[]".into();
    }
    let all: Vec<&String> = warnings.iter().chain(notes).collect();
    serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
}

fn sluice_core_now() -> String {
    crate::rfc3339(chrono::Utc::now())
}

/// Adds a group's counts to the per-minute statistics and the Prometheus counters.
fn write_stats(tx: &Transaction, ws: &WorkspaceFile, metrics: &Metrics, stats: &Stats) -> store::Result<()> {
    for (&(minute, di, metric, ci), &n) in stats {
        let d = &ws.destinations[di].id;
        let cat = ws.consent_categories.get(ci).map(|c| c.id.as_str()).unwrap_or("");
        store::add_stat(tx, minute, d, metric, cat, n)?;
        match metric {
            Stat::Routed => metrics.routed.get_or_create(&dest(d)).inc_by(n),
            Stat::TurnedOff => metrics.turned_off.get_or_create(&dest(d)).inc_by(n),
            Stat::Withheld if ci != NONE => metrics
                .withheld
                .get_or_create(&DestCategory { destination: d.clone(), category: cat.to_string() })
                .inc_by(n),
            _ => 0,
        };
    }
    Ok(())
}

/// WAL frames after which the writer checkpoints itself, should the checkpointer thread fall
/// behind (about 64 MB at 4 KiB pages); below it the checkpointer does the copying.
const WRITER_CHECKPOINT_FRAMES: i64 = 16_384;
/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Copies the WAL into the database file on its own thread and connection (a passive
/// checkpoint never blocks the writer or readers), so the writer's commits only append to the
/// WAL. Durability is unchanged: a transaction is durable once its commit returned; a
/// checkpoint only moves committed pages. Stops when `stop` is dropped.
fn spawn_checkpointer(path: &str) -> Option<std::sync::mpsc::Sender<()>> {
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpointer connection; the writer checkpoints itself");
            return None;
        }
    };
    let _ = conn.busy_timeout(std::time::Duration::from_millis(100));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new().name("sluice-checkpoint".into()).spawn(move || loop {
        match stopped.recv_timeout(CHECKPOINT_EVERY) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
            _ => return,
        }
    });
    spawned.ok().map(|_| stop)
}

/// Runs the writer until every sender is gone. `wake` is called after each commit.
pub fn run(mut conn: Connection, mut router: Router, jobs: Receiver<Job>, wake: impl Fn()) {
    const GROUP: usize = 256;
    // checkpoints leave the writer's thread (it keeps a far threshold of its own as a backstop)
    let _checkpointer = match conn.path().filter(|p| !p.is_empty()).and_then(spawn_checkpointer) {
        Some(stop) => {
            if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_FRAMES) {
                tracing::warn!(error = %e, "wal_autocheckpoint not set");
            }
            Some(stop)
        }
        None => None,
    };
    let mut last_trim = std::time::Instant::now() - std::time::Duration::from_secs(3600);
    loop {
        let first = match jobs.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(j) => j,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                trim(&conn, &router, &mut last_trim);
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        trim(&conn, &router, &mut last_trim);
        router.refresh();
        let mut group = vec![first];
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let mut stats = Stats::default();
        // a bug that panics on one group must not stop ingestion: the group's transaction rolls
        // back, its requests are answered 500 (clients retry), the writer goes on
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<Accepted>, String> {
            let sql = |source| store::StoreError { path: "stream.db".into(), source }.to_string();
            let tx = conn.transaction().map_err(sql)?;
            let mut out = Vec::with_capacity(group.len());
            {
                let mut hot = Hot::new(&tx).map_err(sql)?;
                for job in &group {
                    out.push(router.process(&tx, &mut hot, job, &mut stats).map_err(|e| e.to_string())?);
                }
            }
            write_stats(&tx, &router.ws, &router.metrics, &stats).map_err(|e| e.to_string())?;
            let minute = chrono::Utc::now().timestamp() / 60;
            for (source, &n) in &router.dropped {
                store::add_dropped_suppressed(&tx, minute, source, n).map_err(|e| e.to_string())?;
            }
            tx.commit().map_err(sql)?;
            for (source, n) in router.dropped.drain() {
                router.metrics.dropped_suppressed.get_or_create(&crate::metrics::Src { source }).inc_by(n);
            }
            Ok(out)
        }))
        .unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %why, "the writer panicked on a group; its requests are answered 500");
            Err(format!("writer panicked: {why}"))
        });
        match result {
            Ok(accepted) => {
                for (job, acc) in group.into_iter().zip(accepted) {
                    let _ = job.reply.send(Answer { result: Ok(acc), spent: job.events });
                }
                wake();
            }
            Err(e) => {
                // identifiers this group added to `identities` were rolled back with it
                router.known.clear();
                router.dropped.clear();
                tracing::error!(error = %e, "event log write failed; requests answered 500");
                for job in group {
                    let _ = job.reply.send(Answer { result: Err(e.clone()), spent: job.events });
                }
            }
        }
    }
}

/// Trims the log at most every 10 s, a slice at a time (see [`store::retention`]).
fn trim(conn: &Connection, router: &Router, last: &mut std::time::Instant) {
    if last.elapsed() < std::time::Duration::from_secs(10) {
        return;
    }
    *last = std::time::Instant::now();
    let dests: Vec<String> = streaming_destinations(&router.ws).into_iter().map(|d| d.id).collect();
    let holders: Vec<String> = router.ws.destinations.iter().map(|d| d.id.clone()).collect();
    match store::retention::trim(conn, chrono::Utc::now().timestamp(), router.retention_secs, &dests, &holders) {
        Ok(t) if t.events > 0 || t.rotated => {
            tracing::info!(events = t.events, dedupe_rotated = t.rotated, "event log trimmed")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "event log trim failed"),
    }
}

/// Destinations streamed events are delivered to: enabled ones whose kind takes events
/// ([`sluice_core::KindInfo::events`]; `connections` forwards them to another Tracking API).
pub fn streaming_destinations(ws: &WorkspaceFile) -> Vec<DestinationConfig> {
    ws.destinations
        .iter()
        .filter(|d| d.enabled && sluice_destinations::registry::info(&d.kind).is_some_and(|k| k.events))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
