//! `kind: redshift` through the engine, on the real PostgreSQL server (Redshift speaks its
//! protocol): a full sync and a re-sync with an update, a delete and newly granted consent.

mod common;
use common::*;
use sluice_testkit::{pg_url, unique_name};

#[test]
fn a_redshift_source_syncs_and_resyncs() {
    let schema = unique_name("rsync");
    let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.p (userid varchar(64), email varchar(64), ads boolean);
         INSERT INTO {schema}.p VALUES ('u1', 'a@x', true), ('u2', 'b@x', false), ('u3', 'c@x', true);"
    ))
    .unwrap();
    let mut env = Env::new("");
    std::env::set_var("SLUICE_RS_URL_FOR_TESTS", pg_url());
    let ws = env.workspace_with_source(
        "{id: rs, kind: redshift, url: \"${SLUICE_RS_URL_FOR_TESTS}\", tls: disable, statement_timeout_secs: 30, allow_privileged_role: true}",
        &format!(
            "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: m, source: rs, sql: 'select userid, email, ads from {schema}.p', unique_id: USERID, consent: {{C0004: ads}}, mappings: [{{destination: ads}}]}}
",
            hook("ads")
        ),
    );
    let r = env.sync(&ws, "m");
    let m = mapping(&r, "ads");
    assert_eq!((m.added, m.withheld_by_consent), (2, 1), "{m:?}");
    c.batch_execute(&format!(
        "UPDATE {schema}.p SET email = 'a2@x' WHERE userid = 'u1'; DELETE FROM {schema}.p WHERE userid = 'u3';
         UPDATE {schema}.p SET ads = true WHERE userid = 'u2';"
    ))
    .unwrap();
    env.rx.clear();
    let r = env.sync(&ws, "m");
    let m = mapping(&r, "ads");
    assert_eq!((m.added, m.updated, m.deleted), (1, 1, 1), "{m:?}");
    assert_eq!(env.ids("/ads", "added"), ids(&["u2"]));
    assert_eq!(env.ids("/ads", "deleted"), ids(&["u3"]));
}
