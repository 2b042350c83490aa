//! `sluice privacy`: suppress, unsuppress and delete people on the state folder, beside a
//! running `sluice serve` that follows without a restart; `--json`, exit codes, clear errors.

mod common;
use common::{apply, sluice};
use serde_json::{json, Value};
use sluice_testkit::{Receiver, Reply};
use std::time::{Duration, Instant};

fn setup(rx: &Receiver) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("w.db"))
        .unwrap()
        .execute_batch("create table people(id text, email text); insert into people values ('u1','a@x'),('u2','b@x'),('u3','c@x');")
        .unwrap();
    apply(
        dir.path(),
        &format!(
            "sources: [{{id: dwh, kind: sqlite, path: w.db}}, {{id: web, kind: events, write_key: wk}}]
destinations:
  - {{id: crm, name: CRM, kind: webhook, settings: {{url: \"{u}/crm\", retry_initial_ms: 5, retry_max_ms: 10, max_attempts: 2}}}}
  - {{id: seg, name: Seg, kind: connections, settings: {{url: \"{u}/seg\", write_key: wk2}}}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}
",
            u = rx.url()
        ),
    );
    dir
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {} / {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn suppress_withholds_records_delete_reaches_the_webhook_and_errors_are_clear() {
    let rx = Receiver::start();
    let dir = setup(&rx);
    let d = dir.path();
    assert!(sluice(d, &["sync", "people"]).status.success());
    rx.clear();

    let out = sluice(d, &["privacy", "suppress", "u2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json_of(&out);
    assert_eq!((r["regulationType"].as_str(), r["overallStatus"].as_str()), (Some("SUPPRESS_ONLY"), Some("FINISHED")));
    // withheld in Reverse ETL under its own key; the contract's keys keep their meaning
    let out = sluice(d, &["sync", "people", "--json"]);
    let m = &json_of(&out)["mappings"][0];
    assert_eq!(
        (m["withheld_by_privacy_request"].as_u64(), m["withheld_by_consent"].as_u64()),
        (Some(1), Some(0)),
        "{m}"
    );

    // delete: foreground, per-destination table in JSON, the webhook gets the ITEM with its reason
    let out = sluice(d, &["privacy", "delete", "u1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json_of(&out);
    assert_eq!(r["regulationType"], "SUPPRESS_WITH_DELETE");
    let status: Vec<(String, String)> = r["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().into(), d["status"].as_str().unwrap().into()))
        .collect();
    assert_eq!(status, vec![("crm".into(), "FINISHED".into()), ("seg".into(), "NOT_SUPPORTED".into())]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("crm: 1 deleted, FINISHED"), "progress lines on stderr");
    assert_eq!(
        rx.items("/crm"),
        vec![json!({"action": "deleted", "id": "u1", "data": {}, "reason": "privacy_request"})]
    );

    // a destination that is down: RUNNING when the wait ends, exit 3; status says so
    rx.answer_path("/crm", Reply::Status(503));
    let out = sluice(d, &["privacy", "delete", "u3", "--no-suppress", "--wait", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("RUNNING"));
    let id = json_of(&sluice(d, &["privacy", "list", "--json"]))["regulations"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(sluice(d, &["privacy", "status", &id]).status.code(), Some(3));

    // clear errors, exit 2, the field named
    let out = sluice(d, &["privacy", "suppress", "a\u{1}b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("subjectIds[0]"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!sluice(d, &["privacy", "delete"]).status.success(), "ids are required");
    let out = sluice(d, &["privacy", "status", "reg_nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no privacy request `reg_nope`"));

    // audited, by the CLI's user
    let log = json_of(&sluice(d, &["audit-log", "--json"]));
    let ours: Vec<&Value> =
        log["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "privacy_request").collect();
    assert_eq!(ours.len(), 3);
    assert!(ours.iter().all(|e| e["actor"].as_str().unwrap().starts_with("cli")));
}

#[test]
fn a_running_server_drops_a_person_the_cli_suppressed_and_takes_them_back_after_unsuppress() {
    let rx = Receiver::start();
    let dir = setup(&rx);
    let d = dir.path();
    let (mut server, url) = common::serve(d);
    let post = |mid: &str| {
        ureq::post(&format!("{url}/v1/track"))
            .set("Authorization", "Basic d2s6")
            .send_json(json!({"userId": "u5", "event": "E", "messageId": mid}))
            .unwrap()
            .status()
    };
    assert!(sluice(d, &["privacy", "suppress", "u5"]).status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(post("gone"), 200, "answered like Segment");
    assert!(sluice(d, &["privacy", "unsuppress", "u5"]).status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(post("back"), 200);
    let t = Instant::now();
    let mids = loop {
        let dbg = json_of(&sluice(d, &["debugger", "web", "--json"]));
        let mids: Vec<String> = dbg["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"]["messageId"].as_str().unwrap().into())
            .collect();
        if !mids.is_empty() || t.elapsed() > Duration::from_secs(10) {
            break mids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(mids, vec!["back".to_string()], "the suppressed event was never stored");
    let ov = json_of(&sluice(d, &["stream-overview", "--json"]));
    assert_eq!(ov["dropped_suppressed"], 1, "{ov}");
    let _ = server.kill();
    let _ = server.wait();
}
