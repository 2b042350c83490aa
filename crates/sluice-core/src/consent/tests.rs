//! Rule tests (R1–R5, R12) and a property test against an independent reference.

use super::*;
use crate::config::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

fn ws(
    policy: Policy,
    unmapped: UnmappedModels,
    cats: &[(&str, bool, &[&str])],
    dests: &[(&str, &str)],
) -> WorkspaceFile {
    WorkspaceFile {
        workspace: WorkspaceSettings { policy, unmapped_models: unmapped, ..Default::default() },
        alerts: vec![],
        sources: vec![],
        destinations: dests
            .iter()
            .map(|(id, kind)| DestinationConfig {
                id: id.to_string(),
                name: None,
                kind: kind.to_string(),
                enabled: true,
                settings: Default::default(),
                consent_policy: None,
                on_withdrawal: Default::default(),
            })
            .collect(),
        consent_categories: cats
            .iter()
            .map(|(id, enabled, ds)| CategoryConfig {
                id: id.to_string(),
                name: id.to_string(),
                destinations: ds.iter().map(|d| d.to_string()).collect(),
                enabled: *enabled,
            })
            .collect(),
        models: vec![],
    }
}

fn model(consent: &[(&str, &str)]) -> ModelConfig {
    ModelConfig {
        id: "m".into(),
        source: "s".into(),
        sql: "select 1".into(),
        unique_id: "id".into(),
        consent: consent.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        mappings: vec![],
        schedule: None,
    }
}

const COLS: [&str; 3] = ["ads", "analytics", "perso"];

fn decide(w: &WorkspaceFile, m: &ModelConfig, dest: &str, row: [Value; 3]) -> Verdict {
    let gate = Gate::build(w, &crate::catalog::TestCatalog, m, dest, &|c| COLS.iter().position(|x| *x == c));
    gate.decide(|i| parse_consent(&row[i]))
}

const CONNECTIONS: &str = "connections";
const WEBHOOK: &str = "webhook";

#[test]
fn r1_unmapped_destination_receives_everything() {
    let w = ws(Policy::All, UnmappedModels::Block, &[("C1", true, &["a"])], &[("a", WEBHOOK), ("b", WEBHOOK)]);
    let m = model(&[("C1", "ads")]);
    assert_eq!(decide(&w, &m, "b", [json!(false), json!(null), json!(null)]), Verdict::Send);
    assert_eq!(decide(&w, &m, "a", [json!(false), json!(null), json!(null)]), Verdict::Withhold(vec![0]));
}

#[test]
fn r2_all_and_any() {
    let cats: &[(&str, bool, &[&str])] = &[("C1", true, &["a"]), ("C2", true, &["a"])];
    let dests = &[("a", WEBHOOK)];
    let m = model(&[("C1", "ads"), ("C2", "analytics")]);
    let all = ws(Policy::All, UnmappedModels::Allow, cats, dests);
    assert_eq!(decide(&all, &m, "a", [json!(true), json!("TRUE"), json!(null)]), Verdict::Send);
    assert_eq!(decide(&all, &m, "a", [json!(true), json!("f"), json!(null)]), Verdict::Withhold(vec![1]));
    assert_eq!(decide(&all, &m, "a", [json!(0), json!("no"), json!(null)]), Verdict::Withhold(vec![0, 1]));
    let any = ws(Policy::Any, UnmappedModels::Allow, cats, dests);
    assert_eq!(decide(&any, &m, "a", [json!(true), json!(false), json!(null)]), Verdict::Send);
    assert_eq!(decide(&any, &m, "a", [json!(false), json!(null), json!(null)]), Verdict::Withhold(vec![0, 1]));
}

#[test]
fn r3_missing_column_counts_false() {
    let w = ws(
        Policy::All,
        UnmappedModels::Allow,
        &[("C1", true, &["a"]), ("C2", true, &["b"])],
        &[("a", WEBHOOK), ("b", WEBHOOK)],
    );
    let m = model(&[("C1", "ads")]);
    assert_eq!(decide(&w, &m, "a", [json!(true), json!(true), json!(true)]), Verdict::Send);
    assert_eq!(decide(&w, &m, "b", [json!(true), json!(true), json!(true)]), Verdict::Withhold(vec![0]));
}

