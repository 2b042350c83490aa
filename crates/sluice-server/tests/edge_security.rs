//! Issue 8, the public edge: what an outsider can reach and how much a request can cost.
//! Each test is named after the finding it guards against.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const PRIVATE: [&str; 5] = ["/v1/debugger/web", "/v1/profiles/u1", "/v1/overview", "/metrics", "/api/v1/openapi.json"];

fn member(s: &Server) -> String {
    sluice_state::StateStore::open(&s.dir.path().join(".sluice"))
        .unwrap()
        .create_token("max", sluice_state::Role::Member)
        .unwrap()
}

fn track(user: &str) -> Value {
    json!({"userId": user, "event": "Viewed", "context": {"consent": {"categoryPreferences": {"C0004": true}}}})
}

#[test]
fn finding_1_private_endpoints_answer_401_without_a_token() {
    let s = start(&format!(
        "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads")
    ));
    assert_eq!(s.post("/v1/identify", &json!({"userId": "u1", "traits": {"email": "a@b.c"}})).0, 200);
    let m = member(&s);
    for path in PRIVATE {
        let (st, body) = get_as(&format!("{}{path}", s.url), None);
        assert_eq!(st, 401, "{path} without a token: {body}");
        assert!(!body.contains("a@b.c"), "{path} leaked a trait: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "unauthenticated", "{path}: {body}");
        assert_eq!(get_as(&format!("{}{path}", s.url), Some("slc_not_a_token")).0, 401, "{path}");
        // a write key is not a token
        assert_eq!(get_as(&format!("{}{path}", s.url), Some("wk_web")).0, 401, "{path}");
        assert_eq!(get_as(&format!("{}{path}", s.url), Some(&m)).0, 200, "{path} with a member token");
    }
    // the public side stays open
    assert_eq!(get_as(&format!("{}/health", s.url), None).0, 200);
}

