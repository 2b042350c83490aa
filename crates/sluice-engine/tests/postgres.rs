//! Reverse ETL from the real PostgreSQL server: the seed's two sample models, id types, errors.

mod common;
use common::*;
use sluice_testkit::{pg_url, unique_name};

fn pg(sql: &str) -> String {
    let schema = unique_name("retl");
    let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    c.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path = {schema}; {sql}")).unwrap();
    schema
}

fn workspace(env: &Env, schema: &str, models: &str) -> sluice_engine::Workspace {
    let yaml = format!(
        "destinations:\n{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0003, name: Personalization, destinations: [ads]}}
models:\n{}",
        hook("ads"),
        models.replace("S.", &format!("{schema}."))
    );
    std::env::set_var("SLUICE_PG_URL_FOR_TESTS", pg_url());
    // the URL comes from the environment, as users keep secrets
    env.workspace_with_source(
        "{id: pg, kind: postgres, url: \"${SLUICE_PG_URL_FOR_TESTS}\", tls: prefer, statement_timeout_secs: 30, allow_privileged_role: true}",
        &yaml,
    )
}

const SEED: &str = "CREATE TABLE consent_preferences (userid uuid, name text, email text, distinctid text,
      ads boolean, personalization text, analytics boolean, consent_obj jsonb);
    INSERT INTO consent_preferences VALUES
      ('11111111-1111-1111-1111-111111111111','A','a@x','d1',true,'true',true,
       '{\"consent\":{\"cookie\":{\"Advertising\":true,\"Personalization\":true}}}'),
      ('22222222-2222-2222-2222-222222222222','B','b@x','d2',true,'f',false,
       '{\"consent\":{\"cookie\":{\"Advertising\":true,\"Personalization\":false}}}'),
      ('33333333-3333-3333-3333-333333333333','C','c@x','d3',null,'TRUE',null,
       '{\"consent\":{\"cookie\":{\"Personalization\":true}}}');";

#[test]
fn seed_models_columns_per_category_and_json_blob() {
    let mut env = Env::new("");
    let schema = pg(SEED);
    let ws = workspace(
        &env,
        &schema,
        "  - {id: columns, source: pg, unique_id: USERID, consent: {C0004: Ads, C0003: Personalization},
     sql: 'select USERID, name, email, distinctid, Ads, Personalization, Analytics from S.CONSENT_PREFERENCES',
     mappings: [{destination: ads}]}
  - id: blob
    source: pg
    unique_id: USERID
    consent: {C0004: Ads, C0003: Personalization}
    sql: |
      select USERID, name, email, distinctid,
        CAST(CONSENT_OBJ->'consent'->'cookie'->>'Advertising' AS boolean) as Ads,
        CAST(CONSENT_OBJ->'consent'->'cookie'->>'Personalization' AS boolean) as Personalization
      from S.CONSENT_PREFERENCES
    mappings: [{destination: ads}]
",
    );
    let r = env.sync(&ws, "columns");
    assert_eq!(env.ids("/ads", "added"), ids(&["11111111-1111-1111-1111-111111111111"]));
    let m = mapping(&r, "ads");
    assert_eq!(m.withheld_by_category["C0003"], 1);
    assert_eq!(m.withheld_by_category["C0004"], 1);
    assert_eq!(r.consent_warnings["C0004"], 1, "NULL ads is a validation warning");
    // the tests connect as a superuser, explicitly allowed: every sync report says so
    assert!(
        r.warnings.iter().any(|w| w.starts_with("source `pg`:") && w.contains("superuser")),
        "the privileged role is reported: {:?}",
        r.warnings
    );
    let item = &env.rx.items("/ads")[0];
    assert_eq!(item["data"]["ads"], true);
    assert_eq!(item["data"]["email"], "a@x");
    env.rx.clear();
    env.sync(&ws, "blob");
    assert_eq!(env.ids("/ads", "added"), ids(&["11111111-1111-1111-1111-111111111111"]));
}

