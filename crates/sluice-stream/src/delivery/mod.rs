//! Delivery: one worker thread per destination follows the event log with its own cursor, so a
//! slow or failing destination never delays or loses another's events. The cursor moves past a
//! batch only when the destination accepted it; failures back off and retry, rejections go to
//! `dead` with their reason.
//!
//! A worker reads what is due, sends it with no transaction open on the event log, and only
//! then records the outcome in one short write transaction: however slowly a destination
//! answers, the writer (and so the Tracking API) never waits on it (finding 7). A worker that
//! dies is restarted by [`supervisor::keep_alive`].

pub mod routes;
pub mod supervisor;

pub use sluice_destinations::connections::namespaced;
pub use sluice_destinations::Event;

use crate::metrics::{dest, Metrics};
use crate::person_delete;
use crate::store::{self, exec, Stat};
use rusqlite::{params, Connection, TransactionBehavior};
use sluice_core::DestinationConfig;
use sluice_destinations::{BuildContext, DeliveryError, Destination, RetryPolicy};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Wakes delivery workers when the writer committed new events.
#[derive(Default)]
pub struct Wake {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Wake {
    /// New events are in the outboxes.
    pub fn notify(&self) {
        *self.lock() += 1;
        self.cond.notify_all();
    }

    /// The generation; a counter has no invariant a panic could break, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self, seen: &mut u64, timeout: Duration) {
        let g = self.lock();
        let g = match self.cond.wait_timeout_while(g, timeout, |g| *g == *seen) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
        *seen = *g;
    }
}

/// Keeps one worker per streaming destination of the live workspace: starts workers for new
/// destinations, restarts those whose settings changed, stops removed or disabled ones; a
/// worker that panics or ends on its own is restarted with a backoff ([`supervisor`]).
pub fn supervise(
    live: crate::Live,
    dir: PathBuf,
    base: PathBuf,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    suppressed: Arc<crate::privacy::Suppressed>,
) {
    let (lv, m, wk) = (live.clone(), metrics.clone(), wake.clone());
    let worker: Worker = Arc::new(move |config, own_stop| {
        run(dir.clone(), base.clone(), config, m.clone(), wk.clone(), own_stop, &lv, &suppressed)
    });
    supervise_with(live, metrics, wake, stop, worker)
}

/// What a delivery worker runs for one destination until its stop flag is set (or it fails: it
/// is then started again with backoff).
pub type Worker = Arc<dyn Fn(DestinationConfig, Arc<AtomicBool>) -> Result<(), String> + Send + Sync>;

/// Keeps one `worker` thread per streaming destination of the live workspace: started when a
/// destination appears, stopped when it goes or its settings change, restarted when it dies.
pub fn supervise_with(
    live: crate::Live,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    worker: Worker,
) {
    let mut running: std::collections::HashMap<
        String,
        (DestinationConfig, Arc<AtomicBool>, std::thread::JoinHandle<()>),
    > = Default::default();
    // workers asked to stop that may still be in the middle of a send: their destination's
    // next worker starts only once they ended, so one cursor never has two senders
    let mut retiring: std::collections::HashMap<String, std::thread::JoinHandle<()>> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let ws = live.load_full();
        let wanted = crate::writer::streaming_destinations(&ws);
        let gone: Vec<String> = running
            .iter()
            .filter(|(id, (config, _, _))| !wanted.iter().any(|d| &d.id == *id && d == config))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some((_, own_stop, h)) = running.remove(&id) {
                own_stop.store(true, Ordering::Relaxed);
                wake.notify();
                retiring.insert(id, h);
            }
        }
        retiring.retain(|_, h| !h.is_finished());
        for d in wanted {
            if running.contains_key(&d.id) || retiring.contains_key(&d.id) {
                continue;
            }
            let own_stop = Arc::new(AtomicBool::new(false));
            let (m, st, config, work) = (metrics.clone(), own_stop.clone(), d.clone(), worker.clone());
            let name = format!("deliver-{}", d.id);
            match std::thread::Builder::new().name(name.clone()).spawn(move || {
                supervisor::keep_alive(&name, &st, &m, supervisor::Backoff::default(), || {
                    work(config.clone(), st.clone())
                })
            }) {
                Ok(h) => {
                    tracing::info!(destination = %d.id, "delivery worker started");
                    running.insert(d.id.clone(), (d, own_stop, h));
                }
                Err(e) => tracing::error!(destination = %d.id, error = %e, "cannot start a delivery worker"),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for (_, (_, own_stop, _)) in running.iter() {
        own_stop.store(true, Ordering::Relaxed);
    }
    wake.notify();
    for (_, (_, _, h)) in running {
        let _ = h.join();
    }
    for (_, h) in retiring {
        let _ = h.join();
    }
}

/// Runs the worker of one destination until `stop`, or until the live workspace no longer has
/// this destination exactly as configured (re-pointed, changed, disabled, removed: the
/// supervisor starts its successor); `Err` says why it cannot run. Events of people `suppressed`
/// by a privacy request meanwhile are not sent (kept in `dead` with the reason).
#[allow(clippy::too_many_arguments)]
pub fn run(
    dir: PathBuf,
    base: PathBuf,
    d: DestinationConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    live: &crate::Live,
    suppressed: &crate::privacy::Suppressed,
) -> Result<(), String> {
    // built through the registry, like Reverse ETL's: one contract, one implementation per kind
    let ctx = BuildContext { base_dir: base, mapping_key: stream_key(&d.id) };
    let mut sink = sluice_destinations::build(&d, &ctx).map_err(|e| format!("unusable settings: {e}"))?;
    let conn = store::open(&dir).map_err(|e| format!("cannot open the event log: {e}"))?;
    exec(&conn, "insert or ignore into cursors (dest) values (?1)", [&d.id])
        .map_err(|e| format!("cannot create the cursor: {e}"))?;
    let mut seen = 0;
    let current = || live.load().destinations.iter().any(|x| x == &d && x.enabled);
    // checked before every batch: events never go to an address the destination no longer has
    while !stop.load(Ordering::Relaxed) && current() {
        match deliver_once(&conn, &d.id, sink.as_mut(), &metrics, &current, suppressed) {
            Ok(0) => wake.wait(&mut seen, Duration::from_millis(200)),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(destination = %d.id, error = %e, "delivery worker store error");
                supervisor::sleep_unless(&stop, Duration::from_millis(500));
            }
        }
    }
    if !current() {
        // retired, not failed: the supervisor starts this destination's successor
        stop.store(true, Ordering::Relaxed);
        tracing::info!(destination = %d.id, "delivery worker stops: its destination changed");
    }
    Ok(())
}

