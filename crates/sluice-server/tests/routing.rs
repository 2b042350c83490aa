//! R6–R10 end to end over HTTP: the reconciliation table row by row, the reserved consent
//! event, profiles and `missing_consent: profile`.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn table(policy: &str, analytics: &str) -> Server {
    start(&format!(
        "workspace: {{policy: {policy}, missing_consent: profile}}\ndestinations:\n{}{}{}{}consent_categories:
  - {{id: ad, name: Advertising, destinations: [facebook, google_ads]}}
  - {{id: analytics, name: Analytics, destinations: [{analytics}]}}
",
        hook("facebook", "Facebook"),
        hook("google_ads", "Google Ads"),
        hook("amplitude", "Amplitude"),
        hook("snowflake", "Snowflake")
    ))
}

const DESTS: [&str; 4] = ["facebook", "google_ads", "amplitude", "snowflake"];

/// Sends one event with a fresh messageId (and a fresh anonymous user) and returns the
/// destinations it reached, once every delivery the router decided has arrived.
fn send(s: &Server, mid: &str, extra: Value) -> Vec<&'static str> {
    let mut e = json!({"anonymousId": format!("anon-{mid}"), "event": "Viewed", "messageId": mid});
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    assert_eq!(s.post("/v1/track", &e).0, 200);
    let reached = s.settle().remove(mid).unwrap_or_default();
    DESTS.iter().filter(|d| reached.iter().any(|r| r == *d)).copied().collect()
}

fn consent(ad: bool, analytics: bool) -> Value {
    json!({"context": {"consent": {"categoryPreferences": {"ad": ad, "analytics": analytics}}}})
}

#[test]
fn reconciliation_table_rows_1_to_5() {
    let s = table("all", "amplitude, snowflake");
    assert_eq!(send(&s, "r1", json!({})), DESTS.to_vec());
    assert_eq!(send(&s, "r1b", json!({"context": {"consent": {}}, "integrations": {}})), DESTS.to_vec());
    assert_eq!(
        send(&s, "r2", json!({"integrations": {"Facebook": {"pixel": "1"}, "Amplitude": false}})),
        vec!["facebook", "google_ads", "snowflake"]
    );
    let r2 = s.rx.items("/facebook").into_iter().find(|x| x["messageId"] == "r2").unwrap();
    assert_eq!(r2["integrations"]["Facebook"], json!({"pixel": "1"}), "metadata reaches Facebook");
    assert_eq!(send(&s, "r3", consent(true, false)), vec!["facebook", "google_ads"]);
    let mut r4 = consent(true, false);
    r4["integrations"] = json!({"Facebook": {"x": 1}, "Amplitude": false});
    assert_eq!(send(&s, "r4", r4), vec!["facebook", "google_ads"]);
    let mut r5 = consent(true, false);
    r5["integrations"] = json!({"Facebook": false, "Amplitude": false});
    assert_eq!(send(&s, "r5", r5), vec!["google_ads"]);
    // the debugger says why
    let (_, dbg) = s.get("/v1/debugger/web?limit=1");
    let dbg: Value = serde_json::from_str(&dbg).unwrap();
    let d = &dbg["events"][0]["decisions"];
    assert_eq!(d["facebook"]["route"], "turned_off");
    assert_eq!(d["amplitude"]["route"], "withheld");
    assert_eq!(d["amplitude"]["categories"], json!(["analytics"]));
    assert_eq!(d["amplitude"]["code"], "FILTERED_BY_END_USER_CONSENT");
    let (_, m) = s.get("/metrics");
    assert!(
        m.contains("sluice_events_withheld_by_consent_total{destination=\"snowflake\",category=\"analytics\"} 3"),
        "{m}"
    );
    // a non-boolean consent value counts as false and is reported (debugger and overview)
    let none: Vec<&str> = vec![];
    assert_eq!(send(&s, "w1", json!({"context": {"consent": {"categoryPreferences": {"ad": "yes"}}}})), none);
    let (_, ov) = s.get("/v1/overview?minutes=5");
    let ov: Value = serde_json::from_str(&ov).unwrap();
    assert_eq!(ov["destinations"]["facebook"]["consent_warnings"], 1, "{ov}");
    let (_, w) = s.get("/v1/debugger/web?limit=1");
    let w: Value = serde_json::from_str(&w).unwrap();
    assert!(w["events"][0]["warnings"][0].as_str().unwrap().contains("not a boolean"), "{w}");
}

