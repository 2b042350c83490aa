//! Streaming delivery against destinations that misbehave: slow rejections, hostile
//! `Retry-After` values, redirects; exact routes and namespaced forwarded messageIds.

mod common;
use common::*;
use serde_json::{json, Value};
use sluice_testkit::Reply;
use std::time::Duration;

/// Waits until `cond` holds, failing with `what` after `secs`.
fn wait_for(secs: u64, what: &str, cond: impl FnMut() -> bool) {
    sluice_testkit::wait_for(what, Duration::from_secs(secs), cond)
}

fn track(mid: &str) -> Value {
    json!({"anonymousId": "a1", "event": "Viewed", "messageId": mid})
}

/// Webhook `id` posting to `{URL}/id` with `extra` settings (flow mapping entries).
fn hook_with(id: &str, extra: &str) -> String {
    format!(
        "  - {{id: {id}, kind: webhook, settings: {{url: \"{{URL}}/{id}\", batch_size: 50, retry_initial_ms: 10, retry_max_ms: 20, {extra}}}}}\n"
    )
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().filter_map(|e| e["messageId"].as_str().map(String::from)).collect()
}

#[test]
fn finding_7_a_slow_rejecting_destination_never_stalls_the_tracking_api() {
    let s = start(&format!(
        "destinations:\n{}{}",
        hook_with("slow", "max_attempts: 1, timeout_secs: 5"),
        hook_with("fast", "max_attempts: 2, timeout_secs: 5")
    ));
    // every answer of `slow` is a 400 that takes 0.6 s: the batch is rejected, then each of its
    // 25 events is re-sent alone (15 s in all) to find which ones it refuses
    s.rx.answer_path("/slow", Reply::Slow(400, Duration::from_millis(600)));
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"type": "track", "anonymousId": "a1", "event": "E", "messageId": format!("b{i}")}))
        .collect();
    assert_eq!(s.post("/v1/batch", &json!({"batch": batch})).0, 200);
    // the batch and three single re-sends answered: the old worker held the event log's write
    // lock from the first re-send until the last, longer than the writer's 10 s busy timeout
    wait_for(30, "the slow destination's re-sends", || s.rx.requests_to("/slow").len() >= 4);
    for i in 0..5 {
        let (status, body) = s.post("/v1/track", &track(&format!("t{i}")));
        assert_eq!(status, 200, "ingest waited on a slow destination: {body}");
    }
    // the other destination keeps receiving, the slow one is still working through its queue
    let fast = s.delivered("/fast", 30);
    assert_eq!(fast.len(), 30, "{fast:?}");
    assert!(s.rx.requests_to("/slow").len() < 26, "the test should observe ingest while the slow queue is busy");
}

#[test]
fn finding_8_hostile_retry_after_values_do_not_kill_the_streaming_worker() {
    let s = start(&format!(
        "destinations:\n{}",
        hook_with("hook", "max_attempts: 2, timeout_secs: 1, max_retry_after_secs: 1")
    ));
    let ra = |status: u16, v: &str| Reply::header(status, "Retry-After", v);
    // `nan` panicked in Duration::from_secs_f64 and the worker was never restarted
    s.rx.script([ra(503, "nan"), ra(429, "1e300"), ra(503, "inf"), ra(503, "18446744073709551616"), ra(503, "-1")]);
    assert_eq!(s.post("/v1/track", &track("e1")).0, 200);
    // one request per worker attempt (the worker owns retries): five attempts, backing off
    // 1 + 2 + 4 + 8 s (each Retry-After capped by max_retry_after_secs: 1)
    wait_for(60, "the hostile answers to be used", || s.rx.requests_to("/hook").len() >= 5);
    // the worker is alive: the event is retried until the receiver takes it, later ones follow
    wait_for(60, "e1 to be retried and taken", || s.rx.items("/hook").len() == 1);
    assert_eq!(s.delivered("/hook", 1), vec!["e1"]);
    assert_eq!(s.post("/v1/track", &track("e2")).0, 200);
    assert_eq!(s.delivered("/hook", 2), vec!["e1", "e2"]);
}

#[test]
fn finding_12_a_redirect_is_not_a_delivery() {
    let s = start(&format!("destinations:\n{}", hook_with("hook", "max_attempts: 1, timeout_secs: 1")));
    s.rx.answer_path("/hook", Reply::header(301, "Location", "https://elsewhere.example/in"));
    assert_eq!(s.post("/v1/track", &track("r1")).0, 200);
    wait_for(10, "the redirected attempt", || !s.rx.requests_to("/hook").is_empty());
    // a 3xx did not move the cursor: once the URL answers, the event arrives
    s.rx.clear_path("/hook");
    assert_eq!(s.delivered("/hook", 1), vec!["r1"]);
    let first = &s.rx.requests_to("/hook")[0];
    assert_eq!((first.status, first.body["batch"][0]["messageId"].as_str()), (301, Some("r1")));
}

