use super::*;

fn cats() -> Vec<String> {
    vec!["ad".into(), "analytics".into()]
}

fn prefs(ad: bool) -> BTreeMap<String, bool> {
    [("ad".to_string(), ad)].into()
}

#[test]
fn r9_full_state_replaces_and_most_recent_wins() {
    let mut p = Profile::default();
    p.apply_consent_event(
        &[("ad".to_string(), true), ("analytics".to_string(), true)].into(),
        &cats(),
        "2024-01-02T00:00:00.000Z",
        1,
    );
    assert_eq!(p.routing_consent(), [("ad".to_string(), true), ("analytics".to_string(), true)].into());
    // omitted category becomes false
    p.apply_consent_event(&prefs(true), &cats(), "2024-01-03T00:00:00.000Z", 2);
    assert!(!p.routing_consent()["analytics"]);
    // an older event (by timestamp) arriving later does not win
    p.apply_consent_event(&prefs(false), &cats(), "2024-01-01T00:00:00.000Z", 3);
    assert!(p.routing_consent()["ad"]);
    // same timestamp: arrival breaks the tie
    p.apply_consent_event(&prefs(false), &cats(), "2024-01-03T00:00:00.000Z", 4);
    assert!(!p.routing_consent()["ad"]);
    assert!(!p.consent_conflict());
}

#[test]
fn r10_anonymous_merge_is_most_recent_without_conflict() {
    let mut known = Profile { user_ids: ["u1".to_string()].into(), ..Default::default() };
    known.apply_consent_event(&prefs(true), &cats(), "2024-01-01T00:00:00.000Z", 1);
    let mut anon = Profile { anonymous_ids: ["a1".to_string()].into(), ..Default::default() };
    anon.apply_consent_event(&prefs(false), &cats(), "2024-01-02T00:00:00.000Z", 2);
    known.merge(anon);
    assert!(!known.routing_consent()["ad"]);
    assert!(!known.consent_conflict());
    assert!(known.anonymous_ids.contains("a1"));
}

#[test]
fn r10_two_known_users_disagreeing_conflict_until_settled() {
    let mut a = Profile { user_ids: ["u1".to_string()].into(), ..Default::default() };
    a.apply_consent_event(&prefs(true), &cats(), "2024-01-01T00:00:00.000Z", 1);
    let mut b = Profile { user_ids: ["u2".to_string()].into(), ..Default::default() };
    b.apply_consent_event(&prefs(false), &cats(), "2024-01-02T00:00:00.000Z", 2);
    a.merge(b);
    assert!(a.consent_conflict());
    assert_eq!(a.consent_traits()["ad"], Value::String("conflict".into()));
    assert_eq!(a.consent_traits()["analytics"], Value::Bool(false), "both said false: no conflict");
    assert!(!a.routing_consent()["ad"], "conflict counts as false");
    a.apply_consent_event(&prefs(true), &cats(), "2024-01-03T00:00:00.000Z", 3);
    assert!(!a.consent_conflict());
    assert!(a.routing_consent()["ad"]);
}

#[test]
fn finding_16_traits_are_capped_in_keys_and_bytes() {
    use serde_json::{json, Map, Value};
    let mut p = Profile::default();
    let many: Map<String, Value> = (0..MAX_TRAITS + 10).map(|i| (format!("t{i}"), json!(i))).collect();
    let left = p.add_traits(&many);
    assert_eq!(p.traits.len(), MAX_TRAITS);
    assert_eq!(left.len(), 10);
    // an existing trait can still change
    let left = p.add_traits(&Map::from_iter([("t0".to_string(), json!("new"))]));
    assert!(left.is_empty());
    assert_eq!(p.traits["t0"], "new");
    // a huge value is refused; the profile stays within the byte bound
    let mut q = Profile::default();
    let big: Map<String, Value> = (0..20).map(|i| (format!("b{i}"), json!("x".repeat(10_000)))).collect();
    let left = q.add_traits(&big);
    assert!(!left.is_empty());
    assert!(serde_json::to_string(&q.traits).unwrap().len() <= MAX_TRAITS_BYTES);
}
