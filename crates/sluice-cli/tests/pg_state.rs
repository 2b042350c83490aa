//! State on PostgreSQL (`--state postgres://...`, SPEC §8) with the real `sluice` binary: every
//! command on it, and Reverse ETL workers sharing it through leases (docs/SCALE.md): two
//! workers never run one model, a killed worker is taken over after its lease's TTL, and a
//! paused worker that lost its lease writes nothing.

mod common;
use base64::Engine;
use common::call;
use serde_json::Value;
use sluice_testkit::{pg_admin, pg_url, unique_name, Receiver};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A password the URL carries (trust auth ignores it): it must appear in no output.
const PASSWORD: &str = "pw_n0t_to_be_seen";

/// One PostgreSQL state (a fresh schema, dropped after) and a folder with a warehouse.
struct Setup {
    schema: String,
    url: String,
    dir: tempfile::TempDir,
    key: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = pg_admin().batch_execute(&format!("drop schema if exists \"{}\" cascade", self.schema));
    }
}

impl Setup {
    /// `rows` people (ids 1..=rows, every third without consent) and a workspace sending them to
    /// `rx` in batches of `batch`.
    fn new(rx: &Receiver, rows: u32, batch: u32) -> Self {
        let schema = unique_name("clistate");
        let base = pg_url().replacen("postgres://postgres@", &format!("postgres://postgres:{PASSWORD}@"), 1);
        assert!(base.contains(PASSWORD), "the test URL carries a password: {base}");
        let url = format!("{base}?schema={schema}");
        let dir = tempfile::tempdir().unwrap();
        let db = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        db.execute_batch("create table people (id integer primary key, email text, ads integer);").unwrap();
        for i in 1..=rows {
            db.execute("insert into people values (?1, ?2, ?3)", rusqlite::params![i, format!("u{i}@x"), i % 3 != 0])
                .unwrap();
        }
        std::fs::write(
            dir.path().join("sluice.yaml"),
            format!(
                "sources: [{{id: dwh, kind: sqlite, path: w.db}}]
destinations:
  - {{id: hook, kind: webhook, settings: {{url: \"{}/hook\", batch_size: {batch}, headers: {{Authorization: \"Bearer s3cret_hdr\"}}}}}}
consent_categories: [{{id: C0004, name: Advertising, destinations: [hook]}}]
models:
  - {{id: users, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: hook}}]}}
",
                rx.url()
            ),
        )
        .unwrap();
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        Self { schema, url, dir, key }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `sluice --state URL ARGS` run as worker `node` (its own local folder), with the shared key.
    fn command(&self, node: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.args(["--state", &self.url])
            .args(args)
            .current_dir(self.path())
            .env_remove("SLUICE_STATE")
            .env_remove("SLUICE_SECRET_KEY_FILE")
            .env("SLUICE_SECRET_KEY", &self.key)
            .env("SLUICE_LOCAL_DIR", self.path().join(node));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command("node-a", args).output().unwrap();
        no_password(&out);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "sluice {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn spawn(&self, node: &str, ttl: &str, args: &[&str]) -> Child {
        self.command(node, args)
            .env("SLUICE_LEASE_TTL_SECS", ttl)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Rows of a query on the state schema, each as text.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let mut c = pg_admin();
        c.batch_execute(&format!("set search_path to \"{}\"", self.schema)).unwrap();
        c.simple_query(sql)
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect())
                }
                _ => None,
            })
            .collect()
    }

    /// The whole checkpoint, id -> (held, pending, proof).
    fn checkpoint(&self) -> BTreeMap<String, Vec<String>> {
        self.query("select id, held, pending, proof from checkpoint order by id")
            .into_iter()
            .map(|mut r| (r.remove(0), r))
            .collect()
    }

    /// Run id -> status, oldest first.
    fn runs(&self) -> Vec<(i64, String)> {
        self.query("select id, status from runs order by id")
            .into_iter()
            .map(|r| (r[0].parse().unwrap(), r[1].clone()))
            .collect()
    }
}

