//! `sluice quickstart`: a sample warehouse and workspace in a folder, synced on the embedded default.

use crate::progress::Progress;
use anyhow::Context;
use comfy_table::Cell;
use rusqlite::{params, Connection};
use sluice_engine::{RunReport, Workspace};
use sluice_state::{StateLocation, StateStore};
use std::path::Path;
use std::process::ExitCode;

const PEOPLE: u64 = 3000;

const WORKSPACE: &str = r#"# Sluice quickstart workspace: apply changes with `sluice apply -f sluice.yaml`.
workspace: { policy: all, unmapped_models: allow, missing_consent: allow }
sources:
  - { id: dwh, kind: sqlite, path: ./warehouse.db }
destinations:
  - { id: braze, name: Braze, kind: file, settings: { path: ./out/braze.jsonl } }
  - { id: google_ads, name: Google Ads, kind: file, settings: { path: ./out/google_ads.jsonl } }
  - { id: amplitude, name: Amplitude, kind: file, settings: { path: ./out/amplitude.jsonl } }
  - { id: salesforce, name: Salesforce, kind: file, settings: { path: ./out/salesforce.jsonl } }
consent_categories:
  - { id: C0004, name: Advertising, destinations: [braze, google_ads] }
  - { id: C0003, name: Personalization, destinations: [google_ads] }
  - { id: C0002, name: Analytics, destinations: [amplitude] }
models:
  # one column per consent category
  - id: users
    source: dwh
    sql: select USERID, name, email, plan, Ads, Personalization, Analytics from CONSENT_PREFERENCES
    unique_id: USERID
    consent: { C0004: Ads, C0003: Personalization, C0002: Analytics }
    mappings:
      - { destination: braze, fields: { external_id: USERID, email: email, name: name } }
      - { destination: google_ads, fields: { email: email } }
      - { destination: amplitude }
      - { destination: salesforce, on: [added, updated, deleted] }
  # consent read out of one JSON blob column with SQLite's JSON functions
  - id: web_visitors
    source: dwh
    sql: |
      select distinctid, email,
             json_extract(CONSENT_OBJ, '$.consent.cookie.Advertising') as Ads,
             json_extract(CONSENT_OBJ, '$.consent.cookie.Analytics') as Analytics
      from WEB_VISITORS
    unique_id: distinctid
    consent: { C0004: Ads, C0002: Analytics }
    mappings:
      - { destination: braze }
      - { destination: amplitude }
"#;

/// A small deterministic generator (splitmix64) so every quickstart shows the same numbers.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pct(&mut self) -> u64 {
        self.next() % 100
    }
    /// A consent cell: mostly booleans, some NULLs and the string forms warehouses hold.
    fn consent(&mut self, yes: u64) -> rusqlite::types::Value {
        use rusqlite::types::Value::*;
        match self.pct() {
            p if p < 8 => Null,
            p if p < 12 => Text(if p % 2 == 0 { "true".into() } else { "f".into() }),
            _ if self.pct() < yes => Integer(1),
            _ => Integer(0),
        }
    }
}