/// The mapping key of destination `id`'s streamed batches (Reverse ETL's is
/// `model/destination`): part of every idempotency key, so a retried batch keeps its key.
pub fn stream_key(id: &str) -> String {
    format!("stream/{id}")
}

/// What one round of sending decided, written to the log afterwards in one short transaction.
#[derive(Debug, Default)]
struct Outcome {
    /// The cursor's new position (every routed event up to it is delivered or dead).
    upto: i64,
    /// Events in the round.
    sent: usize,
    /// Events the destination took.
    delivered: usize,
    /// Events it refused for good: (seq, why).
    dead: Vec<(i64, String)>,
    /// Events not sent because their person was suppressed by a privacy request after they were
    /// accepted: (seq, why). Kept in `dead` with the reason, not counted as failed.
    withheld: Vec<(i64, String)>,
    /// A person it deleted, and why ([`crate::person_delete`]; not counted in `delivered`).
    deleted_person: Option<sluice_destinations::DeleteReason>,
    /// A retryable failure stopped the round at `upto`: back off.
    retry: Option<DeliveryError>,
}

/// Sends the next due batch; returns how far it got (0: nothing due, wait for new events).
fn deliver_once(
    conn: &Connection,
    dest_id: &str,
    sink: &mut dyn Destination,
    metrics: &Metrics,
    current: &dyn Fn() -> bool,
    suppressed: &crate::privacy::Suppressed,
) -> store::Result<usize> {
    let w = store::wrap(conn);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (cursor, attempts, next_at): (i64, i64, i64) = store::query_row(
        conn,
        "select delivered_seq, attempts, next_at from cursors where dest = ?1",
        [dest_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(&w)?;
    if next_at > now_ms {
        return Ok(0);
    }
    let (mut events, last) = due(conn, dest_id, cursor, sink.event_batch_size().max(1))?;
    if last == cursor {
        return Ok(0);
    }
    if events.is_empty() {
        // nothing for this destination in the window: move on and look again at once
        exec(
            conn,
            "update cursors set delivered_seq = ?2, attempts = 0, next_at = 0 where dest = ?1",
            params![dest_id, last],
        )
        .map_err(&w)?;
        return Ok((last - cursor) as usize);
    }
    // checked after reading the batch: an event accepted after the destination was re-pointed
    // (the change is live before its answer) can never go to the old address
    if !current() {
        return Ok(0);
    }
    // a person suppressed after their events were accepted (still queued here): never sent
    let mut withheld = Vec::new();
    if !suppressed.is_empty() {
        events.retain(|e| {
            let keep = e.source == person_delete::SOURCE || !event_is_suppressed(&e.body, suppressed);
            if !keep {
                withheld.push((e.seq, SUPPRESSED.to_string()));
            }
            keep
        });
    }
    let n = events.len() + withheld.len();
    if attempts > 0 {
        metrics.retried.get_or_create(&dest(dest_id)).inc_by(events.len() as u64);
    }
    // the network part: no transaction is open here
    let (first_seq, last_seq) = (events.first().map_or(0, |e| e.seq), events.last().map_or(0, |e| e.seq));
    let span =
        tracing::info_span!("delivery_batch", destination = %dest_id, events = events.len(), first_seq, last_seq);
    let _entered = span.enter();
    let mut outcome = match events.as_slice() {
        [] => Outcome { upto: last, ..Default::default() },
        [e] if e.source == person_delete::SOURCE => send_delete(sink, e, cursor, last),
        _ => send(sink, &events, cursor, last),
    };
    // those after a retryable failure are looked at again next round
    outcome.withheld = withheld.into_iter().filter(|(seq, _)| *seq <= outcome.upto).collect();
    tracing::debug!(
        delivered = outcome.delivered,
        dead = outcome.dead.len(),
        retry = outcome.retry.is_some(),
        attempt = attempts + 1,
        "delivery batch sent"
    );
    let policy = sink.retry_policy().unwrap_or_default();
    record(conn, dest_id, &policy, metrics, &outcome, attempts, chrono::Utc::now().timestamp_millis())?;
    Ok(n)
}

/// Why an event was not sent: its person was suppressed after it was accepted.
pub(crate) const SUPPRESSED: &str = "not sent: the person is suppressed by a privacy request";

/// Whether the stored event `body` names a suppressed identifier (`userId`, `anonymousId`, an
/// alias's `previousId`; ingest made them strings).
pub(crate) fn event_is_suppressed(body: &str, suppressed: &crate::privacy::Suppressed) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { return false };
    ["userId", "anonymousId", "previousId"]
        .into_iter()
        .any(|k| v.get(k).and_then(serde_json::Value::as_str).is_some_and(|i| suppressed.contains(i)))
}

/// The next events routed to `dest_id` after `cursor` (at most a batch, within a scan window),
/// and the last seq looked at (events routed elsewhere are passed over).
fn due(conn: &Connection, dest_id: &str, cursor: i64, batch: usize) -> store::Result<(Vec<Event>, i64)> {
    let w = store::wrap(conn);
    let scan = i64::try_from(batch.saturating_mul(4)).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached("select seq, routes, source, body from events where seq > ?1 order by seq limit ?2")
        .map_err(&w)?;
    let mut last = cursor;
    let mut events = Vec::new();
    let mut rows = stmt.query(params![cursor, scan]).map_err(&w)?;
    while let Some(r) = rows.next().map_err(&w)? {
        let seq: i64 = r.get(0).map_err(&w)?;
        // borrowed from the row: no copy for the events routed elsewhere
        let routed = match r.get_ref(1).map_err(&w)? {
            rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).is_ok_and(|t| routes::contains(t, dest_id)),
            _ => routes::contains(&r.get::<_, String>(1).map_err(&w)?, dest_id),
        };
        if routed {
            let source: String = r.get(2).map_err(&w)?;
            // a person-delete goes alone, after the events before it and before those after it
            let delete = source == person_delete::SOURCE;
            if events.len() == batch || (delete && !events.is_empty()) {
                break;
            }
            events.push(Event { seq, source, body: r.get(3).map_err(&w)? });
            if delete {
                last = seq;
                break;
            }
        }
        last = seq;
    }
    Ok((events, last))
}

