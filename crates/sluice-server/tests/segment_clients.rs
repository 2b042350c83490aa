//! Segment's own JavaScript clients, unmodified from npm, against a real `sluice serve`:
//! `@segment/analytics-node`, and Analytics.js 2.0 (`@segment/analytics-next`) wrapped by
//! `@segment/analytics-consent-tools` in Debian's headless Chromium (driven by `playwright-core`,
//! no browser download), on a page served from another origin. The scripts and their pinned
//! packages live in `tests/js/`; `scripts/test.sh` installs them (`npm ci`) and Chromium.
//! A missing `node`, package or browser fails these tests; nothing is skipped.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Fails (never skips) when node or the npm packages are missing, saying how to install them.
fn require_node() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` is missing: scripts/test.sh installs it (apt-get install -y nodejs npm)"
    );
    for pkg in
        ["@segment/analytics-node", "@segment/analytics-next", "@segment/analytics-consent-tools", "playwright-core"]
    {
        assert!(
            js_dir().join("node_modules").join(pkg).join("package.json").exists(),
            "npm package {pkg} is missing in {}: run scripts/test.sh (it runs `npm ci` there)",
            js_dir().display()
        );
    }
}

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("SLUICE_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(path.exists(), "{} is missing: scripts/test.sh installs it (apt-get install -y chromium)", path.display());
    path
}

/// Serves the files of `dir` on a free port of 127.0.0.1 (the shop's origin, not Sluice's).
fn serve_page(dir: &Path) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind page server");
    let origin = format!("http://{}", server.server_addr().to_ip().expect("ip"));
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let name = req.url().trim_start_matches('/').split('?').next().unwrap_or_default().to_string();
            let file = (!name.contains("..") && !name.contains('/')).then(|| dir.join(&name));
            let resp = match file.and_then(|f| std::fs::read(f).ok()) {
                Some(bytes) => {
                    let ct = if name.ends_with(".js") { "text/javascript" } else { "text/html; charset=utf-8" };
                    tiny_http::Response::from_data(bytes)
                        .with_header(tiny_http::Header::from_bytes("Content-Type", ct).expect("header"))
                }
                None => tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404),
            };
            let _ = req.respond(resp);
        }
    });
    origin
}

/// Waits (up to 15 s) until every delivery the event log decided for `source` reached the
/// receiver; returns, per messageId, the destinations it reached.
fn settle(s: &Server, source: &str) -> BTreeMap<String, Vec<String>> {
    let t = Instant::now();
    let conn = sluice_server::store::open(&s.dir.path().join(".sluice")).unwrap();
    loop {
        let mut pending = 0;
        let mut got = BTreeMap::new();
        for e in sluice_server::store::recent_events(&conn, source, 1000).unwrap() {
            let mid = e.event["messageId"].as_str().unwrap_or_default().to_string();
            let mut reached = vec![];
            for (dest, d) in e.decisions.as_object().into_iter().flatten() {
                if s.rx.items(&format!("/{dest}")).iter().any(|x| x["messageId"] == mid.as_str()) {
                    reached.push(dest.clone());
                } else if d["route"] == "deliver" {
                    pending += 1;
                }
            }
            got.insert(mid, reached);
        }
        if pending == 0 || t.elapsed() > Duration::from_secs(15) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A profile's stored consent (R9–R10), read from the event log as `sluice profile` does.
fn profile_consent(s: &Server, id: &str) -> Value {
    let conn = sluice_server::store::open(&s.dir.path().join(".sluice")).unwrap();
    let p = sluice_server::store::profile_of(&conn, id).unwrap().unwrap_or_else(|| panic!("no profile `{id}`"));
    sluice_server::api::profile_json(&p)["consent"].clone()
}

/// (type, event name) of what a destination received, in order.
fn calls(s: &Server, dest: &str) -> Vec<(String, String)> {
    s.rx.items(dest)
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or("").into(), e["event"].as_str().unwrap_or("").into()))
        .collect()
}

const CONSENT_EVENT: &str = "Segment Consent Preference Updated";

fn workspace() -> String {
    format!(
        "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: []}}
",
        hook("ads", "Ads"),
        hook("warehouse", "Warehouse")
    )
}

#[test]
fn analytics_node_events_are_routed_by_consent() {
    require_node();
    let s = start(&workspace());
    let out = Command::new("node")
        .arg(js_dir().join("node_client.mjs"))
        .args([&s.url, "wk_web"])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "@segment/analytics-node failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        report["requests"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|u| u.as_str().unwrap().contains("/v1/batch"))),
        "the library posts batches to /v1/batch: {report}"
    );
    let all = s.delivered("/warehouse", 7);
    assert_eq!(all.len(), 7, "every call reaches the unmapped destination");
    settle(&s, "web");
    let wh = s.rx.items("/warehouse");
    let track = wh.iter().find(|e| e["type"] == "track" && e["userId"] == "node-1").unwrap();
    assert_eq!(
        (track["event"].as_str(), track["properties"]["revenue"].as_f64()),
        (Some("Order Completed"), Some(42.5))
    );
    assert!(track["context"]["library"]["name"].as_str().is_some_and(|n| n.contains("analytics-node")), "{track}");
    let alias = wh.iter().find(|e| e["type"] == "alias").unwrap();
    assert_eq!((alias["previousId"].as_str(), alias["userId"].as_str()), (Some("node-1"), Some("node-1b")));
    // C0004 governs ads: node-2's events before its grant are withheld; the alias has no consent object (R7)
    let ads: Vec<(String, String)> =
        s.rx.items("/ads")
            .iter()
            .map(|e| (e["type"].as_str().unwrap().into(), e["userId"].as_str().unwrap_or("").into()))
            .collect();
    let want: Vec<(String, String)> =
        [("identify", "node-1"), ("track", "node-1"), ("group", "node-1"), ("track", "node-2"), ("alias", "node-1b")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let mut sorted = ads.clone();
    sorted.sort();
    let mut want_sorted = want;
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "what ads received: {ads:?}");
    assert!(
        s.rx.items("/ads").iter().filter(|e| e["userId"] == "node-2").all(|e| e["event"] == CONSENT_EVENT),
        "node-2's only event at ads is its consent grant"
    );
    assert_eq!(profile_consent(&s, "node-2")["C0004"], true, "the consent event updated node-2's profile");
}

/// Kills the node process if the test fails half-way.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn analytics_next_with_consent_tools_routes_by_stamped_categories() {
    require_node();
    let chromium = chromium();
    let out = tempfile::tempdir().unwrap();
    let page = serve_page(out.path());
    // the shop's source only takes events from the shop's page: the preflight must echo its origin
    let s = start_in(
        tempfile::tempdir().unwrap(),
        &format!("{{id: shop, kind: events, write_key: wk_shop, allowed_origins: [\"{page}\"]}}"),
        &workspace(),
    );
    assert_ne!(page, s.url, "the page and Sluice are different origins");
    let child = Command::new("node")
        .arg(js_dir().join("browser.mjs"))
        .args([s.url.as_str(), page.as_str(), &out.path().to_string_lossy(), "wk_shop"])
        .env("SLUICE_TEST_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut child = Kill(child);
    let stderr = child.0.stderr.take().unwrap();
    let mut stderr = Some(std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default()));
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut next = |child: &mut Kill, what: &str| -> Value {
        match lines.next() {
            Some(Ok(l)) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")),
            _ => {
                let _ = child.0.wait();
                let err = stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
                panic!("the browser script ended before `{what}`:\n{err}");
            }
        }
    };

    // phase 1: pricing viewed without advertising consent, then a grant and one more event
    let granted = next(&mut child, "granted");
    assert_eq!(granted["phase"], "granted", "{granted}");
    let _ = s.delivered("/warehouse", 5);
    settle(&s, "shop");
    assert_eq!(
        calls(&s, "/ads"),
        [("track".to_string(), CONSENT_EVENT.to_string()), ("track".into(), "Added to Cart".into())],
        "before the grant nothing reached ads; after it, the consent event and the next track did"
    );
    assert_eq!(profile_consent(&s, "user-42"), serde_json::json!({"C0004": true, "C0002": true}), "the grant");
    child.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();

    // phase 2: consent withdrawn, one more event
    let done = next(&mut child, "done");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "the browser script failed");
    assert_eq!(done["phase"], "done", "{done}");
    assert_eq!(done["consoleErrors"], serde_json::json!([]), "console errors in the page: {done}");
    assert_eq!(done["pageErrors"], serde_json::json!([]), "{done}");
    assert_eq!(done["foreign"], serde_json::json!([]), "requests to hosts other than the page and Sluice");

    // the settings came from Sluice (cdnURL), fetched cross-origin
    let settings = done["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert_eq!(settings[0]["path"], "/v1/projects/wk_shop/settings");
    assert_eq!((settings[0]["status"].as_u64(), settings[0]["origin"].as_str()), (Some(200), Some(page.as_str())));
    // every event was posted cross-origin to the apiHost the settings named, with the write key
    let posts = done["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 7, "{posts:?}");
    let auth = {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("wk_shop:"))
    };
    for p in posts {
        assert_eq!(p["status"], 200, "{p}");
        assert_eq!(p["origin"], page.as_str(), "{p}");
        assert!(p["contentType"].as_str().is_some_and(|c| c.starts_with("text/plain")), "{p}");
        assert_eq!(p["authorization"], auth.as_str(), "{p}");
        assert!(["/v1/p", "/v1/i", "/v1/t"].contains(&p["path"].as_str().unwrap()), "{p}");
    }

    let wh = s.delivered("/warehouse", 7);
    assert_eq!(wh.len(), 7, "the unmapped destination receives every event (R1)");
    let sent: Vec<&str> = posts.iter().map(|p| p["event"]["messageId"].as_str().unwrap()).collect();
    assert_eq!(wh, sent, "what the browser sent, in order");
    settle(&s, "shop");
    let names: Vec<String> =
        calls(&s, "/warehouse").into_iter().map(|(t, e)| if e.is_empty() { t } else { e }).collect();
    assert_eq!(
        names,
        ["page", "identify", "Viewed Pricing", CONSENT_EVENT, "Added to Cart", CONSENT_EVENT, "Viewed Cart"],
        "{names:?}"
    );
    // the categories the wrapper stamped decided routing: ads got nothing after the withdrawal
    assert_eq!(
        calls(&s, "/ads"),
        [("track".to_string(), CONSENT_EVENT.to_string()), ("track".into(), "Added to Cart".into())],
    );
    let items = s.rx.items("/warehouse");
    let stamps: Vec<&Value> = items.iter().map(|e| &e["context"]["consent"]["categoryPreferences"]).collect();
    let (no, yes) =
        (serde_json::json!({"C0004": false, "C0002": true}), serde_json::json!({"C0004": true, "C0002": true}));
    assert_eq!(stamps, [&no, &no, &no, &yes, &yes, &no, &no], "every event carries the wrapper's stamp");
    for e in &items {
        assert_eq!(e["context"]["library"]["name"], "analytics.js", "{e}");
        assert!(e["messageId"].as_str().is_some_and(|m| m.starts_with("ajs-next-")), "{e}");
        assert!(e["context"]["page"]["url"].as_str().is_some_and(|u| u.starts_with(&page)), "{e}");
        assert!(e.get("writeKey").is_none(), "the write key is not forwarded: {e}");
    }
    assert_eq!(items[1]["traits"]["email"], "ada@example.com");
    // the withdrawal updated the profile, which joins the visitor's anonymousId and userId
    assert_eq!(profile_consent(&s, "user-42"), serde_json::json!({"C0004": false, "C0002": true}), "the withdrawal");
    let anon = items[0]["anonymousId"].as_str().unwrap();
    assert_eq!(profile_consent(&s, anon)["C0004"], false, "the anonymous visitor is the same profile");
}
