//! The fault suite, written once over every SaaS kind's fake
//! ([`sluice_testkit::vendors::every_kind`]): outage, throttling, partial failure, timeouts,
//! deletes. Nothing is lost: a record the vendor did not take comes back as a failure with the
//! vendor's reason; after an outage or a throttling answer it is delivered on retry, and the
//! throttling answer's wait is honoured.

use serde_json::json;
use sluice_core::{Change, DestinationConfig};
use sluice_destinations::{build, BuildContext, Destination, ErrorClass, Event, Item};
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::every_kind;
use std::time::{Duration, Instant};

fn destination(fake: &dyn VendorFake, extra: serde_json::Value) -> Box<dyn Destination> {
    let mut settings = fake.settings();
    let fast = json!({"retry_initial_ms": 10, "retry_max_ms": 50, "timeout_secs": 1, "max_attempts": 4});
    settings.extend(fast.as_object().unwrap().clone());
    settings.extend(extra.as_object().unwrap().clone());
    let d = DestinationConfig {
        id: "crm".into(),
        name: None,
        kind: fake.kind().into(),
        enabled: true,
        settings,
        consent_policy: None,
        on_withdrawal: Default::default(),
    };
    // a mapping key of its own per fake: each gets its own rate limiter
    let ctx =
        BuildContext { base_dir: ".".into(), mapping_key: format!("users/{}-{}", fake.kind(), d.settings["endpoint"]) };
    build(&d, &ctx).unwrap_or_else(|e| panic!("{}: {e:?}", fake.kind()))
}

fn new_ids(n: usize, tag: &str) -> Vec<String> {
    (1..=n).map(|i| format!("{tag}{i}@example.com")).collect()
}

fn items(fake: &dyn VendorFake, ids: &[String]) -> Vec<Item> {
    ids.iter()
        .map(|id| {
            fake.expect_identifier(id);
            Item {
                action: Change::Added,
                id: id.clone(),
                data: json!({"email": id, "first_name": "Ada", "plan": "pro"}).to_string().into(),
                consent: None,
                reason: None,
            }
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

#[test]
fn an_outage_fails_retryably_then_the_records_arrive_on_retry() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        let ids = new_ids(3, "out");
        fake.script(Fault::Outage(1));
        let out = destination(&*fake, json!({"max_attempts": 1})).deliver(&items(&*fake, &ids));
        for o in &out {
            let e = o.clone().expect_err(k);
            assert!(e.retryable && e.class == ErrorClass::External, "{k}: {e:?}");
        }
        assert!(fake.held().is_empty(), "{k}: nothing taken during the outage");
        fake.script(Fault::Outage(2));
        let out = destination(&*fake, json!({})).deliver(&items(&*fake, &ids));
        assert!(out.iter().all(|o| o.is_ok()), "{k}: {out:?}");
        assert_eq!(sorted(fake.held()), sorted(ids.clone()), "{k}: every record arrived after the outage");
    }
}

#[test]
fn a_throttling_answer_is_honoured_and_the_records_arrive() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        let ids = new_ids(3, "thr");
        fake.script(Fault::Throttle(1, Duration::from_secs(1)));
        let t = Instant::now();
        let out = destination(&*fake, json!({})).deliver(&items(&*fake, &ids));
        assert!(out.iter().all(|o| o.is_ok()), "{k}: {out:?}");
        // a vendor whose throttling answer names no wait (Salesforce, Meta) is retried with backoff
        assert!(
            !fake.throttle_names_wait() || t.elapsed() >= Duration::from_millis(900),
            "{k}: the vendor's wait was not honoured ({:?})",
            t.elapsed()
        );
        assert_eq!(sorted(fake.held()), sorted(ids.clone()), "{k}");
        // a throttle that outlasts the attempts: retryable, for the next sync
        fake.script(Fault::Throttle(1, Duration::from_secs(1)));
        let out = destination(&*fake, json!({"max_attempts": 1})).deliver(&items(&*fake, &new_ids(1, "thr2")));
        let e = out[0].clone().expect_err(k);
        assert!(e.retryable && e.class == ErrorClass::External, "{k}: {e:?}");
        // longer than max_retry_after_secs: given up at once, not slept on
        if !fake.throttle_names_wait() {
            continue;
        }
        fake.script(Fault::Throttle(1, Duration::from_secs(30)));
        let t = Instant::now();
        let out = destination(&*fake, json!({"max_retry_after_secs": 2})).deliver(&items(&*fake, &new_ids(1, "thr3")));
        assert!(out[0].as_ref().is_err_and(|e| e.retryable), "{k}: {out:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{k}: slept on a 30 s wait");
    }
}

