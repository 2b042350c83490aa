//! Privacy requests: suppressions, per-destination delete statuses, the version counter, audit.

use super::Fixture;
use crate::privacy::{check_subject_ids, new_regulation_id, MAX_SUBJECT_IDS, MAX_SUBJECT_ID_CHARS};
use crate::{DeleteStatus, NewRegulation, PlannedDelete, RegulationType};

fn new(kind: RegulationType, ids: &[&str]) -> NewRegulation {
    NewRegulation {
        id: new_regulation_id(),
        kind,
        subject_type: "USER_ID".into(),
        subject_ids: ids.iter().map(|s| s.to_string()).collect(),
        joined_ids: vec!["anon-1".into()],
        destinations: vec![
            PlannedDelete { id: "hook".into(), status: DeleteStatus::Running, error: None, stream_seq: Some(7) },
            PlannedDelete {
                id: "tracking".into(),
                status: DeleteStatus::NotSupported,
                error: Some("no delete call".into()),
                stream_seq: None,
            },
        ],
        created_by: "cli:me".into(),
    }
}

fn set(ids: &[&str]) -> std::collections::HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

pub(super) fn suppress_unsuppress_and_statuses_persist_with_audit_and_version(f: Fixture) {
    let mut s = f.open();
    assert_eq!(s.privacy_version().unwrap(), 0);
    let r = s.create_regulation(&new(RegulationType::SuppressWithDelete, &["u1", "u2"])).unwrap();
    assert_eq!(s.privacy_version().unwrap(), 1);
    assert_eq!(r.overall, DeleteStatus::Running);
    assert!(r.created_at.ends_with('Z') && r.created_at.len() == "2026-01-01T00:00:00.000Z".len(), "{}", r.created_at);
    assert_eq!(s.suppressed_ids().unwrap(), set(&["u1", "u2", "anon-1"]));
    assert_eq!(s.suppressed_by("u2").unwrap(), Some(r.id.clone()));
    assert_eq!(s.suppressed_by("nobody").unwrap(), None);
    assert_eq!(s.due_deletes(i64::MAX).unwrap(), vec![(r.id.clone(), "hook".to_string())]);
    assert!(s.due_deletes(-1).unwrap().is_empty(), "next_at starts at 0");
    s.set_delete_status(&r.id, "hook", DeleteStatus::Running, Some("HTTP 503"), 5_000).unwrap();
    let retry = f.open().regulation(&r.id).unwrap().unwrap();
    assert_eq!((retry.destinations[0].next_at, retry.destinations[0].error.as_deref()), (5_000, Some("HTTP 503")));
    assert_eq!(retry.destinations[0].finished_at, None, "a retry is not finished");
    assert!(s.due_deletes(4_999).unwrap().is_empty());
    s.set_delete_status(&r.id, "hook", DeleteStatus::Finished, None, 0).unwrap();
    let r2 = f.open().regulation(&r.id).unwrap().unwrap();
    assert_eq!(r2.overall, DeleteStatus::Finished);
    assert_eq!(r2.destinations[0].attempts, 2);
    assert!(r2.destinations[0].finished_at.is_some());
    assert_eq!(r2.destinations[1].status, DeleteStatus::NotSupported);
    assert_eq!(r2.destinations[1].error.as_deref(), Some("no delete call"));
    assert!(r2.destinations[1].finished_at.is_some(), "not supported is final at once");
    assert_eq!(r2.destinations[0].stream_seq, Some(7));
    assert_eq!(
        (r2.subject_ids.clone(), r2.joined_ids.clone()),
        (vec!["u1".into(), "u2".into()], vec!["anon-1".into()])
    );
    assert!(s.due_deletes(i64::MAX).unwrap().is_empty());
    let audit = s.audit_log(5).unwrap();
    assert_eq!((audit[0].kind.as_str(), audit[0].entity.as_str()), ("privacy_request", r.id.as_str()));
    assert_eq!(audit[0].after.as_ref().unwrap()["subjectIds"], serde_json::json!(["u1", "u2"]));
    let u = s.create_regulation(&new(RegulationType::Unsuppress, &["u1"])).unwrap();
    assert!(u.destinations.is_empty() && u.overall == DeleteStatus::Finished);
    assert_eq!(s.suppressed_ids().unwrap(), set(&["u2"]));
    assert_eq!(s.privacy_version().unwrap(), 2);
    let all = s.regulations(10).unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec![u.id.as_str(), r.id.as_str()],
        "newest first"
    );
    assert_eq!(s.regulations(1).unwrap().len(), 1);
    assert!(s.regulation("reg_nope").unwrap().is_none());
    s.audit_privacy("cli:me", "refused", serde_json::json!({"why": "x"})).unwrap();
    assert_eq!(s.audit_log(1).unwrap()[0].entity, "refused");
}

pub(super) fn a_failed_delete_fails_the_request_and_ids_repeat_safely(f: Fixture) {
    let mut s = f.open();
    // a subject also among the joined ids, a hostile id: stored once, as data
    let mut n = new(RegulationType::SuppressOnly, &["anon-1", "x'); drop table suppressions; --"]);
    n.destinations.clear();
    let r = s.create_regulation(&n).unwrap();
    assert_eq!(r.overall, DeleteStatus::Finished, "suppress-only deletes nothing");
    assert_eq!(s.suppressed_ids().unwrap(), set(&["anon-1", "x'); drop table suppressions; --"]));
    let d = s.create_regulation(&new(RegulationType::DeleteOnly, &["u9"])).unwrap();
    assert_eq!(s.suppressed_by("u9").unwrap(), None, "delete-only does not suppress");
    assert_eq!(s.suppressed_by("anon-1").unwrap(), Some(r.id.clone()), "nor move an existing suppression");
    s.set_delete_status(&d.id, "hook", DeleteStatus::Failed, Some("HTTP 400"), 0).unwrap();
    let d2 = s.regulation(&d.id).unwrap().unwrap();
    assert_eq!(d2.overall, DeleteStatus::Failed);
    assert_eq!(d2.destinations[0].error.as_deref(), Some("HTTP 400"));
}

#[test]
fn subject_ids_are_bounded_and_hostile_ones_named() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(check_subject_ids(&[]).unwrap_err().field, "subjectIds");
    assert_eq!(check_subject_ids(&vec!["x".to_string(); MAX_SUBJECT_IDS + 1]).unwrap_err().field, "subjectIds");
    assert_eq!(check_subject_ids(&ids(&["ok", "a\u{0}b"])).unwrap_err().field, "subjectIds[1]");
    assert_eq!(check_subject_ids(&ids(&["ok", "a\nb"])).unwrap_err().field, "subjectIds[1]");
    assert_eq!(check_subject_ids(&["x".repeat(1 << 20)]).unwrap_err().field, "subjectIds[0]");
    assert_eq!(check_subject_ids(&ids(&[""])).unwrap_err().field, "subjectIds[0]");
    assert!(check_subject_ids(&["é".repeat(MAX_SUBJECT_ID_CHARS)]).is_ok(), "characters, not bytes");
    assert_eq!(check_subject_ids(&ids(&["a", "b", "a"])).unwrap(), ids(&["a", "b"]));
}
