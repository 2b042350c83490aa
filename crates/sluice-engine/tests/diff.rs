//! The diff cases of SPEC §3: added / updated / deleted, withheld, consent granted later,
//! withdrawal then delete, rejected ids, retries and permanent rejections.

mod common;
use common::*;
use sluice_testkit::Reply;

const SETUP: &str = "create table people(id text, email text, ads);
    insert into people values ('1','a@x',1),('2','b@x',1),('3','c@x',0);";

fn ws(env: &Env) -> sluice_engine::Workspace {
    env.workspace(&format!(
        "destinations:\n{}{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: crm}}]}}",
        hook("ads"),
        hook("crm")
    ))
}

#[test]
fn added_updated_deleted_and_unchanged() {
    let mut env = Env::new(SETUP);
    let ws = ws(&env);
    let r = env.sync(&ws, "people");
    let m = mapping(&r, "crm");
    assert_eq!((m.added, m.updated, m.deleted, m.delivered), (3, 0, 0, 3));
    env.rx.clear();
    let r = env.sync(&ws, "people");
    assert!(env.rx.requests().is_empty(), "nothing new, nothing sent");
    assert_eq!(mapping(&r, "crm").unchanged, 3);

    env.sql(
        "update people set email = 'b2@x' where id = '2'; delete from people where id = '1';
             insert into people values ('4', 'd@x', 1);",
    );
    let r = env.sync(&ws, "people");
    let m = mapping(&r, "crm");
    assert_eq!((m.added, m.updated, m.deleted, m.delivered, m.failed), (1, 1, 1, 3, 0));
    assert_eq!(env.ids("/crm", "added"), ids(&["4"]));
    assert_eq!(env.ids("/crm", "updated"), ids(&["2"]));
    assert_eq!(env.ids("/crm", "deleted"), ids(&["1"]));
    let upd = env.rx.items("/crm").into_iter().find(|i| i["action"] == "updated").unwrap();
    assert_eq!(upd["data"], serde_json::json!({"id": "2", "email": "b2@x", "ads": 1}), "newest values, every column");
    let del = env.rx.items("/crm").into_iter().find(|i| i["action"] == "deleted").unwrap();
    assert_eq!(del["data"], serde_json::json!({}));
}

#[test]
fn withheld_is_never_sent_and_is_sent_as_added_once_consent_is_granted() {
    let mut env = Env::new(SETUP);
    let ws = ws(&env);
    env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "2"]));
    env.rx.clear();
    env.sql("update people set ads = 'TRUE' where id = '3'");
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "added"), ids(&["3"]));
    assert_eq!(mapping(&r, "ads").withheld_by_consent, 0);
}

#[test]
fn withdrawal_keeps_what_is_held_and_deletes_still_reach_the_holder() {
    let mut env = Env::new(SETUP);
    let ws = ws(&env);
    env.sync(&ws, "people");
    env.rx.clear();
    // '2' withdraws advertising consent: nothing is sent to ads (no update, no delete)
    env.sql("update people set ads = 0 where id = '2'");
    let r = env.sync(&ws, "people");
    assert!(env.rx.items("/ads").is_empty());
    assert_eq!(mapping(&r, "ads").withheld_by_consent, 2);
    // consent returns for the unchanged row: ads already holds it as it was, nothing is resent
    env.sql("update people set ads = 1 where id = '2'");
    env.sync(&ws, "people");
    assert!(env.rx.items("/ads").is_empty(), "{:?}", env.rx.items("/ads"));
    // withdrawn again, then the row is deleted: ads held it, so it still gets `deleted`
    env.sql("update people set ads = 0 where id = '2'");
    env.sync(&ws, "people");
    env.sql("delete from people where id in ('2', '3')");
    env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "deleted"), ids(&["2"]), "3 was never held by ads: no delete");
    assert_eq!(env.ids("/crm", "deleted"), ids(&["2", "3"]));
}

