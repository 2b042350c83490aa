//! The snapshot contract against the real PostgreSQL server.

use super::super::tests::setup;
use crate::diff::{DiffDelta, DiffItem, Snapshot, WarehouseDiff};
use crate::WarehouseError;

const MODEL: &str = "select * from people";

fn changes(w: &mut super::PostgresWarehouse, snap: &Snapshot, retry: &[&str]) -> Vec<DiffItem> {
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
    items
        .iter()
        .map(|i| match i {
            DiffItem::Upsert { id, .. } => format!("+{id}"),
            DiffItem::Gone(id) => format!("-{id}"),
            DiffItem::NullId => "null".into(),
        })
        .collect()
}

fn snapshot(schema: &str) -> Snapshot {
    Snapshot { schema: schema.to_string(), model: "people".into() }
}

#[test]
fn the_warehouse_returns_only_what_changed_since_the_snapshot() {
    let (mut w, schema) = setup(
        "CREATE TABLE people (id int, email text, ads boolean);
         INSERT INTO people VALUES (1,'a',true),(2,'b',false),(3,'c',true),(4,'d',null),(NULL,'n',true),(6,'x',true),(6,'y',true);",
    );
    let snap = snapshot(&schema);
    assert_eq!(w.snapshot_info(&snap).unwrap(), None);
    let info = w.rebuild_snapshot(&snap, MODEL, "id", "cfg1").unwrap();
    // NULL ids are left out; a duplicated id is in, with a hash no row has
    assert_eq!((info.generation, info.rows, info.config_hash.as_str()), (1, 5, "cfg1"));
    assert_eq!(w.snapshot_info(&snap).unwrap(), Some(info.clone()));
    // nothing changed: only the duplicated id comes back (its rows: the sync rejects it), and
    // the NULL id (counted)
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+6", "+6", "null"]);
    // a data change, a consent change, a delete and an insert; a retry of an unchanged row
    w.client
        .batch_execute(&format!(
            "SET search_path = {schema};
             UPDATE people SET email = 'b2' WHERE id = 2; UPDATE people SET ads = true WHERE id = 4;
             DELETE FROM people WHERE id = 3; INSERT INTO people VALUES (5,'e',false);"
        ))
        .unwrap();
    let seen = changes(&mut w, &snap, &["1", "99"]);
    assert_eq!(ids(&seen), ["+1", "+2", "-3", "+4", "+5", "+6", "+6", "null"]);
    // advancing with what the pass saw (the duplicates left out) leaves only them
    // (the duplicated id keeps the hash no row has)
    let delta = DiffDelta::of(&seen, &["6".to_string()].into());
    assert!(delta.upserts.contains(&("6".to_string(), crate::diff::DUPLICATED)), "{delta:?}");
    assert_eq!(w.advance_snapshot(&snap, &delta, 1).unwrap(), 2);
    assert_eq!(ids(&changes(&mut w, &snap, &[])), ["+6", "+6", "null"]);
    assert_eq!(w.snapshot_info(&snap).unwrap().map(|i| (i.generation, i.rows)), Some((2, 5)));
    // compare-and-set: a run that started at generation 1 cannot move it
    let e = w.advance_snapshot(&snap, &delta, 1).unwrap_err();
    assert!(matches!(e, WarehouseError::Snapshot { .. }) && e.to_string().contains("generation"), "{e}");
    // a rebuild starts from the model as it is and bumps the generation
    let info = w.rebuild_snapshot(&snap, MODEL, "id", "cfg2").unwrap();
    assert_eq!((info.generation, info.rows, info.config_hash.as_str()), (3, 5, "cfg2"));
}

#[test]
fn a_model_never_runs_with_write_access_and_a_missing_schema_is_named() {
    let (mut w, schema) = setup("CREATE TABLE people (id int); INSERT INTO people VALUES (1),(2); CREATE SEQUENCE s;");
    let snap = snapshot(&schema);
    // a model that writes (a sequence advances even in a SELECT) is refused by the read-only transaction
    let writing = format!("select nextval('{schema}.s') as id");
    let e = w.rebuild_snapshot(&snap, &writing, "id", "c").unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let n: i64 = w.client.query_one(&format!("select last_value from {schema}.s"), &[]).unwrap().get(0);
    let called: bool = w.client.query_one(&format!("select is_called from {schema}.s"), &[]).unwrap().get(0);
    assert_eq!((n, called), (1, false), "the sequence never moved");
    let nowhere = Snapshot { schema: format!("{schema}_missing"), model: "people".into() };
    let e = w.rebuild_snapshot(&nowhere, MODEL, "id", "c").unwrap_err();
    assert!(e.to_string().contains(&format!("{schema}_missing")), "{e}");
}

#[test]
fn odd_ids_and_model_names_survive_the_round_trip() {
    let (mut w, schema) = setup(
        "CREATE TABLE people (id text, v int);
         INSERT INTO people VALUES (E'tab\\there',1),(E'back\\\\slash',2),(E'new\\nline',3),('é',4);",
    );
    let snap = Snapshot { schema: schema.clone(), model: "a \"model\"; drop table people".into() };
    assert_eq!(w.rebuild_snapshot(&snap, MODEL, "id", "c").unwrap().rows, 4);
    assert_eq!(changes(&mut w, &snap, &[]), vec![]);
    assert_eq!(ids(&changes(&mut w, &snap, &["é"])), ["+é"]);
}

