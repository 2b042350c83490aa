//! Attacks of the independent security review (issue 8 follow-up). Each test fails on the code
//! it was written against and names what an attacker does.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Held by the tests that measure time or memory, so that they do not measure each other.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Anyone with the public write key links thousands of fresh `anonymousId`s to one `userId`.
/// Every event then loads and re-saves the whole profile (its identifier sets grow without
/// bound), so each batch costs more than the last and the single writer stalls the Tracking API
/// for every other client (measured: a bystander's single `track` waited 1 min 44 s).
#[test]
fn review_profile_identifiers_linked_by_the_public_key_do_not_make_ingest_quadratic() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let s = start(&format!("destinations:\n{}", hook("log", "Log")));
    let mut times = vec![];
    for b in 0..4 {
        let batch: Vec<Value> = (0..1500)
            .map(|i| json!({"type": "page", "userId": "victim", "anonymousId": format!("dev-{b}-{i}-{}", "x".repeat(40))}))
            .collect();
        let t = Instant::now();
        let (st, _) = s.post("/v1/batch", &json!({ "batch": batch }));
        assert_eq!(st, 200);
        times.push(t.elapsed());
    }
    // linear work: the 4th batch costs about what the 1st did (quadratic: ~8x)
    assert!(
        times[3] < times[0] * 3 + Duration::from_secs(2),
        "each batch of 1500 events on one profile costs more than the last: {times:?}"
    );
}

