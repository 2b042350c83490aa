//! A router process: takes accepted requests from the events stream (one durable consumer,
//! "router", shared by every router process: JetStream hands each message to one of them) and
//! routes them in groups. Per group, in one PostgreSQL transaction: messageIds seen before are
//! dropped, profiles are resolved and changed (R9, R10; rows locked, so routers on other machines
//! never lose an update), every event is decided for every destination (`writer::decide`, the
//! same code as the single process), and what each destination gets is published to its subject
//! of the out stream. The transaction commits only after JetStream acknowledged every publish,
//! and the group's messages are acknowledged only after the commit: a router killed at any point
//! leaves the group to be routed again by another (the out messages' ids make the second
//! publish of a message JetStream already stored a no-op).
//!
//! R9's "most recent" is by the event's timestamp, ties by arrival: arrival is the message's
//! sequence in the events stream, one order for every ingest node, not the order a router saw.

use super::pg::{self, PgError, Tables};
use super::wire::{self, Routed};
use super::Bus;
use crate::metrics::{dest, DestCategory, Metrics};
use crate::person_delete::PersonDelete;
use crate::store::Stat;
use crate::writer::{Decided, KnownIdents, Prepared, Router, Stats, NONE};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use sluice_state::PostgresState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Messages fetched (and routed in one transaction) at most.
const GROUP: usize = 64;
/// Bytes of events at which a routed message is cut (NATS refuses payloads over 1 MB by default).
const RUN_BYTES: usize = 512 * 1024;
/// Times a group that conflicted with another router is run again at once.
const CONFLICT_RETRIES: usize = 20;
/// How long a fetched message stays with this router before JetStream gives it to another.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// The durable consumer of the routers.
pub async fn consumer(bus: &Bus) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let stream = bus.js.get_stream(bus.settings.events_stream()).await.map_err(|e| format!("events stream: {e}"))?;
    stream
        .get_or_create_consumer(
            "router",
            pull::Config {
                durable_name: Some("router".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 8192,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("router consumer: {e}"))
}

/// One destination's part of a group, in order: runs of events, and person-deletes between them.
#[derive(Default)]
struct Out {
    /// Messages ready to publish: (destination index, their `Nats-Msg-Id`, message).
    ready: Vec<(usize, String, Vec<u8>)>,
    /// The accepted message being routed (its stream sequence), and the parts made of it per
    /// destination: the out messages' ids are `{sequence}:{destination}:{part}`, the same
    /// whichever router routes it and however it was grouped.
    seq: u64,
    parts: std::collections::HashMap<usize, usize>,
    /// Events of the current run, per destination index.
    run: std::collections::BTreeMap<usize, String>,
}

impl Out {
    fn push_event(&mut self, di: usize, source: &str, message_id: &str, body: &str) {
        let run = self.run.entry(di).or_insert_with(|| String::from("{\"kind\":\"events\",\"events\":["));
        if !run.ends_with('[') {
            run.push(',');
        }
        run.push_str("{\"source\":");
        run.push_str(&serde_json::Value::String(source.to_string()).to_string());
        run.push_str(",\"message_id\":");
        run.push_str(&serde_json::Value::String(message_id.to_string()).to_string());
        run.push_str(",\"body\":");
        run.push_str(body);
        run.push('}');
        if run.len() > RUN_BYTES {
            // far below NATS's 1 MB payload limit, whatever the events stamped into it
            self.flush(di);
        }
    }

    fn start(&mut self, seq: u64) {
        self.seq = seq;
        self.parts.clear();
    }

    fn id(&mut self, di: usize) -> String {
        let k = self.parts.entry(di).or_default();
        *k += 1;
        format!("{}:{di}:{k}", self.seq)
    }

    fn flush(&mut self, di: usize) {
        if let Some(mut run) = self.run.remove(&di) {
            run.push_str("]}");
            let id = self.id(di);
            self.ready.push((di, id, run.into_bytes()));
        }
    }

    /// A person-delete caused by the message's event `index`: its id depends on the input only.
    fn push_delete(&mut self, di: usize, request: &PersonDelete, index: usize) {
        self.flush(di);
        let id = format!("{}:{di}:delete:{index}", self.seq);
        self.ready.push((di, id, Routed::Delete { request: request.clone() }.encode()));
    }

    fn finish(&mut self) {
        let open: Vec<usize> = self.run.keys().copied().collect();
        for di in open {
            self.flush(di);
        }
    }
}

/// One fetched message, decoded.
struct Fetched {
    msg: jetstream::Message,
    /// Its sequence in the events stream (arrival order, for R9 ties).
    seq: u64,
    accepted: Result<(wire::Accepted, Vec<Prepared>), String>,
}

/// Routes until `stop`. Errors that a retry cannot fix (the consumer cannot be made) end it; the
/// caller's supervisor starts it again.
pub fn run(
    bus: Arc<Bus>,
    state: PostgresState,
    mut router: Router,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut client = pg::connect(&state, "sluice-router").map_err(|e| e.to_string())?;
    let consumer = bus.rt.block_on(consumer(&bus))?;
    let mut known = KnownIdents::default();
    let mut trimmed = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if trimmed.elapsed() > Duration::from_secs(60) {
            trimmed = std::time::Instant::now();
            if let Err(e) = pg::trim(&mut client, router.retention_secs) {
                tracing::warn!(error = %e, "old events not trimmed");
            }
        }
        // routing by stored consent (R7 `missing_consent: profile`) must see every earlier
        // event's consent: then one message at a time, in arrival order (below)
        let ordered = router.live.load().workspace.missing_consent == sluice_core::MissingConsent::Profile;
        let size = if ordered { 1 } else { GROUP };
        let fetched = bus.rt.block_on(async {
            let mut out = Vec::new();
            let mut batch = consumer.fetch().max_messages(size).expires(Duration::from_millis(500)).messages().await?;
            while let Some(m) = batch.next().await {
                out.push(m?);
            }
            Ok::<_, async_nats::Error>(out)
        });
        let msgs = match fetched {
            Ok(m) if m.is_empty() => continue,
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "router cannot fetch; retrying");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        let group: Vec<Fetched> = msgs
            .into_iter()
            .map(|msg| {
                let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
                let accepted = wire::Accepted::decode(&msg.payload).and_then(|a| a.prepared().map(|p| (a, p)));
                Fetched { msg, seq, accepted }
            })
            .collect();
        if ordered && !wait_for_older(&bus, &group) {
            // an older message is still with another router (or waits for its redelivery): this
            // one goes back and comes again after it
            nak_all(&bus, &group);
            continue;
        }
        router.refresh();
        match route_with_retries(&bus, &mut client, &mut router, &mut known, &group, &metrics) {
            Ok(()) => ack_all(&bus, &group),
            Err(e) if group.len() > 1 && !client.is_closed() => {
                // one message may be what fails (a value PostgreSQL cannot store): route each
                // alone, so the others go on and the one at fault is set aside with its reason
                tracing::warn!(error = %e, messages = group.len(), "group failed; routing its messages one by one");
                for one in group.chunks(1) {
                    match route_with_retries(&bus, &mut client, &mut router, &mut known, one, &metrics) {
                        Ok(()) => ack_all(&bus, one),
                        Err(e) => set_aside(&bus, &mut client, &one[0], &e),
                    }
                }
            }
            Err(e) if group.len() == 1 && !client.is_closed() => set_aside(&bus, &mut client, &group[0], &e),
            Err(e) => {
                known.clear();
                tracing::error!(error = %e, messages = group.len(), "routing failed; the group is routed again");
                nak_all(&bus, &group);
                client = pg::connect(&state, "sluice-router").map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Under `missing_consent: profile` an event can be routed by the consent an earlier event
/// stored, so events are routed in the order the events stream received them, whichever router
/// and ingest node they went through (as the single writer does): a message is routed only once
/// no older one is left in the stream (a work queue keeps a message until its router committed
/// and acknowledged it). Waits up to 5 s; `false` when older ones are still there.
fn wait_for_older(bus: &Bus, group: &[Fetched]) -> bool {
    let Some(first) = group.iter().map(|f| f.seq).min() else { return true };
    let t = std::time::Instant::now();
    bus.rt.block_on(async {
        let Ok(mut stream) = bus.js.get_stream(bus.settings.events_stream()).await else { return false };
        loop {
            match stream.info().await {
                Ok(info) if info.state.first_sequence >= first => return true,
                Ok(_) if t.elapsed() < Duration::from_secs(5) => tokio::time::sleep(Duration::from_millis(2)).await,
                _ => return false,
            }
        }
    })
}

/// Routes a group, again at once when it conflicted with another router.
fn route_with_retries(
    bus: &Bus,
    client: &mut postgres::Client,
    router: &mut Router,
    known: &mut KnownIdents,
    group: &[Fetched],
    metrics: &Metrics,
) -> Result<(), PgError> {
    let mut attempt = 0;
    loop {
        match route_group(bus, client, router, known, group, metrics) {
            Err(e) if e.conflict && attempt < CONFLICT_RETRIES => {
                known.clear();
                attempt += 1;
                tracing::debug!(attempt, error = %e, "group conflicted with another router; again");
                std::thread::sleep(Duration::from_millis(5 * attempt as u64));
            }
            Err(e) => {
                known.clear();
                return Err(e);
            }
            Ok(()) => return Ok(()),
        }
    }
}

fn ack_all(bus: &Bus, group: &[Fetched]) {
    bus.rt.block_on(async {
        for f in group {
            // acknowledged after the commit; a lost ack only means the group is routed again,
            // and every event of it is then a duplicate
            let ack = if f.accepted.is_ok() { AckKind::Ack } else { AckKind::Term };
            if let Err(e) = f.msg.ack_with(ack).await {
                tracing::warn!(error = %e, seq = f.seq, "ack lost; the message will be routed again");
            }
        }
    });
}

fn nak_all(bus: &Bus, group: &[Fetched]) {
    bus.rt.block_on(async {
        for f in group {
            let _ = f.msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    });
}

/// A message that cannot be routed even alone (not a conflict: a value the shared state refuses)
/// is kept whole, with the reason, among the dead letters (destination `!router`), then taken off
/// the stream: it never blocks the messages after it, and nothing of it is lost.
fn set_aside(bus: &Bus, client: &mut postgres::Client, f: &Fetched, e: &PgError) {
    tracing::error!(seq = f.seq, error = %e, "a message cannot be routed; kept as a dead letter");
    let body = String::from_utf8_lossy(&f.msg.payload).replace('\0', "\\u0000");
    let reason = format!("cannot be routed: {e}").replace('\0', "");
    match pg::dead_letter(client, ROUTER_DEAD, "!bus", &f.seq.to_string(), &reason, &body) {
        Ok(()) => {
            let _ = bus.rt.block_on(f.msg.ack_with(AckKind::Term));
        }
        Err(e2) => {
            tracing::error!(seq = f.seq, error = %e2, "cannot keep the dead letter; the message is routed again later");
            let _ = bus.rt.block_on(f.msg.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))));
        }
    }
}

/// The `destination` of dead letters of messages no router could route (kept whole).
pub const ROUTER_DEAD: &str = "!router";

fn route_group(
    bus: &Bus,
    client: &mut postgres::Client,
    router: &mut Router,
    known: &mut KnownIdents,
    group: &[Fetched],
    metrics: &Metrics,
) -> Result<(), PgError> {
    let mut tx = client.transaction()?;
    pg::refresh_suppressed(&mut tx, router.suppressed())?;
    let minute = chrono::Utc::now().timestamp() / 60;
    let mut stats = Stats::default();
    // whether each event is suppressed, decided once (the set can change meanwhile), then
    // every event that is not, in order, and whether it is new
    let skip: Vec<Vec<bool>> = group
        .iter()
        .map(|f| match &f.accepted {
            Ok((_, events)) => events.iter().map(|e| router.is_suppressed(e)).collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (f, skip) in group.iter().zip(&skip) {
        if let Ok((a, events)) = &f.accepted {
            pairs.extend(
                events.iter().zip(skip).filter(|(_, s)| !**s).map(|(e, _)| (a.source.as_str(), e.message_id.as_str())),
            );
        }
    }
    let fresh_flags = pg::fresh(&mut tx, &pairs)?;
    if fresh_flags.len() != pairs.len() {
        return Err(PgError {
            message: "de-duplication answered for another number of events".into(),
            conflict: false,
        });
    }
    let mut fresh = fresh_flags.into_iter();
    let mut out = Out::default();
    let mut log: Vec<pg::EventRow> = Vec::new();
    let mut accepted = 0u64;
    let mut dropped = std::collections::BTreeMap::<String, i64>::new();
    let streaming = streaming_indexes(&router.ws);
    for (f, skip) in group.iter().zip(&skip) {
        out.start(f.seq);
        let (a, events) = match &f.accepted {
            Ok(x) => x,
            Err(e) => {
                // kept whole among the dead letters (then taken off the stream), never guessed at
                tracing::error!(seq = f.seq, error = %e, "undecodable message on the events stream; kept as a dead letter");
                let body = String::from_utf8_lossy(&f.msg.payload).replace('\0', "\\u0000");
                tx.execute(
                    "insert into stream_dead (destination, source, message_id, error, body) values ($1, '!bus', $2, $3, $4)",
                    &[&ROUTER_DEAD, &f.seq.to_string(), &e.replace('\0', ""), &body],
                )?;
                continue;
            }
        };
        for i in &a.invalid {
            if router.suppressed_any(&i.ids) {
                continue;
            }
            Tables(&mut tx).invalid(&a.source, &i.reason, &i.body)?;
        }
        for (n, event) in events.iter().enumerate() {
            if skip.get(n).copied().unwrap_or(true) {
                *dropped.entry(a.source.clone()).or_default() += 1;
                continue;
            }
            if !fresh.next().unwrap_or(false) {
                continue;
            }
            accepted += 1;
            let seq = f.seq.saturating_mul(65_536).saturating_add(n as u64);
            let row = route_event(
                router,
                known,
                &mut tx,
                (&a.source, n),
                event,
                seq,
                minute,
                &mut stats,
                &mut out,
                &streaming,
            )?;
            log.push(row);
        }
        out.finish();
    }
    // published before the commit: a crash in between routes the group again, and the same
    // message ids make JetStream drop the second copies
    let ws = router.ws.clone();
    let published: Result<(), String> = bus.rt.block_on(async {
        let mut acks = Vec::with_capacity(out.ready.len());
        for (di, id, payload) in out.ready.drain(..) {
            let d = &ws.destinations[di].id;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{id}:{}", super::hex(d)).as_str());
            let ack = bus
                .js
                .publish_with_headers(bus.settings.out_subject(d), headers, payload.into())
                .await
                .map_err(|e| format!("publish to {d}: {e}"))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| format!("routed events not stored: {e}"))?;
        }
        Ok(())
    });
    published.map_err(|message| PgError { message, conflict: false })?;
    let mut rows = stat_rows(&ws, &stats);
    let dropped_n: i64 = dropped.values().sum();
    for (source, n) in dropped {
        rows.push((minute, pg::SUPPRESSED_ROWS.to_string(), "dropped", source, n));
    }
    pg::add_stats(&mut tx, &rows)?;
    pg::log_events(&mut tx, &log)?;
    tx.commit()?;
    count(&ws, metrics, &stats, accepted, dropped_n);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn route_event(
    router: &Router,
    known: &mut KnownIdents,
    tx: &mut postgres::Transaction<'_>,
    (source, index): (&str, usize),
    event: &Prepared,
    seq: u64,
    minute: i64,
    stats: &mut Stats,
    out: &mut Out,
    streaming: &[bool],
) -> Result<pg::EventRow, PgError> {
    let ids = router.idents(event, |prev| Tables(tx).is_user(prev))?;
    let mut stored_consent = None;
    let mut notes = Vec::new();
    let mut withdrawal = None;
    match ids.only() {
        Some((kind, id)) => {
            if !known.contains(kind, id) {
                Tables(tx).ensure(ids.users.first().copied(), ids.anon.first().copied())?;
                known.insert(kind, id);
            }
        }
        None => {
            if let Some(r) = Tables(tx).resolve(&ids.users, &ids.anon)? {
                let mut p = r.profile;
                withdrawal = router
                    .update_profile(&mut p, event, r.left_out, source, || Ok(seq), &mut notes)
                    .map_err(|e| PgError { message: e.to_string(), conflict: false })?;
                if ids.writes || r.changed {
                    Tables(tx).save(r.id, &p)?;
                }
                if !p.consent.is_empty() {
                    stored_consent = Some(p.routing_consent());
                }
            }
        }
    }
    let Decided { stamped, deliver, decisions, .. } = router.decide(event, stored_consent, minute, stats);
    // only destinations that take events have a worker to empty their subject
    for di in deliver.into_iter().filter(|di| streaming.get(*di).copied().unwrap_or(false)) {
        out.push_event(di, source, &event.message_id, stamped.as_deref().unwrap_or(&event.json));
    }
    if let Some((targets, request)) = withdrawal {
        // after the consent event, in its group: published before the group commits
        for t in &targets {
            if let Some(di) = router.ws.destinations.iter().position(|d| d.id == *t) {
                out.push_delete(di, &request, index);
                *stats.entry((minute, di, Stat::WithdrawalQueued, NONE)).or_default() += 1;
            }
        }
    }
    Ok((
        i64::try_from(seq).unwrap_or(i64::MAX),
        source.to_string(),
        event.message_id.clone(),
        event.received_at.clone(),
        stamped.unwrap_or_else(|| event.json.clone()),
        decisions,
        crate::writer::warnings_json(&event.warnings, &notes),
    ))
}

/// Per destination position: whether it takes events (enabled, its kind has a streaming worker).
fn streaming_indexes(ws: &sluice_core::WorkspaceFile) -> Vec<bool> {
    let streaming = crate::writer::streaming_destinations(ws);
    ws.destinations.iter().map(|d| streaming.iter().any(|s| s.id == d.id)).collect()
}

/// The group's counts as rows of the shared statistics.
fn stat_rows(ws: &sluice_core::WorkspaceFile, stats: &Stats) -> Vec<pg::StatRow> {
    stats
        .iter()
        .filter_map(|(&(minute, di, metric, ci), &n)| {
            let d = ws.destinations.get(di)?.id.clone();
            let cat = ws.consent_categories.get(ci).map(|c| c.id.clone()).unwrap_or_default();
            Some((minute, d, metric.as_str(), cat, i64::try_from(n).unwrap_or(i64::MAX)))
        })
        .collect()
}

/// The group's decisions in the Prometheus counters of this process.
fn count(ws: &sluice_core::WorkspaceFile, metrics: &Metrics, stats: &Stats, accepted: u64, dropped: i64) {
    for (&(_, di, metric, ci), &n) in stats {
        let Some(d) = ws.destinations.get(di).map(|d| d.id.as_str()) else { continue };
        match metric {
            Stat::Routed => metrics.routed.get_or_create(&dest(d)).inc_by(n),
            Stat::TurnedOff => metrics.turned_off.get_or_create(&dest(d)).inc_by(n),
            Stat::Withheld if ci != NONE => {
                let category = ws.consent_categories.get(ci).map(|c| c.id.clone()).unwrap_or_default();
                metrics.withheld.get_or_create(&DestCategory { destination: d.to_string(), category }).inc_by(n)
            }
            _ => 0,
        };
    }
    tracing::debug!(accepted, dropped, "group routed");
}
