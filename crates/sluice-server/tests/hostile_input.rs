//! Property test of the HTTP input path: random and hostile bodies never crash the server and
//! never route an event to a destination its consent forbids.

mod common;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 ]{0,8}".prop_map(Value::String),
        Just(json!("true")),
        Just(json!({})),
        Just(json!([])),
    ]
}

fn prefs() -> impl Strategy<Value = Value> {
    prop_oneof![
        scalar(),
        proptest::collection::btree_map(
            prop_oneof![Just("ad".to_string()), Just("Ad".to_string()), "[a-z]{1,3}"],
            scalar(),
            0..4
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

fn event() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("track"), Just("identify"), Just("page"), Just("bogus")],
        proptest::option::of(scalar()),
        proptest::option::of(scalar()),
        proptest::option::of(prefs()),
        proptest::option::of(prefs()),
        proptest::option::of(prop_oneof![
            scalar(),
            Just(json!({"All": false, "Ads": true})),
            Just(json!({"Ads": {"m": 1}}))
        ]),
    )
        .prop_map(|(ty, uid, aid, cp, sp, integ)| {
            let mut e = json!({"type": ty, "event": "E"});
            if let Some(u) = uid {
                e["userId"] = u;
            }
            if let Some(a) = aid {
                e["anonymousId"] = a;
            }
            let mut consent = serde_json::Map::new();
            if let Some(c) = cp {
                consent.insert("categoryPreferences".into(), c);
            }
            if let Some(c) = sp {
                consent.insert("consentPreferences".into(), c);
            }
            if !consent.is_empty() {
                e["context"] = json!({"consent": consent});
            }
            if let Some(i) = integ {
                e["integrations"] = i;
            }
            e
        })
}

/// Independent of the router: an event may reach `ads` only if every preferences field it
/// carries is an object whose `ad` is exactly `true` (or it carries none: R7 allow).
fn may_reach_ads(e: &Value) -> bool {
    let Some(c) = e.get("context").and_then(|c| c.get("consent")) else { return true };
    let fields: Vec<&Value> = ["categoryPreferences", "consentPreferences"].iter().filter_map(|f| c.get(*f)).collect();
    fields.is_empty() || fields.iter().all(|p| p.get("ad") == Some(&json!(true)))
}

#[test]
fn hostile_bodies_never_crash_nor_leak() {
    let s = start(&format!(
        "destinations:\n{}{}consent_categories: [{{id: ad, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads"),
        hook("all", "All")
    ));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let strategy = (proptest::collection::vec(event(), 0..12), any::<bool>(), "[\\x00-\\x7f]{0,40}");
    runner
        .run(&strategy, |(events, as_batch, junk)| {
            let (status, _) = if as_batch {
                s.post("/v1/batch", &json!({"batch": events}))
            } else if let Some(e) = events.first() {
                s.post("/v1/track", e)
            } else {
                s.post_raw("/v1/track", &junk, Some("wk_web"), None)
            };
            prop_assert!([200, 400].contains(&status), "status {}", status);
            Ok(())
        })
        .unwrap();
    // also: garbage gzip, wrong types, huge nesting
    assert_eq!(s.post_bytes("/v1/batch", b"\x1f\x8b\x08garbage", Some("wk_web"), Some("gzip")).0, 400);
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    assert_eq!(s.post_raw("/v1/batch", &deep, Some("wk_web"), None).0, 400);
    assert_eq!(s.get("/health").0, 200, "the server is still up");
    s.settle();
    let reached = s.rx.items("/ads");
    for e in &reached {
        assert!(may_reach_ads(e), "an event reached ads against its consent: {e}");
    }
    assert!(!s.rx.items("/all").is_empty(), "some events must have been valid for this test to mean anything");
}
