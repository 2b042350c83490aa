//! Alert notifications: Slack-compatible JSON (`{"text": ..., "blocks": [...]}`, what Slack's
//! incoming webhooks take) POSTed through the shared HTTP transport with retries. A
//! notification that cannot be sent stays pending in state.db with a growing delay (at most an
//! hour) and is sent by the next sync or the next round of `sluice serve`'s alert thread; it is
//! counted, never dropped silently and never fails anything.

use serde_json::{json, Value};
use sluice_core::WorkspaceFile;
use sluice_destinations::http::{HttpOptions, Transport};
use sluice_state::{AlertEvent, StateStore};

/// Notifications sent at most per call (the rest wait for the next call).
const BATCH: usize = 50;
/// Longest wait before another attempt, in milliseconds.
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// What one round of sending did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Accepted by their webhook.
    pub sent: u64,
    /// Not accepted: kept for a later attempt.
    pub failed: u64,
}

fn transport() -> Transport {
    Transport::new(&HttpOptions {
        timeout_secs: 10.0,
        max_attempts: 3,
        retry_initial_ms: 200,
        retry_max_ms: 2_000,
        max_retry_after_secs: 10,
    })
}

fn num(v: &Value) -> String {
    v.as_f64().map(|v| format!("{v}")).unwrap_or_else(|| "n/a".into())
}

fn pct(v: &Value) -> String {
    v.as_f64().map(|v| format!("{v}%")).unwrap_or_else(|| "n/a".into())
}

/// The notification's text: what fired or resolved, where, with counts and rates; never a
/// record value.
pub fn text(e: &AlertEvent) -> String {
    let d = &e.detail;
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (model, dest) = (s("model"), s("destination"));
    let target = match (model.is_empty(), dest.is_empty()) {
        (false, false) => format!("model `{model}` → destination `{dest}`"),
        (false, true) => format!("model `{model}`"),
        _ => format!("streaming destination `{dest}`"),
    };
    let what = match s("on").as_str() {
        "failed_sync" => "sync failed".to_string(),
        "delivery_rate_below" => {
            format!("delivery rate {} (threshold {})", pct(&d["value"]), pct(&d["threshold"]))
        }
        "withheld_rate_jump" => format!(
            "withheld-by-consent rate {} (was {}; jump threshold {} points)",
            pct(&d["value"]),
            pct(&d["previous_value"]),
            num(&d["threshold"])
        ),
        other => other.to_string(),
    };
    let head = if e.state == "firing" { ":rotating_light: FIRING" } else { ":white_check_mark: RESOLVED" };
    let mut t = format!("{head} Sluice alert `{}`: {what} for {target}", e.alert);
    if let Some(run) = d.get("run_id").and_then(Value::as_i64) {
        t.push_str(&format!(" (run {run}, status {})", s("run_status")));
    }
    if let Some(w) = d.get("window_minutes").and_then(Value::as_u64) {
        t.push_str(&format!(" (last {w} minutes)"));
    }
    t
}

/// The Slack-compatible body of a notification.
pub fn body(e: &AlertEvent) -> Value {
    let text = text(e);
    let counts: Vec<String> = e.detail["counts"]
        .as_object()
        .map(|o| o.iter().filter(|(_, v)| v.is_u64()).map(|(k, v)| format!("{}: {v}", k.replace('_', " "))).collect())
        .unwrap_or_default();
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
    if !counts.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": counts.join(" · ")}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("alert `{}` · {} · {} · {}", e.alert, e.subject, e.state, e.at)}]}));
    json!({"text": text, "blocks": blocks, "sluice": e.detail})
}

/// Sends the notifications due at `now_ms` (Unix milliseconds) to their alert's webhook in
/// `file`. Never fails: a failure is recorded on the notification (retried later) and logged.
pub fn send_due(store: &mut StateStore, file: &WorkspaceFile, now_ms: i64) -> Sent {
    let mut out = Sent::default();
    let due = match store.due_notifications(now_ms, BATCH) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "alert notifications could not be read");
            return out;
        }
    };
    if due.is_empty() {
        return out;
    }
    let http = transport();
    for e in due {
        let webhook = file.alerts.iter().find(|a| a.id == e.alert).and_then(|a| a.webhook(file));
        let Some(url) = webhook else {
            let _ = store.notification_dropped(e.id, "the alert or its webhook was removed before it was sent");
            crate::metrics::alert_notification("dropped");
            continue;
        };
        let bytes = serde_json::to_vec(&body(&e)).unwrap_or_default();
        let key = sluice_destinations::http::idempotency_key("alert", e.id.to_string().as_bytes());
        match http.post_json(url.expose(), &[("Idempotency-Key", &key)], &bytes) {
            Ok(()) => {
                out.sent += 1;
                crate::metrics::alert_notification("sent");
                if let Err(err) = store.notification_sent(e.id) {
                    tracing::error!(error = %err, "alert notification sent but not marked");
                }
            }
            Err(err) => {
                out.failed += 1;
                crate::metrics::alert_notification("failed");
                // the URL is a credential: never kept in the error
                let msg = err.to_string().replace(url.expose(), sluice_core::SET);
                let wait = (30_000i64 << e.attempts.clamp(0, 7)).min(MAX_BACKOFF_MS);
                tracing::warn!(alert = %e.alert, attempts = e.attempts + 1, error = %msg, "alert notification not sent");
                if let Err(err) = store.notification_failed(e.id, &msg, now_ms.saturating_add(wait)) {
                    tracing::error!(error = %err, "alert notification failure not recorded");
                }
            }
        }
    }
    out
}
