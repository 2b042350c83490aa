//! A real `sluice serve` in this process on 127.0.0.1, a real HTTP receiver for destinations.
#![allow(dead_code)]

use serde_json::Value;
use sluice_testkit::Receiver;
use std::time::{Duration, Instant};

pub struct Server {
    /// The public side (and the private side unless `admin_url` is set).
    pub url: String,
    /// The private side, when served on its own address.
    pub admin_url: Option<String>,
    /// An owner token, sent by [`Server::get`] to the private side.
    pub token: String,
    pub rx: Receiver,
    pub dir: tempfile::TempDir,
}

/// Starts a server for a workspace YAML where `{URL}` is the receiver's base URL. An event
/// source `web` with write key `wk_web` is always there.
pub fn start(yaml: &str) -> Server {
    start_in(tempfile::tempdir().unwrap(), "", yaml)
}

/// As [`start`], in `dir`, with more sources (flow mappings, comma-separated).
pub fn start_in(dir: tempfile::TempDir, sources: &str, yaml: &str) -> Server {
    start_with(dir, sources, yaml, false)
}

/// As [`start_in`]; with `admin`, the private side listens on its own address.
pub fn start_with(dir: tempfile::TempDir, sources: &str, yaml: &str, admin: bool) -> Server {
    start_cfg(dir, sources, yaml, |c| {
        if admin {
            c.admin_listen = Some("127.0.0.1:0".into());
        }
    })
}

/// As [`start_in`], with the server's configuration adjusted by `configure`.
pub fn start_cfg(
    dir: tempfile::TempDir,
    sources: &str,
    yaml: &str,
    configure: impl FnOnce(&mut sluice_server::ServeConfig),
) -> Server {
    let rx = Receiver::start();
    let extra = if sources.is_empty() { String::new() } else { format!(", {sources}") };
    let yaml =
        format!("sources: [{{id: web, kind: events, write_key: wk_web}}{extra}]\n{}", yaml.replace("{URL}", rx.url()));
    let ws = sluice_engine::Workspace::from_yaml(&yaml, dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
    // applied, as `sluice apply` would: the control API edits the stored workspace
    let store = sluice_state::StateStore::open(&dir.path().join(".sluice")).unwrap();
    store.save_workspace(&ws.to_stored("now".into(), &store).unwrap()).unwrap();
    let token = store.create_token("test-owner", sluice_state::Role::Owner).unwrap();
    let mut config =
        sluice_server::ServeConfig::new(ws.file, dir.path().to_path_buf(), dir.path().join(".sluice"), "127.0.0.1:0");
    configure(&mut config);
    let (tx, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        sluice_server::serve(config, |a| tx.send(a).unwrap()).unwrap();
    });
    let bound = addr.recv_timeout(Duration::from_secs(10)).expect("server started");
    Server {
        url: format!("http://{}", bound.public),
        admin_url: bound.admin.map(|a| format!("http://{a}")),
        token,
        rx,
        dir,
    }
}

/// Webhook destination `id` named `name` posting to `{URL}/id`.
pub fn hook(id: &str, name: &str) -> String {
    format!("  - {{id: {id}, name: \"{name}\", kind: webhook, settings: {{url: \"{{URL}}/{id}\", batch_size: 50, retry_initial_ms: 10, retry_max_ms: 20, max_attempts: 2, timeout_secs: 1}}}}\n")
}

