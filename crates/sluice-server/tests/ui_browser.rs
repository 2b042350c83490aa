//! The web UI in Debian's headless Chromium (playwright-core from `tests/js`, no browser
//! download; `scripts/test.sh` installs both): login, a category created and disabled by an
//! owner, the same page as a member, a consent column mapped on a model, a sync run and its
//! funnel, the debugger's withheld event, a profile's conflict, no console error anywhere.
//! Screenshots of every page land in `<target>/tmp/ui-screenshots/`. A missing `node`, package
//! or browser fails this test; nothing is skipped.

mod common;

use common::{hook, start_in, warehouse_dir};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("js")
}

/// Fails (never skips) when node, playwright-core or Chromium is missing.
fn require_tools() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` is missing: scripts/test.sh installs it (apt-get install -y nodejs npm)"
    );
    assert!(
        js_dir().join("node_modules/playwright-core/package.json").exists(),
        "npm package playwright-core is missing in {}: run scripts/test.sh (it runs `npm ci` there)",
        js_dir().display()
    );
    let chromium =
        std::env::var_os("SLUICE_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "{} is missing: scripts/test.sh installs it (apt-get install -y chromium)",
        chromium.display()
    );
    chromium
}

#[test]
fn the_ui_clicked_through_in_headless_chromium() {
    let chromium = require_tools();
    let s = start_in(
        warehouse_dir(
            "create table p(id integer, email text, ads, analytics);
             insert into p values (1,'a@x',1,1),(2,'b@x',0,1),(3,'c@x',1,0);",
        ),
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [crm]}}
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}, {{destination: crm}}]}}]
",
            hook("ads", "Ads"),
            hook("crm", "CRM")
        ),
    );
    let (_, member) = common::tokens(&s);
    // events: two known users who disagree on Advertising, merged (a conflict); b's events are
    // withheld from ads
    let consent = |user: &str, ad: bool, ts: &str, mid: &str| {
        json!({"userId": user, "event": "Segment Consent Preference Updated", "messageId": mid, "timestamp": ts,
               "context": {"consent": {"categoryPreferences": {"C0004": ad, "C0002": true}}}})
    };
    assert_eq!(s.post("/v1/track", &consent("a", true, "2024-01-01T00:00:00Z", "c1")).0, 200);
    assert_eq!(s.post("/v1/track", &consent("b", false, "2024-01-02T00:00:00Z", "c2")).0, 200);
    assert_eq!(s.post("/v1/alias", &json!({"previousId": "b", "userId": "a", "messageId": "al"})).0, 200);
    s.settle();

    // every answer of the destinations takes 400 ms from now on: the sync runs long enough for
    // the page to show its progress
    s.rx.set_delay(Duration::from_millis(400));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut child = Command::new("node")
        .arg(js_dir().join("ui.mjs"))
        .args([&s.url, &s.token, &member])
        .arg(&shots)
        .env("SLUICE_TEST_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let t = Instant::now();
    while child.try_wait().expect("node is waited for").is_none() {
        if t.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("the browser run took more than 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("node's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed: {stdout}{stderr}");
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let st = &seen["steps"];
    assert!(seen["error"].is_null(), "the browser run stopped: {}\nsteps so far: {st:#}", seen["error"]);
    assert_eq!(seen["consoleErrors"], json!([]), "console errors");
    assert_eq!(seen["pageErrors"], json!([]), "page errors");

    assert_eq!(st["redirectedTo"], "/ui/login");
    assert_eq!(st["home"], "Home");
    assert!(st["created"].as_str().unwrap().contains("Created consent category Functional"), "{st}");
    assert!(st["createdRow"].as_str().unwrap().contains("CRM"), "{st}");
    assert_eq!((st["disableBeforeTyping"].as_bool(), st["disableAfterTyping"].as_bool()), (Some(true), Some(false)));
    assert!(st["disabled"].as_str().unwrap().contains("Disabled consent category Functional"), "{st}");
    assert!(st["disabledRow"].as_str().unwrap().contains("disabled"), "{st}");
    let (_, c) = common::call(&s, "GET", "/api/v1/consent-categories/C0003", Some(&s.token), None);
    assert_eq!(c, json!({"id": "C0003", "name": "Functional", "destinations": ["crm"], "enabled": false}));

    assert!(st["checkBefore"].as_str().unwrap().contains("not mapped"), "{st}");
    assert!(st["mapped"].as_str().unwrap().contains("Saved the consent mapping"), "{st}");
    assert!(st["checkAfter"].as_str().unwrap().contains("match the ones configured"), "{st}");
    let (_, m) = common::call(&s, "GET", "/api/v1/models/p", Some(&s.token), None);
    assert_eq!(m["consent"], json!({"C0004": "ads", "C0002": "analytics"}));
    assert!(st["progressText"].as_str().unwrap().contains("A sync is running"), "{st}");
    // the funnels as drawn: ads withholds row 2 (Advertising), crm row 3 (Analytics)
    let funnels = st["funnels"].as_array().unwrap();
    assert_eq!(funnels.len(), 2, "{st}");
    let find = |label: &str| funnels.iter().find(|f| f.get(label).is_some()).cloned();
    let ads = find("Withheld: Advertising (C0004)").expect("the ads funnel");
    assert_eq!(
        (
            ads["Extracted"].as_str(),
            ads["Withheld: Advertising (C0004)"].as_str(),
            ads["Delivered"].as_str(),
            ads["Failed"].as_str()
        ),
        (Some("3"), Some("1"), Some("2"), Some("0")),
        "{ads}"
    );
    let crm = find("Withheld: Analytics (C0002)").expect("the crm funnel");
    assert_eq!(
        (crm["Withheld: Analytics (C0002)"].as_str(), crm["Delivered"].as_str()),
        (Some("1"), Some("2")),
        "{crm}"
    );
    let records = |path: &str| {
        let mut ids: Vec<String> =
            s.rx.items(path).iter().filter(|i| i["action"] == "added").map(|i| i["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        (records("/ads"), records("/crm")),
        (vec!["\"1\"".to_string(), "\"3\"".into()], vec!["\"1\"".to_string(), "\"2\"".into()])
    );

    assert!(st["debuggerWithheld"].as_str().unwrap().contains("Advertising (C0004)"), "{st}");
    assert!(st["profileAlert"].as_str().unwrap().contains("Consent conflict"), "{st}");
    assert!(st["profileConsent"].as_str().unwrap().contains("conflict"), "{st}");
    assert!(st["auditFirst"].as_str().unwrap().contains("token:test-owner"), "{st}");
    let home = st["homeWithheld"].as_str().unwrap();
    assert!(home.contains("Advertising (C0004)") && home.contains("Analytics (C0002)"), "{home}");
    assert_eq!(st["afterLogout"], "/ui/login");

    // as a member: the logout form is the only form; no create, edit, disable or picker
    assert_eq!(st["memberForms"], 0, "{st}");
    assert_eq!(st["memberButtons"], 0, "{st}");
    assert!(st["memberNote"].as_str().unwrap().contains("You are a member"), "{st}");
    assert_eq!(st["memberModelSelects"], 0, "{st}");
    assert_eq!(st["memberForged"], 403, "{st}");
    assert_eq!(common::call(&s, "GET", "/api/v1/consent-categories/C0099", Some(&s.token), None).0, 404);

    for name in [
        "01-login",
        "02-home",
        "04-categories-owner",
        "06-model-after-sync",
        "07-debugger",
        "08-profile",
        "13-categories-member",
    ] {
        let p = shots.join(format!("{name}.png"));
        assert!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000), "screenshot {}", p.display());
    }
}
