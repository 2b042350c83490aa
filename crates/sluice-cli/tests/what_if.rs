//! `sluice apply --dry-run` shows the what-if (SPEC §12): per destination, the records of each
//! model it would gain or lose by a consent change. Checked against what the next real sync then
//! does, on a real SQLite file and a real PostgreSQL, through the real binary; and a dry run
//! changes nothing (state, audit log, checkpoints).

mod common;

use common::sluice;
use serde_json::Value;
use sluice_testkit::{pg_url, unique_name, Receiver};
use std::path::Path;

/// Rows of the test model: ids 1..=ROWS; `ads` granted for i % 3 == 0, refused for 1, NULL for
/// 2; `analytics` "true" for even ids, "false" for odd ones. Plus a duplicated id and a NULL id,
/// which a sync rejects and the what-if must skip.
const ROWS: u64 = 2500;

fn ads(i: u64) -> bool {
    i.is_multiple_of(3)
}
fn analytics(i: u64) -> bool {
    i.is_multiple_of(2)
}
fn count(f: impl Fn(u64) -> bool) -> u64 {
    (1..=ROWS).filter(|i| f(*i)).count() as u64
}

const SEED_SQL: &str = "insert into p (id, email, ads, analytics) values ";

fn seed_values() -> String {
    let mut v: Vec<String> = (1..=ROWS)
        .map(|i| {
            let a = match i % 3 {
                0 => "1",
                1 => "0",
                _ => "NULL",
            };
            format!("({i}, 'u{i}@x', {a}, '{}')", analytics(i))
        })
        .collect();
    // a duplicated id (both rows rejected) and a NULL id: never counted
    v.push(format!("({}, 'dup', 1, 'true')", ROWS + 1));
    v.push(format!("({}, 'dup2', 1, 'true')", ROWS + 1));
    v.push("(NULL, 'noid', 1, 'true')".into());
    v.join(",")
}

/// The workspace: categories Advertising (C0004) and Analytics (C0002) as given, webhook `braze`
/// and file `crm` mapped from model `users`.
fn workspace(source: &str, table: &str, rx: &Receiver, policy: &str, c4: &str, c2: &str) -> String {
    format!(
        r#"workspace: {{ policy: {policy} }}
sources:
  - {source}
destinations:
  - {{ id: braze, name: Braze, kind: webhook, settings: {{ url: "{url}/braze", batch_size: 500 }} }}
  - {{ id: crm, kind: file, settings: {{ path: ./out/crm.jsonl }} }}
consent_categories:
  - {{ id: C0004, name: Advertising, {c4} }}
  - {{ id: C0002, name: Analytics, {c2} }}
models:
  - id: users
    source: dwh
    sql: select id, email, ads, analytics from {table}
    unique_id: id
    consent: {{ C0004: ads, C0002: analytics }}
    mappings: [{{ destination: braze }}, {{ destination: crm }}]
"#,
        url = rx.url()
    )
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = sluice(dir, args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let (code, out, err) = run(dir, args);
    assert_eq!(code, 0, "sluice {args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn write(dir: &Path, name: &str, yaml: &str) {
    std::fs::write(dir.join(name), yaml).unwrap();
}

/// The what-if line of (destination, model).
fn line<'a>(report: &'a Value, dest: &str, model: &str) -> Option<&'a Value> {
    report["what_if"]["impacts"].as_array()?.iter().find(|i| i["destination"] == dest && i["model"] == model)
}

fn braze(sync: &Value) -> &Value {
    sync["mappings"].as_array().unwrap().iter().find(|m| m["destination"] == "braze").unwrap()
}

/// (export, audit log, checkpoint rows, mapping count).
type Snapshot = (String, String, Vec<(i64, String, Option<i64>, i64)>, i64);

