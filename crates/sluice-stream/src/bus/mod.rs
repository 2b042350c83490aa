//! The event bus of a deployment of several `sluice serve` processes (SPEC §8): NATS JetStream
//! carries events between stateless processes, PostgreSQL (the state store's schema) keeps what
//! must be shared — profiles, messageId de-duplication, dead letters. No home-made cluster
//! protocol: JetStream stores, replicates and hands out the work; PostgreSQL serializes profiles.
//!
//! ```text
//!  ingest (HTTP) ──publish, await JetStream's ack, then 200──► {prefix}_EVENTS (work queue,
//!        subject {prefix}.in, Nats-Msg-Id de-duplication)
//!                        │ durable consumer "router", shared by every router process
//!                        ▼
//!  router: 1 PostgreSQL transaction per fetch: messageId seen? profiles (R9, R10) FOR UPDATE,
//!          route (R6–R8, R14: writer::decide) ──publish per destination, await acks──► commit ──► ack
//!                        ▼
//!  {prefix}_OUT (work queue, subject {prefix}.out.<hex of the destination id>)
//!                        │ one durable consumer per destination, max 1 message in flight
//!                        ▼           (order kept; any delivery process can take it over)
//!  delivery: Destination::deliver_events ──► ack | nak with backoff | dead letter (PostgreSQL) + ack
//! ```
//!
//! - [`ingest`]: the publisher behind the Tracking API of an ingest process.
//! - [`router`]: the router processes.
//! - [`delivery`]: the delivery workers of a delivery process.
//! - [`pg`]: the shared tables in PostgreSQL.
//! - [`wire`]: what travels on the bus.

pub mod delivery;
pub mod ingest;
pub mod pg;
pub mod router;
pub mod wire;

use async_nats::jetstream;
use std::time::Duration;

/// Why the bus failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A setting is wrong (named).
    #[error("{0}")]
    Settings(String),
    /// NATS could not be reached.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The server, without credentials.
        url: String,
        /// Why.
        message: String,
    },
    /// A JetStream call failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// The shared PostgreSQL tables failed.
    #[error("bus state in PostgreSQL: {0}")]
    Postgres(String),
}

/// Where the bus is and how its streams are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSettings {
    /// `nats://HOST:PORT` (a list separated by commas for a cluster).
    pub url: String,
    /// Names the streams (`{PREFIX}_EVENTS`, `{PREFIX}_OUT`), subjects (`{prefix}.in`,
    /// `{prefix}.out.*`) and consumers: letters, digits, `_` and `-`, 1 to 32 of them. Every
    /// process of one deployment uses the same; two deployments on one NATS use different ones.
    pub prefix: String,
    /// JetStream replicas of each stream (3 in a three-server cluster; 1 on one server).
    pub replicas: usize,
}

impl BusSettings {
    /// The bus at `url` with the default prefix (`sluice`) and one replica.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: "sluice".into(), replicas: 1 }
    }

    /// Checks the settings without I/O, naming the one at fault.
    pub fn validate(&self) -> Result<(), BusError> {
        let url_ok = self
            .url
            .split(',')
            .all(|u| ["nats://", "tls://"].iter().any(|s| u.trim().starts_with(s)) && u.trim().len() > 7);
        if !url_ok {
            return Err(BusError::Settings(format!(
                "--bus {}: expected nats://HOST:PORT (several separated by commas)",
                sluice_core::redact::redact_url(&self.url)
            )));
        }
        let p = &self.prefix;
        if p.is_empty() || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(BusError::Settings(format!("--bus-prefix {p:?}: use 1 to 32 letters, digits, `_` or `-`")));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(BusError::Settings(format!(
                "--bus-replicas {}: JetStream keeps 1 to 5 replicas of a stream",
                self.replicas
            )));
        }
        Ok(())
    }

    /// The stream of accepted events.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_ascii_uppercase())
    }

    /// The subject of accepted events.
    pub fn events_subject(&self) -> String {
        format!("{}.in", self.prefix)
    }

    /// The stream of routed events, one subject per destination.
    pub fn out_stream(&self) -> String {
        format!("{}_OUT", self.prefix.to_ascii_uppercase())
    }

    /// The subject of `destination`'s routed events (its id in hex: an id may hold `.`, `*`, `>`).
    pub fn out_subject(&self, destination: &str) -> String {
        format!("{}.out.{}", self.prefix, hex(destination))
    }

    /// The durable consumer of `destination`'s delivery workers.
    pub fn delivery_consumer(&self, destination: &str) -> String {
        format!("deliver-{}", hex(destination))
    }
}

