//! Issue 10 (docs/DIFF.md): a PostgreSQL source with `diff: warehouse` sends EXACTLY what the
//! same workspace with the default local diff sends, for any sequence of data changes, consent
//! changes, configuration changes and delivery failures.
//!
//! Two workspaces run in lockstep on the SAME PostgreSQL tables: A (default `diff: local`) and
//! B (`diff: warehouse`, `sluice_schema` = a schema created for the test), each with its own
//! state store and its own real HTTP receiver. After every sync of every model, what each
//! destination accepted in that sync (the multiset of items: action, id, data, consent stamp)
//! and the run's delivery overview must be equal. Failures are injected identically into both
//! receivers. Real parts only: PostgreSQL, HTTP receivers, SQLite state.
//!
//! `WAREHOUSE_DIFF = false` gives B the local diff too: every test here must then pass (that
//! proves the harness compares like with like). The tests are ignored until the setting exists.

mod common;
use common::*;
use proptest::prelude::*;
use serde_json::Value;
use sluice_engine::{RunReport, Workspace};
use sluice_testkit::{pg_url, unique_name, Reply};
use std::collections::BTreeMap;

/// B uses `diff: warehouse`. Set to `false` to check the harness with both sides local.
const WAREHOUSE_DIFF: bool = true;

/// Paths of the three destinations on a receiver.
const ADS: &str = "/ads";
const ALL: &str = "/all";
const SEGMENT: &str = "/v1/batch";
const PATHS: [&str; 3] = [ADS, ALL, SEGMENT];

/// The configuration knobs the tests change between syncs.
#[derive(Debug, Clone, PartialEq)]
struct Cfg {
    /// `policy: any` instead of `all`.
    any: bool,
    /// Category C0002 (column `analytics`) governs `ads` as well as C0004.
    c2_governs_ads: bool,
    /// Category C0002 is enabled.
    c2_enabled: bool,
    /// Destination `ads` is enabled.
    ads_enabled: bool,
    /// The `all` mapping of `people` sends only `email` (else every column).
    all_email_only: bool,
    /// `workspace.max_delete_fraction`.
    max_delete_fraction: f64,
}

impl Default for Cfg {
    fn default() -> Self {
        Self {
            any: false,
            c2_governs_ads: false,
            c2_enabled: true,
            ads_enabled: true,
            all_email_only: false,
            max_delete_fraction: 0.5,
        }
    }
}

/// Settings shared by the HTTP destinations: small batches, fast retries, two attempts.
const HTTP: &str = "batch_size: 3, retry_initial_ms: 5, retry_max_ms: 10, timeout_secs: 10, max_attempts: 2";