#[test]
fn finding_1_admin_listen_serves_the_private_side_only_on_its_own_address() {
    let s = start_with(tempfile::tempdir().unwrap(), "", &format!("destinations:\n{}", hook("ads", "Ads")), true);
    let admin = s.admin_url.clone().expect("admin address");
    assert_eq!(s.post("/v1/track", &track("u1")).0, 200, "ingestion on the public address");
    for path in PRIVATE {
        let (st, body) = get_as(&format!("{}{path}", s.url), Some(&s.token));
        assert_eq!(st, 404, "{path} on the public address, even with a token: {body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "not_found");
        assert_eq!(get_as(&format!("{admin}{path}"), None).0, 401, "{path} on the admin address without a token");
        assert_eq!(get_as(&format!("{admin}{path}"), Some(&s.token)).0, 200, "{path} on the admin address");
    }
    let (st, _) = get_as(&format!("{}/api/v1/consent-categories", s.url), Some(&s.token));
    assert_eq!(st, 404, "the control API is not on the public address");
    // ingestion is not on the admin address
    let r = ureq::post(&format!("{admin}/v1/track")).send_string(&track("u2").to_string());
    assert!(matches!(r, Err(ureq::Error::Status(404, _))), "{r:?}");
    assert_eq!(get_as(&format!("{admin}/health"), None).0, 200);
}

fn put_source(s: &Server, id: &str, key: &str) -> u16 {
    let r = ureq::put(&format!("{}/api/v1/sources/{id}", s.url))
        .set("Authorization", &format!("Bearer {}", s.token))
        .send_json(json!({"kind": "events", "write_key": key}));
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(st, r)) => panic!("PUT source {id}: {st} {}", r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn finding_6_write_keys_follow_the_live_workspace_at_once() {
    let s = start(&format!("destinations:\n{}", hook("ads", "Ads")));
    let post = |key: &str| s.post_raw("/v1/track", &track("u1").to_string(), Some(key), None).0;
    assert_eq!(post("wk_web"), 200);
    // rotated: the old key stops at once, the new one works at once
    assert_eq!(put_source(&s, "web", "wk_rotated"), 200);
    assert_eq!(post("wk_web"), 401, "a rotated key must stop working");
    assert_eq!(post("wk_rotated"), 200, "the new key works without a restart");
    // a new source works at once; a deleted one stops
    assert_eq!(put_source(&s, "app", "wk_app"), 200);
    assert_eq!(post("wk_app"), 200);
    let r = ureq::delete(&format!("{}/api/v1/sources/app", s.url))
        .set("Authorization", &format!("Bearer {}", s.token))
        .call()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(post("wk_app"), 401, "a deleted source's key must stop working");
}

#[test]
fn finding_10_a_consent_event_stamped_in_the_future_cannot_outrank_a_later_withdrawal() {
    let s = start(&format!(
        "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads")
    ));
    let consent = |granted: bool, ts: Option<&str>| {
        let mut e = json!({"userId": "victim", "event": "Segment Consent Preference Updated",
            "context": {"consent": {"categoryPreferences": {"C0004": granted}}}});
        if let Some(t) = ts {
            e["timestamp"] = json!(t);
        }
        e
    };
    assert_eq!(s.post("/v1/track", &consent(true, Some("9999-12-31T23:59:59Z"))).0, 200);
    std::thread::sleep(Duration::from_millis(5)); // the withdrawal arrives later
    assert_eq!(s.post("/v1/track", &consent(false, None)).0, 200);
    let p: Value = serde_json::from_str(&s.get("/v1/profiles/victim").1).unwrap();
    assert_eq!(p["consent"]["C0004"], false, "the later withdrawal wins: {p}");
}

#[test]
fn finding_11_invalid_bodies_are_cut_and_debugger_answers_are_bounded() {
    let s = start(&format!("destinations:\n{}", hook("ads", "Ads")));
    // invalid events of ~100 KB each (no type): stored cut, with the reason
    let big = "x".repeat(100_000);
    let batch =
        json!({"batch": [{"userId": "u", "properties": {"p": big}}, {"userId": "u", "properties": {"p": big}}]});
    assert_eq!(s.post("/v1/batch", &batch).0, 200);
    let (_, body) = s.get("/v1/debugger/web?limit=10");
    let dbg: Value = serde_json::from_str(&body).unwrap();
    let invalid = dbg["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 2, "invalid events are reported, not lost");
    for i in invalid {
        let b = i["body"].as_str().unwrap();
        assert!(b.len() < 5 * 1024, "stored invalid body is {} bytes", b.len());
        assert!(b.contains("cut:"), "the cut is visible");
        assert!(i["reason"].as_str().unwrap().contains("type"), "{i}");
    }
    // 200 valid events of ~30 KB: one debugger answer stays under its byte budget
    let props = json!({"p": "y".repeat(30_000)});
    for chunk in 0..20 {
        let events: Vec<Value> = (0..10)
            .map(|i| json!({"type": "track", "userId": format!("u{chunk}-{i}"), "event": "E", "properties": props}))
            .collect();
        assert_eq!(s.post("/v1/batch", &json!({ "batch": events })).0, 200);
    }
    let (st, body) = s.get("/v1/debugger/web?limit=1000");
    assert_eq!(st, 200);
    assert!(body.len() < 5 * 1024 * 1024, "debugger answer is {} bytes", body.len());
    let dbg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dbg["truncated"], true);
    let n = dbg["events"].as_array().unwrap().len();
    assert!(n > 10 && n < 200, "{n} events within the budget");
}

/// Starts a server with small limits for the listener tests.
fn start_limited(max_connections: usize) -> Server {
    start_cfg(tempfile::tempdir().unwrap(), "", &format!("destinations:\n{}", hook("ads", "Ads")), |c| {
        c.limits = sluice_server::edge::Limits {
            max_connections,
            header_timeout: Duration::from_millis(800),
            body_timeout: Duration::from_millis(800),
        };
    })
}

fn connect(s: &Server) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until the server closes the connection (or the 20 s read timeout); returns what it sent.
fn read_to_close(mut c: std::net::TcpStream) -> String {
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn finding_14_slow_headers_and_slow_bodies_are_cut_off() {
    let s = start_limited(64);
    // headers that never end
    let mut slow = connect(&s);
    slow.write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t = Instant::now();
    read_to_close(slow);
    assert!(t.elapsed() < Duration::from_secs(15), "the server closed a connection whose headers never ended");
    // a body that never arrives: the server answers (408/400 in the error shape) and closes
    let mut slow = connect(&s);
    slow.write_all(
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nAuthorization: Basic d2tfd2ViOg==\r\n\r\n{",
    )
    .unwrap();
    let t = Instant::now();
    let answer = read_to_close(slow);
    assert!(t.elapsed() < Duration::from_secs(15), "the server gave up on a body that never came");
    assert!(!answer.starts_with("HTTP/1.1 200"), "an incomplete body is never accepted: {answer}");
    // the server still serves
    assert_eq!(s.post("/v1/track", &track("u1")).0, 200);
}

#[test]
fn finding_14_connections_are_capped_and_slow_clients_cannot_hold_the_cap() {
    let s = start_limited(4);
    // four clients take every slot and send nothing more
    let holders: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // a fifth client is served only once the server cut a slow one loose
    let (st, _) = get_as(&format!("{}/health", s.url), None);
    assert_eq!(st, 200, "the server is not wedged by slow clients");
    // so by now at least one holder's connection was closed by the server (its FIN is already
    // queued on loopback); without a cap all four would still be open
    let closed = holders
        .into_iter()
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1024];
            let mut c = c;
            loop {
                match c.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(_) => continue, // an answer (408/400) before the close
                    Err(_) => return false,
                }
            }
        })
        .count();
    assert!(closed >= 1, "the fifth connection was served while all four slow ones were still open");
}

