//! The snapshot contract (postgres/diff_tests.rs, ported) against `fakesnow -s`.

use super::tests::opts;
use super::*;
use crate::diff::{DiffDelta, DiffItem, Snapshot, WarehouseDiff, DUPLICATED};
use crate::ScanNeeds;
use sluice_testkit::fakesnow::FakeSnow;

const MODEL: &str = "select * from PEOPLE";

fn changes(w: &mut SnowflakeWarehouse, snap: &Snapshot, sql: &str, retry: &[&str]) -> Vec<DiffItem> {
    let retry: Vec<String> = retry.iter().map(|s| s.to_string()).collect();
    let mut out = vec![];
    w.changes(snap, sql, "ID", &retry, &mut |i| {
        out.push(i);
        Ok(())
    })
    .unwrap();
    out
}

fn ids(items: &[DiffItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            DiffItem::Upsert { id, .. } => format!("+{id}"),
            DiffItem::Gone(id) => format!("-{id}"),
            DiffItem::NullId => "null".into(),
        })
        .collect()
}

fn snapshot() -> Snapshot {
    Snapshot { schema: "sluice".into(), model: "people".into() }
}

fn started(seed: &str) -> (FakeSnow, SnowflakeWarehouse) {
    let fs = FakeSnow::start();
    for s in seed.split(';').filter(|s| !s.trim().is_empty()) {
        fs.exec(s);
    }
    // (Snowflake makes a schema it creates the session's current one: created last)
    fs.exec("CREATE SCHEMA sluice");
    fs.exec("USE SCHEMA PUBLIC");
    let w = SnowflakeWarehouse::connect(&opts(&fs)).unwrap();
    (fs, w)
}

#[test]
fn the_warehouse_returns_only_what_changed_since_the_snapshot() {
    let (fs, mut w) = started(
        "CREATE TABLE PEOPLE (ID int, EMAIL varchar, ADS boolean);
         INSERT INTO PEOPLE VALUES (1,'a',true),(2,'b',false),(3,'c',true),(4,'d',null),(NULL,'n',true),(6,'x',true),(6,'y',true)",
    );
    let snap = snapshot();
    assert_eq!(w.snapshot_info(&snap).unwrap(), None);
    let info = w.rebuild_snapshot(&snap, MODEL, "ID", "cfg1").unwrap();
    // NULL ids are left out; a duplicated id is in, with a hash no row has
    assert_eq!((info.rows, info.config_hash.as_str()), (5, "cfg1"));
    let first = info.generation;
    assert_eq!(w.snapshot_info(&snap).unwrap(), Some(info.clone()));
    // nothing changed: only the duplicated id comes back (its rows), and the NULL id (counted)
    let mut seen = ids(&changes(&mut w, &snap, MODEL, &[]));
    seen.sort();
    assert_eq!(seen, ["+6", "+6", "null"]);
    // a data change, a consent change (NULL to true), a delete and an insert; a retry of an
    // unchanged row and of an id the model does not have
    fs.exec("UPDATE PEOPLE SET EMAIL = 'b2' WHERE ID = 2");
    fs.exec("UPDATE PEOPLE SET ADS = true WHERE ID = 4");
    fs.exec("DELETE FROM PEOPLE WHERE ID = 3");
    fs.exec("INSERT INTO PEOPLE VALUES (5,'e',false)");
    let seen = changes(&mut w, &snap, MODEL, &["1", "99"]);
    let mut got = ids(&seen);
    got.retain(|i| i != "null");
    assert_eq!(got, ["+1", "+2", "-3", "+4", "+5", "+6", "+6"]);
    assert_eq!(seen.iter().filter(|i| **i == DiffItem::NullId).count(), 1);
    // advancing with what the pass saw leaves only the duplicated id (kept at DUPLICATED)
    let delta = DiffDelta::of(&seen, &["6".to_string()].into());
    assert!(delta.upserts.contains(&("6".to_string(), DUPLICATED)), "{delta:?}");
    let next = w.advance_snapshot(&snap, &delta, first).unwrap();
    assert!(next > first);
    let mut again = ids(&changes(&mut w, &snap, MODEL, &[]));
    again.sort();
    assert_eq!(again, ["+6", "+6", "null"]);
    assert_eq!(w.snapshot_info(&snap).unwrap().map(|i| (i.generation, i.rows)), Some((next, 5)));
    // compare-and-set: a run that started at the first generation cannot move it, and its
    // delta is not applied (the snapshot still holds id 1 at its hash)
    let stale = DiffDelta { upserts: vec![("1".into(), 42)], gone: vec!["2".into()] };
    let e = w.advance_snapshot(&snap, &stale, first).unwrap_err();
    assert!(matches!(e, WarehouseError::Snapshot { .. }) && e.to_string().contains("generation"), "{e}");
    assert_eq!(w.snapshot_info(&snap).unwrap().map(|i| (i.generation, i.rows)), Some((next, 5)));
    let mut again = ids(&changes(&mut w, &snap, MODEL, &[]));
    again.sort();
    assert_eq!(again, ["+6", "+6", "null"], "the refused delta was rolled back");
    // a rebuild starts from the model as it is and moves the generation on
    let info = w.rebuild_snapshot(&snap, MODEL, "ID", "cfg2").unwrap();
    assert!(info.generation > next);
    assert_eq!((info.rows, info.config_hash.as_str()), (5, "cfg2"));
}

