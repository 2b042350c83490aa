//! R5: the connections destination gets every record, stamped with its consent, while the
//! RETL consent rules withhold the same records from other destinations.

mod common;
use common::*;
use serde_json::json;

#[test]
fn connections_is_never_filtered_and_stamps_consent() {
    let mut env = Env::new(
        "create table people(id integer, email text, ads, analytics);
         insert into people values (1,'a@x',1,0),(2,'b@x',0,null),(3,'c@x','t','true');",
    );
    let ws = env.workspace(&format!(
        "destinations:
{}  - {{id: segment, name: Segment, kind: connections, settings: {{url: \"{{URL}}\", write_key: wk_1, retry_initial_ms: 5}}}}
consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads, segment]}}
  - {{id: C0002, name: Analytics, destinations: []}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads, C0002: analytics}},
      mappings: [{{destination: ads}}, {{destination: segment, fields: {{email: email}}}}]}}",
        hook("ads")
    ));
    assert!(
        ws.warnings.iter().any(|w| w.contains("Reverse ETL does not filter by it") && w.contains("segment")),
        "{:?}",
        ws.warnings
    );
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "3"]));
    let seg = mapping(&r, "segment");
    assert_eq!((seg.delivered, seg.withheld_by_consent), (3, 0));
    assert!(seg.consent_rule.starts_with("R5"));
    let events = env.rx.items("/v1/batch");
    assert_eq!(events.len(), 3, "withheld-for-ads record 2 still reaches connections");
    let by_id = |id: &str| events.iter().find(|e| e["userId"] == id).unwrap().clone();
    let e2 = by_id("2");
    assert_eq!(e2["type"], "identify");
    assert_eq!(e2["traits"], json!({"email": "b@x"}));
    assert_eq!(e2["context"]["consent"]["categoryPreferences"], json!({"C0004": false, "C0002": false}));
    assert_eq!(e2["context"]["consent"]["consentPreferences"], json!({"C0004": false, "C0002": false}));
    assert_eq!(by_id("3")["context"]["consent"]["categoryPreferences"], json!({"C0004": true, "C0002": true}));
    assert!(
        events.iter().all(|e| e["context"]["consent"]["categoryPreferences"].is_object()),
        "every event carries consent"
    );

    // a consent change alone is an update of the event stream (the stamp changed)
    env.rx.clear();
    env.sql("update people set analytics = 1 where id = 2; delete from people where id = 1;");
    let r = env.sync(&ws, "people");
    let seg = mapping(&r, "segment");
    assert_eq!((seg.updated, seg.deleted), (1, 0), "deletes are not sent to connections");
    assert_eq!(env.rx.items("/v1/batch")[0]["context"]["consent"]["categoryPreferences"]["C0002"], true);
}
