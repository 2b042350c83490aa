//! Hostile review of the issue-14 features (privacy requests, what-if, alerts, withdrawal) over
//! real HTTP: each test is an attack that once worked, kept so it cannot come back.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn server() -> Server {
    start(&format!("destinations:\n{}", hook("hook", "Hook")))
}

fn suppress(s: &Server, owner: &str, ids: &[&str]) {
    let (st, b) = call(
        s,
        "POST",
        "/api/v1/regulations",
        Some(owner),
        Some(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ids})),
    );
    assert_eq!(st, 201, "{b}");
}

fn debugger(s: &Server) -> Value {
    let (_, body) = s.get("/v1/debugger/web?limit=1000");
    serde_json::from_str(&body).unwrap()
}

/// A suppressed numeric id (`42`) must not reach a destination through an alias call whose
/// `previousId` is the JSON number 42: ingest kept it a number, the writer read only strings,
/// so the suppression check saw no `previousId` and the alias was stored and delivered.
#[test]
fn review14_a_numeric_previous_id_of_an_alias_does_not_bypass_a_suppression() {
    let s = server();
    let (owner, _) = tokens(&s);
    suppress(&s, &owner, &["42"]);
    // numeric userId and previousId, alone and in a batch next to an event that flows
    assert_eq!(s.post("/v1/alias", &json!({"previousId": 42, "userId": "new-1", "messageId": "al1"})).0, 200);
    assert_eq!(s.post("/v1/track", &json!({"userId": 42, "event": "E", "messageId": "num1"})).0, 200);
    let batch = json!({"batch": [
        {"type": "alias", "previousId": 42, "userId": "new-2", "messageId": "al2"},
        {"type": "track", "event": "E", "userId": "u2", "messageId": "ok1"}
    ]});
    assert_eq!(s.post("/v1/batch", &batch).0, 200);
    assert_eq!(s.delivered("/hook", 1), vec!["ok1".to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    let got: Vec<String> =
        s.rx.items("/hook").iter().map(|e| e["messageId"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(got, vec!["ok1".to_string()], "a suppressed person's event reached the destination");
    let d = debugger(&s).to_string();
    for m in ["al1", "al2", "num1"] {
        assert!(!d.contains(m), "{m} was stored: {d}");
    }
}

/// An invalid event of a suppressed person inside a batch (here a track without `event`,
/// carrying an email) was stored for the debugger with its body: the suppression says nothing
/// of them is collected.
#[test]
fn review14_an_invalid_event_of_a_suppressed_person_is_not_stored_for_the_debugger() {
    let s = server();
    let (owner, _) = tokens(&s);
    suppress(&s, &owner, &["u1"]);
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "properties": {"email": "secret-u1@example.com"}, "messageId": "bad1"},
        {"type": "track", "userId": 42.5, "anonymousId": "u1", "messageId": "bad2", "properties": {"email": "anon-u1@example.com"}},
        {"type": "track", "userId": "u3", "properties": {"email": "u3@example.com"}, "messageId": "bad3"},
        {"type": "track", "event": "E", "userId": "u2", "messageId": "ok1"}
    ]});
    assert_eq!(s.post("/v1/batch", &batch).0, 200);
    assert_eq!(s.delivered("/hook", 1), vec!["ok1".to_string()]);
    let d = debugger(&s);
    let invalid = d["invalid"].to_string();
    assert!(invalid.contains("u3@example.com"), "an unsuppressed person's invalid event is kept: {d}");
    assert!(!invalid.contains("secret-u1@example.com"), "a suppressed person's invalid event was stored: {d}");
    assert!(!invalid.contains("anon-u1@example.com"), "a suppressed person's invalid event was stored: {d}");
}

/// An event of a person accepted before a SUPPRESS_ONLY request, still queued because the
/// destination was down, must not be sent once the person is suppressed ("stop sending their
/// data"): the check was only at ingest.
#[test]
fn review14_a_queued_event_of_a_person_suppressed_meanwhile_is_not_sent() {
    let s = start(
        "destinations:\n  - {id: hook, kind: webhook, settings: {url: \"{URL}/hook\", batch_size: 50, retry_initial_ms: 10, retry_max_ms: 50, max_attempts: 100, timeout_secs: 1}}\n",
    );
    let (owner, _) = tokens(&s);
    s.rx.answer_path("/hook", sluice_testkit::Reply::Status(503));
    assert_eq!(s.post("/v1/track", &json!({"userId": "u1", "event": "E", "messageId": "q1"})).0, 200);
    // the destination refused it at least once: it is queued
    let t = std::time::Instant::now();
    while s.rx.requests_to("/hook").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "never attempted");
        std::thread::sleep(Duration::from_millis(20));
    }
    suppress(&s, &owner, &["u1"]);
    s.rx.clear_path("/hook");
    assert_eq!(s.post("/v1/track", &json!({"userId": "u2", "event": "E", "messageId": "ok1"})).0, 200);
    let t = std::time::Instant::now();
    while !s.rx.items("/hook").iter().any(|e| e["messageId"] == "ok1") {
        assert!(t.elapsed() < Duration::from_secs(10), "the queue never drained");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent: Vec<Value> = s.rx.items("/hook");
    assert!(
        sent.iter().all(|e| e["userId"] != "u1"),
        "a suppressed person's queued event was sent after the suppression: {sent:?}"
    );
    // nothing lost silently: the event is kept, with why it was not sent
    let conn = sluice_stream::store::open(&s.dir.path().join(".sluice")).unwrap();
    let t = std::time::Instant::now();
    let mut dead = vec![];
    while dead.is_empty() && t.elapsed() < Duration::from_secs(10) {
        // recorded just after the round's send
        std::thread::sleep(Duration::from_millis(20));
        dead = sluice_stream::store::dead_letters(&conn, "hook", 10).unwrap();
    }
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].error.contains("privacy request"), "{dead:?}");
}

/// An owner who asks for a what-if with a misspelt parameter (`dryRun`, `dry-run`, `DRY_RUN`)
/// must get a 400 naming it, never the real write: the unknown parameter was ignored and the
/// consent change applied.
#[test]
fn review14_a_misspelt_dry_run_is_refused_not_applied() {
    let s = start(&format!(
        "destinations:\n{}consent_categories:\n  - {{id: C0004, name: Advertising, destinations: [hook]}}\n",
        hook("hook", "Hook")
    ));
    let before = call(&s, "GET", "/api/v1/consent-categories", Some(&s.token), None).1;
    let audit_before = call(&s, "GET", "/api/v1/audit-log", Some(&s.token), None).1;
    for q in ["dryRun=true", "dry-run=true", "DRY_RUN=true", "dry_run=true&dry_run=false", "dry_run=1"] {
        let (st, b) = call(
            &s,
            "PATCH",
            &format!("/api/v1/consent-categories/C0004?{q}"),
            Some(&s.token),
            Some(json!({"enabled": false})),
        );
        assert_eq!(st, 400, "?{q}: {b}");
        assert_eq!(call(&s, "GET", "/api/v1/consent-categories", Some(&s.token), None).1, before, "?{q} applied");
    }
    assert_eq!(call(&s, "GET", "/api/v1/audit-log", Some(&s.token), None).1, audit_before);
}
