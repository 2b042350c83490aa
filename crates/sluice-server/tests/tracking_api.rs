//! The Tracking API over real HTTP: auth, limits, gzip, de-duplication, invalid events,
//! debugger, metrics, per-destination isolation.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

fn basic() -> Server {
    start(&format!("destinations:\n{}{}", hook("crm", "CRM"), hook("down", "Down")))
}

#[test]
fn auth_by_basic_or_body_and_401_otherwise() {
    let s = basic();
    let ev = json!({"userId": "u1", "event": "A", "messageId": "m1"});
    assert_eq!(s.post("/v1/track", &ev).0, 200);
    let mut with_key = json!({"userId": "u1", "event": "B", "messageId": "m2", "writeKey": "wk_web"});
    assert_eq!(s.post_raw("/v1/track", &with_key.to_string(), None, None).0, 200);
    let (status, body) = s.post_raw("/v1/track", &ev.to_string(), Some("nope"), None);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unknown_write_key")));
    with_key.as_object_mut().unwrap().remove("writeKey");
    assert_eq!(s.post_raw("/v1/track", &with_key.to_string(), None, None).0, 401);
    let got = s.delivered("/crm", 2);
    assert_eq!(got, vec!["m1", "m2"]);
    // the write key never travels on
    assert!(s.rx.items("/crm").iter().all(|e| e.get("writeKey").is_none()));
}

#[test]
fn malformed_and_oversized_bodies_are_400_with_a_named_problem() {
    let s = basic();
    let (st, b) = s.post_raw("/v1/track", "{not json", Some("wk_web"), None);
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("malformed_json")));
    let big = json!({"userId": "u", "event": "x", "properties": {"blob": "x".repeat(33 * 1024)}});
    let (st, b) = s.post("/v1/track", &big);
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("body_too_large")), "{b}");
    let batch = json!({"batch": (0..40).map(|i| json!({"type": "track", "userId": "u", "event": "x", "properties": {"blob": "y".repeat(14 * 1024), "i": i}})).collect::<Vec<_>>()});
    let (st, _) = s.post("/v1/batch", &batch);
    assert_eq!(st, 400, "a batch over 500 KB is refused");
    let (st, b) = s.post("/v1/track", &json!({"userId": "u"}));
    assert_eq!((st, b["error"]["message"].as_str()), (400, Some("a track call needs `event`")));
    let (st, b) = s.post("/v1/batch", &json!({"batch": {"no": "array"}}));
    assert_eq!((st, b["error"]["field"].as_str()), (400, Some("batch")));
}

#[test]
fn gzip_batches_dedupe_and_invalid_events_reported_not_lost() {
    let s = basic();
    let batch = json!({"batch": [
        {"type": "identify", "userId": "u1", "traits": {"email": "a@x"}, "messageId": "g1"},
        {"type": "track", "userId": "u1", "event": "Bought", "messageId": "g2"},
        {"type": "track", "userId": "u1", "messageId": "bad"},
        {"type": "track", "userId": "u1", "event": "Bought", "messageId": "g2"}
    ], "sentAt": "2024-01-01T00:00:00Z"});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch.to_string().as_bytes()).unwrap();
    let (st, _) = s.post_bytes("/v1/batch", &gz.finish().unwrap(), Some("wk_web"), Some("gzip"));
    assert_eq!(st, 200);
    // the same messageId again, in a later request: dropped
    assert_eq!(s.post("/v1/track", &json!({"userId": "u1", "event": "Bought", "messageId": "g2"})).0, 200);
    assert_eq!(s.post("/v1/track", &json!({"userId": "u1", "event": "Later", "messageId": "g3"})).0, 200);
    assert_eq!(s.delivered("/crm", 3), vec!["g1", "g2", "g3"]);
    // a later event arrives after any duplicate would have: none did
    assert_eq!(s.post("/v1/track", &json!({"userId": "u1", "event": "Last", "messageId": "g4"})).0, 200);
    assert_eq!(s.delivered("/crm", 4), vec!["g1", "g2", "g3", "g4"], "duplicates are not delivered");
    let (_, dbg) = s.get("/v1/debugger/web?limit=10");
    let dbg: serde_json::Value = serde_json::from_str(&dbg).unwrap();
    assert_eq!(dbg["events"].as_array().unwrap().len(), 4);
    assert_eq!(dbg["invalid"][0]["reason"], "a track call needs `event`");
    assert!(dbg["invalid"][0]["body"].as_str().unwrap().contains("\"bad\""));
    let first = &s.rx.items("/crm")[0];
    assert_eq!(first["receivedAt"].as_str().map(|s| s.len()), Some(24));
    assert_eq!(first["sentAt"], "2024-01-01T00:00:00.000Z");
}

