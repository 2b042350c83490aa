//! Against the Databricks fake of sluice-testkit (a real HTTP server speaking the Statement
//! Execution API 2.0, answering from a real SQLite file).

use super::*;
use crate::ScanNeeds;
use serde_json::json;
use sluice_testkit::databricks::{FakeDatabricks, Hostile, TOKEN, WAREHOUSE_ID};

/// A scanned row: its id and values.
type Scanned = (Option<String>, Vec<Value>);

struct Setup {
    _dir: tempfile::TempDir,
    fake: FakeDatabricks,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDatabricks::start(&dir.path().join("dbx.db"));
    fake.sql(
        "CREATE TABLE users (id BIGINT, email STRING, ads BOOLEAN, score DOUBLE, amount DECIMAL, seen TIMESTAMP,
            tags ARRAY, addr STRUCT);
         INSERT INTO users VALUES
           (1, 'a@x', 1, 1.5, '10.25', 1700000000.25, '[\"x\",\"y\"]', '{\"city\":\"Paris\"}'),
           (2, 'b@x', 0, NULL, NULL, 1700000001, '[]', NULL),
           (10, NULL, NULL, -2, '0.5', NULL, NULL, NULL);
         CREATE TABLE t (id STRING, v BIGINT);
         INSERT INTO t VALUES ('b', 1), ('a', 2), ('B', 3), ('é', 4), (NULL, 5), ('a1', 6), ('10', 7), ('9', 8);",
    );
    Setup { _dir: dir, fake }
}

fn open(s: &Setup, token: &str, timeout: Option<u64>) -> DatabricksWarehouse {
    DatabricksWarehouse::open(&DbxOptions {
        base: s.fake.url().to_string(),
        token: token.into(),
        warehouse_id: WAREHOUSE_ID.into(),
        catalog: Some("main".into()),
        schema: Some("crm".into()),
        statement_timeout: timeout.map(Duration::from_secs),
    })
    .unwrap()
    .with_retry_min(Duration::from_millis(5))
}

