use super::notify::{body, text};
use sluice_state::{AlertEvent, Notify};

fn event(state: &str, detail: serde_json::Value) -> AlertEvent {
    AlertEvent {
        id: 7,
        alert: "crm-rate".into(),
        subject: "model/users/crm".into(),
        state: state.into(),
        at: "2026-01-01T00:00:00.000Z".into(),
        detail,
        notify: Notify::Pending,
        attempts: 0,
        last_error: None,
    }
}

#[test]
fn notifications_are_slack_json_with_ids_counts_and_rates() {
    let e = event(
        "firing",
        serde_json::json!({"on": "delivery_rate_below", "model": "users", "destination": "crm", "run_id": 12,
                           "run_status": "partial", "value": 30.0, "threshold": 90.0,
                           "counts": {"extracted": 10, "delivered": 3, "failed": 7}}),
    );
    let b = body(&e);
    let t = b["text"].as_str().unwrap();
    assert!(t.starts_with(":rotating_light: FIRING Sluice alert `crm-rate`"), "{t}");
    assert!(t.contains("delivery rate 30% (threshold 90%)") && t.contains("model `users` → destination `crm`"), "{t}");
    assert!(t.contains("run 12, status partial"), "{t}");
    assert_eq!(b["blocks"][0]["type"], "section");
    assert_eq!(b["blocks"][0]["text"]["type"], "mrkdwn");
    assert_eq!(b["blocks"][1]["text"]["text"], "delivered: 3 · extracted: 10 · failed: 7");
    assert_eq!(b["blocks"][2]["type"], "context");
    let r =
        text(&event("resolved", serde_json::json!({"on": "failed_sync", "destination": "ads", "window_minutes": 15})));
    assert_eq!(r, ":white_check_mark: RESOLVED Sluice alert `crm-rate`: sync failed for streaming destination `ads` (last 15 minutes)");
    // a detail that does not read as expected (an old row, hostile JSON) still gives a text
    let odd = text(&event("firing", serde_json::json!({"on": 5, "value": "x", "counts": [1]})));
    assert!(odd.contains("FIRING"), "{odd}");
    let _ = body(&event("firing", serde_json::Value::Null));
}