#[test]
fn r4_unmapped_model_allow_or_block() {
    let cats: &[(&str, bool, &[&str])] = &[("C1", true, &["a"])];
    let dests = &[("a", WEBHOOK), ("free", WEBHOOK)];
    let m = model(&[]);
    let allow = ws(Policy::All, UnmappedModels::Allow, cats, dests);
    assert_eq!(
        Gate::build(&allow, &crate::catalog::TestCatalog, &m, "a", &|_| None),
        Gate::Open(OpenReason::UnmappedModel)
    );
    let block = ws(Policy::All, UnmappedModels::Block, cats, dests);
    assert_eq!(decide(&block, &m, "a", [json!(true), json!(true), json!(true)]), Verdict::Withhold(vec![0]));
    assert_eq!(decide(&block, &m, "free", [json!(false), json!(false), json!(false)]), Verdict::Send);
    // a mapping to a disabled category still counts as a mapping: R4 does not apply, R3 does
    let w = ws(Policy::All, UnmappedModels::Allow, &[("C1", true, &["a"]), ("OFF", false, &["a"])], dests);
    assert_eq!(
        decide(&w, &model(&[("OFF", "ads")]), "a", [json!(true), json!(true), json!(true)]),
        Verdict::Withhold(vec![0])
    );
}

#[test]
fn r5_connections_never_filtered() {
    let w = ws(Policy::All, UnmappedModels::Block, &[("C1", true, &["conn"])], &[("conn", CONNECTIONS)]);
    let m = model(&[("C1", "ads")]);
    assert_eq!(decide(&w, &m, "conn", [json!(false), json!(false), json!(false)]), Verdict::Send);
}

#[test]
fn r12_disabled_category_ignored() {
    let w = ws(Policy::All, UnmappedModels::Allow, &[("C1", false, &["a"]), ("C2", true, &["a"])], &[("a", WEBHOOK)]);
    let m = model(&[("C1", "ads"), ("C2", "analytics")]);
    assert_eq!(decide(&w, &m, "a", [json!(false), json!(true), json!(null)]), Verdict::Send);
    let w = ws(Policy::All, UnmappedModels::Allow, &[("C1", false, &["a"])], &[("a", WEBHOOK)]);
    assert_eq!(decide(&w, &m, "a", [json!(false), json!(false), json!(false)]), Verdict::Send, "all disabled → R1");
}

#[test]
fn consent_values_fail_closed() {
    for v in [json!(true), json!(1), json!("true"), json!("TRUE"), json!("t"), json!("T"), json!("1")] {
        assert_eq!(parse_consent(&v), ConsentValue::Granted, "{v}");
    }
    for v in [json!(false), json!(0), json!("False"), json!("f"), json!("0")] {
        assert_eq!(parse_consent(&v), ConsentValue::Refused, "{v}");
    }
    for v in [json!(null), json!("yes"), json!(2), json!(1.5), json!(""), json!({}), json!([true])] {
        assert_eq!(parse_consent(&v), ConsentValue::Invalid, "{v}");
    }
}

// ---- property test against a reference written from the SPEC text, independently of Gate ----

/// Reference of R1–R5: returns (send, refusing category ids).
fn reference(
    cats: &[(String, bool, Vec<usize>)],
    dest: usize,
    connections: bool,
    consent_map: &BTreeMap<String, usize>,
    policy: Policy,
    block_unmapped: bool,
    row: &[Value],
) -> (bool, Vec<String>) {
    if connections {
        return (true, vec![]);
    }
    let s: Vec<&String> = cats.iter().filter(|(_, en, ds)| *en && ds.contains(&dest)).map(|(id, _, _)| id).collect();
    if s.is_empty() {
        return (true, vec![]);
    }
    if consent_map.is_empty() && !block_unmapped {
        return (true, vec![]);
    }
    let ok = |id: &String| -> bool {
        let Some(col) = consent_map.get(id) else { return false };
        match &row[*col] {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64() == Some(1),
            Value::String(x) => ["true", "t", "1"].contains(&x.to_lowercase().as_str()),
            _ => false,
        }
    };
    let refused: Vec<String> = s.iter().filter(|c| !ok(c)).map(|c| c.to_string()).collect();
    let send = match policy {
        Policy::All => refused.is_empty(),
        Policy::Any => refused.len() < s.len(),
    };
    (send, if send { vec![] } else { refused })
}

fn cell() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        Just(json!(null)),
        Just(json!(1)),
        Just(json!(0)),
        Just(json!(7)),
        Just(json!("TRUE")),
        Just(json!("f")),
        Just(json!("maybe")),
    ]
}

