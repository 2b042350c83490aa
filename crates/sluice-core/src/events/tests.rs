//! R6–R8, and the overview document's reconciliation table row by row.

use super::*;
use crate::config::*;
use serde_json::json;

/// Facebook, Google Ads, Amplitude, Snowflake; `ad` and `analytics` categories as the table says.
fn ws(policy: Policy, ad: &[&str], analytics: &[&str]) -> WorkspaceFile {
    let dest = |id: &str, name: &str| DestinationConfig {
        id: id.into(),
        name: Some(name.into()),
        kind: "webhook".into(),
        enabled: true,
        settings: Default::default(),
        consent_policy: None,
        on_withdrawal: Default::default(),
    };
    let cat = |id: &str, ds: &[&str]| CategoryConfig {
        id: id.into(),
        name: id.into(),
        destinations: ds.iter().map(|d| d.to_string()).collect(),
        enabled: true,
    };
    WorkspaceFile {
        workspace: WorkspaceSettings { policy, ..Default::default() },
        destinations: vec![
            dest("facebook", "Facebook"),
            dest("google_ads", "Google Ads"),
            dest("amplitude", "Amplitude"),
            dest("snowflake", "Snowflake"),
        ],
        consent_categories: vec![cat("ad", ad), cat("analytics", analytics)],
        ..Default::default()
    }
}

/// (destination id, route) for every destination.
fn routes(w: &WorkspaceFile, event: Value) -> Vec<(String, Route)> {
    let (consent, _) = read_consent(&event);
    let integrations = event.get("integrations").and_then(|i| i.as_object());
    w.destinations.iter().map(|d| (d.id.clone(), route(w, d, &consent, integrations))).collect()
}

fn delivered(r: &[(String, Route)]) -> Vec<&str> {
    r.iter().filter(|(_, r)| matches!(r, Route::Deliver { .. })).map(|(d, _)| d.as_str()).collect()
}

fn consent(ad: bool, analytics: bool) -> Value {
    json!({"consent": {"categoryPreferences": {"ad": ad, "analytics": analytics}}})
}

#[test]
fn row1_no_consent_no_integrations_goes_everywhere() {
    let w = ws(Policy::All, &["facebook", "google_ads"], &["amplitude"]);
    for event in [json!({}), json!({"context": {"consent": {}}, "integrations": {}})] {
        assert_eq!(delivered(&routes(&w, event)), vec!["facebook", "google_ads", "amplitude", "snowflake"]);
    }
}

#[test]
fn row2_no_consent_integrations_turn_amplitude_off_and_give_facebook_metadata() {
    let w = ws(Policy::All, &["facebook", "google_ads"], &["amplitude"]);
    let r = routes(&w, json!({"integrations": {"Facebook": {"pixel": "123"}, "Amplitude": false}}));
    assert_eq!(delivered(&r), vec!["facebook", "google_ads", "snowflake"]);
    assert_eq!(r[0].1, Route::Deliver { metadata: Some(json!({"pixel": "123"})) });
    assert_eq!(r[2].1, Route::TurnedOff);
}

#[test]
fn row3_consent_to_ad_only() {
    let w = ws(Policy::All, &["facebook", "google_ads"], &["amplitude", "snowflake"]);
    let r = routes(&w, json!({"context": consent(true, false)}));
    assert_eq!(delivered(&r), vec!["facebook", "google_ads"]);
    assert_eq!(r[2].1, Route::Withheld { categories: vec!["analytics".into()] });
}

#[test]
fn row4_ad_consent_with_integrations_naming_facebook() {
    let w = ws(Policy::All, &["facebook", "google_ads"], &["amplitude", "snowflake"]);
    let r = routes(
        &w,
        json!({"context": consent(true, false), "integrations": {"Facebook": {"x": 1}, "Amplitude": false}}),
    );
    assert_eq!(delivered(&r), vec!["facebook", "google_ads"], "Google Ads gets it though not named");
    assert_eq!(r[0].1, Route::Deliver { metadata: Some(json!({"x": 1})) });
    assert!(matches!(r[3].1, Route::Withheld { .. }));
}

#[test]
fn row5_integrations_can_narrow_consent() {
    let w = ws(Policy::All, &["facebook", "google_ads"], &["amplitude", "snowflake"]);
    let r =
        routes(&w, json!({"context": consent(true, false), "integrations": {"Facebook": false, "Amplitude": false}}));
    assert_eq!(delivered(&r), vec!["google_ads"]);
    assert_eq!(r[0].1, Route::TurnedOff);
}

#[test]
fn row6_policy_any_facebook_in_both_categories() {
    let w = ws(Policy::Any, &["facebook", "google_ads"], &["facebook", "snowflake"]);
    let r = routes(&w, json!({"context": consent(true, false), "integrations": {"Amplitude": false}}));
    assert_eq!(delivered(&r), vec!["facebook", "google_ads"]);
    assert!(matches!(r[3].1, Route::Withheld { .. }), "Snowflake (analytics only) gets nothing");
    // the same event under policy all: Facebook needs both categories
    let all = ws(Policy::All, &["facebook", "google_ads"], &["facebook", "snowflake"]);
    assert_eq!(delivered(&routes(&all, json!({"context": consent(true, false)}))), vec!["google_ads", "amplitude"]);
}

