//! Privacy requests in Reverse ETL (SPEC §12): suppressed record ids are withheld from every
//! destination; deletes reach a real HTTP receiver with `reason: privacy_request` and move the
//! checkpoint; a kind without a delete call is NOT_SUPPORTED; a destination that is down stays
//! RUNNING until it is up (or FAILED after the bound).

mod common;
use common::*;
use sluice_engine::privacy::{self, DeleteOptions};
use sluice_state::{DeleteStatus, NewRegulation, RegulationType};
use std::time::Duration;

const PEOPLE: &str = "create table people(id integer, email text, ads);
    insert into people values (1,'a@x',1),(2,'b@x',1),(3,'c@x',0);";

fn workspace(env: &Env) -> sluice_engine::Workspace {
    env.workspace(&format!(
        "destinations:\n{}{}  - {{id: seg, kind: connections, settings: {{url: \"{{URL}}/seg\", write_key: wk}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: crm}}]}}",
        hook("ads"),
        hook("crm")
    ))
}

fn request(env: &mut Env, ws: &sluice_engine::Workspace, kind: RegulationType, ids: &[&str]) -> String {
    env.store
        .create_regulation(&NewRegulation {
            id: sluice_state::privacy::new_regulation_id(),
            kind,
            subject_type: "USER_ID".into(),
            subject_ids: ids.iter().map(|s| s.to_string()).collect(),
            joined_ids: vec![],
            destinations: privacy::plan(&ws.file, kind),
            created_by: "cli:test".into(),
        })
        .unwrap()
        .id
}

#[test]
fn a_suppressed_record_is_withheld_from_every_destination_until_unsuppressed() {
    let mut env = Env::new(PEOPLE);
    let ws = workspace(&env);
    request(&mut env, &ws, RegulationType::SuppressOnly, &["2"]);
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/crm", "added"), ids(&["1", "3"]));
    assert_eq!(env.ids("/ads", "added"), ids(&["1"]));
    let (crm, ads) = (mapping(&r, "crm"), mapping(&r, "ads"));
    assert_eq!((crm.withheld_by_privacy_request, crm.delivered, crm.withheld_by_consent), (1, 2, 0));
    assert_eq!((ads.withheld_by_privacy_request, ads.delivered, ads.withheld_by_consent), (1, 1, 1));
    // not counted as usage (R11): only what was delivered
    let usage: i64 = env.store.usage().unwrap().iter().map(|u| u.records).sum();
    assert_eq!(usage, 3);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["mappings"][0]["withheld_by_privacy_request"], 1, "the sync --json key");
    // lifted: the next sync sends it as added
    env.rx.clear();
    request(&mut env, &ws, RegulationType::Unsuppress, &["2"]);
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/crm", "added"), ids(&["2"]));
    assert_eq!(env.ids("/ads", "added"), ids(&["2"]));
    assert_eq!(mapping(&r, "crm").withheld_by_privacy_request, 0);
}

#[test]
fn a_delete_reaches_each_destination_that_holds_the_person_and_frees_the_checkpoint() {
    let mut env = Env::new(PEOPLE);
    let ws = workspace(&env);
    env.sync(&ws, "people");
    env.rx.clear();
    // 3 is held by crm only (ads never got it: consent refused)
    let reg = request(&mut env, &ws, RegulationType::SuppressWithDelete, &["3"]);
    let attempts = privacy::run_due(&mut env.store, &ws, DeleteOptions::default(), &|_, _| true).unwrap();
    assert_eq!(attempts.len(), 2, "ads and crm; seg is not supported: {attempts:?}");
    let items = env.rx.items("/crm");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0], serde_json::json!({"action": "deleted", "id": "3", "data": {}, "reason": "privacy_request"}));
    assert!(env.rx.items("/ads").is_empty(), "ads holds nothing of 3");
    let r = env.store.regulation(&reg).unwrap().unwrap();
    let status = |d: &str| r.destinations.iter().find(|x| x.id == d).unwrap().status;
    assert_eq!(
        (status("crm"), status("ads"), status("seg"), r.overall),
        (DeleteStatus::Finished, DeleteStatus::Finished, DeleteStatus::NotSupported, DeleteStatus::Finished)
    );
    assert!(r.destinations.iter().find(|x| x.id == "seg").unwrap().error.as_deref().unwrap().contains("connections"));
    // the checkpoint no longer holds 3, and the suppression keeps it from coming back
    let m = env.store.mapping_id("people", "crm").unwrap();
    let key = sluice_warehouse::IdOrder::Integer.key("3").unwrap();
    assert!(env.store.checkpoint_entry(m, &key).unwrap().is_none_or(|e| e.held.is_none()));
    let r = env.sync(&ws, "people");
    assert_eq!(mapping(&r, "crm").withheld_by_privacy_request, 1);
    assert!(env.ids("/crm", "added").is_empty());
    // nothing more is due
    assert!(privacy::run_due(&mut env.store, &ws, DeleteOptions::default(), &|_, _| true).unwrap().is_empty());
}

