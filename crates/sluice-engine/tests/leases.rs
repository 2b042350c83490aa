//! A sync holds its model's lease (docs/SCALE.md): a model another worker leases is not synced
//! (the error names the worker), the lease is released when the run ends, and on SQLite a lease
//! left by a sync that died is taken over at once (the local lock file proves it dead).

mod common;
use common::{hook, Env};
use sluice_engine::SyncError;
use sluice_state::{PostgresState, StateStore};
use std::time::Duration;

const PEOPLE: &str = "create table people (id integer primary key, email text);
    insert into people values (1, 'a@x'), (2, 'b@x'), (3, 'c@x'), (4, 'd@x');";

fn yaml() -> String {
    format!(
        "destinations:\n{}models:\n  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}\n",
        hook("crm")
    )
}

/// A fresh PostgreSQL state schema, dropped after.
struct Pg(PostgresState);

impl Drop for Pg {
    fn drop(&mut self) {
        let _ =
            sluice_testkit::pg_admin().batch_execute(&format!("drop schema if exists \"{}\" cascade", self.0.schema));
    }
}

#[test]
fn a_model_leased_by_another_worker_is_not_synced_until_released() {
    let env = Env::new(PEOPLE);
    let ws = env.workspace(&yaml());
    let pg = Pg(PostgresState { url: sluice_testkit::pg_url(), schema: sluice_testkit::unique_name("leases") });
    let mut store = StateStore::open_postgres(&pg.0, &env.dir.path().join("node-a")).unwrap();
    let other = StateStore::open_postgres(&pg.0, &env.dir.path().join("node-b")).unwrap();
    let theirs = other.acquire_lease("people", "node-b/42", Duration::from_secs(60)).unwrap().unwrap();

    let err = sluice_engine::sync_model(&mut store, &ws, "people", &mut |_| {}).unwrap_err();
    match &err {
        SyncError::Leased { model, worker, until } => {
            assert_eq!((model.as_str(), worker.as_str()), ("people", "node-b/42"));
            assert!(until.ends_with('Z') && until.starts_with("20"), "{until}");
        }
        e => panic!("expected Leased, got {e}"),
    }
    assert!(err.to_string().contains("worker `node-b/42`"), "{err}");
    assert!(env.rx.requests().is_empty(), "nothing sent");
    assert!(store.runs(None, 10).unwrap().is_empty(), "no run recorded");

    assert!(other.release_lease(&theirs).unwrap());
    let r = sluice_engine::sync_model(&mut store, &ws, "people", &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.mappings[0].delivered, 4);
    assert_eq!(store.current_lease("people").unwrap(), None, "released when the run ended");
    let next = other.acquire_lease("people", "node-b/42", Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(next.token, theirs.token + 2, "the run held a lease of its own in between");
}

#[test]
fn on_sqlite_a_lease_left_by_a_dead_sync_is_taken_over_at_once() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&yaml());
    let dead = StateStore::open(&env.dir.path().join(".sluice")).unwrap();
    let stale = dead.acquire_lease("people", "host/999999", Duration::from_secs(3600)).unwrap().unwrap();
    let r = env.sync(&ws, "people");
    assert_eq!(r.mappings[0].delivered, 4);
    assert_eq!(env.store.current_lease("people").unwrap(), None);
    // the dead holder is fenced: its token is no longer the model's
    let err = dead.start_run_fenced(&stale, "t").unwrap_err();
    assert!(matches!(err, sluice_state::StateError::Fenced { .. }), "{err}");
}
