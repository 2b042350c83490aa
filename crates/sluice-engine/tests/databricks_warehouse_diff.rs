//! `diff: warehouse` on Databricks (the Statement Execution API fake of sluice-testkit, answering
//! from SQLite) sends EXACTLY what the local diff sends: two workspaces in lockstep on the same
//! tables, A with the default local diff and B with `diff: warehouse` (snapshots in schema
//! `sluice`), each with its own state store and
//! real HTTP receiver, through pseudo-random data changes (consent columns included, NULLs,
//! duplicated and NULL ids, deletes) and identical delivery failures. After every sync the
//! items each destination accepted and the delivery counts must be equal, and B must have
//! taken sparse passes that read only what changed.

mod common;
use common::lockstep::{self, lower, Dialect};
use common::*;
use sluice_engine::Workspace;
use sluice_testkit::databricks::{FakeDatabricks, TOKEN, WAREHOUSE_ID};

const DBX: Dialect = lower("dbx");

fn source(fake: &FakeDatabricks, extra: &str) -> String {
    format!(
        "{{id: dbx, kind: databricks, host: \"{}\", token: {TOKEN}, warehouse_id: {WAREHOUSE_ID}{extra}}}",
        fake.url()
    )
}

fn workspace(env: &Env, fake: &FakeDatabricks, diff: bool) -> Workspace {
    let extra = if diff { ", diff: warehouse, sluice_schema: sluice" } else { "" };
    env.workspace_with_source(&source(fake, extra), &lockstep::yaml(&DBX))
}

#[test]
fn databricks_warehouse_diff_sends_exactly_what_the_local_diff_sends() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FakeDatabricks::start(&dir.path().join("dbx.db"));
    fs.sql(
        "CREATE TABLE people (id BIGINT, email STRING, ads BOOLEAN);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20)
         INSERT INTO people SELECT n, 'e' || n, CASE WHEN n % 7 = 0 THEN NULL ELSE n % 3 = 0 END FROM g;
         CREATE TABLE dups (id BIGINT, email STRING, ads BOOLEAN);
         INSERT INTO dups VALUES (1,'a',1),(1,'b',1),(2,'c',1),(3,'d',0),(4,'e',NULL),(NULL,'n',1);",
    );
    fs.create_schema("sluice");
    lockstep::lockstep(&DBX, &|sql| fs.sql(sql), &|env, diff| workspace(env, &fs, diff));
}

#[test]
fn apply_names_a_missing_snapshot_schema_and_the_grant_to_run() {
    let env = Env::new("");
    let fake = FakeDatabricks::start(&env.dir.path().join("dbx.db"));
    fake.sql("CREATE TABLE people (id BIGINT, email STRING, ads BOOLEAN);");
    let yaml = |snap: &str| {
        format!(
            "sources: [{}]\nmodels: [{{id: people, source: dbx, unique_id: id, sql: 'select * from people'}}]",
            source(&fake, &format!(", diff: warehouse, sluice_schema: {snap}"))
        )
    };
    let ws = Workspace::from_yaml(&yaml("no_such_schema"), env.dir.path().to_path_buf()).unwrap();
    let e = ws.check_models().unwrap_err();
    assert_eq!(e.0[0].at, "sources[0] (dbx).sluice_schema", "{e}");
    assert!(e.0[0].message.contains("CREATE SCHEMA IF NOT EXISTS no_such_schema"), "{e}");
    fake.create_schema("snaps");
    let ws = Workspace::from_yaml(&yaml("snaps"), env.dir.path().to_path_buf()).unwrap();
    ws.check_models().unwrap();
}