#[test]
fn a_failing_destination_does_not_delay_another() {
    // `down` is unreachable: its events wait in its own outbox while crm's flow
    let s2 = start(&format!("destinations:\n{}  - {{id: down, kind: webhook, settings: {{url: \"http://127.0.0.1:9/x\", max_attempts: 1, timeout_secs: 1}}}}\n", hook("crm", "CRM")));
    for i in 0..20 {
        assert_eq!(s2.post("/v1/track", &json!({"userId": "u", "event": "E", "messageId": format!("m{i}")})).0, 200);
    }
    assert_eq!(s2.delivered("/crm", 20).len(), 20);
    // the receiver has the events before the worker records their delivery: wait for the record
    let overview = || serde_json::from_str::<serde_json::Value>(&s2.get("/v1/overview?minutes=5").1).unwrap();
    sluice_testkit::wait_for("crm's deliveries recorded", Duration::from_secs(10), || {
        overview()["destinations"]["crm"]["delivered"] == 20
    });
    let ov = overview();
    assert!(
        ov["destinations"]["down"]["pending"].as_i64().unwrap_or(0) > 0
            || ov["destinations"]["down"]["failed"].as_i64().unwrap_or(0) > 0,
        "{ov}"
    );
    let (_, m) = s2.get("/metrics");
    assert!(m.contains("sluice_events_delivered_total{destination=\"crm\"} 20"), "{m}");
}

#[test]
fn a_destination_outage_is_retried_with_backoff_until_delivered() {
    let s = start(&format!("destinations:\n{}", hook("crm", "CRM")));
    s.rx.script((0..4).map(|_| sluice_testkit::Reply::Status(503)));
    for i in 0..5 {
        assert_eq!(s.post("/v1/track", &json!({"userId": "u", "event": "E", "messageId": format!("r{i}")})).0, 200);
    }
    // the first attempts fail; the outbox keeps the events and retries them after a backoff
    // (one request per worker attempt: four attempts, backing off 1 + 2 + 4 + 8 s)
    let t = std::time::Instant::now();
    while s.rx.items("/crm").len() < 5 && t.elapsed() < Duration::from_secs(45) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut got: Vec<String> =
        s.rx.items("/crm").iter().map(|e| e["messageId"].as_str().unwrap().to_string()).collect();
    got.sort();
    got.dedup();
    assert_eq!(got, vec!["r0", "r1", "r2", "r3", "r4"]);
    let (_, ov) = s.get("/v1/overview?minutes=5");
    let ov: serde_json::Value = serde_json::from_str(&ov).unwrap();
    let crm = &ov["destinations"]["crm"];
    assert!(crm["failed"].as_i64().unwrap() >= 1, "{ov}");
    assert!(crm["retried"].as_i64().unwrap() >= 1, "{ov}");
    assert_eq!(crm["received"], 5);
    let (_, m) = s.get("/metrics");
    assert!(m.contains("sluice_events_retried_total{destination=\"crm\"}"), "{m}");
}

#[test]
fn a_connections_destination_forwards_events_to_another_tracking_api() {
    let s = start(
        "destinations:\n  - {id: seg, kind: connections, settings: {url: \"{URL}\", write_key: downstream_key}}\n",
    );
    assert_eq!(s.post("/v1/track", &json!({"userId": "u", "event": "E", "messageId": "fw1"})).0, 200);
    assert_eq!(s.delivered("/v1/batch", 1), vec!["web:fw1"], "namespaced by source (finding 18)");
    let req = &s.rx.requests()[0];
    // base64("downstream_key:")
    assert_eq!(req.header("authorization"), Some("Basic ZG93bnN0cmVhbV9rZXk6"));
}
