//! R13 in streaming, end to end over HTTP: a consent event (R9) that turns a category false
//! sends every destination of that category with `on_withdrawal: delete` the delete call for the
//! profile's identifiers (webhook: one `deleted` ITEM per identifier, reason
//! `consent_withdrawn`), in log order, retried until it lands; `keep` destinations get none.

mod common;
use common::*;
use serde_json::{json, Value};
use sluice_testkit::{wait_for, Reply};
use std::time::Duration;

/// `del` (delete) and `keep` (keep), both governed by C0004; `free` (delete) governed by none;
/// `other` (delete) governed by C0002 only.
fn server() -> Server {
    let del = hook("del", "Del").replacen("kind: webhook,", "kind: webhook, on_withdrawal: delete,", 1);
    let free = hook("free", "Free").replacen("kind: webhook,", "kind: webhook, on_withdrawal: delete,", 1);
    let other = hook("other", "Other").replacen("kind: webhook,", "kind: webhook, on_withdrawal: delete,", 1);
    start(&format!(
        "destinations:\n{del}{}{free}{other}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [del, keep]}}
  - {{id: C0002, name: Analytics, destinations: [other]}}
",
        hook("keep", "Keep")
    ))
}

fn consent_event(mid: &str, user: &str, ads: bool, ts: &str) -> Value {
    json!({"userId": user, "event": "Segment Consent Preference Updated", "messageId": mid, "timestamp": ts,
           "context": {"consent": {"categoryPreferences": {"C0004": ads, "C0002": true}}}})
}

/// The (id, reason) of every `deleted` item `path` accepted, sorted.
fn deletes(s: &Server, path: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> =
        s.rx.items(path)
            .iter()
            .filter(|i| i["action"] == "deleted")
            .map(|i| (i["id"].as_str().unwrap_or("?").to_string(), i["reason"].as_str().unwrap_or("").to_string()))
            .collect();
    v.sort();
    v
}

fn person(ids: &[&str]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = ids.iter().map(|i| (i.to_string(), "consent_withdrawn".to_string())).collect();
    v.sort();
    v
}

/// Links u1 with two devices (events without consent go everywhere, R7).
fn link(s: &Server) {
    for (mid, anon) in [("i1", "dev-1"), ("i2", "dev-2")] {
        let e = json!({"userId": "u1", "anonymousId": anon, "traits": {"email": "u1@x"}, "messageId": mid});
        assert_eq!(s.post("/v1/identify", &e).0, 200);
    }
    s.settle();
}

fn overview(s: &Server) -> Value {
    let (_, ov) = s.get("/v1/overview?minutes=5");
    serde_json::from_str(&ov).unwrap()
}

#[test]
fn a_withdrawal_deletes_the_person_where_the_destination_says_delete_and_nowhere_else() {
    let s = server();
    link(&s);
    assert_eq!(s.post("/v1/track", &consent_event("c1", "u1", false, "2026-01-01T00:00:00Z")).0, 200);
    wait_for("the deletes", Duration::from_secs(10), || deletes(&s, "/del").len() == 3);
    assert_eq!(deletes(&s, "/del"), person(&["u1", "dev-1", "dev-2"]));
    let items = s.rx.items("/del");
    let first_delete = items.iter().position(|i| i["action"] == "deleted").unwrap();
    assert!(items[..first_delete].iter().any(|i| i["messageId"] == "i2"), "log order: events before the delete");
    assert!(items.iter().filter(|i| i["action"] == "deleted").all(|i| i["data"] == json!({})), "{items:?}");
    std::thread::sleep(Duration::from_millis(500));
    for quiet in ["/keep", "/free", "/other"] {
        assert!(deletes(&s, quiet).is_empty(), "{quiet}: {:?}", s.rx.items(quiet));
    }
    // counted as its own outcome per destination
    let ov = overview(&s);
    assert_eq!(ov["destinations"]["del"]["deleted_on_withdrawal"], 1, "{ov}");
    assert_eq!(ov["destinations"]["del"]["withdrawal_deletes_queued"], 1, "{ov}");
    assert!(ov["destinations"]["keep"].get("deleted_on_withdrawal").is_none(), "{ov}");
    let (_, m) = s.get("/metrics");
    assert!(m.contains("sluice_people_deleted_total{destination=\"del\"} 1"), "{m}");

    // refused again: nothing new to delete; granted then withdrawn: deleted again
    assert_eq!(s.post("/v1/track", &consent_event("c2", "u1", false, "2026-01-02T00:00:00Z")).0, 200);
    assert_eq!(s.post("/v1/track", &consent_event("c3", "u1", true, "2026-01-03T00:00:00Z")).0, 200);
    assert_eq!(s.post("/v1/track", &consent_event("c4", "u1", false, "2026-01-04T00:00:00Z")).0, 200);
    wait_for("the second delete", Duration::from_secs(10), || deletes(&s, "/del").len() == 6);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(deletes(&s, "/del").len(), 6, "c2 changed nothing");
    // an older consent event (by timestamp) does not change stored consent, so deletes nothing
    assert_eq!(s.post("/v1/track", &consent_event("c0", "u1", false, "2025-01-01T00:00:00Z")).0, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(deletes(&s, "/del").len(), 6);
}

#[test]
fn a_withdrawal_waits_for_a_down_or_refusing_destination_and_lands_after_recovery() {
    let s = server();
    link(&s);
    s.rx.answer_path("/del", Reply::Status(503));
    assert_eq!(s.post("/v1/track", &consent_event("c1", "u1", false, "2026-01-01T00:00:00Z")).0, 200);
    let tried =
        |s: &Server| s.rx.requests_to("/del").iter().filter(|r| r.body["batch"][0]["action"] == "deleted").count();
    wait_for("attempts while down", Duration::from_secs(10), || tried(&s) >= 2);
    // a rejection does not dead-letter it: a privacy obligation is retried
    s.rx.answer_path("/del", Reply::Status(400));
    let before = tried(&s);
    wait_for("attempts while refusing", Duration::from_secs(10), || tried(&s) >= before + 2);
    assert!(deletes(&s, "/del").is_empty());
    // each failed attempt is counted once the worker recorded it (a request may still be in flight)
    wait_for("failures counted", Duration::from_secs(10), || {
        let ov = overview(&s);
        ov["destinations"]["del"]["pending"].as_u64() >= Some(1)
            && ov["destinations"]["del"]["failed"].as_u64() >= Some(2)
    });
    let (_, dead) = s.get("/v1/debugger/web?limit=1");
    assert!(!dead.contains("!delete"), "never shown as an event of a source");
    s.rx.clear_path("/del");
    wait_for("the delete after recovery", Duration::from_secs(15), || deletes(&s, "/del").len() == 3);
    assert_eq!(deletes(&s, "/del"), person(&["u1", "dev-1", "dev-2"]));
    wait_for("the overview", Duration::from_secs(5), || {
        overview(&s)["destinations"]["del"]["deleted_on_withdrawal"] == 1
    });
}
