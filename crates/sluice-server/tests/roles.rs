//! Roles that protect consent, and configuration values a member or owner sends over the control
//! API (issue 8, findings 2, 3, 4, 9, 13, 15): through a real `sluice serve` over HTTP.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn field(b: &Value) -> String {
    b["error"]["field"].as_str().unwrap_or_default().to_string()
}

/// The stored workspace, credentials opened.
fn stored(s: &Server) -> sluice_core::WorkspaceFile {
    let store = sluice_state::StateStore::open(&s.dir.path().join(".sluice")).unwrap();
    sluice_engine::Workspace::load(&store).unwrap().file
}

/// Waits until `check` holds (10 s at most).
fn wait_for(what: &str, check: impl FnMut() -> bool) {
    sluice_testkit::wait_for(what, Duration::from_secs(10), check)
}

/// Starts a sync of `model` and returns its finished run as `token` reads it.
fn sync(s: &Server, model: &str, token: &str) -> Value {
    let runs = |s: &Server| call(s, "GET", &format!("/api/v1/models/{model}/syncs"), Some(token), None).1;
    let before = runs(s)["total"].as_u64().unwrap_or(0);
    assert_eq!(call(s, "POST", &format!("/api/v1/models/{model}/syncs"), Some(token), None).0, 202);
    let mut run = Value::Null;
    wait_for("the sync run", || {
        let r = runs(s);
        run = r["items"][0].clone();
        r["total"].as_u64().unwrap_or(0) > before && run.get("mappings").is_some()
    });
    run
}

fn model_body(s: &Server, token: &str, id: &str) -> Value {
    let (st, mut m) = call(s, "GET", &format!("/api/v1/models/{id}"), Some(token), None);
    assert_eq!(st, 200);
    m.as_object_mut().unwrap().remove("next_run_at");
    m
}

#[test]
fn finding_2_member_cannot_change_sql_of_consent_mapped_model() {
    let s = start_with_model();
    let (owner, member) = tokens(&s);
    let m = model_body(&s, &member, "p");
    // `true as ads`: everyone "consents" — refused, as are the source and the unique id
    for (k, v) in
        [("sql", json!("select id, email, 1 as ads from p")), ("unique_id", json!("email")), ("source", json!("web"))]
    {
        let mut bad = m.clone();
        bad[k] = v;
        let (st, b) = call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(bad));
        assert_eq!((st, field(&b)), (403, k.to_string()), "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("only owners"), "{b}");
    }
    // nor may a member route a new consent-less model to the consent-governed destination
    let q = json!({"source": "dwh", "sql": "select * from p", "unique_id": "id", "mappings": [{"destination": "ads"}]});
    let (st, b) = call(&s, "PUT", "/api/v1/models/q", Some(&member), Some(q));
    assert_eq!((st, field(&b)), (403, "mappings".to_string()), "{b}");
    // members keep their job: schedules and syncs
    let mut scheduled = m.clone();
    scheduled["schedule"] = json!("0 3 1 1 *");
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(scheduled)).0, 200);
    let run = sync(&s, "p", &member);
    assert_eq!(run["mappings"][0]["withheld_by_consent"], 1, "{run}");
    let ids: Vec<Value> = s.rx.items("/ads").iter().map(|i| i["id"].clone()).collect();
    assert_eq!(ids, vec![json!("1")], "the person who refused advertising never reaches the ad tool");
    // the owner may change the SQL
    let mut owned = model_body(&s, &owner, "p");
    owned["sql"] = json!("select id, email, ads from p where id = 1");
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&owner), Some(owned)).0, 200);
}

