//! The plan `apply` prints: what it creates, changes and removes.

use serde::Serialize;
use serde_json::Value;
use sluice_core::WorkspaceFile;

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// `create`, `change` or `remove`.
    pub action: &'static str,
    /// `workspace`, `source`, `destination`, `consent_category`, `model` or `alert`.
    pub kind: &'static str,
    /// The entity's id.
    pub id: String,
    /// For `change`: the fields that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The entity before (credentials redacted), for the audit log.
    #[serde(skip)]
    pub before: Option<Value>,
    /// The entity after (credentials redacted), for the audit log.
    #[serde(skip)]
    pub after: Option<Value>,
}

/// An entity as the audit log and the APIs show it, credentials redacted: the one credential
/// finder ([`sluice_core::credentials`]) with the registry's declared destination credentials.
pub fn redact(kind: &str, v: Value) -> Value {
    sluice_core::credentials::redact_entity(kind, v, &sluice_destinations::REGISTRY)
}

/// The entities by id, credentials exposed (so a changed credential is a change).
fn entities<T: Serialize>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<(String, Value)> {
    sluice_core::exposing(|| {
        items.iter().map(|x| (id(x).to_string(), serde_json::to_value(x).expect("serializes"))).collect()
    })
}

fn changed_fields(a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
        }
        _ => vec![],
    }
}

fn diff(kind: &'static str, old: &[(String, Value)], new: &[(String, Value)], out: &mut Vec<PlanItem>) {
    for (id, v) in new {
        match old.iter().find(|(o, _)| o == id) {
            None => out.push(PlanItem {
                action: "create",
                kind,
                id: id.clone(),
                fields: vec![],
                before: None,
                after: Some(redact(kind, v.clone())),
            }),
            Some((_, ov)) if ov != v => out.push(PlanItem {
                action: "change",
                kind,
                id: id.clone(),
                fields: changed_fields(ov, v),
                before: Some(redact(kind, ov.clone())),
                after: Some(redact(kind, v.clone())),
            }),
            Some(_) => {}
        }
    }
    for (id, ov) in old {
        if !new.iter().any(|(n, _)| n == id) {
            out.push(PlanItem {
                action: "remove",
                kind,
                id: id.clone(),
                fields: vec![],
                before: Some(redact(kind, ov.clone())),
                after: None,
            });
        }
    }
}

/// The plan from `old` (nothing applied yet: `None`) to `new`.
pub fn plan(old: Option<&WorkspaceFile>, new: &WorkspaceFile) -> Vec<PlanItem> {
    let empty = WorkspaceFile::default();
    let old_ws = old.unwrap_or(&empty);
    let mut out = Vec::new();
    let ws = |w: &WorkspaceFile| {
        let v = sluice_core::exposing(|| serde_json::to_value(&w.workspace)).expect("serializes");
        vec![("settings".to_string(), v)]
    };
    if old.is_some() {
        diff("workspace", &ws(old_ws), &ws(new), &mut out);
    }
    diff("source", &entities(&old_ws.sources, |s| &s.id), &entities(&new.sources, |s| &s.id), &mut out);
    diff("destination", &entities(&old_ws.destinations, |d| &d.id), &entities(&new.destinations, |d| &d.id), &mut out);
    diff(
        "consent_category",
        &entities(&old_ws.consent_categories, |c| &c.id),
        &entities(&new.consent_categories, |c| &c.id),
        &mut out,
    );
    diff("model", &entities(&old_ws.models, |m| &m.id), &entities(&new.models, |m| &m.id), &mut out);
    diff("alert", &entities(&old_ws.alerts, |a| &a.id), &entities(&new.alerts, |a| &a.id), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(yaml: &str) -> WorkspaceFile {
        WorkspaceFile::from_yaml(yaml).unwrap()
    }

    #[test]
    fn plans_creates_changes_and_removes() {
        let a =
            ws("destinations: [{id: a, kind: file, settings: {path: a}}, {id: b, kind: file, settings: {path: b}}]");
        let b = ws("destinations: [{id: a, kind: file, enabled: false, settings: {path: a}}, {id: c, kind: file, settings: {path: c}}]");
        let p = plan(Some(&a), &b);
        let short: Vec<(&str, &str, Vec<String>)> =
            p.iter().map(|i| (i.action, i.id.as_str(), i.fields.clone())).collect();
        assert_eq!(
            short,
            vec![("change", "a", vec!["enabled".to_string()]), ("create", "c", vec![]), ("remove", "b", vec![])]
        );
        assert_eq!(p[0].before.as_ref().unwrap()["enabled"], true);
        assert_eq!(p[0].after.as_ref().unwrap()["enabled"], false);
        let s = ws("sources: [{id: pg, kind: postgres, url: 'postgres://u:pw@h/d'}]");
        assert_eq!(plan(None, &s)[0].after.as_ref().unwrap()["url"], "<set>", "credentials never reach the audit log");
        let changed = ws("sources: [{id: pg, kind: postgres, url: 'postgres://u:pw2@h/d'}]");
        let p = plan(Some(&s), &changed);
        assert_eq!(
            (p[0].action, p[0].fields.clone()),
            ("change", vec!["url".to_string()]),
            "a new password is a change"
        );
        assert_eq!(p[0].after.as_ref().unwrap()["url"], "<set>");
        let d = ws(
            "destinations: [{id: h, kind: connections, settings: {url: 'https://u:pw@h.example/x?key=k1', write_key: k2}}]",
        );
        let after = plan(None, &d)[0].after.clone().unwrap();
        assert_eq!(after["settings"]["url"], "https://<set>@h.example/<set>?key=<set>");
        assert_eq!(after["settings"]["write_key"], "<set>");
        assert!(plan(Some(&b), &b).is_empty());
        let a1 = ws("workspace: {alert_webhook: 'https://hooks.example/w1'}
alerts: [{id: f, on: failed_sync, webhook_url: 'https://hooks.example/s1'}]");
        let a2 = ws("workspace: {alert_webhook: 'https://hooks.example/w2'}
alerts: [{id: f, on: failed_sync, webhook_url: 'https://hooks.example/s2'}]");
        let p = plan(Some(&a1), &a2);
        let short: Vec<(&str, &str, Vec<String>)> = p.iter().map(|i| (i.kind, i.action, i.fields.clone())).collect();
        assert_eq!(
            short,
            vec![
                ("workspace", "change", vec!["alert_webhook".to_string()]),
                ("alert", "change", vec!["webhook_url".to_string()])
            ],
            "a new webhook is a change"
        );
        let shown = serde_json::to_string(&p.iter().map(|i| (&i.before, &i.after)).collect::<Vec<_>>()).unwrap();
        assert!(!shown.contains("hooks.example"), "webhooks never reach the audit log: {shown}");
        assert_eq!(p[1].after.as_ref().unwrap()["webhook_url"], "<set>");
        assert_eq!(plan(None, &a).len(), 2);
    }
}