/// Sends `events` (the destination isolates the events a rejected batch holds, as for Reverse
/// ETL, and makes one attempt per request: retries are this worker's). Outcomes are taken in
/// order up to the first retryable failure: the round stops before that event.
fn send(sink: &mut dyn Destination, events: &[Event], cursor: i64, last: i64) -> Outcome {
    let mut out = Outcome { upto: cursor, sent: events.len(), ..Default::default() };
    let results = sink.deliver_events(events);
    for (n, e) in events.iter().enumerate() {
        // a destination that answers for fewer events than it was given did not take the rest
        let r = results.get(n).cloned().unwrap_or_else(|| Err(DeliveryError::external("no outcome for this event")));
        match r {
            Ok(()) => out.delivered += 1,
            Err(err) if err.retryable => {
                // delivered and dead so far stay recorded; this event is retried later
                out.upto = e.seq - 1;
                out.retry = Some(err);
                return out;
            }
            Err(err) => out.dead.push((e.seq, err.message)),
        }
    }
    out.upto = last;
    out
}

/// Sends a person-delete entry ([`crate::person_delete`]). Any failure is retried (never dead):
/// an entry that cannot be read is retried too, loudly, rather than skipped.
fn send_delete(sink: &mut dyn Destination, e: &Event, cursor: i64, last: i64) -> Outcome {
    let mut out = Outcome { upto: cursor, sent: 1, ..Default::default() };
    let result = serde_json::from_str::<person_delete::PersonDelete>(&e.body)
        .map_err(|err| DeliveryError {
            class: sluice_destinations::ErrorClass::Internal,
            ..DeliveryError::external(format!("unreadable person-delete entry {}: {err}", e.seq))
        })
        .and_then(|req| person_delete::deliver(sink, &req).map(|()| req.delete_reason()));
    match result {
        Ok(reason) => {
            out.deleted_person = Some(reason);
            out.upto = last;
        }
        Err(mut err) => {
            err.retryable = true;
            out.upto = e.seq - 1;
            out.retry = Some(err);
        }
    }
    out
}

