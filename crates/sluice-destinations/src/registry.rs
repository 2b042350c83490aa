//! The one explicit list of destination kinds.

use crate::{connections, file, webhook, Destination};
use sluice_core::{ConfigError, DestinationConfig, DestinationKind};
use std::path::PathBuf;

/// What a destination needs to know beyond its own settings.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Folder relative paths resolve from (the workspace file's folder).
    pub base_dir: PathBuf,
    /// Stable key of the mapping (model and destination), part of every idempotency key.
    pub mapping_key: String,
}

/// Validates a destination's settings for its kind, without I/O.
pub fn validate_settings(d: &DestinationConfig) -> Result<(), ConfigError> {
    match d.kind {
        DestinationKind::Webhook => webhook::WebhookConfig::parse(&d.settings).map(|_| ()),
        DestinationKind::File => file::FileConfig::parse(&d.settings).map(|_| ()),
        DestinationKind::Connections => connections::ConnectionsConfig::parse(&d.settings).map(|_| ()),
    }
}

/// Builds a destination ready to deliver.
pub fn build(d: &DestinationConfig, ctx: &BuildContext) -> Result<Box<dyn Destination>, ConfigError> {
    Ok(match d.kind {
        DestinationKind::Webhook => {
            Box::new(webhook::WebhookSink::new(webhook::WebhookConfig::parse(&d.settings)?, ctx))
        }
        DestinationKind::File => Box::new(file::FileSink::new(file::FileConfig::parse(&d.settings)?, ctx)),
        DestinationKind::Connections => {
            Box::new(connections::ConnectionsSink::new(connections::ConnectionsConfig::parse(&d.settings)?, ctx))
        }
    })
}
