//! The bus runtime against the real NATS JetStream and PostgreSQL of this machine: two ingest
//! publishers, two routers and two delivery supervisors (what three processes of a deployment
//! run), events of the same people through different ingest nodes. Fails, never skips, when NATS
//! or PostgreSQL is down (scripts/test.sh starts them).

use serde_json::{json, Value};
use sluice_core::WorkspaceFile;
use sluice_state::PostgresState;
use sluice_stream::bus::{self, Bus, BusSettings};
use sluice_stream::metrics::Metrics;
use sluice_stream::writer::{Job, Prepared, Router};
use sluice_testkit::{wait_for, Receiver};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

fn nats_url() -> String {
    std::env::var("SLUICE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A deployment's shared parts, torn down at the end (streams deleted, schema dropped).
struct Deployment {
    settings: BusSettings,
    state: PostgresState,
    live: sluice_stream::Live,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ingest: Vec<SyncSender<Job>>,
}

impl Deployment {
    fn start(yaml: &str, routers: usize) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let prefix = sluice_testkit::unique_name("t").replace('_', "-");
        let settings = BusSettings { prefix: prefix.chars().take(32).collect(), ..BusSettings::new(nats_url()) };
        let schema = sluice_testkit::unique_name("bus");
        let state = PostgresState { url: sluice_testkit::pg_url(), schema };
        // the state store's tables (privacy requests are read from them), as `sluice apply` makes them
        let local = tempfile::tempdir().unwrap();
        drop(sluice_state::StateStore::open_postgres(&state, local.path()).expect("PostgreSQL must be running"));
        let ws = Arc::new(WorkspaceFile::from_yaml(yaml).unwrap());
        let live: sluice_stream::Live = Arc::new(arc_swap::ArcSwap::new(ws.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(Metrics::default());
        let mut threads = Vec::new();
        let mut ingest = Vec::new();
        // two ingest nodes, each with its own connection
        for _ in 0..2 {
            let b = Arc::new(Bus::connect(settings.clone()).expect("NATS with JetStream must run on 127.0.0.1:4222"));
            let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(64);
            let m = metrics.clone();
            threads.push(std::thread::spawn(move || bus::ingest::run(b, rx, m)));
            ingest.push(tx);
        }
        for _ in 0..routers {
            let b = Arc::new(Bus::connect(settings.clone()).unwrap());
            let (st, m, lv, state) = (stop.clone(), metrics.clone(), live.clone(), state.clone());
            threads.push(std::thread::spawn(move || {
                let r = Router::new(lv.load_full(), lv.clone(), m.clone(), 0);
                bus::router::run(b, state, r, m, st).expect("router runs");
            }));
        }
        // two delivery processes on the same consumers
        for _ in 0..2 {
            let cx = bus::delivery::Context {
                bus: Arc::new(Bus::connect(settings.clone()).unwrap()),
                state: state.clone(),
                base: std::env::temp_dir(),
                metrics: metrics.clone(),
                live: live.clone(),
                suppressed: Arc::default(),
            };
            let worker: sluice_stream::delivery::Worker = Arc::new(move |d, s| bus::delivery::run(&cx, d, s));
            let (lv, m, st) = (live.clone(), metrics.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                sluice_stream::delivery::supervise_with(lv, m, Arc::default(), st, worker)
            }));
        }
        Self { settings, state, live, stop, threads, ingest }
    }

    /// Posts events through ingest node `node`, as the Tracking API would; returns once JetStream
    /// acknowledged them (what the client's 200 waits for).
    fn send(&self, node: usize, events: &[Value]) -> sluice_stream::writer::Accepted {
        let prepared = events.iter().map(|e| Prepared::new((e.clone(), e.to_string()))).collect();
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.ingest[node].send(Job { source: "web".into(), events: prepared, invalid: vec![], reply }).unwrap();
        rx.blocking_recv().unwrap().result.expect("acknowledged by JetStream")
    }

    fn profile(&self, id: &str) -> Option<sluice_core::profiles::Profile> {
        let mut c = bus::pg::connect(&self.state, "test").unwrap();
        bus::pg::profile_of(&mut c, id).unwrap()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.ingest.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Ok(b) = Bus::connect(self.settings.clone()) {
            let _ = b.rt.block_on(b.js.delete_stream(self.settings.events_stream()));
            let _ = b.rt.block_on(b.js.delete_stream(self.settings.out_stream()));
        }
        let _ = sluice_testkit::pg_admin()
            .batch_execute(&format!("drop schema if exists \"{}\" cascade", self.state.schema));
        let _ = &self.live;
    }
}

fn yaml(r: &Receiver) -> String {
    format!(
        r#"
sources: [{{id: web, kind: events, write_key: wk}}]
destinations:
  - {{id: all, kind: webhook, settings: {{url: "{u}/all", batch_size: 50}}}}
  - {{id: ads, name: Ads, kind: webhook, on_withdrawal: delete, settings: {{url: "{u}/ads", batch_size: 50}}}}
consent_categories:
  - {{id: C1, name: Advertising, destinations: [ads]}}
"#,
        u = r.url()
    )
}

fn track(mid: &str, user: &str, ad: Option<bool>, ts: &str) -> Value {
    let mut e = json!({"type": "track", "event": "Viewed", "messageId": mid, "userId": user,
                       "timestamp": ts, "receivedAt": ts});
    if let Some(ad) = ad {
        e["context"] = json!({"consent": {"categoryPreferences": {"C1": ad}}});
    }
    e
}

fn consent(mid: &str, user: &str, ad: bool, ts: &str) -> Value {
    let mut e = track(mid, user, Some(ad), ts);
    e["event"] = json!("Segment Consent Preference Updated");
    e
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().filter_map(|i| i["messageId"].as_str().map(String::from)).collect();
    v.sort();
    v
}

#[test]
fn events_sent_to_both_ingest_nodes_reach_each_allowed_destination_once() {
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 2);
    let ts = "2026-11-27T10:00:00.000Z";
    let mut want_all = Vec::new();
    let mut want_ads = Vec::new();
    for batch in 0..10 {
        let events: Vec<Value> = (0..20)
            .map(|i| {
                let n = batch * 20 + i;
                let ad = n % 2 == 0;
                let mid = format!("m{n:04}");
                want_all.push(mid.clone());
                if ad {
                    want_ads.push(mid.clone());
                }
                track(&mid, &format!("u{}", n % 7), Some(ad), ts)
            })
            .collect();
        let acc = d.send(batch % 2, &events);
        assert_eq!(acc.accepted, 20);
        // a client retrying the same batch to the other ingest node: stored once
        if batch % 3 == 0 {
            d.send((batch + 1) % 2, &events);
        }
    }
    // and one event retried alone much later: routers de-duplicate by messageId without a window
    d.send(1, &[track("m0001", "u1", Some(false), ts)]);
    want_all.sort();
    want_ads.sort();
    wait_for("every event at `all`", Duration::from_secs(60), || r.items("/all").len() >= want_all.len());
    wait_for("the consented events at `ads`", Duration::from_secs(60), || r.items("/ads").len() >= want_ads.len());
    std::thread::sleep(Duration::from_millis(1500)); // would-be duplicates have time to arrive
    assert_eq!(ids(&r.items("/all")), want_all, "each event once at the unmapped destination");
    assert_eq!(ids(&r.items("/ads")), want_ads, "only consented events, each once, at the mapped one");
    for item in r.items("/ads") {
        assert_eq!(item["context"]["consent"]["categoryPreferences"]["C1"], json!(true), "{item}");
    }
    // what each destination got and what consent withheld, shared by every process
    let mut c = bus::pg::connect(&d.state, "test").unwrap();
    let (o, dropped) = bus::pg::overview(&mut c, 0).unwrap();
    assert_eq!(dropped, 0);
    assert_eq!(o["all"]["routed"], json!(200), "{o}");
    assert_eq!(o["all"]["delivered"], json!(200), "{o}");
    assert_eq!(o["ads"]["routed"], json!(100), "{o}");
    assert_eq!(o["ads"]["withheld"], json!(100), "{o}");
    assert_eq!(o["ads"]["withheld_by_category"]["C1"], json!(100), "{o}");
    assert_eq!(o["ads"]["delivered"], json!(100), "{o}");
    // the windows the streaming alerts of a deployment read
    let now = chrono::Utc::now().timestamp() / 60;
    let w = bus::pg::window_stats(&mut c, now - 60, now + 1).unwrap();
    assert_eq!((w["all"].received, w["all"].delivered, w["all"].failed), (200, 200, 0), "{w:?}");
    assert_eq!((w["ads"].received, w["ads"].withheld, w["ads"].delivered), (200, 100, 100), "{w:?}");
}

