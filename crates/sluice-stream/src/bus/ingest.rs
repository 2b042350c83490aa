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
    // every part length-prefixed: no two different requests hash the same input
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut part = |tag: u8, bytes: &[u8]| {
        h.update(&[tag]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(2, job.source.as_bytes());
    for e in &job.events {
        part(0, e.message_id.as_bytes());
    }
    for i in &job.invalid {
        part(1, i.body.as_bytes());
    }
    format!("{}:{:032x}", job.source, h.digest128())
}

/// Publishes every job until the senders are gone. Publishing runs ahead: each job's
/// acknowledgement is awaited on the bus runtime while the next jobs are sent.
pub fn run(bus: Arc<Bus>, jobs: Receiver<Job>, metrics: Arc<crate::metrics::Metrics>) {
    let subject = bus.settings.events_subject();
    while let Ok(job) = jobs.recv() {
        let id = message_id(&job);
        // a request whose normalized events pass NATS's payload limit goes as several messages
        let parts = split(&job);
        let published = bus.rt.block_on(async {
            let mut acks = Vec::with_capacity(parts.len());
            for (k, payload) in parts.into_iter().enumerate() {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("{id}:{k}").as_str());
                acks.push(bus.js.publish_with_headers(subject.clone(), headers, payload.into()).await?);
            }
            Ok::<_, async_nats::error::Error<async_nats::jetstream::context::PublishErrorKind>>(acks)
        });
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
            Ok(acks) => {
                let metrics = metrics.clone();
                bus.rt.spawn(async move {
                    let all = async {
                        let mut duplicate = true;
                        for a in acks {
                            duplicate &= a.await?.duplicate;
                        }
                        Ok::<_, async_nats::error::Error<async_nats::jetstream::context::PublishErrorKind>>(duplicate)
                    };
                    match tokio::time::timeout(ACK_TIMEOUT, all).await {
                        Ok(Ok(duplicate)) => {
                            let accepted = if duplicate { 0 } else { n };
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

/// Bytes of one message at most (NATS's default payload limit is 1 MB).
const MESSAGE_BYTES: usize = 768 * 1024;

/// The request as one message, or as several when its encoding passes [`MESSAGE_BYTES`] (a batch
/// near the 500 KB limit grows when normalized): halves, until each part fits.
fn split(job: &Job) -> Vec<Vec<u8>> {
    fn parts(
        source: &str,
        events: &[crate::writer::Prepared],
        invalid: &[crate::writer::Invalid],
        out: &mut Vec<Vec<u8>>,
    ) {
        let payload = wire::encode_accepted(source, events, invalid);
        if payload.len() <= MESSAGE_BYTES || events.len() + invalid.len() <= 1 {
            out.push(payload);
            return;
        }
        if events.len() > 1 {
            let (a, b) = events.split_at(events.len() / 2);
            parts(source, a, invalid, out);
            parts(source, b, &[], out);
        } else {
            let (a, b) = invalid.split_at(invalid.len() / 2);
            parts(source, events, a, out);
            parts(source, &[], b, out);
        }
    }
    let mut out = Vec::new();
    parts(&job.source, &job.events, &job.invalid, &mut out);
    out
}
