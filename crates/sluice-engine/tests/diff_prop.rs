//! Property test of the diff: for random sequences of warehouse changes, what each destination
//! holds (replaying what it received) equals a reference, and each sync sends exactly the
//! changes the reference expects: nothing twice, nothing withheld. R13: a destination with
//! `on_withdrawal: delete` is sent the delete (reason `consent_withdrawn`) of every held record
//! whose consent is withdrawn, and holds nothing consent forbids; one with `keep` keeps it.

mod common;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// id -> Some((email, ads)) upserts, None deletes.
type Step = Vec<(u8, Option<(u8, Option<bool>)>)>;

fn step() -> impl Strategy<Value = Step> {
    proptest::collection::vec(
        (0u8..8, proptest::option::weighted(0.8, (0u8..3, proptest::option::of(any::<bool>())))),
        0..6,
    )
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn destinations_hold_exactly_what_consent_allows(steps in proptest::collection::vec(step(), 1..6)) {
        let mut env = Env::new("create table people(id integer, email text, ads);");
        let ws = env.workspace(
            "destinations:
  - {id: ads, kind: file, settings: {path: out/ads.jsonl, batch_size: 2}}
  - {id: all, kind: file, settings: {path: out/all.jsonl}}
  - {id: wd, kind: file, settings: {path: out/wd.jsonl, batch_size: 2}}
consent_categories: [{id: C0004, name: Advertising, destinations: [ads, wd]}]
models:
  - {id: people, source: dwh, sql: select * from people, unique_id: id, consent: {C0004: ads},
     mappings: [{destination: ads}, {destination: all}, {destination: wd, on_withdrawal: delete}]}");
        let mut rows: BTreeMap<u8, (u8, Option<bool>)> = BTreeMap::new();
        let mut held: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
        let mut lines_before: BTreeMap<&str, usize> = BTreeMap::new();
        for step in steps {
            for (id, op) in step {
                match op { Some(v) => { rows.insert(id, v); } None => { rows.remove(&id); } }
            }
            let mut sql = "delete from people;".to_string();
            for (id, (e, ads)) in &rows {
                let ads = ads.map(|b| (b as i32).to_string()).unwrap_or("null".into());
                sql.push_str(&format!("insert into people values ({id}, 'e{e}', {ads});"));
            }
            env.sql(&sql);
            env.sync(&ws, "people");
            for dest in ["ads", "all", "wd"] {
                // the reference: consented rows are held as they are now; withheld rows keep what
                // was held; rows gone from the model are deleted where held
                let h = held.entry(dest).or_default();
                let before = h.clone();
                for (id, (e, ads)) in &rows {
                    if dest == "all" || *ads == Some(true) {
                        h.insert(id.to_string(), json!({"id": id, "email": format!("e{e}"), "ads": ads.map(|b| b as i32)}));
                    }
                }
                h.retain(|id, _| rows.contains_key(&id.parse::<u8>().unwrap()));
                if dest == "wd" {
                    // R13: withdrawn where held -> deleted; the rest as for `ads` (keep)
                    h.retain(|id, _| rows[&id.parse::<u8>().unwrap()].1 == Some(true));
                }
                let expected_changes = h.iter().filter(|(k, v)| before.get(*k) != Some(v)).count()
                    + before.keys().filter(|k| !h.contains_key(*k)).count();

                let lines = read_lines(&env.dir.path().join(format!("out/{dest}.jsonl")));
                let start = lines_before.insert(dest, lines.len()).unwrap_or(0);
                for item in &lines[start..] {
                    let in_model = rows.contains_key(&item["id"].as_str().unwrap().parse::<u8>().unwrap());
                    let withdrawal = item["reason"] == "consent_withdrawn";
                    prop_assert_eq!(withdrawal, item["action"] == "deleted" && in_model, "reason of {} at {}", item, dest);
                    prop_assert!(!withdrawal || dest == "wd", "a keep mapping got a withdrawal delete: {}", item);
                }
                prop_assert_eq!(lines.len() - start, expected_changes, "changes sent to {} this sync", dest);
                let mut got: BTreeMap<String, Value> = BTreeMap::new();
                for item in &lines {
                    let id = item["id"].as_str().unwrap().to_string();
                    match item["action"].as_str().unwrap() {
                        "deleted" => { prop_assert!(got.remove(&id).is_some(), "delete of a record {} does not hold", dest); }
                        "added" => { prop_assert!(got.insert(id, item["data"].clone()).is_none(), "added twice"); }
                        _ => { prop_assert!(got.insert(id, item["data"].clone()).is_some(), "update of a record not held"); }
                    }
                    if dest != "all" && item["action"] != "deleted" {
                        prop_assert_eq!(&item["data"]["ads"], &json!(1), "withheld record sent");
                    }
                }
                prop_assert_eq!(&got, &*h, "{} holds what the reference says", dest);
            }
        }
    }
}
