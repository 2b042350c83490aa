//! The control API over real HTTP: tokens and roles, consent categories, audit log, OpenAPI.

mod common;
use common::*;
use serde_json::{json, Value};

#[test]
fn owners_manage_consent_categories_members_read_and_the_router_follows() {
    let s = start(&format!(
        "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads")
    ));
    let (owner, member) = tokens(&s);
    // 401 without or with a bad token
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories", None, None).0, 401);
    let (st, b) = call(&s, "GET", "/api/v1/consent-categories", Some("slc_bad"), None);
    assert_eq!((st, b["error"]["code"].as_str()), (401, Some("unauthenticated")));
    // members read
    let (st, b) = call(&s, "GET", "/api/v1/consent-categories", Some(&member), None);
    assert_eq!(st, 200);
    assert_eq!(b["items"][0], json!({"id": "C0004", "name": "Advertising", "destinations": ["ads"], "enabled": true}));
    assert_eq!((b["total"].as_u64(), b["limit"].as_u64()), (Some(1), Some(100)));
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories/C0004", Some(&member), None).0, 200);
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories/nope", Some(&member), None).0, 404);
    // ... and are refused every change, with a clear message
    let new = json!({"id": "C0002", "name": "Analytics", "destinations": []});
    for (m, p, b) in [
        ("POST", "/api/v1/consent-categories", Some(new.clone())),
        ("PATCH", "/api/v1/consent-categories/C0004", Some(json!({"enabled": false}))),
        ("DELETE", "/api/v1/consent-categories/C0004", None),
    ] {
        let (st, body) = call(&s, m, p, Some(&member), b);
        assert_eq!(st, 403, "{m} {p}");
        assert!(body["error"]["message"].as_str().unwrap().contains("only owners"));
    }
    // owners change; validation names the field
    assert_eq!(call(&s, "POST", "/api/v1/consent-categories", Some(&owner), Some(new.clone())).0, 201);
    assert_eq!(call(&s, "POST", "/api/v1/consent-categories", Some(&owner), Some(new)).0, 409);
    let (st, b) = call(
        &s,
        "POST",
        "/api/v1/consent-categories",
        Some(&owner),
        Some(json!({"id": "C9", "name": "A name longer than twenty"})),
    );
    assert_eq!(st, 422);
    assert!(b["error"]["field"].as_str().unwrap().ends_with(".name"), "{b}");
    let (st, b) = call(
        &s,
        "POST",
        "/api/v1/consent-categories",
        Some(&owner),
        Some(json!({"id": "C8", "name": "X", "destinations": ["nowhere"]})),
    );
    assert_eq!(st, 422);
    assert!(b["error"]["message"].as_str().unwrap().contains("unknown destination `nowhere`"));

    // the router follows at once: with C0004 enforced, refused events do not reach ads ...
    let refused = |mid: &str| json!({"userId": "u", "event": "E", "messageId": mid, "context": {"consent": {"categoryPreferences": {"C0004": false}}}});
    assert_eq!(s.post("/v1/track", &refused("e1")).0, 200);
    // ... disabled by an owner, C0004 is no longer enforced (R12)
    let (st, b) = call(&s, "PATCH", "/api/v1/consent-categories/C0004", Some(&owner), Some(json!({"enabled": false})));
    assert_eq!((st, b["enabled"].as_bool()), (200, Some(false)));
    assert_eq!(s.post("/v1/track", &refused("e2")).0, 200);
    assert_eq!(s.delivered("/ads", 1), vec!["e2"]);

    // every change is in the audit log, with who and before/after
    let (st, log) = call(&s, "GET", "/api/v1/audit-log", Some(&member), None);
    assert_eq!(st, 200);
    let change = log["items"].as_array().unwrap().iter().find(|e| e["action"] == "change").unwrap();
    assert_eq!(change["actor"], "token:olivia");
    assert_eq!(
        (change["before"]["enabled"].as_bool(), change["after"]["enabled"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(call(&s, "DELETE", "/api/v1/consent-categories/C0002", Some(&owner), None).0, 204);
    assert_eq!(call(&s, "DELETE", "/api/v1/consent-categories/C0002", Some(&owner), None).0, 404);
}

#[test]
fn the_openapi_document_is_served_and_describes_the_routes() {
    let s = start("destinations: []\n");
    assert_eq!(call(&s, "GET", "/api/v1/openapi.json", None, None).0, 401, "private: needs a token");
    let (st, doc) = call(&s, "GET", "/api/v1/openapi.json", Some(&s.token), None);
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/api/v1/consent-categories", "/api/v1/consent-categories/{id}", "/api/v1/audit-log"] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(paths["/api/v1/consent-categories"]["post"]["responses"].get("403").is_some());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[test]
fn resources_hide_credentials_models_take_consent_mappings_from_owners_and_syncs_run() {
    let s = start(&format!(
        "destinations:\n{}  - {{id: seg, kind: connections, settings: {{url: \"{{URL}}\", write_key: wk_secret_value}}}}\nconsent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads").replace("batch_size: 50", "batch_size: 50, headers: {Authorization: \"Bearer tok_hidden\"}")
    ));
    let (owner, member) = tokens(&s);
    let (st, d) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    assert_eq!(st, 200);
    let text = d.to_string();
    assert!(!text.contains("wk_secret_value") && !text.contains("tok_hidden"), "{text}");
    assert!(text.contains("<set>"));
    let (_, src) = call(&s, "GET", "/api/v1/sources", Some(&member), None);
    assert_eq!(src["items"][0]["write_key"], "<set>");
    // malformed bodies get the API's error shape
    let (st, b) = call(&s, "PUT", "/api/v1/models/none/consent", Some(&owner), Some(json!({"consent": 3})));
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (st, _) = call(&s, "PUT", "/api/v1/models/none/consent", Some(&owner), Some(json!({"consent": {}})));
    assert_eq!(st, 404);
    assert_eq!(call(&s, "PUT", "/api/v1/models/none/consent", Some(&member), Some(json!({"consent": {}}))).0, 403);
    assert_eq!(call(&s, "GET", "/api/v1/models", Some(&member), None).1["total"], 0);
    assert_eq!(call(&s, "POST", "/api/v1/models/none/syncs", Some(&member), None).0, 404);
    assert_eq!(call(&s, "GET", "/api/v1/syncs/99", Some(&member), None).0, 404);
    assert_eq!(call(&s, "GET", "/api/v1/usage", Some(&member), None).0, 200);
    assert_eq!(call(&s, "GET", "/api/v1/profiles/nobody", Some(&member), None).0, 404);
    assert_eq!(s.post("/v1/identify", &json!({"userId": "u7", "traits": {"plan": "pro"}, "messageId": "i7"})).0, 200);
    let (st, p) = call(&s, "GET", "/api/v1/profiles/u7", Some(&member), None);
    assert_eq!((st, p["traits"]["plan"].as_str(), p["consent_conflict"].as_bool()), (200, Some("pro"), Some(false)));
    let (st, u) = call(&s, "GET", "/api/v1/usage", Some(&member), None);
    assert_eq!((st, u["items"].is_array()), (200, true));
}

#[test]
fn model_consent_mappings_preview_and_syncs_through_the_api() {
    let s = start_with_model();
    let (owner, member) = tokens(&s);
    let (st, p) = call(&s, "GET", "/api/v1/models/p/preview", Some(&member), None);
    assert_eq!((st, p["columns"].clone()), (200, json!(["id", "email", "ads"])));
    assert_eq!(p["rows"][1]["email"], "b");
    let (st, b) =
        call(&s, "PUT", "/api/v1/models/p/consent", Some(&owner), Some(json!({"consent": {"C0004": "nope"}})));
    assert_eq!(st, 422);
    assert!(b["error"]["message"].as_str().unwrap().contains("unknown column `nope`"), "{b}");
    assert_eq!(
        call(&s, "PUT", "/api/v1/models/p/consent", Some(&owner), Some(json!({"consent": {"C0004": "ADS"}}))).0,
        200
    );
    assert_eq!(call(&s, "GET", "/api/v1/models/p", Some(&member), None).1["consent"], json!({"C0004": "ADS"}));
    assert_eq!(call(&s, "POST", "/api/v1/models/p/syncs", Some(&member), None).0, 202);
    let t = std::time::Instant::now();
    let runs = loop {
        let (_, r) = call(&s, "GET", "/api/v1/models/p/syncs", Some(&member), None);
        if r["total"].as_u64() == Some(1) && r["items"][0]["status"] == "ok" {
            break r;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "{r}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let run_id = runs["items"][0]["run_id"].as_i64().unwrap();
    let (_, run) = call(&s, "GET", &format!("/api/v1/syncs/{run_id}"), Some(&member), None);
    assert_eq!(run["mappings"][0]["delivered"], 1);
    assert_eq!(run["mappings"][0]["withheld_by_consent"], 1);
    assert_eq!(s.rx.items("/ads").len(), 1);
}

#[test]
fn owners_manage_tokens_members_cannot_and_disabled_tokens_stop_working() {
    let s = start("destinations: []\n");
    let (owner, member) = tokens(&s);
    assert_eq!(call(&s, "GET", "/api/v1/tokens", Some(&member), None).0, 403);
    assert_eq!(call(&s, "POST", "/api/v1/tokens", Some(&member), Some(json!({"name": "x", "role": "owner"}))).0, 403);
    let (st, created) =
        call(&s, "POST", "/api/v1/tokens", Some(&owner), Some(json!({"name": "ci-bot", "role": "member"})));
    assert_eq!(st, 201);
    let bot = created["token"].as_str().unwrap().to_string();
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories", Some(&bot), None).0, 200);
    let (_, list) = call(&s, "GET", "/api/v1/tokens", Some(&owner), None);
    assert!(!list.to_string().contains(&bot), "tokens are never listed");
    let id = list["items"].as_array().unwrap().iter().find(|t| t["name"] == "ci-bot").unwrap()["id"].as_i64().unwrap();
    assert_eq!(call(&s, "DELETE", &format!("/api/v1/tokens/{id}"), Some(&owner), None).0, 204);
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories", Some(&bot), None).0, 401);
    assert_eq!(call(&s, "POST", "/api/v1/tokens", Some(&owner), Some(json!({"name": "y", "role": "admin"}))).0, 400);
}

#[test]
fn sources_destinations_and_models_are_written_through_the_api() {
    let dir = warehouse_dir("create table p(id integer, email text, ads); insert into p values (1,'a',1);");
    let s =
        start_in(dir, "{id: dwh, kind: sqlite, path: w.db}", "consent_categories: [{id: C0004, name: Advertising}]\n");
    let (owner, member) = tokens(&s);
    let url = format!("{}/crm", s.rx.url());
    let dest = json!({"kind": "webhook", "settings": {"url": url, "headers": {"Authorization": "Bearer tok_xyz"}}});
    // creating a destination is owner-only: a new destination is unmapped, so it receives everyone (R1)
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/crm", Some(&member), Some(dest.clone())).0, 403);
    let (st, d) = call(&s, "PUT", "/api/v1/destinations/crm", Some(&owner), Some(dest));
    assert_eq!((st, d["settings"]["headers"]["Authorization"].as_str()), (200, Some("<set>")));
    // a round-trip of what GET returned keeps the stored secret (and changes nothing, so members may)
    let (_, list) = call(&s, "GET", "/api/v1/destinations", Some(&member), None);
    assert_eq!(call(&s, "PUT", "/api/v1/destinations/crm", Some(&member), Some(list["items"][0].clone())).0, 200);
    let (st, b) = call(
        &s,
        "PUT",
        "/api/v1/destinations/x",
        Some(&owner),
        Some(json!({"kind": "webhook", "settings": {"url": "ftp://x"}})),
    );
    assert_eq!(st, 422);
    assert!(b["error"]["message"].as_str().unwrap().contains("settings.url"), "{b}");
    assert_eq!(
        call(&s, "PUT", "/api/v1/sources/x", Some(&member), Some(json!({"kind": "sqlite", "colour": 1}))).0,
        400
    );
    // a model: members may add one without consent mappings; consent mappings need an owner
    let model =
        json!({"source": "dwh", "sql": "select * from p", "unique_id": "id", "mappings": [{"destination": "crm"}]});
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(model.clone())).0, 200);
    let mut with_consent = model.clone();
    with_consent["consent"] = json!({"C0004": "ads"});
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(with_consent.clone())).0, 403);
    // the one change path checks models against the warehouse's real columns, as `apply` does:
    // a consent mapping to a column the SQL does not return is refused, naming it (it was stored)
    let mut wrong = with_consent.clone();
    wrong["consent"] = json!({"C0004": "ads_opt_in"});
    let (st, b) = call(&s, "PUT", "/api/v1/models/p", Some(&owner), Some(wrong));
    assert_eq!((st, b["error"]["field"].as_str()), (422, Some("models[0] (p).consent.C0004")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("ads_opt_in"), "{b}");
    let mut bad_sql = model.clone();
    bad_sql["sql"] = json!("select * from no_such_table");
    let (st, b) = call(&s, "PUT", "/api/v1/models/p", Some(&member), Some(bad_sql));
    assert_eq!((st, b["error"]["field"].as_str()), (422, Some("models[0] (p).sql")), "{b}");
    assert_eq!(call(&s, "GET", "/api/v1/models/p", Some(&member), None).1["sql"], json!("select * from p"));
    assert_eq!(call(&s, "PUT", "/api/v1/models/p", Some(&owner), Some(with_consent)).0, 200);
    // sync through the API: the stored header secret is used
    assert_eq!(call(&s, "POST", "/api/v1/models/p/syncs", Some(&member), None).0, 202);
    let t = std::time::Instant::now();
    while s.rx.requests().is_empty() && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(s.rx.requests()[0].header("authorization"), Some("Bearer tok_xyz"));
    // Reverse ETL's metrics are served beside the streaming ones once the run ends
    let done = "sluice_sync_records_total{model=\"p\",destination=\"crm\",outcome=\"delivered\"} 1";
    let t = std::time::Instant::now();
    while !s.get("/metrics").1.contains(done) && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, m) = s.get("/metrics");
    assert!(m.contains(done) && m.contains("sluice_sync_duration_seconds_count{model=\"p\",status=\"ok\"} 1"), "{m}");
    // removals: in use → 409; then in order
    assert_eq!(call(&s, "DELETE", "/api/v1/destinations/crm", Some(&owner), None).0, 409);
    assert_eq!(call(&s, "DELETE", "/api/v1/sources/dwh", Some(&owner), None).0, 409);
    assert_eq!(call(&s, "DELETE", "/api/v1/models/p", Some(&member), None).0, 403, "it maps consent");
    assert_eq!(call(&s, "DELETE", "/api/v1/models/p", Some(&owner), None).0, 204);
    assert_eq!(call(&s, "DELETE", "/api/v1/destinations/crm", Some(&member), None).0, 204);
    assert_eq!(call(&s, "DELETE", "/api/v1/sources/dwh", Some(&member), None).0, 204);
    assert_eq!(call(&s, "DELETE", "/api/v1/sources/dwh", Some(&member), None).0, 404);
}

