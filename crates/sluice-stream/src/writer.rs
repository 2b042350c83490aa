//! The writer: one thread that owns the event log. It takes accepted events in groups, and in
//! one transaction per group de-duplicates by messageId, resolves profiles (R9, R10), routes each
//! event to every destination (R6–R8) and queues it in their outboxes. A request is answered only
//! after its group committed, so an acknowledged event survives a crash.

use crate::metrics::{dest, DestCategory, Metrics};
use crate::store::{self, exec, query_row, ProfileStore, Stat};
use rusqlite::{params, Connection, Transaction};
use serde_json::{json, Value};
use sluice_core::events::{effective_consent, read_consent, DestinationPlan, EventConsent, Route};
use sluice_core::{DestinationConfig, MissingConsent, WorkspaceFile};
use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

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
        }
    }
}

/// Events of one request.
pub struct Job {
    /// The event source.
    pub source: String,
    /// Normalized events.
    pub events: Vec<Prepared>,
    /// Events that failed validation: (reason, raw JSON). Stored for the debugger, not routed.
    pub invalid: Vec<(String, String)>,
    /// Answered after the commit.
    pub reply: tokio::sync::oneshot::Sender<Result<Accepted, String>>,
}

/// What happened to a request's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Stored and routed.
    pub accepted: usize,
    /// Dropped: a messageId already seen from this source.
    pub duplicates: usize,
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
}

/// A workspace's category ids, in order, with an index by id.
#[derive(Debug, Default)]
pub struct Categories {
    /// Every category id (R9 replaces each of them).
    pub ids: Vec<String>,
    /// Id -> position in `ids`.
    pub index: HashMap<String, usize>,
}

impl Categories {
    /// The categories of `ws`.
    pub fn of(ws: &WorkspaceFile) -> Self {
        let ids: Vec<String> = ws.consent_categories.iter().map(|c| c.id.clone()).collect();
        let index = ids.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Self { ids, index }
    }
}

/// Counts of a group, keyed by (minute, destination index, metric, category index or NONE).
type Stats = HashMap<(i64, usize, Stat, usize), u64>;
const NONE: usize = usize::MAX;

