//! `diff: warehouse` on BigQuery (the REST fake of sluice-testkit, answering from SQLite) sends
//! EXACTLY what the local diff sends: two workspaces in lockstep on the same BigQuery tables, A
//! with the default local diff and B with `diff: warehouse` (snapshots in dataset `sluice`), each with its own state store and
//! real HTTP receiver, through pseudo-random data changes (consent columns included, NULLs,
//! duplicated and NULL ids, deletes) and identical delivery failures. After every sync the
//! items each destination accepted and the delivery counts must be equal, and B must have
//! taken sparse passes that read only what changed.

mod common;
use common::*;
use sluice_engine::{RunReport, Workspace};
use sluice_testkit::bigquery::{FakeBigQuery, ACCOUNT_KEY};
use sluice_testkit::Reply;

const PATHS: [&str; 2] = ["/ads", "/all"];

fn yaml() -> String {
    format!(
        "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
models:
  - {{id: people, source: bq, unique_id: id, consent: {{C0004: ads}}, sql: 'select id, email, ads from people',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
  - {{id: dups, source: bq, unique_id: id, consent: {{C0004: ads}}, sql: 'select id, email, ads from dups',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
",
        hook("ads"),
        hook("all")
    )
}

fn workspace(env: &Env, fake: &FakeBigQuery, diff: bool) -> Workspace {
    fake.key_file(env.dir.path(), ACCOUNT_KEY);
    let extra = if diff { ", diff: warehouse, sluice_schema: sluice" } else { "" };
    env.workspace_with_source(
        &format!(
            "{{id: bq, kind: bigquery, project: sluice-test, credentials_file: sa.json, endpoint: \"{}\"{extra}}}",
            fake.url()
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

fn change(fs: &FakeBigQuery, rng: &mut Lcg, step: u64) {
    let bool_or_null = |v: u64| ["1", "0", "NULL"][v as usize];
    for _ in 0..1 + rng.next(4) {
        let id = 1 + rng.next(24);
        let sql = match rng.next(8) {
            0 | 1 => format!("UPDATE people SET email = 'e{step}-{id}' WHERE id = {id}"),
            2 | 3 => format!("UPDATE people SET ads = {} WHERE id = {id}", bool_or_null(rng.next(3))),
            4 => format!("DELETE FROM people WHERE id = {id}"),
            5 => format!(
                "INSERT INTO people SELECT {id}, 'n{step}', {} WHERE NOT EXISTS (SELECT 1 FROM people WHERE id = {id})",
                bool_or_null(rng.next(3))
            ),
            6 => format!("INSERT INTO dups VALUES ({}, 'd{step}-{id}', {})", 1 + id % 5, bool_or_null(rng.next(3))),
            _ => format!("DELETE FROM dups WHERE id = {}", 1 + id % 5),
        };
        fs.sql(&sql);
    }
    if rng.next(4) == 0 {
        fs.sql(&format!("INSERT INTO dups VALUES (NULL, 'null{step}', 1)"));
    }
}

#[test]
fn bigquery_warehouse_diff_sends_exactly_what_the_local_diff_sends() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FakeBigQuery::start(&dir.path().join("bq.db"));
    fs.sql(
        "CREATE TABLE people (id INT64, email STRING, ads BOOL);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20)
         INSERT INTO people SELECT n, 'e' || n, CASE WHEN n % 7 = 0 THEN NULL ELSE n % 3 = 0 END FROM g;
         CREATE TABLE dups (id INT64, email STRING, ads BOOL);
         INSERT INTO dups VALUES (1,'a',1),(1,'b',1),(2,'c',1),(3,'d',0),(4,'e',NULL),(NULL,'n',1);",
    );
    fs.create_dataset("sluice");
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
fn apply_names_a_missing_snapshot_dataset_and_the_grant_to_run() {
    let env = Env::new("");
    let fake = FakeBigQuery::start(&env.dir.path().join("bq.db"));
    fake.sql("CREATE TABLE people (id INT64, email STRING, ads BOOL);");
    fake.key_file(env.dir.path(), ACCOUNT_KEY);
    let yaml = |snap: &str| {
        format!(
            "sources: [{{id: bq, kind: bigquery, project: sluice-test, credentials_file: sa.json, endpoint: \"{}\", \
             diff: warehouse, sluice_schema: {snap}}}]
models: [{{id: people, source: bq, unique_id: id, sql: 'select * from people'}}]",
            fake.url()
        )
    };
    let ws = Workspace::from_yaml(&yaml("no_such_dataset"), env.dir.path().to_path_buf()).unwrap();
    let e = ws.check_models().unwrap_err();
    assert_eq!(e.0[0].at, "sources[0] (bq).sluice_schema", "{e}");
    assert!(e.0[0].message.contains("no_such_dataset") && e.0[0].message.contains("roles/bigquery.dataEditor"), "{e}");
    fake.create_dataset("snaps");
    let ws = Workspace::from_yaml(&yaml("snaps"), env.dir.path().to_path_buf()).unwrap();
    ws.check_models().unwrap();
}

#[test]
fn more_retries_than_the_diff_query_takes_make_a_full_pass_that_sends_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FakeBigQuery::start(&dir.path().join("bq.db"));
    fs.sql(
        "CREATE TABLE people (id INT64, email STRING, ads BOOL);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5100)
         INSERT INTO people SELECT n, 'e' || n, 1 FROM g;",
    );
    fs.create_dataset("sluice");
    let yaml = "destinations:
  - {id: all, kind: webhook, settings: {url: \"{URL}/all\", batch_size: 1000, retry_initial_ms: 5, retry_max_ms: 10, timeout_secs: 10, max_attempts: 1}}
models:
  - {id: people, source: bq, unique_id: id, sql: 'select id, email, ads from people', mappings: [{destination: all}]}
";
    let (mut a, mut b) = (Env::new(""), Env::new(""));
    let ws = |env: &Env, extra: &str| {
        fs.key_file(env.dir.path(), ACCOUNT_KEY);
        env.workspace_with_source(
            &format!(
                "{{id: bq, kind: bigquery, project: sluice-test, credentials_file: sa.json, endpoint: \"{}\"{extra}}}",
                fs.url()
            ),
            yaml,
        )
    };
    let (wa, wb) = (ws(&a, ""), ws(&b, ", diff: warehouse, sluice_schema: sluice"));
    // the destination is down for the first sync: all 5,100 records fail retryably
    let ra = sync(&mut a, &wa, "people", Some("/all"), None);
    let rb = sync(&mut b, &wb, "people", Some("/all"), None);
    assert_eq!(mapping(&rb, "all").failed_retryable, 5100);
    assert_eq!(outcome(&a, &ra), outcome(&b, &rb));
    // 5,100 retries are more than a diff query takes: B takes a full pass, and both send all
    fs.sql("UPDATE people SET email = 'changed' WHERE id = 7;");
    let ra = sync(&mut a, &wa, "people", None, None);
    let rb = sync(&mut b, &wb, "people", None, None);
    assert_eq!(rb.diff_pass.as_deref(), Some("full"));
    assert_eq!(mapping(&rb, "all").added, 5100);
    assert_eq!(outcome(&a, &ra), outcome(&b, &rb));
    // and with nothing left to retry, the next one is sparse again
    fs.sql("UPDATE people SET email = 'again' WHERE id = 9;");
    let ra = sync(&mut a, &wa, "people", None, None);
    let rb = sync(&mut b, &wb, "people", None, None);
    assert_eq!(rb.diff_pass.as_deref(), Some("sparse"));
    assert_eq!((mapping(&rb, "all").updated, rb.extracted), (1, 1));
    assert_eq!(outcome(&a, &ra), outcome(&b, &rb));
}
