//! What-if through the control API (`?dry_run=true`) against a real `sluice serve`: the events of
//! the last day each destination would gain or lose are exactly what the router then delivers
//! to a real HTTP receiver once the change is applied and the same events are sent again; a
//! dry run changes nothing (workspace, audit log); members may ask.

mod common;

use common::{call, hook, start_in, tokens, warehouse_dir, Server};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn server() -> Server {
    start_in(
        warehouse_dir("create table p(id integer, email text, ads); insert into p values (1,'a',1),(2,'b',0),(3,'c',null);"),
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "destinations:\n{}{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [an]}}
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}]}}]
",
            hook("ads", "Ads"),
            hook("crm", "CRM"),
            hook("an", "An")
        ),
    )
}

/// Event `k` of a round: consent granted to both, refused Advertising, none at all, or refused
/// Analytics (half of those with the integrations object turning Ads off).
fn event(round: &str, k: u64) -> Value {
    let mut e = json!({"type": "track", "event": "Viewed", "userId": format!("u{k}"), "messageId": format!("{round}-{k}"),
                       "properties": {"k": k}});
    match k % 4 {
        0 => e["context"] = json!({"consent": {"categoryPreferences": {"C0004": true, "C0002": true}}}),
        1 => e["context"] = json!({"consent": {"categoryPreferences": {"C0004": false, "C0002": true}}}),
        2 => {}
        _ => {
            e["context"] = json!({"consent": {"categoryPreferences": {"C0004": true, "C0002": false}}});
            if k % 8 == 3 {
                e["integrations"] = json!({"Ads": false});
            }
        }
    }
    e
}

const EVENTS: u64 = 40;

/// Sends a round of events and waits until every routed one arrived; returns per destination
/// the `k`s of that round it received.
fn round(s: &Server, round: &str) -> std::collections::BTreeMap<String, BTreeSet<u64>> {
    for k in 0..EVENTS {
        assert_eq!(s.post("/v1/track", &event(round, k)).0, 200);
    }
    s.settle();
    ["ads", "crm", "an"]
        .iter()
        .map(|d| {
            let got =
                s.rx.items(&format!("/{d}"))
                    .iter()
                    .filter(|e| e["messageId"].as_str().is_some_and(|m| m.starts_with(&format!("{round}-"))))
                    .filter_map(|e| e["properties"]["k"].as_u64())
                    .collect();
            (d.to_string(), got)
        })
        .collect()
}

fn events_line<'a>(v: &'a Value, dest: &str) -> Option<&'a Value> {
    v["what_if"]["impacts"].as_array()?.iter().find(|i| i["destination"] == dest && i["scope"] == "events_last24h")
}

