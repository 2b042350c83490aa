//! `fakesnow -s` (PyPI `fakesnow[server]`): a Snowflake stand-in that speaks the connector
//! protocol (`/session/v1/login-request`, `/queries/v1/query-request`, Arrow rowsets) over a
//! DuckDB database. Started on a free port of 127.0.0.1 per test; a test that needs it fails
//! (never skips) when it cannot start. `scripts/test.sh` installs it.

use serde_json::{json, Value};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Starts the server on a free port with [`DATABASE`].[`SCHEMA`] created.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("fakesnow")
            .args(["-s", "--host", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `fakesnow -s` ({e}): install it with `pip install 'fakesnow[server]'` (scripts/test.sh does)"));
        let mut fs = Self { child, url: format!("http://127.0.0.1:{port}"), token: String::new() };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = fs.child.try_wait() {
                panic!("`fakesnow -s` exited with {status} before listening (is fakesnow[server] installed with snowflake-connector-python < 5?)");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "`fakesnow -s` did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
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
