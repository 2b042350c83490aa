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
