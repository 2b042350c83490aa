//! `diff: warehouse` on BigQuery (the REST fake of sluice-testkit, answering from SQLite) sends
//! EXACTLY what the local diff sends: two workspaces in lockstep on the same BigQuery tables, A
//! with the default local diff and B with `diff: warehouse` (snapshots in dataset `sluice`), each with its own state store and
//! real HTTP receiver, through pseudo-random data changes (consent columns included, NULLs,
//! duplicated and NULL ids, deletes) and identical delivery failures. After every sync the
//! items each destination accepted and the delivery counts must be equal, and B must have
//! taken sparse passes that read only what changed.

mod common;
use common::lockstep::{self, lower, outcome, sync, Dialect};
use common::*;
use sluice_engine::Workspace;
use sluice_testkit::bigquery::{FakeBigQuery, ACCOUNT_KEY};

const BQ: Dialect = lower("bq");

fn workspace(env: &Env, fake: &FakeBigQuery, diff: bool) -> Workspace {
    fake.key_file(env.dir.path(), ACCOUNT_KEY);
    let extra = if diff { ", diff: warehouse, sluice_schema: sluice" } else { "" };
    env.workspace_with_source(
        &format!(
            "{{id: bq, kind: bigquery, project: sluice-test, credentials_file: sa.json, endpoint: \"{}\"{extra}}}",
            fake.url()
        ),
        &lockstep::yaml(&BQ),
    )
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
    lockstep::lockstep(&BQ, &|sql| fs.sql(sql), &|env, diff| workspace(env, &fs, diff));
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