#[test]
fn finding_3_member_cannot_repoint_destination_secrets() {
    let s = start_in(
        tempfile::tempdir().unwrap(),
        "{id: pg, kind: postgres, url: 'postgres://postgres:pw_secret@127.0.0.1:5432/test', statement_timeout_secs: 30}",
        &format!(
            "destinations:\n{}  - {{id: seg, kind: connections, settings: {{url: \"{{URL}}/seg\", write_key: wk_secret}}}}\n",
            hook("crm", "CRM").replace("batch_size: 50", "batch_size: 50, headers: {Authorization: \"Bearer tok_secret\"}")
        ),
    );
    let (owner, member) = tokens(&s);
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    let item = |id: &str| list["items"].as_array().unwrap().iter().find(|d| d["id"] == id).unwrap().clone();
    let evil = format!("{}/evil", s.rx.url());
    // a member re-pointing a destination with its secrets kept as `<set>`: refused
    for id in ["crm", "seg"] {
        let mut d = item(id);
        d["settings"]["url"] = json!(evil);
        let (st, b) = call(&s, "PUT", &format!("/api/v1/destinations/{id}"), Some(&member), Some(d));
        assert_eq!((st, field(&b)), (403, "settings.url".to_string()), "{b}");
    }
    // an owner may re-point, but the stored secrets stay behind
    let mut crm = item("crm");
    crm["settings"]["url"] = json!(evil);
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/crm", Some(&owner), Some(crm));
    assert_eq!((st, b["settings"]["headers"].get("Authorization")), (200, None), "{b}");
    let mut seg = item("seg");
    seg["settings"]["url"] = json!(evil);
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/seg", Some(&owner), Some(seg));
    assert_eq!(st, 422, "a connections destination needs its write key again: {b}");
    assert!(field(&b).ends_with("settings.write_key"), "{b}");
    // the delivery worker follows the change within a moment: send until the new URL receives
    let mut n = 0;
    wait_for("delivery to the new URL", || {
        n += 1;
        assert_eq!(s.post("/v1/track", &json!({"userId": "u", "event": "E", "messageId": format!("m{n}")})).0, 200);
        std::thread::sleep(Duration::from_millis(100));
        s.rx.requests().iter().any(|r| r.url.starts_with("/evil"))
    });
    for r in s.rx.requests().iter().filter(|r| r.url.starts_with("/evil")) {
        assert_eq!(r.header("authorization"), None, "the stored header never reaches the new host");
    }
    // a PostgreSQL source: members may not touch it; `tls` changes drop the stored URL
    let src = json!({"kind": "postgres", "url": "<set>", "tls": "disable", "statement_timeout_secs": 30});
    let (st, b) = call(&s, "PUT", "/api/v1/sources/pg", Some(&member), Some(src.clone()));
    assert_eq!((st, field(&b)), (403, "tls".to_string()), "{b}");
    let timeout = json!({"kind": "postgres", "url": "<set>", "statement_timeout_secs": 1});
    assert_eq!(call(&s, "PUT", "/api/v1/sources/pg", Some(&member), Some(timeout.clone())).0, 403);
    let (st, b) = call(&s, "PUT", "/api/v1/sources/pg", Some(&owner), Some(src));
    assert_eq!(st, 422, "{b}");
    assert!(field(&b).ends_with(".url"), "{b}");
    assert_eq!(call(&s, "PUT", "/api/v1/sources/pg", Some(&owner), Some(timeout)).0, 200);
    let pg = stored(&s).sources.into_iter().find(|x| x.id == "pg").unwrap();
    let sluice_core::SourceSettings::Postgres(pg) = pg.settings else { panic!("a postgres source") };
    assert_eq!(pg.url.expose(), "postgres://postgres:pw_secret@127.0.0.1:5432/test", "same address: kept");
}

#[test]
fn finding_4_member_file_destination_cannot_write_outside_the_workspace() {
    let s = start("destinations: []\n");
    let (owner, member) = tokens(&s);
    let key_file = s.dir.path().join(".sluice/secret.key");
    let key = std::fs::read(&key_file).unwrap();
    let file = |path: &str| json!({"kind": "file", "settings": {"path": path}});
    // a new destination is unmapped, so it would receive everyone (R1): owners only
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/out", Some(&member), Some(file("out.jsonl")));
    assert_eq!((st, field(&b)), (403, "id".to_string()), "{b}");
    let outside = tempfile::tempdir().unwrap();
    let abs = outside.path().join("x.jsonl").display().to_string();
    for bad in [".sluice/secret.key", "../escape.jsonl", "out/../../escape.jsonl", abs.as_str()] {
        let (st, b) = call(&s, "PUT", "/api/v1/destinations/out", Some(&owner), Some(file(bad)));
        assert_eq!(st, 422, "{bad}: {b}");
        assert!(field(&b).ends_with("settings.path"), "{bad}: {b}");
    }
    assert_eq!(std::fs::read(&key_file).unwrap(), key, "the secret key is untouched");
    assert!(!s.dir.path().parent().unwrap().join("escape.jsonl").exists());
    // inside the workspace folder works, and the server still serves
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/out", Some(&owner), Some(file("out/events.jsonl"))).0, 200);
    assert_eq!(s.post("/v1/track", &json!({"userId": "u", "event": "E", "messageId": "f1"})).0, 200);
    let written = s.dir.path().join("out/events.jsonl");
    wait_for("the file destination", || std::fs::read_to_string(&written).is_ok_and(|t| t.contains("f1")));
}