#[test]
fn a_null_column_changes_the_hash() {
    let (fs, mut w) = started(
        "CREATE TABLE PEOPLE (ID varchar, A varchar, B varchar);
         INSERT INTO PEOPLE VALUES ('x', 'a', NULL), ('y', NULL, 'a'), ('z', 'a', 'b')",
    );
    let snap = snapshot();
    w.rebuild_snapshot(&snap, MODEL, "ID", "c").unwrap();
    // a value moving between columns, a value becoming NULL, NULL becoming a value
    fs.exec("UPDATE PEOPLE SET A = NULL, B = 'a' WHERE ID = 'x'");
    fs.exec("UPDATE PEOPLE SET A = 'a', B = NULL WHERE ID = 'y'");
    fs.exec("UPDATE PEOPLE SET B = NULL WHERE ID = 'z'");
    assert_eq!(ids(&changes(&mut w, &snap, MODEL, &[])), ["+x", "+y", "+z"]);
}

#[test]
fn a_model_never_runs_with_write_access_and_a_missing_schema_is_named() {
    let (fs, mut w) = started("CREATE TABLE PEOPLE (ID int); INSERT INTO PEOPLE VALUES (1),(2)");
    let snap = snapshot();
    for write in [
        "delete from PEOPLE",
        "insert into PEOPLE values (3)",
        "drop table PEOPLE",
        "select 1 as ID; delete from PEOPLE",
    ] {
        assert!(w.rebuild_snapshot(&snap, write, "ID", "c").is_err(), "{write} must not run");
        let e = w.changes(&snap, write, "ID", &[], &mut |_| Ok(()));
        assert!(e.is_err(), "{write} must not run");
    }
    assert_eq!(w.snapshot_info(&snap).unwrap(), None, "nothing was written for a refused model");
    let n = w.preview("select count(*) as N from PEOPLE", 1).unwrap();
    assert_eq!(n.rows[0], vec![serde_json::json!(2)], "PEOPLE is whole");
    fs.exec("SELECT 1");
    let nowhere = Snapshot { schema: "missing_snaps".into(), model: "people".into() };
    let e = w.rebuild_snapshot(&nowhere, MODEL, "ID", "c").unwrap_err().to_string();
    assert!(e.contains("missing_snaps") && e.contains("CREATE SCHEMA missing_snaps"), "{e}");
    let e = w.check_schema("missing_snaps").unwrap_err().to_string();
    assert!(e.contains("GRANT USAGE, CREATE TABLE ON SCHEMA missing_snaps"), "{e}");
    w.check_schema("sluice").unwrap();
}

