//! R13 (SPEC §12) in Reverse ETL end to end: a mapping's `on_withdrawal: delete` sends the
//! destination's delete call (reason `consent_withdrawn`) for a record it holds whose consent is
//! withdrawn; the checkpoint then records it as not held, and a later grant sends it as `added`.
//! Real parts: SQLite and PostgreSQL warehouses (`diff: warehouse` too), the SQLite state store,
//! a real HTTP receiver.

mod common;
use common::*;
use sluice_engine::RunReport;
use sluice_state::{Entry, Pending};
use sluice_testkit::{pg_url, unique_name, Reply};
use sluice_warehouse::IdOrder;

const PEOPLE: &str = "create table people(id text primary key, email text, ads);
    insert into people values ('a','a@x',1),('b','b@x',1),('c','c@x',1);";

/// `people` to `del` (delete on withdrawal) and `keep` (the default), both governed by C0004;
/// `extra` is added to the workspace settings.
fn yaml(source: &str, sql: &str, extra: &str) -> String {
    format!(
        "workspace: {{retry_max_syncs: 2{extra}}}
destinations:\n{}{}consent_categories: [{{id: C0004, name: Advertising, destinations: [del, keep]}}]
models:
  - {{id: people, source: {source}, sql: '{sql}', unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: del, on_withdrawal: delete}}, {{destination: keep}}]}}",
        hook("del"),
        hook("keep")
    )
}

fn entry(env: &Env, dest: &str, key: &str) -> Option<Entry> {
    let m = env.store.mapping_id("people", dest).unwrap();
    env.store.checkpoint_entry(m, key).unwrap()
}

/// The contract invariant of `sync --json` holds for every mapping.
fn invariant(r: &RunReport) {
    for m in &r.mappings {
        assert_eq!(m.added + m.updated + m.deleted, m.delivered + m.failed, "{m:?}");
        assert!(m.deleted_on_withdrawal <= m.deleted, "{m:?}");
    }
}

/// What `path` accepted since the last clear, as (action, id, reason).
fn got(env: &Env, path: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = env
        .rx
        .items(path)
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
                i.get("reason").and_then(|r| r.as_str()).unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn t(action: &str, id: &str, reason: &str) -> (String, String, String) {
    (action.into(), id.into(), reason.into())
}

#[test]
fn withdrawal_deletes_where_the_mapping_says_delete_and_a_new_grant_adds_again() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&yaml("dwh", "select * from people", ""));
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/del", "added"), ids(&["a", "b", "c"]));
    assert_eq!(env.ids("/keep", "added"), ids(&["a", "b", "c"]));
    invariant(&r);

    // b withdraws consent in the warehouse
    env.sql("update people set ads = 0 where id = 'b'");
    env.rx.clear();
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(got(&env, "/del"), [t("deleted", "b", "consent_withdrawn")]);
    let item = &env.rx.items("/del")[0];
    assert_eq!(item["data"], serde_json::json!({}), "nothing of the person is sent: {item}");
    assert!(got(&env, "/keep").is_empty(), "keep (Segment's behaviour) sends nothing");
    let m = mapping(&r, "del");
    assert_eq!((m.deleted, m.deleted_on_withdrawal, m.delivered, m.failed), (1, 1, 1, 0), "{m:?}");
    assert_eq!((m.withheld_by_consent, m.withheld_by_category["C0004"]), (1, 1), "still counted as withheld");
    let k = mapping(&r, "keep");
    assert_eq!((k.deleted, k.deleted_on_withdrawal, k.withheld_by_consent), (0, 0, 1), "{k:?}");
    assert_eq!(
        entry(&env, "del", "b"),
        Some(Entry { id: "b".into(), held: None, pending: Pending::Withheld, proof: None })
    );
    assert!(entry(&env, "keep", "b").unwrap().held.is_some(), "keep: the destination still holds it");

    // withheld and not held any more: nothing more is sent
    env.rx.clear();
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert!(got(&env, "/del").is_empty() && got(&env, "/keep").is_empty());
    assert_eq!((mapping(&r, "del").deleted, mapping(&r, "del").withheld_by_consent), (0, 1));

    // consent granted again: `added` where it was deleted, unchanged where it was kept
    env.sql("update people set ads = 1 where id = 'b'");
    env.rx.clear();
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(got(&env, "/del"), [t("added", "b", "")]);
    assert!(got(&env, "/keep").is_empty());
    assert!(entry(&env, "del", "b").unwrap().held.is_some());
}

