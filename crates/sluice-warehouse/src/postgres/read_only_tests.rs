//! Issue 8, finding 5: model SQL runs read-only, under a role checked at connect, and stops
//! on the server when its client went away, was cancelled or ran out of time.

use super::tests::{opts, setup};
use super::*;
use sluice_testkit::{pg_admin, pg_url, pg_wait_running, unique_name};

/// A login role that can only read one schema (README, "Warehouse permissions"); dropped at the end.
struct Role {
    name: String,
}

impl Role {
    fn read_only(schema: &str) -> Self {
        let name = unique_name("sluice_ro");
        pg_admin()
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN;
                 GRANT USAGE ON SCHEMA {schema} TO {name};
                 GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {name};
                 ALTER ROLE {name} SET search_path = {schema};"
            ))
            .unwrap();
        Self { name }
    }

    fn opts(&self) -> PgOptions {
        PgOptions { url: pg_url().replacen("postgres@", &format!("{}@", self.name), 1), ..Default::default() }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = pg_admin().batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name));
    }
}

#[test]
fn finding_5_model_cannot_call_nextval() {
    let (mut w, schema) = setup("CREATE SEQUENCE s; CREATE TABLE t (id int);");
    let model = format!("select nextval('{schema}.s') as id");
    let e = w.preview(&model, 10).unwrap_err().to_string();
    assert!(e.contains("cannot execute nextval() in a read-only transaction"), "{e}");
    let e = w.scan(&model, "id", IdOrder::Integer, &Default::default(), &mut |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("cannot execute nextval() in a read-only transaction"), "{e}");
    let called: bool = pg_admin().query_one(&format!("SELECT is_called FROM {schema}.s"), &[]).unwrap().get(0);
    assert!(!called, "the sequence never moved");
}

#[test]
fn finding_5_model_cannot_write_or_leave_read_only() {
    let (mut w, schema) = setup(
        "CREATE TABLE t (id int);
         CREATE FUNCTION f() RETURNS int LANGUAGE sql VOLATILE AS 'INSERT INTO t VALUES (1) RETURNING 1';",
    );
    let e = w.preview(&format!("select {schema}.f() as id"), 10).unwrap_err().to_string();
    assert!(e.contains("cannot execute INSERT in a read-only transaction"), "{e}");
    let e = w.preview("select set_config('transaction_read_only', 'off', true) as id", 10).unwrap_err().to_string();
    assert!(e.contains("transaction read-write mode must be set before any query"), "{e}");
    // read-only does not stop a superuser's large objects, but the rollback undoes them
    let p = w.preview("select lo_create(0)::bigint as id", 1).unwrap();
    let oid = p.rows[0][0].as_i64().unwrap();
    let kept: i64 = pg_admin()
        .query_one("SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1::bigint::oid", &[&oid])
        .unwrap()
        .get(0);
    assert_eq!(kept, 0, "the large object was rolled back");
    let rows: i64 = pg_admin().query_one(&format!("SELECT count(*) FROM {schema}.t"), &[]).unwrap().get(0);
    assert_eq!(rows, 0, "nothing was written");
    // a setting the model changes for the session is rolled back with its transaction
    w.preview("select set_config('work_mem', '1MB', false) as id", 1).unwrap();
    let p = w.preview("select current_setting('work_mem') as id", 1).unwrap();
    assert_eq!(p.rows[0][0], serde_json::json!("64MB"));
}

#[test]
fn finding_5_privileged_role_is_refused_unless_allowed() {
    let e =
        PostgresWarehouse::connect(&PgOptions { allow_privileged_role: false, ..opts() }).err().unwrap().to_string();
    assert!(e.contains("role `postgres` is a superuser"), "{e}");
    assert!(e.contains("allow_privileged_role") && e.contains("Warehouse permissions"), "{e}");
    let w = PostgresWarehouse::connect(&opts()).unwrap();
    let warnings = w.warnings();
    assert!(warnings.len() == 1 && warnings[0].contains("superuser"), "{warnings:?}");
    // a role that can read the server's files is refused the same way
    let (_w, schema) = setup("CREATE TABLE t (id int);");
    let role = Role::read_only(&schema);
    pg_admin().batch_execute(&format!("GRANT pg_read_server_files TO {}", role.name)).unwrap();
    let e = PostgresWarehouse::connect(&role.opts()).err().unwrap().to_string();
    assert!(e.contains(&format!("role `{}` is a member of pg_read_server_files", role.name)), "{e}");
    // a superuser session that sets a harmless role could reset it: refused too
    let reader = Role::read_only(&schema);
    let url = format!("{}?options=-c%20role%3D{}", pg_url(), reader.name);
    let mut as_reader = Client::connect(&url, postgres::NoTls).unwrap();
    let who: String = as_reader.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    assert_eq!(who, reader.name, "the URL sets the role");
    let e = PostgresWarehouse::connect(&PgOptions { url, allow_privileged_role: false, ..opts() })
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("role `postgres` is a superuser"), "{e}");
}