/// The workspace (without `sources:`, which [`Env::workspace_with_source`] adds) of `cfg`, with
/// the data tables in `schema`.
fn workspace_yaml(cfg: &Cfg, schema: &str) -> String {
    let all_fields = if cfg.all_email_only { ", fields: {email: email}" } else { "" };
    format!(
        "workspace: {{policy: {policy}, max_delete_fraction: {mdf}}}
destinations:
  - {{id: ads, kind: webhook, enabled: {ads_enabled}, settings: {{url: \"{{URL}}/ads\", {HTTP}}}}}
  - {{id: all, kind: webhook, settings: {{url: \"{{URL}}/all\", {HTTP}}}}}
  - {{id: segment, name: Segment, kind: connections, settings: {{url: \"{{URL}}\", write_key: wk_1, {HTTP}}}}}
consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads, segment]}}
  - {{id: C0002, name: Analytics, enabled: {c2_enabled}, destinations: [{c2_dests}]}}
models:
  - {{id: people, source: pg, unique_id: id, consent: {{C0004: ads, C0002: analytics}},
     sql: 'select id, email, ads, analytics from {schema}.people',
     mappings: [{{destination: ads}}, {{destination: all{all_fields}}}, {{destination: segment, fields: {{email: email}}}}]}}
  - {{id: dups, source: pg, unique_id: id, consent: {{C0004: ads}},
     sql: 'select id, email, ads from {schema}.dups',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
",
        policy = if cfg.any { "any" } else { "all" },
        mdf = cfg.max_delete_fraction,
        ads_enabled = cfg.ads_enabled,
        c2_enabled = cfg.c2_enabled,
        c2_dests = if cfg.c2_governs_ads { "ads" } else { "" },
    )
}

/// How a destination answers during one sync (the same for A and B).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Ok,
    /// The receiver's first request of the sync gets 503; the in-sync retry gets through.
    Once503,
    /// Every request to the destination gets 503: its items fail retryably.
    Down503,
    /// Every request to the destination gets 400: its items are rejected.
    Reject400,
}

/// One destination's items accepted in one sync, canonical and sorted (a multiset).
type Received = BTreeMap<&'static str, Vec<String>>;

/// The overview counts that must be equal. Left out on purpose: `extracted`, `unchanged`,
/// `skipped_rejected`, `consent_warnings`, `delivery_ms` (a sparse pass reads fewer rows: that
/// is its point). Kept: everything about what was sent, withheld, failed and held back.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    status: String,
    rejected: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    mappings: BTreeMap<String, MapCounts>,
}

#[derive(Debug, Clone, PartialEq)]
struct MapCounts {
    status: String,
    added: u64,
    updated: u64,
    deleted: u64,
    delivered: u64,
    failed: u64,
    failed_retryable: u64,
    failed_permanent: u64,
    retried: u64,
    withheld_by_consent: u64,
    withheld_by_category: BTreeMap<String, u64>,
    deletes_held_back: u64,
}

fn counts(r: &RunReport) -> Counts {
    Counts {
        status: format!("{:?}", r.status),
        rejected: r.rejected,
        rejected_by_reason: r.rejected_by_reason.clone(),
        mappings: r
            .mappings
            .iter()
            .map(|m| {
                (
                    m.destination.clone(),
                    MapCounts {
                        status: format!("{:?}", m.status),
                        added: m.added,
                        updated: m.updated,
                        deleted: m.deleted,
                        delivered: m.delivered,
                        failed: m.failed,
                        failed_retryable: m.failed_retryable,
                        failed_permanent: m.failed_permanent,
                        retried: m.retried,
                        withheld_by_consent: m.withheld_by_consent,
                        // a sparse pass breaks withheld records down by category only for the
                        // rows it read (its total counts every withheld record)
                        withheld_by_category: m.withheld_by_category.clone(),
                        deletes_held_back: m.deletes_held_back,
                    },
                )
            })
            .collect(),
    }
}

/// What one side saw in one sync.
#[derive(Debug)]
struct Outcome {
    received: Received,
    counts: Counts,
    /// The run took a sparse pass.
    sparse: bool,
}

impl Outcome {
    /// `(action, id)` of the items `path` accepted, sorted.
    fn actions(&self, path: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self.received[path]
            .iter()
            .map(|s| {
                let v: Value = serde_json::from_str(s).unwrap();
                match v.get("action") {
                    Some(a) => (a.as_str().unwrap().to_string(), v["id"].as_str().unwrap().to_string()),
                    None => (v["type"].as_str().unwrap().to_string(), v["userId"].as_str().unwrap().to_string()),
                }
            })
            .collect();
        v.sort();
        v
    }

    fn mapping(&self, dest: &str) -> &MapCounts {
        self.counts.mappings.get(dest).unwrap_or_else(|| panic!("no mapping {dest}: {:?}", self.counts))
    }
}

fn acts(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, i)| (a.to_string(), i.to_string())).collect()
}

/// One workspace of the pair: its state store, receiver and source definition.
struct Side {
    env: Env,
    source: String,
}

impl Side {
    fn workspace(&self, cfg: &Cfg, schema: &str) -> Workspace {
        self.env.workspace_with_source(&self.source, &workspace_yaml(cfg, schema))
    }

    fn sync(&mut self, cfg: &Cfg, schema: &str, model: &str, faults: &[(&str, Fault)]) -> Outcome {
        let ws = self.workspace(cfg, schema);
        let rx = &self.env.rx;
        rx.clear();
        rx.clear_script();
        for (path, f) in faults {
            match f {
                Fault::Ok => {}
                Fault::Once503 => rx.script([Reply::Status(503)]),
                Fault::Down503 => rx.answer_path(path, Reply::Status(503)),
                Fault::Reject400 => rx.answer_path(path, Reply::Status(400)),
            }
        }
        let report =
            sluice_engine::sync_model(&mut self.env.store, &ws, model, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        for path in PATHS {
            rx.clear_path(path);
        }
        rx.clear_script();
        let received = PATHS
            .iter()
            .map(|p| {
                let mut items: Vec<String> = rx.items(p).iter().map(|i| i.to_string()).collect();
                items.sort();
                (*p, items)
            })
            .collect();
        Outcome { received, counts: counts(&report), sparse: report.diff_pass.as_deref() == Some("sparse") }
    }
}

/// A and B on the same PostgreSQL tables (schema `schema`; B's snapshots in `snap`).
struct Pair {
    a: Side,
    b: Side,
    schema: String,
    snap: String,
    pg: postgres::Client,
    syncs: u32,
}

impl Pair {
    /// A fresh data schema with `people` (primary key) and `dups` (no key: duplicate and NULL
    /// ids), `setup` run in it, and a fresh schema for B's snapshots.
    fn new(setup: &str) -> Self {
        let mut pg = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
        let (schema, snap) = (unique_name("wdiff"), unique_name("snap"));
        pg.batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE SCHEMA {snap}; SET search_path = {schema};
             CREATE TABLE people (id bigint primary key, email text, ads boolean, analytics text);
             CREATE TABLE dups (id bigint, email text, ads boolean);
             {setup}"
        ))
        .unwrap();
        let url = pg_url();
        let base = format!("{{id: pg, kind: postgres, url: \"{url}\", tls: prefer, allow_privileged_role: true");
        let a = Side { env: Env::new(""), source: format!("{base}}}") };
        let b_source = if WAREHOUSE_DIFF {
            format!("{base}, diff: warehouse, sluice_schema: {snap}}}")
        } else {
            format!("{base}}}")
        };
        let b = Side { env: Env::new(""), source: b_source };
        Self { a, b, schema, snap, pg, syncs: 0 }
    }

    /// Runs SQL on the data schema (both sides see it).
    fn sql(&mut self, sql: &str) {
        self.pg
            .batch_execute(&format!("SET search_path = {}; {sql}", self.schema))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Syncs `model` on A then B under `cfg` with the same faults, asserts that every
    /// destination received the same items and the overviews agree; returns B's outcome.
    fn sync(&mut self, cfg: &Cfg, model: &str, faults: &[(&str, Fault)]) -> Outcome {
        self.syncs += 1;
        let a = self.a.sync(cfg, &self.schema, model, faults);
        let b = self.b.sync(cfg, &self.schema, model, faults);
        let ctx = format!("sync #{} of `{model}` under {cfg:?} with faults {faults:?}", self.syncs);
        for p in PATHS {
            assert_eq!(
                a.received[p], b.received[p],
                "{ctx}: {p} received different items (left: local, right: warehouse)"
            );
        }
        // a sparse pass breaks withheld records down by category only for the rows it read
        // (its total counts every withheld record): compared on full passes only
        let by_category = |c: &Counts| {
            let mut c = c.clone();
            c.mappings.values_mut().for_each(|m| m.withheld_by_category.clear());
            c
        };
        if b.sparse {
            assert_eq!(
                by_category(&a.counts),
                by_category(&b.counts),
                "{ctx}: the overviews differ (left: local, right: warehouse)"
            );
        } else {
            assert_eq!(a.counts, b.counts, "{ctx}: the overviews differ (left: local, right: warehouse)");
        }
        b
    }

    /// Syncs both models.
    fn sync_all(&mut self, cfg: &Cfg, faults: &[(&str, Fault)]) {
        self.sync(cfg, "people", faults);
        self.sync(cfg, "dups", faults);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ =
            self.pg.batch_execute(&format!("DROP SCHEMA {} CASCADE; DROP SCHEMA {} CASCADE;", self.schema, self.snap));
    }
}

/// 30 people with every kind of consent value, and ids 1–5 of `dups` with 1 and 3 duplicated
/// and one NULL id.
const SEED: &str = "
    INSERT INTO people SELECT g, 'e' || g,
        CASE g % 3 WHEN 0 THEN true WHEN 1 THEN false ELSE NULL END,
        CASE g % 4 WHEN 0 THEN 'true' WHEN 1 THEN 'false' WHEN 2 THEN NULL ELSE 'yes' END
      FROM generate_series(1, 30) g;
    INSERT INTO dups VALUES (1,'a',true),(1,'b',true),(2,'c',true),(3,'d',false),(3,'e',true),
                            (4,'f',null),(5,'g',true),(NULL,'h',true);";

// ---------------------------------------------------------------------------------------------
// 1. The property: random data, consent, configuration changes and faults.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Email(i64, u8),
    Ads(i64, Option<bool>),
    Analytics(i64, Option<&'static str>),
    /// Insert, or overwrite the whole row.
    Upsert(i64, u8, Option<bool>, Option<&'static str>),
    Delete(i64),
    /// Another row for a `dups` id (a duplicate if the id is there).
    DupInsert(i64, u8, Option<bool>),
    /// Deletes one row of a `dups` id (resolves a duplicate).
    DupDeleteOne(i64),
    DupEmail(i64, u8),
    DupAds(i64, Option<bool>),
    /// A `dups` row with a NULL id appears or goes.
    DupNull(bool),
}

impl Op {
    fn sql(&self) -> String {
        let b = |v: &Option<bool>| v.map(|b| b.to_string()).unwrap_or("NULL".into());
        let t = |v: &Option<&str>| v.map(|s| format!("'{s}'")).unwrap_or("NULL".into());
        match self {
            Op::Email(id, e) => format!("UPDATE people SET email = 'e{e}' WHERE id = {id};"),
            Op::Ads(id, v) => format!("UPDATE people SET ads = {} WHERE id = {id};", b(v)),
            Op::Analytics(id, v) => format!("UPDATE people SET analytics = {} WHERE id = {id};", t(v)),
            Op::Upsert(id, e, ads, an) => format!(
                "INSERT INTO people VALUES ({id}, 'n{e}', {}, {}) ON CONFLICT (id) DO UPDATE
                 SET email = excluded.email, ads = excluded.ads, analytics = excluded.analytics;",
                b(ads),
                t(an)
            ),
            Op::Delete(id) => format!("DELETE FROM people WHERE id = {id};"),
            // a copy never identical to a row of the id: an exact copy of a row the destination
            // already holds is the one case a sparse pass does not see (docs/DIFF.md; nothing
            // is sent either way, only its `rejected` count differs)
            Op::DupInsert(id, e, ads) => {
                format!("INSERT INTO dups VALUES ({id}, 'd{e}-' || md5(random()::text), {});", b(ads))
            }
            Op::DupDeleteOne(id) => {
                format!("DELETE FROM dups WHERE ctid = (SELECT min(ctid) FROM dups WHERE id = {id});")
            }
            Op::DupEmail(id, e) => format!("UPDATE dups SET email = 'x{e}' WHERE id = {id};"),
            Op::DupAds(id, v) => format!("UPDATE dups SET ads = {} WHERE id = {id};", b(v)),
            Op::DupNull(true) => "INSERT INTO dups VALUES (NULL, 'null', true);".into(),
            Op::DupNull(false) => "DELETE FROM dups WHERE ctid = (SELECT min(ctid) FROM dups WHERE id IS NULL);".into(),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 1i64..=36;
    let did = 1i64..=6;
    let analytics = proptest::option::of(prop_oneof![Just("true"), Just("false"), Just("yes")]);
    prop_oneof![
        3 => (pid.clone(), 0u8..4).prop_map(|(i, e)| Op::Email(i, e)),
        3 => (pid.clone(), proptest::option::of(any::<bool>())).prop_map(|(i, v)| Op::Ads(i, v)),
        2 => (pid.clone(), analytics.clone()).prop_map(|(i, v)| Op::Analytics(i, v)),
        2 => (pid.clone(), 0u8..4, proptest::option::of(any::<bool>()), analytics)
            .prop_map(|(i, e, a, an)| Op::Upsert(i, e, a, an)),
        2 => pid.prop_map(Op::Delete),
        1 => (did.clone(), 0u8..3, proptest::option::of(any::<bool>())).prop_map(|(i, e, a)| Op::DupInsert(i, e, a)),
        1 => did.clone().prop_map(Op::DupDeleteOne),
        1 => (did.clone(), 0u8..3).prop_map(|(i, e)| Op::DupEmail(i, e)),
        1 => (did, proptest::option::of(any::<bool>())).prop_map(|(i, v)| Op::DupAds(i, v)),
        1 => any::<bool>().prop_map(Op::DupNull),
    ]
}

#[derive(Debug, Clone)]
enum CfgChange {
    Policy(bool),
    C2GovernsAds(bool),
    C2Enabled(bool),
    AdsEnabled(bool),
    AllEmailOnly(bool),
}

impl CfgChange {
    fn apply(&self, c: &mut Cfg) {
        match *self {
            CfgChange::Policy(v) => c.any = v,
            CfgChange::C2GovernsAds(v) => c.c2_governs_ads = v,
            CfgChange::C2Enabled(v) => c.c2_enabled = v,
            CfgChange::AdsEnabled(v) => c.ads_enabled = v,
            CfgChange::AllEmailOnly(v) => c.all_email_only = v,
        }
    }
}

fn cfg_change() -> impl Strategy<Value = CfgChange> {
    prop_oneof![
        any::<bool>().prop_map(CfgChange::Policy),
        any::<bool>().prop_map(CfgChange::C2GovernsAds),
        any::<bool>().prop_map(CfgChange::C2Enabled),
        any::<bool>().prop_map(CfgChange::AdsEnabled),
        any::<bool>().prop_map(CfgChange::AllEmailOnly),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        8 => Just(Fault::Ok),
        1 => Just(Fault::Once503),
        2 => Just(Fault::Down503),
        1 => Just(Fault::Reject400),
    ]
}

/// Between two syncs: data changes, maybe a configuration change, and how each destination
/// answers during the sync.
#[derive(Debug, Clone)]
struct Step {
    ops: Vec<Op>,
    change: Option<CfgChange>,
    faults: [Fault; 3],
}

fn step() -> impl Strategy<Value = Step> {
    (proptest::collection::vec(op(), 0..7), proptest::option::weighted(0.35, cfg_change()), [fault(), fault(), fault()])
        .prop_map(|(ops, change, faults)| Step { ops, change, faults })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, max_shrink_iters: 64, ..ProptestConfig::default() })]
    #[test]
        fn warehouse_diff_sends_exactly_what_the_local_diff_sends(steps in proptest::collection::vec(step(), 6)) {
        let mut pair = Pair::new(SEED);
        let mut cfg = Cfg::default();
        // the first sync: a full pass on both sides
        pair.sync_all(&cfg, &[]);
        for s in &steps {
            let sql: String = s.ops.iter().map(Op::sql).collect();
            if !sql.is_empty() {
                pair.sql(&sql);
            }
            if let Some(c) = &s.change {
                c.apply(&mut cfg);
            }
            let faults: Vec<(&str, Fault)> = PATHS.iter().copied().zip(s.faults).collect();
            // `Pair::sync` asserts A == B after each sync of each model
            pair.sync_all(&cfg, &faults);
        }
        // and one clean sync at the end, so every retry pending is settled the same way
        pair.sync_all(&cfg, &[]);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Consent: withheld stays withheld, returns as `added`, a withdrawal stops updates.
// ---------------------------------------------------------------------------------------------

#[test]
fn withheld_records_keep_their_semantics_under_the_warehouse_diff() {
    let mut pair = Pair::new(
        "INSERT INTO people VALUES (1,'a',true,'true'),(2,'b',false,'true'),(3,'c',NULL,'true'),(4,'d',true,'true');",
    );
    let cfg = Cfg::default();
    let ok: &[(&str, Fault)] = &[];

    // full pass: 2 and 3 withheld from ads (C0004 "no"; NULL fails closed)
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("added", "1"), ("added", "4")]));
    assert_eq!(o.mapping("ads").withheld_by_consent, 2);
    assert_eq!(o.actions(ALL).len(), 4);

    // nothing changed (a sparse pass on B): nothing is sent, the two are still withheld
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.received.values().all(Vec::is_empty), "{:?}", o.received);
    assert_eq!(o.mapping("ads").withheld_by_consent, 2, "withheld rows are withheld in every run's overview");

    // a change elsewhere does not release them
    pair.sql("UPDATE people SET email = 'd2' WHERE id = 4;");
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("updated", "4")]));
    assert_eq!(o.mapping("ads").withheld_by_consent, 2);

    // consent granted: sent as `added`, the first time ads gets it
    pair.sql("UPDATE people SET ads = true WHERE id = 2;");
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("added", "2")]));
    assert_eq!(o.actions(ALL), acts(&[("updated", "2")]));
    assert_eq!(o.mapping("ads").withheld_by_consent, 1);

    // consent withdrawn from 1 with its data changed in the same sync: ads gets nothing
    pair.sql("UPDATE people SET ads = false, email = 'a2' WHERE id = 1;");
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.actions(ADS).is_empty(), "{:?}", o.actions(ADS));
    assert_eq!(o.actions(ALL), acts(&[("updated", "1")]));
    assert_eq!(o.mapping("ads").withheld_by_consent, 2);

    // ... nor on later changes
    pair.sql("UPDATE people SET email = 'a3' WHERE id = 1;");
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.actions(ADS).is_empty(), "{:?}", o.actions(ADS));
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.received.values().all(Vec::is_empty));

    // ads still holds 1: its deletion reaches ads although consent was withdrawn
    pair.sql("DELETE FROM people WHERE id = 1;");
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("deleted", "1")]));

    // consent granted to 3 after several syncs withheld: `added`
    pair.sql("UPDATE people SET ads = true WHERE id = 3;");
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("added", "3")]));
    assert_eq!(o.mapping("ads").withheld_by_consent, 0);
    // the connections destination stamps the new consent (R5)
    let e: Value = serde_json::from_str(&o.received[SEGMENT][0]).unwrap();
    assert_eq!(e["context"]["consent"]["categoryPreferences"]["C0004"], true, "{e}");

    // a consent configuration change (C0002 now also governs ads, policy all): the same as local
    let strict = Cfg { c2_governs_ads: true, ..cfg.clone() };
    pair.sql("UPDATE people SET analytics = 'false' WHERE id = 4;");
    let o = pair.sync(&strict, "people", ok);
    assert!(o.actions(ADS).is_empty());
    assert_eq!(o.mapping("ads").withheld_by_category.get("C0002"), Some(&1));
    pair.sql("UPDATE people SET analytics = 'true' WHERE id = 4;");
    let o = pair.sync(&strict, "people", ok);
    assert!(o.actions(ADS).is_empty(), "4 is held unchanged: nothing to resend");
}

