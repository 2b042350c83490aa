//! `diff: warehouse` on the real PostgreSQL server: a first sync takes a full pass and builds the
//! snapshot; later syncs fetch only what changed and send exactly what the local diff would.

mod common;
use common::*;
use sluice_testkit::{pg_url, unique_name};

fn pg(sql: &str) -> (postgres::Client, String) {
    let schema = unique_name("wdiff");
    let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    c.batch_execute(&format!("CREATE SCHEMA {schema}; CREATE SCHEMA {schema}_snap; SET search_path = {schema}; {sql}"))
        .unwrap();
    (c, schema)
}

fn workspace(env: &Env, schema: &str, diff: bool) -> sluice_engine::Workspace {
    let extra = if diff { format!(", diff: warehouse, sluice_schema: {schema}_snap") } else { String::new() };
    env.workspace_with_source(
        &format!("{{id: pg, kind: postgres, url: \"{}\", allow_privileged_role: true{extra}}}", pg_url()),
        &format!(
            "destinations:\n{}{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: pg, unique_id: id, consent: {{C0004: ads}}, sql: 'select * from {schema}.people',
      mappings: [{{destination: ads}}, {{destination: crm}}]}}",
            hook("ads"),
            hook("crm")
        ),
    )
}

#[test]
fn a_sparse_pass_sends_what_the_local_diff_sends() {
    let (mut c, schema) = pg("CREATE TABLE people (id bigint primary key, email text, ads boolean);
        INSERT INTO people SELECT i, 'e' || i, i % 2 = 0 FROM generate_series(1, 50) i;");
    let (mut local, mut remote) = (Env::new(""), Env::new(""));
    let (wl, wr) = (workspace(&local, &schema, false), workspace(&remote, &schema, true));
    let mut sync = |step: &str| {
        local.rx.clear();
        remote.rx.clear();
        let (a, b) = (local.sync(&wl, "people"), remote.sync(&wr, "people"));
        for d in ["/ads", "/crm"] {
            let items = |e: &Env| {
                let mut v: Vec<String> = e.rx.items(d).iter().map(|i| i.to_string()).collect();
                v.sort();
                v
            };
            assert_eq!(items(&local), items(&remote), "{step}: {d}");
        }
        (a, b)
    };
    let (_, r) = sync("first");
    assert_eq!(r.diff_pass.as_deref(), Some("full"));
    let (_, r) = sync("nothing changed");
    assert_eq!((r.diff_pass.as_deref(), r.extracted), (Some("sparse"), 0), "{r:?}");
    c.batch_execute(&format!(
        "SET search_path = {schema}; UPDATE people SET email = 'x' WHERE id = 3;
         UPDATE people SET ads = true WHERE id = 5; UPDATE people SET ads = false WHERE id = 4;
         DELETE FROM people WHERE id = 7; INSERT INTO people VALUES (51, 'new', true);"
    ))
    .unwrap();
    let (_, r) = sync("changes");
    assert_eq!((r.diff_pass.as_deref(), r.extracted), (Some("sparse"), 4), "{r:?}");
    let (_, r) = sync("after the changes");
    assert_eq!((r.diff_pass.as_deref(), r.extracted), (Some("sparse"), 0), "{r:?}");
}

#[test]
fn failures_are_retried_and_a_consent_change_forces_a_full_pass() {
    let (mut c, schema) = pg("CREATE TABLE people (id bigint primary key, email text, ads boolean);
        INSERT INTO people SELECT i, 'e' || i, true FROM generate_series(1, 20) i;");
    let mut env = Env::new("");
    let ws = workspace(&env, &schema, true);
    assert_eq!(env.sync(&ws, "people").diff_pass.as_deref(), Some("full"));
    // a change whose delivery fails (503 until the attempts run out): retried next sync, though
    // its row does not change again
    c.batch_execute(&format!("UPDATE {schema}.people SET email = 'x' WHERE id = 2")).unwrap();
    env.rx.clear();
    env.rx.set_default(503);
    let r = env.sync(&ws, "people");
    assert_eq!(r.diff_pass.as_deref(), Some("sparse"));
    assert!(r.mappings.iter().all(|m| m.failed_retryable == 1), "{r:?}");
    env.rx.set_default(200);
    env.rx.clear();
    let r = env.sync(&ws, "people");
    assert_eq!((r.diff_pass.as_deref(), r.extracted), (Some("sparse"), 1), "the failed record is fetched again");
    assert_eq!(env.ids("/ads", "updated"), ids(&["2"]));
    assert_eq!(env.ids("/crm", "updated"), ids(&["2"]));
    // a consent configuration change: every row is re-evaluated (a full pass)
    let ws2 = sluice_engine::Workspace {
        file: {
            let mut f = ws.file.clone();
            f.workspace.policy = sluice_core::Policy::Any;
            f
        },
        ..ws.clone()
    };
    assert_eq!(env.sync(&ws2, "people").diff_pass.as_deref(), Some("full"));
    assert_eq!(env.sync(&ws2, "people").diff_pass.as_deref(), Some("sparse"));
}

#[test]
fn duplicated_ids_and_held_back_deletes_behave_as_with_the_local_diff() {
    // no primary key: ids can be duplicated
    let (mut c, schema) = pg("CREATE TABLE people (id bigint, email text, ads boolean);
        INSERT INTO people SELECT i, 'e' || i, true FROM generate_series(1, 40) i;");
    let mut env = Env::new("");
    let ws = workspace(&env, &schema, true);
    env.sync(&ws, "people");
    c.batch_execute(&format!("INSERT INTO {schema}.people VALUES (3, 'dup', true)")).unwrap();
    let r = env.sync(&ws, "people");
    assert_eq!((r.diff_pass.as_deref(), r.rejected), (Some("sparse"), 2), "{r:?}");
    // the duplicate is rejected again on every sync, and the snapshot keeps moving (no full pass)
    let r = env.sync(&ws, "people");
    assert_eq!((r.diff_pass.as_deref(), r.rejected), (Some("sparse"), 2), "{r:?}");
    assert!(!r.warnings.iter().any(|w| w.contains("snapshot")), "{r:?}");
    // most rows vanish: the mass-delete guard holds the deletes back, and they stay held back
    // (not forgotten) on the next sparse sync, as with the local diff
    c.batch_execute(&format!("DELETE FROM {schema}.people WHERE id > 5")).unwrap();
    for _ in 0..2 {
        env.rx.clear();
        let r = env.sync(&ws, "people");
        assert_eq!(r.diff_pass.as_deref(), Some("sparse"));
        assert!(r.mappings.iter().all(|m| m.deletes_held_back == 35), "{r:?}");
        assert!(env.ids("/crm", "deleted").is_empty());
    }
    // allowed now: the deletes go out
    let mut ws2 = ws.clone();
    ws2.file.workspace.max_delete_fraction = 1.0;
    env.sync(&ws2, "people");
    assert_eq!(env.ids("/crm", "deleted").len(), 35);
}

#[test]
fn apply_names_a_missing_snapshot_schema_and_the_grant_to_run() {
    let (_c, schema) = pg("CREATE TABLE people (id bigint primary key, email text, ads boolean);");
    let env = Env::new("");
    let yaml = |snap: &str| {
        format!(
            "sources: [{{id: pg, kind: postgres, url: \"{}\", allow_privileged_role: true, diff: warehouse, sluice_schema: {snap}}}]
models: [{{id: people, source: pg, unique_id: id, sql: 'select * from {schema}.people'}}]",
            pg_url()
        )
    };
    let ws = sluice_engine::Workspace::from_yaml(&yaml("no_such_schema"), env.dir.path().to_path_buf()).unwrap();
    let e = ws.check_models().unwrap_err();
    assert_eq!(e.0[0].at, "sources[0] (pg).sluice_schema", "{e}");
    assert!(e.0[0].message.contains("CREATE SCHEMA no_such_schema AUTHORIZATION"), "{e}");
    let ws =
        sluice_engine::Workspace::from_yaml(&yaml(&format!("{schema}_snap")), env.dir.path().to_path_buf()).unwrap();
    ws.check_models().unwrap();
}
