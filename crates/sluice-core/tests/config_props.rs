//! Hostile configuration values through validation and schedules (issue 8): schedules, numbers
//! (NaN, inf, huge, negative), ids with odd characters. Never a panic; every refusal names the
//! entry and field at fault; what passes is safe to use.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use sluice_core::schedule::Schedule;
use sluice_core::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.,-]{0,70}",
        "\\PC{0,40}",
        "\\p{Cc}{1,3}",
        "(every )?-?[0-9]{1,25} ?(m|h|d|s|min|minutes|hours|days)?",
        "[*0-9/,LW#?-]{1,8}( [*0-9/,LW#?-]{1,8}){3,6}",
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1e300),
        Just(-0.5),
        Just(0.5)
    ]
}

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        Just(DateTime::<Utc>::MAX_UTC),
        Just(DateTime::<Utc>::MIN_UTC),
        (-8_000_000_000_000i64..8_000_000_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).single().unwrap_or_default()),
    ]
}

fn workspace(ids: Vec<String>, schedule: String, fraction: f64, timeout: u64) -> WorkspaceFile {
    let yaml = "sources: [{id: dwh, kind: sqlite, path: w.db}, {id: pg, kind: postgres, url: 'postgres://h/db'}]
destinations: [{id: d, kind: file, settings: {path: out.jsonl}}]
consent_categories: [{id: C0004, name: Advertising, destinations: [d]}]
models: [{id: m, source: dwh, sql: select 1, unique_id: id, consent: {C0004: ads}, mappings: [{destination: d}]}]
";
    let mut f = WorkspaceFile::from_yaml(yaml).unwrap();
    f.workspace.max_delete_fraction = fraction;
    if let SourceSettings::Postgres(pg) = &mut f.sources[1].settings {
        pg.statement_timeout_secs = Some(timeout);
    }
    f.models[0].schedule = Some(schedule);
    let mut ids = ids.into_iter();
    let mut next = |old: &str| ids.next().unwrap_or_else(|| old.to_string());
    f.sources[0].id = next("dwh");
    f.models[0].source = f.sources[0].id.clone();
    f.destinations[0].id = next("d");
    f.consent_categories[0].destinations = vec![f.destinations[0].id.clone()];
    f.models[0].mappings[0].destination = f.destinations[0].id.clone();
    f.consent_categories[0].id = next("C0004");
    f.models[0].consent = [(f.consent_categories[0].id.clone(), "ads".to_string())].into();
    f.models[0].id = next("m");
    f
}

const FIELDS: [&str; 7] =
    [".id", ".schedule", ".statement_timeout_secs", "max_delete_fraction", ".source", ".destinations", ".destination"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn schedules_never_panic_and_next_runs_are_checked(s in text(), last in any_time(), now in any_time()) {
        if let Ok(sched) = Schedule::parse(&s) {
            let next = sched.next(Some(last), now);
            if let (Schedule::Every(d), Some(n)) = (&sched, next) {
                prop_assert!(*d <= chrono::Duration::days(schedule::MAX_INTERVAL_DAYS));
                prop_assert!(n >= last);
            }
            let _ = sched.next(None, now);
        }
    }

    #[test]
    fn validation_never_panics_and_every_refusal_names_the_field(
        ids in proptest::collection::vec(text(), 0..4),
        schedule in text(),
        fraction in float(),
        timeout in prop_oneof![any::<u64>(), Just(u64::MAX), Just(0u64), Just(30u64)],
    ) {
        let f = workspace(ids, schedule.clone(), fraction, timeout);
        match validate(f.clone(), &sluice_core::catalog::TestCatalog) {
            Ok(v) => {
                // what passes is safe: ids of the safe alphabet, finite fractions, bounded intervals
                for id in [&v.file.sources[0].id, &v.file.destinations[0].id, &v.file.models[0].id] {
                    prop_assert!(validate::check_id(id).is_none() && !id.contains(','));
                }
                prop_assert!(!v.file.consent_categories[0].id.contains(','));
                prop_assert!((0.0..=1.0).contains(&v.file.workspace.max_delete_fraction));
                prop_assert!(Schedule::parse(&schedule).is_ok());
            }
            Err(errs) => {
                prop_assert!(!errs.0.is_empty());
                for e in &errs.0 {
                    prop_assert!(FIELDS.iter().any(|x| e.at.ends_with(x)) || e.at.contains(").consent."), "unnamed field: {e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
