//! The publisher of an ingest process: takes the Tracking API's accepted requests ([`Job`]s,
//! exactly as the single-process writer would) and publishes each as one message to the events
//! stream; the request is answered 200 only after JetStream acknowledged the write (stored, and
//! replicated when the stream has replicas). `Nats-Msg-Id` is derived from the source and the
//! events' messageIds, so a client retrying the same batch to any ingest node within JetStream's
//! de-duplication window is stored once; routers de-duplicate each event again, without a window.

use super::{wire, Bus};
use crate::writer::{Accepted, Answer, Job};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

/// How long a publish waits for JetStream's acknowledgement before the request is answered 500
/// (the client retries; the message id makes a late success and the retry one message).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Nats-Msg-Id` of a request's message.
pub fn message_id(job: &Job) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(job.source.as_bytes());
    for e in &job.events {
        h.update(&[0]);
        h.update(e.message_id.as_bytes());
    }
    for i in &job.invalid {
        h.update(&[1]);
        h.update(i.body.as_bytes());
    }
    format!("{}:{:032x}", job.source, h.digest128())
}

/// Publishes every job until the senders are gone. Publishing runs ahead: each job's
/// acknowledgement is awaited on the bus runtime while the next jobs are sent.
pub fn run(bus: Arc<Bus>, jobs: Receiver<Job>, metrics: Arc<crate::metrics::Metrics>) {
    let subject = bus.settings.events_subject();
    while let Ok(job) = jobs.recv() {
        let payload = wire::encode_accepted(&job.source, &job.events, &job.invalid);
        let id = message_id(&job);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let published = bus.rt.block_on(bus.js.publish_with_headers(subject.clone(), headers, payload.into()));
        let Job { source, events, reply, .. } = job;
        let n = events.len();
        let answer = move |result: Result<Accepted, String>| {
            let _ = reply.send(Answer { result, spent: events });
        };
        match published {
            Err(e) => {
                tracing::error!(source = %source, error = %e, "cannot publish accepted events");
                answer(Err(format!("cannot publish: {e}")));
            }
            Ok(ack) => {
                let metrics = metrics.clone();
                bus.rt.spawn(async move {
                    match tokio::time::timeout(ACK_TIMEOUT, ack).await {
                        Ok(Ok(ack)) => {
                            let accepted = if ack.duplicate { 0 } else { n };
                            metrics
                                .received
                                .get_or_create(&crate::metrics::Src { source: source.clone() })
                                .inc_by(accepted as u64);
                            answer(Ok(Accepted { accepted, duplicates: n - accepted, suppressed: 0 }));
                        }
                        Ok(Err(e)) => {
                            tracing::error!(source = %source, error = %e, "JetStream did not store accepted events");
                            answer(Err(format!("not stored: {e}")));
                        }
                        Err(_) => {
                            tracing::error!(source = %source, "no acknowledgement from JetStream in time");
                            answer(Err("no acknowledgement in time".into()));
                        }
                    }
                });
            }
        }
    }
}
