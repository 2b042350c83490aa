use super::*;
use crate::{BuildContext, Destination, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::{Receiver, Reply};
use std::time::{Duration, Instant};

fn sink(rx: &Receiver, extra: serde_json::Value) -> WebhookSink {
    let mut s = json!({"url": format!("{}/hook", rx.url()), "batch_size": 2, "retry_initial_ms": 10,
                        "retry_max_ms": 20, "timeout_secs": 0.5, "headers": {"Authorization": "Bearer s3cret"}});
    s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "users/braze".into() };
    WebhookSink::new(WebhookConfig::parse(s.as_object().unwrap()).unwrap(), &ctx)
}

fn items(ids: &[&str]) -> Vec<Item> {
    ids.iter()
        .map(|id| Item {
            action: Change::Added,
            id: id.to_string(),
            data: crate::raw(&json!({"email": format!("{id}@x")})),
            consent: None,
            reason: None,
        })
        .collect()
}

#[test]
fn posts_the_batch_shape_with_headers_and_idempotency_key() {
    let rx = Receiver::start();
    let out = sink(&rx, json!({})).deliver(&items(&["1", "2"]));
    assert!(out.iter().all(|o| o.is_ok()));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url, "/hook");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(reqs[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(reqs[0].header("idempotency-key").map(|k| k.len()), Some(32));
    assert_eq!(
        reqs[0].body,
        json!({"batch": [{"action": "added", "id": "1", "data": {"email": "1@x"}},
                         {"action": "added", "id": "2", "data": {"email": "2@x"}}]})
    );
}

#[test]
fn retries_5xx_and_429_with_the_same_idempotency_key() {
    let rx = Receiver::start();
    rx.script([Reply::Status(500), Reply::TooMany(1), Reply::Status(200)]);
    let t = Instant::now();
    let out = sink(&rx, json!({})).deliver(&items(&["1"]));
    assert!(out[0].is_ok(), "{out:?}");
    assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    let keys: Vec<_> = rx.requests().iter().map(|r| r.header("idempotency-key").unwrap().to_string()).collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k == keys[0]));
}

#[test]
fn gives_up_after_max_attempts_as_retryable() {
    let rx = Receiver::start();
    rx.set_default(503);
    let out = sink(&rx, json!({"max_attempts": 3})).deliver(&items(&["1", "2"]));
    assert_eq!(rx.requests().len(), 3);
    for o in out {
        let e = o.unwrap_err();
        assert!(e.retryable && e.message.contains("503"), "{e:?}");
    }
}

#[test]
fn timeouts_are_retryable() {
    let rx = Receiver::start();
    rx.script([Reply::Hang(Duration::from_secs(2))]);
    let out = sink(&rx, json!({"max_attempts": 2})).deliver(&items(&["1"]));
    assert!(out[0].is_ok(), "{out:?}");
    assert_eq!(rx.requests().len(), 2);
}

#[test]
fn a_4xx_batch_is_split_to_find_the_rejected_record() {
    let rx = Receiver::start();
    rx.script([Reply::Status(422), Reply::Status(200), Reply::Status(400)]);
    let out = sink(&rx, json!({})).deliver(&items(&["1", "2"]));
    assert!(out[0].is_ok());
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("400"), "{e:?}");
    assert_eq!(rx.requests().len(), 3, "one batch, then one request per record");
}

#[test]
fn unreachable_is_retryable_and_names_the_url() {
    let s = json!({"url": "http://127.0.0.1:9/x", "max_attempts": 1});
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "k".into() };
    let mut w = WebhookSink::new(WebhookConfig::parse(s.as_object().unwrap()).unwrap(), &ctx);
    let e = w.deliver(&items(&["1"]))[0].clone().unwrap_err();
    assert!(e.retryable && e.message.contains("127.0.0.1:9"), "{e:?}");
}

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(WebhookConfig::parse(json!({"url": "ftp://x"}).as_object().unwrap()).unwrap_err().at, "url");
    assert_eq!(
        WebhookConfig::parse(json!({"url": "http://x", "batch_size": 0}).as_object().unwrap()).unwrap_err().at,
        "batch_size"
    );
    assert_eq!(
        WebhookConfig::parse(json!({"url": "http://x", "retries": 3}).as_object().unwrap()).unwrap_err().at,
        "retries"
    );
}

fn events(n: i64) -> Vec<crate::Event> {
    (1..=n)
        .map(|seq| crate::Event { seq, source: "web".into(), body: format!("{{\"messageId\":\"m{seq}\"}}") })
        .collect()
}

#[test]
fn streamed_events_are_posted_as_stored_once_per_call_with_the_body_hash_key() {
    let rx = Receiver::start();
    rx.set_default(503);
    let mut w = sink(&rx, json!({"max_attempts": 4}));
    let first = w.deliver_events(&events(2));
    assert!(first.iter().all(|o| o.as_ref().is_err_and(|e| e.retryable)), "{first:?}");
    assert_eq!(rx.requests().len(), 1, "the caller retries: one attempt per call");
    w.deliver_events(&events(2));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, json!({"batch": [{"messageId": "m1"}, {"messageId": "m2"}]}));
    let key = |i: usize| reqs[i].header("idempotency-key").unwrap().to_string();
    assert_eq!(key(0), key(1));
    assert_eq!(key(0).len(), 32);
    assert!(w.retry_policy().is_some());
}

#[test]
fn a_rejected_event_batch_is_isolated_and_stops_at_a_retryable_failure() {
    let rx = Receiver::start();
    rx.script([Reply::Status(400), Reply::Status(200), Reply::Status(422), Reply::Status(503)]);
    let out = sink(&rx, json!({})).deliver_events(&events(4));
    assert!(out[0].is_ok());
    assert!(out[1].as_ref().is_err_and(|e| !e.retryable));
    assert!(out[2].as_ref().is_err_and(|e| e.retryable));
    assert!(out[3].as_ref().is_err_and(|e| e.retryable), "not sent after a retryable failure");
    assert_eq!(rx.requests().len(), 4, "the batch, then events one by one up to the failure");
}

#[test]
fn a_header_value_that_http_cannot_carry_is_refused_without_showing_it() {
    for (value, why) in [("Bearer sk_live_TOPSECRET42\n", "line break"), ("Bearer sk_live_TOPSECRET42é", "U+00E9")] {
        let s = json!({"url": "http://x", "headers": {"Authorization": value}});
        let e = WebhookConfig::parse(s.as_object().unwrap()).unwrap_err();
        assert_eq!(e.at, "headers.Authorization");
        assert!(e.message.contains(why) && !e.message.contains("TOPSECRET42"), "{e:?}");
    }
    let s = json!({"url": "http://x", "headers": {"Bad Name": "v"}});
    assert_eq!(WebhookConfig::parse(s.as_object().unwrap()).unwrap_err().at, "headers.Bad Name");
}

#[test]
fn a_header_the_client_refuses_never_appears_in_the_delivery_error() {
    // defence in depth: settings that skipped validation still never leak a header value
    let rx = Receiver::start();
    let t = crate::http::Transport::new(&Default::default());
    let url = format!("{}/hook", rx.url());
    let e = t.post_once(&url, &[("Authorization", "Bearer sk_live_TOPSECRET42\n")], b"{}").unwrap_err();
    assert!(!e.message.contains("TOPSECRET42"), "{e:?}");
    assert!(e.message.contains("header"), "{e:?}");
}
