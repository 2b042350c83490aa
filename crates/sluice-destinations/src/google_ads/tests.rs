use super::*;
use crate::{BuildContext, Destination, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::google_ads::GoogleAdsFake;
use sluice_testkit::vendors::serve::Hostile;
use std::time::{Duration, Instant};

fn sink(fake: &GoogleAdsFake, extra: serde_json::Value) -> GoogleAdsSink {
    let mut s = fake.settings();
    s.extend(
        json!({"retry_initial_ms": 5, "retry_max_ms": 20, "timeout_secs": 2, "max_attempts": 3, "max_polls": 4})
            .as_object()
            .unwrap()
            .clone(),
    );
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/gads{}", fake.url()) };
    GoogleAdsSink::new(GoogleAdsConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, email: &str) -> Item {
    Item { action, id: id.into(), data: crate::raw(&json!({"email": email})), consent: None, reason: None }
}

fn people(fake: &GoogleAdsFake, emails: &[&str]) -> Vec<Item> {
    emails
        .iter()
        .enumerate()
        .map(|(i, e)| {
            fake.expect_identifier(e);
            item(Change::Added, &i.to_string(), e)
        })
        .collect()
}

#[test]
fn a_job_is_created_filled_run_and_polled_with_googles_normalised_hashes() {
    let fake = GoogleAdsFake::start();
    fake.polls_before_done(2);
    let items = people(&fake, &["John.Doe@GMail.com", "ann@example.com"]);
    let out = sink(&fake, json!({"login_customer_id": "111-222-3333"})).deliver(&items);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    assert_eq!(
        fake.held(),
        vec!["John.Doe@GMail.com", "ann@example.com"],
        "gmail dots removed before hashing, as the fake expects"
    );
    let paths = fake.paths();
    assert!(paths[0].ends_with("/customers/1234567890/offlineUserDataJobs:create"), "{paths:?}");
    assert!(paths[1].ends_with(":addOperations") && paths[2].ends_with(":run"), "{paths:?}");
    assert!(paths[3..].iter().all(|p| p.ends_with("/googleAds:search")) && paths.len() == 6, "{paths:?}");
}

#[test]
fn a_partial_failure_rejects_only_its_operation_with_googles_reason() {
    let fake = GoogleAdsFake::start();
    let items = people(&fake, &["a@x.com", "b@x.com", "c@x.com"]);
    fake.script(Fault::RejectRecord("b@x.com".into()));
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    let e = out[1].clone().unwrap_err();
    assert!(
        !e.retryable && e.message.contains("INVALID_USER_IDENTIFIER") && e.message.contains("not valid for this list"),
        "{e:?}"
    );
    assert_eq!(fake.held(), vec!["a@x.com", "c@x.com"]);
}

#[test]
fn records_without_identifiers_are_reported_and_deletes_need_a_crm_id_list() {
    let fake = GoogleAdsFake::start();
    let mut s = sink(&fake, json!({}));
    let out = s.deliver(&[item(Change::Added, "1", ""), item(Change::Deleted, "2", "")]);
    assert!(out[0].as_ref().is_err_and(|e| e.message.contains("no usable identifier")));
    assert!(out[1]
        .as_ref()
        .is_err_and(|e| !e.retryable && e.message.contains("not supported") && e.message.contains("crm_id")));
    assert!(fake.paths().is_empty(), "nothing to send");

    let mut crm = sink(&fake, json!({"match_key": "crm_id", "email_field": null}));
    assert!(crm.deliver(&[item(Change::Added, "u7", "")])[0].is_ok());
    assert_eq!(fake.held(), vec!["u7"]);
    assert!(crm.deliver(&[item(Change::Deleted, "u7", "")])[0].is_ok());
    assert_eq!(fake.deleted(), vec!["u7"]);
    assert!(fake.held().is_empty());
}

#[test]
fn resource_exhausted_waits_for_its_retry_delay_and_outages_are_retried() {
    let fake = GoogleAdsFake::start();
    fake.script(Fault::Throttle(1, Duration::from_secs(1)));
    fake.script(Fault::Outage(1));
    let t = Instant::now();
    let out = sink(&fake, json!({})).deliver(&people(&fake, &["a@x.com"]));
    assert!(out[0].is_ok(), "{out:?}");
    assert!(t.elapsed() >= Duration::from_secs(1), "retryDelay honoured");
    assert_eq!(fake.held(), vec!["a@x.com"]);
}

#[test]
fn a_failed_job_fails_its_records_and_an_endless_one_stops_polling() {
    let fake = GoogleAdsFake::start();
    fake.fail_jobs(Some("PROCESSING_FAILURE"));
    let e = sink(&fake, json!({})).deliver(&people(&fake, &["a@x.com"]))[0].clone().unwrap_err();
    assert!(e.retryable && e.message.contains("FAILED") && e.message.contains("PROCESSING_FAILURE"), "{e:?}");

    let fake = GoogleAdsFake::start();
    fake.hostile(Some(Hostile::NeverFinish));
    let t = Instant::now();
    let out = sink(&fake, json!({})).deliver(&people(&fake, &["a@x.com"]));
    assert!(t.elapsed() < Duration::from_secs(5));
    let polls = fake.paths().iter().filter(|p| p.ends_with("googleAds:search")).count();
    assert_eq!(polls, 4, "max_polls bounds the polling");
    assert!(out[0].is_ok(), "the operation was taken; Google goes on processing it");
}

#[test]
fn hostile_answers_are_clear_retryable_errors() {
    for h in [Hostile::Garbage, Hostile::Truncated] {
        let fake = GoogleAdsFake::start();
        fake.hostile(Some(h));
        let e = sink(&fake, json!({})).deliver(&people(&fake, &["a@x.com"]))[0].clone().unwrap_err();
        assert!(e.retryable && e.message.contains("not the expected JSON"), "{h:?}: {e:?}");
    }
    let fake = GoogleAdsFake::start();
    let mut s = fake.settings();
    s.insert("developer_token".into(), json!("wrong"));
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "m/gads-bad".into() };
    let e = GoogleAdsSink::new(GoogleAdsConfig::parse(&s).unwrap(), &ctx).deliver(&people(&fake, &["a@x.com"]))[0]
        .clone()
        .unwrap_err();
    assert!(e.message.contains("401") && e.message.contains("developer token"), "{e:?}");
    assert!(e.retryable && e.class == crate::ErrorClass::User, "a bad token does not reject the records for good");
}

#[test]
fn settings_name_the_field() {
    let base = json!({"developer_token": "d", "access_token": "t", "customer_id": "123-456-7890", "user_list_id": "9", "email_field": "email"});
    let at = |patch: serde_json::Value| {
        let mut s = base.as_object().unwrap().clone();
        s.extend(patch.as_object().unwrap().clone());
        GoogleAdsConfig::parse(&s).unwrap_err().at
    };
    assert_eq!(at(json!({"customer_id": "12345"})), "customer_id");
    assert_eq!(at(json!({"user_list_id": "x"})), "user_list_id");
    assert_eq!(at(json!({"email_field": null})), "email_field");
    assert_eq!(at(json!({"match_key": "crm_id"})), "email_field");
    assert_eq!(at(json!({"login_customer_id": "1"})), "login_customer_id");
    assert_eq!(at(json!({"max_polls": 0})), "max_polls");
    assert_eq!(at(json!({"ad_user_data": "MAYBE"})), "ad_user_data");
    let ok = GoogleAdsConfig::parse(base.as_object().unwrap()).unwrap();
    assert_eq!(ok.customer_id, "1234567890");
}
