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
    // proof of consent (streaming): each decision records the consent it was made under
    let ev = |t: &str| a["events"].as_array().unwrap().iter().find(|e| e["type"] == t).unwrap().clone();
    let consent_event = ev("track");
    assert_eq!(consent_event["decisions"]["ads"]["consent"], serde_json::json!({"C0004": false}));
    assert_eq!(consent_event["decisions"]["ads"]["basis"], "event");
    let page = ev("page");
    assert_eq!(page["decisions"]["ads"]["route"], "withheld");
    assert_eq!(page["decisions"]["ads"]["consent"], serde_json::json!({"C0004": false}), "{page}");
    assert_eq!(
        page["decisions"]["ads"]["basis"], "profile",
        "no consent object: the profile's (missing_consent: profile)"
    );
    assert!(page["decisions"]["crm"].get("consent").is_none(), "crm requires nothing (R1): {page}");
    let text = String::from_utf8(sluice(dir.path(), &["audit", "u1"]).stdout).unwrap();
    assert!(text.contains("withheld by consent at the last sync") && text.contains("-> crm"), "{text}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Proof of consent (Reverse ETL): each destination's checkpoint remembers the run that
/// delivered a record and the consent it went out under, and keeps showing it after consent
/// later changes; a withheld record shows the category that refused it.
#[test]
fn audit_proves_the_consent_each_record_was_delivered_under() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("w.db");
    rusqlite::Connection::open(&wh)
        .unwrap()
        .execute_batch(
            "create table people(id text, email text, ads, analytics);
             insert into people values ('u1','a@x',1,0),('u2','b@x',0,1);",
        )
        .unwrap();
    apply(
        dir.path(),
        &format!(
            "workspace: {{policy: any}}
sources: [{{id: dwh, kind: sqlite, path: w.db}}]
destinations:
  - {{id: ads, name: Ads, kind: webhook, settings: {{url: \"{u}/ads\"}}}}
  - {{id: crm, name: CRM, kind: webhook, settings: {{url: \"{u}/crm\"}}}}
consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [ads]}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads, C0002: analytics}},
      mappings: [{{destination: ads}}, {{destination: crm}}]}}
",
            u = rx.url()
        ),
    );
    let audit = |id: &str| -> serde_json::Value {
        let out = sluice(dir.path(), &["audit", id, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let proof = |a: &serde_json::Value, dest: &str| {
        a["reverse_etl"].as_array().unwrap().iter().find(|r| r["destination"] == dest).unwrap()["proof"].clone()
    };
    assert!(sluice(dir.path(), &["sync", "people"]).status.success());
    // policy any: u1 went to ads on Advertising alone, u2 on Analytics alone
    let a = audit("u1");
    let p = proof(&a, "ads");
    assert_eq!(p["what"], "delivered");
    assert_eq!(p["run_id"], 1);
    assert_eq!(p["consent"], serde_json::json!({"C0002": false, "C0004": true}), "{p}");
    assert!(p["rule"].as_str().unwrap().contains("any"), "{p}");
    assert!(p["at"].as_str().unwrap().starts_with("20"), "{p}");
    let crm = proof(&a, "crm");
    assert_eq!(crm["consent"], serde_json::json!({}), "no consent required (R1): {crm}");
    assert!(crm["rule"].as_str().unwrap().starts_with("R1"), "{crm}");
    assert_eq!(proof(&audit("u2"), "ads")["consent"], serde_json::json!({"C0002": true, "C0004": false}));

    // u1 withdraws everything, u3 arrives refusing both: the proof of u1's delivery still shows
    // the consent AT delivery; u3's shows who refused
    rusqlite::Connection::open(&wh)
        .unwrap()
        .execute_batch("update people set ads = 0 where id = 'u1'; insert into people values ('u3','c@x',0,0);")
        .unwrap();
    assert!(sluice(dir.path(), &["sync", "people"]).status.success());
    let a = audit("u1");
    let p = proof(&a, "ads");
    assert_eq!((p["what"].clone(), p["run_id"].clone()), (serde_json::json!("delivered"), serde_json::json!(1)));
    assert_eq!(p["consent"], serde_json::json!({"C0002": false, "C0004": true}), "consent at delivery, not now");
    let p3 = proof(&audit("u3"), "ads");
    assert_eq!(p3["what"], "withheld");
    assert_eq!(p3["run_id"], 2);
    assert_eq!(p3["refused"], serde_json::json!(["C0002", "C0004"]));
    assert_eq!(proof(&audit("u3"), "crm")["what"], "delivered");

    // u1 consents again and changes: re-sent in run 3 under the new consent
    rusqlite::Connection::open(&wh)
        .unwrap()
        .execute_batch("update people set ads = 1, analytics = 1, email = 'a2@x' where id = 'u1';")
        .unwrap();
    assert!(sluice(dir.path(), &["sync", "people"]).status.success());
    let p = proof(&audit("u1"), "ads");
    assert_eq!(p["run_id"], 3);
    assert_eq!(p["consent"], serde_json::json!({"C0002": true, "C0004": true}));
    let text = String::from_utf8(sluice(dir.path(), &["audit", "u1"]).stdout).unwrap();
    assert!(text.contains("delivered in run 3") && text.contains("C0004=true"), "{text}");
}
