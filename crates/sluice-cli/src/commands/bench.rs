//! `sluice bench`: Reverse ETL from PostgreSQL to a local HTTP receiver, measured against the
//! raw `COPY (model) TO STDOUT` floor of the same rows, in one run.

use anyhow::Context;
use comfy_table::Cell;
use sluice_engine::Workspace;
use sluice_state::StateStore;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the benchmark.
pub struct BenchOptions {
    /// Rows in the model.
    pub rows: u64,
    /// PostgreSQL to build the model in.
    pub pg_url: String,
    /// Items per webhook request.
    pub batch_size: usize,
    /// Rebuild the table even if it exists with the right size.
    pub rebuild: bool,
    /// Also sync to a second destination gated by two consent categories.
    pub with_consent_mapping: bool,
}

/// A receiver that accepts every batch and counts the bytes (runs in this process).
struct Sink {
    url: String,
    bytes: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

fn start_receiver() -> anyhow::Result<Sink> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("receiver: {e}"))?);
    let url = format!("http://{}/bench", server.server_addr().to_ip().context("receiver address")?);
    let bytes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    for _ in 0..2 {
        let (server, bytes, requests) = (server.clone(), bytes.clone(), requests.clone());
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while let Ok(mut req) = server.recv() {
                buf.clear();
                let _ = req.as_reader().read_to_end(&mut buf);
                bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                requests.fetch_add(1, Ordering::Relaxed);
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
    }
    Ok(Sink { url, bytes, requests })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn table_name(rows: u64) -> String {
    format!("sluice_bench_{rows}")
}

fn build_table(pg: &mut postgres::Client, rows: u64, rebuild: bool) -> anyhow::Result<()> {
    let t = table_name(rows);
    let exists: i64 = pg.query_one("select count(*) from pg_tables where tablename = $1", &[&t])?.get(0);
    if exists == 1 && !rebuild {
        let n: i64 = pg.query_one(&format!("select count(*) from {t}"), &[])?.get(0);
        if n as u64 == rows {
            eprintln!("bench: reusing table {t} ({rows} rows)");
            return Ok(());
        }
    }
    eprintln!("bench: building table {t} ({rows} rows)...");
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} AS SELECT
           g::bigint AS id,
           'user' || g || '@example.com' AS email,
           'First' || (g % 997) AS first_name,
           'Lastname' || (g % 9973) AS last_name,
           (ARRAY['DE','FR','US','GB','NL','SE'])[1 + g % 6] AS country,
           (ARRAY['free','pro','team','enterprise'])[1 + g % 4] AS plan,
           round((g % 100000) / 7.0, 2)::float8 AS lifetime_value,
           now() - (g % 1000) * interval '1 hour' AS updated_at,
           (g % 3 <> 0) AS ads,
           (g % 5 <> 0) AS analytics
         FROM generate_series(1, {rows}) g;
         ALTER TABLE {t} ADD PRIMARY KEY (id);
         ANALYZE {t};"
    ))?;
    Ok(())
}

fn copy_floor(pg: &mut postgres::Client, sql: &str) -> anyhow::Result<(Duration, u64)> {
    let t = Instant::now();
    let mut reader = pg.copy_out(&format!("COPY ({sql}) TO STDOUT"))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok((t.elapsed(), total))
}

fn state_bytes(dir: &std::path::Path) -> u64 {
    ["state.db", "state.db-wal"].iter().filter_map(|f| std::fs::metadata(dir.join(f)).ok()).map(|m| m.len()).sum()
}