proptest! {
    #[test]
    #[allow(clippy::needless_range_loop)]
    fn gate_matches_reference(
        ncat in 0usize..5,
        ndest in 1usize..4,
        cat_enabled in proptest::collection::vec(any::<bool>(), 5),
        cat_dests in proptest::collection::vec(proptest::collection::vec(0usize..3, 0..3), 5),
        mapped in proptest::collection::vec(proptest::option::of(0usize..4), 5),
        connections in proptest::collection::vec(any::<bool>(), 3),
        any_policy in any::<bool>(),
        dest_policy in proptest::collection::vec(proptest::option::of(any::<bool>()), 3),
        block in any::<bool>(),
        rows in proptest::collection::vec(proptest::collection::vec(cell(), 4), 1..8),
    ) {
        let policy = if any_policy { Policy::Any } else { Policy::All };
        let cats: Vec<(String, bool, Vec<usize>)> = (0..ncat)
            .map(|i| (format!("C{i}"), cat_enabled[i], cat_dests[i].iter().copied().filter(|d| *d < ndest).collect()))
            .collect();
        let consent_map: BTreeMap<String, usize> =
            (0..ncat).filter_map(|i| mapped[i].map(|c| (format!("C{i}"), c))).collect();
        let w = WorkspaceFile {
            workspace: WorkspaceSettings {
                policy,
                unmapped_models: if block { UnmappedModels::Block } else { UnmappedModels::Allow },
                ..Default::default()
            },
            destinations: (0..ndest).map(|d| DestinationConfig {
                id: format!("d{d}"), name: None,
                kind: if connections[d] { CONNECTIONS } else { WEBHOOK }.into(),
                enabled: true, settings: Default::default(),
                consent_policy: dest_policy[d].map(|a| if a { Policy::Any } else { Policy::All }),
                on_withdrawal: Default::default(),
            }).collect(),
            consent_categories: cats.iter().map(|(id, en, ds)| CategoryConfig {
                id: id.clone(), name: id.clone(), enabled: *en,
                destinations: { let mut v: Vec<String> = ds.iter().map(|d| format!("d{d}")).collect(); v.dedup(); v },
            }).collect(),
            ..Default::default()
        };
        let m = ModelConfig {
            id: "m".into(), source: "s".into(), sql: "x".into(), unique_id: "id".into(),
            consent: consent_map.iter().map(|(k, c)| (k.clone(), format!("col{c}"))).collect(),
            mappings: vec![],
            schedule: None,
        };
        for d in 0..ndest {
            let gate = Gate::build(&w, &crate::catalog::TestCatalog, &m, &format!("d{d}"), &|c| c.strip_prefix("col").and_then(|n| n.parse().ok()));
            for row in &rows {
                // SPEC §12: a destination's own consent_policy overrides the workspace's
                let effective = dest_policy[d].map(|a| if a { Policy::Any } else { Policy::All }).unwrap_or(policy);
                let (send, refused) = reference(&cats, d, connections[d], &consent_map, effective, block, row);
                let got = gate.decide(|i| parse_consent(&row[i]));
                match got {
                    Verdict::Send => prop_assert!(send, "engine sent, reference withholds: {refused:?}"),
                    Verdict::Withhold(idx) => {
                        prop_assert!(!send, "engine withheld, reference sends");
                        let mut ids: Vec<String> = idx.iter().map(|i| gate.required()[*i].category.clone()).collect();
                        let mut want = refused.clone();
                        ids.sort(); want.sort();
                        prop_assert_eq!(ids, want);
                    }
                }
            }
        }
    }
}

#[test]
fn r5_with_r4_a_model_without_mappings_stamps_nothing_under_allow_and_no_for_everything_under_block() {
    let cats: &[(&str, bool, &[&str])] = &[("C1", true, &["conn"]), ("C2", false, &["conn"]), ("C3", true, &[])];
    let allow = ws(Policy::All, UnmappedModels::Allow, cats, &[("conn", CONNECTIONS)]);
    let block = ws(Policy::All, UnmappedModels::Block, cats, &[("conn", CONNECTIONS)]);
    assert_eq!(stamp_columns(&allow, &model(&[])), vec![]);
    // every enabled category, stamped "no" (no column)
    assert_eq!(stamp_columns(&block, &model(&[])), vec![("C1", None), ("C3", None)]);
    // a model with mappings stamps its mapped categories from their columns, whatever the setting
    assert_eq!(stamp_columns(&block, &model(&[("C1", "ads")])), vec![("C1", Some("ads"))]);
}
