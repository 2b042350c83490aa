//! Privacy requests over real HTTP (SPEC §12): `/api/v1/regulations` (owners only, audited,
//! hostile input refused with the field named), suppressed people's events dropped at ingest
//! (answered 200, counted, never stored), a suppression made on the state folder (the CLI's
//! path) noticed without a restart, unsuppress restoring the flow, and deletes reaching a real
//! webhook with `reason: privacy_request` while a kind without a delete call is NOT_SUPPORTED.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn server() -> Server {
    start(&format!(
        "destinations:\n{}  - {{id: seg, kind: connections, settings: {{url: \"{{URL}}/seg\", write_key: wk}}}}\n",
        hook("hook", "Hook")
    ))
}

fn track(mid: &str, user: Option<&str>, anon: Option<&str>) -> Value {
    let mut e = json!({"event": "Viewed", "messageId": mid});
    if let Some(u) = user {
        e["userId"] = json!(u);
    }
    if let Some(a) = anon {
        e["anonymousId"] = json!(a);
    }
    e
}

fn regulate(s: &Server, token: &str, kind: &str, ids: &[&str]) -> (u16, Value) {
    call(
        s,
        "POST",
        "/api/v1/regulations",
        Some(token),
        Some(json!({"regulationType": kind, "subjectType": "USER_ID", "subjectIds": ids})),
    )
}

