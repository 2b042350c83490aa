//! Attacks of the independent review of issue 9 (one destination contract, one change path,
//! typed secrets, sluice-stream). Each ignored test fails on the code it was written against
//! and names what an attacker (or an unlucky configuration) does.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn wait_for(secs: u64, what: &str, cond: impl FnMut() -> bool) {
    sluice_testkit::wait_for(what, Duration::from_secs(secs), cond)
}

/// Finding 1: a webhook header value that is not a valid HTTP field value (a trailing newline
/// from a YAML block scalar or a copied secret file, a non-ASCII character) makes ureq fail
/// with `Bad Header: invalid header 'Authorization: Bearer <secret>'`. The transport wraps that
/// text as the delivery error (only URLs are redacted), so the credential is stored in the
/// run report and shown to a **member** by `GET /api/v1/models/{id}/syncs` (the member filter
/// only hides texts starting with `HTTP `), and logged. Validation never refuses such a header.
#[test]
fn review9_a_header_credential_never_reaches_a_members_run_report() {
    let s = start("destinations: [{id: crm, kind: webhook, settings: {url: \"{URL}/crm\"}}]\n");
    let (owner, member) = tokens(&s);
    let bad = json!({"kind": "webhook", "settings": {"url": format!("{}/crm", s.rx.url()),
        "headers": {"Authorization": "Bearer sk_live_TOPSECRET42\n"}}});
    // refused where it is written, naming the header and never echoing its value
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/crm", Some(&owner), Some(bad));
    assert_eq!(st, 422, "{b}");
    assert!(b["error"]["field"].as_str().unwrap().ends_with("settings.headers.Authorization"), "{b}");
    assert!(!b.to_string().contains("TOPSECRET42"), "{b}");
    let (_, log) = call(&s, "GET", "/api/v1/audit-log", Some(&member), None);
    assert!(!log.to_string().contains("TOPSECRET42"), "{log}");
    // and a workspace file with it is refused the same way
    let yaml = "destinations: [{id: crm, kind: webhook, settings: {url: 'http://x', headers: {Authorization: \"Bearer sk_live_TOPSECRET42\\n\"}}}]";
    let e = sluice_engine::Workspace::from_yaml(yaml, s.dir.path().to_path_buf()).unwrap_err().to_string();
    assert!(e.contains("settings.headers.Authorization") && !e.contains("TOPSECRET42"), "{e}");
}

/// Finding 2: `retry_initial_ms` is a tuning setting a member may change, and only its upper
/// bound is checked: `0` is accepted. The streaming worker's durable backoff is then
/// `0 * 2^n = 0` ms for ever: against a receiver that answers 503, the worker re-sends the head
/// batch in a tight loop (thousands of requests a second, one core busy), with no `Retry-After`
/// needed. With the default 500 ms the same 1.5 s sees a handful of requests.
#[test]
fn review9_a_member_cannot_make_the_streaming_worker_spin() {
    let s = start(
        "destinations:\n  - {id: hook, kind: webhook, settings: {url: \"{URL}/hook\", batch_size: 10, timeout_secs: 5}}\n",
    );
    let (_, member) = tokens(&s);
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    let mut d = list["items"][0].clone();
    // a zero backoff is refused, naming the setting
    d["settings"]["retry_initial_ms"] = json!(0);
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/hook", Some(&member), Some(d.clone()));
    assert_eq!(
        (st, b["error"]["field"].as_str().map(|f| f.ends_with("settings.retry_initial_ms"))),
        (422, Some(true)),
        "{b}"
    );
    // the smallest one allowed still leaves the worker its floor between attempts
    d["settings"]["retry_initial_ms"] = json!(1);
    d["settings"]["retry_max_ms"] = json!(1);
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/hook", Some(&member), Some(d));
    assert_eq!(st, 200, "{b}");
    s.rx.set_default(503);
    // a worker sends only while its settings are the live ones: the first attempt is the new worker's
    assert_eq!(
        s.post("/v1/track", &json!({"type": "track", "anonymousId": "a1", "event": "E", "messageId": "m1"})).0,
        200
    );
    wait_for(10, "the first attempt", || !s.rx.requests_to("/hook").is_empty());
    let before = s.rx.requests_to("/hook").len();
    std::thread::sleep(Duration::from_millis(1500));
    let n = s.rx.requests_to("/hook").len() - before;
    assert!(n < 100, "{n} requests in 1.5 s for one event: the worker spins against a failing receiver");
}

