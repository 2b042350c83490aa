//! What browsers need from the public edge (SPEC §9), over real HTTP against `sluice serve`:
//! CORS preflights and headers, per-source `allowed_origins`, the settings endpoint Analytics.js
//! loads, `POST /v1/m`, and bodies parsed as JSON whatever their `Content-Type`.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const PATHS: [&str; 15] = sluice_server::ingest::browser::INGEST_PATHS;

/// An answer: status, headers (lowercase names; repeated ones joined by `, `), body.
struct Answer {
    status: u16,
    headers: std::collections::BTreeMap<String, String>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

/// Any request; `headers` are (name, value); a body is sent when given.
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(10));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let r = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let mut headers = std::collections::BTreeMap::new();
    for name in r.headers_names() {
        let all: Vec<&str> = r.all(&name).into_iter().collect();
        headers.insert(name.to_ascii_lowercase(), all.join(", "));
    }
    Answer { status: r.status(), headers, body: r.into_string().unwrap_or_default() }
}

fn preflight(url: &str, origin: &str) -> Answer {
    send(
        "OPTIONS",
        url,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization,content-type,x-retry-count"),
        ],
        None,
    )
}

fn track(user: &str) -> String {
    json!({"userId": user, "event": "Viewed"}).to_string()
}

/// Events stored for a source, read from the event log (as `sluice debugger` does).
fn stored(s: &Server, source: &str) -> usize {
    let conn = sluice_server::store::open(&s.dir.path().join(".sluice")).unwrap();
    sluice_server::store::recent_events(&conn, source, 1000).unwrap().0.len()
}

/// A server for exactly this workspace YAML (no implicit source), optionally with `--public-url`.
fn start_exact(yaml: &str, public_url: Option<&str>) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ws = sluice_engine::Workspace::from_yaml(yaml, dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
    let mut config =
        sluice_server::ServeConfig::new(ws.file, dir.path().to_path_buf(), dir.path().join(".sluice"), "127.0.0.1:0");
    config.public_url = public_url.map(String::from);
    let (tx, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || sluice_server::serve(config, |a| tx.send(a.public).unwrap()).unwrap());
    let addr = addr.recv_timeout(Duration::from_secs(10)).expect("server started");
    (format!("http://{addr}"), dir)
}

fn assert_error_shape(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    let b = a.json();
    assert_eq!(b["success"], false, "{b}");
    assert_eq!(b["error"]["code"], code, "{b}");
    assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    assert!(b["error"].as_object().unwrap().contains_key("field"), "{b}");
}

#[test]
fn preflight_is_answered_on_every_ingestion_path_long_and_short() {
    let s = start("");
    for path in PATHS.iter().chain(&["/v1/m"]) {
        let a = preflight(&format!("{}{path}", s.url), "http://shop.example");
        assert!((200..300).contains(&a.status), "{path}: {}", a.status);
        assert_eq!(a.header("access-control-allow-origin"), Some("*"), "{path}: no allowed_origins list, so *");
        assert_eq!(a.header("access-control-allow-methods"), Some("POST"), "{path}");
        let allowed = a.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        for h in ["authorization", "content-type", "x-retry-count"] {
            assert!(allowed.split(',').any(|x| x.trim() == h), "{path}: {h} not in `{allowed}`");
        }
        let max_age: u32 = a.header("access-control-max-age").and_then(|m| m.parse().ok()).unwrap_or(0);
        assert!(max_age > 0, "{path}: Access-Control-Max-Age");
    }
    // the settings endpoint is a GET
    let a = preflight(&format!("{}/v1/projects/wk_web/settings", s.url), "http://shop.example");
    assert_eq!((a.status, a.header("access-control-allow-methods")), (204, Some("GET")));
}

#[test]
fn post_answers_carry_allow_origin_errors_included() {
    let s = start(&format!("destinations:\n{}", hook("all", "All")));
    let origin = ("Origin", "http://shop.example");
    let auth = basic("wk_web");
    let ok =
        send("POST", &format!("{}/v1/t", s.url), &[origin, ("Authorization", &auth)], Some(track("u1").as_bytes()));
    assert_eq!((ok.status, ok.header("access-control-allow-origin")), (200, Some("*")), "{}", ok.body);
    let bad_json = send("POST", &format!("{}/v1/t", s.url), &[origin, ("Authorization", &auth)], Some(b"{nope"));
    assert_error_shape(&bad_json, 400, "malformed_json");
    assert_eq!(bad_json.header("access-control-allow-origin"), Some("*"));
    let no_key = send("POST", &format!("{}/v1/track", s.url), &[origin], Some(track("u1").as_bytes()));
    assert_error_shape(&no_key, 401, "missing_write_key");
    assert!(no_key.header("access-control-allow-origin").is_some(), "a 401 is readable by the page");
    let wrong_key = send("POST", &format!("{}/v1/i", s.url), &[origin, ("Authorization", &basic("nope"))], Some(b"{}"));
    assert_eq!(wrong_key.status, 401);
    assert!(wrong_key.header("access-control-allow-origin").is_some(), "a 401 is readable by the page");
    let huge = vec![b' '; 1024 * 1024];
    let too_large = send("POST", &format!("{}/v1/b", s.url), &[origin, ("Authorization", &auth)], Some(&huge));
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    assert!(too_large.header("access-control-allow-origin").is_some(), "a 413 is readable by the page");
    assert_eq!(s.delivered("/all", 1).len(), 1);
}