/// Everything a dry run must leave as it was: the stored workspace, the audit log, every
/// checkpoint and mapping row.
fn state_snapshot(dir: &Path) -> Snapshot {
    let (_, export, _) = run(dir, &["export"]);
    let (_, audit, _) = run(dir, &["audit-log", "--json", "--limit", "1000"]);
    let db = rusqlite::Connection::open(dir.join(".sluice/state.db")).unwrap();
    let mut st = db.prepare("select mapping, id, held, pending from checkpoint order by mapping, id").unwrap();
    let rows =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect();
    let mappings: i64 = db.query_row("select count(*) from mappings", [], |r| r.get(0)).unwrap();
    // the export's header carries the time; the rest must be identical
    let export = export.lines().skip(1).collect::<Vec<_>>().join("\n");
    (export, audit, rows, mappings)
}

/// The three changes of the brief, each predicted by the dry run and then checked against the
/// sync that follows applying it.
fn scenario(dir: &Path, source: &str, table: &str) {
    let rx = Receiver::start();
    let ws = |policy: &str, c4: &str, c2: &str| workspace(source, table, &rx, policy, c4, c2);
    let v1 = ws("all", "destinations: [braze]", "destinations: []");
    write(dir, "v1.yaml", &v1);
    ok_json(dir, &["apply", "-f", "v1.yaml", "--json"]);
    let first = ok_json(dir, &["sync", "users", "--json"]);
    let withheld_by_ads = count(|i| !ads(i));
    assert_eq!(braze(&first)["withheld_by_consent"], withheld_by_ads);
    assert_eq!(braze(&first)["delivered"], count(ads));

    // 1. disabling Advertising: braze gains exactly the records Advertising withheld
    write(dir, "v2.yaml", &ws("all", "destinations: [braze], enabled: false", "destinations: []"));
    let before = state_snapshot(dir);
    let dry = ok_json(dir, &["apply", "-f", "v2.yaml", "--dry-run", "--json"]);
    assert_eq!(before, state_snapshot(dir), "a dry run changes nothing");
    assert_eq!(dry["applied"], false);
    let l = line(&dry, "braze", "users").unwrap_or_else(|| panic!("{dry}"));
    assert_eq!((l["gains"].as_u64(), l["loses"].as_u64()), (Some(withheld_by_ads), Some(0)), "{l}");
    assert!(line(&dry, "crm", "users").is_none(), "crm's decision cannot change: its model is not re-counted for it");
    ok_json(dir, &["apply", "-f", "v2.yaml", "--json"]);
    let s = ok_json(dir, &["sync", "users", "--json"]);
    assert_eq!(braze(&s)["added"], withheld_by_ads, "the sync sends exactly what the what-if said: {s}");

    // 2. adding Analytics to braze: it loses exactly the records that refused Analytics, all held now
    write(dir, "v3.yaml", &ws("all", "destinations: [braze], enabled: false", "destinations: [braze]"));
    let dry = ok_json(dir, &["apply", "-f", "v3.yaml", "--dry-run", "--json"]);
    let l = line(&dry, "braze", "users").unwrap();
    let refused = count(|i| !analytics(i));
    assert_eq!(
        (l["gains"].as_u64(), l["loses"].as_u64(), l["loses_held"].as_u64()),
        (Some(0), Some(refused), Some(refused))
    );
    ok_json(dir, &["apply", "-f", "v3.yaml", "--json"]);
    let s = ok_json(dir, &["sync", "users", "--json"]);
    assert_eq!(braze(&s)["withheld_by_consent"], refused, "{s}");

    // 3. policy all -> any with both categories on braze: it gains who consented to exactly one
    write(dir, "v4.yaml", &ws("all", "destinations: [braze]", "destinations: [braze]"));
    ok_json(dir, &["apply", "-f", "v4.yaml", "--json"]);
    let s4 = ok_json(dir, &["sync", "users", "--json"]);
    assert_eq!(braze(&s4)["withheld_by_consent"], count(|i| !(ads(i) && analytics(i))));
    write(dir, "v5.yaml", &ws("any", "destinations: [braze]", "destinations: [braze]"));
    let dry = ok_json(dir, &["apply", "-f", "v5.yaml", "--dry-run", "--json"]);
    let l = line(&dry, "braze", "users").unwrap();
    let one = count(|i| ads(i) != analytics(i));
    assert_eq!((l["gains"].as_u64(), l["loses"].as_u64()), (Some(one), Some(0)));
    ok_json(dir, &["apply", "-f", "v5.yaml", "--json"]);
    let s = ok_json(dir, &["sync", "users", "--json"]);
    assert_eq!(braze(&s)["withheld_by_consent"], count(|i| !ads(i) && !analytics(i)));
    // braze already holds every record it gains (step 1 sent them all; withdrawal keeps them,
    // SPEC §3): nothing is resent
    assert_eq!(braze(&s)["delivered"], 0, "{s}");

    // the human table
    let (code, out, _) = run(dir, &["apply", "-f", "v4.yaml", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("What-if") && out.contains("Destination") && out.contains("braze") && out.contains("users"),
        "{out}"
    );
    assert!(out.contains(&one.to_string()), "v5 -> v4 loses the {one} records consenting to only one: {out}");
}

#[test]
fn sqlite_what_if_predicts_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
    db.execute_batch(&format!("create table p(id integer, email text, ads, analytics); {SEED_SQL} {};", seed_values()))
        .unwrap();
    scenario(dir.path(), "{ id: dwh, kind: sqlite, path: ./w.db }", "p");
}

