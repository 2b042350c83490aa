//! The snapshot contract (postgres/diff_tests.rs, ported) written once for the REST warehouses:
//! each backend's `diff_tests` names the tests and runs these against its fake, built by its
//! own `setup`.

use crate::diff::{DiffDelta, DiffItem, Snapshot, WarehouseDiff, DUPLICATED};
use crate::{IdOrder, ScanNeeds, Warehouse, WarehouseError};

pub(crate) const MODEL: &str = "select * from people";

/// A fake that runs SQL on the data the warehouse reads.
pub(crate) trait Fake {
    fn sql(&self, sql: &str);
}

impl Fake for sluice_testkit::bigquery::FakeBigQuery {
    fn sql(&self, sql: &str) {
        self.sql(sql)
    }
}

impl Fake for sluice_testkit::databricks::FakeDatabricks {
    fn sql(&self, sql: &str) {
        self.sql(sql)
    }
}

pub(crate) struct Setup<F, W> {
    pub _dir: tempfile::TempDir,
    pub fake: F,
    pub w: W,
}

/// The dialect's names of the types the seeds use.
pub(crate) struct Types {
    pub int: &'static str,
    pub boolean: &'static str,
}

fn changes<W: WarehouseDiff>(w: &mut W, snap: &Snapshot, retry: &[&str]) -> Vec<DiffItem> {
    let retry: Vec<String> = retry.iter().map(|s| s.to_string()).collect();
    let mut out = vec![];
    w.changes(snap, MODEL, "id", &retry, &mut |i| {
        out.push(i);
        Ok(())
    })
    .unwrap();
    out
}

fn ids(items: &[DiffItem]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|i| match i {
            DiffItem::Upsert { id, .. } => format!("+{id}"),
            DiffItem::Gone(id) => format!("-{id}"),
            DiffItem::NullId => "null".into(),
        })
        .collect();
    v.sort();
    v
}

fn snapshot() -> Snapshot {
    Snapshot { schema: "sluice".into(), model: "people".into() }
}

pub(crate) fn the_warehouse_returns_only_what_changed_since_the_snapshot<F: Fake, W: WarehouseDiff>(
    setup: fn(&str) -> Setup<F, W>,
    t: Types,
) {
    let Setup { fake, mut w, _dir } = setup(&format!(
        "CREATE TABLE people (id {int}, email STRING, ads {boolean});
         INSERT INTO people VALUES (1,'a',1),(2,'b',0),(3,'c',1),(4,'d',NULL),(NULL,'n',1),(6,'x',1),(6,'y',1);",
        int = t.int,
        boolean = t.boolean
    ));
    let snap = snapshot();
    assert_eq!(w.snapshot_info(&snap).unwrap(), None);
    let info = w.rebuild_snapshot(&snap, MODEL, "id", "cfg1").unwrap();
    assert_eq!((info.rows, info.config_hash.as_str()), (5, "cfg1"));
    let first = info.generation;
    assert_eq!(w.snapshot_info(&snap).unwrap(), Some(info));
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+6", "+6", "null"]);
    fake.sql(
        "UPDATE people SET email = 'b2' WHERE id = 2; UPDATE people SET ads = 1 WHERE id = 4;
         DELETE FROM people WHERE id = 3; INSERT INTO people VALUES (5,'e',0);",
    );
    let seen = changes(&mut w, &snap, &["1", "99"]);
    assert_eq!(ids(&seen), ["+1", "+2", "+4", "+5", "+6", "+6", "-3", "null"]);
    let delta = DiffDelta::of(&seen, &["6".to_string()].into());
    assert!(delta.upserts.contains(&("6".to_string(), DUPLICATED)), "{delta:?}");
    let next = w.advance_snapshot(&snap, &delta, first).unwrap();
    assert!(next > first);
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+6", "+6", "null"]);
    assert_eq!(w.snapshot_info(&snap).unwrap().map(|i| (i.generation, i.rows)), Some((next, 5)));
    // compare-and-set: a run that started at the first generation cannot move it or write
    let stale = DiffDelta { upserts: vec![("1".into(), 42)], gone: vec!["2".into()] };
    let e = w.advance_snapshot(&snap, &stale, first).unwrap_err();
    assert!(matches!(e, WarehouseError::Snapshot { .. }) && e.to_string().contains("generation"), "{e}");
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+6", "+6", "null"], "the refused delta was not applied");
    let info = w.rebuild_snapshot(&snap, MODEL, "id", "cfg2").unwrap();
    assert!(info.generation > next);
    assert_eq!((info.rows, info.config_hash.as_str()), (5, "cfg2"));
}

