//! The snapshot contract (rest_diff_tests.rs) against the Databricks fake (Statement Execution
//! API 2.0 answering from SQLite; the snapshot schema an attached file).

use super::*;
use crate::rest_diff_tests::{self as contract, Setup, Types};
use sluice_testkit::databricks::{FakeDatabricks, TOKEN, WAREHOUSE_ID};

const TYPES: Types = Types { int: "BIGINT", boolean: "BOOLEAN" };

fn setup(seed: &str) -> Setup<FakeDatabricks, DatabricksWarehouse> {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDatabricks::start(&dir.path().join("dbx.db"));
    fake.sql(seed);
    fake.create_schema("sluice");
    let w = DatabricksWarehouse::open(&DbxOptions {
        base: fake.url().to_string(),
        token: TOKEN.into(),
        warehouse_id: WAREHOUSE_ID.into(),
        catalog: None,
        schema: None,
        statement_timeout: None,
    })
    .unwrap();
    Setup { _dir: dir, fake, w }
}

#[test]
fn the_warehouse_returns_only_what_changed_since_the_snapshot() {
    contract::the_warehouse_returns_only_what_changed_since_the_snapshot(setup, TYPES);
}

#[test]
fn a_null_column_changes_the_hash() {
    contract::a_null_column_changes_the_hash(setup);
}

#[test]
fn a_model_never_runs_with_write_access_and_a_missing_schema_is_named() {
    contract::a_model_never_runs_with_write_access_and_a_missing_schema_is_named(setup, TYPES, |rebuild, check| {
        let e = rebuild;
        assert!(e.contains("missing_snaps") && e.contains("CREATE SCHEMA IF NOT EXISTS missing_snaps"), "{e}");
        let e = check;
        assert!(e.contains("GRANT USE SCHEMA, CREATE TABLE, MODIFY, SELECT ON SCHEMA missing_snaps"), "{e}");
    });
}

#[test]
fn odd_ids_survive_the_round_trip_and_only_those_ids_are_scanned() {
    contract::odd_ids_survive_the_round_trip_and_only_those_ids_are_scanned(setup, TYPES);
}
