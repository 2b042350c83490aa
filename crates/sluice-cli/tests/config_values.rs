//! Configuration values through `sluice apply` and the commands that read the applied workspace
//! (issue 8, findings 4, 9, 13, 15), with the real binary.

mod common;
use common::sluice;
use std::path::Path;

fn write(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("sluice.yaml"), yaml).unwrap();
}

/// `sluice ARGS` that must fail cleanly (not a panic): returns stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let o = sluice(dir, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "sluice {args:?} should fail");
    assert_ne!(o.status.code(), Some(101), "sluice {args:?} panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = sluice(dir, args);
    assert!(o.status.success(), "sluice {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn warehouse(dir: &Path) {
    rusqlite::Connection::open(dir.join("w.db"))
        .unwrap()
        .execute_batch("create table p(id integer, email text); insert into p values (1,'a'),(2,'b');")
        .unwrap();
}

#[test]
fn finding_4_apply_keeps_file_destinations_inside_the_workspace_folder() {
    let d = tempfile::tempdir().unwrap();
    warehouse(d.path());
    write(d.path(), "destinations: []\n");
    ok(d.path(), &["apply", "-f", "sluice.yaml"]); // a state folder with its secret key
    let key = std::fs::read(d.path().join(".sluice/secret.key")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let abs = outside.path().join("x.jsonl").display().to_string();
    for bad in [".sluice/secret.key", "../escape.jsonl", "./out/../../escape.jsonl", abs.as_str()] {
        write(d.path(), &format!("destinations: [{{id: out, kind: file, settings: {{path: '{bad}'}}}}]\n"));
        let err = refused(d.path(), &["apply", "-f", "sluice.yaml"]);
        assert!(err.contains("destinations[0] (out).settings.path"), "{bad}: {err}");
    }
    assert_eq!(std::fs::read(d.path().join(".sluice/secret.key")).unwrap(), key);
    // a state folder under another name inside the workspace folder: refused when writing
    let yaml = "sources: [{id: dwh, kind: sqlite, path: w.db}]
destinations: [{id: out, kind: file, settings: {path: st/out.jsonl}}]
models: [{id: p, source: dwh, sql: select * from p, unique_id: id, mappings: [{destination: out}]}]
";
    write(d.path(), yaml);
    ok(d.path(), &["--state", "st", "apply", "-f", "sluice.yaml"]);
    let report: serde_json::Value =
        serde_json::from_str(&ok(d.path(), &["--state", "st", "sync", "p", "--json"])).unwrap();
    assert_eq!(report["mappings"][0]["delivered"], 0, "{report}");
    assert_eq!(report["mappings"][0]["failed"], 2, "{report}");
    assert!(report.to_string().contains("state folder"), "{report}");
    assert!(!d.path().join("st/out.jsonl").exists());
    ok(d.path(), &["--state", "st", "sync", "p"]); // and the state still opens
}

#[test]
fn finding_9_apply_refuses_huge_schedules_and_overview_never_panics() {
    let d = tempfile::tempdir().unwrap();
    warehouse(d.path());
    let yaml = |schedule: &str| {
        format!(
            "sources: [{{id: dwh, kind: sqlite, path: w.db}}]
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, schedule: '{schedule}'}}]
"
        )
    };
    for bad in ["every 999999999999999m", "every 100000000d", "every 99999999999999999999999h"] {
        write(d.path(), &yaml(bad));
        let err = refused(d.path(), &["apply", "-f", "sluice.yaml"]);
        assert!(err.contains("models[0] (p).schedule"), "{bad}: {err}");
    }
    write(d.path(), &yaml("every 366d"));
    ok(d.path(), &["apply", "-f", "sluice.yaml"]);
    ok(d.path(), &["sync", "p"]);
    let o: serde_json::Value = serde_json::from_str(&ok(d.path(), &["overview", "--json"])).unwrap();
    assert!(o["models"][0]["next_run_at"].is_string(), "{o}");
    ok(d.path(), &["overview"]);
}

#[test]
fn finding_13_url_credentials_are_sealed_and_never_exported_or_logged() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "destinations: [{id: crm, kind: webhook, settings: {url: 'https://user:pw_secret@crm.example.com/in?api_key=k_secret'}}]\n",
    );
    ok(d.path(), &["apply", "-f", "sluice.yaml"]);
    for f in std::fs::read_dir(d.path().join(".sluice")).unwrap().flatten() {
        if f.path().is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned();
            assert!(!text.contains("k_secret") && !text.contains("pw_secret"), "{}", f.path().display());
        }
    }
    let exported = sluice(d.path(), &["export"]);
    let text = String::from_utf8_lossy(&exported.stdout);
    assert!(exported.status.success() && text.contains("${SLUICE_SECRET_1}"), "{text}");
    assert!(!text.contains("k_secret") && !String::from_utf8_lossy(&exported.stderr).contains("k_secret"));
    let log = ok(d.path(), &["audit-log", "--json"]);
    assert!(log.contains("crm.example.com") && !log.contains("k_secret") && !log.contains("pw_secret"), "{log}");
    // the sealed URL is what syncs use: re-exported in clear, it is intact
    let clear = ok(d.path(), &["export", "--reveal-secrets"]);
    assert!(clear.contains("https://user:pw_secret@crm.example.com/in?api_key=k_secret"), "{clear}");
}

#[test]
fn finding_15_apply_refuses_ids_with_commas() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "destinations: [{id: 'braze,evil', kind: file, settings: {path: out.jsonl}}]
consent_categories: [{id: 'C0004,C0002', name: Advertising}]
",
    );
    let err = refused(d.path(), &["apply", "-f", "sluice.yaml"]);
    assert!(err.contains("destinations[0] (braze,evil).id"), "{err}");
    assert!(err.contains("consent_categories[0] (C0004,C0002).id"), "{err}");
}
