//! Schemathesis (from PyPI) against the served OpenAPI document: no server error and no
//! response that breaks the schema. scripts/test.sh installs it; a missing tool fails the test.

mod common;
use common::*;
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let s = start_with_model();
    let store = sluice_state::StateStore::open(&s.dir.path().join(".sluice")).unwrap();
    let owner = store.create_token("schemathesis", sluice_state::Role::Owner).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    let out = Command::new("st")
        .args(["--config-file", config, "run", &format!("{}/api/v1/openapi.json", s.url)])
        .args(["-H", &format!("Authorization: Bearer {owner}"), "--max-examples", "25", "--seed", "1"])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis (`st`) must be installed: scripts/test.sh installs it");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("passed"), "{text}");
}