#[test]
fn every_id_type_syncs_and_resyncs_without_resending() {
    let mut env = Env::new("");
    let schema = pg("CREATE TABLE i (id int, v text); INSERT INTO i SELECT g, 'v' || g FROM generate_series(1, 50) g;
         CREATE TABLE b (id bigint, v text); INSERT INTO b SELECT g * 10000000000, 'v' FROM generate_series(1, 50) g;
         CREATE TABLE u (id uuid, v text); INSERT INTO u SELECT md5(g::text)::uuid, 'v' FROM generate_series(1, 50) g;
         CREATE TABLE t (id text, v text); INSERT INTO t SELECT 'k-' || g, 'v' FROM generate_series(1, 50) g;");
    let models: String = ["i", "b", "u", "t"]
        .iter()
        .map(|t| format!("  - {{id: {t}, source: pg, sql: select * from S.{t}, unique_id: id, mappings: [{{destination: ads}}]}}\n"))
        .collect();
    let ws = workspace(&env, &schema, &models);
    for t in ["i", "b", "u", "t"] {
        env.rx.clear();
        let r = env.sync(&ws, t);
        assert_eq!((r.extracted, mapping(&r, "ads").added, mapping(&r, "ads").delivered), (50, 50, 50), "{t}");
        env.rx.clear();
        let r = env.sync(&ws, t);
        assert_eq!(mapping(&r, "ads").unchanged, 50, "{t}: a re-sync sends nothing");
        assert!(env.rx.requests().is_empty());
    }
}

#[test]
fn warehouse_errors_stop_the_sync_with_a_clear_message() {
    let mut env = Env::new("");
    let schema = pg("CREATE TABLE p (id int);");
    let ws = workspace(
        &env,
        &schema,
        "  - {id: p, source: pg, sql: select * from S.p, unique_id: id, mappings: [{destination: ads}]}\n",
    );
    let mut bad = ws.clone();
    bad.file.models[0].sql = format!("select * from {schema}.p wher id = 1");
    let e = sluice_engine::sync_model(&mut env.store, &bad, "p", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("syntax error") && e.contains("column"), "{e}");
    let mut down = ws.clone();
    if let sluice_core::SourceSettings::Postgres(pg) = &mut down.file.sources.last_mut().unwrap().settings {
        pg.url = "postgres://postgres@127.0.0.1:1/test".into();
    }
    let e = sluice_engine::sync_model(&mut env.store, &down, "p", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("127.0.0.1:1"), "{e}");
}

#[test]
fn integer_ids_merge_in_numeric_order_and_survive_an_id_type_change() {
    let mut env = Env::new("");
    let schema = pg("CREATE TABLE n (id bigint primary key, v text);
                     INSERT INTO n SELECT g, 'v' FROM generate_series(-5, 120) g;");
    let ws = workspace(&env, &schema, "  - {id: n, source: pg, sql: select * from S.n, unique_id: id, mappings: [{destination: ads, fields: {v: v}}]}\n");
    let r = env.sync(&ws, "n");
    assert_eq!(mapping(&r, "ads").added, 126);
    let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DELETE FROM {schema}.n WHERE id IN (-5, 7, 100); UPDATE {schema}.n SET v = 'w' WHERE id = 99;"
    ))
    .unwrap();
    env.rx.clear();
    let r = env.sync(&ws, "n");
    let m = mapping(&r, "ads");
    assert_eq!((m.added, m.updated, m.deleted, m.unchanged), (0, 1, 3, 122));
    assert_eq!(env.ids("/ads", "deleted"), ids(&["-5", "100", "7"]), "ids are sent in decimal");
    assert_eq!(env.ids("/ads", "updated"), ids(&["99"]));
    // the same model with a text id: the checkpoint is re-keyed, the same data is not resent,
    // nothing is deleted
    let mut text = ws.clone();
    text.file.models[0].sql = format!("select id::text as id, v from {schema}.n");
    env.rx.clear();
    let r = env.sync(&text, "n");
    let m = mapping(&r, "ads");
    assert_eq!((m.added, m.updated, m.deleted, m.unchanged), (0, 0, 0, 123), "{m:?}");
    assert!(env.rx.requests().is_empty());
}
