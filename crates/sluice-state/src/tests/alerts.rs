//! Alerts: state per (alert, subject), the history, and the notification outbox.

use super::Fixture;
use crate::{AlertChange, AlertState, Notify};

fn change<'a>(
    subject: &'a str,
    firing: bool,
    value: Option<f64>,
    at: &'a str,
    detail: &'a serde_json::Value,
) -> AlertChange<'a> {
    AlertChange { alert: "fail-rate", subject, firing, value, at, detail, notify: true }
}

pub(super) fn alert_state_fires_resolves_and_keeps_the_last_value(f: Fixture) {
    let mut s = f.open();
    let never = AlertState { firing: false, since: None, value: None };
    assert_eq!(s.alert_state("fail-rate", "users/hook").unwrap(), never);
    s.set_alert_value("fail-rate", "users/hook", Some(12.5), "2026-01-01T00:00:00Z").unwrap();
    s.set_alert_value("fail-rate", "users/hook", None, "2026-01-01T00:00:01Z").unwrap();
    assert_eq!(
        s.alert_state("fail-rate", "users/hook").unwrap(),
        AlertState { firing: false, since: None, value: Some(12.5) },
        "no value measured keeps the last one"
    );
    let detail = serde_json::json!({"failed": 3, "rate": 75.0, "q": "it's"});
    let id = s.record_alert(&change("users/hook", true, Some(75.0), "2026-01-01T00:01:00Z", &detail)).unwrap();
    s.record_alert(&change("users/amp", true, None, "2026-01-01T00:00:30Z", &detail)).unwrap();
    let st = f.open().alert_state("fail-rate", "users/hook").unwrap();
    assert_eq!(st, AlertState { firing: true, since: Some("2026-01-01T00:01:00Z".into()), value: Some(75.0) });
    let firing = s.firing_alerts().unwrap();
    assert_eq!(
        firing.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(),
        vec!["users/amp", "users/hook"],
        "oldest first"
    );
    assert_eq!(firing[0].value, None);
    let h = s.alert_history(10).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].id, id, "newest first");
    assert_eq!((h[1].state.as_str(), &h[1].detail, h[1].notify), ("firing", &detail, Notify::Pending));
    let resolved = s
        .record_alert(&AlertChange { notify: false, ..change("users/hook", false, Some(0.0), "t2", &detail) })
        .unwrap();
    assert!(resolved > id, "history ids grow");
    assert_eq!(
        s.alert_state("fail-rate", "users/hook").unwrap(),
        AlertState { firing: false, since: None, value: Some(0.0) }
    );
    assert_eq!(s.firing_alerts().unwrap().len(), 1);
    assert_eq!(s.alert_history(1).unwrap()[0].notify, Notify::None);
}

pub(super) fn notifications_are_retried_until_sent_or_dropped(f: Fixture) {
    let mut s = f.open();
    let d = serde_json::json!({});
    let a = s.record_alert(&change("m/a", true, None, "t1", &d)).unwrap();
    let b = s.record_alert(&change("m/b", true, None, "t2", &d)).unwrap();
    let c = s.record_alert(&change("m/c", true, None, "t3", &d)).unwrap();
    assert_eq!(s.pending_notifications().unwrap(), 3);
    let due: Vec<i64> = s.due_notifications(0, 10).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(due, vec![a, b, c], "oldest first");
    assert_eq!(s.due_notifications(0, 2).unwrap().len(), 2, "limit");
    s.notification_failed(a, "HTTP 500 from <redacted>", 10_000).unwrap();
    assert_eq!(s.due_notifications(9_999, 10).unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), vec![b, c]);
    let failed = s.due_notifications(10_000, 10).unwrap();
    assert_eq!(
        (failed[0].id, failed[0].attempts, failed[0].last_error.as_deref()),
        (a, 1, Some("HTTP 500 from <redacted>"))
    );
    s.notification_sent(a).unwrap();
    s.notification_dropped(b, "webhook removed").unwrap();
    assert_eq!(s.pending_notifications().unwrap(), 1);
    let h = f.open().alert_history(10).unwrap();
    let by = |id: i64| h.iter().find(|e| e.id == id).unwrap().clone();
    assert_eq!((by(a).notify, by(a).attempts, by(a).last_error), (Notify::Sent, 2, None));
    assert_eq!((by(b).notify, by(b).last_error.as_deref()), (Notify::None, Some("webhook removed")));
    assert_eq!(by(c).notify, Notify::Pending);
}
