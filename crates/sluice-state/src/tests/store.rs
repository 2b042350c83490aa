//! The store's contract: workspace, mappings, checkpoints, runs, usage, audit log, tokens.

use super::Fixture;
use crate::checkpoint::Write;
use crate::{AuditEntry, Entry, Pending, Role, RunStatus, StoredWorkspace, TokenInfo, UsageRow};

fn put(id: &str, held: Option<u64>, pending: Pending) -> Write {
    Write::Put(Entry { id: id.into(), held, pending, proof: None })
}

pub(super) fn workspace_round_trip(f: Fixture) {
    let s = f.open();
    assert_eq!(s.workspace().unwrap(), None);
    // hostile text survives: quotes, NUL escaped in JSON, non-ASCII, big integers
    let config = serde_json::json!({"a": 1, "q": "it's \"x\"; drop table workspace; --", "nul": "a\u{0}b",
        "é": "ünï", "big": u64::MAX, "neg": i64::MIN, "f": 0.1});
    let ws = StoredWorkspace { config, base_dir: "/x/ü".into(), applied_at: "t".into() };
    s.save_workspace(&ws).unwrap();
    s.save_workspace(&ws).unwrap();
    assert_eq!(s.workspace().unwrap(), Some(ws.clone()));
    let newer = StoredWorkspace { applied_at: "t2".into(), ..ws };
    s.save_workspace(&newer).unwrap();
    assert_eq!(f.open().workspace().unwrap(), Some(newer), "a reopened store reads the last one");
}

pub(super) fn checkpoint_pages_in_byte_order_and_writes_atomically(f: Fixture) {
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    assert_eq!(s.mapping_id("users", "braze").unwrap(), m);
    let other = s.mapping_id("users", "amp").unwrap();
    assert_ne!(m, other);
    s.write_checkpoint(
        m,
        &[
            put("9", Some(u64::MAX), Pending::None),
            put("10", None, Pending::Withheld),
            put("", Some(1), Pending::None),
            put("100", Some(2), Pending::Failed { attempts: 2, first_failed: 1700000000 }),
            put("Z", Some(3), Pending::Rejected { hash: 77 }),
            put("a", None, Pending::GaveUp { hash: u64::MAX - 1 }),
            put("é", Some(4), Pending::None),
            put("z", Some(5), Pending::None),
        ],
    )
    .unwrap();
    s.write_checkpoint(other, &[put("1", Some(5), Pending::None)]).unwrap();
    let mut all = vec![];
    let mut after: Option<String> = None;
    loop {
        let page = s.checkpoint_page(m, after.as_deref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.id.clone());
        all.extend(page);
    }
    let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    // byte order: digits < upper case < lower case < UTF-8 multi-byte (never a locale's order)
    assert_eq!(ids, vec!["", "10", "100", "9", "Z", "a", "z", "é"]);
    assert_eq!(all[3].held, Some(u64::MAX));
    assert_eq!(all[2].pending, Pending::Failed { attempts: 2, first_failed: 1700000000 });
    assert_eq!(all[4].pending, Pending::Rejected { hash: 77 });
    assert_eq!(all[5].pending, Pending::GaveUp { hash: u64::MAX - 1 });
    assert_eq!(all[1].pending, Pending::Withheld);
    s.write_checkpoint(m, &[Write::Remove("9".into())]).unwrap();
    assert_eq!(s.checkpoint_entry(m, "9").unwrap(), None);
    assert_eq!(s.checkpoint_entry(other, "1").unwrap().unwrap().held, Some(5));
    assert_eq!(s.checkpoint_entry(m, "missing").unwrap(), None);
    s.write_checkpoint(m, &[]).unwrap();
}

