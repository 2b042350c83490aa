//! Against the real PostgreSQL server.

use super::*;
use sluice_testkit::{pg_url, unique_name};

/// The test server's superuser, explicitly allowed (see `read_only_tests` for the refusal).
pub(super) fn opts() -> PgOptions {
    PgOptions { url: pg_url(), allow_privileged_role: true, ..Default::default() }
}

pub(super) fn setup(sql: &str) -> (PostgresWarehouse, String) {
    let schema = unique_name("wh");
    let mut w = PostgresWarehouse::connect(&opts()).expect("PostgreSQL must be running (the test command starts it)");
    w.client.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path = {schema}; {sql}")).unwrap();
    (w, schema)
}

fn ids(w: &mut PostgresWarehouse, sql: &str, id: &str) -> Vec<Option<String>> {
    let mut out = vec![];
    let order = w.id_order(sql, id).unwrap();
    w.scan(sql, id, order, &Default::default(), &mut |r| {
        out.push(r.id);
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn ids_of_every_type_as_strings_in_byte_order() {
    let (mut w, _s) = setup(
        "CREATE TABLE i (id int, v text); INSERT INTO i VALUES (10,'a'),(9,'b'),(NULL,'n'),(100,'c');
         CREATE TABLE b (id bigint); INSERT INTO b VALUES (9007199254740993),(-5);
         CREATE TABLE u (id uuid); INSERT INTO u VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11');
         CREATE TABLE t (id text); INSERT INTO t VALUES ('b'),('B'),('a'),('é'),('Z');",
    );
    assert_eq!(w.id_order("select * from i", "id").unwrap(), IdOrder::Integer);
    assert_eq!(w.id_order("select * from u", "id").unwrap(), IdOrder::Text);
    assert_eq!(
        ids(&mut w, "select * from i", "id"),
        vec![Some("9".into()), Some("10".into()), Some("100".into()), None]
    );
    assert_eq!(ids(&mut w, "select * from b", "id"), vec![Some("-5".into()), Some("9007199254740993".into())]);
    let mut text = vec![];
    w.scan("select * from i", "id", IdOrder::Text, &Default::default(), &mut |r| {
        text.push(r.id);
        Ok(())
    })
    .unwrap();
    assert_eq!(text, vec![None, Some("10".into()), Some("100".into()), Some("9".into())], "text order on request");
    assert_eq!(ids(&mut w, "select * from u", "id"), vec![Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())]);
    let t: Vec<String> = ids(&mut w, "select * from t", "id").into_iter().flatten().collect();
    assert_eq!(t, vec!["B", "Z", "a", "b", "é"], "byte order, whatever the database collation");
}

#[test]
fn values_keep_their_types() {
    let (mut w, _s) = setup(
        "CREATE TABLE v (id int, b bool, n numeric(10,2), f float8, j jsonb, d date, big bigint);
         INSERT INTO v VALUES (1, true, 12.50, 0.5, '{\"a\": [1]}', '2024-02-29', 42);",
    );
    let p = w.preview("select * from v", 10).unwrap();
    assert_eq!(p.columns, vec!["id", "b", "n", "f", "j", "d", "big"]);
    assert_eq!(
        serde_json::Value::Array(p.rows[0].clone()),
        serde_json::json!([1, true, 12.5, 0.5, {"a": [1]}, "2024-02-29", 42])
    );
}

#[test]
fn seed_models_columns_and_json_blob() {
    let (mut w, _s) = setup(
        "CREATE TABLE consent_preferences (userid text, name text, email text, distinctid text, ads bool,
             personalization bool, analytics bool, consent_obj jsonb);
         INSERT INTO consent_preferences VALUES
           ('u1','A','a@x','d1',true,false,null,'{\"consent\":{\"cookie\":{\"Advertising\":true,\"Analytics\":false}}}'),
           ('u2','B','b@x','d2',false,true,true,'{\"consent\":{\"cookie\":{}}}');",
    );
    let cols = w
        .columns("select USERID, name, email, distinctid, Ads, Personalization, Analytics from CONSENT_PREFERENCES;")
        .unwrap();
    assert_eq!(
        cols,
        vec!["userid", "name", "email", "distinctid", "ads", "personalization", "analytics"],
        "unquoted names fold to lowercase"
    );
    let p = w
        .preview(
            "select USERID, CAST(CONSENT_OBJ->'consent'->'cookie'->>'Advertising' AS boolean) as Ads,
                    CAST(CONSENT_OBJ->'consent'->'cookie'->>'Analytics' AS boolean) as Analytics
             from CONSENT_PREFERENCES order by 1",
            10,
        )
        .unwrap();
    assert_eq!(p.rows[0], vec![serde_json::json!("u1"), serde_json::json!(true), serde_json::json!(false)]);
    assert_eq!(p.rows[1], vec![serde_json::json!("u2"), serde_json::Value::Null, serde_json::Value::Null]);
}

#[test]
fn bad_sql_shows_the_server_message_and_position() {
    let (mut w, _s) = setup("CREATE TABLE p (id int);");
    let e = w.columns("select id\nfrom p wher id > 1").unwrap_err().to_string();
    assert!(e.contains("syntax error at or near \"id\""), "{e}");
    assert!(e.contains("line 2, column 13"), "{e}");
    let e = w.columns("select nope from p").unwrap_err().to_string();
    assert!(e.contains("column \"nope\" does not exist") && e.contains("line 1, column 8"), "{e}");
}

#[test]
fn connection_errors_name_the_target() {
    let url = pg_url();
    let bad_user = url.replacen("postgres@", "no_such_role_x@", 1);
    let e = PostgresWarehouse::connect(&PgOptions { url: bad_user, ..opts() }).err().unwrap().to_string();
    assert!(e.contains("no_such_role_x@") && e.contains("no_such_role_x"), "{e}");
    assert!(e.contains("28000") || e.contains("authentication"), "{e}");
    let e =
        PostgresWarehouse::connect(&PgOptions { url: "postgres://postgres:secret@127.0.0.1:1/test".into(), ..opts() })
            .err()
            .unwrap()
            .to_string();
    assert!(e.contains("127.0.0.1:1") && e.to_lowercase().contains("refused"), "{e}");
    assert!(!e.contains("secret"), "the password never appears: {e}");
    let e =
        PostgresWarehouse::connect(&PgOptions { url: "postgres://x@127.0.0.1/test?sslmode=bogus".into(), ..opts() })
            .err()
            .unwrap()
            .to_string();
    assert!(e.contains("invalid connection URL"), "{e}");
}

#[test]
fn statement_timeout_applies() {
    let mut w =
        PostgresWarehouse::connect(&PgOptions { statement_timeout: Some(Duration::from_millis(200)), ..opts() })
            .unwrap();
    let e = w.preview("select pg_sleep(3)", 1).unwrap_err().to_string();
    assert!(e.contains("statement timeout"), "{e}");
}

#[test]
fn tls_require_encrypts_and_verify_full_checks_the_certificate() {
    let mut w = PostgresWarehouse::connect(&PgOptions { tls: Some(TlsMode::Require), ..opts() }).unwrap();
    let p = w.preview("select ssl from pg_stat_ssl where pid = pg_backend_pid()", 1).unwrap();
    assert_eq!(p.rows[0][0], serde_json::json!(true), "the connection is encrypted");
    // the local server has a self-signed certificate: verification must refuse it
    let e =
        PostgresWarehouse::connect(&PgOptions { tls: Some(TlsMode::VerifyFull), ..opts() }).err().unwrap().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let mut w = PostgresWarehouse::connect(&PgOptions { tls: Some(TlsMode::Disable), ..opts() }).unwrap();
    let p = w.preview("select count(*) from pg_stat_ssl where pid = pg_backend_pid() and ssl", 1).unwrap();
    assert_eq!(p.rows[0][0], serde_json::json!(0));
}

#[test]
fn raw_rows_decode_to_the_same_values_and_hash_stably() {
    let (mut w, _s) = setup(
        "CREATE TABLE v (id int, b bool, n numeric(10,2), f float8, j jsonb, d date, big bigint, t text, u uuid);
         INSERT INTO v VALUES (1, true, 12.50, 0.5, '{\"a\": [1]}', '2024-02-29', 42, 'é', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
                              (2, null, null, null, null, null, null, null, null);",
    );
    let mut typed = vec![];
    w.scan("select * from v", "id", IdOrder::Integer, &Default::default(), &mut |r| {
        typed.push(r.values);
        Ok(())
    })
    .unwrap();
    let needs = crate::ScanNeeds { typed: Some(vec![1]), raw: true, only_ids: None };
    let mut raw = vec![];
    w.scan("select * from v", "id", IdOrder::Integer, &needs, &mut |r| {
        assert_eq!(r.values[2], Value::Null, "only the asked columns are decoded");
        raw.push(r.raw.unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(raw.iter().map(|r| r.decode()).collect::<Vec<_>>(), typed);
    assert_ne!(raw[0].bytes, raw[1].bytes);
}
