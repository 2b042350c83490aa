//! The four drifts between streaming's old delivery layer and `sluice-destinations` (issue 9),
//! each against a real server, a real HTTP receiver on 127.0.0.1 and real SQLite files. Every
//! wait is on a condition, with a deadline.

mod common;
use common::*;
use serde_json::{json, Value};
use sluice_testkit::Reply;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Waits until `cond` holds, failing with `what` after `secs`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn track(mid: &str, pad: usize) -> Value {
    json!({"type": "track", "anonymousId": "a1", "event": "E", "messageId": mid, "properties": {"pad": "x".repeat(pad)}})
}

fn stream_db(s: &Server) -> rusqlite::Connection {
    sluice_stream::store::open(&s.dir.path().join(".sluice")).unwrap()
}

fn cursor(s: &Server, dest: &str) -> Option<sluice_stream::store::Cursor> {
    sluice_stream::store::cursor(&stream_db(s), dest).unwrap()
}

/// The stored (normalized) JSON text of event `mid` of source `web`.
fn stored(s: &Server, mid: &str) -> String {
    let (events, _) = sluice_stream::store::recent_events(&stream_db(s), "web", 1000).unwrap();
    events.into_iter().find(|e| e.event["messageId"] == mid).map(|e| e.event.to_string()).expect("stored")
}

