//! `diff: warehouse` on Snowflake (`fakesnow -s`) sends EXACTLY what the local diff sends: two
//! workspaces in lockstep on the same Snowflake tables, A with the default local diff and B
//! with `diff: warehouse` (snapshots in schema `sluice`), each with its own state store and
//! real HTTP receiver, through pseudo-random data changes (consent columns included, NULLs,
//! duplicated and NULL ids, deletes) and identical delivery failures. After every sync the
//! items each destination accepted and the delivery counts must be equal, and B must have
//! taken sparse passes that read only what changed.

mod common;
use common::*;
use sluice_engine::{RunReport, Workspace};
use sluice_testkit::fakesnow::{FakeSnow, DATABASE, SCHEMA};
use sluice_testkit::Reply;

const PATHS: [&str; 2] = ["/ads", "/all"];

fn yaml() -> String {
    format!(
        "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
models:
  - {{id: people, source: snow, unique_id: ID, consent: {{C0004: ADS}}, sql: 'select ID, EMAIL, ADS from PEOPLE',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
  - {{id: dups, source: snow, unique_id: ID, consent: {{C0004: ADS}}, sql: 'select ID, EMAIL, ADS from DUPS',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
",
        hook("ads"),
        hook("all")
    )
}

fn workspace(env: &Env, fs: &FakeSnow, diff: bool) -> Workspace {
    std::env::set_var("SLUICE_SNOWFLAKE_PASSWORD_FOR_TESTS", "pw");
    let extra = if diff { ", diff: warehouse, sluice_schema: sluice" } else { "" };
    env.workspace_with_source(
        &format!(
            "{{id: snow, kind: snowflake, account: test, user: sluice, password: \"${{SLUICE_SNOWFLAKE_PASSWORD_FOR_TESTS}}\", \
             database: {DATABASE}, schema: {SCHEMA}, endpoint: \"{}\"{extra}}}",
            fs.url()
        ),
        &yaml(),
    )
}

/// What each destination accepted in one sync (sorted), each mapping's counts, and rejections.
type Outcome = (Vec<Vec<String>>, Vec<(String, [u64; 8])>, u64);

/// What a destination accepted in one sync (sorted) and the counts that must agree.
fn outcome(env: &Env, r: &RunReport) -> Outcome {
    let received = PATHS
        .iter()
        .map(|p| {
            let mut v: Vec<String> = env.rx.items(p).iter().map(|i| i.to_string()).collect();
            v.sort();
            v
        })
        .collect();
    let counts = r
        .mappings
        .iter()
        .map(|m| {
            (
                m.destination.clone(),
                [
                    m.added,
                    m.updated,
                    m.deleted,
                    m.delivered,
                    m.failed,
                    m.failed_retryable,
                    m.withheld_by_consent,
                    m.deletes_held_back,
                ],
            )
        })
        .collect();
    (received, counts, r.rejected)
}

fn sync(env: &mut Env, ws: &Workspace, model: &str, down: Option<&str>, reject: Option<&str>) -> RunReport {
    env.rx.clear();
    if let Some(p) = down {
        env.rx.answer_path(p, Reply::Status(503));
    }
    if let Some(p) = reject {
        env.rx.answer_path(p, Reply::Status(400));
    }
    let r = env.sync(ws, model);
    for p in PATHS {
        env.rx.clear_path(p);
    }
    r
}

/// A small deterministic generator (the same sequence every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn change(fs: &FakeSnow, rng: &mut Lcg, step: u64) {
    let bool_or_null = |v: u64| ["true", "false", "NULL"][v as usize];
    for _ in 0..1 + rng.next(4) {
        let id = 1 + rng.next(24);
        let sql = match rng.next(8) {
            0 | 1 => format!("UPDATE PEOPLE SET EMAIL = 'e{step}-{id}' WHERE ID = {id}"),
            2 | 3 => format!("UPDATE PEOPLE SET ADS = {} WHERE ID = {id}", bool_or_null(rng.next(3))),
            4 => format!("DELETE FROM PEOPLE WHERE ID = {id}"),
            5 => format!(
                "INSERT INTO PEOPLE SELECT {id}, 'n{step}', {} WHERE NOT EXISTS (SELECT 1 FROM PEOPLE WHERE ID = {id})",
                bool_or_null(rng.next(3))
            ),
            6 => format!("INSERT INTO DUPS VALUES ({}, 'd{step}-{id}', {})", 1 + id % 5, bool_or_null(rng.next(3))),
            _ => format!("DELETE FROM DUPS WHERE ID = {}", 1 + id % 5),
        };
        fs.exec(&sql);
    }
    if rng.next(4) == 0 {
        fs.exec(&format!("INSERT INTO DUPS VALUES (NULL, 'null{step}', true)"));
    }
}

#[test]
fn snowflake_warehouse_diff_sends_exactly_what_the_local_diff_sends() {
    let fs = FakeSnow::start();
    fs.exec("CREATE TABLE PEOPLE (ID int, EMAIL varchar, ADS boolean)");
    fs.exec(
        "INSERT INTO PEOPLE SELECT seq4() + 1, 'e' || seq4(), (seq4() % 3 = 0) FROM TABLE(GENERATOR(ROWCOUNT => 20))",
    );
    fs.exec("UPDATE PEOPLE SET ADS = NULL WHERE ID % 7 = 0");
    fs.exec("CREATE TABLE DUPS (ID int, EMAIL varchar, ADS boolean)");
    fs.exec(
        "INSERT INTO DUPS VALUES (1,'a',true),(1,'b',true),(2,'c',true),(3,'d',false),(4,'e',null),(NULL,'n',true)",
    );
    fs.exec("CREATE SCHEMA sluice");
    fs.exec("USE SCHEMA PUBLIC");
    let (mut a, mut b) = (Env::new(""), Env::new(""));
    let (wa, wb) = (workspace(&a, &fs, false), workspace(&b, &fs, true));
    let mut rng = Lcg(11);
    let mut sparse = 0;
    for step in 0..16u64 {
        if step > 0 {
            change(&fs, &mut rng, step);
        }
        // identical faults on both sides: a destination down (retryable failures), or
        // rejecting (permanent ones)
        let down = match rng.next(5) {
            0 => Some(PATHS[rng.next(2) as usize]),
            _ => None,
        };
        let reject = match rng.next(8) {
            0 => Some(PATHS[rng.next(2) as usize]).filter(|p| Some(*p) != down),
            _ => None,
        };
        for model in ["people", "dups"] {
            let ra = sync(&mut a, &wa, model, down, reject);
            let rb = sync(&mut b, &wb, model, down, reject);
            let ctx = format!("step {step}, model {model}, down {down:?}, reject {reject:?}");
            assert_eq!(outcome(&a, &ra), outcome(&b, &rb), "{ctx} (left: local diff, right: warehouse diff)");
            if rb.diff_pass.as_deref() == Some("sparse") {
                sparse += 1;
                // (`dups` is mostly duplicated ids, read on every pass until unique again)
                if model == "people" {
                    assert!(
                        rb.extracted < ra.extracted,
                        "{ctx}: a sparse pass read {} of {} rows",
                        rb.extracted,
                        ra.extracted
                    );
                }
            }
        }
    }
    // one clean sync at the end settles every retry the same way
    for model in ["people", "dups"] {
        let ra = sync(&mut a, &wa, model, None, None);
        let rb = sync(&mut b, &wb, model, None, None);
        assert_eq!(outcome(&a, &ra), outcome(&b, &rb), "final sync of {model}");
    }
    assert!(sparse >= 10, "B took only {sparse} sparse passes");
}

#[test]
fn apply_names_a_missing_snowflake_snapshot_schema_and_the_grant_to_run() {
    let fs = FakeSnow::start();
    fs.exec("CREATE TABLE PEOPLE (ID int, EMAIL varchar, ADS boolean)");
    let env = Env::new("");
    let yaml = |snap: &str| {
        format!(
            "sources: [{{id: snow, kind: snowflake, account: test, user: sluice, password: pw, database: {DATABASE}, \
             schema: {SCHEMA}, endpoint: \"{}\", diff: warehouse, sluice_schema: {snap}}}]
models: [{{id: people, source: snow, unique_id: ID, sql: 'select * from PEOPLE'}}]",
            fs.url()
        )
    };
    let ws = Workspace::from_yaml(&yaml("no_such_schema"), env.dir.path().to_path_buf()).unwrap();
    let e = ws.check_models().unwrap_err();
    assert_eq!(e.0[0].at, "sources[0] (snow).sluice_schema", "{e}");
    assert!(e.0[0].message.contains("CREATE SCHEMA no_such_schema"), "{e}");
    assert!(e.0[0].message.contains("GRANT USAGE, CREATE TABLE ON SCHEMA no_such_schema"), "{e}");
    fs.exec("CREATE SCHEMA snaps");
    let ws = Workspace::from_yaml(&yaml("snaps"), env.dir.path().to_path_buf()).unwrap();
    ws.check_models().unwrap();
}
