use super::*;
use crate::{BuildContext, Destination, ErrorClass, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::salesforce::SalesforceFake;
use sluice_testkit::vendors::serve::Hostile;
use std::time::{Duration, Instant};

fn sink(fake: &SalesforceFake, extra: serde_json::Value) -> SalesforceSink {
    let mut s = fake.settings();
    s.extend(
        json!({"retry_initial_ms": 5, "retry_max_ms": 20, "timeout_secs": 2, "max_attempts": 3, "max_polls": 6})
            .as_object()
            .unwrap()
            .clone(),
    );
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/sf{}", fake.url()) };
    SalesforceSink::new(SalesforceConfig::parse(&s).unwrap(), &ctx)
}

fn item(action: Change, id: &str, data: serde_json::Value) -> Item {
    Item { action, id: id.into(), data: crate::raw(&data), consent: None, reason: None }
}

fn people(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            item(
                Change::Added,
                &format!("ext-{i}"),
                json!({"Email": format!("p{i}@x.com"), "LastName": format!("L{i}")}),
            )
        })
        .collect()
}

#[test]
fn upserts_run_one_job_and_failures_are_joined_by_external_id_despite_shuffled_results() {
    let fake = SalesforceFake::start();
    let mut items = people(12);
    items.push(item(
        Change::Added,
        "tricky",
        json!({"Email": "t@x.com", "LastName": "O'Neil, \"Jr\"\nsecond line", "Title": null}),
    ));
    fake.script(Fault::RejectRecord("ext-3".into()));
    fake.script(Fault::RejectRecord("ext-8".into()));
    let out = sink(&fake, json!({})).deliver(&items);
    for (i, o) in out.iter().enumerate() {
        if i == 3 || i == 8 {
            let e = o.clone().unwrap_err();
            assert!(
                !e.retryable && e.class == ErrorClass::User && e.message.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                "{e:?}"
            );
        } else {
            assert!(o.is_ok(), "record {i}: {o:?}");
        }
    }
    assert_eq!(fake.jobs(), 1);
    let t = fake.record("tricky").unwrap();
    assert_eq!(t["LastName"], "O'Neil, \"Jr\"\nsecond line", "CSV quoting kept the value");
    assert_eq!(t["Title"], "#N/A", "null clears the field");
    assert_eq!(fake.record("ext-5").unwrap()["Email"], "p5@x.com");
    let calls = fake.calls();
    assert!(calls[0].starts_with("POST /services/data/v62.0/jobs/ingest"), "{calls:?}");
    assert!(calls[1].starts_with("PUT ") && calls[1].ends_with("/batches"), "{calls:?}");
    assert!(calls[2].starts_with("PATCH "), "{calls:?}");
    assert!(calls.iter().any(|c| c.ends_with("/failedResults/")));
}

#[test]
fn deletes_look_up_ids_then_run_a_delete_job() {
    let fake = SalesforceFake::start();
    let mut s = sink(&fake, json!({}));
    assert!(s.deliver(&people(3)).iter().all(|o| o.is_ok()));
    let out = s.deliver(&[item(Change::Deleted, "ext-1", json!({})), item(Change::Deleted, "never-synced", json!({}))]);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    assert_eq!(fake.deleted(), vec!["ext-1"]);
    assert_eq!(fake.held(), vec!["ext-0", "ext-2"]);
    assert!(fake.calls().iter().any(|c| c.starts_with("GET /services/data/v62.0/query")));
}

#[test]
fn uploads_over_the_byte_limit_are_split_into_jobs() {
    let fake = SalesforceFake::start();
    fake.max_upload_bytes(2048);
    let items: Vec<Item> =
        (0..20).map(|i| item(Change::Added, &format!("e{i}"), json!({"Description": "d".repeat(300)}))).collect();
    let out = sink(&fake, json!({"max_upload_bytes": 2048})).deliver(&items);
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    assert!(fake.jobs() >= 4, "20 × 300 bytes in uploads of 2 KB: {} jobs", fake.jobs());
    assert_eq!(fake.held().len(), 20);
    let huge = item(Change::Added, "huge", json!({"Description": "d".repeat(3000)}));
    let e = sink(&fake, json!({"max_upload_bytes": 2048})).deliver(&[huge])[0].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("max_upload_bytes"), "{e:?}");
}

