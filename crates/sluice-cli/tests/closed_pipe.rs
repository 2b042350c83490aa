//! Issue 8, finding 19: a reader that goes away (`sluice ... | head`) ends the CLI quietly.

mod common;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn finding_19_a_closed_stdout_ends_the_cli_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // a plan far longer than a pipe's buffer, so the CLI is still writing when the reader leaves
    let mut yaml = String::from("destinations:\n");
    for i in 0..3000 {
        yaml.push_str(&format!("  - {{id: d{i}, kind: file, settings: {{path: out/d{i}.jsonl}}}}\n"));
    }
    std::fs::write(dir.path().join("sluice.yaml"), yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["apply", "-f", "sluice.yaml", "--dry-run"])
        .current_dir(dir.path())
        .env_remove("SLUICE_STATE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // the reader goes away, as `| head -c 16` does
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "a closed pipe is not an error: {stderr}");
}