#[test]
fn finding_9_huge_schedules_answer_422_and_the_next_write_succeeds() {
    let s = start_with_model();
    let (owner, member) = tokens(&s);
    let m = model_body(&s, &owner, "p");
    for bad in ["every 999999999999999m", "every 100000000d", "every 9223372036854775807h"] {
        let mut b = m.clone();
        b["schedule"] = json!(bad);
        let (st, body) = call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(b));
        assert_eq!(st, 422, "{bad}: {body}");
        assert!(field(&body).ends_with(".schedule"), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("longest interval"), "{body}");
    }
    let mut ok = m.clone();
    ok["schedule"] = json!("every 366d");
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(ok)).0, 200, "the next write succeeds");
    let (st, p) = call(&s, "GET", "/api/v1/models/p", Some(&member), None);
    assert_eq!((st, p["schedule"].as_str()), (200, Some("every 366d")));
    assert!(p["next_run_at"].is_string(), "{p}");
}

/// A one-shot HTTP server that answers every request 400 with `body`.
fn answering_400(body: &'static str) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 65536];
            let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn finding_13_credentials_in_webhook_urls_are_sealed_and_redacted() {
    let dir = warehouse_dir("create table p(id integer, email text); insert into p values (1,'a');");
    let s = start_in(dir, "{id: dwh, kind: sqlite, path: w.db}", "destinations: []\n");
    let (owner, member) = tokens(&s);
    let with_creds = |base: &str, path: &str| {
        format!("{}{path}?api_key=k_secret", base.replace("http://", "http://user:pw_secret@"))
    };
    let hook = |url: String| json!({"kind": "webhook", "settings": {"url": url, "max_attempts": 1, "timeout_secs": 1}});
    let crm = with_creds(s.rx.url(), "/crm");
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/crm", Some(&owner), Some(hook(crm.clone()))).0, 200);
    let internal = answering_400("internal-detail-of-the-service");
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/svc", Some(&owner), Some(hook(internal))).0, 200);
    let down = with_creds("http://127.0.0.1:1", "/x");
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/down", Some(&owner), Some(hook(down))).0, 200);
    let hidden = |v: &Value| {
        let t = v.to_string();
        !t.contains("pw_secret") && !t.contains("k_secret")
    };
    // API reads, the audit log and the state database never show them
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    assert!(hidden(&list), "{list}");
    let shown = list["items"].as_array().unwrap().iter().find(|d| d["id"] == "crm").unwrap().clone();
    assert!(shown["settings"]["url"].as_str().unwrap().contains("api_key=<set>"), "{shown}");
    let (_, log) = call(&s, "GET", "/api/v1/audit-log", Some(&owner), None);
    assert!(hidden(&log) && log["items"].as_array().unwrap().len() >= 3, "{log}");
    for f in std::fs::read_dir(s.dir.path().join(".sluice")).unwrap().flatten() {
        if f.path().is_file() {
            let bytes = std::fs::read(f.path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains("k_secret"), "{} holds the key", f.path().display());
        }
    }
    // what GET showed round-trips: the stored URL, credentials and all, stays in use
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/crm", Some(&member), Some(shown)).0, 200);
    assert_eq!(stored(&s).destinations.iter().find(|d| d.id == "crm").unwrap().settings["url"], json!(crm));
    // sync reports: URLs redacted for everyone; response bodies of services only for owners
    let model = json!({"source": "dwh", "sql": "select * from p", "unique_id": "id",
        "mappings": [{"destination": "crm"}, {"destination": "svc"}, {"destination": "down"}]});
    assert_eq!(call(&s, "PUT", "/api/v1/models/m", Some(&member), Some(model)).0, 200);
    let run = sync(&s, "m", &member);
    assert!(s.rx.requests().iter().any(|r| r.url.contains("api_key=k_secret")), "delivered with the credentials");
    assert!(hidden(&run), "{run}");
    let text = run.to_string();
    assert!(text.contains("HTTP 400") && !text.contains("internal-detail"), "{run}");
    let run_id = run["run_id"].as_i64().unwrap();
    let (_, as_owner) = call(&s, "GET", &format!("/api/v1/syncs/{run_id}"), Some(&owner), None);
    assert!(hidden(&as_owner) && as_owner.to_string().contains("internal-detail"), "{as_owner}");
}

#[test]
fn finding_15_ids_with_commas_or_odd_characters_are_refused() {
    let s = start("destinations: []\n");
    let (owner, _) = tokens(&s);
    let url = format!("{}/x", s.rx.url());
    for id in ["a,b", "ads%2Cevil", "a%20b", "-lead", "%C3%A9t%C3%A9"] {
        let body = json!({"kind": "webhook", "settings": {"url": url}});
        let (st, b) = call(&s, "PUT", &format!("/api/v1/destinations/{id}"), Some(&owner), Some(body));
        assert_eq!(st, 422, "{id}: {b}");
        assert!(field(&b).starts_with("destinations[") && field(&b).ends_with(".id"), "{b}");
    }
    for id in ["C0004,C0002", "C\"1", "C 1"] {
        let (st, b) =
            call(&s, "POST", "/api/v1/consent-categories", Some(&owner), Some(json!({"id": id, "name": "Ads"})));
        assert_eq!(st, 422, "{id}: {b}");
        assert!(field(&b).ends_with(".id"), "{b}");
    }
    assert!(stored(&s).destinations.is_empty() && stored(&s).consent_categories.is_empty());
}

mod hostile_config {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn server() -> &'static (Server, String) {
        static S: OnceLock<(Server, String)> = OnceLock::new();
        S.get_or_init(|| {
            let s = start_with_model();
            let (owner, _) = tokens(&s);
            (s, owner)
        })
    }

    fn enc(id: &str) -> String {
        id.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect()
    }

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            Just(json!(1e300)),
            Just(json!(-1)),
            Just(json!(0)),
            Just(json!("NaN")),
            Just(json!(u64::MAX)),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_.,-]{1,70}",
            "\\PC{1,40}",
            "(every )?[0-9]{1,25} ?(m|h|d|s|min|days)?",
            "[*0-9/,-]{1,6}( [*0-9/,-]{1,6}){4,6}",
            "(\\.\\./|/|\\./|\\.sluice/)?[a-z.]{1,12}(/[a-z.]{1,12}){0,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Schedules, numbers (NaN, inf, huge, negative), ids with odd characters and file paths
        /// through the control API: never a 5xx, and every refusal names the field.
        #[test]
        fn config_values_never_crash_and_refusals_name_the_field(what in 0..6usize, t in text(), n in number()) {
            let (s, owner) = server();
            let (method, path, body) = match what {
                0 => ("PUT", "/api/v1/models/p".to_string(), json!({"source": "dwh", "sql": "select * from p",
                    "unique_id": "id", "consent": {"C0004": "ads"}, "mappings": [{"destination": "ads"}], "schedule": t})),
                1 => ("PUT", format!("/api/v1/destinations/{}", enc(&t)),
                    json!({"kind": "webhook", "settings": {"url": format!("{}/p", s.rx.url()), "batch_size": n}})),
                2 => ("PUT", "/api/v1/destinations/f".to_string(), json!({"kind": "file", "settings": {"path": t, "batch_size": n}})),
                3 => ("PUT", format!("/api/v1/sources/{}", enc(&t)), json!({"kind": "postgres",
                    "url": "postgres://postgres@127.0.0.1:5432/test", "statement_timeout_secs": n})),
                4 => ("POST", "/api/v1/consent-categories".to_string(), json!({"id": t, "name": "X"})),
                _ => ("PUT", format!("/api/v1/models/{}", enc(&t)), json!({"source": "dwh", "sql": "select * from p",
                    "unique_id": "id", "schedule": "every 5m"})),
            };
            let (st, b) = call(s, method, &path, Some(owner), Some(body));
            prop_assert!(st < 500, "{} {} -> {} {}", method, path, st, b);
            if st >= 400 {
                prop_assert!(!field(&b).is_empty(), "{} {} -> {} {}", method, path, st, b);
            }
        }
    }
}