#[test]
fn a_withdrawal_delete_to_a_down_destination_is_retried_every_sync_until_it_lands() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&yaml("dwh", "select * from people", ""));
    env.sync(&ws, "people");
    env.sql("update people set ads = 0 where id in ('a', 'c')");
    env.rx.answer_path("/del", Reply::Status(503));
    env.rx.clear();
    // more syncs than retry_max_syncs (2): a withdrawal delete is never given up
    for run in 1..=4u32 {
        let r = env.sync(&ws, "people");
        invariant(&r);
        let m = mapping(&r, "del");
        assert_eq!(
            (m.deleted_on_withdrawal, m.failed, m.failed_retryable, m.delivered),
            (2, 2, 2, 0),
            "run {run}: {m:?}"
        );
        assert_eq!(m.status.as_str(), "failed");
        for id in ["a", "c"] {
            let e = entry(&env, "del", id).unwrap();
            assert!(e.held.is_some(), "still held while the delete has not landed");
            assert!(matches!(e.pending, Pending::Failed { attempts, .. } if attempts == run), "run {run}: {e:?}");
        }
    }
    assert!(env.rx.items("/del").is_empty());
    env.rx.clear_path("/del");
    env.rx.clear();
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(got(&env, "/del"), [t("deleted", "a", "consent_withdrawn"), t("deleted", "c", "consent_withdrawn")]);
    assert_eq!((mapping(&r, "del").delivered, mapping(&r, "del").retried), (2, 2));
    assert_eq!(entry(&env, "del", "a").unwrap().held, None);
    // a rejection (4xx) is not a reason to forget it either: failed each run, retried
    env.sql("update people set ads = 0 where id = 'b'");
    env.rx.answer_path("/del", Reply::Status(400));
    for _ in 0..3 {
        let r = env.sync(&ws, "people");
        assert_eq!(mapping(&r, "del").failed, 1);
        assert!(entry(&env, "del", "b").unwrap().held.is_some());
    }
    env.rx.clear_path("/del");
    env.rx.clear();
    env.sync(&ws, "people");
    assert_eq!(got(&env, "/del"), [t("deleted", "b", "consent_withdrawn")]);
}

#[test]
fn switching_keep_to_delete_deletes_what_was_withheld_while_held() {
    let mut env = Env::new(PEOPLE);
    let keep_only = yaml("dwh", "select * from people", "")
        .replace("{destination: del, on_withdrawal: delete}", "{destination: del}");
    let ws = env.workspace(&keep_only);
    env.sync(&ws, "people");
    env.sql("update people set ads = 0 where id = 'a'");
    env.rx.clear();
    env.sync(&ws, "people");
    assert!(got(&env, "/del").is_empty());
    let ws = env.workspace(&yaml("dwh", "select * from people", ""));
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(got(&env, "/del"), [t("deleted", "a", "consent_withdrawn")]);
}

#[test]
fn postgres_with_the_warehouse_diff_deletes_on_withdrawal_in_a_sparse_pass() {
    let schema = unique_name("wdraw");
    let mut pg = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE SCHEMA {schema}_snap; SET search_path = {schema};
         CREATE TABLE people (id bigint primary key, email text, ads boolean);
         INSERT INTO people VALUES (1, 'a@x', true), (2, 'b@x', true), (3, 'c@x', true);"
    ))
    .unwrap();
    let mut env = Env::new("");
    let source = format!(
        "{{id: pg, kind: postgres, url: \"{}\", allow_privileged_role: true, diff: warehouse, sluice_schema: {schema}_snap}}",
        pg_url()
    );
    let ws = env.workspace_with_source(&source, &yaml("pg", &format!("select * from {schema}.people"), ""));
    let key = |id: &str| IdOrder::Integer.key(id).unwrap().into_owned();
    let r = env.sync(&ws, "people");
    assert_eq!(r.diff_pass.as_deref(), Some("full"));
    assert_eq!(env.ids("/del", "added"), ids(&["1", "2", "3"]));
    let mut sql = |s: &str| pg.batch_execute(&format!("SET search_path = {schema}; {s}")).unwrap();

    // withdrawal, destination down: a sparse pass sees the consent change as an update
    sql("UPDATE people SET ads = false WHERE id = 2");
    env.rx.clear();
    env.rx.answer_path("/del", Reply::Status(503));
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(r.diff_pass.as_deref(), Some("sparse"), "{r:?}");
    let m = mapping(&r, "del");
    assert_eq!((m.deleted_on_withdrawal, m.failed), (1, 1), "{m:?}");
    assert!(entry(&env, "del", &key("2")).unwrap().held.is_some());

    // the row did not change again: the failed delete is retried by the sparse pass's retry list
    env.rx.clear_path("/del");
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(r.diff_pass.as_deref(), Some("sparse"), "{r:?}");
    assert_eq!(got(&env, "/del"), [t("deleted", "2", "consent_withdrawn")]);
    assert!(got(&env, "/keep").is_empty());
    assert_eq!(entry(&env, "del", &key("2")).unwrap().held, None);
    assert_eq!(mapping(&r, "del").deleted_on_withdrawal, 1);

    // nothing changed: nothing sent
    env.rx.clear();
    let r = env.sync(&ws, "people");
    assert_eq!((r.diff_pass.as_deref(), r.extracted), (Some("sparse"), 0), "{r:?}");
    assert!(got(&env, "/del").is_empty());

    // granted again: added, in a sparse pass
    sql("UPDATE people SET ads = true WHERE id = 2");
    env.rx.clear();
    let r = env.sync(&ws, "people");
    invariant(&r);
    assert_eq!(r.diff_pass.as_deref(), Some("sparse"));
    assert_eq!(got(&env, "/del"), [t("added", "2", "")]);
    assert!(got(&env, "/keep").is_empty(), "keep held it all along: unchanged");
    sql(&format!("SET search_path = public; DROP SCHEMA {schema} CASCADE; DROP SCHEMA {schema}_snap CASCADE"));
}
