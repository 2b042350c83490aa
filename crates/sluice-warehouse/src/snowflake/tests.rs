//! Snowflake against `fakesnow -s` (the connector protocol over DuckDB, Arrow rowsets).

use super::*;
use crate::ScanNeeds;
use sluice_testkit::fakesnow::{FakeSnow, DATABASE, SCHEMA};

pub(super) fn opts(fs: &FakeSnow) -> SnowflakeOptions {
    SnowflakeOptions {
        endpoint: fs.url().to_string(),
        account: "test".into(),
        user: "sluice".into(),
        password: Some("pw".into()),
        database: Some(DATABASE.into()),
        schema: Some(SCHEMA.into()),
        ..Default::default()
    }
}

const SEED: &str = "CREATE TABLE CONSENT_PREFERENCES (USERID varchar, name varchar, email varchar, distinctid varchar,
    Ads boolean, Personalization boolean, Analytics boolean, CONSENT_OBJ variant,
    score number(10, 2), visits int, seen timestamp_ntz, born date)";

fn seeded() -> FakeSnow {
    let fs = FakeSnow::start();
    fs.exec(SEED);
    for (id, ads, obj, score) in [
        ("u1", "true", r#"{"consent":{"cookie":{"Advertising":true,"Personalization":true}}}"#, "1.5"),
        ("u2", "false", r#"{"consent":{"cookie":{"Advertising":false}}}"#, "null"),
        ("U3", "null", r#"{"consent":{}}"#, "-2.25"),
    ] {
        fs.exec(&format!(
            "INSERT INTO CONSENT_PREFERENCES SELECT '{id}', 'N', '{id}@x', 'd', {ads}, true, false, PARSE_JSON('{obj}'),
             {score}, 7, '2024-01-02 03:04:05.5'::timestamp_ntz, '2024-01-02'::date"
        ));
    }
    fs
}

fn scan_all(w: &mut SnowflakeWarehouse, sql: &str, id: &str) -> (IdOrder, Vec<Row>) {
    let order = w.id_order(sql, id).unwrap();
    let mut rows = Vec::new();
    w.scan(sql, id, order, &ScanNeeds::default(), &mut |r| {
        rows.push(r);
        Ok(())
    })
    .unwrap();
    (order, rows)
}

#[test]
fn both_seed_models_preview_and_scan_typed() {
    let fs = seeded();
    let mut w = SnowflakeWarehouse::connect(&opts(&fs)).unwrap();
    let columns = "select\n  USERID,\n  name,\n  email,\n  distinctid,\n  Ads,\n  Personalization,\n  Analytics\nfrom CONSENT_PREFERENCES;";
    let blob = "select\n  USERID,\n  name,\n  email,\n  distinctid,\n  CAST(CONSENT_OBJ:consent.cookie.Advertising as Boolean) as Ads,\n  CAST(CONSENT_OBJ:consent.cookie.Personalization as Boolean) as Personalization,\n  CAST(CONSENT_OBJ:consent.cookie.Analytics as Boolean) as Analytics\nfrom CONSENT_PREFERENCES;";
    for sql in [columns, blob] {
        let p = w.preview(sql, 10).unwrap();
        assert_eq!(p.columns, ["USERID", "NAME", "EMAIL", "DISTINCTID", "ADS", "PERSONALIZATION", "ANALYTICS"]);
        assert_eq!(p.rows.len(), 3);
        let (order, rows) = scan_all(&mut w, sql, "USERID");
        assert_eq!(order, IdOrder::Text);
        let ids: Vec<_> = rows.iter().map(|r| r.id.clone().unwrap()).collect();
        assert_eq!(ids, ["U3", "u1", "u2"], "text ids in byte order");
        assert_eq!(rows[1].values[4], Value::Bool(true), "{sql}");
        assert_eq!(rows[2].values[4], Value::Bool(false), "{sql}");
        assert_eq!(rows[0].values[4], Value::Null, "{sql}");
    }
    let (_, rows) = scan_all(&mut w, "select * from CONSENT_PREFERENCES", "USERID");
    let u1 = &rows[1].values;
    assert_eq!(u1[7], serde_json::json!({"consent": {"cookie": {"Advertising": true, "Personalization": true}}}));
    assert_eq!((&u1[8], &u1[9]), (&serde_json::json!(1.5), &serde_json::json!(7)));
    assert_eq!((u1[10].as_str(), u1[11].as_str()), (Some("2024-01-02T03:04:05.5"), Some("2024-01-02")));
    assert_eq!(rows[0].values[8], serde_json::json!(-2.25));
    assert_eq!(rows[2].values[8], Value::Null);
}

#[test]
fn ids_sort_as_the_engine_merges_them() {
    let fs = FakeSnow::start();
    fs.exec("CREATE TABLE T (ID varchar, N int, V varchar)");
    for (i, id) in ["b", "B", "a", "é", "10", "9", "Z"].iter().enumerate() {
        fs.exec(&format!("INSERT INTO T VALUES ('{id}', {}, 'v')", i as i64 * 37 - 100));
    }
    fs.exec("INSERT INTO T VALUES (NULL, NULL, 'null id')");
    let mut w = SnowflakeWarehouse::connect(&opts(&fs)).unwrap();
    let (order, rows) = scan_all(&mut w, "select * from T", "ID");
    assert_eq!(order, IdOrder::Text);
    let ids: Vec<_> = rows.iter().filter_map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["10", "9", "B", "Z", "a", "b", "é"]);
    assert_eq!(rows.len(), 8, "the NULL id is returned (and rejected by the sync)");
    // NUMBER(10, 0) fits 64 bits: numeric order
    let (order, rows) = scan_all(&mut w, "select N::number(10, 0) as N, V from T where N is not null", "N");
    assert_eq!(order, IdOrder::Integer);
    let ids: Vec<_> = rows.iter().filter_map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["-100", "-63", "-26", "11", "48", "85", "122"], "integers in numeric order, decimal");
    assert_eq!(rows[0].values[0], serde_json::json!(-100));
    // INT is NUMBER(38, 0), which may not fit 64 bits: the bytes of its decimal text
    let (order, rows) = scan_all(&mut w, "select N, V from T where N is not null", "N");
    assert_eq!(order, IdOrder::Text);
    let ids: Vec<_> = rows.iter().filter_map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["-100", "-26", "-63", "11", "122", "48", "85"]);
    assert_eq!(rows[0].values[0], serde_json::json!(-100), "the value is still an integer");
}

