//! Credentials at rest: the state database alone does not reveal them, and syncs still use them.

mod common;
use common::{apply, sluice};
use sluice_testkit::Receiver;

#[test]
fn state_files_hold_no_plaintext_credential() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("w.db"))
        .unwrap()
        .execute_batch("create table p(id integer, email text); insert into p values (1, 'a@x');")
        .unwrap();
    apply(
        dir.path(),
        &format!(
            "sources:
  - {{id: dwh, kind: sqlite, path: w.db}}
  - {{id: pg, kind: postgres, url: \"postgres://svc:hunter2pass@127.0.0.1:1/x\"}}
  - {{id: web, kind: events, write_key: wk_topsecret}}
destinations:
  - {{id: crm, kind: webhook, settings: {{url: \"{}/crm\", headers: {{Authorization: \"Bearer tok_s3cretvalue\"}}}}}}
  - {{id: seg, kind: connections, settings: {{url: \"{}\", write_key: seg_writekey_xyz}}}}
models:
  - {{id: p, source: dwh, sql: select * from p, unique_id: id, mappings: [{{destination: crm}}]}}
",
            rx.url(),
            rx.url()
        ),
    );
    let out = sluice(dir.path(), &["sync", "p"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        rx.requests()[0].header("authorization"),
        Some("Bearer tok_s3cretvalue"),
        "the sealed header still works"
    );
    let state = dir.path().join(".sluice");
    let mut raw = Vec::new();
    for f in std::fs::read_dir(&state).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() && f.file_name().unwrap() != "secret.key" {
            raw.extend(std::fs::read(&f).unwrap());
        }
    }
    assert!(!raw.is_empty());
    let text = String::from_utf8_lossy(&raw);
    for secret in ["hunter2pass", "wk_topsecret", "tok_s3cretvalue", "seg_writekey_xyz"] {
        assert!(!text.contains(secret), "{secret} is readable in the state files");
    }
    assert!(text.contains("sealed:v1:"));
    // the audit log records who changed what, before and after, with credentials redacted
    let log: serde_json::Value = serde_json::from_slice(&sluice(dir.path(), &["audit-log", "--json"]).stdout).unwrap();
    let entries = log["entries"].as_array().unwrap();
    let pg = entries.iter().find(|e| e["entity"] == "pg").unwrap();
    assert_eq!((pg["action"].as_str(), pg["after"]["url"].as_str()), (Some("create"), Some("<set>")));
    assert!(pg["actor"].as_str().unwrap().starts_with("cli"));
    let text = log.to_string();
    for secret in ["hunter2pass", "wk_topsecret", "tok_s3cretvalue", "seg_writekey_xyz"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    // API tokens: printed once, stored hashed
    let out = sluice(dir.path(), &["token", "create", "--role", "owner", "--name", "ci"]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("slc_"), "{token}");
    let raw = std::fs::read(state.join("state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(&token[4..]));
    let out = sluice(dir.path(), &["token", "create", "--role", "admin", "--name", "x"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--role must be `owner` or `member`")
    );
    // another key cannot open them, and says so
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("k"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["sync", "p"])
        .current_dir(dir.path())
        .env_remove("SLUICE_STATE")
        .env("SLUICE_SECRET_KEY_FILE", other.path().join("k"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be decrypted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["apply", "-f", "sluice.yaml"])
        .current_dir(dir.path())
        .env_remove("SLUICE_STATE")
        .env("SLUICE_SECRET_KEY_FILE", other.path().join("k"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "apply with the wrong key must not overwrite the sealed state");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be decrypted"));
}

#[test]
fn export_round_trips_with_placeholders_for_credentials() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("w.db")).unwrap().execute_batch("create table p(id integer);").unwrap();
    apply(
        dir.path(),
        &format!(
            "sources: [{{id: dwh, kind: sqlite, path: w.db}}, {{id: web, kind: events, write_key: wk_exported}}]
destinations: [{{id: crm, kind: webhook, settings: {{url: \"{}/crm\", headers: {{X-Key: hdr_exported}}}}}}]
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, schedule: every 1h, mappings: [{{destination: crm, on: [added]}}]}}]
",
            rx.url()
        ),
    );
    let out = sluice(dir.path(), &["export", "-f", "exported.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.path().join("exported.yaml")).unwrap();
    assert!(!text.contains("wk_exported") && !text.contains("hdr_exported"), "{text}");
    // the URL's path can be a credential (Slack, Discord): a placeholder too
    assert!(!text.contains("/crm"), "{text}");
    // applying the export (with the placeholders set) changes nothing
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["apply", "-f", "exported.yaml", "--dry-run"]).current_dir(dir.path()).env_remove("SLUICE_STATE");
    let mut set = 0;
    for line in text.lines() {
        let Some(at) = line.find("${SLUICE_SECRET_") else { continue };
        let name = &line[at + 2..at + 2 + line[at + 2..].find('}').unwrap()];
        let value = if line.contains("write_key") {
            "wk_exported".to_string()
        } else if line.contains("X-Key") {
            "hdr_exported".to_string()
        } else {
            assert!(line.contains("url"), "{line}");
            format!("{}/crm", rx.url())
        };
        cmd.env(name, value);
        set += 1;
    }
    assert_eq!(set, 3, "{text}");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No changes"), "{}", String::from_utf8_lossy(&out.stdout));
}
