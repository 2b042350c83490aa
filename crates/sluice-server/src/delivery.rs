//! Delivery: one worker thread per destination follows the event log with its own cursor, so a
//! slow or failing destination never delays or loses another's events. The cursor moves past a
//! batch only when the destination accepted it; failures back off and retry, rejections go to
//! `dead` with their reason.

use crate::metrics::{dest, Metrics};
use crate::store::{self, exec};
use rusqlite::{params, Connection};
use sluice_core::{DestinationConfig, DestinationKind};
use sluice_destinations::http::Transport;
use sluice_destinations::DeliveryError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
        *self.generation.lock().expect("not poisoned") += 1;
        self.cond.notify_all();
    }

    fn wait(&self, seen: &mut u64, timeout: Duration) {
        let g = self.generation.lock().expect("not poisoned");
        let (g, _) = self.cond.wait_timeout_while(g, timeout, |g| *g == *seen).expect("not poisoned");
        *seen = *g;
    }
}

enum Sink {
    Webhook { url: String, headers: Vec<(String, String)>, transport: Transport, batch: usize },
    File { path: PathBuf },
}

impl Sink {
    fn new(d: &DestinationConfig, base: &Path) -> Option<Self> {
        match d.kind {
            DestinationKind::Webhook => {
                let c = sluice_destinations::webhook::WebhookConfig::parse(&d.settings).ok()?;
                let transport = Transport::new(c.http.as_ref()?);
                Some(Sink::Webhook {
                    url: c.url,
                    headers: c.headers.into_iter().collect(),
                    transport,
                    batch: c.batch_size,
                })
            }
            DestinationKind::File => {
                let c = sluice_destinations::file::FileConfig::parse(&d.settings).ok()?;
                Some(Sink::File { path: base.join(c.path) })
            }
            DestinationKind::Connections => {
                // forward events as they are to another Tracking API endpoint
                use base64::Engine;
                let c = sluice_destinations::connections::ConnectionsConfig::parse(&d.settings).ok()?;
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", c.write_key));
                Some(Sink::Webhook {
                    url: format!("{}/v1/batch", c.url.trim_end_matches('/')),
                    headers: vec![("Authorization".into(), format!("Basic {auth}"))],
                    transport: Transport::new(c.http.as_ref()?),
                    batch: c.batch_size,
                })
            }
        }
    }

    fn batch_size(&self) -> usize {
        match self {
            Sink::Webhook { batch, .. } => *batch,
            Sink::File { .. } => 500,
        }
    }

    /// Sends events (JSON texts); the idempotency key is stable for the same batch.
    fn send(&self, dest_id: &str, events: &[(i64, String)]) -> Result<(), DeliveryError> {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.1.len() + 1).sum::<usize>() + 16);
        match self {
            Sink::Webhook { url, headers, transport, .. } => {
                body.extend_from_slice(b"{\"batch\":[");
                for (i, (_, e)) in events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(e.as_bytes());
                }
                body.extend_from_slice(b"]}");
                let key = format!("{dest_id}-{}-{}", events[0].0, events[events.len() - 1].0);
                let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                h.push(("Idempotency-Key", &key));
                transport.post_json(url, &h, &body)
            }
            Sink::File { path } => {
                for (_, e) in events {
                    body.extend_from_slice(e.as_bytes());
                    body.push(b'\n');
                }
                let io = |e: std::io::Error| DeliveryError::external(format!("{}: {e}", path.display()));
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
                f.write_all(&body).map_err(io)?;
                f.sync_data().map_err(io)
            }
        }
    }
}

/// Backoff before the n-th retry of a batch (capped at one minute).
fn backoff_secs(attempts: i64) -> i64 {
    (1i64 << attempts.clamp(0, 6)).min(60)
}

