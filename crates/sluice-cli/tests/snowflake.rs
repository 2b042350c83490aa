//! The CLI contract of SPEC §7 on a Snowflake source (`fakesnow -s`): apply, preview --json,
//! sync --json, a re-sync, bad SQL exiting non-zero with Snowflake's message; the password is
//! sealed in the state.

use serde_json::Value;
use sluice_testkit::fakesnow::{FakeSnow, DATABASE, SCHEMA};
use sluice_testkit::Receiver;
mod common;
use common::sluice;

fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let o = sluice(dir, args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn apply_preview_sync_on_snowflake() {
    let fs = FakeSnow::start();
    fs.exec("CREATE TABLE CONSENT_PREFERENCES (USERID int, email varchar, CONSENT_OBJ variant)");
    fs.exec("INSERT INTO CONSENT_PREFERENCES SELECT 1, 'a@x', PARSE_JSON('{\"consent\":{\"cookie\":{\"Advertising\":true}}}')");
    fs.exec("INSERT INTO CONSENT_PREFERENCES SELECT 2, 'b@x', PARSE_JSON('{\"consent\":{\"cookie\":{\"Advertising\":false}}}')");
    fs.exec("INSERT INTO CONSENT_PREFERENCES SELECT 10, 'c@x', PARSE_JSON('{}')");
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::env::set_var("SLUICE_CLI_SNOWFLAKE_PASSWORD", "sn0wfl4ke-pw");
    let yaml = format!(
        r#"sources:
  - id: snow
    kind: snowflake
    account: test
    user: sluice
    password: "${{SLUICE_CLI_SNOWFLAKE_PASSWORD}}"
    database: {DATABASE}
    schema: {SCHEMA}
    endpoint: "{}"
destinations:
  - {{ id: braze, kind: webhook, settings: {{ url: "{}/braze", batch_size: 100 }} }}
consent_categories:
  - {{ id: C0004, name: Advertising, destinations: [braze] }}
models:
  - id: users
    source: snow
    sql: select USERID, email, CAST(CONSENT_OBJ:consent.cookie.Advertising as Boolean) as Ads from CONSENT_PREFERENCES
    unique_id: USERID
    consent: {{ C0004: Ads }}
    mappings: [{{ destination: braze }}]
"#,
        fs.url(),
        rx.url()
    );
    std::fs::write(dir.join("sluice.yaml"), &yaml).unwrap();
    let (ok, out, err) = run(dir, &["apply", "-f", "sluice.yaml"]);
    assert!(ok, "{out}{err}");
    let state = std::fs::read(dir.join(".sluice/state.db")).unwrap();
    assert!(!state.windows(12).any(|w| w == b"sn0wfl4ke-pw"), "the password is sealed at rest");

    let (ok, out, err) = run(dir, &["preview", "users", "--json"]);
    assert!(ok, "{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["columns"], serde_json::json!(["USERID", "EMAIL", "ADS"]));
    assert_eq!(p["rows"].as_array().unwrap().len(), 3);

    let (ok, out, err) = run(dir, &["sync", "users", "--json"]);
    assert!(ok, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    let m = &s["mappings"][0];
    assert_eq!(
        (m["status"].as_str(), m["extracted"].as_u64(), m["delivered"].as_u64()),
        (Some("ok"), Some(3), Some(1))
    );
    assert_eq!(m["withheld_by_category"]["C0004"], 2);
    assert_eq!(rx.accepted()[0].body["batch"][0]["id"], "1", "integer ids are sent in decimal");

    let (ok, out, _) = run(dir, &["sync", "users", "--json"]);
    assert!(ok);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["mappings"][0]["delivered"], 0, "a re-sync sends nothing new");

    std::fs::write(dir.join("sluice.yaml"), yaml.replace("from CONSENT_PREFERENCES", "from NO_SUCH_TABLE")).unwrap();
    let (ok, _, err) = run(dir, &["apply", "-f", "sluice.yaml"]);
    assert!(!ok && err.contains("NO_SUCH_TABLE") && err.contains("models"), "names the model and the table: {err}");
}