/// Records a round's outcome: one short immediate transaction, no I/O but the event log's.
fn record(
    conn: &Connection,
    dest_id: &str,
    policy: &RetryPolicy,
    metrics: &Metrics,
    o: &Outcome,
    attempts: i64,
    now_ms: i64,
) -> store::Result<()> {
    let w = store::wrap(conn);
    let minute = now_ms / 60_000;
    let stat = |stat: Stat, n: usize| store::add_stat(conn, minute, dest_id, stat, "", n as u64);
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&w)?;
    let at = crate::rfc3339(chrono::Utc::now());
    for (seq, error) in o.dead.iter().chain(&o.withheld) {
        exec(
            conn,
            "insert or replace into dead (dest, seq, error, at) values (?1, ?2, ?3, ?4)",
            params![dest_id, seq, error, at],
        )
        .map_err(&w)?;
    }
    stat(Stat::Delivered, o.delivered)?;
    match o.deleted_person {
        Some(sluice_destinations::DeleteReason::ConsentWithdrawn) => stat(Stat::DeletedOnWithdrawal, 1)?,
        Some(sluice_destinations::DeleteReason::PrivacyRequest) => stat(Stat::DeletedOnRequest, 1)?,
        None => {}
    }
    if attempts > 0 {
        stat(Stat::Retried, o.delivered)?;
    }
    match &o.retry {
        None => exec(
            conn,
            "update cursors set delivered_seq = ?2, attempts = 0, next_at = 0 where dest = ?1",
            params![dest_id, o.upto],
        ),
        Some(e) => {
            // the head event waits: later events of this destination queue behind it, other
            // destinations are not affected
            let wait = retry_wait(attempts, e, policy);
            exec(
                conn,
                "update cursors set delivered_seq = max(delivered_seq, ?2), attempts = attempts + 1, next_at = ?3
                 where dest = ?1",
                params![dest_id, o.upto, now_ms.saturating_add(wait)],
            )
        }
    }
    .map_err(&w)?;
    let failed = if o.retry.is_some() { o.sent - o.delivered } else { o.dead.len() };
    stat(Stat::Failed, failed)?;
    tx.commit().map_err(&w)?;
    metrics.delivered.get_or_create(&dest(dest_id)).inc_by(o.delivered as u64);
    metrics.deleted_people.get_or_create(&dest(dest_id)).inc_by(u64::from(o.deleted_person.is_some()));
    metrics.failed.get_or_create(&dest(dest_id)).inc_by(failed as u64);
    if let Some(e) = &o.retry {
        tracing::warn!(destination = dest_id, after_seq = o.upto, error = %e.message, "delivery failed; will retry");
    }
    Ok(())
}

/// Milliseconds before the head batch is tried again: the destination's retry policy decides
/// (its backoff for this attempt, or the receiver's `Retry-After` when longer, up to its
/// `max_retry_after_secs`); unlike Reverse ETL's in-sync retries, these never run out: the
/// events wait durably in the log.
pub(crate) fn retry_wait(attempts: i64, e: &DeliveryError, policy: &RetryPolicy) -> i64 {
    let backoff = policy.backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
    let asked = e.retry_after.map(|ra| ra.min(policy.max_retry_after)).unwrap_or_default();
    i64::try_from(backoff.max(asked).max(MIN_RETRY_WAIT).as_millis()).unwrap_or(i64::MAX)
}

/// The shortest wait between two attempts at a failing head batch, whatever the destination's
/// settings say: a worker never hammers a failing receiver in a tight loop.
const MIN_RETRY_WAIT: Duration = Duration::from_millis(50);
