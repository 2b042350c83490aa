//! Roles that protect consent: the one place that decides which changes of a workspace only an
//! owner may make. Every write of the control API (and the web UI, which calls the same API)
//! compares the workspace before and after the change with [`owner_only_changes`]; a member's
//! change that contains any is refused with 403, naming them.
//!
//! The rule: every change that can widen who receives a person's data is owner-only. Members
//! keep what their job needs and what provably cannot widen it: reading everything, previews,
//! starting syncs, schedules, models (SQL, mappings) whose data reaches only destinations that
//! no consent category governs, field mappings, disabling and tuning destinations, and removing
//! what nothing uses.

use serde_json::Value;
use sluice_core::WorkspaceFile;
use std::collections::BTreeSet;

/// A change only owners may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerOnly {
    /// What it is, for people: "destination `crm`: `settings.url` changes".
    pub what: String,
    /// The field at fault (`settings.url`, `sql`, `consent`, `id`, …).
    pub field: String,
}

/// Destination settings a member may change: they tune delivery, never where it goes.
const TUNING: [&str; 5] = ["batch_size", "timeout_secs", "retry_initial_ms", "retry_max_ms", "max_attempts"];

/// `x` as JSON, credentials exposed: a changed credential is a change.
fn json<T: serde::Serialize>(x: &T) -> Value {
    sluice_core::exposing(|| serde_json::to_value(x)).unwrap_or(Value::Null)
}

fn changed_keys(a: &Value, b: &Value) -> Vec<String> {
    let (Value::Object(a), Value::Object(b)) = (a, b) else { return vec![String::new()] };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

/// Destinations whose data consent decides: those any consent category lists (enabled or
/// not: an owner may enable it later), and `connections` destinations (they stamp consent for
/// downstream enforcement, R5), in the old or the new workspace.
fn governed(old: &WorkspaceFile, new: &WorkspaceFile) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ws in [old, new] {
        out.extend(ws.consent_categories.iter().flat_map(|c| c.destinations.iter().cloned()));
        out.extend(
            ws.destinations
                .iter()
                .filter(|d| sluice_core::consent::stamps_consent(ws, &sluice_destinations::REGISTRY, &d.id))
                .map(|d| d.id.clone()),
        );
    }
    out
}