impl Server {
    /// POSTs JSON with the write key as Basic auth; returns (status, body).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string(), Some("wk_web"), None)
    }

    pub fn post_raw(&self, path: &str, body: &str, key: Option<&str>, encoding: Option<&str>) -> (u16, Value) {
        self.post_bytes(path, body.as_bytes(), key, encoding)
    }

    pub fn post_bytes(&self, path: &str, body: &[u8], key: Option<&str>, encoding: Option<&str>) -> (u16, Value) {
        let mut req = ureq::post(&format!("{}{path}", self.url)).set("Content-Type", "application/json");
        if let Some(k) = key {
            use base64::Engine;
            req = req.set(
                "Authorization",
                &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{k}:"))),
            );
        }
        if let Some(e) = encoding {
            req = req.set("Content-Encoding", e);
        }
        match req.send_bytes(body) {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{e}"),
        }
    }

    /// GETs a private path with the owner token.
    pub fn get(&self, path: &str) -> (u16, String) {
        let base = self.admin_url.as_deref().unwrap_or(&self.url);
        get_as(&format!("{base}{path}"), Some(&self.token))
    }
}

/// GETs `url`, with a bearer token when given; returns (status, body).
pub fn get_as(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

impl Server {
    /// messageIds delivered to destination path `/id`, waiting until `n` arrived (or 10 s).
    pub fn delivered(&self, path: &str, n: usize) -> Vec<String> {
        let t = Instant::now();
        loop {
            let ids: Vec<String> =
                self.rx.items(path).iter().filter_map(|e| e["messageId"].as_str().map(String::from)).collect();
            if ids.len() >= n || t.elapsed() > Duration::from_secs(10) {
                return ids;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A folder holding an SQLite warehouse `w.db` made by `sql` (for `start_in`).
pub fn warehouse_dir(sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("w.db")).unwrap().execute_batch(sql).unwrap();
    dir
}

/// A server with an SQLite model `p` (ids 1 and 2; 2 refused Advertising) mapped to webhook `ads`,
/// which category C0004 governs.
pub fn start_with_model() -> Server {
    start_in(
        warehouse_dir("create table p(id integer, email text, ads); insert into p values (1,'a',1),(2,'b',0);"),
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}]}}]
",
            hook("ads", "Ads")
        ),
    )
}

impl Server {
    /// Waits (up to 15 s) until every delivery the debugger reports for source `web` has reached
    /// the receiver; returns, per messageId, the destinations that received it.
    pub fn settle(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.settle_source("web")
    }

    /// As [`Server::settle`], for the events of `source`.
    pub fn settle_source(&self, source: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        let t = Instant::now();
        loop {
            let (_, body) = self.get(&format!("/v1/debugger/{source}?limit=1000"));
            let dbg: Value = serde_json::from_str(&body).unwrap();
            let mut pending = 0;
            let mut got = std::collections::BTreeMap::new();
            for e in dbg["events"].as_array().unwrap() {
                let mid = e["event"]["messageId"].as_str().unwrap().to_string();
                let mut reached = vec![];
                for (dest, d) in e["decisions"].as_object().unwrap() {
                    let arrived = self.rx.items(&format!("/{dest}")).iter().any(|x| x["messageId"] == mid.as_str());
                    if arrived {
                        reached.push(dest.clone());
                    } else if d["route"] == "deliver" {
                        pending += 1;
                    }
                }
                got.insert(mid, reached);
            }
            if pending == 0 || t.elapsed() > Duration::from_secs(15) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Calls the control API as `token`; returns (status, JSON body).
pub fn call(s: &Server, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = ureq::request(method, &format!("{}{path}", s.url));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(st, r)) => (st, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    }
}

/// An owner token (olivia) and a member token (max).
pub fn tokens(s: &Server) -> (String, String) {
    let store = sluice_state::StateStore::open(&s.dir.path().join(".sluice")).unwrap();
    (
        store.create_token("olivia", sluice_state::Role::Owner).unwrap(),
        store.create_token("max", sluice_state::Role::Member).unwrap(),
    )
}

/// POSTs a body of `len` bytes to `path` over raw TCP and returns the answer (status line,
/// headers and body). The server answers a body over its limit before reading it all and then
/// closes, which a client still writing would see as a broken pipe: the body is written on
/// another thread, the answer read here.
pub fn post_oversized(s: &Server, path: &str, len: usize, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {len}\r\n\r\n");
    std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&vec![b' '; len]);
    });
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
