//! `kind: redshift` runs its dialect paths on the real PostgreSQL server: nothing Redshift lacks
//! is called (work_mem, client_connection_check_interval, pg_has_role, COLLATE "C", `text`
//! casts that Redshift truncates to 256 characters, the warehouse-side diff).

use super::*;
use sluice_testkit::{pg_url, unique_name};

fn redshift() -> PgOptions {
    PgOptions { url: pg_url(), allow_privileged_role: true, dialect: Dialect::Redshift, ..Default::default() }
}

fn setup(sql: &str) -> String {
    let schema = unique_name("rs");
    let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    c.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path = {schema}; {sql}")).unwrap();
    schema
}

fn session_settings(w: &mut PostgresWarehouse) -> (String, String) {
    let p = w
        .preview(
            "select current_setting('work_mem') as wm, current_setting('client_connection_check_interval') as cci",
            1,
        )
        .unwrap();
    (p.rows[0][0].as_str().unwrap().to_string(), p.rows[0][1].as_str().unwrap().to_string())
}

#[test]
fn connect_skips_the_settings_redshift_lacks() {
    let mut pg = PostgresWarehouse::connect(&PgOptions { dialect: Dialect::Postgres, ..redshift() }).unwrap();
    assert_eq!(session_settings(&mut pg), ("64MB".to_string(), "1s".to_string()), "the PostgreSQL path sets both");
    let mut rs = PostgresWarehouse::connect(&redshift()).unwrap();
    let (wm, cci) = session_settings(&mut rs);
    assert!(wm != "64MB" && cci == "0", "the Redshift path sets neither: {wm} {cci}");
    assert!(rs.diff().is_none(), "no warehouse-side diff on Redshift");
    assert!(pg.diff().is_some());
}

#[test]
fn a_superuser_is_found_through_pg_user_and_refused() {
    let e = PostgresWarehouse::connect(&PgOptions { allow_privileged_role: false, ..redshift() })
        .err()
        .expect("the test server's role is a superuser")
        .to_string();
    assert!(e.contains("is a superuser") && e.contains("allow_privileged_role"), "{e}");
    let w = PostgresWarehouse::connect(&redshift()).unwrap();
    assert!(w.warnings().iter().any(|w| w.contains("is a superuser")));
}

#[test]
fn the_scan_sorts_without_collate_and_casts_to_long_varchar() {
    let long = "k".repeat(300);
    let schema = setup(&format!(
        "CREATE TABLE t (id text, d date, v numeric);
         INSERT INTO t VALUES ('b', '2024-01-02', 1.5), ('B', NULL, 2), ('a', NULL, NULL), ('é', NULL, NULL),
                              ('{long}', NULL, NULL), (NULL, NULL, NULL);"
    ));
    let sql = format!("select * from {schema}.t");
    let mut w = PostgresWarehouse::connect(&redshift()).unwrap();
    let order = w.id_order(&sql, "id").unwrap();
    assert_eq!(order, IdOrder::Text);
    let mut seen = Vec::new();
    let mut statement = String::new();
    let mut watcher = postgres::Client::connect(&pg_url(), postgres::NoTls).unwrap();
    w.scan(&sql, "id", order, &Default::default(), &mut |r| {
        if statement.is_empty() {
            // the statement the warehouse runs, as the server sees it
            statement = watcher
                .query_one(
                    "SELECT query FROM pg_stat_activity WHERE application_name = 'sluice' AND query LIKE $1",
                    &[&format!("%{schema}.t%")],
                )
                .map(|r| r.get(0))
                .unwrap_or_default();
        }
        seen.push((r.id, r.values));
        Ok(())
    })
    .unwrap();
    assert!(statement.contains("ORDER BY") && statement.contains("NULLS FIRST"), "{statement}");
    assert!(!statement.contains("COLLATE") && !statement.contains("::text"), "Redshift lacks both: {statement}");
    assert!(statement.contains("::varchar(65535)"), "{statement}");
    let ids: Vec<Option<String>> = seen.iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        ids,
        [None, Some("B".into()), Some("a".into()), Some("b".into()), Some(long.clone()), Some("é".into())],
        "byte order (the test database's collation is C), the long id whole"
    );
    let b = &seen[3].1;
    assert_eq!((&b[1], &b[2]), (&serde_json::json!("2024-01-02"), &serde_json::json!(1.5)));
}

#[test]
fn integer_ids_sort_as_numbers() {
    let schema = setup("CREATE TABLE n (id bigint, v text); INSERT INTO n VALUES (10, 'a'), (-3, 'b'), (9, 'c');");
    let mut w = PostgresWarehouse::connect(&redshift()).unwrap();
    let sql = format!("select * from {schema}.n");
    assert_eq!(w.id_order(&sql, "id").unwrap(), IdOrder::Integer);
    let mut ids = Vec::new();
    w.scan(&sql, "id", IdOrder::Integer, &Default::default(), &mut |r| {
        ids.push(r.id.unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(ids, ["-3", "9", "10"]);
}