#[test]
fn consent_is_ordered_by_timestamp_across_ingest_nodes_and_a_withdrawal_deletes() {
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 2);
    // granted at 10:00 through node 0, then withdrawn at 10:05 through node 1
    d.send(0, &[consent("c1", "alice", true, "2026-11-27T10:00:00.000Z")]);
    d.send(1, &[consent("c2", "alice", false, "2026-11-27T10:05:00.000Z")]);
    // an older consent event arriving last (another node, a slow client) does not win (R9)
    d.send(0, &[consent("c3", "alice", true, "2026-11-27T09:00:00.000Z")]);
    wait_for("alice's profile", Duration::from_secs(30), || d.profile("alice").is_some());
    wait_for("the withdrawal delete at ads", Duration::from_secs(30), || {
        r.items("/ads").iter().any(|i| i["action"] == "deleted" && i["id"] == "alice")
    });
    wait_for("the three consent events routed", Duration::from_secs(30), || r.items("/all").len() >= 3);
    let p = d.profile("alice").unwrap();
    assert_eq!(p.routing_consent().get("C1"), Some(&false), "the latest by timestamp wins: {:?}", p.consent);
    // ads got the grant (c1) and the older grant (c3), never the withdrawal event itself
    let ads: Vec<String> = ids(&r.items("/ads"));
    assert!(ads.contains(&"c1".to_string()) && !ads.contains(&"c2".to_string()), "{ads:?}");
    let delete = r.items("/ads").into_iter().find(|i| i["action"] == "deleted").unwrap();
    assert_eq!(delete["reason"], "consent_withdrawn", "{delete}");
}

