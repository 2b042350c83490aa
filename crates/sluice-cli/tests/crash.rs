//! Crash safety: SIGKILL `sluice sync` in the middle of a large PostgreSQL model; the next sync
//! completes, nothing undelivered is lost, and the checkpoint stays consistent.

mod common;
use common::apply;
use sluice_testkit::{pg_url, unique_name, Receiver};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const ROWS: usize = 30_000;

#[test]
fn sigkill_mid_sync_loses_nothing() {
    let schema = unique_name("crash");
    let mut pg = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.big AS
           SELECT g::bigint AS id, 'user' || g || '@example.com' AS email, (g % 3 <> 0) AS ads
           FROM generate_series(1, {ROWS}) g;"
    ))
    .unwrap();
    let rx = Receiver::start();
    rx.set_delay(Duration::from_millis(5));
    let dir = tempfile::tempdir().unwrap();
    apply(
        dir.path(),
        &format!(
            "sources: [{{id: pg, kind: postgres, url: \"{}\", allow_privileged_role: true}}]
destinations:
  - {{id: crm, kind: webhook, settings: {{url: \"{}/crm\", batch_size: 200}}}}
  - {{id: ads, kind: webhook, settings: {{url: \"{}/ads\", batch_size: 200}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: big, source: pg, sql: select * from {schema}.big, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: crm}}, {{destination: ads}}]}}
",
            pg_url(),
            rx.url(),
            rx.url()
        ),
    );
    let sluice = |args: &[&str]| common::sluice(dir.path(), args);

    let mut child = common::spawn_quiet(dir.path(), &["sync", "big"]);
    let t = Instant::now();
    while rx.accepted().len() < 40 {
        assert!(t.elapsed() < Duration::from_secs(60), "sync made no progress");
        assert!(child.try_wait().unwrap().is_none(), "sync finished before it could be killed; make the model larger");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = rx.accepted().len();

    let out = sluice(&["sync", "big", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "ok");

    let count = |path: &str| {
        let mut seen: HashMap<String, u32> = HashMap::new();
        for item in rx.items(path) {
            *seen.entry(item["id"].as_str().unwrap().to_string()).or_default() += 1;
        }
        seen
    };
    let crm = count("/crm");
    let ads = count("/ads");
    assert_eq!(crm.len(), ROWS, "every record reached crm");
    assert_eq!(ads.len(), ROWS - ROWS / 3, "every consented record reached ads");
    for id in ads.keys() {
        assert_ne!(id.parse::<u64>().unwrap() % 3, 0, "withheld record {id} reached ads");
    }
    // at-least-once: only what was in flight when the process died is sent twice
    let dups = crm.values().chain(ads.values()).filter(|n| **n > 1).count();
    assert!(dups <= 2 * 200, "{dups} duplicates: more than the batches in flight ({before} requests before the kill)");

    let o = sluice(&["overview", "big", "--json"]);
    let o: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o["models"][0]["runs"][1]["status"], "interrupted", "the killed run shows as interrupted");

    // the checkpoint is consistent: a third sync has nothing to send
    let out = sluice(&["sync", "big", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for m in report["mappings"].as_array().unwrap() {
        assert_eq!((m["added"].as_u64(), m["updated"].as_u64(), m["delivered"].as_u64()), (Some(0), Some(0), Some(0)));
    }
}
