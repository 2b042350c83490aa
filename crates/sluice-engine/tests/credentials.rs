//! Every credential a source holds (by type) or a destination kind declares (its
//! `secret_settings` and `url_settings`, for every kind of the registry) is sealed at rest,
//! shown as `<set>` (URLs redacted) by the API and the audit log, and exported as a
//! placeholder: all paths use the one finder, and this fails if one of them misses one.

use serde_json::{json, Map, Value};
use sluice_core::{DestinationConfig, SourceConfig, WorkspaceFile};
use sluice_engine::Workspace;

const MARK: &str = "mk_";

fn destinations() -> Vec<DestinationConfig> {
    let mut out = Vec::new();
    for reg in sluice_destinations::KINDS {
        let info = &reg.info;
        let kind = info.name;
        // a secret setting as a string and, in another destination, as a map of strings (headers)
        for (form, as_map) in [("s", false), ("m", true)] {
            let mut settings = Map::new();
            for name in info.secret_settings {
                let v = format!("{MARK}{kind}_{name}_{form}");
                settings.insert(name.to_string(), if as_map { json!({"X-Key": v}) } else { Value::String(v) });
            }
            for name in info.url_settings {
                let v = format!("https://u:{MARK}pw_{name}@h.example/{MARK}path?key={MARK}q");
                settings.insert(name.to_string(), Value::String(v));
            }
            out.push(DestinationConfig {
                id: format!("{kind}_{form}"),
                name: None,
                kind: kind.to_string(),
                enabled: true,
                settings,
                consent_policy: None,
                on_withdrawal: Default::default(),
            });
        }
    }
    out
}

fn sources() -> Vec<SourceConfig> {
    let yaml = format!(
        "sources: [{{id: pg, kind: postgres, url: 'postgres://u:{MARK}pg@h/d'}}, {{id: web, kind: events, write_key: {MARK}wk}}]"
    );
    WorkspaceFile::from_yaml(&yaml).unwrap().sources
}

#[test]
fn every_declared_credential_is_sealed_redacted_and_exported_as_a_placeholder() {
    let kinds_with_credentials =
        sluice_destinations::KINDS.iter().filter(|r| !r.info.secret_settings.is_empty()).count();
    assert!(kinds_with_credentials >= 2, "the registry declares credentials");
    let dir = tempfile::tempdir().unwrap();
    let store = sluice_state::StateStore::open(dir.path()).unwrap();
    let file = WorkspaceFile { sources: sources(), destinations: destinations(), ..Default::default() };
    let ws = Workspace { file: file.clone(), base_dir: dir.path().to_path_buf(), warnings: vec![] };

    // sealed at rest
    let stored = serde_json::to_string(&ws.to_stored("now".into(), &store).unwrap().config).unwrap();
    assert!(!stored.contains(MARK), "a credential is stored in the clear: {stored}");

    // shown by the API (and written to the audit log) redacted
    for d in &file.destinations {
        let shown = sluice_engine::plan::redact("destination", serde_json::to_value(d).unwrap()).to_string();
        assert!(!shown.contains(MARK), "the API shows a credential of `{}`: {shown}", d.kind);
        assert_eq!(shown.contains("<set>"), !d.settings.is_empty(), "{shown}");
    }
    for s in &file.sources {
        let shown = sluice_engine::plan::redact("source", serde_json::to_value(s).unwrap()).to_string();
        assert!(!shown.contains(MARK) && shown.contains("<set>"), "{shown}");
        assert!(!format!("{s:?}").contains(MARK), "Debug shows a source credential");
    }
    for item in sluice_engine::plan::plan(None, &file) {
        let audit = serde_json::to_string(&item.after).unwrap();
        assert!(!audit.contains(MARK), "the audit log gets a credential: {audit}");
    }

    // exported as placeholders, with every value given back to set in the environment
    let (yaml, vars) = ws.export(false);
    assert!(!yaml.contains(MARK), "export prints a credential: {yaml}");
    let values: Vec<&str> = vars.iter().map(|(_, v)| v.as_str()).collect();
    for d in &file.destinations {
        for v in d.settings.values() {
            let v = v.as_str().map(String::from).unwrap_or_else(|| v["X-Key"].as_str().unwrap().to_string());
            assert!(values.contains(&v.as_str()), "{v} is not exported as a placeholder");
        }
    }
    let (revealed, none) = ws.export(true);
    assert!(none.is_empty() && revealed.contains(&format!("{MARK}pg")) && revealed.contains(&format!("{MARK}wk")));
}
