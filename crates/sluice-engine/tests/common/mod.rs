//! Shared setup: a real SQLite warehouse file, a real state store and a real HTTP receiver.
#![allow(dead_code)]

pub mod lockstep;

use serde_json::Value;
use sluice_engine::{MappingReport, RunReport, Workspace};
use sluice_state::StateStore;
use sluice_testkit::Receiver;
use std::path::PathBuf;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub wh: PathBuf,
    pub store: StateStore,
    pub rx: Receiver,
}

impl Env {
    /// A warehouse with `setup` SQL already run.
    pub fn new(setup: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("warehouse.db");
        rusqlite::Connection::open(&wh).unwrap().execute_batch(setup).unwrap();
        let store = StateStore::open(&dir.path().join(".sluice")).unwrap();
        Self { dir, wh, store, rx: Receiver::start() }
    }

    /// Runs SQL on the warehouse.
    pub fn sql(&self, sql: &str) {
        rusqlite::Connection::open(&self.wh).unwrap().execute_batch(sql).unwrap();
    }

    /// A workspace from YAML where `{URL}` is the receiver's base URL. A `sources:` block
    /// for the warehouse (`dwh`) is added.
    pub fn workspace(&self, yaml: &str) -> Workspace {
        self.workspace_with_source("", yaml)
    }

    /// As [`Env::workspace`], with one more source (a flow mapping).
    pub fn workspace_with_source(&self, source: &str, yaml: &str) -> Workspace {
        let extra = if source.is_empty() { String::new() } else { format!(", {source}") };
        let yaml = format!(
            "sources: [{{id: dwh, kind: sqlite, path: ./warehouse.db}}{extra}]\n{}",
            yaml.replace("{URL}", self.rx.url())
        );
        let ws = Workspace::from_yaml(&yaml, self.dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
        ws.check_models().unwrap_or_else(|e| panic!("{e}"));
        ws
    }

    pub fn sync(&mut self, ws: &Workspace, model: &str) -> RunReport {
        sluice_engine::sync_model(&mut self.store, ws, model, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Ids (sorted) of items with `action` accepted at `path` since the last clear.
    pub fn ids(&self, path: &str, action: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .rx
            .items(path)
            .iter()
            .filter(|i| i["action"] == action)
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }
}

pub fn mapping<'a>(r: &'a RunReport, dest: &str) -> &'a MappingReport {
    r.mappings.iter().find(|m| m.destination == dest).unwrap_or_else(|| panic!("no mapping {dest}"))
}

/// Webhook destination YAML for `id` posting to `{URL}/id`, fast retries.
pub fn hook(id: &str) -> String {
    format!(
        "  - {{id: {id}, kind: webhook, settings: {{url: \"{{URL}}/{id}\", batch_size: 3, retry_initial_ms: 5, retry_max_ms: 10, timeout_secs: 0.5, max_attempts: 2}}}}\n"
    )
}

pub fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn value_ids(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

/// Destinations `ads` (governed by C0004) and `all`, and a model `users` of `source` reading the
/// seed's `consent_preferences` table (`USERID`, `email`, `Ads`, `Analytics`): the workspace the
/// cloud warehouses' engine tests share.
pub fn consent_preferences_workspace(source: &str) -> String {
    format!(
        "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: []}}
models:
  - id: users
    source: {source}
    sql: select USERID, email, Ads, Analytics from consent_preferences
    unique_id: USERID
    consent: {{C0004: Ads, C0002: Analytics}}
    mappings: [{{destination: ads}}, {{destination: all}}]
",
        hook("ads"),
        hook("all")
    )
}