#[test]
fn reconciliation_table_row_6_policy_any() {
    let s = table("any", "facebook, snowflake");
    let mut r6 = consent(true, false);
    r6["integrations"] = json!({"Amplitude": false});
    assert_eq!(send(&s, "r6", r6), vec!["facebook", "google_ads"]);
}

#[test]
fn consent_event_updates_the_profile_and_profile_mode_routes_by_it() {
    let s = table("all", "amplitude, snowflake");
    // the seed's form of the reserved event, from an anonymous device
    let ev = json!({"anonymousId": "dev-1", "event": "Segment Consent Preference", "messageId": "c1",
        "timestamp": "2024-01-01T00:00:00Z",
        "context": {"consent": {"consentPreferences": {"ad": false, "analytics": true}}}});
    assert_eq!(s.post("/v1/track", &ev).0, 200);
    // login: identify links the device to the user
    assert_eq!(
        s.post(
            "/v1/identify",
            &json!({"userId": "u1", "anonymousId": "dev-1", "traits": {"email": "u1@x"}, "messageId": "i1"})
        )
        .0,
        200
    );
    sluice_testkit::wait_for("the profile", Duration::from_secs(10), || s.get("/v1/profiles/u1").0 == 200);
    let (st, p) = s.get("/v1/profiles/u1");
    assert_eq!(st, 200);
    let p: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(p["consent"], json!({"ad": false, "analytics": true}));
    assert_eq!(p["consent_conflict"], false);
    assert_eq!(p["traits"]["email"], "u1@x");
    // an event without consent object is routed by the stored consent (missing_consent: profile)
    assert_eq!(s.post("/v1/track", &json!({"userId": "u1", "event": "Page", "messageId": "p1"})).0, 200);
    s.settle();
    let got: Vec<&str> =
        DESTS.iter().filter(|d| s.rx.items(&format!("/{d}")).iter().any(|x| x["messageId"] == "p1")).copied().collect();
    assert_eq!(got, vec!["amplitude", "snowflake"], "no ad tool after advertising consent was refused");
    let (st, _) = s.get("/v1/profiles/nobody");
    assert_eq!(st, 404);
}

#[test]
fn merging_two_known_users_that_disagree_is_a_conflict_until_a_new_consent_event() {
    let s = table("all", "amplitude");
    let consent_event = |user: &str, ad: bool, ts: &str, mid: &str| {
        json!({"userId": user, "event": "Segment Consent Preference Updated", "messageId": mid, "timestamp": ts,
               "context": {"consent": {"categoryPreferences": {"ad": ad, "analytics": true}}}})
    };
    assert_eq!(s.post("/v1/track", &consent_event("a", true, "2024-01-01T00:00:00Z", "c1")).0, 200);
    assert_eq!(s.post("/v1/track", &consent_event("b", false, "2024-01-02T00:00:00Z", "c2")).0, 200);
    assert_eq!(s.post("/v1/alias", &json!({"previousId": "b", "userId": "a", "messageId": "al"})).0, 200);
    let p = profile_when(&s, "b", |p| p["user_ids"] == json!(["a", "b"]));
    assert_eq!(p["user_ids"], json!(["a", "b"]));
    assert_eq!(p["consent_conflict"], true);
    assert_eq!(p["consent"], json!({"ad": "conflict", "analytics": true}));
    // while in conflict, ad counts as false: an event without consent does not reach ad tools
    assert_eq!(s.post("/v1/track", &json!({"userId": "a", "event": "Page", "messageId": "p1"})).0, 200);
    s.settle();
    assert!(!s.rx.items("/facebook").iter().any(|x| x["messageId"] == "p1"));
    assert!(s.rx.items("/amplitude").iter().any(|x| x["messageId"] == "p1"));
    // a later consent event for the merged profile settles it
    assert_eq!(s.post("/v1/track", &consent_event("a", true, "2024-01-03T00:00:00Z", "c3")).0, 200);
    let p = profile_when(&s, "a", |p| p["consent_conflict"] == json!(false));
    assert_eq!((p["consent_conflict"].as_bool(), p["consent"]["ad"].as_bool()), (Some(false), Some(true)));
}

