use super::*;

fn ws(yaml: &str) -> WorkspaceFile {
    WorkspaceFile::from_yaml(yaml).unwrap()
}

const BASE: &str = r#"
sources: [{id: dwh, kind: sqlite, path: w.db}]
destinations:
  - {id: a, kind: webhook, settings: {url: "http://127.0.0.1:1/a"}}
  - {id: b, kind: webhook, settings: {url: "http://127.0.0.1:1/b"}}
consent_categories:
  - {id: C1, name: Ads, destinations: [a]}
models:
  - {id: m, source: dwh, sql: select 1, unique_id: id, consent: {C1: ads}, mappings: [{destination: a}, {destination: b}]}
  - {id: other, source: dwh, sql: select 2, unique_id: id, mappings: [{destination: b}]}
"#;

fn affected_ids(old: &WorkspaceFile, new: &WorkspaceFile) -> Vec<(String, Vec<String>)> {
    affected(old, new)
        .into_iter()
        .map(|a| (a.id.to_string(), a.destinations.iter().map(|d| d.to_string()).collect()))
        .collect()
}

#[test]
fn only_models_whose_decision_can_differ_are_run() {
    let old = ws(BASE);
    assert!(affected_ids(&old, &old).is_empty(), "no change: nothing to run");
    // disabling the category opens destination a for model m only (b and `other` are unaffected)
    let new = ws(&BASE.replace("destinations: [a]}", "destinations: [a], enabled: false}"));
    assert_eq!(affected_ids(&old, &new), vec![("m".to_string(), vec!["a".to_string()])]);
    // a policy change with one category changes no decision's structure... but Gate differs: run it
    let new = ws(&BASE.replace("{id: a, kind: webhook,", "{id: a, kind: webhook, consent_policy: any,"));
    assert_eq!(affected_ids(&old, &new), vec![("m".to_string(), vec!["a".to_string()])]);
    // a disabled destination loses every model mapped to it
    let new = ws(&BASE.replace("{id: b, kind: webhook,", "{id: b, kind: webhook, enabled: false,"));
    assert_eq!(
        affected_ids(&old, &new),
        vec![("m".to_string(), vec!["b".to_string()]), ("other".to_string(), vec!["b".to_string()])]
    );
    // a new SQL re-counts every destination the model reaches
    let new = ws(&BASE.replace("sql: select 2", "sql: select 3"));
    assert_eq!(affected_ids(&old, &new), vec![("other".to_string(), vec!["b".to_string()])]);
    // a removed model loses everything it reached
    let new =
        ws(&BASE
            .replace("  - {id: other, source: dwh, sql: select 2, unique_id: id, mappings: [{destination: b}]}\n", ""));
    assert_eq!(affected_ids(&old, &new), vec![("other".to_string(), vec!["b".to_string()])]);
}

#[test]
fn reach_follows_the_gate() {
    let old = ws(BASE);
    let m = &old.models[0];
    let col = |c: &str| (c == "ads").then_some(0);
    let r = Reach::of(&old, Some(m), "a", &col);
    assert!(r.sends(|_| sluice_core::ConsentValue::Granted));
    assert!(!r.sends(|_| sluice_core::ConsentValue::Refused));
    assert!(!r.sends(|_| sluice_core::ConsentValue::Invalid), "fail closed");
    assert_eq!(Reach::of(&old, Some(m), "nope", &col), Reach::Never);
    assert_eq!(Reach::of(&old, None, "a", &col), Reach::Never);
}
