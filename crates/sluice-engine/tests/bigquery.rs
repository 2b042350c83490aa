//! Reverse ETL from BigQuery: the engine against the BigQuery fake of sluice-testkit (a real
//! HTTP server speaking the REST API v2 and Google's token endpoint), delivering to a real
//! HTTP receiver.

mod common;
use common::*;
use sluice_testkit::bigquery::{FakeBigQuery, ACCOUNT_KEY};

fn setup() -> (Env, FakeBigQuery, sluice_engine::Workspace) {
    let env = Env::new("");
    let fake = FakeBigQuery::start(&env.dir.path().join("bq.db"));
    fake.sql(
        "CREATE TABLE consent_preferences (userid STRING, email STRING, ads BOOL, analytics BOOL);
         INSERT INTO consent_preferences VALUES ('u1', 'a@x', 1, 1), ('u2', 'b@x', 0, 1), ('u3', 'c@x', NULL, 0),
           ('u4', 'd@x', 1, 0);",
    );
    fake.key_file(env.dir.path(), ACCOUNT_KEY);
    fake.page_rows(2);
    fake.incomplete_polls(1);
    let source = format!(
        "{{id: bq, kind: bigquery, project: sluice-test, credentials_file: sa.json, location: US, endpoint: \"{}\"}}",
        fake.url()
    );
    let yaml = consent_preferences_workspace("bq");
    let ws = env.workspace_with_source(&source, &yaml);
    (env, fake, ws)
}

#[test]
fn full_sync_then_updates_deletes_and_newly_granted_consent() {
    let (mut env, fake, ws) = setup();
    let r = env.sync(&ws, "users");
    assert_eq!(r.extracted, 4);
    let ads = mapping(&r, "ads");
    assert_eq!((ads.added, ads.withheld_by_consent, ads.delivered), (2, 2, 2));
    assert_eq!(ads.withheld_by_category["C0004"], 2);
    assert_eq!(env.ids("/ads", "added"), ids(&["u1", "u4"]));
    assert_eq!(env.ids("/all", "added"), ids(&["u1", "u2", "u3", "u4"]));
    let item = env.rx.items("/ads").into_iter().find(|i| i["id"] == "u1").unwrap();
    assert_eq!(item["data"]["ads"], true, "typed values reach the destination: {item}");
    assert_eq!(item["data"]["email"], "a@x");

    fake.sql(
        "UPDATE consent_preferences SET email = 'a2@x' WHERE userid = 'u1';
         DELETE FROM consent_preferences WHERE userid = 'u4';
         UPDATE consent_preferences SET ads = 1 WHERE userid = 'u2';",
    );
    env.rx.clear();
    let r = env.sync(&ws, "users");
    let ads = mapping(&r, "ads");
    assert_eq!((ads.added, ads.updated, ads.deleted, ads.withheld_by_consent), (1, 1, 1, 1), "{ads:?}");
    assert_eq!(env.ids("/ads", "added"), ids(&["u2"]), "consent granted: sent as added");
    assert_eq!(env.ids("/ads", "updated"), ids(&["u1"]));
    assert_eq!(env.ids("/ads", "deleted"), ids(&["u4"]));
    let all = mapping(&r, "all");
    assert_eq!((all.added, all.updated, all.deleted), (0, 2, 1), "{all:?}");

    env.rx.clear();
    let r = env.sync(&ws, "users");
    assert_eq!(mapping(&r, "ads").unchanged, 2);
    assert!(env.rx.requests().is_empty(), "a re-sync without changes sends nothing");
}

#[test]
fn bad_sql_and_a_write_stop_the_sync_with_bigquerys_message() {
    let (mut env, fake, ws) = setup();
    let mut bad = ws.clone();
    bad.file.models[0].sql = "select USERID, email, Ads, Analytics from consent_preferences wher 1".into();
    let e = sluice_engine::sync_model(&mut env.store, &bad, "users", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("Syntax error") && e.contains("invalidQuery") && e.contains("column"), "{e}");
    bad.file.models[0].sql = "UPDATE consent_preferences SET ads = 1".into();
    let e = sluice_engine::sync_model(&mut env.store, &bad, "users", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("UPDATE statement"), "{e}");
    assert!(!fake.log().iter().any(|l| l.ends_with("/queries")), "nothing but dry runs reached BigQuery");
    assert!(env.rx.requests().is_empty());
}
