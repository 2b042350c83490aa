//! Reverse ETL from Snowflake, as `fakesnow -s` serves it over the connector protocol: the
//! seed's two sample models exactly as written for Snowflake, a full sync and a re-sync with
//! updates, deletes and newly granted consent, delivered to a real HTTP receiver; bad SQL.

mod common;
use common::*;
use sluice_testkit::fakesnow::{FakeSnow, DATABASE, SCHEMA};

/// The seed's first sample model (one column per category), verbatim.
const COLUMNS: &str = "select
  USERID,
  name,
  email,
  distinctid,
  Ads,
  Personalization,
  Analytics,

from CONSENT_PREFERENCES;";

/// The seed's second sample model (one blob column), verbatim.
const BLOB: &str = "select
  USERID,
  name,
  email,
  distinctid,
  CAST(CONSENT_OBJ:consent.cookie.Advertising as Boolean) as Ads,
  CAST(CONSENT_OBJ:consent.cookie.Personalization as Boolean) as Personalization,
  CAST(CONSENT_OBJ:consent.cookie.Analytics as Boolean) as Analytics,

from CONSENT_PREFERENCES;";

fn consent(ads: &str, pers: &str) -> String {
    let v = |b: &str| if b == "null" { String::new() } else { format!("\"X\":{b}") };
    let mut parts: Vec<String> = Vec::new();
    if ads != "null" {
        parts.push(v(ads).replace('X', "Advertising"));
    }
    if pers != "null" {
        parts.push(v(pers).replace('X', "Personalization"));
    }
    format!("{{\"consent\":{{\"cookie\":{{{}}}}}}}", parts.join(","))
}

/// A row whose consent is in its columns, or (`blob`) only in CONSENT_OBJ.
fn insert(fs: &FakeSnow, blob: bool, id: &str, email: &str, ads: &str, pers: &str) {
    let obj = consent(ads, pers);
    let (ads, pers) = if blob { ("null", "null") } else { (ads, pers) };
    fs.exec(&format!(
        "INSERT INTO CONSENT_PREFERENCES SELECT '{id}', 'N', '{email}', 'd', {ads}, {pers}, true, PARSE_JSON('{obj}')"
    ));
}

fn seeded(blob: bool) -> FakeSnow {
    let fs = FakeSnow::start();
    fs.exec(
        "CREATE TABLE CONSENT_PREFERENCES (USERID varchar, name varchar, email varchar, distinctid varchar,
           Ads boolean, Personalization boolean, Analytics boolean, CONSENT_OBJ variant)",
    );
    insert(&fs, blob, "u1", "a@x", "true", "true");
    insert(&fs, blob, "u2", "b@x", "true", "false");
    insert(&fs, blob, "u3", "c@x", "null", "true");
    insert(&fs, blob, "u4", "d@x", "true", "true");
    fs
}

fn workspace(env: &Env, fs: &FakeSnow, sql: &str) -> sluice_engine::Workspace {
    let yaml = format!(
        "destinations:\n{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0003, name: Personalization, destinations: [ads]}}
models:
  - id: users
    source: snow
    unique_id: USERID
    consent: {{C0004: Ads, C0003: Personalization}}
    sql: |\n{}
    mappings: [{{destination: ads}}]
",
        hook("ads"),
        sql.lines().map(|l| format!("      {l}\n")).collect::<String>()
    );
    std::env::set_var("SLUICE_SNOWFLAKE_PASSWORD_FOR_TESTS", "pw");
    env.workspace_with_source(
        &format!(
            "{{id: snow, kind: snowflake, account: test, user: sluice, password: \"${{SLUICE_SNOWFLAKE_PASSWORD_FOR_TESTS}}\", \
             database: {DATABASE}, schema: {SCHEMA}, warehouse: COMPUTE_WH, endpoint: \"{}\", statement_timeout_secs: 60}}",
            fs.url()
        ),
        &yaml,
    )
}

fn sync_and_resync(sql: &str, blob: bool) {
    let fs = seeded(blob);
    let mut env = Env::new("");
    let ws = workspace(&env, &fs, sql);
    let r = env.sync(&ws, "users");
    let m = mapping(&r, "ads");
    assert_eq!(r.extracted, 4);
    assert_eq!((m.added, m.delivered, m.withheld_by_consent), (2, 2, 2), "{m:?}");
    assert_eq!(env.ids("/ads", "added"), ids(&["u1", "u4"]));
    assert_eq!((m.withheld_by_category["C0003"], m.withheld_by_category["C0004"]), (1, 1));
    assert_eq!(r.consent_warnings["C0004"], 1, "a NULL consent is a validation warning");
    let item = env.rx.items("/ads").into_iter().find(|i| i["id"] == "u1").unwrap();
    assert_eq!(item["data"]["EMAIL"], "a@x");
    assert_eq!(item["data"]["ADS"], true, "booleans stay booleans");

    // u1 changes, u4 is deleted, u2 grants Personalization
    fs.exec("UPDATE CONSENT_PREFERENCES SET email = 'a2@x' WHERE USERID = 'u1'");
    fs.exec("DELETE FROM CONSENT_PREFERENCES WHERE USERID IN ('u4', 'u2')");
    insert(&fs, blob, "u2", "b@x", "true", "true");
    env.rx.clear();
    let r = env.sync(&ws, "users");
    let m = mapping(&r, "ads");
    assert_eq!((m.added, m.updated, m.deleted, m.withheld_by_consent), (1, 1, 1, 1), "{m:?}");
    assert_eq!(env.ids("/ads", "added"), ids(&["u2"]));
    assert_eq!(env.ids("/ads", "updated"), ids(&["u1"]));
    assert_eq!(env.ids("/ads", "deleted"), ids(&["u4"]));
    let item = env.rx.items("/ads").into_iter().find(|i| i["id"] == "u1").unwrap();
    assert_eq!(item["data"]["EMAIL"], "a2@x");

    // nothing changed: nothing is sent
    env.rx.clear();
    let r = env.sync(&ws, "users");
    assert_eq!(mapping(&r, "ads").unchanged, 2);
    assert!(env.rx.requests().is_empty());
}

#[test]
fn seed_model_with_a_column_per_category_syncs_and_resyncs() {
    sync_and_resync(COLUMNS, false);
}

#[test]
fn seed_model_with_a_consent_blob_syncs_and_resyncs() {
    sync_and_resync(BLOB, true);
}

#[test]
fn preview_and_bad_sql_through_the_workspace() {
    let fs = seeded(false);
    let env = Env::new("");
    let ws = workspace(&env, &fs, COLUMNS);
    let mut wh = ws.warehouse("snow").unwrap();
    let p = wh.preview(&ws.model("users").unwrap().sql, 10).unwrap();
    assert_eq!(p.rows.len(), 4);
    assert_eq!(p.columns, ["USERID", "NAME", "EMAIL", "DISTINCTID", "ADS", "PERSONALIZATION", "ANALYTICS"]);
    let mut bad = ws.clone();
    bad.file.models[0].sql = "select USERID from NO_SUCH_TABLE".into();
    let mut store = sluice_state::StateStore::open(&env.dir.path().join(".other")).unwrap();
    let e = sluice_engine::sync_model(&mut store, &bad, "users", &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("NO_SUCH_TABLE") && e.contains("002003"), "the warehouse's message: {e}");
}
