//! A SaaS destination through the real binary: `apply` a workspace whose destination is
//! `braze` (its key from the environment, sealed at rest), then `sync --json` a SQLite model
//! with consent into the Braze fake of sluice-testkit: consented records arrive as Braze
//! attributes, the withheld one never reaches Braze, the one Braze refuses is reported failed.

mod common;
use common::sluice;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::braze::{self, API_KEY};

#[test]
fn apply_and_sync_deliver_to_braze_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let fake = braze::start();
    fake.script(Fault::RejectRecord("u3".into()));
    rusqlite::Connection::open(d.path().join("wh.db"))
        .unwrap()
        .execute_batch(
            "create table prefs(userid text, email text, ads);
             insert into prefs values ('u1', 'a@x.com', 1), ('u2', 'b@x.com', 0), ('u3', 'c@x.com', 'true');",
        )
        .unwrap();
    std::env::set_var("BRAZE_KEY_FOR_CLI_TEST", API_KEY);
    let yaml = format!(
        "sources: [{{id: dwh, kind: sqlite, path: ./wh.db}}]
destinations:
  - {{id: crm, kind: braze, settings: {{endpoint: \"{}\", api_key: \"${{BRAZE_KEY_FOR_CLI_TEST}}\", max_requests_per_second: 20, retry_initial_ms: 10}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [crm]}}]
models:
  - {{id: users, source: dwh, sql: 'select userid, email, ads from prefs', unique_id: userid, consent: {{C0004: ads}},
     mappings: [{{destination: crm}}]}}
",
        fake.url()
    );
    std::fs::write(d.path().join("sluice.yaml"), yaml).unwrap();
    let o = sluice(d.path(), &["apply", "-f", "sluice.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sluice(d.path(), &["sync", "users", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let r: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {}", String::from_utf8_lossy(&o.stderr)));
    let m = &r["mappings"][0];
    assert_eq!(
        (m["extracted"].as_u64(), m["delivered"].as_u64(), m["withheld_by_consent"].as_u64(), m["failed"].as_u64()),
        (Some(3), Some(1), Some(1), Some(1)),
        "{r}"
    );
    assert!(r.to_string().contains("not a valid email"), "Braze's reason is reported: {r}");
    assert_eq!(fake.held(), vec!["u1"]);
    assert!(!fake.ever_received().contains(&"u2".to_string()), "the withheld record never reached Braze");
    assert_eq!(fake.attributes("u1").unwrap()["email"], "a@x.com");
    let files = walk(&d.path().join(".sluice"));
    assert!(!files.is_empty(), "the state folder is .sluice");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(API_KEY), "the Braze key is sealed at rest: {f:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