#[test]
fn an_anonymous_device_merged_at_login_takes_the_most_recent_consent() {
    let s = table("all", "amplitude");
    let ev = |id: (&str, &str), ad: bool, ts: &str, mid: &str| {
        json!({id.0: id.1, "event": "Segment Consent Preference Updated", "messageId": mid, "timestamp": ts,
               "context": {"consent": {"categoryPreferences": {"ad": ad}}}})
    };
    assert_eq!(s.post("/v1/track", &ev(("userId", "u9"), true, "2024-01-01T00:00:00Z", "c1")).0, 200);
    assert_eq!(s.post("/v1/track", &ev(("anonymousId", "phone"), false, "2024-01-05T00:00:00Z", "c2")).0, 200);
    assert_eq!(s.post("/v1/identify", &json!({"userId": "u9", "anonymousId": "phone", "messageId": "i"})).0, 200);
    let p = profile_when(&s, "phone", |p| p["user_ids"] == json!(["u9"]));
    assert_eq!((p["consent_conflict"].as_bool(), p["consent"]["ad"].as_bool()), (Some(false), Some(false)));
}

#[test]
fn a_category_on_a_connections_destination_still_governs_streamed_events() {
    let s = start(
        "destinations:
  - {id: seg, kind: connections, settings: {url: \"{URL}/down\", write_key: k, retry_initial_ms: 10, retry_max_ms: 20}}
consent_categories: [{id: C0004, name: Advertising, destinations: [seg]}]
",
    );
    let ev = |mid: &str, ad: bool| {
        serde_json::json!({"userId": "u", "event": "E", "messageId": mid,
            "context": {"consent": {"categoryPreferences": {"C0004": ad}}}})
    };
    assert_eq!(s.post("/v1/track", &ev("no", false)).0, 200);
    assert_eq!(s.post("/v1/track", &ev("yes", true)).0, 200);
    // forwarded messageIds are namespaced by source (web:...)
    let t = std::time::Instant::now();
    let ids = loop {
        let ids: Vec<String> =
            s.rx.items("/down/v1/batch").iter().filter_map(|e| e["messageId"].as_str().map(String::from)).collect();
        if !ids.is_empty() || t.elapsed() > std::time::Duration::from_secs(10) {
            break ids;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(ids, vec!["web:yes".to_string()], "only the consented event is forwarded");
    let dbg: serde_json::Value = serde_json::from_str(&s.get("/v1/debugger/web?limit=2").1).unwrap();
    let no = dbg["events"].as_array().unwrap().iter().find(|e| e["event"]["messageId"] == "no").unwrap();
    assert_eq!(no["decisions"]["seg"]["route"], "withheld", "{no}");
}

/// The profile of `id` once `cond` holds for it (10 s at most).
fn profile_when(s: &Server, id: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let read = || serde_json::from_str::<Value>(&s.get(&format!("/v1/profiles/{id}")).1).unwrap_or(Value::Null);
    sluice_testkit::wait_for(&format!("profile {id}"), Duration::from_secs(10), || cond(&read()));
    read()
}

/// POSTs one event with the `gpc` source's key, with or without `Sec-GPC: 1`.
fn post_gpc(s: &Server, key: &str, e: &Value, gpc: Option<&str>) -> u16 {
    use base64::Engine;
    let mut req = ureq::post(&format!("{}/v1/track", s.url)).set("Content-Type", "application/json").set(
        "Authorization",
        &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))),
    );
    if let Some(v) = gpc {
        req = req.set("Sec-GPC", v);
    }
    match req.send_string(&e.to_string()) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn r14_global_privacy_control_refuses_the_sources_gpc_categories_whatever_the_consent_says() {
    let s = start_in(
        tempfile::tempdir().unwrap(),
        "{id: shop, kind: events, write_key: wk_shop, gpc_refuses: [ad]}",
        &format!(
            "destinations:\n{}{}{}consent_categories:
  - {{id: ad, name: Advertising, destinations: [facebook]}}
  - {{id: analytics, name: Analytics, destinations: [amplitude]}}
",
            hook("facebook", "Facebook"),
            hook("amplitude", "Amplitude"),
            hook("snowflake", "Snowflake")
        ),
    );
    let reached = |mid: &str| -> Vec<String> {
        let mut all = s.settle_source("shop");
        all.extend(s.settle());
        let mut r = all.remove(mid).unwrap_or_default();
        r.sort();
        r
    };
    let ev = |mid: &str, extra: Value| {
        let mut e = json!({"userId": format!("u-{mid}"), "event": "Bought", "messageId": mid});
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        e
    };
    // consent grants advertising, the browser says GPC: advertising is refused, the rest flows
    assert_eq!(post_gpc(&s, "wk_shop", &ev("g1", consent(true, true)), Some("1")), 200);
    assert_eq!(reached("g1"), ["amplitude", "snowflake"]);
    // no consent object (R7: unrestricted) under GPC: only the GPC category is withheld
    assert_eq!(post_gpc(&s, "wk_shop", &ev("g2", json!({})), Some("1")), 200);
    assert_eq!(reached("g2"), ["amplitude", "snowflake"]);
    // without the signal (or `Sec-GPC: 0`) consent decides as always
    assert_eq!(post_gpc(&s, "wk_shop", &ev("g3", consent(true, true)), None), 200);
    assert_eq!(reached("g3"), ["amplitude", "facebook", "snowflake"]);
    assert_eq!(post_gpc(&s, "wk_shop", &ev("g4", consent(true, true)), Some("0")), 200);
    assert_eq!(reached("g4"), ["amplitude", "facebook", "snowflake"]);
    // a source without gpc_refuses does not read the header
    assert_eq!(post_gpc(&s, "wk_web", &ev("g5", consent(true, true)), Some("1")), 200);
    assert_eq!(reached("g5"), ["amplitude", "facebook", "snowflake"]);
    // the debugger says why, and what reached the other destinations carries the consent it
    // was routed under (so no downstream tool takes a GPC event as unrestricted)
    let (_, dbg) = s.get("/v1/debugger/shop?limit=5");
    let dbg: Value = serde_json::from_str(&dbg).unwrap();
    let g2 = dbg["events"].as_array().unwrap().iter().find(|e| e["event"]["messageId"] == "g2").cloned();
    let g2 = g2.unwrap_or_else(|| panic!("g2 in the debugger: {dbg}"));
    assert_eq!(g2["decisions"]["facebook"]["route"], "withheld");
    assert_eq!(g2["decisions"]["facebook"]["categories"], json!(["ad"]));
    let sent = s.rx.items("/amplitude").into_iter().find(|x| x["messageId"] == "g2").unwrap();
    assert_eq!(sent["context"]["consent"]["categoryPreferences"]["ad"], false, "{sent}");
    // an event that carried no consent is never stamped with grants the person did not give:
    // downstream it reads as refused (restricting, not widening)
    assert_eq!(sent["context"]["consent"]["categoryPreferences"]["analytics"], false, "{sent}");
    // an event with a consent object carries it, with the GPC refusal
    let g1 = s.rx.items("/amplitude").into_iter().find(|x| x["messageId"] == "g1").unwrap();
    assert_eq!(g1["context"]["consent"]["categoryPreferences"], json!({"ad": false, "analytics": true}), "{g1}");
}
