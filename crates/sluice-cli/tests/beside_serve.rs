//! The CLI beside a running `sluice serve` (found by a newcomer's run of the README): reading
//! commands must not break the server's SQLite files, and no acknowledged change may be lost.

mod common;
use common::{apply, call, sluice};
use serde_json::json;

#[test]
fn cli_commands_beside_a_running_server_break_nothing_and_lose_no_change() {
    let dir = tempfile::tempdir().unwrap();
    apply(
        dir.path(),
        "sources: [{id: web, kind: events, write_key: wk}]
destinations: [{id: out, kind: file, settings: {path: out.jsonl}}]
consent_categories: [{id: C0002, name: Analytics, destinations: [out]}]
",
    );
    let token = String::from_utf8(sluice(dir.path(), &["token", "create", "--role", "owner", "--name", "t"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let (mut server, url) = common::serve(dir.path());
    for round in 0..4 {
        let name = format!("Analytics {round}");
        let (st, body) =
            call("PATCH", &format!("{url}/api/v1/consent-categories/C0002"), &token, Some(json!({"name": name})));
        assert_eq!(st, 200, "round {round}: {body}");
        let ev = json!({"userId": format!("u{round}"), "event": "E", "messageId": format!("m{round}")});
        let r = ureq::post(&format!("{url}/v1/track")).set("Authorization", "Basic d2s6").send_json(ev).unwrap();
        assert_eq!(r.status(), 200);
        // reading commands, each a process that opens and closes the state files
        for args in [&["overview"][..], &["usage"], &["debugger", "web"], &["stream-overview"], &["audit-log"]] {
            let out = sluice(dir.path(), args);
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        for path in ["/v1/debugger/web", "/v1/overview", "/api/v1/consent-categories", "/api/v1/audit-log"] {
            let (st, body) = call("GET", &format!("{url}{path}"), &token, None);
            assert_eq!(st, 200, "round {round}, {path} after CLI reads: {body}");
        }
        let wal = dir.path().join(".sluice/stream.db-wal");
        assert!(wal.exists(), "round {round}: the live server's WAL was removed under it");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    // every acknowledged change survived
    let out = sluice(dir.path(), &["export"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Analytics 3"), "the last acknowledged rename is kept: {text}");
    let log = String::from_utf8_lossy(&sluice(dir.path(), &["audit-log", "--json"]).stdout).into_owned();
    for round in 0..4 {
        assert!(log.contains(&format!("Analytics {round}")), "audit entry of round {round} kept: {log}");
    }
}

#[test]
fn sluice_apply_beside_a_running_server_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = |key: &str| {
        format!("sources: [{{id: web, kind: events, write_key: {key}}}]\ndestinations: [{{id: out, kind: file, settings: {{path: out.jsonl}}}}]\n")
    };
    apply(dir.path(), &yaml("wk_old"));
    let (mut server, url) = common::serve(dir.path());
    let post = |key: &str| {
        use base64::Engine;
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")));
        match ureq::post(&format!("{url}/v1/track"))
            .set("Authorization", &auth)
            .send_json(json!({"userId": "u", "event": "E"}))
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(post("wk_old"), 200);
    apply(dir.path(), &yaml("wk_new")); // another process changes the stored workspace
    let t = std::time::Instant::now();
    while post("wk_new") != 200 {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "the applied key never started working");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(post("wk_old"), 401, "the replaced key stopped working");
    server.kill().unwrap();
    server.wait().unwrap();
}
