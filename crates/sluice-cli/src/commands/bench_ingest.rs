//! `sluice bench --ingest`: the Tracking API under load on loopback. A load generator posts
//! `/v1/batch` requests of 100 events with consent objects; the server routes them durably to
//! three webhook destinations on a local receiver. Beside it, in the same run, a bare HTTP
//! server that answers 200 to the same requests without work gives the machine's ceiling.

use anyhow::Context;
use comfy_table::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS_PER_REQUEST: usize = 100;

/// Options of the ingest benchmark.
pub struct IngestOptions {
    /// Seconds per measured phase.
    pub seconds: u64,
    /// Concurrent client connections.
    pub clients: usize,
}

struct Counting {
    url: String,
    events: Arc<AtomicU64>,
}

/// A receiver counting delivered events (by their `messageId` keys).
fn receiver() -> anyhow::Result<Counting> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("receiver: {e}"))?);
    let url = format!("http://{}", server.server_addr().to_ip().context("receiver address")?);
    let events = Arc::new(AtomicU64::new(0));
    for _ in 0..2 {
        let (server, events) = (server.clone(), events.clone());
        std::thread::spawn(move || {
            let mut buf = String::new();
            while let Ok(mut req) = server.recv() {
                buf.clear();
                let _ = req.as_reader().read_to_string(&mut buf);
                events.fetch_add(buf.matches("\"messageId\"").count() as u64, Ordering::Relaxed);
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
    }
    Ok(Counting { url, events })
}

/// A server that answers `{"success": true}` to every batch without doing anything.
fn bare_server() -> anyhow::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/batch",
                axum::routing::post(|_b: axum::body::Bytes| async { axum::Json(serde_json::json!({"success": true})) }),
            );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            axum::serve(l, app).await.expect("serve");
        });
    });
    Ok(format!("http://{}", rx.recv()?))
}

fn body(client: usize, n: u64) -> String {
    let mut s = String::with_capacity(EVENTS_PER_REQUEST * 260);
    s.push_str("{\"batch\":[");
    for i in 0..EVENTS_PER_REQUEST {
        if i > 0 {
            s.push(',');
        }
        let user = (n as usize * EVENTS_PER_REQUEST + i) % 10_000;
        s.push_str(&format!(
            "{{\"type\":\"track\",\"event\":\"Product Viewed\",\"userId\":\"user-{client}-{user}\",\
             \"messageId\":\"b{client}-{n}-{i}\",\"properties\":{{\"sku\":\"SKU-{i}\",\"price\":19.99}},\
             \"context\":{{\"consent\":{{\"categoryPreferences\":{{\"C0004\":true,\"C0002\":true}}}}}}}}"
        ));
    }
    s.push_str("]}");
    s
}

