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
}
