//! `sluice sync` against destinations that answer what no parser expects, through the binary.

mod common;
use common::{apply, sluice};
use serde_json::Value;
use sluice_testkit::{Receiver, Reply};

#[test]
fn finding_8_sync_survives_retry_after_nan_and_reports_the_failure() {
    let rx = Receiver::start();
    rx.answer_path("/hook", Reply::header(503, "Retry-After", "nan"));
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    rusqlite::Connection::open(dir.join("w.db"))
        .unwrap()
        .execute_batch("create table p(id integer, email text); insert into p values (1, 'a@x'), (2, 'b@x');")
        .unwrap();
    apply(
        dir,
        &format!(
            r#"sources: [{{id: dwh, kind: sqlite, path: ./w.db}}]
destinations:
  - {{id: hook, kind: webhook, settings: {{url: "{}/hook", max_attempts: 2, retry_initial_ms: 1, retry_max_ms: 2, timeout_secs: 2}}}}
models:
  - {{id: p, source: dwh, sql: select * from p, unique_id: id, mappings: [{{destination: hook}}]}}
"#,
            rx.url()
        ),
    );
    // the panic in Duration::from_secs_f64 made this exit 101
    let o = sluice(dir, &["sync", "p", "--json"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let m = &report["mappings"][0];
    assert_eq!((m["delivered"].as_u64(), m["failed_retryable"].as_u64()), (Some(0), Some(2)), "{m}");
    assert_eq!(m["status"], "failed", "{m}");
    let sample = m["failure_samples"]["retryable"][0]["error"].as_str().unwrap_or_default();
    assert!(sample.contains("503"), "{sample}");
    assert_eq!(rx.requests_to("/hook").len(), 2, "retried once (an unparseable Retry-After is ignored), then reported");
}