#[test]
fn null_and_duplicate_ids_are_rejected_and_counted_and_never_deleted() {
    let mut env = Env::new(SETUP);
    let ws = ws(&env);
    env.sync(&ws, "people");
    env.rx.clear();
    env.sql("insert into people values (null, 'n@x', 1), ('2', 'dup@x', 1), ('5', 'e@x', 1), ('5', 'e2@x', 1), ('5', 'e3@x', 1);");
    let r = env.sync(&ws, "people");
    assert_eq!(r.extracted, 8);
    assert_eq!(r.rejected, 6);
    assert_eq!(r.rejected_by_reason["null_id"], 1);
    assert_eq!(r.rejected_by_reason["duplicate_id"], 5);
    assert_eq!(r.rejected_samples["duplicate_id"], ids(&["2", "5"]));
    assert!(env.rx.items("/crm").is_empty(), "a duplicated id is neither sent nor deleted: {:?}", env.rx.items("/crm"));
}

#[test]
fn retryable_failures_are_retried_next_sync_and_permanent_ones_wait_for_a_change() {
    let mut env = Env::new(
        "create table people(id integer, email text); insert into people values (1,'a'),(2,'b'),(3,'c'),(4,'d');",
    );
    let ws = env.workspace(&format!(
        "workspace: {{retry_max_syncs: 3}}\ndestinations:\n{}models:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}",
        hook("crm")
    ));
    // batch_size 3: first batch [1,2,3] is refused with 400, singles: 1 ok, 2 rejected, 3 ok; batch [4] fails 500 twice
    env.rx.script([
        Reply::Status(400),
        Reply::Status(200),
        Reply::Status(422),
        Reply::Status(200),
        Reply::Status(500),
        Reply::Status(503),
    ]);
    let r = env.sync(&ws, "people");
    let m = mapping(&r, "crm");
    assert_eq!((m.added, m.delivered, m.failed, m.failed_permanent, m.failed_retryable), (4, 2, 2, 1, 1));
    assert_eq!(m.status, sluice_engine::report::MappingStatus::Partial);
    assert_eq!(m.failure_samples.permanent[0].id, "2");
    assert!(m.failure_samples.permanent[0].error.contains("422"));
    assert_eq!(m.failure_samples.retryable[0].id, "4");
    assert_eq!(m.failure_samples.retryable[0].payload["data"]["email"], "d");

    env.rx.clear();
    let r = env.sync(&ws, "people");
    let m = mapping(&r, "crm");
    assert_eq!((m.added, m.delivered, m.retried, m.skipped_rejected), (1, 1, 1, 1));
    assert_eq!(env.ids("/crm", "added"), ids(&["4"]), "2 is not resent until its row changes");

    env.rx.clear();
    env.sql("update people set email = 'b2' where id = 2");
    env.sync(&ws, "people");
    assert_eq!(env.ids("/crm", "added"), ids(&["2"]));
}

#[test]
fn retries_give_up_after_the_configured_syncs() {
    let mut env = Env::new("create table people(id integer, email text); insert into people values (1,'a');");
    let ws = env.workspace(&format!(
        "workspace: {{retry_max_syncs: 2}}\ndestinations:\n{}models:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}",
        hook("crm")
    ));
    env.rx.set_default(500);
    let m1 = mapping(&env.sync(&ws, "people"), "crm").clone();
    assert_eq!((m1.failed_retryable, m1.failed_permanent, m1.status.as_str()), (1, 0, "failed"));
    let m2 = mapping(&env.sync(&ws, "people"), "crm").clone();
    assert_eq!((m2.retried, m2.failed_permanent), (1, 1));
    assert!(m2.failure_samples.permanent[0].error.starts_with("gave up after retries"));
    env.rx.set_default(200);
    env.rx.clear();
    let m3 = mapping(&env.sync(&ws, "people"), "crm").clone();
    assert_eq!((m3.added, m3.skipped_rejected), (0, 1));
    assert!(env.rx.requests().is_empty());
}

#[test]
fn on_limits_the_changes_sent_and_fields_map_columns() {
    let mut env = Env::new(SETUP);
    let ws = env.workspace(&format!(
        "destinations:\n{}models:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: id,\n      mappings: [{{destination: crm, on: [added], fields: {{mail: EMAIL}}}}]}}",
        hook("crm")
    ));
    env.sync(&ws, "people");
    let first = env.rx.items("/crm");
    assert_eq!(first[0]["data"], serde_json::json!({"mail": "a@x"}), "fields map case-insensitively");
    env.rx.clear();
    env.sql("update people set email = 'z@x' where id = '1'; delete from people where id = '2'");
    let r = env.sync(&ws, "people");
    assert!(env.rx.requests().is_empty());
    assert_eq!((mapping(&r, "crm").updated, mapping(&r, "crm").deleted), (0, 0));
}