#[test]
fn finding_5_read_only_role_reads_its_tables_and_nothing_else() {
    let (_w, schema) = setup("CREATE TABLE t (id int, email text); INSERT INTO t VALUES (1, 'a@x');");
    let role = Role::read_only(&schema);
    let mut w = PostgresWarehouse::connect(&role.opts()).unwrap();
    assert!(w.warnings().is_empty(), "{:?}", w.warnings());
    let p = w.preview("select * from t", 10).unwrap();
    assert_eq!(p.rows, vec![vec![serde_json::json!(1), serde_json::json!("a@x")]]);
    for (sql, function) in [
        ("select pg_read_file('/etc/passwd') as id", "pg_read_file"),
        ("select pg_ls_dir('.') as id", "pg_ls_dir"),
        ("select lo_export(1, '/tmp/sluice_lo_export') as id", "lo_export"),
        ("select lo_import('/etc/passwd') as id", "lo_import"),
    ] {
        let e = w.preview(sql, 10).unwrap_err().to_string();
        assert!(e.contains(&format!("permission denied for function {function}")), "{sql}: {e}");
    }
}

#[test]
fn finding_5_cancelled_preview_stops_on_the_server() {
    let marker = unique_name("cancelled");
    let canceller = Canceller::new();
    let mut w = PostgresWarehouse::connect(&opts()).unwrap();
    w.attach_canceller(&canceller);
    let sql = format!("select pg_sleep(30) as {marker}, 1 as id");
    let run = std::thread::spawn(move || w.preview(&sql, 10));
    assert!(pg_wait_running(true, &marker), "the preview runs on the server");
    canceller.cancel();
    let e = run.join().unwrap().unwrap_err();
    assert!(matches!(e, WarehouseError::Cancelled), "{e}");
    assert!(!pg_wait_running(false, &marker), "the query stopped on the server");
}

#[test]
fn finding_5_cancellation_before_the_query_refuses_it() {
    let canceller = Canceller::new();
    canceller.cancel();
    let mut w = PostgresWarehouse::connect(&opts()).unwrap();
    w.attach_canceller(&canceller);
    let e = w.preview("select 1 as id", 1).unwrap_err();
    assert!(matches!(e, WarehouseError::Cancelled), "{e}");
}

#[test]
fn finding_5_preview_timeout_stops_the_query_on_the_server() {
    let marker = unique_name("timed_out");
    let mut w =
        PostgresWarehouse::connect(&PgOptions { preview_timeout: Some(Duration::from_millis(300)), ..opts() }).unwrap();
    let e = w.preview(&format!("select pg_sleep(30) as {marker}, 1 as id"), 10).unwrap_err().to_string();
    assert!(e.contains("canceling statement due to statement timeout"), "{e}");
    assert!(!pg_wait_running(false, &marker));
    // the model cannot lift the limit of the statement it runs in
    let e = w
        .preview(&format!("select set_config('statement_timeout', '0', false) as id, pg_sleep(30) as {marker}"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("canceling statement due to statement timeout"), "{e}");
    assert_eq!(DEFAULT_PREVIEW_TIMEOUT, Duration::from_secs(60));
    // scans are not previews: the preview's limit does not apply to them
    let mut n = 0;
    w.scan("select 1 as id from pg_sleep(0.6)", "id", IdOrder::Integer, &Default::default(), &mut |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 1);
}

// A scan whose client process died: sluice-cli/tests/robustness.rs kills a real `sluice sync`.
