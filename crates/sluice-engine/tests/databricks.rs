//! Reverse ETL from Databricks: the engine against the Databricks fake of sluice-testkit (a
//! real HTTP server speaking the SQL Statement Execution API 2.0), delivering to a real HTTP
//! receiver.

mod common;
use common::*;
use sluice_testkit::databricks::{FakeDatabricks, TOKEN, WAREHOUSE_ID};

fn setup() -> (Env, FakeDatabricks, sluice_engine::Workspace) {
    let env = Env::new("");
    let fake = FakeDatabricks::start(&env.dir.path().join("dbx.db"));
    fake.sql(
        "CREATE TABLE consent_preferences (userid BIGINT, email STRING, ads BOOLEAN, analytics BOOLEAN);
         INSERT INTO consent_preferences VALUES (1, 'a@x', 1, 1), (2, 'b@x', 0, 1), (3, 'c@x', NULL, 0),
           (10, 'd@x', 1, 0);",
    );
    fake.chunk_rows(2);
    fake.pending_polls(1);
    // the token comes from the environment, as users keep secrets
    std::env::set_var("SLUICE_DBX_TOKEN_FOR_TESTS", TOKEN);
    let source = format!(
        "{{id: dbx, kind: databricks, host: \"{}\", token: \"${{SLUICE_DBX_TOKEN_FOR_TESTS}}\", warehouse_id: {WAREHOUSE_ID}, catalog: main, schema: crm}}",
        fake.url()
    );
    let yaml = consent_preferences_workspace("dbx");
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
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "10"]), "integer ids are sent in decimal");
    assert_eq!(env.ids("/all", "added"), ids(&["1", "10", "2", "3"]));
    let item = env.rx.items("/ads").into_iter().find(|i| i["id"] == "1").unwrap();
    assert_eq!((item["data"]["Ads"].clone(), item["data"]["USERID"].clone()), (true.into(), 1.into()), "{item}");
    assert_eq!(fake.leaked_auth(), 0);
    assert!(fake.log().iter().filter(|l| l.starts_with("GET /external/")).count() >= 2, "scanned chunk by chunk");

    fake.sql(
        "UPDATE consent_preferences SET email = 'a2@x' WHERE userid = 1;
         DELETE FROM consent_preferences WHERE userid = 10;
         UPDATE consent_preferences SET ads = 1 WHERE userid = 2;",
    );
    env.rx.clear();
    let r = env.sync(&ws, "users");
    let ads = mapping(&r, "ads");
    assert_eq!((ads.added, ads.updated, ads.deleted, ads.withheld_by_consent), (1, 1, 1, 1), "{ads:?}");
    assert_eq!(env.ids("/ads", "added"), ids(&["2"]), "consent granted: sent as added");
    assert_eq!(env.ids("/ads", "updated"), ids(&["1"]));
    assert_eq!(env.ids("/ads", "deleted"), ids(&["10"]));
    let all = mapping(&r, "all");
    assert_eq!((all.added, all.updated, all.deleted), (0, 2, 1), "{all:?}");

    env.rx.clear();
    let r = env.sync(&ws, "users");
    assert_eq!(mapping(&r, "ads").unchanged, 2);
    assert!(env.rx.requests().is_empty(), "a re-sync without changes sends nothing");
}

#[test]
fn bad_sql_a_write_and_a_bad_token_stop_the_sync_with_a_clear_message() {
    let (mut env, fake, ws) = setup();
    let mut bad = ws.clone();
    bad.file.models[0].sql = "select USERID, email, Ads, Analytics from consent_preferences wher 1".into();
    let e = sluice_engine::sync_model(&mut env.store, &bad, "users", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("PARSE_SYNTAX_ERROR") && e.contains("line 1"), "{e}");
    bad.file.models[0].sql = "MERGE INTO consent_preferences USING x ON 1 = 1 WHEN MATCHED THEN DELETE".into();
    let e = sluice_engine::sync_model(&mut env.store, &bad, "users", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("starts with `MERGE`"), "{e}");
    let mut wrong = ws.clone();
    if let sluice_core::SourceSettings::Databricks(d) = &mut wrong.file.sources.last_mut().unwrap().settings {
        d.token = "dapi-wrong".into();
    }
    let e = sluice_engine::sync_model(&mut env.store, &wrong, "users", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("Invalid access token") && !e.contains("dapi-wrong"), "{e}");
    assert!(fake.bodies().iter().all(|b| !b["statement"].as_str().unwrap_or("").contains("MERGE")));
    assert!(env.rx.requests().is_empty());
}
