//! Hostile review of the web UI, R14 (Global Privacy Control) and per-destination
//! `consent_policy`: as an outsider (no token, or a write key), as a member, and as a hostile
//! event. Each test is an attack; most guard something that held, some showed a weakness that
//! was then fixed (named in the test).

mod common;

use common::{call, hook, start_cfg, start_in, tokens, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

/// One raw HTTP/1.1 exchange (headers exactly as given: repeated ones, odd spacing, raw paths).
fn raw(base: &str, request: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn request(method: &str, path: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Logs in with `token`; returns the `Cookie` header line and the session's CSRF token.
fn login(base: &str, token: &str) -> (String, String) {
    let (st, a) = raw(
        base,
        &request("POST", "/ui/login", "Content-Type: application/x-www-form-urlencoded\r\n", &format!("token={token}")),
    );
    assert_eq!(st, 303, "{a}");
    let id = header(&a, "set-cookie").unwrap().split(';').next().unwrap().to_string();
    let cookie = format!("Cookie: {id}\r\n");
    let (_, home) = raw(base, &request("GET", "/ui/", &cookie, ""));
    let at = home.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    (cookie, home[at..at + 64].to_string())
}

fn form(cookie: &str) -> String {
    format!("{cookie}Content-Type: application/x-www-form-urlencoded\r\n")
}

fn ui_server() -> Server {
    start_cfg(
        common::warehouse_dir("create table p(id integer, ads); insert into p values (1, 1);"),
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [crm], enabled: false}}
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}]}}]
",
            hook("ads", "Ads"),
            hook("crm", "CRM")
        ),
        |_| {},
    )
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   object-src 'none'";

