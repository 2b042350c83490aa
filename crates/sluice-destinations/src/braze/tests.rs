use super::*;
use crate::{BuildContext, Destination, Event, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::braze;

fn sink(fake: &braze::BrazeFake, extra: serde_json::Value) -> BrazeSink {
    let mut s = fake.settings();
    s.extend(json!({"retry_initial_ms": 10, "retry_max_ms": 20, "timeout_secs": 2}).as_object().unwrap().clone());
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/braze-{}", fake.url()) };
    BrazeSink::new(BrazeConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

#[test]
fn upserts_are_attributes_with_external_id_in_requests_of_at_most_75() {
    let fake = braze::start();
    let items: Vec<Item> =
        (0..80).map(|i| item(Change::Added, &format!("u{i}"), json!({"email": format!("{i}@x.com")}))).collect();
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "75 + 5");
    assert_eq!(reqs[0].path, "/users/track");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer braze-test-key"));
    assert_eq!(reqs[0].header("x-braze-batch"), Some("true"));
    assert_eq!(reqs[0].json().unwrap()["attributes"].as_array().unwrap().len(), 75);
    assert_eq!(fake.attributes("u7").unwrap(), json!({"email": "7@x.com"}));
    assert_eq!(fake.held().len(), 80);
}

#[test]
fn braze_errors_by_index_fail_only_their_records() {
    let fake = braze::start();
    fake.script(Fault::RejectRecord("u1".into()));
    let items = vec![
        item(Change::Added, "u0", json!({})),
        item(Change::Added, "u1", json!({})),
        item(Change::Updated, "u2", json!({})),
    ];
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out[0].is_ok() && out[2].is_ok());
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("not a valid email"), "{e:?}");
    assert_eq!(fake.held(), vec!["u0", "u2"]);
}

#[test]
fn deletes_go_to_users_delete_in_fifties() {
    let fake = braze::start();
    let items: Vec<Item> = (0..60).map(|i| item(Change::Deleted, &format!("u{i}"), json!({}))).collect();
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    let reqs = fake.requests();
    assert_eq!(reqs.iter().filter(|r| r.path == "/users/delete").count(), 2);
    assert_eq!(reqs[0].json().unwrap()["external_ids"].as_array().unwrap().len(), 50);
    assert_eq!(fake.deleted().len(), 60);
}

#[test]
fn user_id_field_names_the_external_id() {
    let fake = braze::start();
    let out = sink(&fake, json!({"user_id_field": "uid"})).deliver(&[item(
        Change::Added,
        "1",
        json!({"uid": "U-1", "plan": "pro"}),
    )]);
    assert!(out[0].is_ok());
    assert_eq!(fake.held(), vec!["U-1"]);
}

#[test]
fn streamed_identify_sets_attributes_and_track_is_an_event() {
    let fake = braze::start();
    let ev = |seq, body: serde_json::Value| Event { seq, source: "web".into(), body: body.to_string() };
    let out = sink(&fake, json!({})).deliver_events(&[
        ev(1, json!({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})),
        ev(2, json!({"type": "track", "userId": "u1", "event": "Signed Up", "timestamp": "2024-01-01T00:00:00Z"})),
    ]);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    assert_eq!(fake.attributes("u1").unwrap()["plan"], "pro");
    assert_eq!(fake.events(), vec![("u1".to_string(), "Signed Up".to_string())]);
}

#[test]
fn a_wrong_key_is_rejected_with_brazes_message_and_settings_name_the_field() {
    let fake = braze::start();
    let out =
        sink(&fake, json!({"api_key": "nope", "max_attempts": 1})).deliver(&[item(Change::Added, "u", json!({}))]);
    let e = out[0].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("401") && e.message.contains("Invalid API key"), "{e:?}");
    for (bad, field) in [
        (json!({"api_key": ""}), "api_key"),
        (json!({"api_key": "k", "batch_size": 76}), "batch_size"),
        (json!({"api_key": "k", "endpoint": "ftp://x"}), "endpoint"),
        (json!({"api_key": "k", "max_requests_per_second": 5000}), "max_requests_per_second"),
        (json!({"api_key": "k", "apikey": "k"}), "apikey"),
    ] {
        assert_eq!(BrazeConfig::parse(bad.as_object().unwrap()).unwrap_err().at, field, "{bad}");
    }
    let c = BrazeConfig::parse(json!({"api_key": "sekrit"}).as_object().unwrap()).unwrap();
    assert!(!format!("{c:?}").contains("sekrit"));
}
