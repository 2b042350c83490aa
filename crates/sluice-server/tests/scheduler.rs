//! `sluice serve` runs due model syncs by itself.

mod common;
use common::warehouse_dir;
use sluice_testkit::Receiver;
use std::time::{Duration, Instant};

#[test]
fn a_scheduled_model_syncs_without_being_asked() {
    let rx = Receiver::start();
    let dir = warehouse_dir("create table p(id integer, email text); insert into p values (1,'a'),(2,'b');");
    let yaml = format!(
        "sources: [{{id: dwh, kind: sqlite, path: w.db}}]
destinations: [{{id: crm, kind: webhook, settings: {{url: \"{}/crm\"}}}}]
models:
  - {{id: p, source: dwh, sql: select * from p, unique_id: id, schedule: every 1m, mappings: [{{destination: crm}}]}}
  - {{id: q, source: dwh, sql: select * from p, unique_id: id, schedule: manual, mappings: [{{destination: crm}}]}}
",
        rx.url()
    );
    let ws = sluice_engine::Workspace::from_yaml(&yaml, dir.path().to_path_buf()).unwrap();
    let state = dir.path().join(".sluice");
    let config =
        sluice_server::ServeConfig::new(ws.file.clone(), dir.path().to_path_buf(), state.clone(), "127.0.0.1:0");
    std::thread::spawn(move || sluice_server::serve(config, |_| {}).unwrap());
    let t = Instant::now();
    while rx.items("/crm").len() < 2 && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rx.items("/crm").len(), 2, "the scheduled model synced once; the manual one did not");
    let store = sluice_state::StateStore::open(&state).unwrap();
    sluice_testkit::wait_for("the scheduled run to finish", Duration::from_secs(10), || {
        store.runs(Some("p"), 1).unwrap().first().is_some_and(|r| r.status != sluice_state::RunStatus::Running)
    });
    assert_eq!(store.runs(Some("p"), 10).unwrap().len(), 1, "not again before its interval");
    assert!(store.runs(Some("q"), 10).unwrap().is_empty());
    let next = sluice_engine::scheduler::next_runs(&ws, &store);
    let in_secs = (next["p"] - chrono::Utc::now()).num_seconds();
    assert!((50..=60).contains(&in_secs), "next run in {in_secs} s");
    assert!(!next.contains_key("q"));
}
