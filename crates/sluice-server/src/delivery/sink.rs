//! Where a streaming destination's events go: an HTTP endpoint (webhook, or `connections`,
//! which forwards to another Tracking API) or a file.

use serde_json::Value;
use sluice_core::{ConfigError, DestinationConfig};
use sluice_destinations::http::Transport;
use sluice_destinations::{DeliveryError, RetryPolicy};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One event due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    /// Its place in the log.
    pub seq: i64,
    /// The source it came from.
    pub source: String,
    /// Its JSON text as stored.
    pub body: String,
}

pub(crate) enum Sink {
    Http {
        url: String,
        headers: Vec<(String, String)>,
        transport: Transport,
        batch: usize,
        /// `connections`: messageIds are namespaced by source (finding 18).
        forward: bool,
    },
    File {
        /// The workspace folder.
        base: PathBuf,
        /// The path relative to it, resolved (symlinks followed, state folders refused) before
        /// every write.
        path: String,
    },
}

impl Sink {
    /// The sink of a destination, or why its settings are unusable.
    pub(crate) fn new(d: &DestinationConfig, base: &Path) -> Result<Self, ConfigError> {
        match d.kind.as_str() {
            "webhook" => {
                let c = sluice_destinations::webhook::WebhookConfig::parse(&d.settings)?;
                let transport = Transport::new(&c.http.unwrap_or_default());
                Ok(Sink::Http {
                    url: c.url,
                    headers: c.headers.into_iter().collect(),
                    transport,
                    batch: c.batch_size,
                    forward: false,
                })
            }
            "file" => {
                let c = sluice_destinations::file::FileConfig::parse(&d.settings)?;
                Ok(Sink::File { base: base.to_path_buf(), path: c.path })
            }
            "connections" => {
                // forward events to another Tracking API endpoint
                use base64::Engine;
                let c = sluice_destinations::connections::ConnectionsConfig::parse(&d.settings)?;
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", c.write_key));
                Ok(Sink::Http {
                    url: format!("{}/v1/batch", c.url.trim_end_matches('/')),
                    headers: vec![("Authorization".into(), format!("Basic {auth}"))],
                    transport: Transport::new(&c.http.unwrap_or_default()),
                    batch: c.batch_size,
                    forward: true,
                })
            }
            other => Err(ConfigError::new("kind", format!("unknown destination kind `{other}`"))),
        }
    }

    pub(crate) fn batch_size(&self) -> usize {
        match self {
            Sink::Http { batch, .. } => *batch,
            Sink::File { .. } => 500,
        }
    }

    /// The retry policy of an HTTP sink (how long a `Retry-After` is honoured).
    pub(crate) fn policy(&self) -> Option<RetryPolicy> {
        match self {
            Sink::Http { transport, .. } => Some(transport.policy()),
            Sink::File { .. } => None,
        }
    }

    /// Sends events; the idempotency key is stable for the same batch. Network and file I/O
    /// happen here: never call it with a transaction open on the event log.
    pub(crate) fn send(&self, dest_id: &str, events: &[Due]) -> Result<(), DeliveryError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(()) };
        let mut body = Vec::with_capacity(events.iter().map(|e| e.body.len() + 1).sum::<usize>() + 16);
        match self {
            Sink::Http { url, headers, transport, forward, .. } => {
                body.extend_from_slice(b"{\"batch\":[");
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    if *forward {
                        body.extend_from_slice(namespaced(e).as_bytes());
                    } else {
                        body.extend_from_slice(e.body.as_bytes());
                    }
                }
                body.extend_from_slice(b"]}");
                let key = format!("{dest_id}-{}-{}", first.seq, last.seq);
                let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                h.push(("Idempotency-Key", &key));
                transport.post_json(url, &h, &body)
            }
            Sink::File { base, path } => {
                let path = &sluice_destinations::file::resolve(base, path)?;
                for e in events {
                    body.extend_from_slice(e.body.as_bytes());
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

/// An event as `connections` forwards it: `messageId` becomes `{source}:{messageId}`, so the
/// same messageId sent to two sources stays two events downstream (where de-duplication is by
/// messageId); the original stays in `context.sluice` (`source`, `originalMessageId`).
pub fn namespaced(e: &Due) -> String {
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(&e.body) else { return e.body.clone() };
    let original = event.get("messageId").and_then(Value::as_str).unwrap_or_default().to_string();
    event.insert("messageId".into(), Value::String(format!("{}:{original}", e.source)));
    let context = event.entry("context").or_insert_with(|| Value::Object(Default::default()));
    if !context.is_object() {
        *context = Value::Object(Default::default());
    }
    if let Value::Object(context) = context {
        let ours = context.entry("sluice").or_insert_with(|| Value::Object(Default::default()));
        if !ours.is_object() {
            *ours = Value::Object(Default::default());
        }
        if let Value::Object(ours) = ours {
            ours.insert("source".into(), Value::String(e.source.clone()));
            ours.insert("originalMessageId".into(), Value::String(original));
        }
    }
    Value::Object(event).to_string()
}