#[test]
fn allowed_origins_echo_a_listed_origin_and_refuse_the_others() {
    let s = start_in(
        tempfile::tempdir().unwrap(),
        "{id: shop, kind: events, write_key: wk_shop, allowed_origins: [\"https://shop.example\", \"http://127.0.0.1:9\"]}",
        "",
    );
    let (shop, evil) = (("Origin", "https://shop.example"), ("Origin", "https://evil.example"));
    // preflights name no write key: a listed origin is echoed, others get * because `web` has no list
    let a = preflight(&format!("{}/v1/t", s.url), "https://shop.example");
    assert_eq!((a.status, a.header("access-control-allow-origin")), (204, Some("https://shop.example")));
    assert!(a.header("vary").is_some_and(|v| v.contains("Origin")), "echoing varies by Origin");
    assert_eq!(
        preflight(&format!("{}/v1/t", s.url), "https://evil.example").header("access-control-allow-origin"),
        Some("*")
    );

    let post = |origin: Option<(&str, &str)>, key: &str, user: &str| {
        let auth = basic(key);
        let mut h = vec![("Authorization", auth.as_str()), ("Content-Type", "text/plain")];
        h.extend(origin);
        send("POST", &format!("{}/v1/t", s.url), &h, Some(track(user).as_bytes()))
    };
    let a = post(Some(shop), "wk_shop", "listed");
    assert_eq!((a.status, a.header("access-control-allow-origin")), (200, Some("https://shop.example")), "{}", a.body);
    assert!(a.header("vary").is_some_and(|v| v.contains("Origin")));
    let refused = post(Some(evil), "wk_shop", "refused");
    assert_error_shape(&refused, 403, "origin_not_allowed");
    assert_eq!(refused.json()["error"]["field"], "Origin");
    assert_eq!(refused.header("access-control-allow-origin"), Some("https://evil.example"), "the page reads the 403");
    // the write key in the body only (a "simple" cross-origin request, no preflight) is refused too
    let body = json!({"writeKey": "wk_shop", "userId": "refused-body", "event": "Viewed"}).to_string();
    let a = send("POST", &format!("{}/v1/t", s.url), &[evil, ("Content-Type", "text/plain")], Some(body.as_bytes()));
    assert_error_shape(&a, 403, "origin_not_allowed");
    // servers and apps send no Origin; a source without a list takes any origin and answers *
    assert_eq!(post(None, "wk_shop", "server").status, 200);
    let a = post(Some(evil), "wk_web", "web");
    assert_eq!((a.status, a.header("access-control-allow-origin")), (200, Some("*")));
    assert_eq!(stored(&s, "shop"), 2, "only the listed origin's and the server's events are stored");

    // when every event source has a list, a preflight from another origin is refused
    let (url, _dir) = start_exact(
        "sources: [{id: shop, kind: events, write_key: wk_shop, allowed_origins: [\"https://shop.example\"]}]",
        None,
    );
    assert_error_shape(&preflight(&format!("{url}/v1/t"), "https://evil.example"), 403, "origin_not_allowed");
    let a = preflight(&format!("{url}/v1/t"), "https://shop.example");
    assert_eq!((a.status, a.header("access-control-allow-origin")), (204, Some("https://shop.example")));
    // and the settings of that source are not given to another origin
    let a = send("GET", &format!("{url}/v1/projects/wk_shop/settings"), &[evil], None);
    assert_error_shape(&a, 403, "origin_not_allowed");
    assert_eq!(send("GET", &format!("{url}/v1/projects/wk_shop/settings"), &[shop], None).status, 200);
}

