//! Checkpoint writes of 100k entries on both backends, as a sync writes them (batches of 4096,
//! one transaction each), then the same entries rewritten (updates) and read back in pages.
//! `cargo bench -p sluice-state --bench checkpoint` (PostgreSQL from `SLUICE_TEST_PG_URL`, else
//! the local test database); prints one line per backend and step.

use sluice_state::{CheckpointWrite, Entry, Pending, PostgresState, StateStore};
use std::time::Instant;

const ENTRIES: usize = 100_000;
const BATCH: usize = 4096;

fn writes(round: u64) -> Vec<CheckpointWrite> {
    (0..ENTRIES)
        .map(|i| {
            CheckpointWrite::Put(Entry {
                id: format!("user-{i:08}"),
                held: Some(i as u64 ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                pending: Pending::None,
                proof: None,
            })
        })
        .collect()
}

fn run(name: &str, mut store: StateStore) {
    let m = store.mapping_id("users", "bench").unwrap();
    for (step, round) in [("insert", 1), ("update", 2)] {
        let all = writes(round);
        let t = Instant::now();
        for chunk in all.chunks(BATCH) {
            store.write_checkpoint(m, chunk).unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        println!("{name:<10} {step:<7} {ENTRIES} entries: {s:>6.2} s ({:>8.0} entries/s)", ENTRIES as f64 / s);
    }
    let t = Instant::now();
    let (mut after, mut n) = (None::<String>, 0);
    loop {
        let page = store.checkpoint_page(m, after.as_deref(), 4096).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        n += page.len();
    }
    let s = t.elapsed().as_secs_f64();
    assert_eq!(n, ENTRIES);
    println!("{name:<10} read    {ENTRIES} entries: {s:>6.2} s ({:>8.0} entries/s)", ENTRIES as f64 / s);
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    run("sqlite", StateStore::open(&dir.path().join("sqlite")).unwrap());
    let url = std::env::var("SLUICE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", std::process::id());
    let pg = PostgresState { url: url.clone(), schema: schema.clone() };
    run("postgres", StateStore::open_postgres(&pg, &dir.path().join("pg")).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("drop schema \"{schema}\" cascade")).unwrap();
}
