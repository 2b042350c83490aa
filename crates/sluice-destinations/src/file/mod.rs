//! The `file` destination: JSON Lines appended to a local file (used by the quickstart).

use crate::{parse_settings, BuildContext, DeliveryError, Destination, Item, Outcome};
use serde::Deserialize;
use sluice_core::ConfigError;
use std::io::Write;
use std::path::PathBuf;

/// Settings of a `file` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The JSON Lines file to append to, relative to the workspace file's folder.
    pub path: String,
    /// Items written per batch (each batch is flushed to disk before it counts as delivered).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_batch() -> usize {
    1000
}

impl FileConfig {
    /// Parses and checks the settings.
    pub fn parse(s: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let c: Self = parse_settings(s)?;
        if c.path.trim().is_empty() {
            return Err(ConfigError::new("path", "must not be empty"));
        }
        if c.batch_size == 0 {
            return Err(ConfigError::new("batch_size", "must be at least 1"));
        }
        Ok(c)
    }
}

/// Appends items as JSON lines; a batch counts as delivered once it is synced to disk.
pub struct FileSink {
    path: PathBuf,
    batch_size: usize,
}

impl FileSink {
    /// A sink for `config`.
    pub fn new(config: FileConfig, ctx: &BuildContext) -> Self {
        Self { path: ctx.base_dir.join(&config.path), batch_size: config.batch_size }
    }

    fn write(&self, items: &[Item]) -> Result<(), DeliveryError> {
        let path = &self.path;
        let io = |e: std::io::Error| DeliveryError::external(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut buf = Vec::with_capacity(items.len() * 128);
        for item in items {
            item.write_json(&mut buf);
            buf.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        f.write_all(&buf).map_err(io)?;
        f.sync_data().map_err(io)
    }
}

impl Destination for FileSink {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        let r = self.write(items);
        items.iter().map(|_| r.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