/// The trait caps of finding 16 (256 traits, 64 KB) hold only for `identify`: merging profiles
/// (`alias`, or any event carrying two ids) unions their traits without a bound, so ten
/// profiles of 52 KB each became one 534 KB profile with 2,500 traits on a running server.
#[test]
fn review_profile_merges_keep_the_trait_caps() {
    let s = start(&format!("destinations:\n{}", hook("log", "Log")));
    for i in 0..4 {
        // 200 traits of ~215 bytes (43 KB) per user, in two identify calls under the 32 KB event limit
        for half in 0..2 {
            let traits: serde_json::Map<String, Value> =
                (0..100).map(|k| (format!("t{i}_{half}_{k}"), Value::String("v".repeat(200)))).collect();
            assert_eq!(s.post("/v1/identify", &json!({"userId": format!("tu{i}"), "traits": traits})).0, 200);
        }
    }
    for i in 1..4 {
        assert_eq!(s.post("/v1/alias", &json!({"previousId": format!("tu{i}"), "userId": "tu0"})).0, 200);
    }
    let (st, body) = s.get("/v1/profiles/tu0");
    assert_eq!(st, 200, "{body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    let traits = p["traits"].as_object().unwrap();
    let bytes = serde_json::to_string(traits).unwrap().len();
    assert!(
        traits.len() <= 256 && bytes <= 64 * 1024,
        "a merged profile keeps {} traits, {bytes} bytes (caps: 256, 64 KB)",
        traits.len()
    );
}

/// A webhook URL whose path is the credential (Slack `hooks.slack.com/services/T/B/<secret>`,
/// Discord `/api/webhooks/<id>/<token>`, Zapier catch hooks) is shown whole to a member by
/// `GET /api/v1/destinations` and the audit log: `redact_url` hides only the user, password and
/// query, so the member can post to the owner's channel directly.
#[test]
fn review_secret_in_a_webhook_url_path_is_not_shown_to_members() {
    let s = start(
        "destinations:\n  - {id: slack, name: Slack, kind: webhook, settings: {url: \"https://hooks.slack.com/services/T000/B000/XXsecretTOKENxx\", batch_size: 10}}\n",
    );
    let (_, member) = tokens(&s);
    let (st, body) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    assert_eq!(st, 200);
    assert!(!body.to_string().contains("XXsecretTOKENxx"), "a member reads the webhook's secret path: {body}");
}

/// SECURITY.md: "a body must arrive within 30 s (408)". `RequestBodyTimeoutLayer` only bounds
/// the gap between two body frames, so a client that sends one byte every few seconds holds its
/// connection (and one of `--max-connections` slots) for as long as it likes; no write key is
/// needed (the body is read before the key is checked). With `max_connections` held by
/// tricklers, the public API stops answering anyone.
#[test]
fn review_a_trickled_body_is_cut_off_at_the_body_timeout() {
    use std::io::{Read, Write};
    let s = start_cfg(tempfile::tempdir().unwrap(), "", &format!("destinations:\n{}", hook("ads", "Ads")), |c| {
        c.limits = sluice_server::edge::Limits {
            max_connections: 4,
            header_timeout: Duration::from_millis(800),
            body_timeout: Duration::from_millis(800),
        };
    });
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(b"POST /v1/m HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").unwrap();
    let mut w = c.try_clone().unwrap();
    let t = Instant::now();
    // one byte every 400 ms: each gap is under the 800 ms body timeout, the whole body takes 40 s
    std::thread::spawn(move || {
        for _ in 0..100 {
            if w.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut first = [0u8; 1];
    let _ = c.read(&mut first);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a body trickled one byte at a time was read for {:?} (body timeout: 800 ms)",
        t.elapsed()
    );
}

/// With `missing_consent: profile`, a person who withdrew Advertising (R9) is kept from the local
/// ad tool when a later page forgets to stamp consent, but a `connections` destination forwards
/// that same event downstream without any consent object: the downstream router (Segment, or
/// another Sluice with the default `missing_consent: allow`) sees "no consent object" (R7) and
/// sends it to every ad tool. The consent the upstream router decided by is not stamped on what
/// it forwards (sluice-destinations connections/forward.rs `namespaced` copies the stored body as it came in).
#[test]
fn review_connections_forwarding_keeps_the_consent_the_router_decided_by() {
    let s = start(&format!(
        "workspace: {{missing_consent: profile}}\ndestinations:\n{}  - {{id: seg, kind: connections, settings: {{url: \"{{URL}}/down\", write_key: k, retry_initial_ms: 10, retry_max_ms: 20}}}}\nconsent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads")
    ));
    let withdraw = json!({"userId": "u1", "event": "Segment Consent Preference Updated",
        "context": {"consent": {"categoryPreferences": {"C0004": false}}}});
    assert_eq!(s.post("/v1/track", &withdraw).0, 200);
    // a later page that forgot to stamp consent
    assert_eq!(s.post("/v1/page", &json!({"userId": "u1", "messageId": "later-page"})).0, 200);
    let t = Instant::now();
    let forwarded = loop {
        let items = s.rx.items("/down/v1/batch");
        if let Some(e) = items.iter().find(|e| e["messageId"].as_str().is_some_and(|m| m.ends_with("later-page"))) {
            break e.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the page was not forwarded");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(s.rx.items("/ads").iter().all(|e| e["messageId"] != "later-page"), "the local ad tool is protected");
    assert_eq!(
        forwarded["context"]["consent"]["categoryPreferences"]["C0004"],
        json!(false),
        "forwarded downstream without the withdrawal the router applied: {forwarded}"
    );
}

fn rss_mb() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status.split("VmRSS:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    kb / 1024
}

/// Anyone with the public write key posts 500 KB batches of tiny events
/// (`{"type":"page","anonymousId":"a"}` x 13,000). Each is parsed into `Prepared` events on the
/// request's thread and waits in the writer's queue (4,096 jobs deep, as many as
/// `--max-connections`): ~11 MB of memory per 0.5 MB request. Measured on `sluice serve`:
/// 150 concurrent requests took the process from 70 MB to 1.65 GB (1.16 GB still held after);
/// 4,096 connections would need ~45 GB. In-flight ingest needs a byte budget, not a job count.
#[test]
fn review_in_flight_batches_cannot_exhaust_memory() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    // a file destination: what is delivered is not held in this process (an HTTP receiver
    // here would keep all 780,000 events in memory and be measured with the server)
    let s = start("destinations:\n  - {id: log, kind: file, settings: {path: out/log.jsonl}}\n");
    let body =
        std::sync::Arc::new(json!({ "batch": vec![json!({"type": "page", "anonymousId": "a"}); 13_000] }).to_string());
    assert!(body.len() < 500 * 1024);
    let before = rss_mb();
    let url = format!("{}/v1/batch", s.url);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..60)
        .map(|_| {
            let (body, url, done) = (body.clone(), url.clone(), done.clone());
            std::thread::spawn(move || {
                let _ = ureq::post(&url)
                    .set("Authorization", "Basic d2tfd2ViOg==")
                    .timeout(Duration::from_secs(300))
                    .send_string(&body);
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        })
        .collect();
    let mut peak = before;
    while done.load(std::sync::atomic::Ordering::Relaxed) < clients.len() {
        peak = peak.max(rss_mb());
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in clients {
        c.join().unwrap();
    }
    assert!(peak - before < 300, "60 in-flight 0.5 MB batches took the server from {before} MB to {peak} MB");
}

/// A member may create a model on an SQLite source when it maps to no consent-governed
/// destination (roles table). A recursive CTE that never ends
/// (`with recursive c(x) as (select 1 union all select x+1 from c) select count(*) as id from c`)
/// then pins a core: its preview has no time limit on SQLite (the 60 s limit exists only for
/// PostgreSQL; here it ran until the client gave up after 90 s), and a sync of it
/// (`POST /api/v1/models/{id}/syncs`) is never cancelled at all: on `sluice serve` the thread
/// still spun at 100 % CPU minutes later, and one model per core starves the server.
#[test]
fn review_a_members_runaway_sqlite_model_is_stopped() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = warehouse_dir("create table p(id integer);");
    let s = start_in(dir, "{id: dwh, kind: sqlite, path: w.db}", &format!("destinations:\n{}", hook("log", "Log")));
    let (_, member) = tokens(&s);
    let model = json!({"source": "dwh", "unique_id": "id",
        "sql": "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) as id from c"});
    let (st, body) = call(&s, "PUT", "/api/v1/models/spin", Some(&member), Some(model));
    assert_eq!(st, 200, "a member may create a model that reaches no governed destination: {body}");
    let t = Instant::now();
    let r = ureq::get(&format!("{}/api/v1/models/spin/preview", s.url))
        .set("Authorization", &format!("Bearer {member}"))
        .timeout(Duration::from_secs(75))
        .call();
    let answered = match r {
        Ok(_) | Err(ureq::Error::Status(..)) => true,
        Err(_) => false,
    };
    assert!(answered && t.elapsed() < Duration::from_secs(65), "the preview ran {:?} without an answer", t.elapsed());
}

/// A member's model (allowed: it reaches no governed destination) selects one huge value,
/// `printf('%.*c', 100000000, 'x')` on SQLite (`repeat('x', 1e9)` on PostgreSQL). Nothing bounds a
/// cell, a row or a preview: the whole value is read, turned into JSON and sent. On `sluice serve`
/// one 200 MB cell took the process from 35 MB to 778 MB (627 MB still held after); ten rows of
/// 1 GB (SQLite's and PostgreSQL's largest value), or a few previews at once, exhaust memory.
/// A sync of the same model reads the same cells.
#[test]
fn review_a_members_preview_of_huge_values_is_bounded() {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = warehouse_dir("create table p(id integer);");
    let s = start_in(dir, "{id: dwh, kind: sqlite, path: w.db}", &format!("destinations:\n{}", hook("log", "Log")));
    let (_, member) = tokens(&s);
    let model =
        json!({"source": "dwh", "unique_id": "id", "sql": "select 1 as id, printf('%.*c', 100000000, 'x') as big"});
    let (st, body) = call(&s, "PUT", "/api/v1/models/big", Some(&member), Some(model));
    assert_eq!(st, 200, "{body}");
    let before = rss_mb();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mb());
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let r = ureq::get(&format!("{}/api/v1/models/big/preview", s.url))
        .set("Authorization", &format!("Bearer {member}"))
        .timeout(Duration::from_secs(120))
        .call();
    let (status, len) = match r {
        Ok(r) => (r.status(), std::io::copy(&mut r.into_reader(), &mut std::io::sink()).unwrap_or(0)),
        Err(ureq::Error::Status(st, _)) => (st, 0),
        Err(e) => panic!("{e}"),
    };
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watch.join().unwrap();
    assert!(status != 200 || len < 8 * 1024 * 1024, "a 10-row preview answered {len} bytes");
    assert!(peak.saturating_sub(before) < 200, "one preview took the server from {before} MB to {peak} MB");
}