#[test]
fn odd_ids_and_model_names_survive_the_round_trip_and_only_those_ids_are_scanned() {
    let (_fs, mut w) = started(
        "CREATE TABLE PEOPLE (ID varchar, V int);
         INSERT INTO PEOPLE VALUES ('tab\there', 1), ('back\\\\slash', 2), ('it''s', 3), ('é', 4), ('plain', 5)",
    );
    let snap = Snapshot { schema: "sluice".into(), model: "a \"model\"; drop table PEOPLE".into() };
    assert_eq!(w.rebuild_snapshot(&snap, MODEL, "ID", "c").unwrap().rows, 5);
    assert_eq!(changes(&mut w, &snap, MODEL, &[]), vec![]);
    let odd = ["tab\there", "back\\slash", "it's", "é"];
    let retried = changes(&mut w, &snap, MODEL, &odd);
    let mut got = ids(&retried);
    got.sort();
    let mut want: Vec<String> = odd.iter().map(|i| format!("+{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    // advancing with odd ids (upserted and gone) keeps them exact
    let delta = DiffDelta { upserts: vec![("it's".into(), 7)], gone: vec!["back\\slash".into()] };
    let g = w.snapshot_info(&snap).unwrap().unwrap().generation;
    w.advance_snapshot(&snap, &delta, g).unwrap();
    assert_eq!(ids(&changes(&mut w, &snap, MODEL, &[])), ["+back\\slash", "+it's"]);
    // the scan fetches exactly the ids asked for, in order
    let only: Vec<String> = ["é", "it's", "nope", "back\\slash"].iter().map(|s| s.to_string()).collect();
    let mut rows = vec![];
    let needs = ScanNeeds { only_ids: Some(only), ..Default::default() };
    w.scan(MODEL, "ID", IdOrder::Text, &needs, &mut |r| {
        rows.push(r.id.unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, ["back\\slash", "it's", "é"]);
    let none = ScanNeeds { only_ids: Some(vec![]), ..Default::default() };
    w.scan(MODEL, "ID", IdOrder::Text, &none, &mut |_| Err("no row may come".into())).unwrap();
}

#[test]
fn many_changes_and_retries_go_in_batches() {
    let (fs, mut w) = started("CREATE TABLE PEOPLE (ID int, V int)");
    fs.exec("INSERT INTO PEOPLE SELECT seq4() AS ID, 0 AS V FROM TABLE(GENERATOR(ROWCOUNT => 2500))");
    let snap = snapshot();
    assert_eq!(w.rebuild_snapshot(&snap, MODEL, "ID", "c").unwrap().rows, 2500);
    fs.exec("UPDATE PEOPLE SET V = 1 WHERE ID < 2100");
    let retry: Vec<String> = (2100..2500).map(|i| i.to_string()).collect();
    let retry: Vec<&str> = retry.iter().map(String::as_str).collect();
    let seen = changes(&mut w, &snap, MODEL, &retry);
    assert_eq!(seen.len(), 2500);
    let delta = DiffDelta::of(&seen, &Default::default());
    let g = w.snapshot_info(&snap).unwrap().unwrap().generation;
    w.advance_snapshot(&snap, &delta, g).unwrap();
    assert_eq!(changes(&mut w, &snap, MODEL, &[]), vec![]);
    let only: Vec<String> = (0..2500).rev().step_by(2).map(|i| i.to_string()).collect();
    let mut n = 0;
    let mut last = -1i64;
    w.scan(MODEL, "ID", IdOrder::Integer, &ScanNeeds { only_ids: Some(only), ..Default::default() }, &mut |r| {
        let id: i64 = r.id.unwrap().parse().unwrap();
        assert!(id > last && id % 2 == 1, "{id} after {last}");
        last = id;
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 1250);
}