#[test]
fn a_destination_outage_loses_nothing_and_a_refused_event_is_dead_lettered() {
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 1);
    r.answer_path("/all", sluice_testkit::Reply::Status(503));
    let ts = "2026-11-27T10:00:00.000Z";
    let events: Vec<Value> = (0..30).map(|n| track(&format!("o{n:02}"), "bob", None, ts)).collect();
    d.send(0, &events);
    wait_for("503 answers", Duration::from_secs(30), || r.requests_to("/all").len() >= 2);
    assert!(r.items("/all").is_empty());
    r.clear_path("/all");
    wait_for("all 30 after the outage", Duration::from_secs(60), || ids(&r.items("/all")).len() == 30);
    // a 400 is permanent: kept as a dead letter with the reason, later events still flow
    r.answer_path("/all", sluice_testkit::Reply::Status(400));
    d.send(1, &[track("bad", "bob", None, ts)]);
    wait_for("the dead letter", Duration::from_secs(30), || {
        let mut c = bus::pg::connect(&d.state, "test").unwrap();
        bus::pg::dead_letters(&mut c, "all", 10).unwrap().iter().any(|(_, m, _)| m == "bad")
    });
    r.clear_path("/all");
    d.send(0, &[track("after", "bob", None, ts)]);
    wait_for("the next event", Duration::from_secs(30), || ids(&r.items("/all")).contains(&"after".to_string()));
}

fn identify(mid: &str, user: &str, anon: &str) -> Value {
    json!({"type": "identify", "messageId": mid, "userId": user, "anonymousId": anon,
           "timestamp": "2026-11-27T10:00:00.000Z", "receivedAt": "2026-11-27T10:00:00.000Z"})
}

fn anon_consent(mid: &str, anon: &str, ad: bool, ts: &str) -> Value {
    json!({"type": "track", "event": "Segment Consent Preference Updated", "messageId": mid, "anonymousId": anon,
           "timestamp": ts, "receivedAt": ts, "context": {"consent": {"categoryPreferences": {"C1": ad}}}})
}