pub(super) fn last_write_of_an_id_wins_in_a_batch(f: Fixture) {
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    s.write_checkpoint(m, &[put("kept", Some(1), Pending::None)]).unwrap();
    s.write_checkpoint(
        m,
        &[
            put("a", Some(1), Pending::None),
            Write::Remove("a".into()),
            Write::Remove("b".into()),
            put("b", Some(2), Pending::None),
            put("c", Some(3), Pending::None),
            put("c", Some(4), Pending::Withheld),
            Write::Remove("kept".into()),
            put("kept", Some(9), Pending::None),
        ],
    )
    .unwrap();
    let got: Vec<(String, Option<u64>)> =
        s.checkpoint_page(m, None, 10).unwrap().into_iter().map(|e| (e.id, e.held)).collect();
    assert_eq!(got, vec![("b".into(), Some(2)), ("c".into(), Some(4)), ("kept".into(), Some(9))]);
    assert_eq!(s.checkpoint_entry(m, "c").unwrap().unwrap().pending, Pending::Withheld);
    // a batch larger than one statement's chunk, then its removal
    let many: Vec<Write> = (0..12_001).map(|i| put(&format!("k{i:06}"), Some(i), Pending::None)).collect();
    s.write_checkpoint(m, &many).unwrap();
    assert_eq!(s.checkpoint_held(m).unwrap(), 12_004);
    let gone: Vec<Write> = (0..12_001).map(|i| Write::Remove(format!("k{i:06}"))).collect();
    s.write_checkpoint(m, &gone).unwrap();
    assert_eq!(s.checkpoint_held(m).unwrap(), 3);
}

pub(super) fn rekey_swaps_keys_atomically(f: Fixture) {
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    assert_eq!(s.mapping_id_order(m).unwrap(), None);
    s.set_mapping_id_order(m, "text").unwrap();
    assert_eq!(s.mapping_id_order(m).unwrap().as_deref(), Some("text"));
    let put = |id: &str| Write::Put(Entry { id: id.into(), held: Some(1), pending: Pending::None, proof: None });
    s.write_checkpoint(m, &[put("1"), put("2"), put("x")]).unwrap();
    let dropped = s.rekey_checkpoint(m, &|k| k.parse::<u32>().ok().map(|n| format!("k{n:03}"))).unwrap();
    assert_eq!(dropped, 1);
    let ids: Vec<String> = s.checkpoint_page(m, None, 10).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, vec!["k001", "k002"]);
    assert!(s.checkpoint_page(-m - 1, None, 10).unwrap().is_empty());
}

pub(super) fn counts_and_snapshot_generations(f: Fixture) {
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    let failed = Pending::Failed { attempts: 1, first_failed: 1 };
    s.write_checkpoint(
        m,
        &[
            put("a", Some(1), Pending::None),
            put("b", None, Pending::Withheld),
            put("c", Some(1), Pending::Withheld),
            put("d", Some(1), failed),
            put("e", None, Pending::GaveUp { hash: 3 }),
        ],
    )
    .unwrap();
    assert_eq!(s.checkpoint_held(m).unwrap(), 3);
    assert_eq!(s.checkpoint_withheld(m).unwrap(), 2);
    let counts = s.checkpoint_counts(m).unwrap();
    assert_eq!(
        counts,
        vec![("failed".into(), 1), ("gave_up".into(), 1), ("settled".into(), 1), ("withheld".into(), 2)]
    );
    assert_eq!(s.snapshot_generation(m).unwrap(), None);
    s.set_snapshot_generation(m, Some(7)).unwrap();
    s.set_snapshot_generation(m, Some(8)).unwrap();
    assert_eq!(s.snapshot_generation(m).unwrap(), Some(8));
    s.set_snapshot_generation(m, None).unwrap();
    assert_eq!(s.snapshot_generation(m).unwrap(), None);
}

