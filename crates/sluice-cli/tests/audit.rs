//! `sluice audit`: the privacy officer's question — after this user withdrew advertising
//! consent, did anything of theirs reach an ad tool?

mod common;
use common::{apply, sluice};
use sluice_testkit::Receiver;

#[test]
fn audit_shows_what_reached_each_destination_and_why() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("w.db"))
        .unwrap()
        .execute_batch(
            "create table people(id text, email text, ads); insert into people values ('u1','a@x',1),('u2','b@x',1);",
        )
        .unwrap();
    apply(
        dir.path(),
        &format!(
            "workspace: {{missing_consent: profile}}
sources: [{{id: dwh, kind: sqlite, path: w.db}}, {{id: web, kind: events, write_key: wk}}]
destinations:
  - {{id: ads, name: Ads, kind: webhook, settings: {{url: \"{u}/ads\"}}}}
  - {{id: crm, name: CRM, kind: webhook, settings: {{url: \"{u}/crm\"}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: crm}}]}}
",
            u = rx.url()
        ),
    );
    assert!(sluice(dir.path(), &["sync", "people"]).status.success());
    rusqlite::Connection::open(dir.path().join("w.db"))
        .unwrap()
        .execute_batch("update people set ads = 0 where id = 'u1'")
        .unwrap();
    assert!(sluice(dir.path(), &["sync", "people"]).status.success());

    let (mut server, url) = common::serve(dir.path());
    let post = |body: serde_json::Value| {
        ureq::post(&format!("{url}/v1/batch")).set("Authorization", "Basic d2s6").send_json(body).unwrap().status()
    };
    assert_eq!(
        post(serde_json::json!({"batch": [
            {"type": "track", "userId": "u1", "event": "Segment Consent Preference Updated", "messageId": "c1",
             "context": {"consent": {"categoryPreferences": {"C0004": false}}}},
            {"type": "page", "userId": "u1", "name": "Pricing", "messageId": "p1"}
        ]})),
        200
    );
    let out = sluice(dir.path(), &["audit", "u1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ads = a["reverse_etl"].as_array().unwrap().iter().find(|r| r["destination"] == "ads").unwrap();
    assert_eq!(ads["holds_a_version"], true, "ads got u1 before the withdrawal");
    assert_eq!(ads["last_sync"], "withheld by consent at the last sync");
    assert_eq!(a["streaming"]["ads"]["routed"], 0, "no event of u1 reached the ad tool after the withdrawal");
    assert_eq!(a["streaming"]["ads"]["withheld_by_consent"], 2);
    assert_eq!(a["streaming"]["crm"]["routed"], 2);
    assert_eq!(a["profile"]["consent"]["C0004"], false);
    assert_eq!(a["events"].as_array().unwrap().len(), 2);
    let text = String::from_utf8(sluice(dir.path(), &["audit", "u1"]).stdout).unwrap();
    assert!(text.contains("withheld by consent at the last sync") && text.contains("-> crm"), "{text}");
    server.kill().unwrap();
    server.wait().unwrap();
}