fn no_password(out: &Output) {
    for s in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(s).contains(PASSWORD), "the password leaked: {}", String::from_utf8_lossy(s));
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The ids with consent among 1..=rows.
fn consented(rows: u32) -> HashSet<String> {
    (1..=rows).filter(|i| i % 3 != 0).map(|i| i.to_string()).collect()
}

fn ids(rx: &Receiver) -> Vec<String> {
    rx.items("/hook").iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {}", child.id());
}

#[test]
fn every_command_works_on_postgres_state() {
    let rx = Receiver::start();
    let s = Setup::new(&rx, 30, 100);

    // no shared key: refused, naming the setting (a key made up on one node opens nothing on another)
    let out = s.command("node-a", &["apply", "-f", "sluice.yaml"]).env_remove("SLUICE_SECRET_KEY").output().unwrap();
    no_password(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("SLUICE_SECRET_KEY"), "{err}");
    assert!(err.contains(&format!("schema {}", s.schema)), "the message names the state: {err}");
    assert!(!s.path().join("node-a/secret.key").exists(), "no local key was made up");

    let plan = s.ok(&["apply", "-f", "sluice.yaml"]);
    assert!(plan.contains("users"), "{plan}");
    assert!(!s.path().join("node-a/state.db").exists(), "the state is not in the local folder");
    assert!(!s.path().join(".sluice").exists(), "nothing in the default folder either");
    let stored = s.query("select config from workspace");
    assert_eq!(stored.len(), 1);
    assert!(!stored[0][0].contains("s3cret_hdr"), "the header is sealed in the database");

    let sync = json(&s.ok(&["sync", "users", "--json"]));
    let m = &sync["mappings"][0];
    assert_eq!(
        (m["status"].as_str(), m["delivered"].as_u64(), m["withheld_by_consent"].as_u64()),
        (Some("ok"), Some(20), Some(10))
    );
    assert_eq!(ids(&rx).into_iter().collect::<HashSet<_>>(), consented(30));
    assert_eq!(
        rx.accepted()[0].header("authorization"),
        Some("Bearer s3cret_hdr"),
        "sealed with the shared key, opened"
    );

    // --state after the subcommand, and SLUICE_STATE
    let o = json(&s.ok(&["overview", "--json"]));
    assert_eq!(o["models"][0]["last_run"]["mappings"][0]["delivered"], 20);
    let out = s.command("node-a", &["overview", "users"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hook"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    let out = c
        .args(["overview", "--json", "--state", &s.url])
        .current_dir(s.path())
        .env("SLUICE_SECRET_KEY", &s.key)
        .output()
        .unwrap();
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout))["models"][0]["last_run"]["mappings"][0]["delivered"], 20);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["usage", "--json"])
        .current_dir(s.path())
        .env("SLUICE_STATE", &s.url)
        .env("SLUICE_SECRET_KEY", &s.key)
        .output()
        .unwrap();
    no_password(&out);
    let usage = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(usage["usage"][0]["records"], 20, "{usage}");

    // a second sync delivers only the changes
    let db = rusqlite::Connection::open(s.path().join("w.db")).unwrap();
    db.execute_batch("update people set email = 'new@x' where id = 4; insert into people values (31, 'u31@x', 1);")
        .unwrap();
    rx.clear();
    let sync = json(&s.ok(&["sync", "users", "--json"]));
    let m = &sync["mappings"][0];
    assert_eq!((m["added"].as_u64(), m["updated"].as_u64(), m["delivered"].as_u64()), (Some(1), Some(1), Some(2)));
    assert_eq!(ids(&rx).into_iter().collect::<HashSet<_>>(), HashSet::from(["4".to_string(), "31".to_string()]));

    // a bad lease TTL is refused, naming the setting
    let bad = s.command("node-a", &["sync", "users"]).env("SLUICE_LEASE_TTL_SECS", "soon").output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("SLUICE_LEASE_TTL_SECS") && err.contains("soon"), "{err}");

    // tokens, the audit log, privacy requests and export, all on the database
    let token = s.ok(&["token", "create", "--role", "owner", "--name", "ops"]);
    assert!(token.trim().starts_with("slc_"), "{token}");
    assert_eq!(s.query("select name, role from tokens"), vec![vec!["ops".to_string(), "owner".to_string()]]);
    let reg = json(&s.ok(&["privacy", "suppress", "5", "--json"]));
    let reg_id = reg["id"].as_str().unwrap().to_string();
    assert_eq!(s.query("select ident from suppressions"), vec![vec!["5".to_string()]]);
    let listed = json(&s.ok(&["privacy", "list", "--json"]));
    assert_eq!(listed["regulations"][0]["id"], reg_id.as_str());
    let status = s.run(&["privacy", "status", &reg_id]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let log = json(&s.ok(&["audit-log", "--json"]));
    let kinds: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"privacy_request") && kinds.len() >= 2, "{kinds:?}");
    let exported = s.ok(&["export"]);
    assert!(exported.contains("hook") && !exported.contains("s3cret_hdr"), "{exported}");
    // the suppressed person is withheld by the next sync, read from the database
    db.execute_batch("update people set email = 'again@x' where id = 5;").unwrap();
    rx.clear();
    let sync = json(&s.ok(&["sync", "users", "--json"]));
    assert_eq!(sync["mappings"][0]["delivered"], 0, "{sync}");
    assert!(ids(&rx).is_empty());
}

