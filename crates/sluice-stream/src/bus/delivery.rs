//! A delivery worker of a bus deployment: one per streaming destination in each delivery process,
//! all of them on the destination's one durable consumer of the out stream, which lets one
//! message be in flight at a time (`max_ack_pending: 1`): the destination gets its events in the
//! order they were routed, and a person-delete (R13) after the events before it, whichever process
//! sends them; when a process dies, its unacknowledged message goes to another after the ack wait.
//!
//! Per message: every event delivered or refused for good (dead-lettered in PostgreSQL with the
//! reason) → acknowledged; a retryable failure → `nak` with the destination's backoff (honouring
//! `Retry-After`), the message is sent again, whole (at-least-once: the webhook's idempotency key
//! is the same for the same batch). A person-delete is never given up. Events of people a privacy
//! request suppressed since they were routed are not sent (dead-lettered with the reason).

use super::pg;
use super::wire::Routed;
use super::Bus;
use crate::delivery::{event_is_suppressed, retry_wait, SUPPRESSED};
use crate::metrics::{dest, Metrics};
use crate::person_delete;
use crate::store::Stat;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use sluice_core::DestinationConfig;
use sluice_destinations::{BuildContext, DeliveryError, Destination, Event};
use sluice_state::PostgresState;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a message stays with a worker that stopped answering (a killed process) before
/// JetStream gives it to another. A worker still sending tells JetStream so every
/// [`PROGRESS_EVERY`] (`+WPI`), so a slow destination never gets one message from two workers.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// How often a worker in the middle of a delivery says it is still working on the message.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What a worker needs besides its destination.
#[derive(Clone)]
pub struct Context {
    /// The bus.
    pub bus: Arc<Bus>,
    /// The shared state (dead letters).
    pub state: PostgresState,
    /// Folder relative paths resolve from.
    pub base: PathBuf,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The live workspace (a worker stops when its destination changes).
    pub live: crate::Live,
    /// People suppressed by privacy requests.
    pub suppressed: Arc<crate::privacy::Suppressed>,
}

/// The destination's durable consumer.
async fn consumer(bus: &Bus, d: &str) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let stream = bus.js.get_stream(bus.settings.out_stream()).await.map_err(|e| format!("out stream: {e}"))?;
    let name = bus.settings.delivery_consumer(d);
    stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: bus.settings.out_subject(d),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("delivery consumer of {d}: {e}"))
}

/// Delivers `d`'s routed messages until `stop` or until `d` changes in the live workspace.
pub fn run(cx: &Context, d: DestinationConfig, stop: Arc<AtomicBool>) -> Result<(), String> {
    let ctx = BuildContext { base_dir: cx.base.clone(), mapping_key: crate::delivery::stream_key(&d.id) };
    let mut sink = sluice_destinations::build(&d, &ctx).map_err(|e| format!("unusable settings: {e}"))?;
    let mut client = pg::connect(&cx.state, "sluice-delivery").map_err(|e| e.to_string())?;
    let consumer = cx.bus.rt.block_on(consumer(&cx.bus, &d.id))?;
    let current = || cx.live.load().destinations.iter().any(|x| x == &d && x.enabled);
    while !stop.load(Ordering::Relaxed) && current() {
        let fetched = cx.bus.rt.block_on(async {
            let mut batch = consumer.fetch().max_messages(1).expires(Duration::from_millis(500)).messages().await?;
            let mut out = Vec::new();
            while let Some(m) = batch.next().await {
                out.push(m?);
            }
            Ok::<_, async_nats::Error>(out)
        });
        let msgs = match fetched {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(destination = %d.id, error = %e, "cannot fetch routed events; retrying");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        for msg in msgs {
            if client.is_closed() {
                // PostgreSQL restarted: the supervisor starts this worker again with a new connection
                // (the message goes back after the ack wait)
                let _ = cx.bus.rt.block_on(msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))));
                return Err("the connection to PostgreSQL was lost".into());
            }
            if !current() {
                // the destination changed since the fetch: the next worker (new settings) sends it
                let _ = cx.bus.rt.block_on(msg.ack_with(AckKind::Nak(None)));
                break;
            }
            let heartbeat = msg.reply.clone().map(|reply| {
                let client = msg.context.client();
                cx.bus.rt.spawn(async move {
                    loop {
                        tokio::time::sleep(PROGRESS_EVERY).await;
                        let _ = client.publish(reply.clone(), "+WPI".into()).await;
                    }
                })
            });
            let ack = deliver(cx, &d.id, sink.as_mut(), &mut client, &msg);
            if let Some(h) = heartbeat {
                h.abort();
            }
            if let Err(e) = cx.bus.rt.block_on(msg.ack_with(ack)) {
                tracing::warn!(destination = %d.id, error = %e, "ack lost; the message will be delivered again");
            }
        }
    }
    Ok(())
}

