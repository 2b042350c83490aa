//! Running the real `sluice` binary in a folder.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `sluice ARGS` in `dir`, with the default state folder.
pub fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLUICE_STATE")
        .output()
        .expect("run sluice")
}

/// Writes `sluice.yaml` in `dir` and applies it.
pub fn apply(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("sluice.yaml"), yaml).unwrap();
    let out = sluice(dir, &["apply", "-f", "sluice.yaml"]);
    assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));
}
