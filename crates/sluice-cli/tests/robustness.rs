//! Issue 8: the CLI under hostile conditions: a reader that goes away (`sluice ... | head`, finding 19), a model that never ends (review finding 7).

mod common;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn finding_19_a_closed_stdout_ends_the_cli_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // a plan far longer than a pipe's buffer, so the CLI is still writing when the reader leaves
    let mut yaml = String::from("destinations:\n");
    for i in 0..3000 {
        yaml.push_str(&format!("  - {{id: d{i}, kind: file, settings: {{path: out/d{i}.jsonl}}}}\n"));
    }
    std::fs::write(dir.path().join("sluice.yaml"), yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["apply", "-f", "sluice.yaml", "--dry-run"])
        .current_dir(dir.path())
        .env_remove("SLUICE_STATE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // the reader goes away, as `| head -c 16` does
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "a closed pipe is not an error: {stderr}");
}

/// Review finding 7: a model that never ends (a recursive CTE) on SQLite is interrupted at its
/// source's `statement_timeout_secs` (default 3600) instead of spinning forever.
#[test]
fn review_a_runaway_sqlite_sync_is_interrupted_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("w.db")).unwrap().execute_batch("create table p(id integer);").unwrap();
    common::apply(
        dir.path(),
        "sources: [{id: dwh, kind: sqlite, path: w.db, statement_timeout_secs: 1}]
destinations: [{id: out, kind: file, settings: {path: out.jsonl}}]
models:
  - {id: spin, source: dwh, unique_id: id, mappings: [{destination: out}],
     sql: 'with recursive c(x) as (select 1 union all select x+1 from c) select x as id from c where x < 0'}
",
    );
    let t = std::time::Instant::now();
    let out = common::sluice(dir.path(), &["sync", "spin"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an interrupted sync is not a success");
    assert!(stderr.contains("ran past its deadline"), "the error says why the scan stopped: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(t.elapsed() < std::time::Duration::from_secs(60), "stopped near its 1 s deadline: {:?}", t.elapsed());
}

#[test]
fn the_debugger_names_an_unknown_source() {
    let dir = tempfile::tempdir().unwrap();
    common::apply(dir.path(), "sources: [{id: web, kind: events, write_key: wk}]\n");
    let ok = common::sluice(dir.path(), &["debugger", "web"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = common::sluice(dir.path(), &["debugger", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is not an event source"));
}

/// Issue 8, finding 5: the scan of a `sluice sync` that was killed stops on the PostgreSQL server
/// (`client_connection_check_interval`) instead of running on for nobody.
#[test]
fn finding_5_the_scan_of_a_killed_sync_stops_on_the_server() {
    use sluice_testkit::{pg_url, pg_wait_running, unique_name};
    let dir = tempfile::tempdir().unwrap();
    let marker = unique_name("abandoned");
    common::apply(
        dir.path(),
        &format!(
            "sources: [{{id: pg, kind: postgres, url: \"{}\", tls: disable, allow_privileged_role: true}}]
destinations: [{{id: out, kind: file, settings: {{path: out.jsonl}}}}]
models:
  - {{id: slow, source: pg, unique_id: id, mappings: [{{destination: out}}], sql: 'select pg_sleep(30) as {marker}, 1 as id'}}
",
            pg_url()
        ),
    );
    let mut child = common::spawn_quiet(dir.path(), &["sync", "slow"]);
    let started = pg_wait_running(true, &marker);
    child.kill().unwrap(); // SIGKILL: no goodbye to the server
    child.wait().unwrap();
    assert!(started, "the sync's scan ran on the server");
    assert!(!pg_wait_running(false, &marker), "the server stopped the scan of the dead client");
}
