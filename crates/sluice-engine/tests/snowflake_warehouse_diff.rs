//! `diff: warehouse` on Snowflake (`fakesnow -s`) sends EXACTLY what the local diff sends: two
//! workspaces in lockstep on the same Snowflake tables, A with the default local diff and B
//! with `diff: warehouse` (snapshots in schema `sluice`), each with its own state store and
//! real HTTP receiver, through pseudo-random data changes (consent columns included, NULLs,
//! duplicated and NULL ids, deletes) and identical delivery failures. After every sync the
//! items each destination accepted and the delivery counts must be equal, and B must have
//! taken sparse passes that read only what changed.

mod common;
use common::lockstep::{self, Dialect};
use common::*;
use sluice_engine::Workspace;
use sluice_testkit::fakesnow::{FakeSnow, DATABASE, SCHEMA};

/// Upper-case names (as Snowflake folds unquoted ones) and boolean literals.
const SNOW: Dialect = Dialect {
    source: "snow",
    people: "PEOPLE",
    dups: "DUPS",
    id: "ID",
    email: "EMAIL",
    ads: "ADS",
    bools: ["true", "false", "NULL"],
};

fn workspace(env: &Env, fs: &FakeSnow, diff: bool) -> Workspace {
    std::env::set_var("SLUICE_SNOWFLAKE_PASSWORD_FOR_TESTS", "pw");
    let extra = if diff { ", diff: warehouse, sluice_schema: sluice" } else { "" };
    env.workspace_with_source(
        &format!(
            "{{id: snow, kind: snowflake, account: test, user: sluice, password: \"${{SLUICE_SNOWFLAKE_PASSWORD_FOR_TESTS}}\", \
             database: {DATABASE}, schema: {SCHEMA}, endpoint: \"{}\"{extra}}}",
            fs.url()
        ),
        &lockstep::yaml(&SNOW),
    )
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
    lockstep::lockstep(
        &SNOW,
        &|sql| {
            fs.exec(sql);
        },
        &|env, diff| workspace(env, &fs, diff),
    );
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
