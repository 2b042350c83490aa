//! `sluice bench --bus nats://HOST:PORT`: routing throughput of a deployment (SPEC §8) with one,
//! two and three router processes, against the embedded default's writer, in one run. The same
//! events (requests of 100, consent objects, 1000 people) are routed to three webhook
//! destinations, one consent-gated: the writer routes them into `stream.db` (durable before it
//! answers); the routers take them from a pre-filled events stream and are done when their
//! consumer has nothing pending (each message routed, its profiles and messageIds committed to
//! PostgreSQL and its routed copies stored by JetStream). Delivery is not part of either figure.

use anyhow::Context;
use comfy_table::Cell;
use sluice_stream::bus::{self, Bus, BusSettings};
use sluice_stream::writer::{Job, Prepared};
use std::io::BufRead;
use std::time::{Duration, Instant};

const EVENTS_PER_REQUEST: usize = 100;

/// Options of the bus benchmark.
pub struct BusBenchOptions {
    /// NATS with JetStream.
    pub bus: String,
    /// PostgreSQL for the routers' shared state (a schema is made and dropped).
    pub pg_url: String,
    /// Events routed per measurement.
    pub events: usize,
}

fn workspace() -> String {
    "sources: [{id: web, kind: events, write_key: wk}]
destinations:
  - {id: crm, kind: webhook, settings: {url: \"http://127.0.0.1:9/crm\"}}
  - {id: analytics, kind: webhook, settings: {url: \"http://127.0.0.1:9/analytics\"}}
  - {id: ads, name: Ads, kind: webhook, settings: {url: \"http://127.0.0.1:9/ads\"}}
consent_categories:
  - {id: C0004, name: Advertising, destinations: [ads]}
"
    .to_string()
}

fn request(run: &str, r: usize) -> Vec<Prepared> {
    (0..EVENTS_PER_REQUEST)
        .map(|i| {
            let n = r * EVENTS_PER_REQUEST + i;
            let v = serde_json::json!({
                "type": "track", "event": "Viewed", "messageId": format!("{run}-{n}"), "userId": format!("u{}", n % 1000),
                "timestamp": "2026-11-27T10:00:00.000Z", "receivedAt": "2026-11-27T10:00:00.000Z",
                "properties": {"page": "/pricing", "n": n},
                "context": {"consent": {"categoryPreferences": {"C0004": !n.is_multiple_of(3)}}}
            });
            Prepared::new((v.clone(), v.to_string()))
        })
        .collect()
}

/// The embedded default: the writer routing `events` into a fresh `stream.db`; events/s.
fn embedded(events: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let ws = std::sync::Arc::new(sluice_core::WorkspaceFile::from_yaml(&workspace())?);
    let live: sluice_stream::Live = std::sync::Arc::new(arc_swap::ArcSwap::new(ws.clone()));
    let metrics = std::sync::Arc::new(sluice_stream::metrics::Metrics::default());
    let conn = sluice_stream::store::open(dir.path())?;
    let router = sluice_stream::writer::Router::new(ws, live, metrics, 86_400);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(1024);
    let writer = std::thread::spawn(move || sluice_stream::writer::run(conn, router, rx, || {}));
    let requests: Vec<Vec<Prepared>> = (0..events / EVENTS_PER_REQUEST).map(|r| request("e", r)).collect();
    let t = Instant::now();
    let mut answers = Vec::new();
    for events in requests {
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(Job { source: "web".into(), events, invalid: vec![], reply })?;
        answers.push(answer);
    }
    for a in answers {
        a.blocking_recv()?.result.map_err(anyhow::Error::msg)?;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(tx);
    let _ = writer.join();
    Ok(events as f64 / secs)
}

/// CPU seconds (user + system) used so far by the processes named `comm` (Linux `/proc`), or by
/// the process `pid`.
fn cpu_seconds(filter: impl Fn(u32, &str) -> bool) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !filter(pid, &stat[open + 1..close]) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let (u, s) =
            (fields.get(11).and_then(|v| v.parse::<f64>().ok()), fields.get(12).and_then(|v| v.parse::<f64>().ok()));
        total += (u.unwrap_or(0.0) + s.unwrap_or(0.0)) / tick;
    }
    total
}

/// What one measurement used: events/s and CPU seconds per 100k events of the routers, PostgreSQL
/// and NATS.
struct Measured {
    rate: f64,
    routers_cpu: f64,
    postgres_cpu: f64,
    nats_cpu: f64,
}

/// `routers` router processes on a pre-filled events stream.
fn with_routers(o: &BusBenchOptions, routers: usize) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let id = format!("bench{}x{routers}", std::process::id());
    let settings = BusSettings { prefix: id.clone(), ..BusSettings::new(o.bus.clone()) };
    let state = format!("{}?schema=sluice_{id}", o.pg_url);
    let key = {
        use base64::Engine;
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k).map_err(|e| anyhow::anyhow!("random key: {e}"))?;
        base64::engine::general_purpose::STANDARD.encode(k)
    };
    let sluice = |args: &[&str]| {
        let mut c = std::process::Command::new(std::env::current_exe().expect("own path"));
        c.current_dir(dir.path()).env("SLUICE_SECRET_KEY", &key).env_remove("SLUICE_STATE").args(["--state", &state]);
        c.args(args);
        c
    };
    std::fs::write(dir.path().join("sluice.yaml"), workspace())?;
    let out = sluice(&["apply", "-f", "sluice.yaml"]).output()?;
    anyhow::ensure!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    let b = Bus::connect(settings.clone())?;
    let cleanup = || {
        let _ = b.rt.block_on(b.js.delete_stream(settings.events_stream()));
        let _ = b.rt.block_on(b.js.delete_stream(settings.out_stream()));
        if let Ok(mut c) = postgres::Client::connect(&o.pg_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("drop schema if exists \"sluice_{id}\" cascade"));
        }
    };
    // pre-fill: what ingest nodes would have published
    b.rt.block_on(async {
        let mut acks = Vec::new();
        for r in 0..o.events / EVENTS_PER_REQUEST {
            let payload = bus::wire::encode_accepted("web", &request(&id, r), &[]);
            acks.push(b.js.publish(settings.events_subject(), payload.into()).await?);
            if acks.len() >= 256 {
                for a in acks.drain(..) {
                    a.await?;
                }
            }
        }
        for a in acks {
            a.await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let mut children = Vec::new();
    for _ in 0..routers {
        let mut child =
            sluice(&["serve", "--listen", "127.0.0.1:0", "--bus", &o.bus, "--bus-prefix", &id, "--role", "router"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        children.push(child);
    }
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let others = |name: &'static str| move |_: u32, comm: &str| comm == name;
    let (pg0, nats0) = (cpu_seconds(others("postgres")), cpu_seconds(others("nats-server")));
    let r0 = cpu_seconds(|pid, _| pids.contains(&pid));
    let t = Instant::now();
    let done = b.rt.block_on(async {
        loop {
            if let Ok(mut stream) = b.js.get_stream(settings.events_stream()).await {
                if let Ok(info) = stream.info().await {
                    if info.state.messages == 0 {
                        return Ok(());
                    }
                }
            }
            if t.elapsed() > Duration::from_secs(600) {
                return Err(anyhow::anyhow!("the routers did not finish in 10 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let per = 100_000.0 / o.events as f64;
    let measured = Measured {
        rate: o.events as f64 / secs,
        routers_cpu: (cpu_seconds(|pid, _| pids.contains(&pid)) - r0) * per,
        postgres_cpu: (cpu_seconds(others("postgres")) - pg0) * per,
        nats_cpu: (cpu_seconds(others("nats-server")) - nats0) * per,
    };
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    cleanup();
    done?;
    Ok(measured)
}

/// Runs the benchmark and prints the table.
pub fn run(o: &BusBenchOptions) -> anyhow::Result<std::process::ExitCode> {
    outln!("sluice bench --bus: {} events per measurement, requests of {EVENTS_PER_REQUEST}", o.events);
    let base = embedded(o.events)?;
    outln!("embedded writer (stream.db): {base:.0} events/s");
    let mut rows = vec![("embedded default (one writer thread, stream.db)".to_string(), base, None)];
    for k in 1..=3 {
        let m = with_routers(o, k)?;
        outln!("{k} router process(es): {:.0} events/s", m.rate);
        rows.push((format!("{k} router process(es) (NATS JetStream + PostgreSQL)"), m.rate, Some(m)));
    }
    let mut table = comfy_table::Table::new();
    table.set_header([
        "routing",
        "events/s",
        "× embedded",
        "× 1 router",
        "CPU s / 100k: routers",
        "PostgreSQL",
        "NATS",
    ]);
    let one = rows[1].1;
    for (name, r, m) in &rows {
        let cpu = |f: fn(&Measured) -> f64| m.as_ref().map_or("".to_string(), |m| format!("{:.2}", f(m)));
        table.add_row([
            Cell::new(name),
            Cell::new(format!("{r:.0}")),
            Cell::new(format!("{:.2}", r / base)),
            Cell::new(format!("{:.2}", r / one)),
            Cell::new(cpu(|m| m.routers_cpu)),
            Cell::new(cpu(|m| m.postgres_cpu)),
            Cell::new(cpu(|m| m.nats_cpu)),
        ]);
    }
    outln!("{table}");
    Ok(std::process::ExitCode::SUCCESS)
}
