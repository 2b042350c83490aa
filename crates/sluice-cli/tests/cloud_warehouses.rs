//! BigQuery and Databricks sources through the real binary (`apply`, `preview --json`,
//! `sync --json`), against the fakes of sluice-testkit; Azure Synapse refused by `apply`.

mod common;
use common::sluice;
use sluice_testkit::bigquery::{FakeBigQuery, ACCOUNT_KEY};
use sluice_testkit::databricks::{FakeDatabricks, TOKEN, WAREHOUSE_ID};
use sluice_testkit::Receiver;

fn json(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let o = sluice(dir, args);
    assert!(o.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn models(source: &str, url: &str) -> String {
    format!(
        "destinations: [{{id: hook, kind: webhook, settings: {{url: \"{url}/hook\", batch_size: 10}}}}]
consent_categories: [{{id: C0004, name: Advertising, destinations: [hook]}}]
models:
  - {{id: users, source: {source}, sql: 'select userid, email, ads from prefs', unique_id: userid, consent: {{C0004: ads}},
     mappings: [{{destination: hook}}]}}
"
    )
}

#[test]
fn bigquery_and_databricks_preview_and_sync_from_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let bq = FakeBigQuery::start(&d.path().join("bq.db"));
    bq.sql(
        "CREATE TABLE prefs (userid STRING, email STRING, ads BOOL);
            INSERT INTO prefs VALUES ('u1', 'a@x', 1), ('u2', 'b@x', 0);",
    );
    bq.key_file(d.path(), ACCOUNT_KEY);
    let dbx = FakeDatabricks::start(&d.path().join("dbx.db"));
    dbx.sql(
        "CREATE TABLE prefs (userid BIGINT, email STRING, ads BOOLEAN);
             INSERT INTO prefs VALUES (7, 'c@x', 1), (8, 'd@x', NULL);",
    );
    std::env::set_var("DBX_TOKEN_FOR_CLI_TEST", TOKEN);
    let sources = format!(
        "sources:
  - {{id: bq, kind: bigquery, project: sluice-test, credentials_file: sa.json, endpoint: \"{}\"}}
  - {{id: dbx, kind: databricks, host: \"{}\", token: \"${{DBX_TOKEN_FOR_CLI_TEST}}\", warehouse_id: {WAREHOUSE_ID}}}
",
        bq.url(),
        dbx.url()
    );
    for source in ["bq", "dbx"] {
        std::fs::write(d.path().join("sluice.yaml"), format!("{sources}{}", models(source, rx.url()))).unwrap();
        let o = sluice(d.path(), &["--state", source, "apply", "-f", "sluice.yaml"]);
        assert!(o.status.success(), "{source}: {}", String::from_utf8_lossy(&o.stderr));
        let p = json(d.path(), &["--state", source, "preview", "users", "--json"]);
        assert_eq!(p["columns"], serde_json::json!(["userid", "email", "ads"]), "{source}: {p}");
        assert_eq!(p["rows"].as_array().map(Vec::len), Some(2), "{source}: {p}");
        assert!(p["rows"][0]["ads"].is_boolean(), "{source}: typed values: {p}");
        let r = json(d.path(), &["--state", source, "sync", "users", "--json"]);
        let m = &r["mappings"][0];
        assert_eq!(
            (m["extracted"].as_u64(), m["delivered"].as_u64(), m["withheld_by_consent"].as_u64()),
            (Some(2), Some(1), Some(1)),
            "{source}: {r}"
        );
    }
    let mut ids: Vec<String> = rx.items("/hook").iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["7", "u1"]);
    let mut files = 0;
    for f in std::fs::read_dir(d.path().join("dbx")).unwrap().flatten().filter(|f| f.path().is_file()) {
        files += 1;
        let bytes = std::fs::read(f.path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(TOKEN), "the Databricks token is sealed at rest: {f:?}");
    }
    assert!(files >= 2, "the state folder was read");
}

#[test]
fn azure_synapse_is_refused_by_apply_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("sluice.yaml"),
        "sources: [{id: az, kind: synapse, host: ws.sql.azuresynapse.net, database: dw}]\n",
    )
    .unwrap();
    let o = sluice(d.path(), &["apply", "-f", "sluice.yaml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && o.status.code() != Some(101), "{err}");
    assert!(err.contains("`synapse`") && err.contains("not supported yet") && err.contains("(source `az`)"), "{err}");
}
