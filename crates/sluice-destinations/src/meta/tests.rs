use super::*;
use crate::audience::{sha256_hex, Vendor};
use crate::{BuildContext, Destination, ErrorClass, Item};
use serde_json::json;
use sluice_core::Change;
use sluice_testkit::vendor::{Fault, VendorFake};
use sluice_testkit::vendors::meta::MetaFake;
use sluice_testkit::vendors::serve::Hostile;

fn sink(fake: &MetaFake, extra: serde_json::Value) -> MetaSink {
    let mut s = fake.settings();
    s.extend(
        json!({"retry_initial_ms": 5, "retry_max_ms": 20, "timeout_secs": 2, "max_attempts": 3})
            .as_object()
            .unwrap()
            .clone(),
    );
    s.extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/meta{}", fake.url()) };
    MetaSink::new(MetaConfig::parse(&s).unwrap(), &ctx)
}

fn add(id: &str, email: &str) -> Item {
    Item {
        action: Change::Added,
        id: id.into(),
        data: crate::raw(&json!({"email": email, "name": "N"})),
        consent: None,
        reason: None,
    }
}

fn people(fake: &MetaFake, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let e = format!("P{i}@Example.com");
            fake.expect_identifier(&e);
            add(&i.to_string(), &e)
        })
        .collect()
}

#[test]
fn adds_send_extern_id_and_sha256_of_metas_normalised_email() {
    let fake = MetaFake::start();
    fake.expect_identifier(" Ann@X.com ");
    let mut s = sink(&fake, json!({"phone_field": "phone"}));
    let it = Item {
        action: Change::Added,
        id: "1".into(),
        data: crate::raw(&json!({"email": " Ann@X.com ", "phone": "+1 (415) 555-0100", "name": "not sent"})),
        consent: None,
        reason: None,
    };
    assert!(s.deliver(&[it])[0].is_ok());
    assert_eq!(fake.held(), vec!["1"]);
    let mut hashes = fake.held_hashes();
    hashes.sort();
    let mut want = vec![sha256_hex("ann@x.com"), sha256_hex("14155550100")];
    want.sort();
    assert_eq!(hashes, want, "email trimmed+lowercased, phone digits only with country code");
    assert_eq!(
        fake.ever_received(),
        vec!["1".to_string(), " Ann@X.com ".to_string()],
        "nothing else identifies the person"
    );
}

#[test]
fn a_record_without_a_usable_identifier_is_reported_not_sent() {
    let fake = MetaFake::start();
    let out = sink(&fake, json!({})).deliver(&[add("1", "not-an-email"), add("2", "b@x.com")]);
    let e = out[0].clone().unwrap_err();
    assert!(!e.retryable && e.message.contains("no usable identifier") && e.message.contains("`email`"), "{e:?}");
    assert!(out[1].is_ok());
    assert_eq!(fake.ever_received(), vec!["2"]);
}

#[test]
fn at_most_10000_rows_per_request() {
    let fake = MetaFake::start();
    let items = people(&fake, MAX_ROWS + 1);
    let out = sink(&fake, json!({})).deliver(&items);
    assert!(out.iter().all(|o| o.is_ok()));
    assert_eq!(fake.requests(), vec![("POST".to_string(), 10_000), ("POST".to_string(), 1)]);
    assert_eq!(fake.held().len(), MAX_ROWS + 1);
}

#[test]
fn deletes_remove_by_extern_id() {
    let fake = MetaFake::start();
    let mut s = sink(&fake, json!({}));
    assert!(s.deliver(&people(&fake, 2)).iter().all(|o| o.is_ok()));
    let del =
        Item { action: Change::Deleted, id: "1".into(), data: crate::raw(&json!({})), consent: None, reason: None };
    assert!(s.deliver(&[del])[0].is_ok());
    assert_eq!(fake.deleted(), vec!["1"]);
    assert_eq!(fake.held(), vec!["0"]);
    assert_eq!(fake.requests().last().unwrap().0, "DELETE");
}

