//! R13 — consent withdrawal reaches destinations (SPEC §12). Pure decisions shared by Reverse
//! ETL (`sluice-engine`'s sync) and streaming (`sluice-stream`'s writer); docs/CONSENT.md.

use crate::config::{OnWithdrawal, WorkspaceFile};
use crate::consent::{policy_for, policy_passes, required_categories};
use crate::profiles::Stored;
use std::collections::BTreeMap;

/// Reverse ETL: whether a record must get the destination's delete call (reason
/// `consent_withdrawn`): the mapping says `delete`, consent now withholds the record from the
/// destination, and the destination holds it (the checkpoint has a held hash).
pub fn record_needs_delete(on: OnWithdrawal, withheld: bool, held: bool) -> bool {
    on == OnWithdrawal::Delete && withheld && held
}

/// Streaming: whether a category's stored consent going from `before` to `after` withdraws it:
/// it is now refused (`false`) and was not before (true, in conflict, or never collected).
pub fn withdrawn(before: Option<Stored>, after: Option<Stored>) -> bool {
    after == Some(Stored::False) && before != Some(Stored::False)
}

/// Streaming: the destinations a person's stored consent changing from `before` to `after`
/// (category id -> stored value) obliges to delete that person, in workspace order: those with
/// `on_withdrawal: delete` for which some required (enabled) category was [`withdrawn`] and
/// whose policy (R2, the destination's own `consent_policy` first) no longer passes with the
/// new consent. An unrestricted destination (R1) is never one: consent does not govern it.
pub fn withdrawal_targets<'a>(
    ws: &'a WorkspaceFile,
    before: &BTreeMap<String, Stored>,
    after: &BTreeMap<String, Stored>,
) -> Vec<&'a str> {
    ws.destinations
        .iter()
        .filter(|d| d.on_withdrawal == OnWithdrawal::Delete)
        .filter(|d| {
            let required = required_categories(ws, &d.id);
            let any_withdrawn = required.iter().any(|c| withdrawn(before.get(*c).copied(), after.get(*c).copied()));
            let passes = policy_passes(
                policy_for(ws, &d.id),
                required.iter().map(|c| after.get(*c).copied() == Some(Stored::True)),
            );
            any_withdrawn && !passes
        })
        .map(|d| d.id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(yaml: &str) -> WorkspaceFile {
        WorkspaceFile::from_yaml(yaml).unwrap()
    }

    const WS: &str = "destinations:
  - {id: del, kind: webhook, on_withdrawal: delete}
  - {id: keep, kind: webhook}
  - {id: any, kind: webhook, consent_policy: any, on_withdrawal: delete}
  - {id: free, kind: webhook, on_withdrawal: delete}
consent_categories:
  - {id: C0004, name: Ads, destinations: [del, keep, any]}
  - {id: C0002, name: Analytics, destinations: [any]}
";

    fn m(pairs: &[(&str, Stored)]) -> BTreeMap<String, Stored> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_category_turning_false_obliges_only_delete_destinations_it_now_blocks() {
        let w = ws(WS);
        use Stored::*;
        let granted = m(&[("C0004", True), ("C0002", True)]);
        // C0004 false: `del` is blocked; `any` still passes by C0002; `keep` keeps; `free` is unrestricted
        assert_eq!(withdrawal_targets(&w, &granted, &m(&[("C0004", False), ("C0002", True)])), ["del"]);
        // both false: `any` is blocked too
        assert_eq!(withdrawal_targets(&w, &granted, &m(&[("C0004", False), ("C0002", False)])), ["del", "any"]);
        // never collected -> false is a withdrawal; false -> false is not; conflict -> false is
        assert_eq!(withdrawal_targets(&w, &m(&[]), &m(&[("C0004", False)])), ["del", "any"]);
        assert!(withdrawal_targets(&w, &m(&[("C0004", False)]), &m(&[("C0004", False)])).is_empty());
        assert_eq!(withdrawal_targets(&w, &m(&[("C0004", Conflict)]), &m(&[("C0004", False)])), ["del", "any"]);
        // granting never deletes
        assert!(withdrawal_targets(&w, &m(&[("C0004", False)]), &granted).is_empty());
    }

    #[test]
    fn a_record_is_deleted_only_when_withheld_held_and_the_mapping_says_delete() {
        for on in [OnWithdrawal::Keep, OnWithdrawal::Delete] {
            for withheld in [false, true] {
                for held in [false, true] {
                    let want = on == OnWithdrawal::Delete && withheld && held;
                    assert_eq!(record_needs_delete(on, withheld, held), want, "{on:?} {withheld} {held}");
                }
            }
        }
    }

    #[test]
    fn delete_on_a_kind_without_a_delete_call_is_an_error_naming_the_field() {
        let yaml = "sources: [{id: dwh, kind: sqlite, path: w.db}]
destinations:
  - {id: hook, kind: webhook, on_withdrawal: delete}
  - {id: conn, kind: connections, on_withdrawal: delete}
consent_categories: [{id: C0004, name: Ads, destinations: [hook, conn]}]
models:
  - id: u
    source: dwh
    sql: select * from u
    unique_id: id
    consent: {C0004: ads}
    mappings: [{destination: hook, on_withdrawal: delete}, {destination: conn, on_withdrawal: delete}]
";
        let errs = crate::validate(ws(yaml), &crate::catalog::TestCatalog).unwrap_err().0;
        let at: Vec<&str> = errs.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(at, ["destinations[1] (conn).on_withdrawal", "models[0] (u).mappings[1].on_withdrawal"], "{errs:?}");
        assert!(errs.iter().all(|e| e.message.contains("connections destination has no delete call")), "{errs:?}");
        // a typo is a serde error naming the value
        let e = WorkspaceFile::from_yaml("destinations: [{id: a, kind: webhook, on_withdrawal: erase}]").unwrap_err();
        assert!(e.to_string().contains("erase"), "{e}");
        // keep is the default and is not written back
        let w = ws("destinations: [{id: a, kind: webhook}]");
        assert_eq!(w.destinations[0].on_withdrawal, OnWithdrawal::Keep);
        assert!(!serde_yaml_ng::to_string(&w).unwrap().contains("on_withdrawal"));
    }

    use crate::events::{DestinationPlan, EventConsent, Route};
    use crate::profiles::Profile;
    use crate::{CategoryConfig, DestinationConfig, Policy};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// For random workspaces and random histories of consent events (some older than what
        /// is stored): a `delete` destination that could receive the person's events before
        /// and cannot now is told to delete; none is told where consent still lets events
        /// through, nor a `keep` one, nor without a category refused by this change. Replaying
        /// what each destination holds, none that says `delete` ever holds the person where
        /// consent now forbids it.
        #[test]
        fn withdrawal_targets_match_the_reference(
            any_policy in any::<bool>(),
            deletes in proptest::collection::vec(any::<bool>(), 3),
            dest_policy in proptest::collection::vec(proptest::option::of(any::<bool>()), 3),
            cat_enabled in proptest::collection::vec(any::<bool>(), 3),
            cat_dests in proptest::collection::vec(proptest::collection::btree_set(0usize..3, 0..3), 3),
            history in proptest::collection::vec((proptest::collection::vec(any::<bool>(), 3), 0u8..6), 1..8),
        ) {
            let pol = |a: bool| if a { Policy::Any } else { Policy::All };
            let w = WorkspaceFile {
                workspace: crate::WorkspaceSettings { policy: pol(any_policy), ..Default::default() },
                destinations: (0..3).map(|d| DestinationConfig {
                    id: format!("d{d}"), name: None, kind: "webhook".into(), enabled: true,
                    settings: Default::default(), consent_policy: dest_policy[d].map(pol),
                    on_withdrawal: if deletes[d] { OnWithdrawal::Delete } else { OnWithdrawal::Keep },
                }).collect(),
                consent_categories: (0..3).map(|c| CategoryConfig {
                    id: format!("C{c}"), name: format!("C{c}"), enabled: cat_enabled[c],
                    destinations: cat_dests[c].iter().map(|d| format!("d{d}")).collect(),
                }).collect(),
                ..Default::default()
            };
            let ids: Vec<String> = (0..3).map(|c| format!("C{c}")).collect();
            // events flow to d under stored consent: a category never collected (or in
            // conflict) has not refused yet, as an event without consent is routed (R7)
            let could_receive = |p: &Profile, d: usize| {
                let prefs = ids.iter().map(|c| (c.clone(), p.consent.get(c).is_none_or(|x| x.value != Stored::False))).collect();
                matches!(DestinationPlan::new(&w, &w.destinations[d]).route(&EventConsent::Given(prefs), None), Route::Deliver { .. })
            };
            let receives = |p: &Profile, d: usize| {
                matches!(DestinationPlan::new(&w, &w.destinations[d]).route(&EventConsent::Given(p.routing_consent()), None), Route::Deliver { .. })
            };
            let mut p = Profile::default();
            let mut holds = [true; 3]; // events without consent reached everyone before
            for (seq, (prefs, day)) in history.iter().enumerate() {
                let values = |p: &Profile| p.consent.iter().map(|(k, c)| (k.clone(), c.value)).collect::<BTreeMap<_, _>>();
                let before = values(&p);
                let was: Vec<bool> = (0..3).map(|d| could_receive(&p, d)).collect();
                let prefs: BTreeMap<String, bool> = ids.iter().cloned().zip(prefs.iter().copied()).collect();
                p.apply_consent_event(&prefs, &ids, &format!("2026-01-0{}T00:00:00Z", day + 1), seq as u64);
                let targets = withdrawal_targets(&w, &before, &values(&p));
                for d in 0..3 {
                    let id = format!("d{d}");
                    let told = targets.contains(&id.as_str());
                    let governed = !required_categories(&w, &id).is_empty();
                    // a delete destination that could receive the person and cannot now is told
                    let must = deletes[d] && governed && was[d] && !receives(&p, d);
                    prop_assert!(!must || told, "d{} not told after {:?}: before {:?}", d, prefs, before);
                    // no one else is: never `keep`, never where consent still lets events through,
                    // never without a category of the destination refused by this very change
                    let refused_now = required_categories(&w, &id).iter().any(|c| {
                        before.get(*c) != Some(&Stored::False) && p.consent.get(*c).map(|x| x.value) == Some(Stored::False)
                    });
                    let may = deletes[d] && governed && !receives(&p, d) && refused_now;
                    prop_assert!(!told || may, "d{} told after {:?}: before {:?}", d, prefs, before);
                    if told { holds[d] = false; }
                    if receives(&p, d) { holds[d] = true; }
                    if deletes[d] && governed && !receives(&p, d) {
                        prop_assert!(!holds[d], "d{} holds the person though consent forbids it", d);
                    }
                }
            }
        }
    }
}