fn build_warehouse(path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("db.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut c = Connection::open(&tmp)?;
    c.execute_batch(
        "create table CONSENT_PREFERENCES (USERID integer primary key, name text, email text, distinctid text,
             plan text, Ads, Personalization, Analytics);
         create table WEB_VISITORS (distinctid text primary key, email text, CONSENT_OBJ text);",
    )?;
    let mut g = Gen(42);
    let tx = c.transaction()?;
    {
        let mut ins = tx.prepare("insert into CONSENT_PREFERENCES values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
        let mut web = tx.prepare("insert into WEB_VISITORS values (?1, ?2, ?3)")?;
        let plans = ["free", "pro", "team", "enterprise"];
        for i in 1..=PEOPLE {
            let plan = plans[(g.next() % 4) as usize];
            let (ads, perso, ana) = (g.consent(55), g.consent(60), g.consent(70));
            ins.execute(params![
                i,
                format!("Person {i}"),
                format!("person{i}@example.com"),
                format!("d-{i:05}"),
                plan,
                ads,
                perso,
                ana
            ])?;
            if i % 3 == 0 {
                let a = g.pct() < 50;
                let blob = match g.pct() {
                    p if p < 10 => r#"{"consent":{"cookie":{}}}"#.to_string(),
                    _ => format!(r#"{{"consent":{{"cookie":{{"Advertising":{a},"Analytics":{}}}}}}}"#, g.pct() < 75),
                };
                web.execute(params![format!("anon-{i:05}"), format!("person{i}@example.com"), blob])?;
            }
        }
    }
    tx.commit()?;
    drop(c);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn run(state: Option<&StateLocation>, dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let warehouse = dir.join("warehouse.db");
    let file = dir.join("sluice.yaml");
    let fresh = !warehouse.exists();
    if fresh {
        build_warehouse(&warehouse).context("building the sample warehouse")?;
        outln!(
            "Created a sample warehouse {} ({PEOPLE} people, consent in columns and in a JSON blob).",
            warehouse.display()
        );
    } else {
        outln!("Using the existing sample warehouse {}.", warehouse.display());
    }
    if !file.exists() {
        std::fs::write(&file, WORKSPACE)?;
        outln!("Created the workspace file {}.", file.display());
    }
    let state = state.cloned().unwrap_or_else(|| StateLocation::folder(dir.join(".sluice")));
    let ws = Workspace::from_path(&file)?;
    let mut store = StateStore::open_at(&state)?;
    // the same change path as `sluice apply`: checked, sealed, stored and audited
    let actor = sluice_engine::Actor { name: "cli:quickstart".into(), role: sluice_state::Role::Owner };
    let options = sluice_engine::ApplyOptions { columns: sluice_engine::ColumnCheck::All, dry_run: false };
    let ws = sluice_engine::apply(&mut store, ws.file, ws.base_dir, &actor, options)?.workspace;
    let mut reports = Vec::new();
    for m in &ws.file.models {
        let mut progress = Progress::new(&m.id);
        reports.push(sluice_engine::sync_model(&mut store, &ws, &m.id, &mut |n| progress.rows(n))?);
    }
    summary(&ws, &reports);
    if !fresh {
        let sent: u64 = reports.iter().flat_map(|r| &r.mappings).map(|m| m.delivered).sum();
        outln!("\nThis was a re-sync: {sent} record(s) sent, everything else was already delivered.");
    }
    let cd = if dir == Path::new(".") { String::new() } else { format!("`cd {}`, then ", dir.display()) };
    outln!("\nNext: {cd}look at out/*.jsonl, run `sluice overview` or `sluice preview users`, or edit sluice.yaml and `sluice apply -f sluice.yaml`.");
    Ok(ExitCode::SUCCESS)
}

fn summary(ws: &Workspace, reports: &[RunReport]) {
    outln!("\nWhat went where (this sync):");
    let mut t = crate::render::table([
        "Model",
        "Destination",
        "Needs consent to",
        "Sent",
        "Unchanged",
        "Withheld by consent",
        "Why withheld",
    ]);
    for r in reports {
        for m in &r.mappings {
            let needs = if m.required_categories.is_empty() {
                "nothing (no category)".to_string()
            } else {
                m.required_categories
                    .iter()
                    .map(|id| {
                        ws.file
                            .consent_categories
                            .iter()
                            .find(|c| &c.id == id)
                            .map(|c| c.name.clone())
                            .unwrap_or(id.clone())
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            t.add_row(vec![
                Cell::new(&r.model),
                Cell::new(format!("{} ({})", m.destination_name, m.destination)),
                Cell::new(needs),
                Cell::new(m.delivered),
                Cell::new(m.unchanged),
                Cell::new(m.withheld_by_consent),
                Cell::new(crate::render::why_withheld(m, ws)),
            ]);
        }
    }
    outln!("{t}");
    outln!("A person's record goes to a destination only if they consented to every category it needs.");
    outln!("NULL or unreadable consent counts as \"no\" (fail closed):");
    for r in reports {
        for (cat, n) in &r.consent_warnings {
            let name = ws.file.consent_categories.iter().find(|c| &c.id == cat).map(|c| c.name.as_str()).unwrap_or(cat);
            outln!("  model {}: {n} row(s) with NULL/invalid {name} ({cat}) consent", r.model);
        }
    }
}