/// The changes from `old` to `new` that only an owner may make (empty: a member may make it).
pub fn owner_only_changes(old: &WorkspaceFile, new: &WorkspaceFile) -> Vec<OwnerOnly> {
    let mut out = Vec::new();
    let mut push = |what: String, field: &str| out.push(OwnerOnly { what, field: field.to_string() });
    if old.workspace != new.workspace {
        push(
            "the workspace settings change (consent policy, unmapped models, missing consent, alert webhook)".into(),
            "workspace",
        );
    }
    // alerts: where notifications about the workspace go (a webhook is a credential), and
    // removing or disabling one silences the privacy officer's alarm
    for a in &new.alerts {
        match old.alerts.iter().find(|o| o.id == a.id) {
            None => push(format!("alert `{}` is created", a.id), "alerts"),
            Some(o) if o != a => push(format!("alert `{}` changes", a.id), "alerts"),
            Some(_) => {}
        }
    }
    for o in &old.alerts {
        if !new.alerts.iter().any(|a| a.id == o.id) {
            push(format!("alert `{}` is removed", o.id), "alerts");
        }
    }
    // sources and write keys: any new or changed source
    for s in &new.sources {
        match old.sources.iter().find(|o| o.id == s.id) {
            None => push(format!("source `{}` is created", s.id), "id"),
            Some(o) if o != s => {
                let keys = changed_keys(&json(o), &json(s));
                push(format!("source `{}`: {} change", s.id, list(&keys)), keys.first().map_or("", |k| k.as_str()));
            }
            Some(_) => {}
        }
    }
    // removing an event source makes its clients' events refused (401): they would be lost
    for o in old.sources.iter().filter(|o| o.kind() == sluice_core::SourceKind::Events) {
        if !new.sources.iter().any(|s| s.id == o.id) {
            push(format!("event source `{}` is removed (its clients' events would be refused)", o.id), "id");
        }
    }
    // destinations: creating, enabling, renaming or re-pointing
    for d in &new.destinations {
        let Some(o) = old.destinations.iter().find(|o| o.id == d.id) else {
            push(format!("destination `{}` is created (an unmapped destination receives everyone, R1)", d.id), "id");
            continue;
        };
        for k in changed_keys(&json(o), &json(d)) {
            match k.as_str() {
                "enabled" if !d.enabled => {}
                "enabled" => push(format!("destination `{}` is enabled", d.id), "enabled"),
                "settings" => {
                    let mut keys = changed_keys(&Value::Object(o.settings.clone()), &Value::Object(d.settings.clone()));
                    // re-pointing first: it is what the refusal names
                    let info = sluice_core::Catalog::kind(&sluice_destinations::REGISTRY, &d.kind);
                    keys.sort_by_key(|k| !info.is_some_and(|i| i.is_address(k)));
                    for s in keys {
                        if !TUNING.contains(&s.as_str()) {
                            push(format!("destination `{}`: `settings.{s}` changes", d.id), &format!("settings.{s}"));
                        }
                    }
                }
                _ => push(format!("destination `{}`: `{k}` changes", d.id), &k),
            }
        }
    }
    // consent categories: all of consent management
    for c in &new.consent_categories {
        match old.consent_categories.iter().find(|o| o.id == c.id) {
            None => push(format!("consent category `{}` is created", c.id), "consent_categories"),
            Some(o) if o != c => push(format!("consent category `{}` changes", c.id), "consent_categories"),
            Some(_) => {}
        }
    }
    for o in &old.consent_categories {
        if !new.consent_categories.iter().any(|c| c.id == o.id) {
            push(format!("consent category `{}` is removed", o.id), "consent_categories");
        }
    }
    // models: consent mappings; what a consent-relevant model selects; mappings to governed destinations
    let governed = governed(old, new);
    for m in &new.models {
        let old_m = old.models.iter().find(|o| o.id == m.id);
        let reaches = |ms: &[sluice_core::MappingConfig]| ms.iter().any(|mp| governed.contains(&mp.destination));
        let relevant = !m.consent.is_empty()
            || reaches(&m.mappings)
            || old_m.is_some_and(|o| !o.consent.is_empty() || reaches(&o.mappings));
        // R13: what a destination is asked to do on withdrawal is consent management
        for mp in &m.mappings {
            let before = old_m.and_then(|o| o.mappings.iter().find(|x| x.destination == mp.destination));
            if mp.on_withdrawal != before.map(|b| b.on_withdrawal).unwrap_or_default() {
                push(
                    format!("model `{}`: the mapping to `{}` changes `on_withdrawal`", m.id, mp.destination),
                    "on_withdrawal",
                );
            }
        }
        let Some(o) = old_m else {
            if !m.consent.is_empty() {
                push(format!("model `{}` is created with consent mappings", m.id), "consent");
            } else if relevant {
                push(
                    format!("model `{}` is created with a mapping to a consent-governed destination", m.id),
                    "mappings",
                );
            }
            continue;
        };
        for k in changed_keys(&json(o), &json(m)) {
            match k.as_str() {
                "schedule" => {}
                "consent" => push(format!("model `{}`: its consent mappings change", m.id), "consent"),
                "mappings" => {
                    for mp in &m.mappings {
                        let before = o.mappings.iter().find(|x| x.destination == mp.destination);
                        let is_governed = governed.contains(&mp.destination);
                        match before {
                            None if is_governed => push(
                                format!(
                                    "model `{}`: a mapping to consent-governed destination `{}` is added",
                                    m.id, mp.destination
                                ),
                                "mappings",
                            ),
                            // `on` and `fields` change what is sent, never to whom
                            Some(b) if is_governed => {
                                let other = changed_keys(&json(b), &json(mp))
                                    .into_iter()
                                    .filter(|x| x != "on" && x != "fields" && x != "on_withdrawal")
                                    .collect::<Vec<_>>();
                                if !other.is_empty() {
                                    push(
                                        format!(
                                            "model `{}`: the mapping to `{}` changes {}",
                                            m.id,
                                            mp.destination,
                                            list(&other)
                                        ),
                                        "mappings",
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ if relevant => push(
                    format!(
                        "model `{}`: `{k}` changes, and the model is consent-mapped or feeds a consent-governed destination",
                        m.id
                    ),
                    &k,
                ),
                _ => {}
            }
        }
    }
    for o in &old.models {
        if !o.consent.is_empty() && !new.models.iter().any(|m| m.id == o.id) {
            push(format!("model `{}` is removed with its consent mappings", o.id), "consent");
        }
    }
    out
}

fn list(keys: &[String]) -> String {
    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(yaml: &str) -> WorkspaceFile {
        WorkspaceFile::from_yaml(yaml).unwrap()
    }

    const BASE: &str = "sources: [{id: dwh, kind: sqlite, path: w.db}]
destinations:
  - {id: ads, kind: webhook, settings: {url: 'http://a/x', batch_size: 10}}
  - {id: log, kind: file, settings: {path: out.jsonl}}
consent_categories: [{id: C0004, name: Advertising, destinations: [ads]}]
models:
  - {id: p, source: dwh, sql: select * from p, unique_id: id, consent: {C0004: ads}, mappings: [{destination: ads}]}
  - {id: q, source: dwh, sql: select * from q, unique_id: id, mappings: [{destination: log}]}
";

    fn fields(old: &str, new: &str) -> Vec<String> {
        owner_only_changes(&ws(old), &ws(new)).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn widening_changes_are_owner_only_the_rest_is_not() {
        let same = |from: &str, to: &str| BASE.replacen(from, to, 1);
        assert!(fields(BASE, BASE).is_empty());
        // owner-only
        assert_eq!(fields(BASE, &same("select * from p", "'select *, true as ads from p'")), ["sql"]);
        assert_eq!(fields(BASE, &same("http://a/x", "http://evil/x")), ["settings.url"]);
        assert_eq!(fields(BASE, &same("{C0004: ads}", "{}")), ["consent"]);
        assert_eq!(
            fields(BASE, &same("mappings: [{destination: log}]", "mappings: [{destination: log}, {destination: ads}]")),
            ["mappings"]
        );
        assert_eq!(fields(BASE, &format!("{BASE}workspace: {{policy: any}}\n")), ["workspace"]);
        // a destination's own consent policy widens (any) or narrows (all) who gets data: owners
        let lenient = same("{id: ads, kind: webhook,", "{id: ads, kind: webhook, consent_policy: any,");
        assert_eq!(fields(BASE, &lenient), ["consent_policy"]);
        assert_eq!(fields(&lenient, BASE), ["consent_policy"]);
        let created = same("  - {id: log,", "  - {id: new, kind: file, settings: {path: n.jsonl}}\n  - {id: log,");
        assert_eq!(fields(BASE, &created), ["id"]);
        let disabled = same("{id: ads, kind: webhook,", "{id: ads, kind: webhook, enabled: false,");
        assert_eq!(fields(&disabled, BASE), ["enabled"], "enabling");
        // allowed to members: disabling, tuning, schedules, SQL of a model that feeds only unmapped destinations
        assert!(fields(BASE, &disabled).is_empty());
        assert!(fields(BASE, &same("batch_size: 10", "batch_size: 20")).is_empty());
        assert!(fields(BASE, &same("unique_id: id, consent", "unique_id: id, schedule: every 5m, consent")).is_empty());
        assert!(fields(BASE, &same("select * from q", "select email from q")).is_empty());
        assert!(fields(BASE, &same("mappings: [{destination: ads}]", "mappings: [{destination: ads, on: [added]}]"))
            .is_empty());
    }

    #[test]
    fn alerts_are_owner_only() {
        let alerting = format!("{BASE}alerts: [{{id: f, on: failed_sync, webhook_url: 'https://hooks.example/a'}}]\n");
        assert_eq!(fields(BASE, &alerting), ["alerts"], "creating");
        assert_eq!(fields(&alerting, BASE), ["alerts"], "removing silences it");
        assert_eq!(fields(&alerting, &alerting.replace("/a'", "/b'")), ["alerts"], "re-pointing its webhook");
        assert_eq!(fields(&alerting, &alerting.replace("failed_sync,", "failed_sync, enabled: false,")), ["alerts"]);
        let hook = format!("{BASE}workspace: {{alert_webhook: 'https://hooks.example/w'}}\n");
        assert_eq!(fields(BASE, &hook), ["workspace"]);
        assert!(fields(&alerting, &alerting).is_empty());
    }

    #[test]
    fn on_withdrawal_is_owner_only_on_mappings_and_destinations() {
        let same = |from: &str, to: &str| BASE.replacen(from, to, 1);
        let governed = same("mappings: [{destination: ads}]", "mappings: [{destination: ads, on_withdrawal: delete}]");
        assert_eq!(fields(BASE, &governed), ["on_withdrawal"]);
        assert_eq!(fields(&governed, BASE), ["on_withdrawal"], "back to keep");
        // even where no category governs the destination (yet)
        let free = same("mappings: [{destination: log}]", "mappings: [{destination: log, on_withdrawal: delete}]");
        assert_eq!(fields(BASE, &free), ["on_withdrawal"]);
        let dest = same("{id: ads, kind: webhook,", "{id: ads, kind: webhook, on_withdrawal: delete,");
        assert_eq!(fields(BASE, &dest), ["on_withdrawal"]);
        assert_eq!(fields(&dest, BASE), ["on_withdrawal"]);
        // a new model that asks for deletes
        let created = format!(
            "{BASE}  - {{id: r, source: dwh, sql: select * from r, unique_id: id, mappings: [{{destination: log, on_withdrawal: delete}}]}}\n"
        );
        assert_eq!(fields(BASE, &created), ["on_withdrawal"]);
    }

    #[test]
    fn review_removing_an_event_source_is_owner_only() {
        // clients of a removed source get 401 and drop their events: not a member's call
        let with_events = BASE.replacen("sources: [", "sources: [{id: web, kind: events, write_key: k}, ", 1);
        assert_eq!(fields(&with_events, BASE), ["id"]);
        // a warehouse source no model uses may go (nothing is lost)
        let spare = BASE.replacen("sources: [", "sources: [{id: spare, kind: sqlite, path: s.db}, ", 1);
        assert!(fields(&spare, BASE).is_empty());
    }
}
