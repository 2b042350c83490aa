//! Alerts end to end: a real SQLite warehouse, a real state store, a real HTTP receiver as the
//! destination and another playing Slack's incoming webhook.

mod common;

use common::{hook, mapping, Env};
use serde_json::Value;
use sluice_engine::Workspace;
use sluice_testkit::{Receiver, Reply};

const SLACK_PATH: &str = "/services/T000/B000/XXXXsecret";

fn warehouse() -> String {
    let mut sql = "create table users (id integer primary key, email text, ads integer);".to_string();
    for i in 1..=10 {
        sql.push_str(&format!("insert into users values ({i}, 'person{i}@example.com', 1);"));
    }
    sql
}

fn workspace(env: &Env, slack: &Receiver, alerts: &str) -> Workspace {
    let yaml = format!(
        "workspace: {{alert_webhook: '{}{SLACK_PATH}'}}
destinations:
{}consent_categories: [{{id: C0004, name: Advertising, destinations: [crm]}}]
models:
  - {{id: users, source: dwh, sql: 'select id, email, ads from users', unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: crm}}]}}
alerts:
{alerts}",
        slack.url(),
        hook("crm")
    );
    env.workspace(&yaml)
}

/// The notifications Slack received: (text, whole body).
fn notes(slack: &Receiver) -> Vec<(String, Value)> {
    slack
        .requests_to(SLACK_PATH)
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| (r.body["text"].as_str().unwrap_or_default().to_string(), r.body))
        .collect()
}

fn assert_no_personal_data(slack: &Receiver) {
    for r in slack.requests() {
        let b = r.body.to_string();
        assert!(!b.contains("@example.com") && !b.contains("person"), "personal data in an alert: {b}");
    }
}

#[test]
fn a_failed_sync_fires_once_and_resolves_once() {
    let mut env = Env::new(&warehouse());
    let slack = Receiver::start();
    let ws = workspace(
        &env,
        &slack,
        "  - {id: crm-failed, on: failed_sync, model: users}\n  - {id: crm-rate, on: delivery_rate_below, destination: crm, threshold: 90}\n",
    );
    env.rx.answer_path("/crm", Reply::Status(500));
    let r = env.sync(&ws, "users");
    assert_eq!(mapping(&r, "crm").delivered, 0);
    let n = notes(&slack);
    assert_eq!(n.len(), 2, "{n:#?}");
    assert!(
        n[0].0.contains("FIRING Sluice alert `crm-failed`: sync failed for model `users` → destination `crm`"),
        "{}",
        n[0].0
    );
    assert!(n[1].0.contains("FIRING Sluice alert `crm-rate`: delivery rate 0% (threshold 90%)"), "{}", n[1].0);
    assert_eq!(n[0].1["sluice"]["run_id"], r.run_id);
    assert_eq!(n[0].1["sluice"]["counts"]["failed"], 10);
    assert_eq!(n[0].1["blocks"][0]["type"], "section");

    // still failing: no second notification
    env.sync(&ws, "users");
    assert_eq!(notes(&slack).len(), 2, "an alert that keeps firing is not sent again");
    assert_eq!(env.store.firing_alerts().unwrap().len(), 2);

    env.rx.clear_path("/crm");
    let r = env.sync(&ws, "users");
    assert_eq!(mapping(&r, "crm").delivered, 10);
    let n = notes(&slack);
    assert_eq!(n.len(), 4, "{n:#?}");
    assert!(n[2].0.starts_with(":white_check_mark: RESOLVED Sluice alert `crm-failed`"), "{}", n[2].0);
    assert!(n[3].0.contains("RESOLVED Sluice alert `crm-rate`: delivery rate 100%"), "{}", n[3].0);
    assert!(env.store.firing_alerts().unwrap().is_empty());
    env.sync(&ws, "users");
    assert_eq!(notes(&slack).len(), 4, "a resolved alert stays quiet");
    let h = env.store.alert_history(10).unwrap();
    assert_eq!(h.iter().map(|e| e.state.as_str()).collect::<Vec<_>>(), ["resolved", "resolved", "firing", "firing"]);
    assert_no_personal_data(&slack);
}

#[test]
fn a_warehouse_error_is_a_failed_sync() {
    let mut env = Env::new(&warehouse());
    let slack = Receiver::start();
    let ws = workspace(&env, &slack, "  - {id: model-failed, on: failed_sync}\n");
    env.sync(&ws, "users");
    assert!(notes(&slack).is_empty(), "a good run raises nothing");
    env.sql("alter table users rename to users_gone");
    let err = sluice_engine::sync_model(&mut env.store, &ws, "users", &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("users"), "{err}");
    let n = notes(&slack);
    assert_eq!(n.len(), 1, "{n:#?}");
    assert!(n[0].0.contains("FIRING Sluice alert `model-failed`: sync failed for model `users`"), "{}", n[0].0);
    assert!(!n[0].1.to_string().contains("no such table"), "no warehouse error text (it can quote values)");
    assert!(sluice_engine::sync_model(&mut env.store, &ws, "users", &mut |_| {}).is_err());
    assert_eq!(notes(&slack).len(), 1, "no repeat");
    env.sql("alter table users_gone rename to users");
    env.sync(&ws, "users");
    let n = notes(&slack);
    assert_eq!(n.len(), 2);
    assert!(n[1].0.contains("RESOLVED Sluice alert `model-failed`: sync failed for model `users`"), "{}", n[1].0);
    assert_no_personal_data(&slack);
}