#[test]
fn profiles_merge_once_when_two_routers_see_the_same_person_at_once() {
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 2);
    // 30 people: each has two devices whose consent events go through different ingest nodes,
    // and logs in from both at once (identify through both nodes): both routers merge the same
    // profiles concurrently
    for p in 0..30 {
        let (a1, a2) = (format!("a{p}x"), format!("a{p}y"));
        d.send(0, &[anon_consent(&format!("c{p}x"), &a1, true, "2026-11-27T10:00:00.000Z")]);
        d.send(1, &[anon_consent(&format!("c{p}y"), &a2, false, "2026-11-27T10:01:00.000Z")]);
    }
    let senders: Vec<_> = (0..2)
        .map(|node| {
            let tx = d.ingest[node].clone();
            std::thread::spawn(move || {
                for p in 0..30 {
                    let dev = if node == 0 { "x" } else { "y" };
                    let e = identify(&format!("i{p}{dev}"), &format!("user{p}"), &format!("a{p}{dev}"));
                    let (reply, rx) = tokio::sync::oneshot::channel();
                    let prepared = vec![Prepared::new((e.clone(), e.to_string()))];
                    tx.send(Job { source: "web".into(), events: prepared, invalid: vec![], reply }).unwrap();
                    rx.blocking_recv().unwrap().result.unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    wait_for("every event routed", Duration::from_secs(60), || r.items("/all").len() >= 120);
    let mut c = bus::pg::connect(&d.state, "test").unwrap();
    for p in 0..30 {
        let prof = bus::pg::profile_of(&mut c, &format!("user{p}")).unwrap().expect("a profile");
        let ids: Vec<String> = prof.anonymous_ids.iter().cloned().collect();
        assert_eq!(ids, vec![format!("a{p}x"), format!("a{p}y")], "person {p}: {prof:?}");
        // device-level disagreement resolves to the most recent (R10): withdrawn at 10:01
        assert_eq!(prof.routing_consent().get("C1"), Some(&false), "person {p}: {:?}", prof.consent);
        assert!(!prof.consent_conflict(), "person {p}");
    }
    // one profile per person, no identifier left pointing at a merged-away profile
    let n: i64 = c.query_one("select count(*) from stream_profiles", &[]).unwrap().get(0);
    assert_eq!(n, 30);
    let dangling: i64 = c
        .query_one(
            "select count(*) from stream_identities i left join stream_profiles p on p.id = i.profile where p.id is null",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dangling, 0);
}

#[test]
fn two_known_users_merged_through_different_nodes_with_different_consent_are_a_conflict() {
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 2);
    d.send(0, &[consent("k1", "ann", true, "2026-11-27T10:00:00.000Z")]);
    d.send(1, &[consent("k2", "bob", false, "2026-11-27T10:00:00.000Z")]);
    wait_for("both profiles", Duration::from_secs(30), || d.profile("ann").is_some() && d.profile("bob").is_some());
    let alias = json!({"type": "alias", "messageId": "al", "userId": "ann", "previousId": "bob",
                       "timestamp": "2026-11-27T10:02:00.000Z", "receivedAt": "2026-11-27T10:02:00.000Z"});
    d.send(1, &[alias]);
    wait_for("the merge", Duration::from_secs(30), || d.profile("bob").is_some_and(|p| p.user_ids.len() == 2));
    let p = d.profile("ann").unwrap();
    assert!(p.consent_conflict(), "{:?}", p.consent);
    assert_eq!(p.routing_consent().get("C1"), Some(&false), "a conflict counts as false");
}

/// What the shared state holds for `destination` among the dead letters.
fn dead(d: &Deployment, destination: &str) -> Vec<(String, String, String)> {
    let mut c = bus::pg::connect(&d.state, "test").unwrap();
    bus::pg::dead_letters(&mut c, destination, 100).unwrap()
}

#[test]
fn a_message_postgresql_refuses_is_set_aside_whole_and_never_blocks_the_others() {
    // review finding 1: values SQLite takes but PostgreSQL refuses (a NUL in a key, a key over
    // the index limit) reach the router only if ingest let them through; the router must still
    // never stall on one
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 1);
    let ts = "2026-11-27T10:00:00.000Z";
    let mut poison = track("p1", "u", None, ts);
    // over PostgreSQL's b-tree entry limit, and not compressible below it
    let mut x: u64 = 42;
    let noise: String = (0..6000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[(x >> 33) as usize % 62])
        })
        .collect();
    poison["userId"] = json!(noise);
    let mut nul = track("p\u{0}2", "u", None, ts);
    nul["userId"] = json!("u");
    d.send(0, &[poison]);
    d.send(1, &[nul]);
    for b in 0..5 {
        let events: Vec<Value> = (0..10).map(|i| track(&format!("ok{b}-{i}"), "carol", None, ts)).collect();
        d.send(b % 2, &events);
    }
    wait_for("the 50 valid events", Duration::from_secs(60), || r.items("/all").len() >= 50);
    wait_for("both bad messages set aside", Duration::from_secs(60), || dead(&d, bus::router::ROUTER_DEAD).len() >= 2);
    for (_, _, reason) in dead(&d, bus::router::ROUTER_DEAD) {
        assert!(reason.starts_with("cannot be routed"), "{reason}");
    }
    let mut c = bus::pg::connect(&d.state, "test").unwrap();
    let kept: i64 = c
        .query_one("select count(*) from stream_dead where destination = '!router' and body like '%p1%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "the message is kept whole");
}

#[test]
fn nothing_is_queued_on_the_bus_for_a_destination_that_takes_no_events() {
    // review finding 5: a Reverse-ETL-only kind (no streaming worker) must not fill JetStream
    let r = Receiver::start();
    let yaml = format!(
        "{}  - {{id: gads, kind: google_ads, settings: {{customer_id: \"1234567890\", developer_token: t, access_token: a, user_list_id: \"1\"}}}}\n",
        yaml(&r).replace("consent_categories:", "PLACEHOLDER").split("PLACEHOLDER").next().unwrap()
    ) + "consent_categories:\n  - {id: C1, name: Advertising, destinations: [ads]}\n";
    let d = Deployment::start(&yaml, 1);
    d.send(0, &[track("g1", "gina", Some(true), "2026-11-27T10:00:00.000Z")]);
    wait_for("the event at all", Duration::from_secs(30), || r.items("/all").len() == 1);
    // the `all` message leaves the work queue once its worker's ack arrives; one for `gads` never would
    let b = Bus::connect(d.settings.clone()).unwrap();
    wait_for("an empty out stream", Duration::from_secs(15), || {
        b.rt.block_on(async {
            let mut s = b.js.get_stream(d.settings.out_stream()).await.unwrap();
            s.info().await.unwrap().state.messages
        }) == 0
    });
}

#[test]
fn a_request_larger_than_a_nats_message_is_split_and_every_event_arrives() {
    // review finding 2: normalized events grow past NATS's 1 MB payload limit
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 1);
    let ts = "2026-11-27T10:00:00.000Z";
    let events: Vec<Value> = (0..700)
        .map(|i| {
            let mut e = track(&format!("big{i:04}"), "dave", Some(true), ts);
            e["properties"] = json!({"pad": "p".repeat(1400)});
            e
        })
        .collect();
    let acc = d.send(0, &events);
    assert_eq!(acc.accepted, 700);
    wait_for("all 700 events", Duration::from_secs(60), || r.items("/all").len() >= 700);
    assert_eq!(ids(&r.items("/all")).len(), 700);
    wait_for("all 700 at ads", Duration::from_secs(60), || r.items("/ads").len() >= 700);
}