#[test]
fn settings_endpoint_points_analytics_js_here_with_the_consent_settings() {
    let s = start(&format!(
        "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: []}}
  - {{id: C0009, name: Old, destinations: [warehouse], enabled: false}}
",
        hook("ads", "Ads"),
        hook("warehouse", "Warehouse")
    ));
    let a = send("GET", &format!("{}/v1/projects/wk_web/settings", s.url), &[("Origin", "http://shop.example")], None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    let b = a.json();
    let host = s.url.strip_prefix("http://").unwrap();
    let integrations = b["integrations"].as_object().unwrap();
    assert_eq!(integrations.keys().collect::<Vec<_>>(), ["Segment.io"], "no other integration: no extra code loads");
    let seg = &integrations["Segment.io"];
    assert_eq!(seg["apiKey"], "wk_web");
    assert_eq!(seg["apiHost"], format!("{host}/v1"), "from the request's Host");
    assert_eq!(seg["protocol"], "http");
    assert_eq!(b["consentSettings"]["allCategories"], json!(["C0004", "C0002"]), "enabled categories only");
    assert_eq!(b["consentSettings"]["hasUnmappedDestinations"], true, "warehouse: its only category is disabled");
    assert_eq!(b["metrics"]["sampleRate"], 0);
    for empty in ["remotePlugins", "enabledMiddleware", "middlewareSettings"] {
        assert!(b[empty].as_array().map(Vec::is_empty).or(b[empty].as_object().map(|o| o.is_empty())) == Some(true));
    }
    assert_eq!(b["legacyVideoPluginsEnabled"], false);

    let unknown =
        send("GET", &format!("{}/v1/projects/nope/settings", s.url), &[("Origin", "http://shop.example")], None);
    assert_error_shape(&unknown, 404, "unknown_write_key");
    assert!(unknown.header("access-control-allow-origin").is_some());

    // --public-url decides the host; every destination under a category: no unmapped destination
    let (url, _dir) = start_exact(
        "sources: [{id: web, kind: events, write_key: wk_web}]
destinations: [{id: ads, kind: file, settings: {path: ads.jsonl}}]
consent_categories: [{id: C0004, name: Advertising, destinations: [ads]}]",
        Some("https://track.example.com/"),
    );
    let b = send("GET", &format!("{url}/v1/projects/wk_web/settings"), &[], None).json();
    assert_eq!(b["integrations"]["Segment.io"]["apiHost"], "track.example.com/v1");
    assert_eq!(b["integrations"]["Segment.io"]["protocol"], "https");
    assert_eq!(b["consentSettings"], json!({"allCategories": ["C0004"], "hasUnmappedDestinations": false}));
}

#[test]
fn serve_refuses_a_public_url_browsers_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sluice_server::ServeConfig::new(
        sluice_core::WorkspaceFile::default(),
        dir.path().to_path_buf(),
        dir.path().join(".sluice"),
        "127.0.0.1:0",
    );
    config.public_url = Some("track.example.com".into());
    let err = sluice_server::serve(config, |_| {}).unwrap_err().to_string();
    assert!(err.contains("--public-url `track.example.com`"), "{err}");
}

#[test]
fn analytics_js_metrics_post_v1_m_is_accepted_and_discarded() {
    let s = start("");
    let series = json!({"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1, "tags": {}}]});
    let a = send(
        "POST",
        &format!("{}/v1/m", s.url),
        &[("Origin", "http://shop.example"), ("Content-Type", "text/plain")],
        Some(series.to_string().as_bytes()),
    );
    assert!((200..300).contains(&a.status), "{}", a.status);
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(stored(&s, "web"), 0, "metrics are not events");
    let answer = post_oversized(&s, "/v1/m", 1024 * 1024, "");
    assert!(answer.starts_with("HTTP/1.1 413"), "the body limit applies: {answer}");
}

#[test]
fn a_text_plain_body_is_parsed_as_json() {
    let s = start(&format!("destinations:\n{}", hook("all", "All")));
    let auth = basic("wk_web");
    let body = json!({"userId": "u1", "event": "Plain", "messageId": "m-text-plain"}).to_string();
    for (i, ct) in ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"].iter().enumerate() {
        let body = body.replace("m-text-plain", &format!("m-{i}"));
        let a = send(
            "POST",
            &format!("{}/v1/t", s.url),
            &[("Authorization", &auth), ("Content-Type", ct)],
            Some(body.as_bytes()),
        );
        assert_eq!(a.status, 200, "{ct}: {}", a.body);
    }
    // no Content-Type at all
    let a = send("POST", &format!("{}/v1/track", s.url), &[("Authorization", &auth)], Some(body.as_bytes()));
    assert_eq!(a.status, 200, "{}", a.body);
    let got = s.delivered("/all", 4);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(s.rx.items("/all").iter().all(|e| e["event"] == "Plain"));
}
