//! The snapshot contract (rest_diff_tests.rs) against the BigQuery fake (REST API v2 answering
//! from SQLite; the snapshot dataset an attached SQLite file).

use super::*;
use crate::rest_diff_tests::{self as contract, Setup, Types};
use sluice_testkit::bigquery::{FakeBigQuery, ACCOUNT_KEY, PROJECT};

const TYPES: Types = Types { int: "INT64", boolean: "BOOL" };

fn setup(seed: &str) -> Setup<FakeBigQuery, BigQueryWarehouse> {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBigQuery::start(&dir.path().join("bq.db"));
    fake.sql(seed);
    fake.create_dataset("sluice");
    let key = fake.key_file(dir.path(), ACCOUNT_KEY);
    let w = BigQueryWarehouse::open(&BqOptions {
        project: PROJECT.into(),
        credentials_file: key,
        location: None,
        endpoint: Some(fake.url().to_string()),
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
fn a_model_never_runs_with_write_access_and_a_missing_dataset_is_named() {
    contract::a_model_never_runs_with_write_access_and_a_missing_schema_is_named(setup, TYPES, |rebuild, check| {
        let e = rebuild;
        assert!(e.contains("missing_snaps") && e.contains("roles/bigquery.dataEditor"), "{e}");
        let e = check;
        assert!(e.contains(&format!("CREATE SCHEMA `{PROJECT}`.missing_snaps")), "{e}");
    });
}

#[test]
fn odd_ids_survive_the_round_trip_and_only_those_ids_are_scanned() {
    contract::odd_ids_survive_the_round_trip_and_only_those_ids_are_scanned(setup, TYPES);
}
