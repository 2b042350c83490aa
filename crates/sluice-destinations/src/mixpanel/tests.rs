use super::*;
use crate::{BuildContext, Destination, Event, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::mixpanel;

fn sink(fake: &mixpanel::MixpanelFake, extra: serde_json::Value) -> MixpanelSink {
    let mut s = fake.settings();
    s.extend(json!({"retry_initial_ms": 10, "retry_max_ms": 20, "timeout_secs": 2}).as_object().unwrap().clone());
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/mp-{}", fake.url()) };
    MixpanelSink::new(MixpanelConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

#[test]
fn records_are_engage_set_and_deletes_engage_delete_and_a_refused_200_is_a_failure() {
    let fake = mixpanel::start();
    fake.script(Fault::RejectRecord("u2".into()));
    let mut s = sink(&fake, json!({}));
    let out =
        s.deliver(&[item(Change::Added, "u1", json!({"$email": "a@x.com"})), item(Change::Added, "u2", json!({}))]);
    assert!(out[0].is_ok(), "{out:?}");
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("invalid $set value"), "a 200 with status 0 is not success: {e:?}");
    let first = fake.requests()[0].json().unwrap();
    assert_eq!(first[0]["$token"], "mp-test-token");
    assert_eq!(first[0]["$set"], json!({"$email": "a@x.com"}));
    assert_eq!(fake.requests()[0].query, "verbose=1");
    assert!(s.deliver(&[item(Change::Deleted, "u1", json!({}))])[0].is_ok());
    assert_eq!(fake.deleted(), vec!["u1"]);
    assert!(fake.held().is_empty());
}

#[test]
fn import_400_partial_success_fails_only_the_failed_records() {
    let fake = mixpanel::start();
    fake.script(Fault::RejectRecord("bad".into()));
    let ev = |seq, user: &str| Event {
        seq,
        source: "web".into(),
        body: json!({"type": "track", "userId": user, "event": "Played", "messageId": format!("m{seq}")}).to_string(),
    };
    let out = sink(&fake, json!({})).deliver_events(&[ev(1, "good"), ev(2, "bad"), ev(3, "good2")]);
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    let e = out[1].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("distinct_id"), "{e:?}");
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/import");
    assert_eq!(r.query, "strict=1");
    assert_eq!(r.json().unwrap()[0]["properties"]["$insert_id"], "m1");
    assert_eq!(fake.events().len(), 2);
}

#[test]
fn bad_settings_name_the_field() {
    for (bad, field) in [
        (json!({}), "project_token"),
        (json!({"project_token": "t", "service_account": "nocolon", "project_id": "1"}), "service_account"),
        (json!({"project_token": "t", "service_account": "u:s"}), "project_id"),
        (json!({"project_token": "t", "batch_size": 3000}), "batch_size"),
    ] {
        assert_eq!(MixpanelConfig::parse(bad.as_object().unwrap()).unwrap_err().at, field, "{bad}");
    }
}