pub fn run(o: &BenchOptions) -> anyhow::Result<std::process::ExitCode> {
    let mut pg =
        postgres::Client::connect(&o.pg_url, postgres::NoTls).with_context(|| format!("connecting to {}", o.pg_url))?;
    build_table(&mut pg, o.rows, o.rebuild)?;
    let t = table_name(o.rows);
    let sql = format!("select * from {t}");
    // restore the rows a previous run changed
    pg.batch_execute(&format!("UPDATE {t} SET email = 'user' || id || '@example.com' WHERE email LIKE '%.changed'"))?;

    eprintln!("bench: (a) raw floor: COPY ({sql}) TO STDOUT");
    let (floor, copy_bytes) = copy_floor(&mut pg, &sql)?;
    let (floor_sorted, _) = copy_floor(&mut pg, &format!("{sql} ORDER BY id::text COLLATE \"C\""))?;

    eprintln!("bench: extraction alone (sorted scan, decoded, no diff)");
    let t0 = Instant::now();
    let mut wh = sluice_warehouse::postgres::PostgresWarehouse::connect(&sluice_warehouse::postgres::PgOptions {
        url: o.pg_url.clone(),
        tls: Some(sluice_warehouse::postgres::TlsMode::Disable),
        // the benchmark creates its own tables: its role is privileged by nature
        allow_privileged_role: true,
        ..Default::default()
    })?;
    let mut n = 0u64;
    let order = sluice_warehouse::Warehouse::id_order(&mut wh, &sql, "id")?;
    // as the sync reads it: consent columns decoded, the row raw
    let needs = sluice_warehouse::ScanNeeds { typed: Some(vec![8, 9]), raw: true, only_ids: None };
    sluice_warehouse::Warehouse::scan(&mut wh, &sql, "id", order, &needs, &mut |_| {
        n += 1;
        Ok(())
    })?;
    let scan_time = t0.elapsed();
    drop(wh);

    let sink = start_receiver()?;
    let dir = tempfile::tempdir()?;
    let mappings =
        if o.with_consent_mapping { "{destination: receiver}, {destination: ads}" } else { "{destination: receiver}" };
    let yaml = |diff: &str| {
        format!(
            "sources: [{{id: pg, kind: postgres, url: \"{pg}\", tls: disable, allow_privileged_role: true{diff}}}]
destinations:
  - {{id: receiver, kind: webhook, settings: {{url: \"{url}\", batch_size: {bs}}}}}
  - {{id: ads, kind: webhook, settings: {{url: \"{url}\", batch_size: {bs}}}}}
consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [ads]}}
models:
  - {{id: bench, source: pg, sql: \"{sql}\", unique_id: id, consent: {{C0004: ads, C0002: analytics}},
      mappings: [{mappings}]}}
",
            pg = o.pg_url,
            url = sink.url,
            bs = o.batch_size
        )
    };
    let n_mappings: f64 = if o.with_consent_mapping { 2.0 } else { 1.0 };
    let ws = Workspace::from_yaml(&yaml(""), dir.path().to_path_buf())?;
    let state_dir = dir.path().join("state");
    let mut store = StateStore::open(&state_dir)?;
    let mut progress = crate::progress::Progress::new("bench");

    eprintln!("bench: (b) first sync (all rows added)");
    let t1 = Instant::now();
    let first = sluice_engine::sync_model(&mut store, &ws, "bench", &mut |n| progress.rows(n))?;
    let first_time = t1.elapsed();
    let sent_first: u64 = first.mappings.iter().map(|m| m.delivered).sum();
    let failed: u64 = first.mappings.iter().map(|m| m.failed).sum();
    anyhow::ensure!(failed == 0, "the first sync failed to deliver {failed} records");

    let changed = pg.execute(&format!("UPDATE {t} SET email = email || '.changed' WHERE id % 100 = 0"), &[])?;
    eprintln!("bench: (b) re-sync with {changed} rows changed");
    let t2 = Instant::now();
    let second = sluice_engine::sync_model(&mut store, &ws, "bench", &mut |n| progress.rows(n))?;
    let resync_time = t2.elapsed();
    drop(progress);
    let updated: u64 = second.mappings.iter().map(|m| m.updated).sum();
    pg.batch_execute(&format!("UPDATE {t} SET email = 'user' || id || '@example.com' WHERE email LIKE '%.changed'"))?;

    // (d) the same with the diff in the warehouse (docs/DIFF.md): a first sync that builds the
    // snapshot, then the same 1% change
    pg.batch_execute("DROP SCHEMA IF EXISTS sluice_bench_snap CASCADE; CREATE SCHEMA sluice_bench_snap;")?;
    let wsd =
        Workspace::from_yaml(&yaml(", diff: warehouse, sluice_schema: sluice_bench_snap"), dir.path().to_path_buf())?;
    let mut store_d = StateStore::open(&dir.path().join("state-d"))?;
    let mut progress = crate::progress::Progress::new("bench (warehouse diff)");
    eprintln!("bench: (d) first sync with diff: warehouse (builds the snapshot)");
    let t3 = Instant::now();
    sluice_engine::sync_model(&mut store_d, &wsd, "bench", &mut |n| progress.rows(n))?;
    let first_d = t3.elapsed();
    pg.execute(&format!("UPDATE {t} SET email = email || '.changed' WHERE id % 100 = 0"), &[])?;
    eprintln!("bench: (d) re-sync with diff: warehouse, {changed} rows changed");
    let t4 = Instant::now();
    let sparse = sluice_engine::sync_model(&mut store_d, &wsd, "bench", &mut |n| progress.rows(n))?;
    let resync_d = t4.elapsed();
    drop(progress);
    let updated_d: u64 = sparse.mappings.iter().map(|m| m.updated).sum();
    anyhow::ensure!(updated_d == updated, "the warehouse diff sent {updated_d} updates, the local diff {updated}");
    pg.batch_execute(&format!("UPDATE {t} SET email = 'user' || id || '@example.com' WHERE email LIKE '%.changed'"))?;
    drop(store_d);

    drop(store);
    let store = StateStore::open(&state_dir)?;
    store.compact()?;
    let ckpt = state_bytes(&state_dir);
    let id_bytes: i64 = pg.query_one(&format!("select sum(length(id::text))::bigint from {t}"), &[])?.get(0);
    let per_record = (ckpt as f64 - n_mappings * id_bytes as f64) / (n_mappings * o.rows as f64);

    let secs = |d: Duration| d.as_secs_f64();
    let mut table = crate::render::table(["measure", "value", "ratio / note"]);
    let row = |t: &mut comfy_table::Table, a: &str, b: String, c: String| {
        t.add_row(vec![Cell::new(a), Cell::new(b), Cell::new(c)]);
    };
    row(
        &mut table,
        "rows in model",
        o.rows.to_string(),
        format!("{} MiB via COPY, {:.0} bytes/row", copy_bytes >> 20, copy_bytes as f64 / o.rows as f64),
    );
    row(
        &mut table,
        "(a) COPY (model) TO STDOUT",
        format!("{:.2} s", secs(floor)),
        format!("{:.0} rows/s (the floor)", o.rows as f64 / secs(floor)),
    );
    row(
        &mut table,
        "    same, ORDER BY id::text COLLATE \"C\"",
        format!("{:.2} s", secs(floor_sorted)),
        format!("{:.2}x floor (sorting for the merge)", secs(floor_sorted) / secs(floor)),
    );
    row(
        &mut table,
        "    Sluice's sorted scan alone, decoded",
        format!("{:.2} s", secs(scan_time)),
        format!("{:.2}x floor ({n} rows, no diff, no delivery)", secs(scan_time) / secs(floor)),
    );
    let label = if o.with_consent_mapping {
        "(b) first sync, 2 mappings (one consent-gated)"
    } else {
        "(b) first sync, 1 mapping"
    };
    row(
        &mut table,
        label,
        format!("{:.2} s", secs(first_time)),
        format!(
            "{:.2}x floor; {:.0} rows/s; {:.0} records delivered/s",
            secs(first_time) / secs(floor),
            o.rows as f64 / secs(first_time),
            sent_first as f64 / secs(first_time)
        ),
    );
    row(
        &mut table,
        "(b) re-sync, 1% changed",
        format!("{:.2} s", secs(resync_time)),
        format!(
            "{:.2}x floor; {updated} updates sent; {:.0} rows/s",
            secs(resync_time) / secs(floor),
            o.rows as f64 / secs(resync_time)
        ),
    );
    row(
        &mut table,
        "(d) first sync, diff: warehouse (snapshot built)",
        format!("{:.2} s", secs(first_d)),
        format!(
            "{:.2}x floor; {:.2}x the local first sync",
            secs(first_d) / secs(floor),
            secs(first_d) / secs(first_time)
        ),
    );
    row(
        &mut table,
        "(d) re-sync, 1% changed, diff: warehouse",
        format!("{:.2} s", secs(resync_d)),
        format!(
            "{:.2}x floor; {:.2}x the local re-sync; {} rows read ({:?} pass)",
            secs(resync_d) / secs(floor),
            secs(resync_d) / secs(resync_time),
            sparse.extracted,
            sparse.diff_pass.as_deref().unwrap_or("?")
        ),
    );
    row(
        &mut table,
        "(c) peak memory (whole process)",
        format!("{:.0} MiB", peak_rss_mib()),
        "includes the in-process receiver".into(),
    );
    row(
        &mut table,
        "(c) checkpoint on disk",
        format!("{:.1} MiB", ckpt as f64 / 1048576.0),
        format!("{per_record:.1} bytes/record beyond the id"),
    );
    row(
        &mut table,
        "receiver",
        format!("{} requests", sink.requests.load(Ordering::Relaxed)),
        format!("{} MiB received", sink.bytes.load(Ordering::Relaxed) >> 20),
    );
    outln!("{table}");
    Ok(std::process::ExitCode::SUCCESS)
}