#[test]
fn every_ui_answer_carries_the_csp_redirects_errors_and_refusals_included() {
    let s = ui_server();
    let (cookie, _) = login(&s.url, &s.token);
    let json = "Content-Type: application/x-www-form-urlencoded\r\n";
    let cases: Vec<(String, String)> = vec![
        (request("GET", "/ui/", "", ""), "303 no session".into()),
        (request("GET", "/ui", "", ""), "/ui redirect".into()),
        (request("GET", "/ui/login", "", ""), "login page".into()),
        (request("POST", "/ui/login", json, "token=nope"), "401 login".into()),
        (request("POST", "/ui/login", &format!("{json}Origin: https://evil.example\r\n"), "token=x"), "403".into()),
        (request("POST", "/ui/login", json, ""), "422 login".into()),
        (request("PUT", "/ui/login", "", ""), "405".into()),
        (request("GET", "/ui/logout", &cookie, ""), "GET on a POST route".into()),
        (request("GET", "/ui/assets/ui.js", "", ""), "asset".into()),
        (request("GET", "/ui/no/such/page", &cookie, ""), "404".into()),
        (request("GET", "/ui/debugger/nope", &cookie, ""), "404 page".into()),
        (request("POST", "/ui/consent-categories", &form(&cookie), "csrf=bad"), "403 CSRF".into()),
        (request("POST", "/ui/consent-categories", json, &"a".repeat(20 * 1024)), "no session, big".into()),
    ];
    for (req, what) in cases {
        let (st, a) = raw(&s.url, &req);
        assert_ne!(st, 0, "{what}: no answer");
        assert_eq!(header(&a, "content-security-policy"), Some(CSP), "{what} ({st}): {a}");
        assert_eq!(header(&a, "x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(header(&a, "x-content-type-options"), Some("nosniff"), "{what}");
        // no internals (panics, file paths, SQL) in any answer
        for leak in ["panicked", "/src/", "sqlite", "rusqlite", "thread '"] {
            assert!(!a.contains(leak), "{what} leaks {leak}: {a}");
        }
    }
}

#[test]
fn login_has_no_open_redirect_no_fixation_and_refuses_other_origins_and_write_keys() {
    let s = ui_server();
    let post = |path: &str, extra: &str, body: &str| {
        raw(
            &s.url,
            &request("POST", path, &format!("Content-Type: application/x-www-form-urlencoded\r\n{extra}"), body),
        )
    };
    // a `next` / `redirect` parameter (query or form) is ignored: always home
    for path in ["/ui/login?next=https://evil.example/", "/ui/login?redirect=//evil.example&return_to=%2F%2Fevil"] {
        let (st, a) = post(path, "", &format!("token={}&next=https://evil.example/&redirect=//evil", s.token));
        assert_eq!((st, header(&a, "location")), (303, Some("/ui/")), "{a}");
    }
    // session fixation: a session id planted in the browser (even a live one) is replaced at login
    let (planted, _) = login(&s.url, &s.token);
    let (st, a) = post("/ui/login", &planted, &format!("token={}", s.token));
    assert_eq!(st, 303);
    let fresh = header(&a, "set-cookie").unwrap().split(';').next().unwrap();
    assert!(!planted.contains(fresh), "a new session id at login: {planted} / {fresh}");
    let (_, unknown) = post("/ui/login", "Cookie: sluice_ui=attacker-chosen\r\n", &format!("token={}", s.token));
    assert!(!header(&unknown, "set-cookie").unwrap().contains("attacker-chosen"));
    // login CSRF: another origin, another port, `Origin: null` are refused (no session opened)
    for origin in ["https://evil.example", "http://h:1", "null", "http://h.evil.example", "http://evil.example/h"] {
        let (st, a) = post("/ui/login", &format!("Origin: {origin}\r\n"), &format!("token={}", s.token));
        assert_eq!(st, 403, "{origin}: {a}");
        assert!(header(&a, "set-cookie").is_none(), "{origin}");
    }
    // a write key is not a token
    let (st, a) = post("/ui/login", "", "token=wk_web");
    assert_eq!(st, 401);
    assert!(header(&a, "set-cookie").is_none());
}

#[test]
fn static_assets_cannot_be_used_to_read_files() {
    let s = ui_server();
    for path in [
        "/ui/assets/../../../../etc/passwd",
        "/ui/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/ui/assets/..%2f..%2f..%2fetc%2fpasswd",
        "/ui/assets/ui.js/../../.sluice/secret.key",
        "/ui/assets/%2e%2e%2f.sluice%2fstate.db",
    ] {
        let (st, a) = raw(&s.url, &request("GET", path, "", ""));
        assert!(st == 303 || st == 404 || st == 400, "{path}: {st}");
        assert!(!a.contains("root:") && !a.contains("SQLite format"), "{path}: {a}");
    }
}

#[test]
fn the_served_script_never_inserts_html_or_evaluates_strings() {
    let js = sluice_server::ui::ASSET_JS;
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", ".html("] {
        assert!(!js.contains(sink), "ui.js uses {sink}");
    }
    // a string timer is an eval: every setTimeout takes a function
    for (i, _) in js.match_indices("setTimeout(") {
        let arg = js[i + 11..].trim_start();
        assert!(arg.starts_with("()") || arg.starts_with("poll"), "setTimeout with {}", &arg[..20.min(arg.len())]);
    }
}

#[test]
fn get_requests_change_nothing() {
    let s = ui_server();
    let (cookie, _) = login(&s.url, &s.token);
    for path in [
        "/ui/logout",
        "/ui/models/p/sync",
        "/ui/models/p/consent",
        "/ui/consent-categories/C0004/disable",
        "/ui/consent-categories/C0002/enable",
    ] {
        let (st, _) = raw(&s.url, &request("GET", path, &cookie, ""));
        assert!(st == 404 || st == 405, "GET {path}: {st}");
    }
    let (st, _) = raw(&s.url, &request("GET", "/ui/", &cookie, ""));
    assert_eq!(st, 200, "the session survived GET /ui/logout");
    let (_, runs) = call(&s, "GET", "/api/v1/models/p/syncs", Some(&s.token), None);
    assert_eq!(runs["items"], json!([]), "no sync was started by a GET: {runs}");
    let (_, c) = call(&s, "GET", "/api/v1/consent-categories/C0004", Some(&s.token), None);
    assert_eq!(c["enabled"], true);
    let (_, c) = call(&s, "GET", "/api/v1/consent-categories/C0002", Some(&s.token), None);
    assert_eq!(c["enabled"], false);
}

#[test]
fn a_members_forged_posts_to_every_ui_form_change_no_consent() {
    let s = ui_server();
    let (_, member) = tokens(&s);
    let (cookie, csrf) = login(&s.url, &member);
    let attempts = [
        ("/ui/consent-categories", format!("csrf={csrf}&id=C0009&name=Sales&destinations=ads")),
        ("/ui/consent-categories/C0004", format!("csrf={csrf}&name=Advertising")), // remap to nothing
        ("/ui/consent-categories/C0004", format!("csrf={csrf}&name=Advertising&destinations=ads&destinations=crm")),
        ("/ui/consent-categories/C0004/disable", format!("csrf={csrf}&confirm=Advertising")),
        ("/ui/consent-categories/C0002/enable", format!("csrf={csrf}")),
        ("/ui/models/p/consent", format!("csrf={csrf}")), // unmap every category (R4: unenforced)
        ("/ui/models/p/consent", format!("csrf={csrf}&map%3AC0004=id")),
        ("/ui/consent-categories/C0004%2Fdisable", format!("csrf={csrf}&confirm=Advertising")),
    ];
    for (path, body) in attempts {
        let (st, a) = raw(&s.url, &request("POST", path, &form(&cookie), &body));
        assert!(st == 403 || st == 404, "{path} {body}: {st} {a}");
    }
    let (_, c) = call(&s, "GET", "/api/v1/consent-categories", Some(&s.token), None);
    assert_eq!(
        c["items"],
        json!([{"id": "C0004", "name": "Advertising", "destinations": ["ads"], "enabled": true},
               {"id": "C0002", "name": "Analytics", "destinations": ["crm"], "enabled": false}])
    );
    assert_eq!(call(&s, "GET", "/api/v1/models/p", Some(&s.token), None).1["consent"], json!({"C0004": "ads"}));
    let (_, log) = call(&s, "GET", "/api/v1/audit-log", Some(&s.token), None);
    assert_eq!(log["items"], json!([]), "nothing was changed: {log}");
    // the write key and the member token are not a way around the session either
    let (st, _) =
        raw(&s.url, &request("POST", "/ui/consent-categories", "Authorization: Bearer wk_web\r\n", "id=C9&name=x"));
    assert_eq!(st, 303);
}

#[test]
fn hostile_event_values_traits_and_ids_render_inert() {
    let s = ui_server();
    let (cookie, _) = login(&s.url, &s.token);
    let x = "<script>alert(1)</script>";
    let evil_user = "\"><svg onload=alert(2)>";
    let identify = json!({"type": "identify", "userId": evil_user, "messageId": "i1",
        "traits": {x: "<img src=x onerror=alert(3)>", "name": {"nested": x}},
        "context": {"consent": {"categoryPreferences": {"C0004": true, x: "yes"}}}});
    assert_eq!(s.post("/v1/identify", &identify).0, 200);
    let track = json!({"anonymousId": x, "event": x, "messageId": x, "properties": {x: x},
        "integrations": {x: false}, "context": {"consent": {"consentPreferences": {"C0004": x}}}});
    assert_eq!(s.post("/v1/track", &track).0, 200);
    // an invalid event in a batch: its stored body and reason
    assert_eq!(s.post("/v1/batch", &json!({"batch": [{"type": x, "userId": x}]})).0, 200);
    s.settle();
    let enc = |v: &str| v.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let pages = [
        "/ui/debugger/web".to_string(),
        format!("/ui/profiles/{}", enc(evil_user)),
        format!("/ui/profiles/{}", enc(x)),
        format!("/ui/debugger/{}", enc(x)),
        format!("/ui/models/{}", enc(x)),
        format!("/ui/profiles?id={}", enc(x)),
        format!("/ui/profiles?id={}", enc("//evil.example/x")),
        format!("/ui/profiles?id={}", enc("\r\nLocation: https://evil.example")),
        "/ui/audit-log".to_string(),
        "/ui/".to_string(),
    ];
    for path in pages {
        let (st, a) = raw(&s.url, &request("GET", &path, &cookie, ""));
        assert!(matches!(st, 200 | 303 | 404), "{path}: {st}");
        for bad in ["<script>alert", "<svg", "<img", "onerror=alert(3)>"] {
            assert!(!a.contains(bad), "{path} renders {bad} raw: {a}");
        }
        if let Some(to) = header(&a, "location") {
            assert!(to.starts_with("/ui/"), "{path} redirects off-site to {to}");
        }
    }
    let (_, profile) = raw(&s.url, &request("GET", &format!("/ui/profiles/{}", enc(evil_user)), &cookie, ""));
    assert!(profile.contains("&lt;img src=x onerror=alert(3)&gt;"), "the trait shown escaped: {profile}");
}

/// One event to the `shop` source (write key `wk_shop`) with `headers` as given.
fn post_shop(s: &Server, path: &str, headers: &str, e: &Value) -> u16 {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("wk_shop:");
    let extra = format!("Authorization: Basic {auth}\r\nContent-Type: application/json\r\n{headers}");
    raw(&s.url, &request("POST", path, &extra, &e.to_string())).0
}

fn gpc_server(workspace: &str) -> Server {
    start_in(
        tempfile::tempdir().unwrap(),
        "{id: shop, kind: events, write_key: wk_shop, gpc_refuses: [ad]}",
        &format!(
            "{workspace}destinations:\n{}{}{}consent_categories:
  - {{id: ad, name: Advertising, destinations: [facebook]}}
  - {{id: analytics, name: Analytics, destinations: [amplitude]}}
",
            hook("facebook", "Facebook"),
            hook("amplitude", "Amplitude"),
            hook("snowflake", "Snowflake")
        ),
    )
}

fn granted(mid: &str) -> Value {
    json!({"userId": format!("u-{mid}"), "event": "Bought", "messageId": mid,
           "context": {"consent": {"categoryPreferences": {"ad": true, "analytics": true}}}})
}

#[test]
fn gpc_header_variants_fail_closed() {
    let s = gpc_server("");
    // broke before the fix: `1, 1` (a proxy joining two headers) and a second header were not read
    let honoured = [
        ("v1", "Sec-GPC: 1\r\n"),
        ("v2", "sec-gpc: 1\r\n"),
        ("v3", "SEC-GPC:1 \r\n"),
        ("v4", "Sec-GPC:  1\r\n"),
        ("v5", "Sec-GPC: 1, 1\r\n"),
        ("v6", "Sec-GPC: 0\r\nSec-GPC: 1\r\n"),
        ("v7", "Sec-GPC: 1\r\nSec-GPC: 1\r\n"),
    ];
    let ignored = [("n1", "Sec-GPC: 0\r\n"), ("n2", "Sec-GPC: true\r\n"), ("n3", "Sec-GPC: \r\n"), ("n4", "")];
    for (mid, h) in honoured.iter().chain(ignored.iter()) {
        assert_eq!(post_shop(&s, "/v1/track", h, &granted(mid)), 200, "{mid}");
    }
    // the batch endpoint reads it too
    let typed = |mid: &str| {
        let mut e = granted(mid);
        e["type"] = json!("track");
        e
    };
    let batch = json!({"batch": [typed("b1"), typed("b2")]});
    assert_eq!(post_shop(&s, "/v1/batch", "Sec-GPC: 1\r\n", &batch), 200);
    let reached = s.settle_source("shop");
    for (mid, _) in honoured.iter().chain([("b1", ""), ("b2", "")].iter()) {
        assert_eq!(reached.get(*mid).cloned().unwrap_or_default(), ["amplitude", "snowflake"], "{mid}: {reached:?}");
    }
    for (mid, _) in ignored {
        assert_eq!(
            reached.get(mid).cloned().unwrap_or_default(),
            ["amplitude", "facebook", "snowflake"],
            "{mid}: {reached:?}"
        );
    }
    // what is sent says `ad` is refused, so a connections destination's downstream refuses it too
    for x in s.rx.items("/amplitude").iter().filter(|x| x["messageId"].as_str().is_some_and(|m| m.starts_with('v'))) {
        assert_eq!(x["context"]["consent"]["categoryPreferences"]["ad"], false, "{x}");
        assert_eq!(x["context"]["consent"]["consentPreferences"]["ad"], false, "{x}");
    }
}

#[test]
fn a_consent_event_under_gpc_records_the_refusal_for_later_events_in_profile_mode() {
    let s = gpc_server("workspace: {missing_consent: profile}\n");
    // the R9 consent event grants advertising, but the browser says GPC
    let mut ev = granted("c1");
    ev["event"] = json!("Segment Consent Preference Updated");
    ev["userId"] = json!("gpc-user");
    assert_eq!(post_shop(&s, "/v1/track", "Sec-GPC: 1\r\n", &ev), 200);
    s.settle_source("shop");
    // a later event without a consent object and without the header routes by the profile
    let later = json!({"userId": "gpc-user", "event": "Viewed", "messageId": "c2"});
    assert_eq!(post_shop(&s, "/v1/track", "", &later), 200);
    let reached = s.settle_source("shop");
    assert_eq!(reached["c1"], ["amplitude", "snowflake"]);
    assert_eq!(reached["c2"], ["amplitude", "snowflake"], "the refusal was stored on the profile");
    let (_, p) = s.get("/v1/profiles/gpc-user");
    let p: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(p["consent"]["ad"], false, "{p}");
}

#[test]
fn a_member_cannot_set_gpc_refuses_or_consent_policy() {
    let s = gpc_server("workspace: {policy: all}\n");
    let (_, member) = tokens(&s);
    let (st, b) = call(
        &s,
        "PUT",
        "/api/v1/sources/shop",
        Some(&member),
        Some(json!({"id": "shop", "kind": "events", "write_key": "<set>", "gpc_refuses": []})),
    );
    assert_eq!(st, 403, "{b}");
    let (st, b) = call(
        &s,
        "PUT",
        "/api/v1/sources/web",
        Some(&member),
        Some(json!({"id": "web", "kind": "events", "write_key": "<set>", "gpc_refuses": ["ad"]})),
    );
    assert_eq!(st, 403, "{b}");
    let find = |path: &str, id: &str| {
        let (_, all) = call(&s, "GET", path, Some(&s.token), None);
        all["items"].as_array().unwrap().iter().find(|x| x["id"] == id).cloned().unwrap()
    };
    let d = find("/api/v1/destinations", "facebook");
    let mut lenient = d.clone();
    lenient["consent_policy"] = json!("any");
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/facebook", Some(&member), Some(lenient));
    assert_eq!(st, 403, "{b}");
    assert!(b.to_string().contains("consent_policy"), "{b}");
    assert_eq!(find("/api/v1/destinations", "facebook"), d);
    assert_eq!(find("/api/v1/sources", "shop")["gpc_refuses"], json!(["ad"]));
    assert_eq!(find("/api/v1/sources", "web").get("gpc_refuses"), None);
}

#[test]
fn the_debugger_explains_a_destinations_own_consent_policy() {
    // workspace policy all; `both` has its own `consent_policy: any` over two categories
    let s = start_in(
        tempfile::tempdir().unwrap(),
        "",
        &format!(
            "workspace: {{policy: all}}\ndestinations:\n{}{}consent_categories:
  - {{id: ad, name: Advertising, destinations: [both, strict]}}
  - {{id: analytics, name: Analytics, destinations: [both, strict]}}
",
            hook("both", "Both").replace("kind: webhook", "kind: webhook, consent_policy: any"),
            hook("strict", "Strict"),
        ),
    );
    let (cookie, _) = login(&s.url, &s.token);
    let e = json!({"userId": "u", "event": "E", "messageId": "m1",
                   "context": {"consent": {"categoryPreferences": {"ad": true, "analytics": false}}}});
    assert_eq!(s.post("/v1/track", &e).0, 200);
    assert_eq!(s.settle()["m1"], ["both"]);
    let (_, dbg) = raw(&s.url, &request("GET", "/ui/debugger/web", &cookie, ""));
    // broke before the fix: the page said "needs Advertising (ad), Analytics (analytics)" (the
    // workspace's `all`) for a destination that was sent the event under its own `any`
    assert!(dbg.contains("Consent allows it (needs one of Advertising (ad), Analytics (analytics))"), "{dbg}");
}
