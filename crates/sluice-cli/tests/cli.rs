//! The CLI contract of SPEC §7, through the real binary.

use serde_json::Value;
use sluice_testkit::Receiver;
use std::path::Path;
mod common;
use common::sluice;
use std::process::Command;

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = sluice(dir, args);
    assert!(
        o.status.success(),
        "sluice {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let o = sluice(dir, args);
    assert!(!o.status.success(), "sluice {args:?} should fail: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn setup(rx: &Receiver) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(d.path().join("warehouse.db"))
        .unwrap()
        .execute_batch(
            "create table CONSENT_PREFERENCES(USERID integer, email text, Ads, Analytics);
             insert into CONSENT_PREFERENCES values (1,'a@x',true,true),(2,'b@x',false,true),(3,'c@x',null,'TRUE');",
        )
        .unwrap();
    let yaml = format!(
        r#"workspace: {{ policy: all, unmapped_models: allow, missing_consent: allow }}
sources:
  - {{ id: dwh, kind: sqlite, path: ./warehouse.db }}
  - {{ id: web, kind: events, write_key: wk_123 }}
destinations:
  - id: braze
    name: Braze
    kind: webhook
    enabled: true
    settings: {{ url: "{url}/braze", batch_size: 100, headers: {{ Authorization: "Bearer ${{BRAZE_TOKEN}}" }} }}
  - {{ id: crm, kind: file, settings: {{ path: ./out/crm.jsonl }} }}
consent_categories:
  - {{ id: C0004, name: Advertising, destinations: [braze], enabled: true }}
  - {{ id: C0002, name: Analytics, destinations: [] }}
models:
  - id: users
    source: dwh
    sql: select USERID, email, Ads, Analytics from CONSENT_PREFERENCES
    unique_id: USERID
    consent: {{ C0004: Ads, C0002: Analytics }}
    mappings:
      - {{ destination: braze, on: [added, updated, deleted] }}
      - {{ destination: crm, fields: {{ mail: email }} }}
"#,
        url = rx.url()
    );
    std::fs::write(d.path().join("sluice.yaml"), yaml).unwrap();
    d
}

#[test]
fn apply_preview_sync_overview_contract() {
    let rx = Receiver::start();
    let d = setup(&rx);
    let dir = d.path();
    // an unset ${VAR} is an error that names it
    let e = fails(dir, &["apply", "-f", "sluice.yaml"]);
    assert!(e.contains("BRAZE_TOKEN"), "{e}");
    std::env::set_var("BRAZE_TOKEN", "s3cret");
    let out = ok(dir, &["apply", "-f", "sluice.yaml", "--dry-run"]);
    assert!(out.contains("+ create destination braze"), "{out}");
    assert!(out.contains("Dry run"), "{out}");
    let e = fails(dir, &["preview", "users"]);
    assert!(e.contains("no workspace applied"), "{e}");
    let out = ok(dir, &["apply", "-f", "sluice.yaml"]);
    assert!(out.contains("+ create model users") && out.contains("+ create consent category C0004"), "{out}");
    assert!(ok(dir, &["apply", "-f", "sluice.yaml"]).contains("No changes"));

    let p = json(&ok(dir, &["preview", "users", "--json"]));
    assert_eq!(p["columns"], serde_json::json!(["USERID", "email", "Ads", "Analytics"]));
    assert_eq!(p["rows"].as_array().unwrap().len(), 3);
    assert_eq!(p["rows"][0]["email"], "a@x");

    let s = json(&ok(dir, &["sync", "users", "--json"]));
    let m = s["mappings"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    let braze = m.iter().find(|m| m["destination"] == "braze").unwrap();
    for k in ["extracted", "rejected", "added", "updated", "deleted", "withheld_by_consent", "delivered", "failed"] {
        assert!(braze[k].is_u64(), "missing integer {k}");
    }
    assert_eq!(braze["status"], "ok");
    assert_eq!((braze["delivered"].as_u64(), braze["withheld_by_consent"].as_u64()), (Some(1), Some(2)));
    assert_eq!(braze["withheld_by_category"]["C0004"], 2);
    let req = &rx.accepted()[0];
    assert_eq!(req.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(req.body["batch"][0]["id"], "1");
    let crm = std::fs::read_to_string(dir.join("out/crm.jsonl")).unwrap();
    assert_eq!(crm.lines().count(), 3);
    assert!(crm.contains(r#""data":{"mail":"a@x"}"#), "{crm}");

    // --state before or after the subcommand, and SLUICE_STATE
    let o = ok(dir, &["--state", ".sluice", "overview", "--json"]);
    assert_eq!(json(&o)["models"][0]["last_run"]["mappings"][0]["delivered"], 1);
    ok(dir, &["overview", "users", "--state", ".sluice"]);
    let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["overview"])
        .env("SLUICE_STATE", dir.join(".sluice"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("braze"));
    let u = json(&ok(dir, &["usage", "--json"]));
    let braze_usage: i64 = u["usage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["destination"] == "braze")
        .map(|r| r["records"].as_i64().unwrap())
        .sum();
    assert_eq!(braze_usage, 1, "withheld records are not metered");

    // a second sync sends nothing new
    let s = json(&ok(dir, &["sync", "users", "--json"]));
    assert!(s["mappings"].as_array().unwrap().iter().all(|m| m["delivered"] == 0));
}

fn apply_err(edit: impl Fn(String) -> String) -> String {
    let rx = Receiver::start();
    let d = setup(&rx);
    let path = d.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("${BRAZE_TOKEN}", "t");
    std::fs::write(&path, edit(text)).unwrap();
    fails(d.path(), &["apply", "-f", "sluice.yaml"])
}

#[test]
fn bad_workspaces_name_the_thing_at_fault() {
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|t| t.replace("name: Advertising", "name: Advertising and Marketing")),
            "consent_categories[0] (C0004).name",
        ),
        (Box::new(|t| t.replace("id: C0002", "id: C0004")), "duplicate category id `C0004`"),
        (Box::new(|t| t.replace("id: C0002", "id: 2nd")), "must not start with a digit"),
        (Box::new(|t| t.replace("destinations: [braze]", "destinations: [brazer]")), "unknown destination `brazer`"),
        (Box::new(|t| t.replace("C0004: Ads", "C0004: Adz")), "models[0] (users).consent.C0004: unknown column `Adz`"),
        (Box::new(|t| t.replace("unique_id: USERID", "unique_id: uid")), "models[0] (users).unique_id"),
        (Box::new(|t| t.replace("from CONSENT_PREFERENCES", "form CONSENT_PREFERENCES")), "models[0] (users).sql"),
        (Box::new(|t| t.replace("./warehouse.db", "./missing.db")), "missing.db"),
        (Box::new(|t| t.replace("batch_size: 100", "batch_size: 0")), "destinations[0] (braze).settings.batch_size"),
        (Box::new(|t| t.replace("enabled: true\n", "enabled: true\n    colour: red\n")), "unknown field `colour`"),
        (Box::new(|t| t.replace("policy: all", "policy: most")), "unknown variant `most`"),
        (
            Box::new(|t| t.replace("C0002: Analytics }", "C0002: Analytics, C9: Ads }")),
            "unknown consent category id `C9`",
        ),
    ];
    for (edit, want) in cases {
        let e = apply_err(edit);
        assert!(e.contains(want), "expected `{want}` in: {e}");
    }
}

#[test]
fn quickstart_twice_sends_nothing_new_the_second_time() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), &["quickstart"]);
    for w in ["Braze", "Google Ads", "Amplitude", "Salesforce", "Withheld by consent", "no Advertising consent"] {
        assert!(out.contains(w), "quickstart output lacks {w}: {out}");
    }
    let o = json(&ok(d.path(), &["overview", "--json"]));
    let models = o["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    let first: u64 = models
        .iter()
        .flat_map(|m| m["last_run"]["mappings"].as_array().unwrap().clone())
        .map(|m| m["delivered"].as_u64().unwrap())
        .sum();
    let withheld: u64 = models
        .iter()
        .flat_map(|m| m["last_run"]["mappings"].as_array().unwrap().clone())
        .map(|m| m["withheld_by_consent"].as_u64().unwrap())
        .sum();
    assert!(first > 1000 && withheld > 1000, "{first} {withheld}");
    let salesforce = std::fs::read_to_string(d.path().join("out/salesforce.jsonl")).unwrap();
    assert_eq!(salesforce.lines().count(), 3000, "the unmapped destination gets everyone");
    let out = ok(d.path(), &["quickstart"]);
    assert!(out.contains("re-sync: 0 record(s) sent"), "{out}");
    let o = json(&ok(d.path(), &["overview", "--json"]));
    let second: u64 = o["models"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["last_run"]["mappings"].as_array().unwrap().clone())
        .map(|m| m["delivered"].as_u64().unwrap())
        .sum();
    assert_eq!(second, 0);
    assert_eq!(std::fs::read_to_string(d.path().join("out/salesforce.jsonl")).unwrap().lines().count(), 3000);
}

#[test]
fn r13_sync_json_counts_deletes_on_withdrawal_and_apply_shows_the_change() {
    let rx = Receiver::start();
    let d = setup(&rx);
    let dir = d.path();
    std::env::set_var("BRAZE_TOKEN", "s3cret");
    ok(dir, &["apply", "-f", "sluice.yaml"]);
    let yaml = std::fs::read_to_string(dir.join("sluice.yaml")).unwrap();
    let yaml = yaml.replace(
        "{ destination: braze, on: [added, updated, deleted] }",
        "{ destination: braze, on: [added, updated, deleted], on_withdrawal: delete }",
    );
    std::fs::write(dir.join("sluice.yaml"), &yaml).unwrap();
    let plan = ok(dir, &["apply", "-f", "sluice.yaml", "--dry-run"]);
    assert!(plan.contains("model users") && plan.contains("mappings"), "{plan}");
    ok(dir, &["apply", "-f", "sluice.yaml"]);
    let s = json(&ok(dir, &["sync", "users", "--json"]));
    assert_eq!(s["mappings"][0]["added"], 1, "{s}");
    // user 1 withdraws advertising
    rusqlite::Connection::open(dir.join("warehouse.db"))
        .unwrap()
        .execute_batch("update CONSENT_PREFERENCES set Ads = false where USERID = 1")
        .unwrap();
    rx.clear();
    let s = json(&ok(dir, &["sync", "users", "--json"]));
    let braze = s["mappings"].as_array().unwrap().iter().find(|m| m["destination"] == "braze").unwrap().clone();
    assert_eq!(
        (&braze["deleted"], &braze["deleted_on_withdrawal"], &braze["delivered"], &braze["withheld_by_consent"]),
        (&Value::from(1), &Value::from(1), &Value::from(1), &Value::from(3)),
        "{braze}"
    );
    let items = rx.items("/braze");
    assert_eq!(
        items,
        vec![serde_json::json!({"action": "deleted", "id": "1", "data": {}, "reason": "consent_withdrawn"})]
    );
    let crm = s["mappings"].as_array().unwrap().iter().find(|m| m["destination"] == "crm").unwrap().clone();
    assert_eq!(crm["deleted_on_withdrawal"], 0, "{crm}");
    let table = ok(dir, &["overview", "users"]);
    assert!(table.contains("1 deleted because consent was withdrawn"), "{table}");
}