#[test]
fn r13_a_member_cannot_set_on_withdrawal_an_owner_can() {
    let s = start_with_model();
    let (owner, member) = tokens(&s);
    // on the model's mapping (Reverse ETL)
    let mut m = model_body(&s, &member, "p");
    m["mappings"][0]["on_withdrawal"] = json!("delete");
    let (st, b) = call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(m.clone()));
    assert_eq!((st, field(&b)), (403, "on_withdrawal".to_string()), "{b}");
    // on the destination (streaming)
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    let mut d = list["items"].as_array().unwrap().iter().find(|d| d["id"] == "ads").unwrap().clone();
    d["on_withdrawal"] = json!("delete");
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/ads", Some(&member), Some(d.clone()));
    assert_eq!((st, field(&b)), (403, "on_withdrawal".to_string()), "{b}");
    assert_eq!(stored(&s).destinations[0].on_withdrawal, sluice_core::OnWithdrawal::Keep);
    // the owner may; the setting is stored and read back
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&owner), Some(m)).0, 200);
    assert_eq!(stored(&s).models[0].mappings[0].on_withdrawal, sluice_core::OnWithdrawal::Delete);
    let (st, b) = call(&s, "PUT", "/api/v1/destinations/ads", Some(&owner), Some(d));
    assert_eq!(st, 200, "{b}");
    assert_eq!(model_body(&s, &member, "p")["mappings"][0]["on_withdrawal"], "delete");
    // a typo is refused naming it
    let mut bad = model_body(&s, &owner, "p");
    bad["mappings"][0]["on_withdrawal"] = json!("erase");
    let (st, b) = call(&s, "PUT", "/api/v1/models/p", Some(&owner), Some(bad));
    assert_eq!(st, 400, "{b}");
    assert!(b.to_string().contains("erase"), "{b}");
}
