use super::*;
use crate::catalog::TestCatalog;
use crate::config::WorkspaceFile;

const BASE: &str = "
sources: [{id: dwh, kind: sqlite, path: w.db}]
destinations: [{id: crm, kind: webhook, settings: {url: 'http://127.0.0.1:1/x'}}]
models: [{id: users, source: dwh, sql: select 1, unique_id: id, mappings: [{destination: crm}]}]
";

fn errors(extra: &str) -> Vec<(String, String)> {
    let f = WorkspaceFile::from_yaml(&format!("{BASE}{extra}")).unwrap();
    match crate::validate(f, &TestCatalog) {
        Ok(_) => vec![],
        Err(e) => e.0.into_iter().map(|e| (e.at, e.message)).collect(),
    }
}

#[test]
fn a_valid_alerts_section_passes_and_reads_back() {
    let extra = "workspace: {alert_webhook: 'https://hooks.slack.com/services/T1/B2/secret'}
alerts:
  - {id: failing, on: failed_sync, model: users}
  - {id: rate, on: delivery_rate_below, destination: crm, threshold: 90, webhook_url: 'http://127.0.0.1:9/hook'}
  - {id: jump, on: withheld_rate_jump, window_minutes: 30, send_recovery: false}
";
    assert_eq!(errors(extra), vec![]);
    let f = WorkspaceFile::from_yaml(&format!("{BASE}{extra}")).unwrap();
    assert_eq!(f.alerts[1].threshold_or_default(), 90.0);
    assert_eq!(f.alerts[0].threshold_or_default(), 0.0);
    assert_eq!(f.alerts[2].threshold_or_default(), 20.0);
    assert_eq!(f.alerts[2].window(), 30);
    assert_eq!(f.alerts[0].window(), 15);
    assert_eq!(f.alerts[1].webhook(&f).unwrap().expose(), "http://127.0.0.1:9/hook");
    assert_eq!(f.alerts[0].webhook(&f).unwrap().expose(), "https://hooks.slack.com/services/T1/B2/secret");
    // a webhook never shows: serialized, debugged
    let shown = serde_json::to_string(&f).unwrap();
    assert!(!shown.contains("secret") && !shown.contains("127.0.0.1:9"), "{shown}");
    assert!(!format!("{f:?}").contains("/B2/secret"));
    assert!(f.alerts[0].covers_mapping("users", "crm") && !f.alerts[0].covers_stream("crm"));
    assert!(f.alerts[2].covers_stream("crm") && f.alerts[1].covers_stream("crm") && !f.alerts[1].covers_stream("x"));
}

#[test]
fn bad_alerts_name_the_field_at_fault() {
    let e = errors(
        "workspace: {alert_webhook: 'ftp://hooks.example/secret-value'}
alerts:
  - {id: a, on: failed_sync, threshold: 3}
  - {id: a, on: delivery_rate_below, threshold: 101}
  - {id: b, on: withheld_rate_jump, threshold: .nan, model: nope}
  - {id: c, on: delivery_rate_below, destination: ghost, window_minutes: 0}
  - {id: d, on: failed_sync, model: users, destination: other, webhook_url: 'not a url secret-value'}
  - {id: 'bad id', on: failed_sync}
",
    );
    let at: Vec<&str> = e.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        at,
        vec![
            "workspace.alert_webhook",
            "alerts[0] (a).threshold",
            "alerts[1] (a).id",
            "alerts[1] (a).threshold",
            "alerts[2] (b).model",
            "alerts[2] (b).threshold",
            "alerts[3] (c).destination",
            "alerts[3] (c).window_minutes",
            "alerts[4] (d).destination",
            "alerts[4] (d).destination",
            "alerts[4] (d).webhook_url",
            "alerts[5] (bad id).id",
        ],
        "{e:#?}"
    );
    assert!(e.iter().all(|(_, m)| !m.contains("secret-value")), "a webhook URL is never repeated: {e:?}");
    let unknown = WorkspaceFile::from_yaml("alerts: [{id: a, on: failed_sync, channel: x}]").unwrap_err();
    assert!(unknown.to_string().contains("channel"), "{unknown}");
    let bad_on = WorkspaceFile::from_yaml("alerts: [{id: a, on: sometimes}]").unwrap_err();
    assert!(bad_on.to_string().contains("failed_sync"), "{bad_on}");
}

fn alert(on: AlertOn, threshold: Option<f64>) -> AlertConfig {
    AlertConfig {
        id: "a".into(),
        on,
        model: None,
        destination: None,
        threshold,
        window_minutes: None,
        webhook_url: None,
        send_recovery: true,
        enabled: true,
    }
}

#[test]
fn conditions_hold_as_documented() {
    let s = |total, withheld, delivered, failed| Sample { run_failed: false, total, withheld, delivered, failed };
    let failed = alert(AlertOn::FailedSync, None);
    assert_eq!(check(&failed, &s(10, 0, 0, 5), None).holds, Some(true));
    assert_eq!(check(&failed, &s(10, 0, 1, 5), None).holds, Some(false));
    assert_eq!(check(&failed, &s(10, 10, 0, 0), None).holds, None, "nothing sent: unknown");
    assert_eq!(check(&failed, &Sample { run_failed: true, ..Default::default() }, None).holds, Some(true));

    let rate = alert(AlertOn::DeliveryRateBelow, Some(90.0));
    let c = check(&rate, &s(10, 0, 8, 2), None);
    assert_eq!((c.holds, c.value), (Some(true), Some(80.0)));
    assert_eq!(check(&rate, &s(10, 0, 9, 1), None).holds, Some(false), "90% is not under 90%");
    assert_eq!(check(&rate, &s(10, 0, 0, 0), None).holds, None);

    let jump = alert(AlertOn::WithheldRateJump, Some(25.0));
    assert_eq!(check(&jump, &s(100, 60, 40, 0), None).holds, None, "no previous run: no jump");
    let c = check(&jump, &s(100, 60, 40, 0), Some(30.0));
    assert_eq!((c.holds, c.value), (Some(true), Some(60.0)));
    assert_eq!(check(&jump, &s(100, 55, 45, 0), Some(30.0)).holds, Some(false));
    assert_eq!(check(&jump, &s(100, 10, 90, 0), Some(60.0)).holds, Some(false), "a fall is no jump");
    // hostile counts never panic or exceed 100%
    assert_eq!(s(1, u64::MAX, 0, 0).withheld_rate(), Some(100.0));
    assert!(s(0, 0, u64::MAX, u64::MAX).delivery_rate().is_some());
}

#[test]
fn an_alert_fires_once_and_resolves_once() {
    let yes = Check { holds: Some(true), value: None };
    let no = Check { holds: Some(false), value: None };
    let unknown = Check { holds: None, value: None };
    assert_eq!(transition(false, &yes), Some(Transition::Fired));
    assert_eq!(transition(true, &yes), None, "no repeat while it keeps firing");
    assert_eq!(transition(true, &unknown), None);
    assert_eq!(transition(true, &no), Some(Transition::Resolved));
    assert_eq!(transition(false, &no), None);
}