pub(crate) fn a_null_column_changes_the_hash<F: Fake, W: WarehouseDiff>(setup: fn(&str) -> Setup<F, W>) {
    let Setup { fake, mut w, _dir } = setup(
        "CREATE TABLE people (id STRING, a STRING, b STRING);
         INSERT INTO people VALUES ('x', 'a', NULL), ('y', NULL, 'a'), ('z', 'a', 'b');",
    );
    let snap = snapshot();
    w.rebuild_snapshot(&snap, MODEL, "id", "c").unwrap();
    fake.sql(
        "UPDATE people SET a = NULL, b = 'a' WHERE id = 'x'; UPDATE people SET a = 'a', b = NULL WHERE id = 'y';
         UPDATE people SET b = NULL WHERE id = 'z';",
    );
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+x", "+y", "+z"]);
}

/// `named` asserts on the errors of a rebuild into, and a check of, the missing schema.
pub(crate) fn a_model_never_runs_with_write_access_and_a_missing_schema_is_named<
    F: Fake,
    W: WarehouseDiff + Warehouse,
>(
    setup: fn(&str) -> Setup<F, W>,
    t: Types,
    named: fn(rebuild: &str, check: &str),
) {
    let Setup { fake, mut w, _dir } =
        setup(&format!("CREATE TABLE people (id {}); INSERT INTO people VALUES (1), (2);", t.int));
    let snap = snapshot();
    for write in ["delete from people", "insert into people values (3)", "drop table people"] {
        assert!(w.rebuild_snapshot(&snap, write, "id", "c").is_err(), "{write} must not run");
        assert!(w.changes(&snap, write, "id", &[], &mut |_| Ok(())).is_err(), "{write} must not run");
    }
    assert_eq!(w.snapshot_info(&snap).unwrap(), None, "nothing was written for a refused model");
    let p = w.preview("select count(*) as n from people", 1).unwrap();
    assert_eq!(p.rows[0][0], serde_json::json!(2), "people is whole");
    let nowhere = Snapshot { schema: "missing_snaps".into(), model: "people".into() };
    let rebuild = w.rebuild_snapshot(&nowhere, MODEL, "id", "c").unwrap_err().to_string();
    let check = w.check_schema("missing_snaps").unwrap_err().to_string();
    named(&rebuild, &check);
    w.check_schema("sluice").unwrap();
    drop(fake);
}

pub(crate) fn odd_ids_survive_the_round_trip_and_only_those_ids_are_scanned<F: Fake, W: WarehouseDiff + Warehouse>(
    setup: fn(&str) -> Setup<F, W>,
    t: Types,
) {
    let Setup { fake: _fake, mut w, _dir } = setup(&format!(
        "CREATE TABLE people (id STRING, v {});
         INSERT INTO people VALUES ('tab' || char(9) || 'here', 1), ('back\\slash', 2), ('it''s', 3), ('é', 4), ('plain', 5);",
        t.int
    ));
    let snap = Snapshot { schema: "sluice".into(), model: "a \"model\"`; drop table people".into() };
    assert_eq!(w.rebuild_snapshot(&snap, MODEL, "id", "c").unwrap().rows, 5);
    assert_eq!(changes(&mut w, &snap, &[]), vec![]);
    let odd = ["tab\there", "back\\slash", "it's", "é"];
    let mut want: Vec<String> = odd.iter().map(|i| format!("+{i}")).collect();
    want.sort();
    assert_eq!(ids(&changes(&mut w, &snap, &odd)), want);
    let delta = DiffDelta {
        upserts: vec![("it's".into(), 7), ("tab\there".into(), DUPLICATED)],
        gone: vec!["back\\slash".into()],
    };
    let g = w.snapshot_info(&snap).unwrap().unwrap().generation;
    w.advance_snapshot(&snap, &delta, g).unwrap();
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+back\\slash", "+it's", "+tab\there"]);
    let only: Vec<String> = ["é", "it's", "nope", "back\\slash"].iter().map(|s| s.to_string()).collect();
    let mut rows = vec![];
    w.scan(MODEL, "id", IdOrder::Text, &ScanNeeds { only_ids: Some(only), ..Default::default() }, &mut |r| {
        rows.push(r.id.unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, ["back\\slash", "it's", "é"]);
    let none = ScanNeeds { only_ids: Some(vec![]), ..Default::default() };
    w.scan(MODEL, "id", IdOrder::Text, &none, &mut |_| Err("no row may come".into())).unwrap();
}