#[test]
fn every_documented_operation_refuses_calls_without_a_token() {
    let s = start("destinations: []\n");
    let (_, doc) = call(&s, "GET", "/api/v1/openapi.json", Some(&s.token), None);
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "x").replace("{run_id}", "1");
        for method in ops.as_object().unwrap().keys() {
            let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
            let (st, b) = call(&s, &method.to_uppercase(), &concrete, None, body);
            assert_eq!(st, 401, "{method} {path}");
            assert_eq!(b["error"]["code"], "unauthenticated", "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations documented");
}

#[test]
fn a_scheduled_model_shows_its_next_run() {
    let dir = warehouse_dir("create table p(id integer);");
    let s = start_in(
        dir,
        "{id: dwh, kind: sqlite, path: w.db}",
        "destinations: []\nmodels: [{id: p, source: dwh, sql: select * from p, unique_id: id, schedule: '0 3 * * *'}, {id: q, source: dwh, sql: select * from p, unique_id: id}]\n",
    );
    let (_, member) = tokens(&s);
    let (_, p) = call(&s, "GET", "/api/v1/models/p", Some(&member), None);
    assert!(p["next_run_at"].as_str().unwrap().contains("T03:00:00"), "{p}");
    assert_eq!(call(&s, "GET", "/api/v1/models/q", Some(&member), None).1["next_run_at"], Value::Null);
}

