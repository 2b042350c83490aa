use super::*;

fn warehouse() -> (tempfile::TempDir, SqliteWarehouse) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "create table p(id integer, email text, ads, blob text);
         insert into p values (10,'a@x',1,'{\"consent\":{\"Advertising\":true}}'),(9,'b@x','f',null),
                              (null,'n@x',null,null),(100,'c@x','TRUE','{\"consent\":{\"Advertising\":false}}');",
    )
    .unwrap();
    let w = SqliteWarehouse::open(&path).unwrap();
    (dir, w)
}

#[test]
fn scan_sorts_by_id_string_and_keeps_nulls() {
    let (_d, mut w) = warehouse();
    let mut ids = vec![];
    w.scan("select * from p;", "id", crate::IdOrder::Text, &Default::default(), &mut |r| {
        ids.push(r.id.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(ids, vec![None, Some("10".into()), Some("100".into()), Some("9".into())]);
}

#[test]
fn json_blob_model_with_sqlite_json_functions() {
    let (_d, mut w) = warehouse();
    let p = w
        .preview(
            "select id, json_extract(blob, '$.consent.Advertising') as Ads from p where blob is not null order by id",
            10,
        )
        .unwrap();
    assert_eq!(p.columns, vec!["id", "Ads"]);
    assert_eq!(p.rows, vec![vec![Value::from(10), Value::from(1)], vec![Value::from(100), Value::from(0)]]);
}

#[test]
fn errors_name_the_thing_at_fault() {
    let (_d, mut w) = warehouse();
    let e = w.columns("select nope from p").unwrap_err().to_string();
    assert!(e.contains("no such column: nope"), "{e}");
    let e = w.columns("select id, id from p").unwrap_err().to_string();
    assert!(e.contains("column `id` twice"), "{e}");
    let e = SqliteWarehouse::open(Path::new("/nonexistent/w.db")).err().unwrap().to_string();
    assert!(e.contains("/nonexistent/w.db"), "{e}");
}

#[test]
fn finding_5_sqlite_model_cannot_write() {
    let (d, mut w) = warehouse();
    let write = "insert into p(id) values (5) returning id";
    assert!(w.preview(write, 10).is_err());
    assert!(w.scan(write, "id", crate::IdOrder::Text, &Default::default(), &mut |_| Ok(())).is_err());
    // the connection itself refuses writes, whatever SQL reaches it
    let e = w.conn.execute_batch(write).unwrap_err().to_string();
    assert!(e.contains("readonly") || e.contains("query_only"), "{e}");
    let e = w.conn.execute_batch("pragma user_version = 7").unwrap_err().to_string();
    assert!(e.contains("readonly") || e.contains("query_only"), "{e}");
    let query_only: bool = w.conn.pragma_query_value(None, "query_only", |r| r.get(0)).unwrap();
    assert!(query_only);
    let c = Connection::open(d.path().join("w.db")).unwrap();
    let n: i64 = c.query_row("select count(*) from p", [], |r| r.get(0)).unwrap();
    let v: i64 = c.query_row("pragma user_version", [], |r| r.get(0)).unwrap();
    assert_eq!((n, v), (4, 0), "the file is unchanged");
}

#[test]
fn finding_5_sqlite_cancel_interrupts_a_running_model() {
    let (_d, mut w) = warehouse();
    let canceller = crate::Canceller::new();
    w.attach_canceller(&canceller);
    let endless = "with recursive c(x) as (select 1 union all select x + 1 from c) select max(x) as id from c";
    let watch = canceller.clone();
    let run = std::thread::spawn(move || w.preview(endless, 1));
    let t = std::time::Instant::now();
    while !watch.is_busy() && t.elapsed() < std::time::Duration::from_secs(15) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    canceller.cancel();
    let e = run.join().unwrap().unwrap_err();
    assert!(matches!(e, WarehouseError::Cancelled), "{e}");
}