#[test]
fn r6_both_fields_unknown_keys_and_bad_values() {
    // both fields: true only where every present field says true
    let (c, w) = read_consent(&json!({"context": {"consent": {
        "categoryPreferences": {"ad": true, "analytics": true},
        "consentPreferences": {"ad": true, "analytics": false, "Unknown": true}}}}));
    assert!(w.is_empty());
    assert_eq!(c, EventConsent::Given([("ad".to_string(), true), ("analytics".to_string(), false)].into()));
    // non-boolean value: false with a warning; keys are case-sensitive
    let (c, w) =
        read_consent(&json!({"context": {"consent": {"categoryPreferences": {"ad": "true", "Analytics": true}}}}));
    assert_eq!(w.len(), 1);
    let ws = ws(Policy::All, &["facebook"], &["amplitude"]);
    assert!(matches!(route(&ws, &ws.destinations[0], &c, None), Route::Withheld { .. }));
    assert!(
        matches!(route(&ws, &ws.destinations[2], &c, None), Route::Withheld { .. }),
        "`Analytics` is not `analytics`"
    );
    // preferences that are not an object: every category false
    let (c, w) = read_consent(&json!({"context": {"consent": {"categoryPreferences": [true]}}}));
    assert_eq!((c, w.len()), (EventConsent::Given(Default::default()), 1));
}

#[test]
fn r7_missing_versus_empty_preferences_and_missing_consent_modes() {
    let w = ws(Policy::All, &["facebook"], &[]);
    let (missing, _) = read_consent(&json!({"context": {"consent": {}}}));
    assert_eq!(missing, EventConsent::Missing);
    let (empty, _) = read_consent(&json!({"context": {"consent": {"categoryPreferences": {}}}}));
    assert_eq!(empty, EventConsent::Given(Default::default()));
    assert!(matches!(route(&w, &w.destinations[0], &empty, None), Route::Withheld { .. }));
    assert_eq!(
        route(&w, &w.destinations[1], &empty, None),
        Route::Deliver { metadata: None },
        "unmapped still receives"
    );
    let stored: BTreeMap<String, bool> = [("ad".to_string(), false)].into();
    assert_eq!(effective_consent(MissingConsent::Allow, missing.clone(), Some(&stored)), EventConsent::Missing);
    assert_eq!(
        effective_consent(MissingConsent::Block, missing.clone(), None),
        EventConsent::Given(Default::default())
    );
    assert_eq!(
        effective_consent(MissingConsent::Profile, missing.clone(), Some(&stored)),
        EventConsent::Given(stored.clone())
    );
    assert_eq!(effective_consent(MissingConsent::Profile, missing.clone(), None), EventConsent::Missing);
    assert_eq!(effective_consent(MissingConsent::Block, empty.clone(), None), empty);
}

#[test]
fn r8_all_false_and_names_are_case_sensitive() {
    let w = ws(Policy::All, &[], &[]);
    let r = routes(&w, json!({"integrations": {"All": false, "Snowflake": true}}));
    assert_eq!(delivered(&r), vec!["snowflake"]);
    let r = routes(&w, json!({"integrations": {"facebook": false}}));
    assert_eq!(delivered(&r).len(), 4, "`facebook` names no destination: Facebook keeps the default");
    // integrations can never send what consent forbids
    let w = ws(Policy::All, &["facebook"], &[]);
    let r = routes(&w, json!({"context": consent(false, true), "integrations": {"Facebook": true}}));
    assert!(matches!(r[0].1, Route::Withheld { .. }));
}

#[test]
fn finding_17_plans_of_all_destinations_match_one_by_one_plans() {
    use crate::config::{CategoryConfig, DestinationConfig, WorkspaceFile};
    let dest = |id: &str, enabled: bool| DestinationConfig {
        id: id.into(),
        name: None,
        kind: "webhook".into(),
        enabled,
        settings: Default::default(),
        consent_policy: None,
        on_withdrawal: Default::default(),
    };
    let cat = |id: &str, ds: &[&str], enabled: bool| CategoryConfig {
        id: id.into(),
        name: id.into(),
        destinations: ds.iter().map(|d| d.to_string()).collect(),
        enabled,
    };
    let mut ws = WorkspaceFile {
        destinations: vec![dest("a", true), dest("b", true), dest("c", false), dest("d", true)],
        ..Default::default()
    };
    ws.consent_categories = vec![
        cat("C1", &["a", "b", "a"], true),
        cat("C2", &["b"], true),
        cat("C3", &["a", "c"], false),
        cat("C4", &["c", "d"], true),
    ];
    // many categories on one destination: indexed once, same answer
    for i in 0..2000 {
        ws.consent_categories.push(cat(&format!("K{i}"), &["d"], i % 3 != 0));
    }
    let one_by_one: Vec<DestinationPlan> = ws.destinations.iter().map(|d| DestinationPlan::new(&ws, d)).collect();
    assert_eq!(DestinationPlan::all(&ws), one_by_one);
}