#[test]
fn two_workers_started_together_run_the_model_once() {
    let rx = Receiver::start();
    rx.set_delay(Duration::from_millis(100));
    let s = Setup::new(&rx, 120, 10);
    s.ok(&["apply", "-f", "sluice.yaml"]);
    let a = s.spawn("node-a", "30", &["sync", "users", "--json"]);
    let b = s.spawn("node-b", "30", &["sync", "users", "--json"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    no_password(&a);
    no_password(&b);
    let (ran, refused) = if a.status.success() { (a, b) } else { (b, a) };
    assert!(ran.status.success(), "one worker runs it: {}", String::from_utf8_lossy(&ran.stderr));
    assert!(!refused.status.success(), "the other does not");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("is being synced by worker") && err.contains("lease until"), "{err}");
    assert_eq!(json(&String::from_utf8_lossy(&ran.stdout))["mappings"][0]["delivered"], 80);
    let got = ids(&rx);
    assert_eq!(got.len(), 80, "every record once");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), consented(120));
    assert_eq!(s.runs().len(), 1, "one run recorded");
    assert_eq!(s.query("select count(*) from leases where expires_at > 0"), vec![vec!["0".to_string()]], "released");
}

#[test]
fn a_killed_worker_is_taken_over_after_its_lease_runs_out() {
    let rx = Receiver::start();
    rx.set_delay(Duration::from_millis(100));
    let s = Setup::new(&rx, 300, 10);
    s.ok(&["apply", "-f", "sluice.yaml"]);
    let mut a = s.spawn("node-a", "2", &["sync", "users"]);
    wait_for("the first worker to deliver", 60, || rx.accepted().len() >= 3);
    a.kill().unwrap(); // SIGKILL, mid-run
    a.wait().unwrap();
    let before = ids(&rx).len();
    assert!(before < 200, "killed mid-run ({before} delivered)");

    // its lease still runs: another worker is refused, naming the dead worker
    let early = s.command("node-b", &["sync", "users"]).env("SLUICE_LEASE_TTL_SECS", "2").output().unwrap();
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(!early.status.success() && err.contains(&format!("/{}`", a.id())), "{err}");

    std::thread::sleep(Duration::from_millis(2200));
    rx.set_delay(Duration::ZERO);
    let out = s.command("node-b", &["sync", "users", "--json"]).env("SLUICE_LEASE_TTL_SECS", "2").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["status"], "ok");
    let got: HashSet<String> = ids(&rx).into_iter().collect();
    assert_eq!(got, consented(300), "every record delivered at least once");
    let o = json(&s.ok(&["overview", "users", "--json"]));
    assert_eq!(o["models"][0]["last_run"]["status"], "ok", "{o}");
    let held = s.query("select count(*) from checkpoint where held is not null and pending = 0");
    assert_eq!(held, vec![vec!["200".to_string()]], "the checkpoint holds every record with consent as delivered");
    let runs = s.runs();
    assert_eq!(runs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), vec!["interrupted", "ok"], "{runs:?}");
    // and again: nothing left to send
    rx.clear();
    let again = json(&s.ok(&["sync", "users", "--json"]));
    assert_eq!(again["mappings"][0]["delivered"], 0);
}

