use super::*;
use serde_json::json;
use sluice_core::Change;

#[test]
fn appends_json_lines_in_the_item_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = BuildContext { base_dir: dir.path().into(), mapping_key: "m/d".into() };
    let cfg = FileConfig::parse(json!({"path": "out/d.jsonl"}).as_object().unwrap()).unwrap();
    let mut sink = FileSink::new(cfg, &ctx);
    let item = |id: &str, action| Item { action, id: id.into(), data: crate::raw(&json!({"a": 1})), consent: None };
    assert!(sink.deliver(&[item("1", Change::Added)]).iter().all(|r| r.is_ok()));
    assert!(sink.deliver(&[item("1", Change::Updated), item("2", Change::Deleted)]).iter().all(|r| r.is_ok()));
    let text = std::fs::read_to_string(dir.path().join("out/d.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], json!({"action": "added", "id": "1", "data": {"a": 1}}));
    assert_eq!(lines[2]["action"], "deleted");
}

#[test]
fn bad_settings_name_the_field() {
    let e = FileConfig::parse(json!({"path": "x", "colour": 1}).as_object().unwrap()).unwrap_err();
    assert_eq!(e.at, "colour");
    let e = FileConfig::parse(json!({}).as_object().unwrap()).unwrap_err();
    assert_eq!(e.at, "path");
}
