//! The lockstep harness of `{bigquery,databricks,snowflake}_warehouse_diff.rs`: two workspaces
//! on the same warehouse tables, A with the default local diff and B with `diff: warehouse`,
//! each with its own state store and real HTTP receiver, synced through the same pseudo-random
//! data changes and delivery failures; after every sync what each destination accepted and the
//! delivery counts must be equal.

use super::{hook, Env};
use sluice_engine::{RunReport, Workspace};
use sluice_testkit::Reply;

pub const PATHS: [&str; 2] = ["/ads", "/all"];

/// The names and literals a warehouse's tables are written with.
pub struct Dialect {
    /// The source's id in the workspace.
    pub source: &'static str,
    pub people: &'static str,
    pub dups: &'static str,
    pub id: &'static str,
    pub email: &'static str,
    pub ads: &'static str,
    /// The literals `ads` is set to: true, false and NULL.
    pub bools: [&'static str; 3],
}

/// Lower-case names and 1/0 booleans (the SQLite-backed fakes), for source `source`.
pub const fn lower(source: &'static str) -> Dialect {
    Dialect { source, people: "people", dups: "dups", id: "id", email: "email", ads: "ads", bools: ["1", "0", "NULL"] }
}

/// The models (`people` and `dups`, consent from `ads`) and their two webhook destinations.
pub fn yaml(d: &Dialect) -> String {
    format!(
        "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
models:
  - {{id: people, source: {src}, unique_id: {id}, consent: {{C0004: {ads}}}, sql: 'select {id}, {email}, {ads} from {people}',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
  - {{id: dups, source: {src}, unique_id: {id}, consent: {{C0004: {ads}}}, sql: 'select {id}, {email}, {ads} from {dups}',
     mappings: [{{destination: ads}}, {{destination: all}}]}}
",
        hook("ads"),
        hook("all"),
        src = d.source,
        id = d.id,
        email = d.email,
        ads = d.ads,
        people = d.people,
        dups = d.dups,
    )
}

/// What each destination accepted in one sync (sorted), each mapping's counts, and rejections.
pub type Outcome = (Vec<Vec<String>>, Vec<(String, [u64; 8])>, u64);

/// What a destination accepted in one sync (sorted) and the counts that must agree.
pub fn outcome(env: &Env, r: &RunReport) -> Outcome {
    let received = PATHS
        .iter()
        .map(|p| {
            let mut v: Vec<String> = env.rx.items(p).iter().map(|i| i.to_string()).collect();
            v.sort();
            v
        })
        .collect();
    let counts = r
        .mappings
        .iter()
        .map(|m| {
            (
                m.destination.clone(),
                [
                    m.added,
                    m.updated,
                    m.deleted,
                    m.delivered,
                    m.failed,
                    m.failed_retryable,
                    m.withheld_by_consent,
                    m.deletes_held_back,
                ],
            )
        })
        .collect();
    (received, counts, r.rejected)
}

pub fn sync(env: &mut Env, ws: &Workspace, model: &str, down: Option<&str>, reject: Option<&str>) -> RunReport {
    env.rx.clear();
    if let Some(p) = down {
        env.rx.answer_path(p, Reply::Status(503));
    }
    if let Some(p) = reject {
        env.rx.answer_path(p, Reply::Status(400));
    }
    let r = env.sync(ws, model);
    for p in PATHS {
        env.rx.clear_path(p);
    }
    r
}

/// A small deterministic generator (the same sequence every run).
pub struct Lcg(u64);

impl Lcg {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One step's data changes, run by `sql`.
fn change(d: &Dialect, sql: &dyn Fn(&str), rng: &mut Lcg, step: u64) {
    let Dialect { people, dups, id: id_col, email, ads, bools, .. } = d;
    let bool_or_null = |v: u64| bools[v as usize];
    for _ in 0..1 + rng.next(4) {
        let id = 1 + rng.next(24);
        let statement = match rng.next(8) {
            0 | 1 => format!("UPDATE {people} SET {email} = 'e{step}-{id}' WHERE {id_col} = {id}"),
            2 | 3 => format!("UPDATE {people} SET {ads} = {} WHERE {id_col} = {id}", bool_or_null(rng.next(3))),
            4 => format!("DELETE FROM {people} WHERE {id_col} = {id}"),
            5 => format!(
                "INSERT INTO {people} SELECT {id}, 'n{step}', {} WHERE NOT EXISTS (SELECT 1 FROM {people} WHERE {id_col} = {id})",
                bool_or_null(rng.next(3))
            ),
            6 => format!("INSERT INTO {dups} VALUES ({}, 'd{step}-{id}', {})", 1 + id % 5, bool_or_null(rng.next(3))),
            _ => format!("DELETE FROM {dups} WHERE {id_col} = {}", 1 + id % 5),
        };
        sql(&statement);
    }
    if rng.next(4) == 0 {
        sql(&format!("INSERT INTO {dups} VALUES (NULL, 'null{step}', {})", bools[0]));
    }
}

/// Syncs `people` and `dups` in lockstep through 16 steps of changes (run by `sql`) and faults,
/// then once cleanly; `workspace(env, diff)` builds A (`diff` false) and B (`diff` true).
pub fn lockstep(d: &Dialect, sql: &dyn Fn(&str), workspace: &dyn Fn(&Env, bool) -> Workspace) {
    let (mut a, mut b) = (Env::new(""), Env::new(""));
    let (wa, wb) = (workspace(&a, false), workspace(&b, true));
    let mut rng = Lcg(11);
    let mut sparse = 0;
    for step in 0..16u64 {
        if step > 0 {
            change(d, sql, &mut rng, step);
        }
        // identical faults on both sides: a destination down (retryable failures), or
        // rejecting (permanent ones)
        let down = match rng.next(5) {
            0 => Some(PATHS[rng.next(2) as usize]),
            _ => None,
        };
        let reject = match rng.next(8) {
            0 => Some(PATHS[rng.next(2) as usize]).filter(|p| Some(*p) != down),
            _ => None,
        };
        for model in ["people", "dups"] {
            let ra = sync(&mut a, &wa, model, down, reject);
            let rb = sync(&mut b, &wb, model, down, reject);
            let ctx = format!("step {step}, model {model}, down {down:?}, reject {reject:?}");
            assert_eq!(outcome(&a, &ra), outcome(&b, &rb), "{ctx} (left: local diff, right: warehouse diff)");
            if rb.diff_pass.as_deref() == Some("sparse") {
                sparse += 1;
                // (`dups` is mostly duplicated ids, read on every pass until unique again)
                if model == "people" {
                    assert!(
                        rb.extracted < ra.extracted,
                        "{ctx}: a sparse pass read {} of {} rows",
                        rb.extracted,
                        ra.extracted
                    );
                }
            }
        }
    }
    // one clean sync at the end settles every retry the same way
    for model in ["people", "dups"] {
        let ra = sync(&mut a, &wa, model, None, None);
        let rb = sync(&mut b, &wb, model, None, None);
        assert_eq!(outcome(&a, &ra), outcome(&b, &rb), "final sync of {model}");
    }
    assert!(sparse >= 10, "B took only {sparse} sparse passes");
}
