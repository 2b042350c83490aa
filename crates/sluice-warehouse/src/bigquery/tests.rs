//! Against the BigQuery fake of sluice-testkit (a real HTTP server speaking the REST API v2 and
//! Google's token endpoint, answering from a real SQLite file).

use super::*;
use crate::ScanNeeds;
use serde_json::json;
use sluice_testkit::bigquery::{FakeBigQuery, Hostile, ACCOUNT_KEY, OTHER_KEY, PROJECT};

/// A scanned row: its id and values.
type Scanned = (Option<String>, Vec<Value>);

struct Setup {
    _dir: tempfile::TempDir,
    fake: FakeBigQuery,
    key: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBigQuery::start(&dir.path().join("bq.db"));
    fake.sql(
        "CREATE TABLE users (id INT64, email STRING, ads BOOL, score FLOAT64, amount NUMERIC, seen TIMESTAMP,
            prefs JSON, tags REPEATED, addr RECORD);
         INSERT INTO users VALUES
           (1, 'a@x', 1, 1.5, '10.25', 1700000000.25, '{\"k\":[1,2]}', '[\"x\",\"y\"]', '{\"city\":\"Paris\",\"zip\":75001}'),
           (2, 'b@x', 0, NULL, NULL, 1700000001, NULL, '[]', NULL),
           (10, NULL, NULL, -2, '0.5', NULL, 'null', NULL, '{\"city\":\"Oslo\",\"zip\":150}');
         CREATE TABLE t (id STRING, v INT64);
         INSERT INTO t VALUES ('b', 1), ('a', 2), ('B', 3), ('é', 4), (NULL, 5), ('a1', 6), ('10', 7), ('9', 8);",
    );
    let key = fake.key_file(dir.path(), ACCOUNT_KEY);
    Setup { _dir: dir, fake, key }
}

fn open(s: &Setup, key: &Path, timeout: Option<u64>) -> BigQueryWarehouse {
    BigQueryWarehouse::open(&BqOptions {
        project: PROJECT.into(),
        credentials_file: key.to_path_buf(),
        location: Some("EU".into()),
        endpoint: Some(s.fake.url().to_string()),
        statement_timeout: timeout.map(Duration::from_secs),
    })
    .unwrap()
    .with_retry_min(Duration::from_millis(5))
}

use std::path::Path;

