//! `fakesnow -s` (PyPI `fakesnow[server]`): a Snowflake stand-in that speaks the connector
//! protocol (`/session/v1/login-request`, `/queries/v1/query-request`, Arrow rowsets) over a
//! DuckDB database. Started on a free port of 127.0.0.1 per test; a test that needs it fails
//! (never skips) when it cannot start. `scripts/test.sh` installs it.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The database and schema tests log into.
pub const DATABASE: &str = "SLUICE_DB";
/// See [`DATABASE`].
pub const SCHEMA: &str = "PUBLIC";

/// A running `fakesnow -s`; stopped when dropped.
pub struct FakeSnow {
    child: Child,
    url: String,
    token: String,
}

impl FakeSnow {
    /// Starts the server on a port it picks itself (read from its log, so no other process can
    /// take it in between) with [`DATABASE`].[`SCHEMA`] created.
    pub fn start() -> Self {
        let mut fs = Self::spawn();
        let login = ureq::post(&format!("{}/session/v1/login-request", fs.url))
            .query("databaseName", DATABASE)
            .query("schemaName", SCHEMA)
            .send_json(json!({"data": {"ACCOUNT_NAME": "test", "LOGIN_NAME": "admin", "PASSWORD": "x", "SESSION_PARAMETERS": {}}}))
            .expect("fakesnow login")
            .into_json::<Value>()
            .expect("fakesnow login answer");
        fs.token = login["data"]["token"].as_str().expect("a session token").to_string();
        fs.exec(&format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"));
        fs.exec(&format!("CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}"));
        fs
    }

    /// `fakesnow -s` once it listens; its log is drained by a thread (uvicorn logs every request).
    fn spawn() -> Self {
        let mut child = Command::new("fakesnow")
            .args(["-s", "--host", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `fakesnow -s` ({e}): install it with `pip install 'fakesnow[server]'` (scripts/test.sh does)")
            });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        std::thread::spawn(move || {
            let mut log = String::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    let port = line.split("Uvicorn running on http://127.0.0.1:").nth(1);
                    match port.and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()) {
                        Some(port) => {
                            sent = true;
                            let _ = tx.send(Ok(port));
                        }
                        None => log.push_str(&format!("{line}\n")),
                    }
                }
            }
            if !sent {
                let _ = tx.send(Err(log));
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(log)) => panic!(
                "`fakesnow -s` exited before listening (is fakesnow[server] installed with snowflake-connector-python < 5? \
                 scripts/test.sh installs both):\n{log}"
            ),
            Err(_) => panic!("`fakesnow -s` did not listen within 60 s"),
        };
        Self { child, url: format!("http://127.0.0.1:{port}"), token: String::new() }
    }

    /// The base URL (the source's `endpoint`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one statement as the admin session; panics with the server's message if it fails.
    pub fn exec(&self, sql: &str) -> Value {
        let v: Value = ureq::post(&format!("{}/queries/v1/query-request", self.url))
            .query("requestId", "setup")
            .set("Authorization", &format!("Snowflake Token=\"{}\"", self.token))
            .send_json(json!({"sqlText": sql, "sequenceId": 1}))
            .expect("fakesnow query")
            .into_json()
            .expect("fakesnow answer");
        assert_eq!(v["success"], json!(true), "fakesnow refused {sql}: {}", v["message"]);
        v
    }
}

impl Drop for FakeSnow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