// ---------------------------------------------------------------------------------------------
// 3. Retries: a retryable failure in a sparse sync is retried although the row did not change.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_retryable_failure_in_a_sparse_sync_is_retried_on_the_next_sync() {
    let mut pair = Pair::new("INSERT INTO people SELECT g, 'e' || g, true, 'true' FROM generate_series(1, 12) g;");
    let cfg = Cfg::default();
    let ok: &[(&str, Fault)] = &[];
    let ads_down: &[(&str, Fault)] = &[(ADS, Fault::Down503)];
    let ads_rejects: &[(&str, Fault)] = &[(ADS, Fault::Reject400)];

    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.mapping("ads").delivered, 12);

    // an update fails retryably in a sparse sync (B's second sync)
    pair.sql("UPDATE people SET email = 'new' WHERE id = 2;");
    let o = pair.sync(&cfg, "people", ads_down);
    assert_eq!((o.mapping("ads").failed_retryable, o.mapping("ads").delivered), (1, 0));
    assert_eq!(o.actions(ALL), acts(&[("updated", "2")]));

    // the row did not change again: it is retried all the same, and only it
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("updated", "2")]));
    assert!(o.actions(ALL).is_empty() && o.actions(SEGMENT).is_empty());
    assert_eq!((o.mapping("ads").retried, o.mapping("ads").delivered), (1, 1));
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.received.values().all(Vec::is_empty), "settled: {:?}", o.received);

    // a delete that fails retryably is retried although the row is long gone
    pair.sql("DELETE FROM people WHERE id = 4;");
    let o = pair.sync(&cfg, "people", ads_down);
    assert_eq!(o.mapping("ads").failed_retryable, 1);
    assert_eq!(o.actions(ALL), acts(&[("deleted", "4")]));
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("deleted", "4")]));
    assert_eq!(o.mapping("ads").retried, 1);

    // failing on two syncs in a row, then delivered
    pair.sql("UPDATE people SET email = 'again' WHERE id = 6;");
    pair.sync(&cfg, "people", ads_down);
    let o = pair.sync(&cfg, "people", ads_down);
    assert_eq!((o.mapping("ads").retried, o.mapping("ads").failed_retryable), (1, 1));
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("updated", "6")]));

    // a transient 503 the in-sync retry absorbs: delivered at once, nothing pending
    pair.sql("UPDATE people SET email = 'blip' WHERE id = 7;");
    let o = pair.sync(&cfg, "people", &[(ADS, Fault::Once503)]);
    assert_eq!(o.mapping("ads").delivered + o.mapping("all").delivered + o.mapping("segment").delivered, 3);
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.received.values().all(Vec::is_empty));

    // a rejected record is not resent while its row is unchanged, and is when it changes
    pair.sql("UPDATE people SET email = 'bad' WHERE id = 9;");
    let o = pair.sync(&cfg, "people", ads_rejects);
    assert_eq!(o.mapping("ads").failed_permanent, 1);
    let o = pair.sync(&cfg, "people", ok);
    assert!(o.actions(ADS).is_empty(), "rejected and unchanged: not resent");
    pair.sql("UPDATE people SET email = 'good' WHERE id = 9;");
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("updated", "9")]));

    // a destination disabled while rows change sees every change it missed when enabled again
    let off = Cfg { ads_enabled: false, ..cfg.clone() };
    pair.sql("UPDATE people SET email = 'while-off' WHERE id = 10; DELETE FROM people WHERE id = 11;");
    pair.sync(&off, "people", ok);
    pair.sql("UPDATE people SET email = 'still-off' WHERE id = 12;");
    pair.sync(&off, "people", ok);
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.actions(ADS), acts(&[("deleted", "11"), ("updated", "10"), ("updated", "12")]));
}

// ---------------------------------------------------------------------------------------------
// 4. The mass-delete guard: held-back deletes stay candidates until they may be sent.
// ---------------------------------------------------------------------------------------------

#[test]
fn deletes_held_back_by_the_guard_are_sent_once_the_guard_allows_them() {
    let mut pair = Pair::new("INSERT INTO people SELECT g, 'e' || g, true, 'true' FROM generate_series(1, 30) g;");
    let cfg = Cfg::default();
    let ok: &[(&str, Fault)] = &[];
    pair.sync(&cfg, "people", ok);

    // 20 of 30 gone: more than half, held back
    pair.sql("DELETE FROM people WHERE id > 10;");
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.mapping("ads").deletes_held_back, 20);
    assert!(o.actions(ADS).is_empty());
    // still held back on the next sync (and still reported)
    let o = pair.sync(&cfg, "people", ok);
    assert_eq!(o.mapping("ads").deletes_held_back, 20);

    // the operator confirms: the deletes go out
    let confirm = Cfg { max_delete_fraction: 1.0, ..cfg };
    let o = pair.sync(&confirm, "people", ok);
    assert_eq!(o.actions(ADS).len(), 20);
    assert!(o.actions(ADS).iter().all(|(a, _)| a == "deleted"));
}