#[test]
fn a_paused_worker_past_its_lease_writes_nothing_after_the_takeover() {
    let rx = Receiver::start();
    rx.set_delay(Duration::from_millis(150));
    let s = Setup::new(&rx, 300, 10);
    s.ok(&["apply", "-f", "sluice.yaml"]);
    let a = s.spawn("node-a", "2", &["sync", "users"]);
    wait_for("the first worker to deliver", 60, || rx.accepted().len() >= 3);
    signal(&a, "-STOP");
    let paused_at = ids(&rx).len();
    std::thread::sleep(Duration::from_millis(2500));

    // another worker takes the model over and completes it
    rx.set_delay(Duration::ZERO);
    let out = s.command("node-b", &["sync", "users", "--json"]).env("SLUICE_LEASE_TTL_SECS", "2").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ids(&rx).into_iter().collect::<HashSet<_>>(), consented(300));
    let checkpoint = s.checkpoint();
    let runs = s.runs();
    assert_eq!(runs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), vec!["interrupted", "ok"], "{runs:?}");
    let tokens = s.query("select token from leases");

    // the paused worker wakes up: its writes are refused and it stops
    signal(&a, "-CONT");
    let t = Instant::now();
    let a = a.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(30), "it stops at once");
    no_password(&a);
    let err = String::from_utf8_lossy(&a.stderr);
    assert!(!a.status.success(), "the paused worker fails");
    // paused between writes it learns its lease is gone; paused inside a write's transaction, the
    // database ended that transaction (idle-in-transaction timeout) and the run stops on it
    assert!(
        (err.contains("expired or was taken over mid-run") && err.contains("interrupted"))
            || err.contains("idle-in-transaction timeout"),
        "{err}"
    );
    assert_eq!(s.checkpoint(), checkpoint, "nothing the paused worker did after the takeover reached the checkpoint");
    assert_eq!(s.runs(), runs, "its run stays interrupted");
    assert_eq!(s.query("select token from leases"), tokens, "and the lease stays the new worker's");
    assert!(paused_at > 0);
    // the checkpoint says everything is delivered
    rx.clear();
    let again = json(&s.ok(&["sync", "users", "--json"]));
    assert_eq!(again["mappings"][0]["delivered"], 0, "{again}");
}

#[test]
fn serve_keeps_its_control_state_in_postgres_and_its_event_log_local() {
    use std::io::BufRead;
    let rx = Receiver::start();
    let s = Setup::new(&rx, 9, 100);
    s.ok(&["apply", "-f", "sluice.yaml"]);
    s.ok(&["sync", "users"]);
    let token = s.ok(&["token", "create", "--role", "owner", "--name", "ops"]).trim().to_string();
    let mut serve = s
        .command("node-s", &["serve", "--listen", "127.0.0.1:0"])
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(std::env::temp_dir().join("pg_state_serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert!(url.starts_with("http://"), "{line}");

    // the token made by the CLI in the database authenticates; the runs are the database's
    let (status, body) = call("GET", &format!("{url}/api/v1/models/users/syncs"), &token, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    // a privacy request through the API lands in the database
    let (status, body) = call(
        "POST",
        &format!("{url}/api/v1/regulations"),
        &token,
        Some(serde_json::json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["7"]})),
    );
    let _ = serve.kill();
    let _ = serve.wait();
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(s.query("select ident from suppressions"), vec![vec!["7".to_string()]]);
    assert!(s.path().join("node-s/stream.db").exists(), "the event log is in the local folder");
    assert!(!s.path().join("node-s/state.db").exists(), "the state is not");
}
