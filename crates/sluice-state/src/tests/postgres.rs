//! What only the PostgreSQL backend has: migrations, concurrent opens, its settings and errors,
//! reconnection.

use super::Fixture;
use crate::checkpoint::Write;
use crate::postgres::{migrations, quote_ident};
use crate::{Entry, Pending, PostgresState, StateError, StateStore};
use std::sync::{Arc, Barrier};

fn versions(f: &Fixture) -> Vec<i32> {
    let pg = f.pg().unwrap();
    let mut c = sluice_testkit::pg_admin();
    c.query(&format!("select version from {}.schema_version order by version", quote_ident(&pg.schema)), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn concurrent_opens_migrate_once() {
    let f = Arc::new(Fixture::postgres());
    let barrier = Arc::new(Barrier::new(4));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let s = f.open();
                s.mapping_id("users", "braze").unwrap()
            })
        })
        .collect();
    let ids: Vec<i64> = opens.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
    let want: Vec<i32> = (1..=migrations::latest()).collect();
    assert_eq!(versions(&f), want, "each step ran once");
    drop(f.open()); // reopening runs nothing
    assert_eq!(versions(&f), want);
}

#[test]
fn a_schema_of_a_newer_sluice_is_refused() {
    let f = Fixture::postgres();
    drop(f.open());
    let pg = f.pg().unwrap();
    sluice_testkit::pg_admin()
        .execute(
            &format!("insert into {}.schema_version (version) values ($1)", quote_ident(&pg.schema)),
            &[&(migrations::latest() + 1)],
        )
        .unwrap();
    let err = StateStore::open_postgres(pg, &f.dir()).err().expect("refused");
    assert!(matches!(&err, StateError::Settings(m) if m.contains("newer") && m.contains(&pg.schema)), "{err}");
}