#[test]
fn postgres_what_if_predicts_the_next_sync() {
    let schema = unique_name("whatif");
    let mut pg = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("PostgreSQL must be running");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.p (id bigint, email text, ads boolean, analytics text);
         {} {};",
        SEED_SQL.replace(" p ", &format!(" {schema}.p ")),
        seed_values().replace(", 1, '", ", true, '").replace(", 0, '", ", false, '")
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{{ id: dwh, kind: postgres, url: \"{}\", allow_privileged_role: true }}", pg_url());
    scenario(dir.path(), &source, &format!("{schema}.p"));
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
}

#[test]
fn an_unreachable_warehouse_still_prints_the_plan_and_says_what_was_not_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
    db.execute_batch(&format!("create table p(id integer, email text, ads, analytics); {SEED_SQL} {};", seed_values()))
        .unwrap();
    let rx = Receiver::start();
    let v1 = workspace(
        "{ id: dwh, kind: sqlite, path: ./w.db }",
        "p",
        &rx,
        "all",
        "destinations: [braze]",
        "destinations: []",
    );
    write(dir.path(), "v1.yaml", &v1);
    ok_json(dir.path(), &["apply", "-f", "v1.yaml", "--json"]);
    // nothing listens on port 1
    let bad = v1
        .replace(
            "{ id: dwh, kind: sqlite, path: ./w.db }",
            "{ id: dwh, kind: postgres, url: \"postgres://postgres@127.0.0.1:1/x\" }",
        )
        .replace("destinations: [braze] }", "destinations: [braze], enabled: false }");
    write(dir.path(), "bad.yaml", &bad);
    let before = state_snapshot(dir.path());
    let (code, out, err) = run(dir.path(), &["apply", "-f", "bad.yaml", "--dry-run"]);
    assert_eq!(code, 2, "the change would not apply: {out}{err}");
    assert!(
        out.contains("change source dwh") && out.contains("change consent category C0004"),
        "the plan prints: {out}"
    );
    assert!(out.contains("not evaluated"), "the what-if says which model was not evaluated: {out}");
    assert!(err.contains("models[0] (users).sql"), "the error names the field: {err}");
    let (code, out, _) = run(dir.path(), &["apply", "-f", "bad.yaml", "--dry-run", "--json"]);
    assert_eq!(code, 2);
    let j: Value = serde_json::from_str(&out).unwrap();
    let l = line(&j, "braze", "users").unwrap();
    assert!(l["error"].as_str().is_some_and(|e| !e.is_empty()), "{l}");
    assert!(j["errors"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(before, state_snapshot(dir.path()), "nothing changed");
}
