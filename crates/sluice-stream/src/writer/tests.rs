use super::*;
use serde_json::json;

struct Rig {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Self {
        let yaml = "workspace: {missing_consent: profile}
destinations:
  - {id: ads, kind: webhook, settings: {url: \"http://127.0.0.1:9/ads\"}}
  - {id: crm, kind: webhook, settings: {url: \"http://127.0.0.1:9/crm\"}}
consent_categories:
  - {id: ad, name: Advertising, destinations: [ads]}
";
        let ws = Arc::new(WorkspaceFile::from_yaml(yaml).expect("workspace"));
        let live: crate::Live = Arc::new(arc_swap::ArcSwap::new(ws.clone()));
        let dir = tempfile::tempdir().unwrap();
        let conn = store::open(dir.path()).unwrap();
        let router = Router::new(ws, live, Arc::new(Metrics::default()), 0);
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let writer = std::thread::spawn(move || run(conn, router, rx, || {}));
        Self { jobs: Some(tx), writer: Some(writer), dir }
    }

    fn conn(&self) -> Connection {
        store::open(self.dir.path()).unwrap()
    }

    /// Sends one event; the writer's answer.
    fn send(&self, event: Value) -> Result<Accepted, String> {
        let mut e = event;
        e["receivedAt"] = json!("2026-11-27T00:00:00.000Z");
        e["timestamp"] = json!("2026-11-27T00:00:00.000Z");
        let json = e.to_string();
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job { source: "web".into(), events: vec![Prepared::new((e, json))], invalid: vec![], reply };
        self.jobs.as_ref().unwrap().send(job).unwrap();
        rx.blocking_recv().unwrap().result
    }

    fn routes(&self, mid: &str) -> String {
        self.conn().query_row("select routes from events where message_id = ?1", [mid], |r| r.get(0)).unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn track(mid: &str, ids: Value, consent: Option<bool>) -> Value {
    let mut e = json!({"type": "track", "event": "Viewed", "messageId": mid});
    e.as_object_mut().unwrap().extend(ids.as_object().unwrap().clone());
    if let Some(ad) = consent {
        e["context"] = json!({"consent": {"categoryPreferences": {"ad": ad}}});
    }
    e
}

fn consent_event(mid: &str, user: &str, ad: bool) -> Value {
    json!({"type": "track", "event": CONSENT_EVENTS[0], "messageId": mid, "userId": user,
           "context": {"consent": {"categoryPreferences": {"ad": ad}}}})
}

#[test]
fn a_cached_identifier_after_a_merge_routes_by_the_merged_profile_consent() {
    let rig = Rig::new();
    // both identifiers become known through the common path (consent given: no profile read)
    rig.send(track("m1", json!({"anonymousId": "a1"}), Some(true))).unwrap();
    rig.send(track("m2", json!({"userId": "u1"}), Some(true))).unwrap();
    // u1 withdraws advertising; then a login links a1 and u1 (a1's profile absorbs u1's)
    rig.send(consent_event("m3", "u1", false)).unwrap();
    rig.send(track("m4", json!({"anonymousId": "a1", "userId": "u1"}), Some(true))).unwrap();
    let conn = rig.conn();
    let p = store::profile_of(&conn, "a1").unwrap().expect("merged profile");
    assert!(p.user_ids.contains("u1") && p.anonymous_ids.contains("a1"));
    // events without consent from either (cached) identifier route by the merged profile's consent
    rig.send(track("m5", json!({"anonymousId": "a1"}), None)).unwrap();
    rig.send(track("m6", json!({"userId": "u1"}), None)).unwrap();
    assert_eq!(rig.routes("m5"), r#"["crm"]"#);
    assert_eq!(rig.routes("m6"), r#"["crm"]"#);
    // and a given consent still routes by itself
    rig.send(track("m7", json!({"userId": "u1"}), Some(true))).unwrap();
    assert_eq!(rig.routes("m7"), r#"["ads","crm"]"#);
    let n: i64 = conn.query_row("select count(*) from profiles", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "one profile after the merge");
}

#[test]
fn a_cached_identifier_after_a_retention_trim_keeps_its_profile_and_consent() {
    let rig = Rig::new();
    rig.send(track("t1", json!({"userId": "u2"}), Some(true))).unwrap();
    rig.send(consent_event("t2", "u2", false)).unwrap();
    // every event delivered and past the retention: the trim empties the log
    let conn = rig.conn();
    conn.execute("insert into cursors (dest, delivered_seq) values ('ads', 100), ('crm', 100)", []).unwrap();
    let dests = ["ads".to_string(), "crm".to_string()];
    let t = store::retention::trim(&conn, chrono::Utc::now().timestamp() + 86_400, 0, &dests, &dests).unwrap();
    assert_eq!(t.events, 2);
    rig.send(track("t3", json!({"userId": "u2"}), Some(true))).unwrap();
    rig.send(track("t4", json!({"userId": "u2"}), None)).unwrap();
    assert_eq!(rig.routes("t3"), r#"["ads","crm"]"#);
    assert_eq!(rig.routes("t4"), r#"["crm"]"#, "routed by the profile's withdrawal");
    let p = store::profile_of(&conn, "u2").unwrap().expect("profile kept");
    assert_eq!(p.user_ids.len(), 1);
}

#[test]
fn identifiers_of_a_group_that_rolled_back_are_not_taken_as_known() {
    let rig = Rig::new();
    let conn = rig.conn();
    conn.execute_batch("create trigger fail before insert on events begin select raise(abort, 'boom'); end;").unwrap();
    // the identity row is written, then the event row fails: the group rolls back
    assert!(rig.send(track("r1", json!({"userId": "u3"}), Some(true))).is_err());
    let idents = |conn: &Connection| -> i64 {
        conn.query_row("select count(*) from identities where ident = 'u:u3'", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(idents(&conn), 0);
    conn.execute_batch("drop trigger fail;").unwrap();
    // the retry must create the identity and its profile again
    assert_eq!(rig.send(track("r1", json!({"userId": "u3"}), Some(true))).unwrap().accepted, 1);
    assert_eq!(idents(&conn), 1);
    assert!(store::profile_of(&conn, "u3").unwrap().is_some());
}

#[test]
fn the_checkpointer_copies_committed_pages_into_the_database_file() {
    let rig = Rig::new();
    let db = store::db_path(rig.dir.path());
    let before = std::fs::metadata(&db).unwrap().len();
    for i in 0..50 {
        rig.send(track(&format!("c{i}"), json!({"userId": format!("cu{i}")}), Some(true))).unwrap();
    }
    // far below the writer's own threshold: only the checkpointer moves pages into the file
    sluice_testkit_free_wait(|| std::fs::metadata(&db).unwrap().len() > before);
    let n: i64 = rig.conn().query_row("select count(*) from events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 50);
}

fn sluice_testkit_free_wait(cond: impl Fn() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "not checkpointed within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn known_identifiers_are_bounded_and_told_apart_by_kind() {
    let mut k = KnownIdents::default();
    k.insert(b'u', "x");
    assert!(k.contains(b'u', "x") && !k.contains(b'a', "x") && !k.contains(b'u', "y"));
    for i in 0..KnownIdents::MAX {
        k.insert(b'a', &i.to_string());
    }
    assert!(k.len() <= KnownIdents::MAX);
    k.clear();
    assert!(k.is_empty());
}

#[test]
fn stored_routes_and_warnings_keep_their_format() {
    let ws = WorkspaceFile::from_yaml(
        "destinations:\n  - {id: \"a\\\"b\", kind: webhook, settings: {url: \"http://127.0.0.1:9/x\"}}\n",
    )
    .unwrap();
    let q = quoted_ids(&ws);
    assert_eq!(format!("[{}]", q[0]), crate::delivery::routes::encode(&["a\"b"]));
    assert_eq!(warnings_json(&[], &[]), serde_json::to_string(&Vec::<String>::new()).unwrap());
}
