use super::*;
use crate::{BuildContext, Destination, Event, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::amplitude;

fn sink(fake: &amplitude::AmplitudeFake, extra: serde_json::Value) -> AmplitudeSink {
    let mut s = fake.settings();
    s.extend(json!({"retry_initial_ms": 10, "retry_max_ms": 20, "timeout_secs": 2}).as_object().unwrap().clone());
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/amp-{}", fake.url()) };
    AmplitudeSink::new(AmplitudeConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

fn ev(seq: i64, body: serde_json::Value) -> Event {
    Event { seq, source: "web".into(), body: body.to_string() }
}

#[test]
fn records_are_identify_user_properties_and_a_rejected_one_is_isolated() {
    let fake = amplitude::start();
    fake.script(Fault::RejectRecord("u2".into()));
    let items: Vec<Item> =
        ["u1", "u2", "u3"].iter().map(|id| item(Change::Added, id, json!({"plan": "pro"}))).collect();
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("invalid user_id"), "{e:?}");
    let first = &fake.requests()[0];
    assert_eq!(first.path, "/identify");
    assert_eq!(first.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(fake.attributes("u1").unwrap(), json!({"plan": "pro"}));
    assert_eq!(fake.held(), vec!["u1", "u3"]);
}

#[test]
fn track_events_named_invalid_by_a_400_fail_and_the_rest_are_sent_again() {
    let fake = amplitude::start();
    fake.script(Fault::RejectRecord("bad-user".into()));
    let out = sink(&fake, json!({})).deliver_events(&[
        ev(1, json!({"type": "track", "userId": "good-user", "event": "Signed Up"})),
        ev(2, json!({"type": "track", "userId": "bad-user", "event": "Signed Up"})),
        ev(3, json!({"type": "identify", "userId": "good-user", "traits": {"a": 1}})),
    ]);
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("invalid field `user_id`"), "{e:?}");
    assert_eq!(fake.events(), vec![("good-user".to_string(), "Signed Up".to_string())]);
    let calls: Vec<_> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(calls, vec!["/identify", "/2/httpapi", "/2/httpapi"]);
}

#[test]
fn deletes_use_the_privacy_api_with_basic_auth_in_hundreds() {
    let fake = amplitude::start();
    let items: Vec<Item> = (0..150).map(|i| item(Change::Deleted, &format!("u{i}"), json!({}))).collect();
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/api/2/deletions/users");
    assert!(reqs[0].header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(fake.deleted().len(), 150);
    let out = sink(&fake, json!({"secret_key": "wrong", "max_attempts": 1})).deliver(&items[..1]);
    assert!(out[0].as_ref().unwrap_err().message.contains("401"));
}

#[test]
fn bad_settings_name_the_field() {
    for (bad, field) in [
        (json!({"api_key": "k"}), "secret_key"),
        (json!({"api_key": "k", "secret_key": "s", "batch_size": 2001}), "batch_size"),
        (json!({"api_key": "k", "secret_key": "s", "deletion_endpoint": "x"}), "deletion_endpoint"),
    ] {
        assert_eq!(AmplitudeConfig::parse(bad.as_object().unwrap()).unwrap_err().at, field, "{bad}");
    }
}