/// Finding 6: `change_now` gives up with 409 after the stored workspace changed three times
/// while a change was checked. A member may store harmless changes (tune a destination's
/// `batch_size`) as fast as the API takes them; every such write lands between an owner's
/// load and lock, so the owner's consent changes (here: disabling a destination for a
/// category, the incident response) keep failing with 409. Members can so lock owners out of
/// consent management. (An owner's change should win, e.g. by re-checking under the lock when
/// the conflict is not on the same entity, or by queueing rather than failing.)
#[test]
fn review9_a_member_cannot_starve_an_owners_consent_change() {
    let s = start_with_model();
    let (owner, member) = tokens(&s);
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    let dest = list["items"][0].clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = s.url.clone();
    let spam: Vec<_> = (0..6)
        .map(|t| {
            let (stop, member, url, mut dest) = (stop.clone(), member.clone(), url.clone(), dest.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    dest["settings"]["batch_size"] = json!(10 + (n * 2 + t) % 50);
                    let _ = ureq::put(&format!("{url}/api/v1/destinations/ads"))
                        .set("Authorization", &format!("Bearer {member}"))
                        .send_json(dest.clone());
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut conflicts = 0;
    for i in 0..60 {
        let name = if i % 2 == 0 { "Ads" } else { "Advertising" };
        let (st, b) = call(&s, "PATCH", "/api/v1/consent-categories/C0004", Some(&owner), Some(json!({"name": name})));
        if st == 409 {
            conflicts += 1;
        } else {
            assert_eq!(st, 200, "{b}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in spam {
        h.join().unwrap();
    }
    assert_eq!(
        conflicts, 0,
        "{conflicts} of 60 owner consent changes refused with 409 while a member tunes a destination"
    );
}

/// Finding 7: a Reverse ETL sync builds its gates and destinations once, from the workspace as
/// it was when the run started, and never looks at the live workspace again. Streaming checks
/// "the destination is still exactly as configured" before every batch; Reverse ETL does not:
/// after a destination is **disabled** (R12: a disabled destination does not sync), re-pointed,
/// or put under a consent category, a running sync keeps sending the rest of the model to it
/// with the old settings and the old consent decision until the run ends (hours for a big
/// model).
#[test]
fn review9_a_running_sync_stops_sending_to_a_destination_disabled_meanwhile() {
    let s = start_in(
        warehouse_dir(
            "create table p(id integer primary key, email text);
             with recursive n(i) as (select 1 union all select i + 1 from n where i < 40) insert into p select i, 'e' || i from n;",
        ),
        "{id: dwh, kind: sqlite, path: w.db}",
        "destinations:
  - {id: crm, kind: webhook, settings: {url: \"{URL}/crm\", batch_size: 1, retry_initial_ms: 10, retry_max_ms: 20, max_attempts: 2, timeout_secs: 5}}
models: [{id: p, source: dwh, sql: select * from p, unique_id: id, mappings: [{destination: crm}]}]
",
    );
    let (owner, _) = tokens(&s);
    s.rx.set_delay(Duration::from_millis(100));
    assert_eq!(call(&s, "POST", "/api/v1/models/p/syncs", Some(&owner), None).0, 202);
    wait_for(20, "a few deliveries", || s.rx.requests_to("/crm").len() >= 3);
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&owner), None);
    let mut d = list["items"][0].clone();
    d["enabled"] = json!(false);
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/crm", Some(&owner), Some(d));
    assert_eq!(st, 200, "{b}");
    let at_disable = s.rx.requests_to("/crm").len();
    let mut runs = Value::Null;
    wait_for(30, "the run to end", || {
        runs = call(&s, "GET", "/api/v1/models/p/syncs", Some(&owner), None).1;
        runs["total"].as_u64() == Some(1) && runs["items"][0]["status"] != "running"
    });
    let after = s.rx.requests_to("/crm").len() - at_disable;
    assert!(
        after <= 2,
        "{after} records were sent to destination `crm` after it was disabled (run: {})",
        runs["items"][0]
    );
    let m = &runs["items"][0]["mappings"][0];
    assert_eq!(m["status"], "stopped", "{m}");
    assert!(m["stopped"].as_str().unwrap().contains("disabled"), "{m}");
    // what it did not send stays for the next sync: enabled again, the rest arrives, nothing twice
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&owner), None);
    let mut d = list["items"][0].clone();
    d["enabled"] = json!(true);
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/crm", Some(&owner), Some(d)).0, 200);
    s.rx.set_delay(Duration::from_millis(0));
    assert_eq!(call(&s, "POST", "/api/v1/models/p/syncs", Some(&owner), None).0, 202);
    wait_for(30, "all 40 records", || s.rx.items("/crm").len() >= 40);
    wait_for(30, "the second run to end", || {
        let r = call(&s, "GET", "/api/v1/models/p/syncs", Some(&owner), None).1;
        r["total"].as_u64() == Some(2) && r["items"][0]["status"] != "running"
    });
    let mut ids: Vec<String> = s.rx.items("/crm").iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((ids.len(), s.rx.items("/crm").len()), (40, 40), "every record once");
    assert!(s.rx.items("/crm").iter().all(|i| i["action"] == "added"), "no record was deleted");
}

/// The warehouse-side diff (issue 10) adds two source settings. A member must not be able to
/// turn it on or point it at another schema (Sluice would write there), and a hostile schema
/// name is refused before anything reaches the warehouse.
#[test]
fn review10_members_cannot_set_the_warehouse_diff_and_schema_names_are_checked() {
    let url = sluice_testkit::pg_url();
    let s = start_in(
        tempfile::tempdir().unwrap(),
        &format!("{{id: pg, kind: postgres, url: \"{url}\", allow_privileged_role: true}}"),
        "",
    );
    let (owner, member) = tokens(&s);
    let (_, list) = call(&s, "GET", "/api/v1/sources", Some(&member), None);
    let mut pg = list["items"].as_array().unwrap().iter().find(|x| x["id"] == "pg").unwrap().clone();
    pg["diff"] = json!("warehouse");
    pg["sluice_schema"] = json!("sluice_snap");
    let (st, b) = call(&s, "PUT", "/api/v1/sources/pg", Some(&member), Some(pg.clone()));
    assert_eq!(st, 403, "{b}");
    for hostile in ["public; drop table x", "a\"b", "", "1abc", &"s".repeat(64)] {
        pg["sluice_schema"] = json!(hostile);
        let (st, b) = call(&s, "PUT", "/api/v1/sources/pg", Some(&owner), Some(pg.clone()));
        assert_eq!(st, 422, "{hostile}: {b}");
        assert!(b["error"]["field"].as_str().unwrap().ends_with("sluice_schema"), "{b}");
    }
    // a schema setting without the diff is refused too (it would silently do nothing)
    pg["diff"] = json!("local");
    pg["sluice_schema"] = json!("sluice_snap");
    assert_eq!(call(&s, "PUT", "/api/v1/sources/pg", Some(&owner), Some(pg)).0, 422);
    // nothing was stored
    let (_, list) = call(&s, "GET", "/api/v1/sources", Some(&member), None);
    assert!(!list.to_string().contains("sluice_schema"), "{list}");
}

/// Without a token, the new fields change nothing: the private API answers 401 before parsing.
#[test]
fn review10_an_outsider_cannot_reach_the_source_settings() {
    let s = start("");
    let body = json!({"kind": "postgres", "url": "postgres://x@h/d", "diff": "warehouse", "sluice_schema": "s"});
    assert_eq!(call(&s, "PUT", "/api/v1/sources/pg", None, Some(body.clone())).0, 401);
    assert_eq!(call(&s, "PUT", "/api/v1/sources/pg", Some("not-a-token"), Some(body)).0, 401);
}
