use super::*;

fn ws(yaml: &str) -> WorkspaceFile {
    WorkspaceFile::from_yaml(yaml).unwrap()
}

const OLD: &str = r#"
sources: [{id: web, kind: events, write_key: wk}]
destinations:
  - {id: ads, name: Ads, kind: webhook, settings: {url: "http://127.0.0.1:1/a"}}
  - {id: all, kind: webhook, settings: {url: "http://127.0.0.1:1/b"}}
  - {id: rows, kind: file, settings: {path: out.jsonl}}
consent_categories:
  - {id: C1, name: Advertising, destinations: [ads]}
"#;

fn insert(conn: &Connection, received_at: &str, body: Value) {
    conn.execute(
        "insert into events (source, message_id, received_at, body, decisions, routes) values ('web', ?1, ?2, ?3, '{}', '[]')",
        rusqlite::params![body["messageId"].as_str().unwrap_or("m"), received_at, body.to_string()],
    )
    .unwrap();
}

#[test]
fn counts_what_each_destination_gains_and_loses() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store::open(dir.path()).unwrap();
    let recent = crate::rfc3339(chrono::Utc::now());
    let yes = serde_json::json!({"messageId": "1", "userId": "u1", "context": {"consent": {"categoryPreferences": {"C1": true}}}});
    let no = serde_json::json!({"messageId": "2", "userId": "u2", "context": {"consent": {"categoryPreferences": {"C1": false}}}});
    let none = serde_json::json!({"messageId": "3", "userId": "u3"});
    let off = serde_json::json!({"messageId": "4", "userId": "u4", "integrations": {"Ads": false},
                                 "context": {"consent": {"categoryPreferences": {"C1": false}}}});
    for e in [&yes, &no, &none, &off] {
        insert(&conn, &recent, e.clone());
    }
    // older than the window: never counted
    insert(&conn, "2000-01-01T00:00:00.000Z", no.clone());
    let since = crate::rfc3339(chrono::Utc::now() - chrono::Duration::hours(24));
    let old = ws(OLD);

    // disabling the category: `ads` gains the refused event, not the one the integrations object turns off
    let new = ws(&OLD.replace("destinations: [ads]}", "destinations: [ads], enabled: false}"));
    let got = events(dir.path(), &old, &new, &since).unwrap();
    assert_eq!(got, vec![EventImpact { destination: "ads".into(), gains: 1, loses: 0 }]);

    // mapping `all` to the category: it loses the refused ones (2 and 4), keeps the granted and the unrestricted
    let new = ws(&OLD.replace("destinations: [ads]}", "destinations: [ads, all]}"));
    let got = events(dir.path(), &old, &new, &since).unwrap();
    assert_eq!(got, vec![EventImpact { destination: "all".into(), gains: 0, loses: 2 }]);

    // missing_consent: block withholds the event without consent from mapped destinations only
    let new = ws(&format!("workspace: {{missing_consent: block}}\n{OLD}"));
    let got = events(dir.path(), &old, &new, &since).unwrap();
    assert_eq!(
        got,
        vec![
            EventImpact { destination: "ads".into(), gains: 0, loses: 1 },
            EventImpact { destination: "all".into(), gains: 0, loses: 0 },
            EventImpact { destination: "rows".into(), gains: 0, loses: 0 },
        ],
        "unmapped destinations still receive events without consent (R7)"
    );

    // nothing changes: nothing is read
    assert!(events(dir.path(), &old, &old, &since).unwrap().is_empty());
    // no stream.db: zeros, and no file is created
    let empty = tempfile::tempdir().unwrap();
    let got = events(empty.path(), &old, &new, &since).unwrap();
    assert!(got.iter().all(|l| l.gains == 0 && l.loses == 0));
    assert!(!store::db_path(empty.path()).exists());
}