#[test]
fn a_destination_policy_overrides_the_workspace_policy_for_its_events() {
    // SPEC §12: facebook needs `ad` and `analytics`; under `all` one refusal withholds it, unless
    // facebook itself says `any`; google_ads keeps the workspace's `all`
    let mut w = ws(Policy::All, &["facebook", "google_ads"], &["facebook", "google_ads"]);
    let event = json!({"context": consent(true, false)});
    assert_eq!(delivered(&routes(&w, event.clone())), vec!["amplitude", "snowflake"]);
    w.destinations[0].consent_policy = Some(Policy::Any);
    assert_eq!(delivered(&routes(&w, event.clone())), vec!["facebook", "amplitude", "snowflake"]);
    // and the other way round: `all` on one destination under an `any` workspace
    w.workspace.policy = Policy::Any;
    w.destinations[0].consent_policy = Some(Policy::All);
    let r = routes(&w, event);
    assert_eq!(delivered(&r), vec!["google_ads", "amplitude", "snowflake"]);
    assert_eq!(r[0].1, Route::Withheld { categories: vec!["analytics".into()] });
    // the plans of all destinations agree with one-by-one plans
    let one_by_one: Vec<DestinationPlan> = w.destinations.iter().map(|d| DestinationPlan::new(&w, d)).collect();
    assert_eq!(DestinationPlan::all(&w), one_by_one);
}

mod gpc {
    use super::super::{apply_gpc, DestinationPlan, EventConsent, Route};
    use crate::config::{CategoryConfig, DestinationConfig, Policy, WorkspaceFile, WorkspaceSettings};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The reference (R2, R7, R14): a required category is granted unless GPC refuses it, and
    /// then by the consent object (absent from a given object: refused; no object: granted).
    fn reference(consent: &Option<BTreeMap<String, bool>>, gpc: &[String], required: &[String], any: bool) -> bool {
        if required.is_empty() {
            return true;
        }
        let granted =
            |c: &String| !gpc.contains(c) && consent.as_ref().is_none_or(|p| p.get(c).copied().unwrap_or(false));
        if any {
            required.iter().any(granted)
        } else {
            required.iter().all(granted)
        }
    }

    proptest! {
        #[test]
        fn gpc_routing_matches_the_reference(
            given in proptest::option::of(proptest::collection::btree_map(0usize..4, any::<bool>(), 0..4)),
            gpc in proptest::collection::btree_set(0usize..4, 0..3),
            required in proptest::collection::vec(proptest::collection::btree_set(0usize..4, 0..3), 1..4),
            policies in proptest::collection::vec(proptest::option::of(any::<bool>()), 3),
            workspace_any in any::<bool>(),
        ) {
            let cat = |i: usize| format!("C{i}");
            let categories: Vec<String> = (0..4).map(cat).collect();
            let consent = given.as_ref().map(|g| g.iter().map(|(k, v)| (cat(*k), *v)).collect::<BTreeMap<_, _>>());
            let gpc: Vec<String> = gpc.iter().map(|i| cat(*i)).collect();
            let w = WorkspaceFile {
                workspace: WorkspaceSettings { policy: if workspace_any { Policy::Any } else { Policy::All }, ..Default::default() },
                destinations: (0..required.len()).map(|d| DestinationConfig {
                    id: format!("d{d}"), name: None, kind: "webhook".into(), enabled: true, settings: Default::default(),
                    consent_policy: policies[d].map(|a| if a { Policy::Any } else { Policy::All }),
                    on_withdrawal: Default::default(),
                }).collect(),
                consent_categories: categories.iter().map(|c| CategoryConfig {
                    id: c.clone(), name: c.clone(), enabled: true,
                    destinations: required.iter().enumerate().filter(|(_, r)| r.iter().any(|i| &cat(*i) == c)).map(|(d, _)| format!("d{d}")).collect(),
                }).collect(),
                ..Default::default()
            };
            let event = match &consent { Some(p) => EventConsent::Given(p.clone()), None => EventConsent::Missing };
            let routed = apply_gpc(event, &gpc, &categories);
            for (d, plan) in DestinationPlan::all(&w).iter().enumerate() {
                let req: Vec<String> = required[d].iter().map(|i| cat(*i)).collect();
                let any = policies[d].unwrap_or(workspace_any);
                let want = reference(&consent, &gpc, &req, any);
                let got = matches!(plan.route(&routed, None), Route::Deliver { .. });
                prop_assert_eq!(got, want, "destination d{} requires {:?}", d, req);
            }
        }
    }
}