#[test]
fn the_events_what_if_is_what_the_router_then_does() {
    let s = server();
    let r1 = round(&s, "r1");
    assert!(!r1["ads"].is_empty() && !r1["crm"].is_empty(), "{r1:?}");
    let audit = |s: &Server| {
        call(s, "GET", "/api/v1/audit-log?limit=500", Some(&s.token), None).1["items"].as_array().unwrap().len()
    };
    let audit_before = audit(&s);
    let cat_before = call(&s, "GET", "/api/v1/consent-categories/C0004", Some(&s.token), None).1;

    // the change: Advertising governs crm instead of ads
    let change = json!({"destinations": ["crm"]});
    let (st, dry) =
        call(&s, "PATCH", "/api/v1/consent-categories/C0004?dry_run=true", Some(&s.token), Some(change.clone()));
    assert_eq!(st, 200, "{dry}");
    assert_eq!(dry["allowed"], true);
    assert_eq!(dry["plan"][0]["id"], "C0004", "{dry}");
    // nothing changed: the category, the audit log
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories/C0004", Some(&s.token), None).1, cat_before);
    assert_eq!(audit(&s), audit_before, "a dry run writes no audit entry");
    // records: ads gains the two rows Advertising withheld (refused, NULL)
    let rec = dry["what_if"]["impacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["model"] == "p" && i["destination"] == "ads")
        .unwrap();
    assert_eq!((rec["gains"].as_u64(), rec["loses"].as_u64()), (Some(2), Some(0)), "{rec}");
    assert!(events_line(&dry, "an").is_none(), "an's routing does not change: not listed");

    let (st, _) = call(&s, "PATCH", "/api/v1/consent-categories/C0004", Some(&s.token), Some(change));
    assert_eq!(st, 200);
    let r2 = round(&s, "r2");
    for d in ["ads", "crm"] {
        let l = events_line(&dry, d).unwrap_or_else(|| panic!("no events line for {d}: {dry}"));
        let gained = r2[d].difference(&r1[d]).count() as u64;
        let lost = r1[d].difference(&r2[d]).count() as u64;
        assert_eq!(
            (l["gains"].as_u64(), l["loses"].as_u64()),
            (Some(gained), Some(lost)),
            "{d}: {l} vs {r1:?} -> {r2:?}"
        );
        assert!(gained + lost > 0, "{d}: the change must move something for this test to mean anything");
    }
    assert_eq!(r1["an"], r2["an"]);
}

#[test]
fn every_consent_write_has_a_dry_run_and_members_may_ask() {
    let s = server();
    let (_, member) = tokens(&s);
    let ws_before = call(&s, "GET", "/api/v1/models/p", Some(&s.token), None).1;
    let dests_before = call(&s, "GET", "/api/v1/destinations", Some(&s.token), None).1;
    let cats_before = call(&s, "GET", "/api/v1/consent-categories", Some(&s.token), None).1;
    // the destination as GET shows it, disabled
    let mut ads_off = dests_before["items"].as_array().unwrap().iter().find(|d| d["id"] == "ads").unwrap().clone();
    ads_off["enabled"] = json!(false);
    // (method, path, body, whether a member could apply it: consent management is for owners;
    // a member may disable a destination or drop a mapping, which only narrows who gets data)
    let cases: Vec<(&str, String, Option<Value>, bool)> = vec![
        (
            "POST",
            "/api/v1/consent-categories".into(),
            Some(json!({"id": "C0009", "name": "Sales", "destinations": ["crm"]})),
            false,
        ),
        ("PATCH", "/api/v1/consent-categories/C0004".into(), Some(json!({"enabled": false})), false),
        ("DELETE", "/api/v1/consent-categories/C0002".into(), None, false),
        ("PUT", "/api/v1/models/p/consent".into(), Some(json!({"consent": {}})), false),
        ("PUT", "/api/v1/destinations/ads".into(), Some(ads_off), true),
        (
            "PUT",
            "/api/v1/models/p".into(),
            Some(
                json!({"source": "dwh", "sql": "select * from p", "unique_id": "id", "consent": {"C0004": "ads"}, "mappings": []}),
            ),
            true,
        ),
        (
            "PUT",
            "/api/v1/models/p".into(),
            Some(
                json!({"source": "dwh", "sql": "select * from p", "unique_id": "id", "consent": {}, "mappings": [{"destination": "ads"}]}),
            ),
            false,
        ),
    ];
    for (method, path, body, member_may) in &cases {
        let (st, owner) = call(&s, method, &format!("{path}?dry_run=true"), Some(&s.token), body.clone());
        assert_eq!(st, 200, "{method} {path}: {owner}");
        assert!(owner["what_if"]["impacts"].is_array() && owner["plan"].is_array(), "{owner}");
        let (st, m) = call(&s, method, &format!("{path}?dry_run=true"), Some(&member), body.clone());
        assert_eq!(st, 200, "members may ask: {method} {path}: {m}");
        assert_eq!(m["what_if"], owner["what_if"]);
        assert_eq!(m["allowed"], *member_may, "{method} {path}: {m}");
        assert_eq!(m["refused"].as_array().is_some_and(|r| r.is_empty()), *member_may, "{m}");
    }
    // the disabled destination loses what it received; dropping the consent mapping opens ads (R4)
    let (_, d) = call(&s, "PUT", "/api/v1/destinations/ads?dry_run=true", Some(&s.token), cases[4].2.clone());
    let rec = d["what_if"]["impacts"].as_array().unwrap().iter().find(|i| i["model"] == "p").unwrap();
    assert_eq!((rec["gains"].as_u64(), rec["loses"].as_u64()), (Some(0), Some(1)), "{d}");
    let (_, c) = call(&s, "PUT", "/api/v1/models/p/consent?dry_run=true", Some(&s.token), cases[3].2.clone());
    let rec = c["what_if"]["impacts"].as_array().unwrap().iter().find(|i| i["model"] == "p").unwrap();
    assert_eq!((rec["gains"].as_u64(), rec["loses"].as_u64()), (Some(2), Some(0)), "{c}");
    // nothing changed, and the real write still needs an owner
    assert_eq!(call(&s, "GET", "/api/v1/models/p", Some(&s.token), None).1, ws_before);
    assert_eq!(call(&s, "GET", "/api/v1/destinations", Some(&s.token), None).1, dests_before);
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories", Some(&s.token), None).1, cats_before);
    assert_eq!(
        call(&s, "PATCH", "/api/v1/consent-categories/C0004", Some(&member), Some(json!({"enabled": false}))).0,
        403
    );
    // a bad dry run names the field, as the write would
    let (st, e) = call(
        &s,
        "PUT",
        "/api/v1/models/p/consent?dry_run=true",
        Some(&s.token),
        Some(json!({"consent": {"C0004": "nope"}})),
    );
    assert_eq!(st, 200, "{e}");
    assert!(e["errors"][0]["field"].as_str().is_some_and(|f| f.contains("consent.C0004")), "{e}");
    assert_eq!(e["allowed"], false);
    let (st, _) = call(&s, "PATCH", "/api/v1/consent-categories/C0004?dry_run=maybe", Some(&s.token), Some(json!({})));
    assert_eq!(st, 400, "a dry_run that is not a boolean is refused");
}

#[test]
fn the_openapi_document_lists_dry_run_with_the_path_ids() {
    let s = server();
    let (_, doc) = call(&s, "GET", "/api/v1/openapi.json", Some(&s.token), None);
    for (path, method) in [
        ("/api/v1/consent-categories", "post"),
        ("/api/v1/consent-categories/{id}", "patch"),
        ("/api/v1/consent-categories/{id}", "delete"),
        ("/api/v1/models/{id}/consent", "put"),
        ("/api/v1/models/{id}", "put"),
        ("/api/v1/destinations/{id}", "put"),
    ] {
        let params = doc["paths"][path][method]["parameters"].as_array().unwrap_or_else(|| panic!("{path} {method}"));
        let names: Vec<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
        assert!(names.contains(&"dry_run"), "{path} {method}: {names:?}");
        assert_eq!(path.contains("{id}"), names.contains(&"id"), "{path} {method}: {names:?}");
    }
}
