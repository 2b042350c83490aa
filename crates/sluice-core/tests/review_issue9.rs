//! Attacks of the independent review of issue 9 on the hand-written source deserializer.

use sluice_core::{SourceConfig, WorkspaceFile};

/// Finding 5: `SourceConfig`'s deserializer reads each source into a `serde_json::Map` first.
/// (a) A key written twice is silently last-wins — even `kind` and `id` — where every other
/// entry of the file (a destination, a model) is refused with `duplicate field`: a reviewer
/// reading the first `kind: sqlite` approves what runs as `kind: postgres`. (b) YAML's
/// non-finite floats (`.nan`, `.inf`) become JSON `null`, i.e. "unset", so
/// `tls: .nan` silently reads as the default `prefer` (TLS without certificate check) and
/// `statement_timeout_secs: .inf` as the default timeout, instead of a type error naming the
/// field.
#[test]
fn review9_sources_refuse_duplicate_and_non_finite_settings() {
    for (y, names) in [
        ("sources: [{id: a, kind: sqlite, kind: postgres, url: 'postgres://h/d'}]", "`kind`"),
        ("sources: [{id: a, id: b, kind: sqlite, path: a.db}]", "`id`"),
        ("sources: [{id: a, kind: sqlite, path: a.db, path: b.db}]", "`path`"),
        ("sources: [{id: a, kind: postgres, url: 'postgres://h/d', tls: .nan}]", "`tls`"),
        ("sources: [{id: a, kind: sqlite, path: a.db, statement_timeout_secs: .inf}]", "`statement_timeout_secs`"),
    ] {
        let e = WorkspaceFile::from_yaml(y).expect_err(y).to_string();
        assert!(e.contains(names), "{y}: {e}");
    }
    // the same holds for the API's JSON bodies
    let r: Result<SourceConfig, _> =
        serde_json::from_str(r#"{"id":"a","kind":"events","write_key":"k1","write_key":"k2"}"#);
    assert!(r.is_err(), "a duplicate write_key is accepted (last wins)");
    // destinations already refuse it
    assert!(
        WorkspaceFile::from_yaml("destinations: [{id: a, kind: file, kind: webhook, settings: {path: x}}]").is_err()
    );
}
