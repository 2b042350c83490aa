use super::*;
use crate::{BuildContext, Destination, Event, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::customerio::CustomerIoFake;
use sluice_testkit::vendors::serve::Hostile;
use std::time::{Duration, Instant};

fn sink(fake: &CustomerIoFake, extra: serde_json::Value) -> CustomerIoSink {
    let mut s = fake.settings();
    s.extend(
        json!({"retry_initial_ms": 5, "retry_max_ms": 20, "timeout_secs": 1, "max_attempts": 3})
            .as_object()
            .unwrap()
            .clone(),
    );
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/cio{}", fake.url()) };
    CustomerIoSink::new(CustomerIoConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

#[test]
fn records_are_identified_with_their_attributes_and_a_207_rejects_only_its_record() {
    let fake = CustomerIoFake::start();
    fake.script(Fault::RejectRecord("3".into()));
    let items: Vec<Item> = ["1", "2", "3"]
        .iter()
        .map(|id| item(Change::Added, id, json!({"email": format!("{id}@x.com"), "plan": "pro"})))
        .collect();
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out[0].is_ok() && out[1].is_ok(), "{out:?}");
    let e = out[2].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("malformed") && e.message.contains("attributes.email"), "{e:?}");
    assert_eq!(fake.person("1"), Some(json!({"email": "1@x.com", "plan": "pro"})));
    assert_eq!(fake.held(), vec!["1", "2"]);
    let req = &fake.requests()[0];
    assert_eq!(
        req["batch"][0],
        json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}, "attributes": {"email": "1@x.com", "plan": "pro"}})
    );
    assert_eq!(fake.requests().len(), 1, "one request for the batch");
}

#[test]
fn deletes_use_the_delete_action_and_email_identifiers_work() {
    let fake = CustomerIoFake::start();
    let mut s = sink(&fake, json!({}));
    assert!(s.deliver(&[item(Change::Added, "7", json!({"a": 1}))])[0].is_ok());
    assert!(s.deliver(&[item(Change::Deleted, "7", json!({}))])[0].is_ok());
    assert_eq!(fake.deleted(), vec!["7"]);
    assert!(fake.held().is_empty());
    let mut by_email = sink(&fake, json!({"identifier": "email", "id_field": "mail"}));
    assert!(by_email.deliver(&[item(Change::Updated, "8", json!({"mail": "p@x.com"}))])[0].is_ok());
    assert_eq!(fake.requests().last().unwrap()["batch"][0]["identifiers"], json!({"email": "p@x.com"}));
    let e = by_email.deliver(&[item(Change::Deleted, "8", json!({}))])[0].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("not supported") && e.message.contains("id_field"), "{e:?}");
}

#[test]
fn limits_an_oversize_item_is_refused_alone_and_requests_stay_under_500_kb() {
    let fake = CustomerIoFake::start();
    let big = "x".repeat(40 * 1024);
    let mid = "y".repeat(20 * 1024);
    let mut items = vec![item(Change::Added, "big", json!({"bio": big}))];
    items.extend((0..40).map(|n| item(Change::Added, &n.to_string(), json!({"bio": mid}))));
    let out = sink(&fake, json!({"batch_size": 1000})).deliver(&items);
    let e = out[0].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("32 KB"), "{e:?}");
    assert!(out[1..].iter().all(|o| o.is_ok()), "{out:?}");
    assert!(!fake.ever_received().contains(&"big".to_string()), "the oversize item was never sent");
    let reqs = fake.requests();
    assert!(reqs.len() >= 2, "40 × 20 KB needs two requests");
    assert!(reqs.iter().all(|r| r.to_string().len() <= MAX_REQUEST_BYTES));
    assert_eq!(fake.held().len(), 40);
}

#[test]
fn throttling_waits_for_retry_after_and_outages_are_retried() {
    let fake = CustomerIoFake::start();
    fake.script(Fault::Throttle(1, Duration::from_secs(1)));
    fake.script(Fault::Outage(1));
    let t = Instant::now();
    let out = sink(&fake, json!({})).deliver(&[item(Change::Added, "1", json!({}))]);
    assert!(out[0].is_ok(), "{out:?}");
    assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    fake.script(Fault::Outage(10));
    let e = sink(&fake, json!({})).deliver(&[item(Change::Added, "2", json!({}))])[0].clone().unwrap_err();
    assert!(e.retryable && e.message.contains("503"), "{e:?}");
}

