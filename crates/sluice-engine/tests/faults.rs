//! Fault test: the receiver fails requests (500, 429 with Retry-After, timeouts). After later
//! syncs every consented record is at the destination as it is now, no withheld record ever
//! arrived (whatever the answer), and duplicates happen only where a request timed out after
//! the receiver took it (and those carry the same idempotency key when retried in the sync).

mod common;
use common::*;
use serde_json::Value;
use sluice_core::parse_consent;
use sluice_testkit::Reply;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Materializes what a receiver holds from its accepted batches, dropping retried batches by
/// idempotency key. Returns (state, duplicates that are not explained by a hung request).
fn materialize(env: &Env, path: &str) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut seen_keys = HashSet::new();
    let mut state = BTreeMap::new();
    let mut arrivals: HashMap<(String, String), (u32, bool)> = HashMap::new();
    for r in env.rx.accepted().into_iter().filter(|r| r.url == path) {
        let key = r.header("idempotency-key").unwrap().to_string();
        if !seen_keys.insert(key) {
            continue; // a retry of a batch the receiver already took: droppable by key
        }
        for item in r.body["batch"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap().to_string();
            let a = arrivals.entry((id.clone(), item.to_string())).or_default();
            a.0 += 1;
            a.1 |= r.hung;
            match item["action"].as_str().unwrap() {
                "deleted" => {
                    state.remove(&id);
                }
                _ => {
                    state.insert(id, item["data"].clone());
                }
            }
        }
    }
    // a duplicate is explained if one of its copies travelled in a request that hung
    let unexplained = arrivals.into_iter().filter(|(_, (n, hung))| *n > 1 && !hung).map(|((id, _), _)| id).collect();
    (state, unexplained)
}

#[test]
fn outages_lose_nothing_and_never_leak_withheld_records() {
    let mut env = Env::new("create table people(id integer, email text, ads);");
    let mut g = Lcg(7);
    let mut rows: BTreeMap<u64, (String, i64)> = BTreeMap::new();
    for id in 0..40 {
        rows.insert(id, (format!("p{id}@x"), g.next(2) as i64));
    }
    let write = |env: &Env, rows: &BTreeMap<u64, (String, i64)>| {
        let mut sql = "delete from people;".to_string();
        for (id, (email, ads)) in rows {
            sql.push_str(&format!("insert into people values ({id}, '{email}', {ads});"));
        }
        env.sql(&sql);
    };
    let ws = env.workspace(&format!(
        "workspace: {{retry_max_syncs: 1000}}
destinations:
{}{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: crm}}]}}",
        hook("ads").replace("timeout_secs: 0.5", "timeout_secs: 0.3"),
        hook("crm").replace("timeout_secs: 0.5", "timeout_secs: 0.3")
    ));
    let mut failures = 0;
    for round in 0..8 {
        // change some rows: new values, consent flips, deletes, inserts
        for _ in 0..8 {
            let id = g.next(50);
            match g.next(4) {
                0 => {
                    rows.remove(&id);
                }
                1 => {
                    rows.entry(id).or_insert((String::new(), 0)).1 ^= 1;
                }
                _ => {
                    rows.entry(id).or_insert((String::new(), 1)).0 = format!("p{id}-r{round}@x");
                }
            }
        }
        write(&env, &rows);
        let replies: Vec<Reply> = (0..30)
            .map(|_| match g.next(10) {
                0 | 1 => Reply::Status(500),
                2 => Reply::TooMany(g.next(2) as u32),
                3 => Reply::Hang(Duration::from_millis(600)),
                4 => Reply::Status(503),
                _ => Reply::Status(200),
            })
            .collect();
        env.rx.script(replies);
        let r = env.sync(&ws, "people");
        failures += r.mappings.iter().map(|m| m.failed).sum::<u64>();
    }
    assert!(failures > 0, "the script must have caused failures for this test to mean anything");
    // the outage ends: later syncs catch up
    env.rx.clear_script();
    std::thread::sleep(Duration::from_millis(700));
    let mut converged = false;
    for _ in 0..3 {
        let r = env.sync(&ws, "people");
        assert!(r.mappings.iter().all(|m| m.failed == 0), "catch-up sync failed: {r:?}");
        if r.mappings.iter().all(|m| m.added + m.updated + m.deleted == 0) {
            converged = true;
            break;
        }
    }
    assert!(converged, "syncs did not converge after the outage");

    // no withheld record ever reached ads, whatever the receiver answered
    for req in env.rx.requests().iter().filter(|r| r.url == "/ads") {
        for item in req.body["batch"].as_array().unwrap() {
            if item["action"] != "deleted" {
                assert!(parse_consent(&item["data"]["ads"]).granted(), "withheld record sent to ads: {item}");
            }
        }
    }
    // every record is at crm as it is now; ads holds every consented record as it is now
    let (crm, crm_dups) = materialize(&env, "/crm");
    let (ads, ads_dups) = materialize(&env, "/ads");
    assert!(crm_dups.is_empty() && ads_dups.is_empty(), "duplicates without a timeout: {crm_dups:?} {ads_dups:?}");
    let expect = |id: &u64, (email, ads): &(String, i64)| serde_json::json!({"id": id, "email": email, "ads": ads});
    let want_crm: BTreeMap<String, Value> = rows.iter().map(|(id, r)| (id.to_string(), expect(id, r))).collect();
    assert_eq!(crm, want_crm);
    for (id, r) in rows.iter().filter(|(_, r)| r.1 == 1) {
        assert_eq!(ads.get(&id.to_string()), Some(&expect(id, r)), "consented record {id} missing or stale at ads");
    }
    for id in ads.keys() {
        assert!(rows.contains_key(&id.parse().unwrap()), "deleted record {id} still at ads");
    }
}