#[test]
fn model_errors_name_the_field() {
    let mut env = Env::new(SETUP);
    let ws = env.workspace(&format!(
        "destinations:\n{}models:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}",
        hook("crm")
    ));
    let bad = sluice_engine::Workspace::from_yaml(
        &format!(
            "sources: [{{id: dwh, kind: sqlite, path: ./warehouse.db}}]\ndestinations:\n{}consent_categories: [{{id: C1, name: A}}]\nmodels:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: nope, consent: {{C1: adz}}, mappings: [{{destination: crm}}]}}",
            hook("crm").replace("{URL}", env.rx.url())
        ),
        env.dir.path().into(),
    )
    .unwrap();
    let e = bad.check_models().unwrap_err().to_string();
    assert!(e.contains("models[0] (people).unique_id: unknown column `nope`"), "{e}");
    assert!(e.contains("models[0] (people).consent.C1: unknown column `adz`"), "{e}");
    let e = sluice_engine::sync_model(&mut env.store, &bad, "people", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("unknown column `nope`"), "{e}");
    env.sql("drop table people");
    let e = sluice_engine::sync_model(&mut env.store, &ws, "people", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("no such table: people"), "{e}");
}

#[test]
fn two_syncs_of_one_model_never_run_at_once() {
    let mut env = Env::new(SETUP);
    let ws = ws(&env);
    let dir = env.dir.path().join(".sluice/locks");
    std::fs::create_dir_all(&dir).unwrap();
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("people.lock")).unwrap();
    let mut held = fd_lock::RwLock::new(f);
    let guard = held.try_write().unwrap();
    let e = sluice_engine::sync_model(&mut env.store, &ws, "people", &mut |_| {}).unwrap_err();
    assert!(matches!(e, sluice_engine::SyncError::Busy(_)), "{e}");
    assert!(e.to_string().contains("already syncing"));
    drop(guard);
    assert!(env.rx.requests().is_empty());
    env.sync(&ws, "people");
    assert_eq!(env.ids("/crm", "added").len(), 3);
}

#[test]
fn a_model_that_suddenly_loses_most_rows_does_not_wipe_destinations() {
    let mut env = Env::new(
        "create table people(id integer, email text);
         insert into people with recursive s(v) as (select 1 union all select v + 1 from s where v < 40) select v, 'x' from s;",
    );
    let yaml = |fraction: &str| {
        format!(
            "workspace: {{max_delete_fraction: {fraction}}}\ndestinations:\n{}models:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}",
            hook("crm")
        )
    };
    let ws = env.workspace(&yaml("0.5"));
    env.sync(&ws, "people");
    env.rx.clear();
    env.sql("delete from people where id > 5"); // a broken model: 35 of 40 rows gone
    let r = env.sync(&ws, "people");
    let m = mapping(&r, "crm");
    assert_eq!((m.deleted, m.deletes_held_back), (0, 35));
    assert!(env.rx.requests().is_empty(), "nothing deleted downstream");
    assert!(r.warnings.iter().any(|w| w.contains("35 deletes to `crm` held back")), "{:?}", r.warnings);
    // the rows come back: nothing to do, nothing was lost
    env.sql("insert into people with recursive s(v) as (select 6 union all select v + 1 from s where v < 40) select v, 'x' from s;");
    let r = env.sync(&ws, "people");
    assert_eq!((mapping(&r, "crm").unchanged, mapping(&r, "crm").deletes_held_back), (40, 0));
    // a deliberate mass delete goes through once the guard is raised
    env.sql("delete from people where id > 5");
    let ws = env.workspace(&yaml("1.0"));
    let r = env.sync(&ws, "people");
    assert_eq!(mapping(&r, "crm").deleted, 35);
    assert_eq!(env.ids("/crm", "deleted").len(), 35);
    // small deletes are never held back
    env.sql("delete from people where id > 1");
    let ws = env.workspace(&yaml("0.1"));
    assert_eq!(mapping(&env.sync(&ws, "people"), "crm").deleted, 4);
}
