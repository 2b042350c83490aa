//! Reverse ETL to customerio, salesforce, google_ads and meta through the engine (SQLite model,
//! consent-gated mapping) against each vendor's fake: the records consent withholds never reach
//! the vendor (not their id, not their email), the others are held, and a deleted row goes
//! through the vendor's delete call (or, for a Customer Match contact list, is reported as not
//! supported, never dropped).

mod common;
use common::*;
use sluice_testkit::vendor::VendorFake;
use sluice_testkit::vendors::{
    customerio::CustomerIoFake, google_ads::GoogleAdsFake, meta::MetaFake, salesforce::SalesforceFake,
};

const PEOPLE: &str = "create table people(id text, email text, ads);
     insert into people values ('1','a@x.com',1),('2','b@x.com',0),('3','c@x.com',null),('4','d@x.com','t');";
const WITHHELD: [&str; 4] = ["2", "3", "b@x.com", "c@x.com"];

/// Syncs `people` to the fake (its settings plus fast retries), field `dest_field` ← email.
fn sync_once(env: &mut Env, fake: &dyn VendorFake, dest_field: &str) -> sluice_engine::RunReport {
    let mut settings = fake.settings();
    for (k, v) in [("retry_initial_ms", 5), ("retry_max_ms", 20), ("max_attempts", 2)] {
        settings.insert(k.into(), v.into());
    }
    let ws = env.workspace(&format!(
        "destinations:
  - {{id: dest, name: Dest, kind: {kind}, settings: {settings}}}
consent_categories:
  - {{id: C0004, name: Advertising, destinations: [dest]}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: dest, fields: {{{dest_field}: email}}}}]}}",
        kind = fake.kind(),
        settings = serde_json::Value::Object(settings),
    ));
    env.sync(&ws, "people")
}

fn check_consent(fake: &dyn VendorFake, r: &sluice_engine::RunReport) {
    let m = mapping(r, "dest");
    assert_eq!((m.delivered, m.withheld_by_consent, m.failed), (2, 2, 0), "{m:?}");
    assert_eq!(m.withheld_by_category.get("C0004"), Some(&2));
    let ever = fake.ever_received();
    for w in WITHHELD {
        assert!(!ever.iter().any(|e| e == w), "withheld `{w}` reached {}: {ever:?}", fake.kind());
    }
}

#[test]
fn customerio_gets_only_consented_people_and_their_deletes() {
    let mut env = Env::new(PEOPLE);
    let fake = CustomerIoFake::start();
    let r = sync_once(&mut env, &fake, "email");
    check_consent(&fake, &r);
    assert_eq!(fake.held(), ids(&["1", "4"]));
    assert_eq!(fake.person("4"), Some(serde_json::json!({"email": "d@x.com"})));
    env.sql("delete from people where id in ('1', '2');");
    let r = sync_once(&mut env, &fake, "email");
    assert_eq!((mapping(&r, "dest").deleted, mapping(&r, "dest").delivered), (1, 1));
    assert_eq!(fake.deleted(), ids(&["1"]), "the withheld record 2 gets no delete either");
    assert!(!fake.ever_received().iter().any(|e| e == "2"));
}

#[test]
fn salesforce_gets_only_consented_records_through_bulk_jobs_and_deletes_them() {
    let mut env = Env::new(PEOPLE);
    let fake = SalesforceFake::start();
    let r = sync_once(&mut env, &fake, "Email");
    check_consent(&fake, &r);
    assert_eq!(fake.held(), ids(&["1", "4"]));
    assert_eq!(fake.record("1").unwrap()["Email"], "a@x.com");
    env.sql("delete from people where id in ('1', '2');");
    let r = sync_once(&mut env, &fake, "Email");
    assert_eq!(mapping(&r, "dest").deleted, 1);
    assert_eq!(fake.deleted(), ids(&["1"]));
    assert_eq!(fake.held(), ids(&["4"]));
}

#[test]
fn meta_gets_only_consented_hashes_and_removes_by_extern_id() {
    let mut env = Env::new(PEOPLE);
    let fake = MetaFake::start();
    for e in ["a@x.com", "b@x.com", "c@x.com", "d@x.com"] {
        fake.expect_identifier(e);
    }
    let r = sync_once(&mut env, &fake, "email");
    check_consent(&fake, &r);
    assert_eq!(fake.held(), ids(&["1", "4"]));
    assert_eq!(fake.held_hashes().len(), 2);
    env.sql("delete from people where id in ('1', '2');");
    let r = sync_once(&mut env, &fake, "email");
    assert_eq!((mapping(&r, "dest").deleted, mapping(&r, "dest").failed), (1, 0));
    assert_eq!(fake.deleted(), ids(&["1"]));
}

#[test]
fn google_ads_gets_only_consented_hashes_and_reports_deletes_it_cannot_make() {
    let mut env = Env::new(PEOPLE);
    let fake = GoogleAdsFake::start();
    for e in ["a@x.com", "b@x.com", "c@x.com", "d@x.com"] {
        fake.expect_identifier(e);
    }
    let r = sync_once(&mut env, &fake, "email");
    check_consent(&fake, &r);
    assert_eq!(fake.held(), ids(&["a@x.com", "d@x.com"]));
    env.sql("delete from people where id in ('1', '2');");
    let r = sync_once(&mut env, &fake, "email");
    let m = mapping(&r, "dest");
    assert_eq!((m.deleted, m.failed_permanent), (1, 1), "{m:?}");
    assert!(m.failure_samples.permanent[0].error.contains("not supported"), "{:?}", m.failure_samples);
    assert!(fake.deleted().is_empty());
}
