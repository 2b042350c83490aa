//! Durability of `sluice serve`: SIGKILL while events are in flight; after a restart every
//! acknowledged event is delivered (at least once), none is lost.

mod common;
use common::apply;
use sluice_testkit::Receiver;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sigkill_loses_no_acknowledged_event() {
    let rx = Receiver::start();
    rx.set_default(503); // the destination is down: events wait in the outbox
    let dir = tempfile::tempdir().unwrap();
    apply(
        dir.path(),
        &format!(
            "sources: [{{id: web, kind: events, write_key: wk}}]
destinations:
  - {{id: crm, kind: webhook, settings: {{url: \"{}/crm\", max_attempts: 1, timeout_secs: 2}}}}
",
            rx.url()
        ),
    );
    let (mut server, url) = common::serve(dir.path());

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let poster = {
        let (acked, url) = (acked.clone(), url.clone());
        std::thread::spawn(move || {
            for b in 0..10_000 {
                let batch: Vec<serde_json::Value> = (0..10)
                    .map(|i| serde_json::json!({"type": "track", "userId": "u", "event": "E", "messageId": format!("m{b}-{i}")}))
                    .collect();
                let r = ureq::post(&format!("{url}/v1/batch"))
                    .set("Authorization", "Basic d2s6") // base64("wk:")
                    .timeout(Duration::from_secs(5))
                    .send_json(serde_json::json!({"batch": batch}));
                match r {
                    Ok(resp) if resp.status() == 200 => {
                        acked.lock().unwrap().extend((0..10).map(|i| format!("m{b}-{i}")))
                    }
                    _ => return, // the server died mid-request: not acknowledged
                }
            }
        })
    };
    let t = Instant::now();
    while acked.lock().unwrap().len() < 500 {
        assert!(t.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap(); // SIGKILL, with requests in flight
    server.wait().unwrap();
    poster.join().unwrap();
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();

    rx.set_default(200); // the destination recovers
    let (mut server, _) = common::serve(dir.path());
    let t = Instant::now();
    loop {
        let got: HashSet<String> =
            rx.items("/crm").iter().filter_map(|e| e["messageId"].as_str().map(String::from)).collect();
        let missing = acked.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{missing} of {} acknowledged events never arrived",
            acked.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // at-least-once: nothing was delivered twice here (the destination never accepted a batch before the kill)
    let all: Vec<String> = rx.items("/crm").iter().filter_map(|e| e["messageId"].as_str().map(String::from)).collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), unique.len(), "duplicates delivered");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn profile_and_debugger_commands_show_what_serve_decided() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    apply(
        dir.path(),
        &format!(
            "sources: [{{id: web, kind: events, write_key: wk}}]
destinations:
  - {{id: ads, name: Ads, kind: webhook, settings: {{url: \"{}/ads\"}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
",
            rx.url()
        ),
    );
    let sluice = |args: &[&str]| common::sluice(dir.path(), args);
    let (mut server, url) = common::serve(dir.path());
    let post = |path: &str, body: serde_json::Value| {
        ureq::post(&format!("{url}{path}")).set("Authorization", "Basic d2s6").send_json(body).unwrap().status()
    };
    assert_eq!(
        post(
            "/v1/track",
            serde_json::json!({"anonymousId": "dev", "event": "Segment Consent Preference Updated", "messageId": "c",
            "context": {"consent": {"categoryPreferences": {"C0004": false}}}})
        ),
        200
    );
    assert_eq!(post("/v1/identify", serde_json::json!({"userId": "u1", "anonymousId": "dev", "messageId": "i"})), 200);
    let out = sluice(&["profile", "u1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["consent"], serde_json::json!({"C0004": false}));
    assert_eq!(p["consent_conflict"], false);
    let out = sluice(&["profile", "dev", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["user_ids"],
        serde_json::json!(["u1"])
    );
    let out = sluice(&["profile", "nobody"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no profile"));
    let out = sluice(&["debugger", "web", "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["events"][1]["decisions"]["ads"]["route"], "withheld");
    assert_eq!(d["events"][1]["decisions"]["ads"]["categories"], serde_json::json!(["C0004"]));
    let out = sluice(&["stream-overview", "--json"]);
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["destinations"]["ads"]["received"], 2);
    assert_eq!(o["destinations"]["ads"]["withheld_by_category"]["C0004"], 1);
    let text = String::from_utf8(sluice(&["stream-overview"]).stdout).unwrap();
    assert!(text.contains("C0004: 1"), "{text}");
    let out = sluice(&["debugger", "web"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ads: withheld (C0004)"));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn sigkill_after_the_consent_event_was_acknowledged_still_deletes_the_person() {
    // R13: the withdrawal delete is queued in the consent event's transaction
    let rx = Receiver::start();
    rx.set_default(503); // the destination is down
    let dir = tempfile::tempdir().unwrap();
    apply(
        dir.path(),
        &format!(
            "sources: [{{id: web, kind: events, write_key: wk}}]
destinations:
  - {{id: crm, kind: webhook, on_withdrawal: delete, settings: {{url: \"{}/crm\", max_attempts: 1, timeout_secs: 2}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [crm]}}]
",
            rx.url()
        ),
    );
    let (mut server, url) = common::serve(dir.path());
    let post = |body: serde_json::Value| {
        ureq::post(&format!("{url}/v1/batch"))
            .set("Authorization", "Basic d2s6")
            .send_json(serde_json::json!({"batch": [body]}))
            .map(|r| r.status())
            .unwrap_or(0)
    };
    assert_eq!(
        post(serde_json::json!({"type": "identify", "userId": "u9", "anonymousId": "d9", "messageId": "i9"})),
        200
    );
    let consent = serde_json::json!({"type": "track", "userId": "u9", "event": "Segment Consent Preference Updated",
        "messageId": "c9", "context": {"consent": {"categoryPreferences": {"C0004": false}}}});
    assert_eq!(post(consent), 200);
    server.kill().unwrap(); // SIGKILL right after the 200
    server.wait().unwrap();

    rx.set_default(200);
    let (mut server, _) = common::serve(dir.path());
    let deleted = |rx: &Receiver| {
        let mut v: Vec<(String, String)> = rx
            .items("/crm")
            .iter()
            .filter(|i| i["action"] == "deleted")
            .map(|i| (i["id"].as_str().unwrap().to_string(), i["reason"].as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    };
    let t = Instant::now();
    while deleted(&rx).len() < 2 {
        assert!(t.elapsed() < Duration::from_secs(30), "the withdrawal never reached the destination");
        std::thread::sleep(Duration::from_millis(50));
    }
    let want =
        vec![("d9".to_string(), "consent_withdrawn".to_string()), ("u9".to_string(), "consent_withdrawn".to_string())];
    assert_eq!(deleted(&rx), want);
    // the identify (queued before it) was delivered first
    let items = rx.items("/crm");
    assert_eq!(items[0]["messageId"], "i9", "{items:?}");
    // its own outcome in `sluice stream-overview` (the worker records it right after the 2xx)
    let t = Instant::now();
    loop {
        let out = common::sluice(dir.path(), &["stream-overview", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["destinations"]["crm"]["deleted_on_withdrawal"] == 1 {
            assert_eq!(v["destinations"]["crm"]["withdrawal_deletes_queued"], 1, "{v}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
