//! Segment's official Python library (segment-analytics-python, from PyPI) pointed at
//! `sluice serve`: what its calls become at the destinations, consent routing included.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

const SCRIPT: &str = r#"
import sys
from segment import analytics
errors = []
analytics.write_key = 'wk_web'
analytics.host = sys.argv[1]
analytics.gzip = True
analytics.on_error = lambda e, batch: errors.append(repr(e))
refused = {'consent': {'categoryPreferences': {'ad': False, 'analytics': True}}}
granted = {'consent': {'categoryPreferences': {'ad': True, 'analytics': True}}}
analytics.identify('user-1', {'email': 'u1@example.com', 'plan': 'pro'}, context=granted)
analytics.track('user-1', 'Order Completed', {'revenue': 42.5}, context=granted)
analytics.track('user-2', 'Order Completed', {'revenue': 7}, context=refused)
analytics.page('user-2', 'Docs', 'Pricing', {'path': '/pricing'}, context=refused)
analytics.group('user-1', 'acme', {'name': 'Acme'}, context=granted)
analytics.alias('user-1', 'user-1b')
analytics.flush()
analytics.shutdown()
if errors:
    print('client errors: ' + '; '.join(errors))
    sys.exit(1)
"#;

#[test]
fn segment_python_library_events_are_routed_by_consent() {
    let s = start(&format!(
        "destinations:\n{}{}consent_categories: [{{id: ad, name: Advertising, destinations: [ads]}}]\n",
        hook("ads", "Ads"),
        hook("warehouse", "Warehouse")
    ));
    let out = Command::new("python3").args(["-c", SCRIPT, &s.url]).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "the official client failed (is segment-analytics-python installed? scripts/test.sh installs it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all = s.delivered("/warehouse", 6);
    assert_eq!(all.len(), 6, "every call reaches the unmapped destination");
    s.settle();
    let ads: Vec<Value> = s.rx.items("/ads");
    let types: Vec<(&str, &str)> =
        ads.iter().map(|e| (e["type"].as_str().unwrap(), e["userId"].as_str().unwrap_or(""))).collect();
    assert!(ads.iter().all(|e| e["userId"] != "user-2"), "user-2 refused advertising: {types:?}");
    assert!(types.contains(&("identify", "user-1")) && types.contains(&("track", "user-1")), "{types:?}");
    let wh = s.rx.items("/warehouse");
    let track = wh.iter().find(|e| e["type"] == "track" && e["userId"] == "user-1").unwrap();
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["properties"]["revenue"], 42.5);
    assert_eq!(track["context"]["library"]["name"], "analytics-python");
    assert!(track["messageId"].as_str().is_some_and(|m| !m.is_empty()));
    let alias = wh.iter().find(|e| e["type"] == "alias").unwrap();
    assert_eq!((alias["previousId"].as_str(), alias["userId"].as_str()), (Some("user-1"), Some("user-1b")));
}