fn debugger_mids(s: &Server) -> Vec<String> {
    let (_, body) = s.get("/v1/debugger/web?limit=1000");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["events"].as_array().unwrap().iter().map(|e| e["event"]["messageId"].as_str().unwrap().to_string()).collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(15), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn owners_make_requests_members_read_and_bad_input_names_the_field() {
    let s = server();
    let (owner, member) = tokens(&s);
    assert_eq!(call(&s, "GET", "/api/v1/regulations", None, None).0, 401);
    assert_eq!(regulate(&s, "slc_not_a_token", "SUPPRESS_ONLY", &["u1"]).0, 401);
    let (st, b) = regulate(&s, &member, "SUPPRESS_ONLY", &["u1"]);
    assert_eq!(st, 403);
    assert!(b["error"]["message"].as_str().unwrap().contains("only owners may make privacy requests"), "{b}");
    let (st, b) = regulate(&s, &owner, "SUPPRESS_ONLY", &["u1"]);
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["regulateId"].as_str().unwrap().to_string();
    assert!(id.starts_with("reg_"));
    // members read: the list and one request
    let (st, b) = call(&s, "GET", "/api/v1/regulations", Some(&member), None);
    assert_eq!((st, b["data"]["regulations"][0]["id"].as_str()), (200, Some(id.as_str())));
    let (st, b) = call(&s, "GET", &format!("/api/v1/regulations/{id}"), Some(&member), None);
    assert_eq!(st, 200);
    let r = &b["data"]["regulation"];
    assert_eq!((r["regulationType"].as_str(), r["overallStatus"].as_str()), (Some("SUPPRESS_ONLY"), Some("FINISHED")));
    assert_eq!(r["subjectIds"], json!(["u1"]));
    assert_eq!(call(&s, "GET", "/api/v1/regulations/reg_nope", Some(&member), None).0, 404);
    // audited: who, when, what
    let (_, log) = call(&s, "GET", "/api/v1/audit-log", Some(&owner), None);
    let e = &log["items"][0];
    assert_eq!(
        (e["kind"].as_str(), e["entity"].as_str(), e["actor"].as_str()),
        (Some("privacy_request"), Some(id.as_str()), Some("token:olivia"))
    );
    assert_eq!(e["after"]["subjectIds"], json!(["u1"]));
    assert!(e["at"].as_str().is_some_and(|t| t.len() >= 20));

    // bad input: 400 naming the field
    let field = |body: Value| {
        let (st, b) = call(&s, "POST", "/api/v1/regulations", Some(&owner), Some(body));
        (st, b["error"]["field"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(
        field(json!({"regulationType": "FORGET", "subjectType": "USER_ID", "subjectIds": ["u"]})),
        (400, "regulationType".into())
    );
    assert_eq!(
        field(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "EMAIL", "subjectIds": ["u"]})),
        (400, "subjectType".into())
    );
    assert_eq!(
        field(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": []})),
        (400, "subjectIds".into())
    );
    // hostile ids: control characters, a huge list, a huge id
    assert_eq!(
        field(
            json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["ok", "a\u{0}\r\nb"]})
        ),
        (400, "subjectIds[1]".into())
    );
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    assert_eq!(
        field(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": many})),
        (413, "subjectIds".into())
    );
    assert_eq!(
        field(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["x".repeat(600)]})),
        (400, "subjectIds[0]".into())
    );
    let (st, _) = call(
        &s,
        "POST",
        "/api/v1/regulations",
        Some(&owner),
        Some(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["x".repeat(1 << 20)]})),
    );
    assert_eq!(st, 413, "a 1 MB id is over the body limit");
    let (st, b) = call(
        &s,
        "POST",
        "/api/v1/regulations",
        Some(&owner),
        Some(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": "u1"})),
    );
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (st, _) = call(
        &s,
        "POST",
        "/api/v1/regulations",
        Some(&owner),
        Some(json!({"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["u"], "extra": 1})),
    );
    assert_eq!(st, 400, "unknown fields are refused");
    // nothing refused was stored or suppressed
    let (_, b) = call(&s, "GET", "/api/v1/regulations", Some(&owner), None);
    assert_eq!(b["data"]["regulations"].as_array().unwrap().len(), 1);
    // the server still serves
    assert_eq!(s.post("/v1/track", &track("after", Some("u2"), None)).0, 200);
    assert_eq!(s.delivered("/hook", 1), vec!["after".to_string()]);
}

#[test]
fn suppressed_events_are_dropped_at_ingest_counted_never_stored_and_unsuppress_restores_them() {
    let s = server();
    let (owner, _) = tokens(&s);
    // the person's profile joins u1 and the device a1
    assert_eq!(s.post("/v1/identify", &json!({"userId": "u1", "anonymousId": "a1", "messageId": "id1"})).0, 200);
    assert_eq!(s.delivered("/hook", 1).len(), 1);
    let (st, b) = regulate(&s, &owner, "SUPPRESS_ONLY", &["u1"]);
    assert_eq!(st, 201);
    assert_eq!(b["data"]["regulation"]["joinedIds"], json!(["a1", "u1"]), "{b}");
    s.rx.clear();
    // answered 200 like Segment (clients do not retry), but dropped: by userId, by the joined
    // anonymousId, and inside a batch next to an event that flows
    assert_eq!(s.post("/v1/track", &track("s1", Some("u1"), None)).0, 200);
    assert_eq!(s.post("/v1/track", &track("s2", None, Some("a1"))).0, 200);
    let batch = json!({"batch": [
        {"type": "track", "event": "E", "userId": "u1", "messageId": "s3"},
        {"type": "track", "event": "E", "userId": "u2", "messageId": "ok1"}
    ]});
    assert_eq!(s.post("/v1/batch", &batch).0, 200);
    assert_eq!(s.delivered("/hook", 1), vec!["ok1".to_string()]);
    let mids = debugger_mids(&s);
    assert!(mids.contains(&"ok1".to_string()));
    for m in ["s1", "s2", "s3"] {
        assert!(!mids.contains(&m.to_string()), "{m} was stored: {mids:?}");
    }
    let (_, ov) = s.get("/v1/overview");
    let ov: Value = serde_json::from_str(&ov).unwrap();
    assert_eq!(ov["dropped_suppressed"], 3, "{ov}");
    let (_, metrics) = s.get("/metrics");
    assert!(metrics.contains("sluice_events_dropped_suppressed_total{source=\"web\"} 3"), "{metrics}");
    // nothing of them reached a destination
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.rx.items("/hook").iter().all(|e| e["userId"] != "u1" && e["anonymousId"] != "a1"));

    // unsuppress: the flow is back at once
    assert_eq!(regulate(&s, &owner, "UNSUPPRESS", &["u1"]).0, 201);
    assert_eq!(s.post("/v1/track", &track("back", Some("u1"), None)).0, 200);
    assert!(s.delivered("/hook", 2).contains(&"back".to_string()));
    assert!(debugger_mids(&s).contains(&"back".to_string()));
}

#[test]
fn a_suppression_made_on_the_state_folder_reaches_the_running_server_without_a_restart() {
    let s = server();
    let state = s.dir.path().join(".sluice");
    let ws = sluice_engine::Workspace::load(&sluice_state::StateStore::open(&state).unwrap()).unwrap();
    // the CLI's path: `sluice privacy suppress u9` on the state folder, another process
    let body = sluice_server::control::privacy::NewRegulationBody {
        regulation_type: "SUPPRESS_ONLY".into(),
        subject_type: "USER_ID".into(),
        subject_ids: vec!["u9".into()],
    };
    sluice_server::control::privacy::submit(
        &sluice_state::StateLocation::folder(&state),
        &ws.file,
        &body,
        "cli:test".into(),
        None,
    )
    .unwrap();
    std::thread::sleep(sluice_server::privacy::SUPPRESSIONS_EVERY * 3);
    assert_eq!(s.post("/v1/track", &track("cli1", Some("u9"), None)).0, 200);
    assert_eq!(s.post("/v1/track", &track("cli2", Some("u8"), None)).0, 200);
    assert_eq!(s.delivered("/hook", 1), vec!["cli2".to_string()]);
    assert!(!debugger_mids(&s).contains(&"cli1".to_string()));
}

#[test]
fn a_delete_reaches_the_streaming_webhook_with_its_reason_and_a_kind_without_deletes_is_not_supported() {
    let s = server();
    let (owner, _) = tokens(&s);
    assert_eq!(s.post("/v1/identify", &json!({"userId": "u3", "anonymousId": "a3", "messageId": "m1"})).0, 200);
    assert_eq!(s.delivered("/hook", 1).len(), 1);
    s.rx.clear();
    let (st, b) = regulate(&s, &owner, "SUPPRESS_WITH_DELETE", &["u3"]);
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["regulateId"].as_str().unwrap().to_string();
    let status = || {
        let (_, b) = call(&s, "GET", &format!("/api/v1/regulations/{id}"), Some(&owner), None);
        b["data"]["regulation"].clone()
    };
    wait_until("the delete to finish", || status()["overallStatus"] == "FINISHED");
    let r = status();
    let by_dest: std::collections::BTreeMap<String, String> = r["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_string(), d["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(by_dest["hook"], "FINISHED");
    assert_eq!(by_dest["seg"], "NOT_SUPPORTED");
    let mut deleted: Vec<Value> = s.rx.items("/hook").into_iter().filter(|i| i["action"] == "deleted").collect();
    deleted.sort_by_key(|i| i["id"].as_str().unwrap().to_string());
    assert_eq!(
        deleted,
        vec![
            json!({"action": "deleted", "id": "a3", "data": {}, "reason": "privacy_request"}),
            json!({"action": "deleted", "id": "u3", "data": {}, "reason": "privacy_request"}),
        ]
    );
    assert!(s.rx.items("/seg").is_empty(), "nothing is sent to a kind without a delete call");
}

#[test]
fn running_deletes_left_by_a_previous_server_resume_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    // a delete a server accepted and did not finish before it stopped: its streaming part
    // queued in the event log (R13's durable path), the request RUNNING in state.db
    let state = dir.path().join(".sluice");
    let mut log = sluice_server::store::open(&state).unwrap();
    let tx = log.transaction().unwrap();
    let req = sluice_stream::person_delete::PersonDelete::new(
        ["u7".to_string()],
        [],
        sluice_destinations::DeleteReason::PrivacyRequest,
    );
    let seq = sluice_stream::person_delete::enqueue(&tx, &["hook"], &req, "2026-01-01T00:00:00.000Z").unwrap();
    tx.commit().unwrap();
    let id = sluice_state::StateStore::open(&state)
        .unwrap()
        .create_regulation(&sluice_state::NewRegulation {
            id: sluice_state::privacy::new_regulation_id(),
            kind: sluice_state::RegulationType::DeleteOnly,
            subject_type: "USER_ID".into(),
            subject_ids: vec!["u7".into()],
            joined_ids: vec!["u7".into()],
            destinations: vec![sluice_state::PlannedDelete {
                id: "hook".into(),
                status: sluice_state::DeleteStatus::Running,
                error: None,
                stream_seq: seq,
            }],
            created_by: "token:olivia".into(),
        })
        .unwrap()
        .id;
    let s = start_in(dir, "", &format!("destinations:\n{}", hook("hook", "Hook")));
    wait_until("the resumed delete", || {
        s.rx.items("/hook")
            .iter()
            .any(|i| i["action"] == "deleted" && i["id"] == "u7" && i["reason"] == "privacy_request")
    });
    let (_, b) = call(&s, "GET", &format!("/api/v1/regulations/{id}"), Some(&s.token), None);
    wait_until("FINISHED", || {
        let (_, b) = call(&s, "GET", &format!("/api/v1/regulations/{id}"), Some(&s.token), None);
        b["data"]["regulation"]["overallStatus"] == "FINISHED"
    });
    assert_eq!(b["data"]["regulation"]["createdBy"], "token:olivia");
}