/// A server for `yaml` whose destination ids are renamed by `rename` after parsing, as ids a
/// workspace can no longer declare (commas) would be: routing must still be exact.
fn start_renamed(yaml: &str, rename: &[(&str, &str)]) -> Server {
    let rx = sluice_testkit::Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("sources: [{{id: web, kind: events, write_key: wk_web}}]\n{}", yaml.replace("{URL}", rx.url()));
    let mut ws = sluice_engine::Workspace::from_yaml(&yaml, dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
    for d in &mut ws.file.destinations {
        if let Some((_, to)) = rename.iter().find(|(from, _)| *from == d.id) {
            d.id = to.to_string();
        }
    }
    let state = dir.path().join(".sluice");
    let token = sluice_state::StateStore::open(&state).unwrap().create_token("t", sluice_state::Role::Owner).unwrap();
    let config = sluice_server::ServeConfig::new(ws.file, dir.path().to_path_buf(), state, "127.0.0.1:0");
    let (tx, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || sluice_server::serve(config, |a| tx.send(a.public).unwrap()).unwrap());
    let addr = addr.recv_timeout(Duration::from_secs(10)).expect("server started");
    Server { url: format!("http://{addr}"), admin_url: None, token, rx, dir }
}

#[test]
fn finding_15_route_matches_destination_ids_exactly() {
    let s = start_renamed(
        &format!(
            "destinations:\n{}{}{}{}consent_categories: [{{id: C1, name: One, destinations: [a, b]}}]\n",
            hook("ab", "AB"),
            hook("a_comma_b", "A,B"),
            hook("a", "A"),
            hook("b", "B")
        ),
        &[("a_comma_b", "a,b")],
    );
    let consent = |given: bool| json!({"consent": {"categoryPreferences": {"C1": given}}});
    // routed to `ab` and `a,b` only: `a` and `b` are withheld by consent
    let mut e1 = track("only-ab");
    e1["context"] = consent(false);
    assert_eq!(s.post("/v1/track", &e1).0, 200);
    let mut e2 = track("everyone");
    e2["context"] = consent(true);
    assert_eq!(s.post("/v1/track", &e2).0, 200);
    assert_eq!(s.delivered("/ab", 2), vec!["only-ab", "everyone"]);
    assert_eq!(s.delivered("/a_comma_b", 2), vec!["only-ab", "everyone"]);
    // each worker goes through the log in order: had `only-ab` matched `a` or `b` (by substring,
    // or through the comma in `a,b`), it would have arrived before `everyone`
    assert_eq!(s.delivered("/a", 1), vec!["everyone"]);
    assert_eq!(s.delivered("/b", 1), vec!["everyone"]);
}

#[test]
fn finding_18_connections_namespaces_forwarded_message_ids_by_source() {
    let s = start_in(
        tempfile::tempdir().unwrap(),
        "{id: app, kind: events, write_key: wk_app}",
        "destinations:\n  - {id: seg, kind: connections, settings: {url: \"{URL}/down\", write_key: k, retry_initial_ms: 10, retry_max_ms: 20}}\n",
    );
    let e = json!({"userId": "u", "event": "E", "messageId": "same-id"}).to_string();
    assert_eq!(s.post_raw("/v1/track", &e, Some("wk_web"), None).0, 200);
    assert_eq!(s.post_raw("/v1/track", &e, Some("wk_app"), None).0, 200);
    let mut got = s.delivered("/down/v1/batch", 2);
    got.sort();
    assert_eq!(got, vec!["app:same-id", "web:same-id"], "two events downstream, not one de-duplicated");
    for e in s.rx.items("/down/v1/batch") {
        let source = e["messageId"].as_str().unwrap().split(':').next().unwrap().to_string();
        assert_eq!(e["context"]["sluice"], json!({"source": source, "originalMessageId": "same-id"}), "{e}");
    }
    assert_eq!(ids(&s.rx.items("/down/v1/batch")).len(), 2);
}

#[test]
fn finding_3_a_repointed_destination_never_gets_later_events_at_its_old_address() {
    let s = start(&format!("destinations:\n{}", hook("crm", "CRM")));
    for i in 0..5 {
        assert_eq!(s.post("/v1/track", &track(&format!("before{i}"))).0, 200);
    }
    assert_eq!(s.delivered("/crm", 5).len(), 5);
    let mut d = json!({"kind": "webhook", "name": "CRM",
        "settings": {"url": format!("{}/moved", s.rx.url()), "batch_size": 50, "retry_initial_ms": 10, "retry_max_ms": 20, "max_attempts": 2, "timeout_secs": 1}});
    d["id"] = json!("crm");
    let r = ureq::put(&format!("{}/api/v1/destinations/crm", s.url))
        .set("Authorization", &format!("Bearer {}", s.token))
        .send_json(d)
        .unwrap();
    assert_eq!(r.status(), 200);
    // accepted after the change was answered: only the new address may see them
    for i in 0..20 {
        assert_eq!(s.post("/v1/track", &track(&format!("after{i}"))).0, 200);
    }
    assert_eq!(s.delivered("/moved", 20).len(), 20, "the successor delivers everything");
    let old = ids(&s.rx.items("/crm"));
    assert!(old.iter().all(|m| m.starts_with("before")), "the old address got events sent after the change: {old:?}");
}