#[test]
fn a_delivery_worker_whose_postgresql_connection_died_starts_again_and_delivers() {
    // review finding 4
    let r = Receiver::start();
    let d = Deployment::start(&yaml(&r), 1);
    let ts = "2026-11-27T10:00:00.000Z";
    d.send(0, &[track("before", "erin", None, ts)]);
    wait_for("the first event", Duration::from_secs(30), || r.items("/all").len() == 1);
    sluice_testkit::pg_admin()
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sluice-delivery'",
            &[],
        )
        .unwrap();
    d.send(1, &[track("after", "erin", None, ts)]);
    wait_for("the event after the connections died", Duration::from_secs(60), || {
        ids(&r.items("/all")).contains(&"after".to_string())
    });
}

#[test]
fn under_missing_consent_profile_a_page_after_a_withdrawal_never_reaches_the_ad_tool() {
    // review finding 6: two routers; each page (no consent object) is routed by the stored consent
    // of the person, which must include the withdrawal that arrived before it through another node
    let r = Receiver::start();
    let yaml = yaml(&r).replace("sources:", "workspace: {missing_consent: profile}\nsources:");
    let d = Deployment::start(&yaml, 2);
    for p in 0..15 {
        let u = format!("pat{p}");
        d.send(0, &[consent(&format!("g{p}"), &u, true, "2026-11-27T10:00:00.000Z")]);
    }
    for p in 0..15 {
        let u = format!("pat{p}");
        d.send(1, &[consent(&format!("w{p}"), &u, false, "2026-11-27T10:05:00.000Z")]);
        // acknowledged after the withdrawal was: it arrived later
        d.send(0, &[track(&format!("page{p}"), &u, None, "2026-11-27T10:06:00.000Z")]);
    }
    wait_for("every event at all", Duration::from_secs(60), || r.items("/all").len() >= 45);
    std::thread::sleep(Duration::from_millis(500));
    let at_ads: Vec<String> = ids(&r.items("/ads")).into_iter().filter(|i| i.starts_with("page")).collect();
    assert!(at_ads.is_empty(), "pages routed by a consent already withdrawn: {at_ads:?}");
    let grants: Vec<String> = ids(&r.items("/ads")).into_iter().filter(|i| i.starts_with('g')).collect();
    assert_eq!(grants.len(), 15, "the grants themselves went to ads");
}