#[test]
fn a_partial_failure_fails_only_that_record_with_the_vendors_reason() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        let ids = new_ids(4, "part");
        fake.script(Fault::RejectRecord(ids[1].clone()));
        let out = destination(&*fake, json!({})).deliver(&items(&*fake, &ids));
        for (i, o) in out.iter().enumerate() {
            if i == 1 {
                let e = o.clone().expect_err(k);
                assert!(!e.retryable && e.class == ErrorClass::User && e.message.len() > 10, "{k}: {e:?}");
            } else {
                assert!(o.is_ok(), "{k}: record {i}: {o:?}");
            }
        }
        let mut want = ids.clone();
        want.remove(1);
        assert_eq!(sorted(fake.held()), sorted(want), "{k}: the rest were delivered, the rejected one not held");
    }
}

#[test]
fn a_hanging_vendor_times_out_and_the_records_arrive_on_retry() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        let ids = new_ids(2, "hang");
        fake.script(Fault::Hang(1, Duration::from_secs(3)));
        let t = Instant::now();
        let out = destination(&*fake, json!({"timeout_secs": 0.5})).deliver(&items(&*fake, &ids));
        assert!(out.iter().all(|o| o.is_ok()), "{k}: {out:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{k}: did not time out");
        assert_eq!(sorted(fake.held()), sorted(ids.clone()), "{k}");
        // timeouts on every attempt: retryable failures, never success
        fake.script(Fault::Hang(2, Duration::from_secs(2)));
        let out = destination(&*fake, json!({"timeout_secs": 0.3, "max_attempts": 2}))
            .deliver(&items(&*fake, &new_ids(1, "hang2")));
        assert!(out[0].as_ref().is_err_and(|e| e.retryable), "{k}: {out:?}");
    }
}

#[test]
fn deleted_records_go_through_the_vendors_delete_call() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        let ids = new_ids(3, "del");
        let mut d = destination(&*fake, json!({}));
        assert!(d.deliver(&items(&*fake, &ids)).iter().all(|o| o.is_ok()), "{k}");
        let gone = Item { action: Change::Deleted, id: ids[0].clone(), data: "{}".into(), consent: None, reason: None };
        let out = d.deliver(&[gone]);
        if let Err(e) = &out[0] {
            // a vendor without a delete call for this setup (Google Customer Match by contact
            // info: a deleted row's email is gone) reports it, never drops it
            assert!(!e.retryable && e.message.contains("not supported"), "{k}: {e:?}");
            assert!(fake.deleted().is_empty(), "{k}");
            continue;
        }
        assert_eq!(fake.deleted(), vec![ids[0].clone()], "{k}");
        assert_eq!(sorted(fake.held()), sorted(ids[1..].to_vec()), "{k}");
    }
}

#[test]
fn streamed_events_make_one_attempt_and_hand_retryable_failures_back() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        // kinds without events (Salesforce, Google Ads, Meta) are not streaming destinations
        if !sluice_destinations::registry::info(k).is_some_and(|i| i.events) {
            continue;
        }
        fake.expect_identifier("ev1@example.com");
        let e = Event {
            seq: 1,
            source: "web".into(),
            body: json!({"type": "identify", "userId": "ev1@example.com", "traits": {"email": "ev1@example.com"}, "messageId": "m1"}).to_string(),
        };
        fake.script(Fault::Outage(1));
        let mut d = destination(&*fake, json!({}));
        let out = d.deliver_events(std::slice::from_ref(&e));
        assert!(out[0].as_ref().is_err_and(|e| e.retryable), "{k}: {out:?}");
        assert!(fake.held().is_empty(), "{k}");
        assert!(d.retry_policy().is_some(), "{k}");
        assert!(d.deliver_events(&[e])[0].is_ok(), "{k}");
        assert_eq!(fake.held(), vec!["ev1@example.com".to_string()], "{k}");
    }
}

#[test]
fn every_request_waits_on_the_destinations_rate_limit() {
    for start in every_kind() {
        let fake = start();
        let k = fake.kind();
        // 2 requests per second, bursts of 2: n requests take at least (n - 2) / 2 seconds
        let mut d = destination(&*fake, json!({"max_requests_per_second": 2}));
        let t = Instant::now();
        for id in new_ids(5, "rate") {
            let out = d.deliver(&items(&*fake, &[id]));
            assert!(out[0].is_ok(), "{k}: {out:?}");
        }
        let n = fake_requests(&*fake);
        let floor = Duration::from_millis(((n.saturating_sub(2)) as u64 * 500).saturating_sub(100));
        assert!(n >= 5, "{k}: {n} requests");
        assert!(t.elapsed() >= floor, "{k}: {n} requests in {:?}: the limit was not waited on", t.elapsed());
    }
}

/// How many requests the vendor saw: here each carries exactly one record, so one identifier.
fn fake_requests(fake: &dyn VendorFake) -> usize {
    fake.ever_received().len()
}
