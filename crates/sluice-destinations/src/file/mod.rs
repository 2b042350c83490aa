//! The `file` destination: JSON Lines appended to a local file (used by the quickstart).
//!
//! The file lies inside the workspace folder and never inside a state folder: `path` is
//! relative, without `..`, and (checked again before every write, following symbolic links)
//! resolves under the workspace folder into no folder that holds Sluice's state
//! (`state.db`, `secret.key`), so a destination cannot overwrite the secret key or the state.

use crate::{parse_settings, BuildContext, DeliveryError, Destination, Event, Item, Outcome};
use serde::Deserialize;
use sluice_core::ConfigError;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Files that mark a folder as Sluice's state folder.
const STATE_MARKERS: [&str; 2] = ["state.db", "secret.key"];

/// Checks a `path` setting without I/O: relative, no `..`, not into a `.sluice` folder, not
/// named like a state file.
pub fn check_path(path: &str) -> Result<(), ConfigError> {
    let bad = |m: &str| Err(ConfigError::new("path", format!("`{}` {m}", path.escape_debug())));
    if path.trim().is_empty() {
        return Err(ConfigError::new("path", "must not be empty"));
    }
    if path.contains('\0') {
        return bad("contains a NUL character");
    }
    let p = Path::new(path);
    let mut names = 0;
    for c in p.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                return bad("must be relative to the workspace folder (no absolute paths)")
            }
            Component::ParentDir => return bad("must stay inside the workspace folder (no `..`)"),
            Component::CurDir => {}
            Component::Normal(n) => {
                names += 1;
                if n == ".sluice" {
                    return bad("must not point into a state folder (`.sluice`)");
                }
            }
        }
    }
    if names == 0 {
        return bad("must name a file");
    }
    let file = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if STATE_MARKERS.iter().any(|m| file == *m || file.starts_with(&format!("{m}-"))) {
        return bad("must not be named like a state file");
    }
    Ok(())
}

/// Where `path` (a checked `path` setting) is written, checked on disk: inside `base_dir` once
/// symbolic links are followed, and in no folder that holds Sluice's state.
pub fn resolve(base_dir: &Path, path: &str) -> Result<PathBuf, DeliveryError> {
    let refuse = |m: String| DeliveryError::rejected(format!("file destination path `{path}`: {m}"));
    check_path(path).map_err(|e| refuse(e.message))?;
    let base = base_dir.canonicalize().map_err(|e| refuse(format!("workspace folder: {e}")))?;
    let target = base.join(path);
    // the deepest folder that exists must be inside the workspace folder and no state folder
    let mut dir = target.parent().map(Path::to_path_buf).unwrap_or_else(|| base.clone());
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    let real = dir.canonicalize().map_err(|e| refuse(format!("{}: {e}", dir.display())))?;
    if !real.starts_with(&base) {
        return Err(refuse("leads outside the workspace folder".into()));
    }
    let mut d = real.as_path();
    loop {
        if STATE_MARKERS.iter().any(|m| d.join(m).exists()) {
            return Err(refuse(format!("{} is a state folder", d.display())));
        }
        if d == base {
            break;
        }
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    if target.is_symlink() {
        let real = target.canonicalize().map_err(|e| refuse(format!("{e}")))?;
        if !real.starts_with(&base) || real.parent().is_some_and(|p| STATE_MARKERS.iter().any(|m| p.join(m).exists())) {
            return Err(refuse("is a link out of the workspace folder or into a state folder".into()));
        }
    }
    Ok(target)
}

/// The `file` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: sluice_core::KindInfo {
        name: "file",
        consent: sluice_core::ConsentMode::Filters,
        changes: &[sluice_core::Change::Added, sluice_core::Change::Updated, sluice_core::Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &[],
        url_settings: &[],
        address_settings: &["path"],
    },
    check: |s| FileConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(FileSink::new(FileConfig::parse(&d.settings)?, ctx))),
};

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
        check_path(&c.path)?;
        if c.batch_size == 0 {
            return Err(ConfigError::new("batch_size", "must be at least 1"));
        }
        Ok(c)
    }
}

/// Appends items as JSON lines; a batch counts as delivered once it is synced to disk.
pub struct FileSink {
    base_dir: PathBuf,
    path: String,
    batch_size: usize,
}

impl FileSink {
    /// A sink for `config`.
    pub fn new(config: FileConfig, ctx: &BuildContext) -> Self {
        Self { base_dir: ctx.base_dir.clone(), path: config.path, batch_size: config.batch_size }
    }

    fn write(&self, items: &[Item]) -> Result<(), DeliveryError> {
        let mut buf = Vec::with_capacity(items.len() * 128);
        for item in items {
            item.write_json(&mut buf);
            buf.push(b'\n');
        }
        self.append(&buf)
    }

    /// Appends `buf` and syncs it to disk; the path is resolved (links followed, state folders
    /// refused) before every write.
    fn append(&self, buf: &[u8]) -> Result<(), DeliveryError> {
        let path = &resolve(&self.base_dir, &self.path)?;
        let io = |e: std::io::Error| DeliveryError::external(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        f.write_all(buf).map_err(io)?;
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

    /// Appends each event as stored, one line each, `batch_size` events per write.
    fn deliver_events(&mut self, events: &[Event]) -> Vec<Outcome> {
        if events.is_empty() {
            return Vec::new();
        }
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.body.len() + 1).sum());
        for e in events {
            buf.extend_from_slice(e.body.as_bytes());
            buf.push(b'\n');
        }
        let r = self.append(&buf);
        events.iter().map(|_| r.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