/// Appends the debugger's record of a decision.
fn push_decision(out: &mut String, r: &Route) {
    match r {
        Route::Deliver { metadata: None } => out.push_str(r#"{"route":"deliver"}"#),
        Route::Deliver { metadata: Some(m) } => out.push_str(&json!({"route": "deliver", "metadata": m}).to_string()),
        Route::Withheld { categories } => out.push_str(
            &json!({"route": "withheld", "code": "FILTERED_BY_END_USER_CONSENT", "categories": categories}).to_string(),
        ),
        Route::TurnedOff => out.push_str(r#"{"route":"turned_off","reason":"integrations object"}"#),
        Route::Disabled => out.push_str(r#"{"route":"disabled"}"#),
    }
}

impl Router {
    /// A router of `ws` that follows `live`.
    pub fn new(ws: Arc<WorkspaceFile>, live: crate::Live, metrics: Arc<Metrics>, retention_secs: i64) -> Self {
        Self { plans: DestinationPlan::all(&ws), categories: Categories::of(&ws), ws, live, metrics, retention_secs }
    }

    /// Follows the live workspace: plans and indexes are rebuilt only when it changed.
    fn refresh(&mut self) {
        let current = self.live.load_full();
        if !Arc::ptr_eq(&current, &self.ws) {
            self.plans = DestinationPlan::all(&current);
            self.categories = Categories::of(&current);
            self.ws = current;
        }
    }

    fn process_event(
        &self,
        tx: &Transaction,
        source: &str,
        event: &Prepared,
        stats: &mut Stats,
    ) -> store::Result<bool> {
        let w = store::wrap(tx);
        let message_id = event.message_id.as_str();
        let fresh = store::remember(tx, source, message_id).map_err(&w)?;
        if !fresh {
            return Ok(false);
        }
        // identities: an event that carries both ids (identify, alias, or any call) links them
        let mut users: Vec<&str> = event.user_id.as_deref().into_iter().collect();
        let mut anon: Vec<&str> = event.anonymous_id.as_deref().into_iter().collect();
        {
            // previousId is a known user's id if we saw it as one, else an anonymous id
            if let Some(prev) = event.previous_id.as_deref() {
                if ProfileStore::is_user(tx, prev)? {
                    users.push(prev);
                } else {
                    anon.push(prev);
                }
            }
        }
        let (consent, reserved) = (&event.consent, event.reserved);
        let traits = event.traits.is_some();
        let reads = *consent == EventConsent::Missing && self.ws.workspace.missing_consent == MissingConsent::Profile;
        let writes = traits || (reserved && matches!(consent, EventConsent::Given(_)));
        let consent = consent.clone();
        // the common case, one known identifier and nothing to read or change: no profile I/O
        let profile = if users.len() + anon.len() == 1 && !writes && !reads {
            ProfileStore::ensure(tx, users.first().copied(), anon.first().copied())?;
            None
        } else {
            ProfileStore::resolve(tx, &users, &anon)?
        };
        let mut stored_consent = None;
        let mut notes: Vec<String> = Vec::new();
        if let Some(store::profiles::Resolved { id: pid, profile: mut p, changed, left_out }) = profile {
            if left_out > 0 {
                tracing::warn!(source, left_out, "profile identifiers capped");
                notes.push(format!(
                    "{left_out} identifier(s) or profile(s) not linked: a profile links at most {} identifiers",
                    store::profiles::MAX_IDENTIFIERS
                ));
            }
            if let Some(traits) = &event.traits {
                let left_out = p.add_traits(traits);
                if !left_out.is_empty() {
                    tracing::warn!(source, traits_left_out = left_out.len(), "profile traits capped");
                    notes.push(format!(
                        "{} trait(s) not stored: a profile keeps at most {} traits and {} KB of them ({})",
                        left_out.len(),
                        sluice_core::profiles::MAX_TRAITS,
                        sluice_core::profiles::MAX_TRAITS_BYTES / 1024,
                        left_out.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if let (true, EventConsent::Given(prefs)) = (reserved, &consent) {
                let seq: i64 =
                    query_row(tx, "select coalesce(max(seq), 0) + 1 from events", [], |r| r.get(0)).map_err(&w)?;
                p.apply_consent_event(prefs, &self.categories.ids, &event.timestamp, seq as u64);
            }
            if writes || changed {
                ProfileStore::save(tx, pid, &p)?;
            }
            if !p.consent.is_empty() {
                stored_consent = Some(p.routing_consent());
            }
        }
        let missing = consent == EventConsent::Missing;
        let consent = effective_consent(self.ws.workspace.missing_consent, consent, stored_consent.as_ref());
        // an event routed by the profile's consent (or blocked, R7) carries the consent it was
        // routed under, so no destination downstream (connections) takes it as unrestricted
        let stamped = match (&consent, missing) {
            (EventConsent::Given(prefs), true) => stamp_consent(&event.json, prefs, &self.categories.ids),
            _ => None,
        };
        let integrations = event.integrations.as_ref();
        let minute = chrono::Utc::now().timestamp() / 60;
        let mut decisions = String::from("{");
        let mut routes: Vec<&str> = Vec::new();
        for (di, d) in self.ws.destinations.iter().enumerate() {
            let r = self.plans[di].route(&consent, integrations);
            let metric = match &r {
                Route::Deliver { .. } => {
                    routes.push(&d.id);
                    Stat::Routed
                }
                Route::Withheld { categories } => {
                    for c in categories {
                        let ci = self.categories.index.get(c).copied().unwrap_or(NONE);
                        *stats.entry((minute, di, Stat::Withheld, ci)).or_default() += 1;
                    }
                    Stat::Withheld
                }
                Route::TurnedOff => Stat::TurnedOff,
                Route::Disabled => Stat::Disabled,
            };
            *stats.entry((minute, di, Stat::Received, NONE)).or_default() += 1;
            if !event.warnings.is_empty() {
                // R6: a non-boolean value or a preferences field that is not an object
                *stats.entry((minute, di, Stat::ConsentWarnings, NONE)).or_default() += 1;
            }
            *stats.entry((minute, di, metric, NONE)).or_default() += 1;
            if decisions.len() > 1 {
                decisions.push(',');
            }
            decisions.push_str(&Value::String(d.id.clone()).to_string());
            decisions.push(':');
            push_decision(&mut decisions, &r);
        }
        exec(
            tx,
            "insert into events (source, message_id, received_at, body, decisions, warnings, routes)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                source,
                message_id,
                event.received_at,
                stamped.as_deref().unwrap_or(&event.json),
                decisions + "}",
                warnings_json(&event.warnings, &notes),
                crate::delivery::routes::encode(&routes),
            ],
        )
        .map_err(&w)?;
        Ok(true)
    }

    fn process(&self, tx: &Transaction, job: &Job, stats: &mut Stats) -> store::Result<Accepted> {
        let w = store::wrap(tx);
        let now = sluice_core_now();
        for (reason, body) in &job.invalid {
            exec(
                tx,
                "insert into invalid (source, received_at, reason, body) values (?1, ?2, ?3, ?4)",
                params![job.source, now, reason, body],
            )
            .map_err(&w)?;
        }
        let mut acc = Accepted::default();
        for e in &job.events {
            if self.process_event(tx, &job.source, e, stats)? {
                acc.accepted += 1;
            } else {
                acc.duplicates += 1;
            }
        }
        self.metrics
            .received
            .get_or_create(&crate::metrics::Src { source: job.source.clone() })
            .inc_by(acc.accepted as u64);
        Ok(acc)
    }
}

/// `json` with `context.consent.categoryPreferences` and `.consentPreferences` set to `prefs` for
/// every category (absent ones false); `None` if the event is not an object.
fn stamp_consent(
    json: &str,
    prefs: &std::collections::BTreeMap<String, bool>,
    categories: &[String],
) -> Option<String> {
    let mut e: Value = serde_json::from_str(json).ok()?;
    let all: serde_json::Map<String, Value> =
        categories.iter().map(|c| (c.clone(), Value::Bool(prefs.get(c).copied().unwrap_or(false)))).collect();
    let obj = e.as_object_mut()?;
    let context = obj.entry("context").or_insert_with(|| json!({}));
    if !context.is_object() {
        *context = json!({});
    }
    context["consent"] = json!({"categoryPreferences": all, "consentPreferences": all});
    Some(e.to_string())
}

/// The warnings stored with an event: its consent warnings, then notes of the writer.
fn warnings_json(warnings: &[String], notes: &[String]) -> String {
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

/// Runs the writer until every sender is gone. `wake` is called after each commit.
pub fn run(mut conn: Connection, mut router: Router, jobs: Receiver<Job>, wake: impl Fn()) {
    const GROUP: usize = 256;
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
        let mut stats = Stats::new();
        // a bug that panics on one group must not stop ingestion: the group's transaction rolls
        // back, its requests are answered 500 (clients retry), the writer goes on
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<Accepted>, String> {
            let sql = |source| store::StoreError { path: "stream.db".into(), source }.to_string();
            let tx = conn.transaction().map_err(sql)?;
            let mut out = Vec::with_capacity(group.len());
            for job in &group {
                out.push(router.process(&tx, job, &mut stats).map_err(|e| e.to_string())?);
            }
            write_stats(&tx, &router.ws, &router.metrics, &stats).map_err(|e| e.to_string())?;
            tx.commit().map_err(sql)?;
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
                    let _ = job.reply.send(Ok(acc));
                }
                wake();
            }
            Err(e) => {
                tracing::error!(error = %e, "event log write failed; requests answered 500");
                for job in group {
                    let _ = job.reply.send(Err(e.clone()));
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
    match store::retention::trim(conn, chrono::Utc::now().timestamp(), router.retention_secs, &dests) {
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