pub(super) fn runs_and_usage(f: Fixture) {
    let s = f.open();
    let r = s.start_run("users", "2026-11-25T00:00:00Z").unwrap();
    s.finish_run(r, "2026-11-25T00:00:01Z", RunStatus::Ok, &serde_json::json!({"mappings": []})).unwrap();
    let runs = s.runs(Some("users"), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].status, runs[0].report.clone()), (RunStatus::Ok, Some(serde_json::json!({"mappings": []}))));
    assert!(s.runs(Some("other"), 10).unwrap().is_empty());
    // a run left running (its process died) is marked interrupted by the next run of its model
    let cut = s.start_run("users", "2026-11-25T01:00:00Z").unwrap();
    let other = s.start_run("orders", "2026-11-25T01:00:00Z").unwrap();
    let next = s.start_run("users", "2026-11-25T02:00:00Z").unwrap();
    assert!(r < cut && cut < other && other < next, "run ids grow: {r} {cut} {other} {next}");
    let runs = s.runs(None, 10).unwrap();
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![next, other, cut, r]);
    let interrupted = &runs[2];
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert_eq!(interrupted.finished_at.as_deref(), Some("2026-11-25T02:00:00Z"));
    let report = interrupted.report.clone().unwrap();
    assert_eq!((report["run_id"].as_i64(), report["status"].as_str()), (Some(cut), Some("interrupted")));
    assert_eq!(runs[1].status, RunStatus::Running, "another model's run is left alone");
    assert_eq!(s.runs(None, 1).unwrap().len(), 1);
    s.add_usage("2026-11", "braze", 5).unwrap();
    s.add_usage("2026-11", "braze", 7).unwrap();
    s.add_usage("2026-11", "amp", 0).unwrap();
    s.add_usage("2026-10", "amp", 1).unwrap();
    assert_eq!(
        s.usage().unwrap(),
        vec![
            UsageRow { month: "2026-11".into(), destination: "braze".into(), records: 12 },
            UsageRow { month: "2026-10".into(), destination: "amp".into(), records: 1 },
        ]
    );
}

pub(super) fn failed_entries_are_listed_from_their_own_index(f: Fixture) {
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    let put = |id: &str, pending| Write::Put(Entry { id: id.into(), held: Some(1), pending, proof: None });
    let failed = Pending::Failed { attempts: 1, first_failed: 1700000000 };
    s.write_checkpoint(m, &[put("a", Pending::None), put("b", failed), put("c", Pending::Withheld)]).unwrap();
    s.write_checkpoint(m, &[put("d", failed), put("b", Pending::None)]).unwrap();
    assert_eq!(s.checkpoint_failed_ids(m).unwrap(), ["d"]);
    // the planner reads the partial index, not every entry of the mapping
    let plan = if s.is_postgres() {
        // a tiny table is cheaper to scan whole: rule that out to see which index serves the query
        s.raw_strings(
            "set enable_seqscan = off; set enable_bitmapscan = off;
             explain select id from checkpoint where mapping = 1 and pending = 2 order by id",
        )
        .unwrap()
    } else {
        s.raw_strings("explain query plan select id from checkpoint where mapping = 1 and pending = 2 order by id")
            .unwrap()
    };
    let plan = plan.join(" | ");
    assert!(plan.contains("checkpoint_failed"), "{plan}");
}

fn entry(entity: &str) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: "t".into(),
        actor: "cli:me".into(),
        action: "create".into(),
        kind: "destination".into(),
        entity: entity.into(),
        before: None,
        after: Some(serde_json::json!({"id": entity})),
    }
}

pub(super) fn audit_log_is_append_only(f: Fixture) {
    let mut s = f.open();
    s.append_audit(&[entry("crm"), entry("ads")]).unwrap();
    s.append_audit(&[]).unwrap();
    let log = s.audit_log(10).unwrap();
    let got: Vec<&str> = log.iter().map(|e| e.entity.as_str()).collect();
    assert_eq!(got, ["ads", "crm"], "newest first");
    assert!(log[0].id > log[1].id);
    assert_eq!((log[1].before.clone(), log[1].after.clone()), (None, Some(serde_json::json!({"id": "crm"}))));
    assert_eq!(s.audit_log(1).unwrap().len(), 1);
    let mut refusals = vec!["update audit_log set actor = 'x'", "delete from audit_log"];
    if s.is_postgres() {
        refusals.push("truncate audit_log");
    }
    for sql in refusals {
        let err = s.raw_execute(sql).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.audit_log(10).unwrap(), log, "nothing changed");
}