#[test]
fn a_destination_added_over_the_api_starts_receiving_without_a_restart() {
    let s = start("destinations: []\n");
    let (owner, _) = tokens(&s);
    let url = format!("{}/late", s.rx.url());
    let (st, _) = call(
        &s,
        "PUT",
        "/api/v1/destinations/late",
        Some(&owner),
        Some(json!({"kind": "webhook", "settings": {"url": url}})),
    );
    assert_eq!(st, 200);
    std::thread::sleep(std::time::Duration::from_millis(700)); // the delivery supervisor looks twice a second
    assert_eq!(s.post("/v1/track", &json!({"userId": "u", "event": "E", "messageId": "after"})).0, 200);
    assert_eq!(s.delivered("/late", 1), vec!["after"]);
}

#[test]
fn a_source_setting_of_another_kind_is_refused_naming_it_and_sources_read_as_written() {
    let dir = warehouse_dir("create table p(id integer);");
    let s = start_in(dir, "{id: dwh, kind: sqlite, path: w.db}", "");
    let (owner, _) = tokens(&s);
    for (body, field) in [
        (json!({"kind": "sqlite", "path": "w.db", "write_key": "k"}), "write_key"),
        (json!({"kind": "events", "write_key": "k", "tls": "disable"}), "tls"),
        (json!({"kind": "postgres", "url": "postgres://h/d", "allowed_origins": []}), "allowed_origins"),
        (json!({"kind": "postgres"}), "url"),
        (json!({"kind": "postgres", "url": "postgres://h/d", "tls": "sometimes"}), "tls"),
        (json!({"kind": "mysql"}), "kind"),
    ] {
        let (st, b) = call(&s, "PUT", "/api/v1/sources/x", Some(&owner), Some(body.clone()));
        assert_eq!((st, b["error"]["field"].as_str()), (400, Some(field)), "{body}: {b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(&format!("`{field}`")), "{b}");
    }
    let web = json!({"kind": "events", "write_key": "wk_secret", "allowed_origins": ["https://a.example"]});
    let (st, b) = call(&s, "PUT", "/api/v1/sources/web", Some(&owner), Some(web));
    assert_eq!(
        (st, b),
        (200, json!({"id": "web", "kind": "events", "write_key": "<set>", "allowed_origins": ["https://a.example"]}))
    );
    let (_, list) = call(&s, "GET", "/api/v1/sources", Some(&owner), None);
    let item = |id: &str| list["items"].as_array().unwrap().iter().find(|x| x["id"] == id).cloned();
    assert_eq!(item("dwh"), Some(json!({"id": "dwh", "kind": "sqlite", "path": "w.db"})));
    assert_eq!(item("web").unwrap()["write_key"], "<set>");
    assert!(!list.to_string().contains("wk_secret"));
}

/// A model change waits on its warehouse (the column check connects and describes the SQL); a
/// warehouse that never answers must not hold up other changes: the check runs outside the
/// write lock, and only the store is serialized.
#[test]
fn a_warehouse_that_never_answers_holds_up_no_other_change() {
    // accepts connections (the kernel completes them) and never speaks PostgreSQL
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let s = start_in(
        tempfile::tempdir().unwrap(),
        &format!("{{id: slow, kind: postgres, url: \"postgres://u@127.0.0.1:{port}/db?connect_timeout=60\"}}"),
        "consent_categories: [{id: C0004, name: Advertising}]\n",
    );
    let (owner, member) = tokens(&s);
    let (url, m) = (s.url.clone(), member.clone());
    let put = std::thread::spawn(move || {
        let model = json!({"source": "slow", "sql": "select 1 as id", "unique_id": "id"});
        ureq::put(&format!("{url}/api/v1/models/p"))
            .set("Authorization", &format!("Bearer {m}"))
            .timeout(std::time::Duration::from_secs(120))
            .send_json(model)
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(st, _) => st,
                e => panic!("{e}"),
            })
    });
    // the model's check has reached the warehouse (a connection is waiting on it)
    silent.set_nonblocking(false).unwrap();
    let (conn, _) = silent.accept().unwrap();
    let (st, b) = call(&s, "PATCH", "/api/v1/consent-categories/C0004", Some(&owner), Some(json!({"name": "Ads"})));
    assert_eq!(st, 200, "{b}");
    assert!(!put.is_finished(), "the category change finished while the model's check was still waiting");
    // the warehouse hangs up: the model is refused, naming what failed, and nothing was stored
    drop(conn);
    assert_eq!(put.join().unwrap(), 422);
    assert_eq!(call(&s, "GET", "/api/v1/models/p", Some(&member), None).0, 404);
    assert_eq!(call(&s, "GET", "/api/v1/consent-categories/C0004", Some(&member), None).1["name"], "Ads");
}