/// Everything the streaming runtime logs, captured once per test process.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("sluice_stream=debug"))
            .with_ansi(false)
            .with_writer(move || Capture(b.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test process");
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `events=` of every delivery batch of `dest` logged so far.
fn batch_sizes(log: &Mutex<Vec<u8>>, dest: &str) -> Vec<usize> {
    let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    text.lines()
        .filter(|l| l.contains("delivery batch sent") && l.contains(&format!("destination={dest} ")))
        .filter_map(|l| l.split("events=").nth(1)?.split([' ', '}']).next()?.parse().ok())
        .collect()
}

/// Drift 1: streaming ignored a file destination's `batch_size` (always 500).
#[test]
fn drift_1_streaming_to_a_file_honours_its_batch_size() {
    let log = log();
    let s = start("destinations:\n  - {id: batched, kind: file, settings: {path: out/batched.jsonl, batch_size: 2}}\n");
    let path = s.dir.path().join("out/batched.jsonl");
    // the file cannot be written yet (a folder holds its name): the five events queue up
    std::fs::create_dir_all(&path).unwrap();
    let batch: Vec<Value> = (0..5).map(|i| track(&format!("f{i}"), 10)).collect();
    assert_eq!(s.post("/v1/batch", &json!({"batch": batch})).0, 200);
    wait_for(30, "a failed attempt", || cursor(&s, "batched").is_some_and(|c| c.attempts >= 1));
    std::fs::remove_dir(&path).unwrap();
    let lines = || std::fs::read_to_string(&path).map(|t| t.lines().count()).unwrap_or(0);
    wait_for(30, "the five events in the file", || lines() == 5);
    wait_for(10, "the batches to be logged", || batch_sizes(&log, "batched").iter().sum::<usize>() >= 5 + 2);
    let sizes = batch_sizes(&log, "batched");
    assert!(sizes.iter().all(|n| *n <= 2), "batches of at most batch_size (2): {sizes:?}");
    assert_eq!(&sizes[sizes.len() - 3..], &[2, 2, 1], "{sizes:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<String> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["messageId"].as_str().unwrap().into()).collect();
    assert_eq!(ids, ["f0", "f1", "f2", "f3", "f4"]);
}

/// Drift 2: streaming forwarded to `connections` without the Tracking API's 500 KB request and
/// 32 KB event limits.
#[test]
fn drift_2_forwarding_to_connections_keeps_the_tracking_api_limits() {
    let s = start(
        "destinations:\n  - {id: fwd, kind: connections, settings: {url: \"{URL}\", write_key: wk_down, batch_size: 500, \
         retry_initial_ms: 10, retry_max_ms: 20, timeout_secs: 5}}\n",
    );
    // the receiver is down while events queue up: the first attempt after it is back sees them all
    s.rx.answer_path("/v1/batch", Reply::Status(503));
    assert_eq!(s.post("/v1/track", &track("probe00", 100)).0, 200);
    let overhead = stored(&s, "probe00").len() - 100;
    // within 32 KB as stored, over it once namespaced (`web:` and `context.sluice` added)
    let pad = 32 * 1024 - 8 - overhead;
    assert_eq!(s.post("/v1/track", &track("big0000", pad)).0, 200);
    assert_eq!(stored(&s, "big0000").len(), 32 * 1024 - 8);
    for b in 0..3 {
        let batch: Vec<Value> = (0..20).map(|i| track(&format!("e{b}-{i:02}"), 20_000)).collect();
        assert_eq!(s.post("/v1/batch", &json!({"batch": batch})).0, 200);
    }
    let before = s.rx.requests().len();
    wait_for(30, "an attempt with every event queued", || s.rx.requests().len() > before);
    s.rx.clear_path("/v1/batch");
    wait_for(60, "the 61 forwardable events", || s.rx.items("/v1/batch").len() >= 61);
    let len = |r: &sluice_testkit::Request| r.header("content-length").and_then(|l| l.parse::<usize>().ok());
    for r in s.rx.requests() {
        let n = len(&r).expect("a content length");
        assert!(n <= 500 * 1024, "a request of {n} bytes: over the Tracking API's 500 KB");
    }
    let ids: Vec<String> =
        s.rx.items("/v1/batch").iter().filter_map(|e| e["messageId"].as_str().map(String::from)).collect();
    assert_eq!(ids.len(), 61, "each event once");
    assert!(!ids.contains(&"web:big0000".to_string()));
    wait_for(10, "the dead letter", || {
        !sluice_stream::store::dead_letters(&stream_db(&s), "fwd", 10).unwrap().is_empty()
    });
    let dead = sluice_stream::store::dead_letters(&stream_db(&s), "fwd", 10).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].error.contains("32 KB"), "the reason names the limit: {}", dead[0].error);
}

/// Drift 3: streaming keyed batches `{dest}-{first}-{last}`, Reverse ETL by a hash of the body.
#[test]
fn drift_3_a_retried_streamed_batch_keeps_its_idempotency_key_in_the_reverse_etl_format() {
    let s = start("destinations:\n  - {id: hook, kind: webhook, settings: {url: \"{URL}/hook\", retry_initial_ms: 10, retry_max_ms: 20, timeout_secs: 5}}\n");
    s.rx.script([Reply::Status(503)]);
    assert_eq!(s.post("/v1/track", &track("k1", 10)).0, 200);
    wait_for(30, "the retry", || s.rx.requests_to("/hook").len() >= 2);
    let keys: Vec<String> =
        s.rx.requests_to("/hook").iter().map(|r| r.header("idempotency-key").unwrap().to_string()).collect();
    assert_eq!(keys[0], keys[1], "a retry of the same batch carries the same key");
    assert!(keys[0].len() == 32 && keys[0].bytes().all(|b| b.is_ascii_hexdigit()), "{}", keys[0]);
    let body = format!("{{\"batch\":[{}]}}", stored(&s, "k1"));
    let expected =
        sluice_destinations::http::idempotency_key(&sluice_stream::delivery::stream_key("hook"), body.as_bytes());
    assert_eq!(keys[0], expected, "the body-hash key Reverse ETL sends");
}

/// Drift 4: the transport retried `max_attempts` times inside each of the worker's attempts.
#[test]
fn drift_4_a_failing_streamed_batch_makes_one_request_per_worker_attempt() {
    let s = start(
        "destinations:\n  - {id: hook, kind: webhook, settings: {url: \"{URL}/hook\", max_attempts: 4, \
         retry_initial_ms: 10, retry_max_ms: 20, timeout_secs: 5}}\n",
    );
    s.rx.answer_path("/hook", Reply::Status(503));
    assert_eq!(s.post("/v1/track", &track("r1", 10)).0, 200);
    wait_for(30, "two worker attempts", || cursor(&s, "hook").is_some_and(|c| c.attempts >= 2));
    // read between attempts: the next one is at least 2 s away
    let (attempts, requests) = loop {
        let a = cursor(&s, "hook").unwrap().attempts;
        let r = s.rx.requests_to("/hook").len() as i64;
        if cursor(&s, "hook").unwrap().attempts == a {
            break (a, r);
        }
    };
    assert_eq!(requests, attempts, "one request per worker attempt, not max_attempts (4) of them");
    // and the event still arrives once the receiver takes it
    s.rx.clear_path("/hook");
    assert_eq!(s.delivered("/hook", 1), vec!["r1"]);
}
