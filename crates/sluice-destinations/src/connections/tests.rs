use super::*;
use crate::{BuildContext, Destination, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::{Receiver, Reply};

fn sink(rx: &Receiver, extra: serde_json::Value) -> ConnectionsSink {
    let mut s =
        json!({"url": format!("{}/", rx.url()), "write_key": "wk_123", "retry_initial_ms": 5, "retry_max_ms": 10});
    s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "users/segment".into() };
    ConnectionsSink::new(ConnectionsConfig::parse(s.as_object().unwrap()).unwrap(), &ctx)
}

fn item(id: &str, consent: Option<serde_json::Value>) -> Item {
    Item {
        action: Change::Added,
        id: id.into(),
        data: crate::raw(&json!({"email": format!("{id}@x")})),
        consent: consent.map(|c| c.as_object().unwrap().clone()),
        reason: None,
    }
}

#[test]
fn identify_events_with_consent_stamped_under_both_names_and_basic_auth() {
    let rx = Receiver::start();
    let out =
        sink(&rx, json!({})).deliver(&[item("u1", Some(json!({"C0004": false, "C0002": true}))), item("u2", None)]);
    assert!(out.iter().all(|o| o.is_ok()));
    let r = &rx.requests()[0];
    assert_eq!(r.url, "/v1/batch");
    // base64("wk_123:")
    assert_eq!(r.header("authorization"), Some("Basic d2tfMTIzOg=="));
    let e = &r.body["batch"][0];
    assert_eq!(e["type"], "identify");
    assert_eq!(e["userId"], "u1");
    assert_eq!(e["traits"], json!({"email": "u1@x"}));
    assert_eq!(e["context"]["consent"]["categoryPreferences"], json!({"C0004": false, "C0002": true}));
    assert_eq!(e["context"]["consent"]["consentPreferences"], e["context"]["consent"]["categoryPreferences"]);
    assert!(e["messageId"].as_str().unwrap().starts_with("users:sluice-"), "namespaced by the model: {e}");
    assert_eq!(e["context"]["sluice"]["model"], "users");
    assert!(r.body["batch"][1]["context"].get("consent").is_none(), "no consent mapping: no consent object");
}

#[test]
fn message_ids_are_stable_across_retries_and_track_events_work() {
    let rx = Receiver::start();
    rx.script([Reply::Status(503)]);
    let out = sink(&rx, json!({"event": "track", "event_name": "User Synced"})).deliver(&[item("u1", None)]);
    assert!(out[0].is_ok());
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["batch"][0]["messageId"], reqs[1].body["batch"][0]["messageId"]);
    let e = &reqs[1].body["batch"][0];
    assert_eq!((e["type"].as_str(), e["event"].as_str()), (Some("track"), Some("User Synced")));
    assert_eq!(e["properties"], json!({"email": "u1@x"}));
}

#[test]
fn oversized_events_are_rejected_without_sending() {
    let rx = Receiver::start();
    let mut big = item("big", None);
    big.data = crate::raw(&json!({"blob": "x".repeat(40_000)}));
    let out = sink(&rx, json!({})).deliver(&[big, item("ok", None)]);
    let e = out[0].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("32 KB"), "{e:?}");
    assert!(out[1].is_ok());
    assert_eq!(rx.items("/v1/batch").len(), 1);
}

#[test]
fn settings_are_checked() {
    let bad = |v: serde_json::Value| ConnectionsConfig::parse(v.as_object().unwrap()).unwrap_err().at;
    assert_eq!(bad(json!({"url": "http://x"})), "write_key");
    assert_eq!(bad(json!({"url": "http://x", "write_key": "k", "event": "track"})), "event_name");
    assert_eq!(bad(json!({"url": "http://x", "write_key": "k", "batch_size": 501})), "batch_size");
}

fn event(seq: i64, pad: usize) -> crate::Event {
    let body = json!({"type": "track", "event": "E", "userId": "u", "messageId": format!("m{seq}"),
                      "properties": {"pad": "x".repeat(pad)}});
    crate::Event { seq, source: "web".into(), body: body.to_string() }
}

#[test]
fn forwarded_events_stay_within_the_tracking_api_limits() {
    let rx = Receiver::start();
    // 40 events of ~20 KB: 800 KB in all, so at least two requests
    let mut evs: Vec<_> = (1..=40).map(|s| event(s, 20_000)).collect();
    // fits at ingest, over 32 KB once namespaced
    evs.insert(5, event(100, 32 * 1024 - 90));
    let out = sink(&rx, json!({"batch_size": 500})).deliver_events(&evs);
    let e = out[5].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("32 KB"), "{e:?}");
    assert!(out.iter().enumerate().all(|(i, o)| i == 5 || o.is_ok()), "{out:?}");
    let reqs = rx.requests();
    assert!(reqs.len() >= 2);
    let len = |r: &sluice_testkit::Request| r.header("content-length").unwrap().parse::<usize>().unwrap();
    assert!(reqs.iter().all(|r| len(r) <= MAX_BATCH_BYTES), "every request within 500 KB");
    let ids: Vec<_> = reqs.iter().flat_map(|r| r.body["batch"].as_array().unwrap().clone()).collect();
    assert_eq!(ids.len(), 40);
    assert_eq!(ids[0]["messageId"], "web:m1");
    assert_eq!(ids[0]["context"]["sluice"], json!({"source": "web", "originalMessageId": "m1"}));
}