/// `s`'s bytes in lowercase hex.
pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// How long JetStream remembers a `Nats-Msg-Id` (longer than any redelivery of an unacknowledged
/// message: the consumers' ack wait is 30 s to 5 min).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(20 * 60);

/// A connection to the bus, with its own small runtime: the callers are plain threads (the
/// router and delivery workers block on PostgreSQL and HTTP), each `block_on`s its calls.
pub struct Bus {
    /// The settings.
    pub settings: BusSettings,
    /// JetStream.
    pub js: jetstream::Context,
    /// The runtime the connection's tasks run on.
    pub rt: tokio::runtime::Runtime,
}

impl Bus {
    /// Connects and makes sure both streams exist (created with these settings when missing).
    pub fn connect(settings: BusSettings) -> Result<Self, BusError> {
        settings.validate()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-bus")
            .enable_all()
            .build()
            .map_err(|e| BusError::JetStream(format!("no runtime: {e}")))?;
        let shown = sluice_core::redact::redact_url(&settings.url);
        let js = rt.block_on(async {
            let options = async_nats::ConnectOptions::new()
                .name("sluice")
                .connection_timeout(Duration::from_secs(5))
                .retry_on_initial_connect();
            let connect = async_nats::connect_with_options(settings.url.as_str(), options);
            let client = tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .map_err(|_| BusError::Connect { url: shown.clone(), message: "timed out after 10 s".into() })?
                .map_err(|e| BusError::Connect { url: shown.clone(), message: e.to_string() })?;
            let js = jetstream::new(client);
            for (name, subject) in [
                (settings.events_stream(), settings.events_subject()),
                (settings.out_stream(), format!("{}.out.*", settings.prefix)),
            ] {
                let config = jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![subject],
                    retention: jetstream::stream::RetentionPolicy::WorkQueue,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: settings.replicas,
                    duplicate_window: DUPLICATE_WINDOW,
                    ..Default::default()
                };
                js.get_or_create_stream(config)
                    .await
                    .map_err(|e| BusError::JetStream(format!("stream {name}: {e}")))?;
            }
            Ok::<_, BusError>(js)
        })?;
        Ok(Self { settings, js, rt })
    }
}

impl Bus {
    /// Queues a person-delete (a privacy request) for `destination`, after what it was routed
    /// so far; `id` makes a repeat of the same request one message. Its sequence in the out
    /// stream, which [`Bus::delivered`] follows.
    pub fn publish_delete(
        &self,
        destination: &str,
        request: &crate::person_delete::PersonDelete,
        id: &str,
    ) -> Result<u64, BusError> {
        let payload = wire::Routed::Delete { request: request.clone() }.encode();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{id}:{}", hex(destination)).as_str());
        self.rt.block_on(async {
            let ack = self
                .js
                .publish_with_headers(self.settings.out_subject(destination), headers, payload.into())
                .await
                .map_err(|e| BusError::JetStream(format!("publish a delete to {destination}: {e}")))?;
            let ack = ack.await.map_err(|e| BusError::JetStream(format!("a delete to {destination}: {e}")))?;
            Ok(ack.sequence)
        })
    }

    /// Whether the out stream's message `seq` was delivered: the out stream is a work queue,
    /// which removes a message once its destination's worker acknowledged it (it does so only
    /// after the destination took it). `false` when the bus cannot say.
    pub fn delivered(&self, seq: u64) -> bool {
        self.rt.block_on(async {
            let Ok(stream) = self.js.get_stream(self.settings.out_stream()).await else { return false };
            match stream.get_raw_message(seq).await {
                Ok(_) => false,
                Err(e) => match e.kind() {
                    jetstream::stream::RawMessageErrorKind::NoMessageFound => true,
                    jetstream::stream::RawMessageErrorKind::JetStream(j) => {
                        j.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
                    }
                    _ => false,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests;