#[test]
fn bad_sql_carries_the_servers_message_and_writes_are_refused() {
    let fs = FakeSnow::start();
    fs.exec("CREATE TABLE T (ID int)");
    let mut w = SnowflakeWarehouse::connect(&opts(&fs)).unwrap();
    let e = w.columns("select * from NO_SUCH_TABLE").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("NO_SUCH_TABLE") && msg.contains("code 002003"), "{msg}");
    assert_eq!(e.sqlstate(), Some("42S02"));
    let e = w.preview("selec 1", 10).unwrap_err().to_string();
    assert!(e.contains("Line 1, Col: 7"), "the position is the model's: {e}");
    fs.exec("INSERT INTO T VALUES (1)");
    for write in [
        "insert into T values (2)",
        "delete from T",
        "drop table T",
        "create table U (x int)",
        "select 1; drop table T",
        "call system$wait(1)",
    ] {
        assert!(w.columns(write).is_err(), "{write} must not run");
        assert!(w.preview(write, 10).is_err(), "{write} must not run");
        let scan = w.scan(write, "X", IdOrder::Text, &ScanNeeds::default(), &mut |_| Ok(()));
        assert!(scan.is_err(), "{write} must not run");
    }
    let p = w.preview("select count(*) as n, min(ID) as lo from T", 1).unwrap();
    assert_eq!(p.rows[0], vec![serde_json::json!(1), serde_json::json!(1)], "T is whole: nothing was written");
    fs.exec("CREATE TABLE U (x int)"); // fails if the refused CREATE had run
}
