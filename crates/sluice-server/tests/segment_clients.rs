//! Segment's own JavaScript clients, unmodified from npm, against a real `sluice serve`:
//! `@segment/analytics-node`, and Analytics.js 2.0 (`@segment/analytics-next`) wrapped by
//! `@segment/analytics-consent-tools` in Debian's headless Chromium (driven by `playwright-core`,
//! no browser download), on a page served from another origin. The scripts and their pinned
//! packages live in `tests/js/`; `scripts/test.sh` installs them (`npm ci`) and Chromium.
//! A missing `node`, package or browser fails these tests; nothing is skipped.

mod common;
use common::*;
use serde_json::Value;
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

/// A profile's stored consent (R9–R10), read from the event log as `sluice profile` does.
fn profile_consent(s: &Server, id: &str) -> Value {
    let conn = sluice_server::store::open(&s.dir.path().join(".sluice")).unwrap();
    let p = sluice_server::store::profile_of(&conn, id).unwrap().unwrap_or_else(|| panic!("no profile `{id}`"));
    sluice_server::read::profile_json(&p)["consent"].clone()
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
    s.settle_source("web");
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

/// `browser.mjs` running one scenario in headless Chromium; killed if the test fails half-way.
struct Browser {
    child: Child,
    /// The script's stdout lines, read by a thread (so that a hung script fails the test).
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// The page's origin (another port of 127.0.0.1 than Sluice's).
    page: String,
    _out: tempfile::TempDir,
}

impl Browser {
    /// Serves the page on a free port; returns it with its origin, before Sluice starts (so
    /// that a source's `allowed_origins` can name it).
    fn page() -> (tempfile::TempDir, String) {
        let out = tempfile::tempdir().unwrap();
        let page = serve_page(out.path());
        (out, page)
    }

    /// Starts `scenario` against Sluice at `url` with `write_key`.
    fn run((out, page): (tempfile::TempDir, String), url: &str, write_key: &str, scenario: &str) -> Self {
        require_node();
        assert_ne!(page, url, "the page and Sluice are different origins");
        let mut child = Command::new("node")
            .arg(js_dir().join("browser.mjs"))
            .args([url, page.as_str(), &out.path().to_string_lossy(), write_key, scenario])
            .env("SLUICE_TEST_CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        let stderr = child.stderr.take().unwrap();
        let stderr = Some(std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        Self { child, lines, stderr, page, _out: out }
    }

    /// The script's next report; fails with its stderr if it ended first.
    fn next(&mut self, phase: &str) -> Value {
        match self.lines.recv_timeout(Duration::from_secs(90)) {
            Ok(l) => {
                let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert_eq!(v["phase"], phase, "{v}");
                v
            }
            Err(e) => {
                self.stop();
                let err =
                    format!("{e:?}; stderr:\n{}", self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default());
                panic!("no `{phase}` from the browser script ({err}");
            }
        }
    }

    /// Lets a scenario waiting on stdin go on.
    fn go(&mut self) {
        self.child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }

    /// The final report, once the script exited successfully, with no request to any host but
    /// the page's and Sluice's.
    fn done(&mut self) -> Value {
        let done = self.next("done");
        assert!(self.child.wait().unwrap().success(), "the browser script failed");
        assert_eq!(done["foreign"], serde_json::json!([]), "requests to hosts other than the page and Sluice");
        done
    }
}

impl Browser {
    /// Ends a script still running: SIGTERM first, on which Playwright closes Chromium.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let t = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn analytics_next_with_consent_tools_routes_by_stamped_categories() {
    let page = Browser::page();
    // the shop's source only takes events from the shop's page: its origin is echoed
    let s = start_in(
        tempfile::tempdir().unwrap(),
        &format!("{{id: shop, kind: events, write_key: wk_shop, allowed_origins: [\"{}\"]}}", page.1),
        &workspace(),
    );
    let mut b = Browser::run(page, &s.url, "wk_shop", "consent");
    let page = b.page.clone();

    // phase 1: pricing viewed without advertising consent, then a grant and one more event
    b.next("granted");
    let _ = s.delivered("/warehouse", 5);
    s.settle_source("shop");
    assert_eq!(
        calls(&s, "/ads"),
        [("track".to_string(), CONSENT_EVENT.to_string()), ("track".into(), "Added to Cart".into())],
        "before the grant nothing reached ads; after it, the consent event and the next track did"
    );
    assert_eq!(profile_consent(&s, "user-42"), serde_json::json!({"C0004": true, "C0002": true}), "the grant");
    b.go();

    // phase 2: consent withdrawn, one more event
    let done = b.done();
    assert_eq!(done["consoleErrors"], serde_json::json!([]), "console errors in the page: {done}");
    assert_eq!(done["pageErrors"], serde_json::json!([]), "{done}");

    // the settings came from Sluice (cdnURL), fetched cross-origin
    let settings = done["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert_eq!(settings[0]["path"], "/v1/projects/wk_shop/settings");
    assert_eq!((settings[0]["status"].as_u64(), settings[0]["origin"].as_str()), (Some(200), Some(page.as_str())));
    assert_eq!(settings[0]["allowOrigin"], page.as_str(), "the listed origin is echoed");
    // every event was posted cross-origin to the apiHost the settings named, with the write key
    let posts = done["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 7, "{posts:?}");
    let auth = {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("wk_shop:"))
    };
    for p in posts {
        assert_eq!(p["status"], 200, "{p}");
        assert_eq!(
            (&p["origin"], &p["allowOrigin"]),
            (&Value::from(page.as_str()), &Value::from(page.as_str())),
            "{p}"
        );
        assert!(p["contentType"].as_str().is_some_and(|c| c.starts_with("text/plain")), "{p}");
        assert_eq!(p["authorization"], auth.as_str(), "{p}");
        assert!(["/v1/p", "/v1/i", "/v1/t"].contains(&p["path"].as_str().unwrap()), "{p}");
    }

    let wh = s.delivered("/warehouse", 7);
    assert_eq!(wh.len(), 7, "the unmapped destination receives every event (R1)");
    let sent: Vec<&str> = posts.iter().map(|p| p["event"]["messageId"].as_str().unwrap()).collect();
    assert_eq!(wh, sent, "what the browser sent, in order");
    s.settle_source("shop");
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

#[test]
fn analytics_next_batches_to_a_source_without_allowed_origins() {
    let page = Browser::page();
    let s = start(&workspace());
    let mut b = Browser::run(page, &s.url, "wk_web", "batch");
    let done = b.done();
    assert_eq!(done["consoleErrors"], serde_json::json!([]), "console errors in the page: {done}");
    assert_eq!(done["pageErrors"], serde_json::json!([]), "{done}");
    // no list on the source: `*`
    let (settings, posts) = (&done["settings"][0], &done["posts"]);
    assert_eq!((settings["status"].as_u64(), settings["allowOrigin"].as_str()), (Some(200), Some("*")), "{done}");
    assert_eq!(posts.as_array().map(Vec::len), Some(1), "one batch: {done}");
    let p = &posts[0];
    assert_eq!(
        (p["path"].as_str(), p["status"].as_u64(), p["allowOrigin"].as_str()),
        (Some("/v1/b"), Some(200), Some("*"))
    );
    assert!(p["contentType"].as_str().is_some_and(|c| c.starts_with("text/plain")), "{p}");
    let sent: Vec<&str> =
        p["event"]["batch"].as_array().unwrap().iter().map(|e| e["messageId"].as_str().unwrap()).collect();
    assert_eq!(s.delivered("/warehouse", 2), sent);
    let items = s.rx.items("/warehouse");
    assert_eq!((items[0]["event"].as_str(), items[0]["properties"]["from"].as_str()), (Some("Hello"), Some("a page")));
    assert_eq!(items[1]["event"], "Bye");
    // the wrapper stamped the visitor's choice (C0004 not granted): ads gets nothing
    assert!(items.iter().all(|e| e["context"]["consent"]["categoryPreferences"]["C0004"] == false));
    s.settle_source("web");
    assert!(s.rx.items("/ads").is_empty());
}

#[test]
fn analytics_next_on_a_page_its_source_does_not_allow_sends_nothing() {
    let page = Browser::page();
    let s = start_in(
        tempfile::tempdir().unwrap(),
        "{id: shop, kind: events, write_key: wk_shop, allowed_origins: [\"https://shop.example\"]}",
        &workspace(),
    );
    let mut b = Browser::run(page, &s.url, "wk_shop", "refused");
    let page = b.page.clone();
    let done = b.done();
    // the refusal is readable (not a CORS failure): Analytics.js gives up instead of retrying
    let settings = &done["settings"][0];
    assert_eq!((settings["status"].as_u64(), settings["allowOrigin"].as_str()), (Some(403), Some(page.as_str())));
    assert!(done["load"].as_str().is_some_and(|t| t.starts_with("failed")), "Analytics.js did not load: {done}");
    assert_eq!(done["posts"], serde_json::json!([]), "{done}");
    assert!(done["load"].as_str().is_some_and(|l| l.contains("origin_not_allowed")), "the page read why: {done}");
    let errors = done["consoleErrors"].as_array().unwrap().iter().chain(done["pageErrors"].as_array().unwrap());
    for e in errors.map(|e| e.as_str().unwrap()) {
        assert!(e.contains("403") || e.contains("origin_not_allowed"), "only the refusal is reported: {done}");
    }
    let conn = sluice_server::store::open(&s.dir.path().join(".sluice")).unwrap();
    assert!(sluice_server::store::recent_events(&conn, "shop", 10).unwrap().0.is_empty());
}