#[test]
fn request_limit_exceeded_is_throttling_and_outages_are_retried() {
    let fake = SalesforceFake::start();
    fake.script(Fault::Throttle(1, Duration::from_millis(10)));
    fake.script(Fault::Outage(2));
    assert!(sink(&fake, json!({"max_attempts": 4})).deliver(&people(2)).iter().all(|o| o.is_ok()));
    assert_eq!(fake.held().len(), 2);
    fake.script(Fault::Throttle(10, Duration::from_millis(10)));
    let e = sink(&fake, json!({})).deliver(&people(1))[0].clone().unwrap_err();
    assert!(e.retryable && e.message.contains("REQUEST_LIMIT_EXCEEDED"), "{e:?}");
}

#[test]
fn an_endless_job_is_aborted_after_max_polls() {
    let fake = SalesforceFake::start();
    fake.hostile(Some(Hostile::NeverFinish));
    let t = Instant::now();
    let out = sink(&fake, json!({})).deliver(&people(2));
    assert!(t.elapsed() < Duration::from_secs(10));
    for o in out {
        let e = o.unwrap_err();
        assert!(e.retryable && e.message.contains("after 6 polls") && e.message.contains("aborted"), "{e:?}");
    }
    assert!(fake.calls().last().unwrap().starts_with("PATCH "), "the job was aborted");
}

#[test]
fn garbage_or_cut_result_csvs_are_clear_retryable_errors() {
    for (h, want) in [(Hostile::Garbage, "no `Sluice_Id__c` column"), (Hostile::Truncated, "")] {
        let fake = SalesforceFake::start();
        fake.hostile(Some(h));
        let out = sink(&fake, json!({})).deliver(&people(3));
        for o in out {
            let e = o.unwrap_err();
            assert!(e.retryable && e.message.contains(want) && e.message.contains("successfulResults"), "{h:?}: {e:?}");
        }
    }
}

#[test]
fn an_expired_token_fails_retryably_without_a_job() {
    let fake = SalesforceFake::start();
    let mut s = fake.settings();
    s.insert("access_token".into(), json!("expired"));
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "m/sf-bad".into() };
    let out = SalesforceSink::new(SalesforceConfig::parse(&s).unwrap(), &ctx).deliver(&people(2));
    for o in out {
        let e = o.unwrap_err();
        assert!(e.retryable && e.class == ErrorClass::User && e.message.contains("INVALID_SESSION_ID"), "{e:?}");
    }
    assert_eq!(fake.jobs(), 0);
}

#[test]
fn settings_name_the_field() {
    let base = json!({"endpoint": "https://x.my.salesforce.com", "access_token": "t", "object": "Contact", "external_id_field": "Ext__c"});
    let at = |patch: serde_json::Value| {
        let mut s = base.as_object().unwrap().clone();
        s.extend(patch.as_object().unwrap().clone());
        SalesforceConfig::parse(&s).unwrap_err().at
    };
    assert_eq!(at(json!({"object": "Contact; DROP"})), "object");
    assert_eq!(at(json!({"external_id_field": ""})), "external_id_field");
    assert_eq!(at(json!({"max_upload_bytes": 200_000_000})), "max_upload_bytes");
    assert_eq!(at(json!({"batch_size": 20_000})), "batch_size");
    assert_eq!(at(json!({"api_version": "62"})), "api_version");
    assert_eq!(at(json!({"endpoint": null})), "endpoint");
    assert_eq!(job::soql_literal("a'b\\c"), "'a\\'b\\\\c'");
}

#[test]
fn a_mapped_field_that_is_not_an_api_name_is_reported_per_record() {
    let fake = SalesforceFake::start();
    let out = sink(&fake, json!({})).deliver(&[
        item(Change::Added, "a", json!({"first name": "x"})),
        item(Change::Added, "b", json!({"FirstName": "y"})),
    ]);
    assert!(out[0].as_ref().is_err_and(|e| e.message.contains("`first name`")));
    assert!(out[1].is_ok());
    assert_eq!(fake.held(), vec!["b"]);
}