#[test]
fn invalid_entries_are_mapped_to_their_records_named_or_not() {
    for named in [true, false] {
        let fake = MetaFake::start();
        fake.name_invalid(named);
        let items = people(&fake, 8);
        fake.script(Fault::RejectRecord("5".into()));
        let out = sink(&fake, json!({})).deliver(&items);
        for (i, o) in out.iter().enumerate() {
            if i == 5 {
                let e = o.clone().unwrap_err();
                assert!(!e.retryable && e.class == ErrorClass::User && e.message.contains("invalid"), "{named}: {e:?}");
            } else {
                assert!(o.is_ok(), "{named}: record {i}: {o:?}");
            }
        }
        assert_eq!(fake.held().len(), 7);
        if named {
            assert_eq!(fake.requests().len(), 1, "a named sample needs no second request");
        } else {
            assert!(fake.requests().len() <= 1 + 2 * 3, "halving: {:?}", fake.requests());
        }
    }
}

#[test]
fn graph_throttling_codes_are_retried_and_a_bad_token_is_not_split() {
    let fake = MetaFake::start();
    fake.script(Fault::Throttle(1, std::time::Duration::from_millis(10)));
    fake.script(Fault::Outage(1));
    let items = people(&fake, 3);
    assert!(sink(&fake, json!({})).deliver(&items).iter().all(|o| o.is_ok()));
    assert_eq!(fake.requests().len(), 1, "throttled and failed answers are not counted as taken requests");

    let mut s = fake.settings();
    s.insert("access_token".into(), json!("expired"));
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "m/meta-bad".into() };
    let mut bad = MetaSink::new(MetaConfig::parse(&s).unwrap(), &ctx);
    let out = bad.deliver(&people(&fake, 4));
    for o in &out {
        let e = o.clone().unwrap_err();
        assert!(e.retryable && e.class == ErrorClass::User && e.message.contains("190"), "{e:?}");
    }
    assert_eq!(fake.requests().len(), 1, "a bad token is not sent record by record");
}

#[test]
fn hostile_answers_are_clear_retryable_errors() {
    for h in [Hostile::Garbage, Hostile::Truncated] {
        let fake = MetaFake::start();
        fake.hostile(Some(h));
        let e = sink(&fake, json!({})).deliver(&people(&fake, 2))[0].clone().unwrap_err();
        assert!(e.retryable && e.message.contains("num_received"), "{h:?}: {e:?}");
    }
}

#[test]
fn settings_name_the_field_and_hashes_match_the_shared_rules() {
    let at = |v: serde_json::Value| MetaConfig::parse(v.as_object().unwrap()).unwrap_err().at;
    assert_eq!(at(json!({"access_token": "t", "audience_id": "1"})), "email_field");
    assert_eq!(at(json!({"access_token": "t", "audience_id": "abc", "email_field": "e"})), "audience_id");
    assert_eq!(at(json!({"access_token": "", "audience_id": "1", "email_field": "e"})), "access_token");
    assert_eq!(
        at(json!({"access_token": "t", "audience_id": "1", "email_field": "e", "batch_size": 10001})),
        "batch_size"
    );
    assert_eq!(
        at(json!({"access_token": "t", "audience_id": "1", "phone_field": "p", "phone_country_code": "x"})),
        "phone_country_code"
    );
    assert_eq!(crate::audience::hashed_email("A@B.co", Vendor::Meta).unwrap(), sha256_hex("a@b.co"));
}

#[test]
fn a_refusal_of_the_whole_request_is_not_split_row_by_row() {
    let fake = MetaFake::start();
    let items = people(&fake, 64);
    let out = sink(&fake, json!({"audience_id": "999"})).deliver(&items);
    for o in &out {
        let e = o.clone().unwrap_err();
        assert!(!e.retryable && e.message.contains("does not exist"), "{e:?}");
    }
    assert!(fake.calls() <= 8, "{} requests for one refused batch of 64", fake.calls());
}