pub(super) fn tokens_are_stored_hashed_and_authenticate(f: Fixture) {
    let s = f.open();
    let t = s.create_token("alice", Role::Owner).unwrap();
    let m = s.create_token("bob", Role::Member).unwrap();
    assert!(t.starts_with("slc_") && t.len() > 40 && t != m);
    assert_eq!(s.authenticate(&t).unwrap(), Some(TokenInfo { name: "alice".into(), role: Role::Owner }));
    assert_eq!(s.authenticate(&m).unwrap(), Some(TokenInfo { name: "bob".into(), role: Role::Member }));
    assert_eq!(s.authenticate("slc_nope").unwrap(), None);
    assert_eq!(s.authenticate("' or '1'='1").unwrap(), None);
    let cells = s.raw_strings("select * from tokens").unwrap().join(" ");
    assert!(!cells.contains(&t[4..]) && !cells.contains(&m[4..]), "only hashes are stored: {cells}");
    let rows = s.tokens().unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.name.as_str(), r.role.as_str(), r.disabled)).collect::<Vec<_>>(),
        [("alice", "owner", false), ("bob", "member", false)]
    );
    assert_eq!(rows[0].created_at.len(), "2026-11-27 17:00:00".len(), "{}", rows[0].created_at);
    assert!(s.disable_token(rows[1].id).unwrap());
    assert!(!s.disable_token(9999).unwrap());
    assert_eq!(s.authenticate(&m).unwrap(), None);
    assert!(s.tokens().unwrap()[1].disabled);
}

pub(super) fn two_stores_share_one_state(f: Fixture) {
    let mut a = f.open();
    let b = f.open();
    let m = a.mapping_id("users", "braze").unwrap();
    assert_eq!(b.mapping_id("users", "braze").unwrap(), m);
    a.write_checkpoint(m, &[put("1", Some(1), Pending::None)]).unwrap();
    assert_eq!(b.checkpoint_entry(m, "1").unwrap().unwrap().held, Some(1));
    let t = b.create_token("carol", Role::Owner).unwrap();
    assert!(a.authenticate(&t).unwrap().is_some());
}

pub(super) fn proof_of_consent_round_trips(f: Fixture) {
    let mut s = f.open();
    let m = s.mapping_id("users", "braze").unwrap();
    assert_eq!(s.find_mapping_id("users", "braze").unwrap(), Some(m));
    assert_eq!(s.find_mapping_id("users", "nope").unwrap(), None);
    let sig = crate::ConsentSignature { rule: "R2 all".into(), consent: [("C0004".to_string(), true)].into() };
    let other = crate::ConsentSignature { rule: "R2 all".into(), consent: Default::default() };
    let id = s.consent_signature(m, &sig).unwrap();
    assert_eq!(s.consent_signature(m, &sig).unwrap(), id, "one id per signature");
    assert_ne!(s.consent_signature(m, &other).unwrap(), id);
    assert_eq!(s.consent_signature_by_id(m, id).unwrap(), Some(sig));
    assert_eq!(s.consent_signature_by_id(m, 999).unwrap(), None);
    let run = s.start_run("users", "t").unwrap();
    let proof = crate::Proof { run, signature: id };
    let e = Entry { id: "1".into(), held: Some(1), pending: Pending::None, proof: Some(proof) };
    s.write_checkpoint(m, &[Write::Put(e.clone())]).unwrap();
    assert_eq!(s.checkpoint_entry(m, "1").unwrap(), Some(e.clone()));
    assert_eq!(s.checkpoint_page(m, None, 10).unwrap(), vec![e]);
    assert_eq!(s.run(run).unwrap().map(|r| (r.model, r.status)), Some(("users".into(), RunStatus::Running)));
    assert_eq!(s.run(run + 100).unwrap(), None);
}