struct Load {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Posts batches for `seconds` from `clients` threads; `rate` (requests/s in all) paces them.
fn load(url: &str, clients: usize, seconds: u64, rate: Option<f64>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let (url, stop) = (format!("{url}/v1/batch"), stop.clone());
        handles.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
            let interval = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
            let mut lat = Vec::new();
            let (mut n, mut errors) = (0u64, 0u64);
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(iv) = interval {
                    let due = t0 + iv * n as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let b = body(c, n);
                let t = Instant::now();
                let ok = agent
                    .post(&url)
                    .set("Authorization", "Basic d2tfYmVuY2g6")
                    .set("Content-Type", "application/json")
                    .send_string(&b);
                lat.push(t.elapsed());
                if ok.is_err() {
                    errors += 1;
                }
                n += 1;
            }
            (n, errors, lat)
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut out = Load { requests: 0, errors: 0, elapsed: Duration::ZERO, latencies: vec![] };
    for h in handles {
        let (n, e, l) = h.join().expect("client thread");
        out.requests += n;
        out.errors += e;
        out.latencies.extend(l);
    }
    out.elapsed = start.elapsed();
    out.latencies.sort();
    out
}

fn pct(l: &[Duration], p: f64) -> String {
    if l.is_empty() {
        return "-".into();
    }
    format!("{:.1} ms", l[((l.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0)
}

pub fn run(o: &IngestOptions) -> anyhow::Result<std::process::ExitCode> {
    let rx = receiver()?;
    let dir = tempfile::tempdir()?;
    let yaml = format!(
        "sources: [{{id: web, kind: events, write_key: wk_bench}}]
destinations:
  - {{id: ads, kind: webhook, settings: {{url: \"{u}/ads\", batch_size: 500}}}}
  - {{id: analytics, kind: webhook, settings: {{url: \"{u}/analytics\", batch_size: 500}}}}
  - {{id: crm, kind: webhook, settings: {{url: \"{u}/crm\", batch_size: 500}}}}
consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [analytics]}}
",
        u = rx.url
    );
    let file = sluice_core::WorkspaceFile::from_yaml(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = sluice_server::ServeConfig {
        workspace: file,
        base_dir: dir.path().to_path_buf(),
        state_dir: dir.path().join("state"),
        listen: "127.0.0.1:0".into(),
        retention_days: 7,
        public_url: None,
    };
    let (tx, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || sluice_server::serve(config, |a| tx.send(a).expect("send")).expect("serve"));
    let url = format!("http://{}", addr.recv()?);
    let bare = bare_server()?;

    eprintln!("bench: bare server, {} clients, {} s", o.clients, o.seconds);
    let b = load(&bare, o.clients, o.seconds, None);
    eprintln!("bench: sluice serve at saturation");
    let before = rx.events.load(Ordering::Relaxed);
    let sat = load(&url, o.clients, o.seconds, None);
    let accepted = (sat.requests - sat.errors) * EVENTS_PER_REQUEST as u64;
    // wait until every accepted event reached all three destinations
    let t = Instant::now();
    while rx.events.load(Ordering::Relaxed) - before < 3 * accepted && t.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drained = sat.elapsed + t.elapsed();
    let sat_rate = accepted as f64 / sat.elapsed.as_secs_f64();
    eprintln!("bench: sluice serve at half of saturation");
    let half = load(&url, o.clients, o.seconds, Some(sat.requests as f64 / sat.elapsed.as_secs_f64() / 2.0));

    let rate = |l: &Load| (l.requests - l.errors) as f64 * EVENTS_PER_REQUEST as f64 / l.elapsed.as_secs_f64();
    let bare_rate = rate(&b);
    let mut t = crate::render::table(["run", "events/s acknowledged", "p50", "p99", "note"]);
    t.add_row(vec![
        Cell::new("bare HTTP server (no work)"),
        Cell::new(format!("{bare_rate:.0}")),
        Cell::new(pct(&b.latencies, 0.5)),
        Cell::new(pct(&b.latencies, 0.99)),
        Cell::new(format!("{} requests, {} errors", b.requests, b.errors)),
    ]);
    t.add_row(vec![
        Cell::new("sluice serve, saturation"),
        Cell::new(format!("{sat_rate:.0}")),
        Cell::new(pct(&sat.latencies, 0.5)),
        Cell::new(pct(&sat.latencies, 0.99)),
        Cell::new(format!("{:.2}x the bare server; durable before 200; {} errors", sat_rate / bare_rate, sat.errors)),
    ]);
    t.add_row(vec![
        Cell::new("sluice serve, half load"),
        Cell::new(format!("{:.0}", rate(&half))),
        Cell::new(pct(&half.latencies, 0.5)),
        Cell::new(pct(&half.latencies, 0.99)),
        Cell::new(format!("{} errors", half.errors)),
    ]);
    t.add_row(vec![
        Cell::new("routed and delivered to 3 destinations"),
        Cell::new(format!("{:.0}", accepted as f64 / drained.as_secs_f64())),
        Cell::new("-"),
        Cell::new("-"),
        Cell::new(format!("{accepted} events, all delivered 3x in {:.1} s", drained.as_secs_f64())),
    ]);
    println!("{t}");
    Ok(std::process::ExitCode::SUCCESS)
}
