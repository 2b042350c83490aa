use super::*;
use crate::{BuildContext, Destination, Event, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::iterable;

fn sink(fake: &iterable::IterableFake, extra: serde_json::Value) -> IterableSink {
    let mut s = fake.settings();
    s.extend(json!({"retry_initial_ms": 10, "retry_max_ms": 20, "timeout_secs": 2}).as_object().unwrap().clone());
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/it-{}", fake.url()) };
    IterableSink::new(IterableConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

#[test]
fn bulk_update_failed_user_ids_fail_only_their_records() {
    let fake = iterable::start();
    fake.script(Fault::RejectRecord("u2".into()));
    let out = sink(&fake, json!({}))
        .deliver(&[item(Change::Added, "u1", json!({"plan": "pro"})), item(Change::Added, "u2", json!({}))]);
    assert!(out[0].is_ok(), "{out:?}");
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("invalidUserIds"), "{e:?}");
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/api/users/bulkUpdate");
    assert_eq!(r.header("api-key"), Some("iterable-test-key"));
    assert_eq!(
        r.json().unwrap()["users"][0],
        json!({"userId": "u1", "dataFields": {"plan": "pro"}, "preferUserId": true, "mergeNestedObjects": false})
    );
}

#[test]
fn deletes_are_one_delete_call_per_user_with_the_id_escaped() {
    let fake = iterable::start();
    let mut s = sink(&fake, json!({}));
    assert!(s.deliver(&[item(Change::Added, "a/b c", json!({}))])[0].is_ok());
    let out = s.deliver(&[item(Change::Deleted, "a/b c", json!({})), item(Change::Deleted, "u9", json!({}))]);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    let reqs = fake.requests();
    assert_eq!(reqs[1].method, "DELETE");
    assert_eq!(reqs[1].path, "/api/users/byUserId/a%2Fb%20c");
    assert_eq!(fake.deleted(), vec!["a/b c", "u9"]);
    assert!(fake.held().is_empty());
}

#[test]
fn track_events_go_to_track_bulk() {
    let fake = iterable::start();
    let ev = Event {
        seq: 1,
        source: "web".into(),
        body: json!({"type": "track", "userId": "u1", "event": "Bought", "messageId": "m1"}).to_string(),
    };
    assert!(sink(&fake, json!({})).deliver_events(&[ev])[0].is_ok());
    assert_eq!(fake.requests()[0].path, "/api/events/trackBulk");
    assert_eq!(fake.events(), vec![("u1".to_string(), "Bought".to_string())]);
}

#[test]
fn bad_settings_name_the_field() {
    for (bad, field) in [
        (json!({}), "api_key"),
        (json!({"api_key": "k", "batch_size": 1001}), "batch_size"),
        (json!({"api_key": "k", "max_requests_per_second": 6}), "max_requests_per_second"),
    ] {
        assert_eq!(IterableConfig::parse(bad.as_object().unwrap()).unwrap_err().at, field, "{bad}");
    }
}