/// Keeps one worker per streaming destination of the live workspace: starts workers for new
/// destinations, restarts those whose settings changed, stops removed or disabled ones.
pub fn supervise(
    live: crate::Live,
    dir: PathBuf,
    base: PathBuf,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
) {
    let mut running: std::collections::HashMap<
        String,
        (DestinationConfig, Arc<AtomicBool>, std::thread::JoinHandle<()>),
    > = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let ws = live.load_full();
        let wanted = crate::writer::streaming_destinations(&ws);
        running.retain(|id, (config, own_stop, _)| {
            let keep = wanted.iter().any(|d| &d.id == id && d == config);
            if !keep {
                own_stop.store(true, Ordering::Relaxed);
                wake.notify();
            }
            keep
        });
        for d in wanted {
            if running.contains_key(&d.id) {
                continue;
            }
            let own_stop = Arc::new(AtomicBool::new(false));
            let (dir, base, m, wk, st, config) =
                (dir.clone(), base.clone(), metrics.clone(), wake.clone(), own_stop.clone(), d.clone());
            match std::thread::Builder::new()
                .name(format!("deliver-{}", d.id))
                .spawn(move || run(dir, base, config, m, wk, st))
            {
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
}

/// Runs the worker of one destination until `stop`.
pub fn run(
    dir: PathBuf,
    base: PathBuf,
    d: DestinationConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
) {
    let Some(sink) = Sink::new(&d, &base) else { return };
    let conn = match store::open(&dir) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(destination = %d.id, error = %e, "delivery worker cannot open the event log");
            return;
        }
    };
    let mut seen = 0;
    while !stop.load(Ordering::Relaxed) {
        match deliver_once(&conn, &d.id, &sink, &metrics) {
            Ok(0) => wake.wait(&mut seen, Duration::from_millis(200)),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(destination = %d.id, error = %e, "delivery worker store error");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Sends the next due batch; returns how far it got (0: nothing due, wait for new events).
fn deliver_once(conn: &Connection, dest_id: &str, sink: &Sink, metrics: &Metrics) -> store::Result<usize> {
    let w = store::wrap(conn);
    let now = chrono::Utc::now().timestamp();
    exec(conn, "insert or ignore into cursors (dest) values (?1)", [dest_id]).map_err(&w)?;
    let (cursor, attempts, next_at): (i64, i64, i64) = store::query_row(
        conn,
        "select delivered_seq, attempts, next_at from cursors where dest = ?1",
        [dest_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(&w)?;
    if next_at > now {
        return Ok(0);
    }
    // the next events after the cursor; those routed elsewhere are passed over
    let scan = (sink.batch_size() * 4) as i64;
    let mut stmt =
        conn.prepare_cached("select seq, routes, body from events where seq > ?1 order by seq limit ?2").map_err(&w)?;
    let needle = format!(",{dest_id},");
    let mut last = cursor;
    let mut events: Vec<(i64, String)> = Vec::new();
    let mut rows = stmt.query(params![cursor, scan]).map_err(&w)?;
    while let Some(r) = rows.next().map_err(&w)? {
        let seq: i64 = r.get(0).map_err(&w)?;
        let routes: String = r.get(1).map_err(&w)?;
        if routes.contains(&needle) {
            if events.len() == sink.batch_size() {
                break;
            }
            events.push((seq, r.get(2).map_err(&w)?));
        }
        last = seq;
    }
    drop(rows);
    if last == cursor {
        return Ok(0);
    }
    let minute = now / 60;
    let stat = |metric: &str, n: usize| {
        exec(
            conn,
            "insert into stats (minute, dest, metric, category, n) values (?1, ?2, ?3, '', ?4)
             on conflict (minute, dest, metric, category) do update set n = n + excluded.n",
            params![minute, dest_id, metric, n as i64],
        )
    };
    let advance = |to: i64| {
        exec(
            conn,
            "update cursors set delivered_seq = ?2, attempts = 0, next_at = 0 where dest = ?1",
            params![dest_id, to],
        )
    };
    if events.is_empty() {
        // nothing for this destination in the window: move on and look again at once
        advance(last).map_err(&w)?;
        return Ok((last - cursor) as usize);
    }
    if attempts > 0 {
        metrics.retried.get_or_create(&dest(dest_id)).inc_by(events.len() as u64);
    }
    let outcome = sink.send(dest_id, &events);
    let tx = conn.unchecked_transaction().map_err(&w)?;
    match outcome {
        Ok(()) => {
            advance(last).map_err(&w)?;
            stat("delivered", events.len()).map_err(&w)?;
            if attempts > 0 {
                stat("retried", events.len()).map_err(&w)?;
            }
            metrics.delivered.get_or_create(&dest(dest_id)).inc_by(events.len() as u64);
        }
        Err(e) if e.retryable => {
            // the head batch waits: later events of this destination queue behind it, other
            // destinations are not affected
            exec(
                conn,
                "update cursors set attempts = attempts + 1, next_at = ?2 where dest = ?1",
                params![dest_id, now + backoff_secs(attempts)],
            )
            .map_err(&w)?;
            stat("failed", events.len()).map_err(&w)?;
            metrics.failed.get_or_create(&dest(dest_id)).inc_by(events.len() as u64);
            tracing::warn!(destination = dest_id, events = events.len(), error = %e.message, "delivery failed; will retry");
        }
        Err(e) => {
            // rejected: find which events the destination refuses, one by one
            for (seq, body) in &events {
                let single =
                    if events.len() == 1 { Err(e.clone()) } else { sink.send(dest_id, &[(*seq, body.clone())]) };
                match single {
                    Ok(()) => {
                        stat("delivered", 1).map_err(&w)?;
                        metrics.delivered.get_or_create(&dest(dest_id)).inc();
                    }
                    Err(err) => {
                        exec(
                            conn,
                            "insert or replace into dead (dest, seq, error, at) values (?1, ?2, ?3, ?4)",
                            params![dest_id, seq, err.message, crate::ingest::event::rfc3339(chrono::Utc::now())],
                        )
                        .map_err(&w)?;
                        stat("failed", 1).map_err(&w)?;
                        metrics.failed.get_or_create(&dest(dest_id)).inc();
                    }
                }
            }
            advance(last).map_err(&w)?;
        }
    }
    tx.commit().map_err(&w)?;
    Ok(events.len())
}
