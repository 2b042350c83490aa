use super::*;
use crate::checkpoint::Write;

fn store() -> (tempfile::TempDir, StateStore) {
    let d = tempfile::tempdir().unwrap();
    let s = StateStore::open(&d.path().join(".sluice")).unwrap();
    (d, s)
}

#[test]
fn workspace_round_trip() {
    let (_d, s) = store();
    assert_eq!(s.workspace().unwrap(), None);
    let ws = StoredWorkspace { config: serde_json::json!({"a": 1}), base_dir: "/x".into(), applied_at: "t".into() };
    s.save_workspace(&ws).unwrap();
    s.save_workspace(&ws).unwrap();
    assert_eq!(s.workspace().unwrap(), Some(ws));
}

#[test]
fn checkpoint_pages_in_byte_order_and_writes_atomically() {
    let (_d, mut s) = store();
    let m = s.mapping_id("users", "braze").unwrap();
    assert_eq!(s.mapping_id("users", "braze").unwrap(), m);
    let other = s.mapping_id("users", "amp").unwrap();
    assert_ne!(m, other);
    let put = |id: &str, held: Option<u64>, pending| Write::Put(Entry { id: id.into(), held, pending });
    s.write_checkpoint(
        m,
        &[
            put("9", Some(u64::MAX), Pending::None),
            put("10", None, Pending::Withheld),
            put("", Some(1), Pending::None),
            put("100", Some(2), Pending::Failed { attempts: 2, first_failed: 1700000000 }),
            put("Z", Some(3), Pending::Rejected { hash: 77 }),
            put("a", None, Pending::GaveUp { hash: 78 }),
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
    assert_eq!(ids, vec!["", "10", "100", "9", "Z", "a"]);
    assert_eq!(all[3].held, Some(u64::MAX));
    assert_eq!(all[2].pending, Pending::Failed { attempts: 2, first_failed: 1700000000 });
    assert_eq!(all[4].pending, Pending::Rejected { hash: 77 });
    s.write_checkpoint(m, &[Write::Remove("9".into())]).unwrap();
    assert_eq!(s.checkpoint_entry(m, "9").unwrap(), None);
    assert_eq!(s.checkpoint_entry(other, "1").unwrap().unwrap().held, Some(5));
}

#[test]
fn rekey_swaps_keys_atomically() {
    let (_d, mut s) = store();
    let m = s.mapping_id("users", "braze").unwrap();
    assert_eq!(s.mapping_id_order(m).unwrap(), None);
    s.set_mapping_id_order(m, "text").unwrap();
    assert_eq!(s.mapping_id_order(m).unwrap().as_deref(), Some("text"));
    let put = |id: &str| Write::Put(Entry { id: id.into(), held: Some(1), pending: Pending::None });
    s.write_checkpoint(m, &[put("1"), put("2"), put("x")]).unwrap();
    let dropped = s.rekey_checkpoint(m, &|k| k.parse::<u32>().ok().map(|n| format!("k{n:03}"))).unwrap();
    assert_eq!(dropped, 1);
    let ids: Vec<String> = s.checkpoint_page(m, None, 10).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, vec!["k001", "k002"]);
    assert!(s.checkpoint_page(-m - 1, None, 10).unwrap().is_empty());
}

#[test]
fn runs_and_usage() {
    let (_d, s) = store();
    let r = s.start_run("users", "2026-11-25T00:00:00Z").unwrap();
    s.finish_run(r, "2026-11-25T00:00:01Z", crate::RunStatus::Ok, &serde_json::json!({"mappings": []})).unwrap();
    let runs = s.runs(Some("users"), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, crate::RunStatus::Ok);
    assert!(s.runs(Some("other"), 10).unwrap().is_empty());
    s.add_usage("2026-11", "braze", 5).unwrap();
    s.add_usage("2026-11", "braze", 7).unwrap();
    s.add_usage("2026-11", "amp", 0).unwrap();
    assert_eq!(
        s.usage().unwrap(),
        vec![UsageRow { month: "2026-11".into(), destination: "braze".into(), records: 12 }]
    );
}

#[test]
fn failed_entries_are_listed_from_their_own_index() {
    let (_d, mut s) = store();
    let m = s.mapping_id("users", "braze").unwrap();
    let put = |id: &str, pending| Write::Put(Entry { id: id.into(), held: Some(1), pending });
    let failed = Pending::Failed { attempts: 1, first_failed: 1700000000 };
    s.write_checkpoint(m, &[put("a", Pending::None), put("b", failed), put("c", Pending::Withheld)]).unwrap();
    s.write_checkpoint(m, &[put("d", failed), put("b", Pending::None)]).unwrap();
    assert_eq!(s.checkpoint_failed_ids(m).unwrap(), ["d"]);
    // the planner reads the partial index, not every entry of the mapping
    let mut stmt = s
        .conn
        .prepare("explain query plan select id from checkpoint where mapping = 1 and pending = 2 order by id")
        .unwrap();
    let plan: Vec<String> = stmt.query_map([], |r| r.get(3)).unwrap().map(|r| r.unwrap()).collect();
    let plan = plan.join(" | ");
    assert!(plan.contains("checkpoint_failed"), "{plan}");
}