fn scan(w: &mut DatabricksWarehouse, sql: &str) -> Result<Vec<Scanned>, WarehouseError> {
    let mut out = Vec::new();
    w.scan(sql, "id", IdOrder::Text, &ScanNeeds::default(), &mut |r| {
        out.push((r.id, r.values));
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn preview_reads_inline_chunks_with_typed_values() {
    let s = setup();
    s.fake.chunk_rows(2);
    s.fake.pending_polls(2);
    let mut w = open(&s, TOKEN, None);
    let p = w.preview("select * from users order by id", 10).unwrap();
    assert_eq!(p.columns, ["id", "email", "ads", "score", "amount", "seen", "tags", "addr"]);
    assert_eq!(
        p.rows[0],
        vec![
            json!(1),
            json!("a@x"),
            json!(true),
            json!(1.5),
            json!(10.25),
            json!("2023-11-14T22:13:20.250Z"),
            json!(["x", "y"]),
            json!({"city": "Paris"})
        ]
    );
    assert_eq!((p.rows[1][2].clone(), p.rows[2][1].clone()), (json!(false), Value::Null));
    assert_eq!(p.rows.len(), 3, "rows of both inline chunks");
    let log = s.fake.log();
    assert!(log.iter().any(|l| l.ends_with("/result/chunks/1")), "the second chunk was fetched: {log:?}");
    assert!(log.iter().filter(|l| l.starts_with("GET /api/2.0/sql/statements/")).count() >= 3, "polled: {log:?}");
    let b = &s.fake.bodies()[0];
    assert_eq!((b["catalog"].clone(), b["schema"].clone()), (json!("main"), json!("crm")));
    assert_eq!((b["disposition"].clone(), b["on_wait_timeout"].clone()), (json!("INLINE"), json!("CONTINUE")));
}

#[test]
fn scans_follow_external_links_without_the_token_in_id_text_order_through_throttling() {
    let s = setup();
    s.fake.chunk_rows(3);
    let mut w = open(&s, TOKEN, None);
    w.columns("select id, v from t").unwrap();
    s.fake.throttle(1);
    let started = std::time::Instant::now();
    let rows = scan(&mut w, "select id, v from t").unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    let ids: Vec<Option<&str>> = rows.iter().map(|r| r.0.as_deref()).collect();
    assert_eq!(ids, [None, Some("10"), Some("9"), Some("B"), Some("a"), Some("a1"), Some("b"), Some("é")]);
    assert_eq!(rows[1].1, vec![json!("10"), json!(7)]);
    let log = s.fake.log();
    assert_eq!(log.iter().filter(|l| l.starts_with("GET /external/")).count(), 3, "three chunks: {log:?}");
    assert_eq!(s.fake.leaked_auth(), 0, "external links never get the token");
    assert_eq!(s.fake.bodies().last().unwrap()["disposition"], json!("EXTERNAL_LINKS"));
    let ids: Vec<String> =
        scan(&mut w, "select id, email from users").unwrap().into_iter().filter_map(|r| r.0).collect();
    assert_eq!(ids, ["1", "10", "2"]);
}

#[test]
fn writes_are_refused_and_errors_carry_databricks_message() {
    let s = setup();
    let mut w = open(&s, TOKEN, None);
    for sql in ["DELETE FROM t", "  -- note\n insert into t values ('x', 1)", "/* c */ DROP TABLE t", "SET x = 1"] {
        let e = w.columns(sql).unwrap_err().to_string();
        assert!(e.contains("must be one query"), "{sql}: {e}");
    }
    assert!(s.fake.bodies().is_empty(), "nothing was sent");
    let e = w.columns("select id,\n v from t wher v = 1").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("[PARSE_SYNTAX_ERROR]") && text.contains("BAD_REQUEST"), "{text}");
    assert_eq!(e.sqlstate(), Some("42601"));
    let e = w.columns("select * from nope").unwrap_err().to_string();
    assert!(e.contains("TABLE_OR_VIEW_NOT_FOUND"), "{e}");
    assert_eq!(w.columns("(WITH x AS (SELECT 1 AS a) SELECT a FROM x)").unwrap(), ["a"]);
    let mut bad = open(&s, "dapi-wrong", None);
    let e = bad.columns("select 1 as a").unwrap_err();
    assert!(matches!(e, WarehouseError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("PERMISSION_DENIED") && text.contains("Invalid access token"), "{text}");
    assert!(!text.contains("dapi-wrong"), "{text}");
}

#[test]
fn hostile_answers_end_in_a_clear_error() {
    let s = setup();
    s.fake.chunk_rows(2);
    for (h, want) in [
        (Hostile::TruncatedJson, "not valid JSON"),
        (Hostile::WrongColumnCount, "values, the manifest"),
        (Hostile::EndlessChunks, "chunk 1 came after chunk"),
    ] {
        let mut w = open(&s, TOKEN, None);
        w.columns("select id, v from t").unwrap();
        s.fake.hostile(Some(h));
        let e = scan(&mut w, "select id, v from t").unwrap_err();
        s.fake.hostile(None);
        assert!(matches!(e, WarehouseError::Answer { .. }), "{h:?}: {e:?}");
        assert!(e.to_string().contains(want), "{h:?}: {e}");
    }
}

#[test]
fn a_statement_past_its_timeout_or_cancelled_is_cancelled_on_databricks() {
    let s = setup();
    let mut w = open(&s, TOKEN, Some(1));
    w.columns("select id, v from t").unwrap();
    s.fake.hostile(Some(Hostile::NeverFinish));
    let e = scan(&mut w, "select id, v from t").unwrap_err();
    assert!(matches!(e, WarehouseError::Timeout { secs: 1 }), "{e:?}");
    assert_eq!(s.fake.cancelled(), 1);

    let mut w = open(&s, TOKEN, None);
    s.fake.hostile(None);
    w.columns("select id, v from t").unwrap();
    s.fake.hostile(Some(Hostile::NeverFinish));
    let c = Canceller::new();
    w.attach_canceller(&c);
    let t = std::thread::spawn(move || scan(&mut w, "select id, v from t"));
    std::thread::sleep(Duration::from_millis(300));
    c.cancel();
    let e = t.join().unwrap().unwrap_err();
    assert!(matches!(e, WarehouseError::Cancelled), "{e:?}");
    assert!(s.fake.cancelled() >= 2);
}

#[test]
fn first_keywords() {
    assert_eq!(first_keyword(" -- a\n/* b */ ((select 1"), "SELECT");
    assert_eq!(first_keyword("with x as (select 1) select * from x"), "WITH");
    assert_eq!(first_keyword("/* never closed"), "");
}
