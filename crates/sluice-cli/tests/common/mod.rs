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

/// Starts `sluice ARGS` in `dir` in the background, its output discarded (a child to kill).
pub fn spawn_quiet(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLUICE_STATE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sluice")
}

/// Writes `sluice.yaml` in `dir` and applies it.
pub fn apply(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("sluice.yaml"), yaml).unwrap();
    let out = sluice(dir, &["apply", "-f", "sluice.yaml"]);
    assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts `sluice serve` on a free port of 127.0.0.1 in `dir`; returns the child and its URL.
pub fn serve(dir: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("SLUICE_STATE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sluice serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert!(url.starts_with("http://"), "unexpected first line: {line}");
    (child, url)
}

/// An HTTP call to a running server with an API token: (status, body).
pub fn call(method: &str, url: &str, token: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let req = ureq::request(method, url).set("Authorization", &format!("Bearer {token}"));
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}