#[test]
fn a_least_privileged_reader_with_its_own_schema_keeps_snapshots() {
    // the role README recommends: read-only by default, SELECT on the models' tables, and a
    // schema of its own for snapshots
    let (mut admin, schema) =
        setup("CREATE TABLE people (id int, email text); INSERT INTO people VALUES (1,'a'),(2,'b');");
    let role = sluice_testkit::unique_name("reader");
    admin
        .client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; ALTER ROLE {role} SET default_transaction_read_only = on;
             GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role};
             CREATE SCHEMA {role}_snap AUTHORIZATION {role};"
        ))
        .unwrap();
    let url = sluice_testkit::pg_url().replacen("postgres@", &format!("{role}@"), 1);
    let mut w =
        crate::postgres::PostgresWarehouse::connect(&crate::postgres::PgOptions { url, ..Default::default() }).unwrap();
    let snap = Snapshot { schema: format!("{role}_snap"), model: "people".into() };
    let sql = format!("select * from {schema}.people");
    assert_eq!(w.rebuild_snapshot(&snap, &sql, "id", "c").unwrap().rows, 2);
    admin.client.batch_execute(&format!("UPDATE {schema}.people SET email = 'x' WHERE id = 2")).unwrap();
    let mut seen = vec![];
    w.changes(&snap, &sql, "id", &[], &mut |i| {
        seen.push(i);
        Ok(())
    })
    .unwrap();
    assert_eq!(ids(&seen), ["+2"]);
    assert_eq!(w.advance_snapshot(&snap, &DiffDelta::of(&seen, &Default::default()), 1).unwrap(), 2);
    // and it still cannot write anywhere else
    let e = w.rebuild_snapshot(&Snapshot { schema: schema.clone(), model: "people".into() }, &sql, "id", "c");
    assert!(e.unwrap_err().to_string().contains(&schema));
}

/// The id column's type in the snapshot table.
fn key_type(w: &mut super::PostgresWarehouse, snap: &Snapshot) -> String {
    w.client
        .query_one(
            "SELECT format_type(atttypid, NULL) FROM pg_attribute
             WHERE attrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND attname = 'id'",
            &[&snap.schema, &snap.table()],
        )
        .unwrap()
        .get(0)
}

#[test]
fn integer_ids_are_kept_natively_and_an_older_text_snapshot_still_diffs() {
    let (mut w, schema) = setup(
        "CREATE TABLE people (id bigint PRIMARY KEY, email text, ads boolean);
         INSERT INTO people SELECT g, 'u' || g, g % 2 = 0 FROM generate_series(1, 500) g;",
    );
    let snap = snapshot(&schema);
    w.rebuild_snapshot(&snap, MODEL, "id", "c").unwrap();
    assert_eq!(key_type(&mut w, &snap), "bigint");
    w.client
        .batch_execute(&format!(
            "SET search_path = {schema};
             UPDATE people SET email = 'changed' WHERE id IN (7, 300); UPDATE people SET ads = NOT ads WHERE id = 42;
             DELETE FROM people WHERE id = 9; INSERT INTO people VALUES (501, 'new', true), (-3, 'neg', false);"
        ))
        .unwrap();
    // in id order (numeric), a retried id included, one no integer model can hold ignored
    let want = ["+-3", "+7", "-9", "+42", "+100", "+300", "+501"];
    let native = changes(&mut w, &snap, &["100", "not-a-number"]);
    assert_eq!(ids(&native), want);
    // a snapshot keyed by text (as built before integer keys) gives the same answer
    w.client.batch_execute(&format!("ALTER TABLE {schema}.{} ALTER COLUMN id TYPE text", snap.table())).unwrap();
    assert_eq!(key_type(&mut w, &snap), "text");
    let mut as_text = ids(&changes(&mut w, &snap, &["100"]));
    as_text.sort();
    let mut sorted = want.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(as_text, sorted);
    // advancing either kind keeps the row count exact without counting the table
    let info = w.snapshot_info(&snap).unwrap().unwrap();
    let delta = DiffDelta::of(&native, &Default::default());
    let next = w.advance_snapshot(&snap, &delta, info.generation).unwrap();
    let after = w.snapshot_info(&snap).unwrap().unwrap();
    assert_eq!((after.generation, after.rows), (next, 501));
    assert_eq!(changes(&mut w, &snap, &[]), vec![]);
}

#[test]
fn a_model_read_from_its_primary_key_is_merge_joined_and_diffs_like_any_other() {
    let (mut w, schema) = setup(
        "CREATE TABLE people (id int PRIMARY KEY, email text);
         INSERT INTO people SELECT g, 'u' || g FROM generate_series(1, 2000) g; ANALYZE people;",
    );
    let ordered = format!("SELECT q.id FROM (select * from {schema}.people) AS q ORDER BY q.id");
    let mut tx = w.client.transaction().unwrap();
    assert!(super::index_ordered(&mut tx, &ordered).unwrap(), "a primary key serves the order");
    let unordered = format!(
        "SELECT q.id FROM (with x as materialized (select * from {schema}.people) select * from x) AS q ORDER BY q.id"
    );
    assert!(!super::index_ordered(&mut tx, &unordered).unwrap(), "a materialized CTE must be sorted");
    drop(tx);
    let snap = snapshot(&schema);
    w.rebuild_snapshot(&snap, MODEL, "id", "c").unwrap();
    w.client
        .batch_execute(&format!(
            "SET search_path = {schema}; UPDATE people SET email = 'x' WHERE id % 500 = 0; DELETE FROM people WHERE id = 3;"
        ))
        .unwrap();
    let want = ["-3", "+500", "+1000", "+1500", "+2000"];
    assert_eq!(ids(&changes(&mut w, &snap, &[])), want);
    // the same model, hashed instead of merged, finds the same
    let cte = "with x as materialized (select * from people) select * from x";
    let mut out = vec![];
    w.changes(&snap, cte, "id", &[], &mut |i| {
        out.push(i);
        Ok(())
    })
    .unwrap();
    assert_eq!(ids(&out), want);
}
