use super::*;
use serde_json::json;
use sluice_core::Change;

#[test]
fn appends_json_lines_in_the_item_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = BuildContext { base_dir: dir.path().into(), mapping_key: "m/d".into() };
    let cfg = FileConfig::parse(json!({"path": "out/d.jsonl"}).as_object().unwrap()).unwrap();
    let mut sink = FileSink::new(cfg, &ctx);
    let item = |id: &str, action| Item {
        action,
        id: id.into(),
        data: crate::raw(&json!({"a": 1})),
        consent: None,
        reason: None,
    };
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

#[test]
fn paths_stay_inside_the_workspace_folder_and_out_of_state_folders() {
    for bad in ["/etc/passwd", "../x.jsonl", "out/../../x", ".sluice/secret.key", "st/secret.key", "", "."] {
        let e = FileConfig::parse(json!({ "path": bad }).as_object().unwrap()).unwrap_err();
        assert_eq!(e.at, "path", "{bad}");
    }
    for good in ["out.jsonl", "./out/crm.jsonl", "a/b/c.jsonl"] {
        assert!(FileConfig::parse(json!({ "path": good }).as_object().unwrap()).is_ok(), "{good}");
    }
    let dir = tempfile::tempdir().unwrap();
    // a state folder under another name inside the workspace folder is refused on disk
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/state.db"), b"").unwrap();
    assert!(resolve(dir.path(), "state/out.jsonl").unwrap_err().message.contains("state folder"));
    assert!(resolve(dir.path(), "state/deeper/out.jsonl").unwrap_err().message.contains("state folder"));
    assert_eq!(resolve(dir.path(), "ok/out.jsonl").unwrap(), dir.path().canonicalize().unwrap().join("ok/out.jsonl"));
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(resolve(dir.path(), "link/x.jsonl").unwrap_err().message.contains("outside"));
        // a sink refuses to write there: nothing lands outside
        let ctx = BuildContext { base_dir: dir.path().into(), mapping_key: "m/d".into() };
        let cfg = FileConfig::parse(json!({"path": "link/x.jsonl"}).as_object().unwrap()).unwrap();
        let item =
            Item { action: Change::Added, id: "1".into(), data: crate::raw(&json!({})), consent: None, reason: None };
        assert!(FileSink::new(cfg, &ctx).deliver(&[item])[0].is_err());
        assert!(!outside.path().join("x.jsonl").exists());
    }
}

#[test]
fn streamed_events_are_appended_as_stored_and_batch_size_is_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = BuildContext { base_dir: dir.path().into(), mapping_key: "stream/f".into() };
    let cfg = FileConfig::parse(json!({"path": "ev.jsonl", "batch_size": 2}).as_object().unwrap()).unwrap();
    let mut sink = FileSink::new(cfg, &ctx);
    assert_eq!(sink.event_batch_size(), 2);
    let ev = |seq: i64| crate::Event { seq, source: "web".into(), body: format!("{{\"n\":{seq}}}") };
    assert!(sink.deliver_events(&[ev(1), ev(2)]).iter().all(|r| r.is_ok()));
    assert_eq!(std::fs::read_to_string(dir.path().join("ev.jsonl")).unwrap(), "{\"n\":1}\n{\"n\":2}\n");
}
