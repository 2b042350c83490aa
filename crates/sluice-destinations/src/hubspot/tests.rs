use super::*;
use crate::{BuildContext, Destination, Event, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::hubspot;

fn sink(fake: &hubspot::HubspotFake, extra: serde_json::Value) -> HubspotSink {
    let mut s = fake.settings();
    s.extend(json!({"retry_initial_ms": 10, "retry_max_ms": 20, "timeout_secs": 2}).as_object().unwrap().clone());
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/hs-{}", fake.url()) };
    HubspotSink::new(HubspotConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

#[test]
fn upserts_by_id_property_in_hundreds_and_207_fails_only_the_named_record() {
    let fake = hubspot::start();
    fake.script(Fault::RejectRecord("b@x.com".into()));
    let mut items: Vec<Item> =
        (0..101).map(|i| item(Change::Added, &format!("{i}@x.com"), json!({"firstname": "A"}))).collect();
    items.push(item(Change::Added, "b@x.com", json!({})));
    let out = sink(&fake, json!({})).deliver(&items);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer pat-na1-test"));
    let body = reqs[0].json().unwrap();
    assert_eq!(body["inputs"].as_array().unwrap().len(), 100);
    assert_eq!(body["inputs"][0]["idProperty"], "email");
    assert!(out[..101].iter().all(|o| o.is_ok()));
    let e = out[101].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("VALIDATION_ERROR") && e.message.contains("b@x.com"), "{e:?}");
}

#[test]
fn deletes_resolve_record_ids_then_archive() {
    let fake = hubspot::start();
    let mut s = sink(&fake, json!({}));
    assert!(s
        .deliver(&[item(Change::Added, "a@x.com", json!({})), item(Change::Added, "b@x.com", json!({}))])
        .iter()
        .all(|o| o.is_ok()));
    let out =
        s.deliver(&[item(Change::Deleted, "a@x.com", json!({})), item(Change::Deleted, "never@x.com", json!({}))]);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.ends_with(&[
            "/crm/v3/objects/contacts/batch/read".to_string(),
            "/crm/v3/objects/contacts/batch/archive".to_string()
        ]),
        "{paths:?}"
    );
    let archive = fake.requests().last().unwrap().json().unwrap();
    assert_eq!(archive, json!({"inputs": [{"id": "430001"}]}), "record ids, not emails");
    assert_eq!(fake.deleted(), vec!["a@x.com"]);
    assert_eq!(fake.held(), vec!["b@x.com"]);
}

#[test]
fn identify_upserts_and_track_is_refused_naming_the_kind() {
    let fake = hubspot::start();
    let ev = |seq, body: serde_json::Value| Event { seq, source: "web".into(), body: body.to_string() };
    let out = sink(&fake, json!({})).deliver_events(&[
        ev(1, json!({"type": "identify", "userId": "a@x.com", "traits": {"plan": "pro"}})),
        ev(2, json!({"type": "track", "userId": "a@x.com", "event": "x"})),
    ]);
    assert!(out[0].is_ok());
    assert!(out[1].as_ref().unwrap_err().message.contains("hubspot"));
    assert_eq!(fake.attributes("a@x.com").unwrap()["plan"], "pro");
}

#[test]
fn bad_settings_name_the_field() {
    for (bad, field) in [
        (json!({}), "access_token"),
        (json!({"access_token": "t", "batch_size": 101}), "batch_size"),
        (json!({"access_token": "t", "id_property": "e mail"}), "id_property"),
        (json!({"access_token": "t", "max_requests_per_second": 11}), "max_requests_per_second"),
    ] {
        assert_eq!(HubspotConfig::parse(bad.as_object().unwrap()).unwrap_err().at, field, "{bad}");
    }
}