fn scan_ids(w: &mut BigQueryWarehouse, sql: &str) -> Result<Vec<Scanned>, WarehouseError> {
    let mut out = Vec::new();
    w.scan(sql, "id", IdOrder::Text, &ScanNeeds::default(), &mut |r| {
        out.push((r.id, r.values));
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn preview_has_typed_values_after_polling_a_job_that_was_not_complete() {
    let s = setup();
    s.fake.location("EU");
    s.fake.incomplete_polls(2);
    let mut w = open(&s, &s.key, None);
    let p = w.preview("select * from users order by id;", 10).unwrap();
    assert_eq!(p.columns, ["id", "email", "ads", "score", "amount", "seen", "prefs", "tags", "addr"]);
    assert_eq!(
        p.rows[0],
        vec![
            json!(1),
            json!("a@x"),
            json!(true),
            json!(1.5),
            json!(10.25),
            json!("2023-11-14T22:13:20.250000Z"),
            json!({"k": [1, 2]}),
            json!(["x", "y"]),
            json!({"city": "Paris", "zip": 75001}),
        ]
    );
    assert_eq!(p.rows[1][2], json!(false));
    assert_eq!(p.rows[1][5], json!("2023-11-14T22:13:21Z"));
    assert_eq!(p.rows[1][7], json!([]));
    assert_eq!(p.rows[2][1], Value::Null);
    assert_eq!(p.rows.len(), 3);
    let log = s.fake.log();
    let polls = log.iter().filter(|l| l.starts_with("GET /bigquery/v2/projects/sluice-test/queries/")).count();
    assert!(polls >= 2, "polled getQueryResults while jobComplete was false: {log:?}");
    assert_eq!(log.iter().filter(|l| *l == "POST /token").count(), 1, "one token for every call: {log:?}");
    let q = s.fake.bodies().into_iter().find(|b| b["query"].is_string()).unwrap();
    assert_eq!((q["useLegacySql"].clone(), q["location"].clone()), (json!(false), json!("EU")));
    assert_eq!(q["formatOptions"]["useInt64Timestamp"], json!(true));
    assert!(q["jobTimeoutMs"].as_str().is_some() && q["requestId"].as_str().is_some(), "{q}");
}

#[test]
fn scans_sort_ids_as_text_bytes_across_pages_and_survive_throttling() {
    let s = setup();
    s.fake.page_rows(3);
    let mut w = open(&s, &s.key, None);
    s.fake.throttle(&[429, 403]);
    let rows = scan_ids(&mut w, "select id, v from t").unwrap();
    let ids: Vec<Option<&str>> = rows.iter().map(|r| r.0.as_deref()).collect();
    assert_eq!(ids, [None, Some("10"), Some("9"), Some("B"), Some("a"), Some("a1"), Some("b"), Some("é")]);
    assert_eq!(rows[1].1, vec![json!("10"), json!(7)]);
    let pages = s.fake.log().iter().filter(|l| l.contains("/queries/")).count();
    assert!(pages >= 2, "{} pages of 3 rows", pages + 1);
    // integer ids are stringified in decimal and sorted as text
    let rows = scan_ids(&mut w, "select id, email from users").unwrap();
    let ids: Vec<&str> = rows.iter().filter_map(|r| r.0.as_deref()).collect();
    assert_eq!(ids, ["1", "10", "2"]);
    assert_eq!(rows[0].1[0], json!(1));
}

#[test]
fn only_a_select_runs_and_bad_sql_gets_bigquerys_message_with_its_position() {
    let s = setup();
    let mut w = open(&s, &s.key, None);
    let before = s.fake.bodies().len();
    let e = w.columns("DELETE FROM users WHERE id = 1").unwrap_err().to_string();
    assert!(e.contains("DELETE statement") && e.contains("one SELECT"), "{e}");
    assert!(
        s.fake.bodies()[before..].iter().all(|b| b["configuration"]["dryRun"] == json!(true)),
        "only a dry run reached the warehouse"
    );
    let e = w.columns("select id,\n  email from users wher id = 1").unwrap_err().to_string();
    assert!(e.contains("Syntax error") && e.contains("reason: invalidQuery"), "{e}");
    assert!(e.contains("line 2"), "the position in the model: {e}");
    let e = w.columns("select * from nope").unwrap_err().to_string();
    assert!(e.contains("no such table: nope") && e.contains("notFound"), "{e}");
    assert_eq!(w.columns("select id, email from users").unwrap(), ["id", "email"]);
}

#[test]
fn bad_credentials_name_the_token_endpoints_answer() {
    let s = setup();
    let other = s.fake.key_file(s._dir.path(), OTHER_KEY);
    let mut w = open(&s, &other, None);
    let e = w.columns("select 1 as x").unwrap_err();
    assert!(matches!(e, WarehouseError::Connect { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("invalid_grant") && e.contains("Invalid JWT Signature"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    // a file that is not a key
    let bad = s._dir.path().join("bad.json");
    std::fs::write(&bad, "{\"type\": \"authorized_user\", \"client_email\": \"x\", \"private_key\": \"y\"}").unwrap();
    let e = BigQueryWarehouse::open(&BqOptions {
        project: PROJECT.into(),
        credentials_file: bad.clone(),
        location: None,
        endpoint: Some(s.fake.url().into()),
        statement_timeout: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("bad.json") && e.contains("authorized_user"), "{e}");
    std::fs::write(&bad, "{\"client_email\": \"x\"}").unwrap();
    let e = BigQueryWarehouse::open(&BqOptions {
        project: PROJECT.into(),
        credentials_file: bad,
        location: None,
        endpoint: None,
        statement_timeout: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("missing field `private_key`"), "{e}");
}

#[test]
fn hostile_answers_end_in_a_clear_error() {
    let s = setup();
    s.fake.page_rows(2);
    for (h, want) in [
        (Hostile::TruncatedJson, "not valid JSON"),
        (Hostile::WrongColumnCount, "values but the schema has"),
        (Hostile::SamePageToken, "do not end"),
        (Hostile::EndlessPages, "more rows than the 8"),
        (Hostile::EmptyPages, "do not end"),
    ] {
        let mut w = open(&s, &s.key, None);
        w.columns("select id, v from t").unwrap();
        s.fake.hostile(Some(h));
        let e = scan_ids(&mut w, "select id, v from t").unwrap_err();
        s.fake.hostile(None);
        assert!(matches!(e, WarehouseError::Answer { .. } | WarehouseError::Order { .. }), "{h:?}: {e:?}");
        assert!(e.to_string().contains(want), "{h:?}: {e}");
    }
}

#[test]
fn a_job_past_its_timeout_or_cancelled_is_cancelled_on_bigquery() {
    let s = setup();
    s.fake.hostile(Some(Hostile::NeverComplete));
    let mut w = open(&s, &s.key, Some(1));
    w.columns("select id, v from t").unwrap();
    let started = std::time::Instant::now();
    let e = scan_ids(&mut w, "select id, v from t").unwrap_err();
    assert!(matches!(e, WarehouseError::Timeout { secs: 1 }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s.fake.cancelled(), 1, "jobs.cancel was called");

    let mut w = open(&s, &s.key, None);
    w.columns("select id, v from t").unwrap();
    let c = Canceller::new();
    w.attach_canceller(&c);
    let t = std::thread::spawn(move || scan_ids(&mut w, "select id, v from t"));
    std::thread::sleep(Duration::from_millis(300));
    c.cancel();
    let e = t.join().unwrap().unwrap_err();
    assert!(matches!(e, WarehouseError::Cancelled), "{e:?}");
    assert!(s.fake.cancelled() >= 2, "the running job was cancelled on BigQuery");
}

#[test]
fn a_revoked_token_is_renewed_once() {
    let s = setup();
    let mut w = open(&s, &s.key, None);
    w.columns("select id, v from t").unwrap();
    s.fake.revoke_tokens();
    assert_eq!(scan_ids(&mut w, "select id, v from t").unwrap().len(), 8);
    let tokens = s.fake.log().iter().filter(|l| *l == "POST /token").count();
    assert_eq!(tokens, 2, "a 401 fetches a new token, then the call succeeds");
}
