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

fn time_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("+275760-09-13T00:00:00Z")),
        Just(json!("2024-02-30T25:61:61Z")),
        Just(json!("2024-05-01T12:00:00+23:59")),
        Just(json!(1e308)),
        Just(json!(-1)),
        "[0-9T:Z+-]{0,30}".prop_map(Value::String),
    ]
}

/// Raw requests: odd headers, encodings, times and bytes. Never a 5xx, never a dead server.
#[test]
fn hostile_requests_never_crash_the_edge() {
    let s = start(&format!(
        "destinations:\n{}consent_categories: [{{id: ad, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads")
    ));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 96, ..ProptestConfig::default() });
    let auth = prop_oneof![
        Just(Some("Basic d2tfd2ViOg==".to_string())),
        Just(Some("Basic !!!".to_string())),
        Just(Some("Basic ".to_string())),
        Just(Some("Bearer wk_web".to_string())),
        Just(None),
        "[ -~]{0,60}".prop_map(Some),
    ];
    let ctype = prop_oneof![
        Just("application/json"),
        Just("text/plain"),
        Just("text/plain;charset=UTF-8"),
        Just("application/x-www-form-urlencoded"),
        Just("")
    ];
    let path = prop_oneof![
        Just("/v1/t"),
        Just("/v1/batch"),
        Just("/v1/b"),
        Just("/v1/identify"),
        Just("/v1/import"),
        "/v1/[a-z%./]{0,12}".prop_map(|p| Box::leak(p.into_boxed_str()) as &str),
    ];
    let body = prop_oneof![
        (time_value(), time_value(), any::<bool>()).prop_map(|(ts, sent, batch)| {
            let e = json!({"type": "track", "userId": "u", "event": "E", "timestamp": ts, "sentAt": sent,
                "context": {"consent": {"categoryPreferences": {"ad": true}}}});
            let v = if batch { json!({"batch": [e], "sentAt": sent, "writeKey": "wk_web"}) } else { e };
            v.to_string().into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..200),
        Just(b"{\"writeKey\": \"wk_web\", \"batch\": [".to_vec()),
        Just(
            format!("{{\"userId\": 1e400, \"event\": \"E\", \"writeKey\": \"wk_web\", \"n\": {}}}", "9".repeat(500))
                .into_bytes()
        ),
    ];
    let gzip = prop_oneof![Just(None), Just(Some("gzip")), Just(Some("GZIP")), Just(Some("br"))];
    runner
        .run(&(path, auth, ctype, body, gzip), |(path, auth, ctype, body, encoding)| {
            let mut req = ureq::post(&format!("{}{path}", s.url)).set("Content-Type", ctype);
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            if let Some(e) = encoding {
                req = req.set("Content-Encoding", e);
            }
            let status = match req.send_bytes(&body) {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(st, _)) => st,
                Err(e) => return Err(TestCaseError::fail(format!("transport error: {e}"))),
            };
            prop_assert!(status < 500, "{} answered {} for {:?}", path, status, String::from_utf8_lossy(&body));
            Ok(())
        })
        .unwrap();
    // a gzip bomb: 50 MB of zeros in ~50 KB is refused without inflating it all
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &vec![b' '; 50 * 1024 * 1024]).unwrap();
    let bomb = enc.finish().unwrap();
    let (st, body) = s.post_bytes("/v1/batch", &bomb, Some("wk_web"), Some("gzip"));
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
    assert_eq!(get_as(&format!("{}/health", s.url), None).0, 200, "the server is still up");
    // a future-stamped event never reached ads against its consent, and nothing else leaked
    s.settle();
    for e in s.rx.items("/ads") {
        assert!(may_reach_ads(&e), "{e}");
    }
}
