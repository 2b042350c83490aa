//! The plan `apply` prints: what it creates, changes and removes.

use serde::Serialize;
use serde_json::Value;
use sluice_core::WorkspaceFile;

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// `create`, `change` or `remove`.
    pub action: &'static str,
    /// `workspace`, `source`, `destination`, `consent_category` or `model`.
    pub kind: &'static str,
    /// The entity's id.
    pub id: String,
    /// For `change`: the fields that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

fn entities<T: Serialize>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<(String, Value)> {
    items.iter().map(|x| (id(x).to_string(), serde_json::to_value(x).expect("serializes"))).collect()
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
            None => out.push(PlanItem { action: "create", kind, id: id.clone(), fields: vec![] }),
            Some((_, ov)) if ov != v => {
                out.push(PlanItem { action: "change", kind, id: id.clone(), fields: changed_fields(ov, v) })
            }
            Some(_) => {}
        }
    }
    for (id, _) in old {
        if !new.iter().any(|(n, _)| n == id) {
            out.push(PlanItem { action: "remove", kind, id: id.clone(), fields: vec![] });
        }
    }
}

/// The plan from `old` (nothing applied yet: `None`) to `new`.
pub fn plan(old: Option<&WorkspaceFile>, new: &WorkspaceFile) -> Vec<PlanItem> {
    let empty = WorkspaceFile::default();
    let old_ws = old.unwrap_or(&empty);
    let mut out = Vec::new();
    let ws =
        |w: &WorkspaceFile| vec![("settings".to_string(), serde_json::to_value(&w.workspace).expect("serializes"))];
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
        assert_eq!(
            p,
            vec![
                PlanItem { action: "change", kind: "destination", id: "a".into(), fields: vec!["enabled".into()] },
                PlanItem { action: "create", kind: "destination", id: "c".into(), fields: vec![] },
                PlanItem { action: "remove", kind: "destination", id: "b".into(), fields: vec![] },
            ]
        );
        assert!(plan(Some(&b), &b).is_empty());
        assert_eq!(plan(None, &a).len(), 2);
    }
}