#[test]
fn errors_name_the_database_never_its_password() {
    let d = tempfile::tempdir().unwrap();
    // nothing listens on port 1
    let st = PostgresState::from_url("postgres://postgres:hunter2@127.0.0.1:1/appdb?connect_timeout=2");
    let err = StateStore::open_postgres(&st, d.path()).err().expect("unreachable").to_string();
    assert!(err.contains("127.0.0.1:1") && err.contains("(database appdb, schema sluice)"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("postgres@"), "{err}");
    let kv = PostgresState::from_url("host=127.0.0.1 port=1 user=postgres password=hunter2 dbname=appdb");
    let err = StateStore::open_postgres(&kv, d.path()).err().expect("unreachable").to_string();
    assert!(err.contains("database appdb") && !err.contains("hunter2"), "key=value form too: {err}");
    assert!(!format!("{st:?}").contains("hunter2"), "Debug hides the password: {st:?}");
    let bad = PostgresState { url: "postgres://u:hunter2@h/db?nonsense=1".into(), schema: "s".into() };
    let err = StateStore::open_postgres(&bad, d.path()).err().unwrap().to_string();
    assert!(err.contains("state URL") && !err.contains("hunter2"), "{err}");
    let tls = PostgresState::from_url("postgres://u:hunter2@127.0.0.1/db?sslmode=require");
    let err = StateStore::open_postgres(&tls, d.path()).err().unwrap().to_string();
    assert!(err.contains("sslmode=require") && !err.contains("hunter2"), "refused, never plain text: {err}");
    for schema in ["", &"x".repeat(64), "a\0b"] {
        let st = PostgresState { url: sluice_testkit::pg_url(), schema: schema.into() };
        let err = StateStore::open_postgres(&st, d.path()).err().unwrap().to_string();
        assert!(err.contains("schema"), "{err}");
    }
}

#[test]
fn the_schema_comes_from_the_url_or_defaults() {
    let st = PostgresState::from_url("postgres://u@h:5/db?schema=tenant_a&sslmode=disable");
    assert_eq!((st.url.as_str(), st.schema.as_str()), ("postgres://u@h:5/db?sslmode=disable", "tenant_a"));
    let st = PostgresState::from_url("postgres://u@h/db?schema=x");
    assert_eq!((st.url.as_str(), st.schema.as_str()), ("postgres://u@h/db", "x"));
    let st = PostgresState::from_url("postgres://u@h/db");
    assert_eq!((st.url.as_str(), st.schema.as_str()), ("postgres://u@h/db", "sluice"));
}

#[test]
fn a_hostile_schema_name_is_quoted() {
    let mut f = Fixture::postgres();
    let name = format!("{}\"; drop table x; --", f.pg().unwrap().schema);
    f.pg.as_mut().unwrap().schema = name.clone();
    let s = f.open();
    s.save_workspace(&crate::StoredWorkspace {
        config: serde_json::json!({}),
        base_dir: "/".into(),
        applied_at: "t".into(),
    })
    .unwrap();
    let n: i64 = sluice_testkit::pg_admin()
        .query_one("select count(*) from pg_namespace where nspname = $1", &[&name])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the schema is named exactly as given");
}

#[test]
fn a_failed_batch_stores_nothing() {
    let f = Fixture::postgres();
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    let put = |id: &str| Write::Put(Entry { id: id.into(), held: Some(1), pending: Pending::None, proof: None });
    // PostgreSQL text cannot hold NUL: the batch fails with an error naming the state database
    let err = s.write_checkpoint(m, &[put("ok"), put("bad\0id")]).unwrap_err();
    assert!(matches!(err, StateError::Postgres { .. }), "{err}");
    assert!(err.to_string().contains("schema state_"), "{err}");
    assert_eq!(s.checkpoint_page(m, None, 10).unwrap(), vec![], "all or nothing");
    s.write_checkpoint(m, &[put("ok")]).unwrap();
    assert_eq!(s.checkpoint_held(m).unwrap(), 1, "the store still works");
}

#[test]
fn a_dropped_connection_is_replaced() {
    let f = Fixture::postgres();
    let s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    let pid: i32 = s.raw_strings("select pg_backend_pid()").unwrap()[0].parse().unwrap();
    let killed: bool = sluice_testkit::pg_admin().query_one("select pg_terminate_backend($1)", &[&pid]).unwrap().get(0);
    assert!(killed);
    // the first call may see the closed connection fail; the store reconnects instead of dying
    let t = std::time::Instant::now();
    let again = loop {
        match s.mapping_id("users", "braze") {
            Ok(id) => break id,
            Err(e) => assert!(t.elapsed().as_secs() < 5, "never reconnected: {e}"),
        }
    };
    assert_eq!(again, m);
    let new_pid: i32 = s.raw_strings("select pg_backend_pid()").unwrap()[0].parse().unwrap();
    assert_ne!(new_pid, pid);
}

#[test]
fn a_role_that_owns_its_schema_needs_no_create_on_the_database() {
    let role = sluice_testkit::unique_name("owner");
    let schema = sluice_testkit::unique_name("owned");
    let mut admin = sluice_testkit::pg_admin();
    admin.batch_execute(&format!("create role {role} login; create schema {schema} authorization {role};")).unwrap();
    let url = sluice_testkit::pg_url().replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let opened = StateStore::open_postgres(&PostgresState { url: url.clone(), schema: schema.clone() }, dir.path());
    let missing =
        StateStore::open_postgres(&PostgresState { url, schema: sluice_testkit::unique_name("missing") }, dir.path());
    let cleanup = format!("drop schema {schema} cascade; drop role {role};");
    let s = match opened {
        Ok(s) => s,
        Err(e) => {
            admin.batch_execute(&cleanup).unwrap();
            panic!("the owner opens its schema: {e}");
        }
    };
    let m = s.mapping_id("users", "hook").unwrap();
    assert_eq!(s.find_mapping_id("users", "hook").unwrap(), Some(m));
    drop(s);
    admin.batch_execute(&cleanup).unwrap();
    let err = missing.err().expect("creating a schema needs CREATE on the database");
    assert!(err.to_string().contains("permission denied"), "{err}");
}