/// Sends one routed message; how to answer JetStream.
fn deliver(
    cx: &Context,
    d: &str,
    sink: &mut dyn Destination,
    client: &mut postgres::Client,
    msg: &jetstream::Message,
) -> AckKind {
    let (seq, attempts) = msg.info().map(|i| (i.stream_sequence, i.delivered)).unwrap_or((0, 1));
    let policy = sink.retry_policy().unwrap_or_default();
    let nak = |e: &DeliveryError| AckKind::Nak(Some(wait(attempts, e, &policy)));
    let routed = match Routed::decode(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(destination = d, seq, error = %e, "undecodable routed message; dead-lettered");
            let body = String::from_utf8_lossy(&msg.payload).chars().take(4096).collect::<String>();
            return match pg::dead_letter(client, d, "!bus", &seq.to_string(), &e, &body) {
                Ok(()) => AckKind::Term,
                Err(_) => AckKind::Nak(Some(Duration::from_secs(5))),
            };
        }
    };
    match routed {
        Routed::Delete { request } => match person_delete::deliver(sink, &request) {
            Ok(()) => {
                cx.metrics.deleted_people.get_or_create(&dest(d)).inc();
                let stat = match request.delete_reason() {
                    sluice_destinations::DeleteReason::ConsentWithdrawn => Stat::DeletedOnWithdrawal,
                    sluice_destinations::DeleteReason::PrivacyRequest => Stat::DeletedOnRequest,
                };
                count(client, d, &[(stat, 1)]);
                AckKind::Ack
            }
            Err(e) => {
                tracing::warn!(destination = d, error = %e.message, "person-delete failed; will retry");
                nak(&e)
            }
        },
        Routed::Events { events } => {
            // a privacy request stored since this message was routed is honoured now
            if let Err(e) = pg::refresh_suppressed(client, &cx.suppressed) {
                tracing::warn!(destination = d, error = %e, "suppressions not read; the message waits");
                return AckKind::Nak(Some(Duration::from_secs(1)));
            }
            let mut dead: Vec<(usize, String)> = Vec::new();
            let mut batch = Vec::with_capacity(events.len());
            let mut index = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                if !cx.suppressed.is_empty() && event_is_suppressed(e.body.get(), &cx.suppressed) {
                    dead.push((i, SUPPRESSED.to_string()));
                    continue;
                }
                let seq = i64::try_from(seq.saturating_mul(65_536).saturating_add(i as u64)).unwrap_or(i64::MAX);
                batch.push(Event { seq, source: e.source.clone(), body: e.body.get().to_string() });
                index.push(i);
            }
            let results = if batch.is_empty() { Vec::new() } else { sink.deliver_events(&batch) };
            let mut delivered = 0u64;
            for (n, i) in index.iter().enumerate() {
                match results
                    .get(n)
                    .cloned()
                    .unwrap_or_else(|| Err(DeliveryError::external("no outcome for this event")))
                {
                    Ok(()) => delivered += 1,
                    Err(e) if e.retryable => {
                        cx.metrics
                            .failed
                            .get_or_create(&dest(d))
                            .inc_by((batch.len() as u64).saturating_sub(delivered));
                        tracing::warn!(destination = d, seq, attempt = attempts, error = %e.message, "delivery failed; will retry");
                        return nak(&e);
                    }
                    Err(e) => dead.push((*i, e.message)),
                }
            }
            for (i, error) in &dead {
                let e = &events[*i];
                // nothing of a suppressed person is kept: the reason and ids only
                let body = if error == SUPPRESSED { "" } else { e.body.get() };
                if let Err(err) = pg::dead_letter(client, d, &e.source, &e.message_id, error, body) {
                    tracing::error!(destination = d, error = %err, "cannot keep a dead letter; the message is retried");
                    return AckKind::Nak(Some(Duration::from_secs(5)));
                }
            }
            cx.metrics.delivered.get_or_create(&dest(d)).inc_by(delivered);
            cx.metrics.failed.get_or_create(&dest(d)).inc_by(dead.len() as u64);
            let retried = if attempts > 1 { delivered } else { 0 };
            count(
                client,
                d,
                &[(Stat::Delivered, delivered), (Stat::Failed, dead.len() as u64), (Stat::Retried, retried)],
            );
            AckKind::Ack
        }
    }
}

/// Adds this minute's delivery counts to the shared statistics (a lost count is logged, never
/// a reason to send again).
fn count(client: &mut postgres::Client, d: &str, counts: &[(Stat, u64)]) {
    let minute = chrono::Utc::now().timestamp() / 60;
    let rows: Vec<pg::StatRow> = counts
        .iter()
        .map(|(s, n)| (minute, d.to_string(), s.as_str(), String::new(), i64::try_from(*n).unwrap_or(i64::MAX)))
        .collect();
    if let Err(e) = pg::add_stats(client, &rows) {
        tracing::warn!(destination = d, error = %e, "delivery statistics not recorded");
    }
}

fn wait(attempts: i64, e: &DeliveryError, policy: &sluice_destinations::RetryPolicy) -> Duration {
    Duration::from_millis(u64::try_from(retry_wait(attempts.saturating_sub(1), e, policy)).unwrap_or(u64::MAX))
}