#[test]
fn hostile_207_bodies_are_a_clear_retryable_error() {
    for h in [Hostile::Garbage, Hostile::Truncated] {
        let fake = CustomerIoFake::start();
        fake.hostile(Some(h));
        let out = sink(&fake, json!({})).deliver(&[item(Change::Added, "1", json!({}))]);
        let e = out[0].clone().unwrap_err();
        assert!(e.retryable && e.message.contains("207") && e.message.contains("errors"), "{h:?}: {e:?}");
    }
}

#[test]
fn a_bad_key_is_not_a_per_record_rejection_storm() {
    let fake = CustomerIoFake::start();
    let mut s = fake.settings();
    s.insert("api_key".into(), json!("wrong"));
    s.insert("max_attempts".into(), json!(1));
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "m/cio-bad".into() };
    let mut sink = CustomerIoSink::new(CustomerIoConfig::parse(&s).unwrap(), &ctx);
    let out = sink.deliver(&[item(Change::Added, "1", json!({})), item(Change::Added, "2", json!({}))]);
    assert!(
        out.iter().all(|o| o
            .as_ref()
            .is_err_and(|e| e.retryable && e.class == crate::ErrorClass::User && e.message.contains("401"))),
        "{out:?}"
    );
    assert_eq!(fake.calls(), 1, "a bad key is not sent record by record");
    assert!(fake.held().is_empty());
}

#[test]
fn streamed_identify_track_and_page_become_actions_and_group_is_refused() {
    let fake = CustomerIoFake::start();
    let ev = |seq: i64, body: serde_json::Value| Event { seq, source: "web".into(), body: body.to_string() };
    let events = vec![
        ev(1, json!({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})),
        ev(
            2,
            json!({"type": "track", "userId": "u1", "event": "Signed Up", "properties": {"via": "ads"}, "timestamp": "2024-01-01T00:00:00Z"}),
        ),
        ev(3, json!({"type": "page", "anonymousId": "a1", "name": "Home"})),
        ev(4, json!({"type": "group", "userId": "u1", "groupId": "g"})),
    ];
    let out = sink(&fake, json!({})).deliver_events(&events);
    assert!(out[0].is_ok() && out[1].is_ok() && out[2].is_ok(), "{out:?}");
    assert!(out[3].as_ref().is_err_and(|e| !e.retryable && e.message.contains("group")));
    assert_eq!(fake.person("u1"), Some(json!({"plan": "pro"})));
    let evs = fake.events();
    assert_eq!(evs[0], ("u1".to_string(), "event:Signed Up".to_string(), json!({"via": "ads"})));
    assert_eq!(evs[1].1, "page:Home");
    assert_eq!(fake.requests()[0]["batch"][1]["timestamp"], 1_704_067_200);
}

#[test]
fn settings_are_checked_naming_the_field() {
    let at = |v: serde_json::Value| CustomerIoConfig::parse(v.as_object().unwrap()).unwrap_err().at;
    assert_eq!(at(json!({"site_id": "s", "api_key": ""})), "api_key");
    assert_eq!(at(json!({"api_key": "k"})), "site_id");
    assert_eq!(at(json!({"site_id": "s", "api_key": "k", "endpoint": "ftp://x"})), "endpoint");
    assert_eq!(at(json!({"site_id": "s", "api_key": "k", "batch_size": 0})), "batch_size");
    assert_eq!(at(json!({"site_id": "s", "api_key": "k", "identifier": "phone"})), "identifier");
    assert_eq!(at(json!({"site_id": "s", "api_key": "k", "max_requests_per_second": 1000})), "max_requests_per_second");
    let c = CustomerIoConfig::parse(json!({"site_id": "s", "api_key": "secret-k"}).as_object().unwrap()).unwrap();
    assert!(!format!("{c:?}").contains("secret-k"), "the key is redacted");
}