#[test]
fn a_destination_that_is_down_stays_running_until_it_is_up_or_fails_after_the_bound() {
    let mut env = Env::new(PEOPLE);
    let ws = workspace(&env);
    env.sync(&ws, "people");
    env.rx.clear();
    env.rx.set_default(503);
    let reg = request(&mut env, &ws, RegulationType::DeleteOnly, &["1"]);
    let a = privacy::run_due(&mut env.store, &ws, DeleteOptions::default(), &|_, _| true).unwrap();
    assert!(
        a.iter().all(|a| a.status == DeleteStatus::Running && a.error.as_deref().unwrap().contains("503")),
        "{a:?}"
    );
    let r = env.store.regulation(&reg).unwrap().unwrap();
    assert_eq!(r.overall, DeleteStatus::Running);
    // not due again before its backoff
    assert!(privacy::run_due(&mut env.store, &ws, DeleteOptions::default(), &|_, _| true).unwrap().is_empty());
    env.rx.set_default(200);
    std::thread::sleep(Duration::from_millis(1100));
    let a = privacy::run_due(&mut env.store, &ws, DeleteOptions::default(), &|_, _| true).unwrap();
    assert!(a.iter().all(|a| a.status == DeleteStatus::Finished), "{a:?}");
    assert_eq!(value_ids(&env.rx.items("/crm")), ids(&["1"]));
    assert_eq!(value_ids(&env.rx.items("/ads")), ids(&["1"]));
    assert_eq!(env.store.regulation(&reg).unwrap().unwrap().overall, DeleteStatus::Finished);
    // DELETE_ONLY does not suppress: nothing is withheld
    assert!(env.store.suppressed_ids().unwrap().is_empty());

    // the bound: a destination still down when it has passed is FAILED, with why
    env.rx.set_default(503);
    let reg = request(&mut env, &ws, RegulationType::DeleteOnly, &["2"]);
    let bound = DeleteOptions { give_up_after: Duration::ZERO, ..Default::default() };
    let a = privacy::run_due(&mut env.store, &ws, bound, &|_, _| true).unwrap();
    assert!(a.iter().all(|a| a.status == DeleteStatus::Failed), "{a:?}");
    let r = env.store.regulation(&reg).unwrap().unwrap();
    assert_eq!(r.overall, DeleteStatus::Failed);
    assert!(r.destinations[0].error.as_deref().unwrap().contains("gave up"), "{r:?}");
}

#[test]
fn a_streaming_part_keeps_the_destination_running_until_its_worker_delivered_it() {
    let mut env = Env::new(PEOPLE);
    let ws = workspace(&env);
    let mut planned = privacy::plan(&ws.file, RegulationType::DeleteOnly);
    assert_eq!(
        privacy::streaming_targets(&ws.file, &planned),
        vec!["ads", "crm"],
        "webhooks take events; seg is not supported"
    );
    for p in planned.iter_mut().filter(|p| p.id == "crm") {
        p.stream_seq = Some(42);
    }
    let reg = env
        .store
        .create_regulation(&NewRegulation {
            id: sluice_state::privacy::new_regulation_id(),
            kind: RegulationType::DeleteOnly,
            subject_type: "USER_ID".into(),
            subject_ids: vec!["nobody".into()],
            joined_ids: vec!["nobody".into()],
            destinations: planned,
            created_by: "cli:test".into(),
        })
        .unwrap()
        .id;
    let delivered = std::cell::Cell::new(false);
    let done = |d: &str, seq: i64| d == "crm" && seq == 42 && delivered.get();
    let a = privacy::run_due(&mut env.store, &ws, DeleteOptions::default(), &done).unwrap();
    let crm = a.iter().find(|a| a.destination == "crm").unwrap();
    assert_eq!(crm.status, DeleteStatus::Running);
    assert!(crm.error.as_deref().unwrap().contains("event log entry 42"), "{crm:?}");
    assert_eq!(a.iter().find(|a| a.destination == "ads").unwrap().status, DeleteStatus::Finished, "held nothing");
    // no bound applies while the worker owes it
    delivered.set(true);
    std::thread::sleep(Duration::from_millis(1100));
    let bound = DeleteOptions { give_up_after: Duration::ZERO, ..Default::default() };
    let a = privacy::run_due(&mut env.store, &ws, bound, &done).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].status, DeleteStatus::Finished);
    assert_eq!(env.store.regulation(&reg).unwrap().unwrap().overall, DeleteStatus::Finished);
}

#[test]
fn a_suppressed_person_whose_consent_is_withdrawn_still_gets_the_withdrawal_delete() {
    // found in review: the suppression check came before the consent gate, so a suppressed
    // record's R13 delete was never sent while it stayed suppressed
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&format!(
        "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads, on_withdrawal: delete}}]}}",
        hook("ads")
    ));
    env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "2"]));
    env.rx.clear();
    request(&mut env, &ws, RegulationType::SuppressOnly, &["1", "2"]);
    env.sql("update people set ads = 0 where id = 1");
    let r = env.sync(&ws, "people");
    let items = env.rx.items("/ads");
    assert_eq!(
        items,
        vec![serde_json::json!({"action": "deleted", "id": "1", "data": {}, "reason": "consent_withdrawn"})],
        "1 is deleted (consent withdrawn), 2 is only withheld (suppressed, consent unchanged)"
    );
    let ads = mapping(&r, "ads");
    assert_eq!((ads.withheld_by_privacy_request, ads.deleted_on_withdrawal), (1, 1));
}