#[test]
fn a_delivery_rate_under_the_threshold_fires_when_records_are_rejected() {
    let mut env = Env::new(&warehouse());
    let slack = Receiver::start();
    let ws = workspace(
        &env,
        &slack,
        "  - {id: rate, on: delivery_rate_below, model: users, destination: crm, threshold: 80}\n  - {id: failed, on: failed_sync}\n",
    );
    // the first batch (3 records) is accepted, every other request rejected (4xx: permanent)
    env.rx.set_default(400);
    env.rx.script([Reply::Status(200)]);
    let r = env.sync(&ws, "users");
    let m = mapping(&r, "crm");
    assert_eq!((m.delivered, m.failed), (3, 7));
    let n = notes(&slack);
    assert_eq!(n.len(), 1, "a partial run is not a failed sync: {n:#?}");
    assert!(n[0].0.contains("FIRING Sluice alert `rate`: delivery rate 30% (threshold 80%)"), "{}", n[0].0);
    assert_eq!(n[0].1["sluice"]["value"], 30.0);
    assert_no_personal_data(&slack);
}

#[test]
fn a_withheld_rate_jump_fires_when_consent_is_withdrawn_for_many_rows() {
    let mut env = Env::new(&warehouse());
    let slack = Receiver::start();
    let ws = workspace(&env, &slack, "  - {id: jump, on: withheld_rate_jump, threshold: 30}\n");
    env.sync(&ws, "users");
    env.sync(&ws, "users");
    assert!(notes(&slack).is_empty(), "0% -> 0% is no jump");
    env.sql("update users set ads = 0 where id <= 6");
    let r = env.sync(&ws, "users");
    assert_eq!(mapping(&r, "crm").withheld_by_consent, 6);
    let n = notes(&slack);
    assert_eq!(n.len(), 1, "{n:#?}");
    assert!(
        n[0].0.contains("FIRING Sluice alert `jump`: withheld-by-consent rate 60% (was 0%; jump threshold 30 points)"),
        "{}",
        n[0].0
    );
    assert_eq!(n[0].1["sluice"]["counts"]["withheld_by_category"]["C0004"], 6);
    // the next run withholds as many: no new jump, so it resolves
    env.sync(&ws, "users");
    let n = notes(&slack);
    assert_eq!(n.len(), 2);
    assert!(n[1].0.contains("RESOLVED Sluice alert `jump`"), "{}", n[1].0);
    assert_no_personal_data(&slack);
}

#[test]
fn a_notification_the_webhook_refuses_is_kept_and_sent_later() {
    let mut env = Env::new(&warehouse());
    let slack = Receiver::start();
    let ws = workspace(&env, &slack, "  - {id: failed, on: failed_sync}\n");
    slack.answer_path(SLACK_PATH, Reply::Status(503));
    env.rx.answer_path("/crm", Reply::Status(500));
    env.sync(&ws, "users");
    assert_eq!(slack.requests_to(SLACK_PATH).len(), 3, "retried by the transport");
    assert_eq!(env.store.pending_notifications().unwrap(), 1);
    let h = env.store.alert_history(1).unwrap();
    let err = h[0].last_error.clone().unwrap();
    assert!(err.contains("503") && !err.contains("XXXXsecret"), "{err}");
    // not due yet: the next sync does not hammer the webhook
    env.sync(&ws, "users");
    assert_eq!(slack.requests_to(SLACK_PATH).len(), 3);
    slack.clear_path(SLACK_PATH);
    let later = chrono::Utc::now().timestamp_millis() + 2 * 3_600_000;
    let sent = sluice_engine::alerts::send_due(&mut env.store, &ws.file, later);
    assert_eq!((sent.sent, sent.failed), (1, 0));
    assert_eq!(env.store.pending_notifications().unwrap(), 0);
    let n = notes(&slack);
    assert_eq!(n.len(), 1);
    assert!(n[0].0.contains("FIRING Sluice alert `failed`"));
    // a receiver that is not there at all: kept too, nothing fails
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let ws2 = env.workspace(&format!(
        "workspace: {{alert_webhook: '{gone}/hook'}}
destinations:
{}models: [{{id: users, source: dwh, sql: select id from users, unique_id: id, mappings: [{{destination: crm}}]}}]
alerts: [{{id: other, on: failed_sync}}]",
        hook("crm")
    ));
    env.sync(&ws2, "users");
    assert_eq!(env.store.pending_notifications().unwrap(), 1);
}

#[test]
fn alert_webhooks_are_sealed_at_rest_and_never_shown() {
    let env = Env::new(&warehouse());
    let slack = Receiver::start();
    let ws = workspace(&env, &slack, "  - {id: f, on: failed_sync, webhook_url: 'https://hooks.example/own-secret'}\n");
    let stored = ws.to_stored("now".into(), &env.store).unwrap();
    let text = stored.config.to_string();
    assert!(!text.contains("XXXXsecret") && !text.contains("own-secret"), "sealed: {text}");
    env.store.save_workspace(&stored).unwrap();
    let back = Workspace::load(&env.store).unwrap();
    assert_eq!(back.file.alerts[0].webhook_url.as_ref().unwrap().expose(), "https://hooks.example/own-secret");
    assert!(back.file.workspace.alert_webhook.as_ref().unwrap().expose().ends_with(SLACK_PATH));
    let shown = serde_json::to_string(&back.file).unwrap();
    assert!(!shown.contains("own-secret") && !shown.contains("XXXXsecret"), "{shown}");
    let (yaml, vars) = back.export(false);
    assert!(!yaml.contains("own-secret") && !yaml.contains("XXXXsecret"), "{yaml}");
    assert!(vars.iter().any(|(_, v)| v == "https://hooks.example/own-secret"), "exported as a placeholder: {vars:?}");
}