#[test]
fn finding_16_profile_traits_are_capped_with_a_warning() {
    let s = start(&format!("destinations:\n{}", hook("ads", "Ads")));
    let traits: serde_json::Map<String, Value> = (0..300).map(|i| (format!("t{i:03}"), json!(i))).collect();
    assert_eq!(s.post("/v1/identify", &json!({"userId": "big", "traits": traits})).0, 200);
    let p: Value = serde_json::from_str(&s.get("/v1/profiles/big").1).unwrap();
    assert_eq!(p["traits"].as_object().unwrap().len(), sluice_core::profiles::MAX_TRAITS);
    let dbg: Value = serde_json::from_str(&s.get("/v1/debugger/web?limit=1").1).unwrap();
    let w = dbg["events"][0]["warnings"].to_string();
    assert!(w.contains("44 trait(s) not stored"), "the event says what was left out: {w}");
    // the overview does not count it as a consent warning
    let ov: Value = serde_json::from_str(&s.get("/v1/overview?minutes=5").1).unwrap();
    assert_eq!(ov["destinations"]["ads"]["consent_warnings"].as_u64().unwrap_or(0), 0, "{ov}");
    // every counter is there, zeros included
    for k in sluice_server::read::OVERVIEW_COUNTERS {
        assert!(ov["destinations"]["ads"][k].is_u64(), "{k} missing: {ov}");
    }
}

#[test]
fn finding_17_ten_thousand_categories_route_correctly() {
    let mut yaml = format!("destinations:\n{}{}consent_categories:\n", hook("ads", "Ads"), hook("crm", "CRM"));
    for i in 0..10_000 {
        yaml.push_str(&format!("  - {{id: K{i}, name: Cat {i}, destinations: [ads]}}\n"));
    }
    let s = start(&yaml);
    let ev = |id: &str, prefs: &serde_json::Map<String, Value>| json!({"type": "track", "userId": id, "event": "E", "messageId": id, "context": {"consent": {"categoryPreferences": prefs}}});
    // within the limit: 1000 categories named in the event, the rest absent (false)
    let some: serde_json::Map<String, Value> = (0..1000).map(|i| (format!("K{i}"), json!(true))).collect();
    assert_eq!(s.post("/v1/track", &ev("partial", &some)).0, 200);
    assert_eq!(s.post("/v1/track", &json!({"userId": "free", "event": "E", "messageId": "free"})).0, 200);
    let got = s.settle();
    assert_eq!(got["partial"], vec!["crm".to_string()], "9000 refusing categories keep it from ads");
    assert_eq!(got["free"], vec!["ads".to_string(), "crm".to_string()], "no consent object: not restricted");
    let ov: Value = serde_json::from_str(&s.get("/v1/overview?minutes=5").1).unwrap();
    let by_cat = ov["destinations"]["ads"]["withheld_by_category"].as_object().unwrap();
    assert_eq!(by_cat.len(), 9000, "each refusing category counted");
    assert_eq!(by_cat["K9999"], 1);
    assert!(by_cat.get("K0").is_none());
}

#[test]
fn finding_19_every_error_is_in_the_json_shape_413_included() {
    let s = start(&format!("destinations:\n{}", hook("ads", "Ads")));
    let answer = post_oversized(&s, "/v1/batch", 700 * 1024, "Authorization: Basic d2tfd2ViOg==\r\n");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");
    let (st, body) = get_as(&format!("{}/nowhere", s.url), None);
    assert_eq!(st, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "not_found");
    let r = ureq::get(&format!("{}/v1/track", s.url)).call();
    match r {
        Err(ureq::Error::Status(405, r)) => {
            assert_eq!(r.into_json::<Value>().unwrap()["error"]["code"], "method_not_allowed")
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn finding_19_state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = start(&format!("destinations:\n{}", hook("ads", "Ads")));
    assert_eq!(s.post("/v1/track", &track("u1")).0, 200);
    s.settle();
    let dir = s.dir.path().join(".sluice");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "state folder");
    let mut checked = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            checked += 1;
        }
    }
    assert!(checked >= 4, "state.db, stream.db and their WAL files: {checked}");
}

#[test]
fn finding_19_an_oversized_control_api_body_is_413_in_the_json_shape() {
    let s = start("destinations: []\n");
    let headers = format!("Authorization: Bearer {}\r\nContent-Type: application/json\r\n", s.token);
    let answer = post_oversized(&s, "/api/v1/consent-categories", 1536 * 1024, &headers);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");
}
