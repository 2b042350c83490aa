//! The one place that finds every credential of a workspace: by type ([`Secret`]) in sources,
//! by what each destination kind declares ([`crate::KindInfo`]: `secret_settings`,
//! `url_settings`) in destinations. Sealing at rest, opening, `sluice export`'s placeholders,
//! redaction for the API and the audit log, and the API's `"<set>"` round-trip all walk
//! credentials through [`for_each_in_source`] / [`for_each_in_destination`], so a new
//! credential cannot be missed by one of them.

use crate::catalog::Catalog;
use crate::config::{DestinationConfig, WorkspaceFile};
use crate::secret::{exposing, Secret, SET};
use crate::source::{SourceConfig, SourceSettings};
use serde_json::Value;

/// What kind of credential a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A credential as a whole (a write key, a header, a source URL): `<set>` when shown.
    Whole,
    /// A destination URL: it says where data goes, and holds a credential only in its user
    /// information, path or query (sealed whole, shown through [`crate::redact_url`]).
    Url,
}

/// A credential found in a source or destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// What it is.
    pub kind: CredentialKind,
    /// Where, as the API names fields: `url`, `write_key`, `settings.write_key`,
    /// `settings.headers.Authorization`.
    pub field: String,
}

/// What a visitor does with a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep it (with the value as the visitor left it).
    Yes,
    /// Remove it: a destination setting (or map entry) is deleted; a source's credential,
    /// which its kind requires, is emptied (validation then names it).
    No,
}

/// A visitor of credentials: may read or change the value in place.
pub type Visitor<'a> = dyn FnMut(&Credential, &mut String) -> Keep + 'a;

fn visit_secret(field: &str, s: &mut Secret, f: &mut Visitor<'_>) {
    let c = Credential { kind: CredentialKind::Whole, field: field.to_string() };
    if f(&c, s.expose_mut()) == Keep::No {
        *s = Secret::default();
    }
}

/// Visits every credential of a source: each of its kind's [`Secret`] fields. The patterns
/// name every field, so adding a field to a kind makes this function stop compiling until the
/// field is classified here.
pub fn for_each_in_source(s: &mut SourceConfig, f: &mut Visitor<'_>) {
    match &mut s.settings {
        SourceSettings::Sqlite(crate::SqliteSource { path: _, statement_timeout_secs: _ }) => {}
        SourceSettings::Postgres(crate::PostgresSource {
            url,
            tls: _,
            ca_file: _,
            statement_timeout_secs: _,
            allow_privileged_role: _,
            diff: _,
            sluice_schema: _,
        })
        | SourceSettings::Redshift(crate::PostgresSource {
            url,
            tls: _,
            ca_file: _,
            statement_timeout_secs: _,
            allow_privileged_role: _,
            diff: _,
            sluice_schema: _,
        }) => visit_secret("url", url, f),
        SourceSettings::Snowflake(crate::SnowflakeSource {
            account: _,
            user: _,
            password,
            private_key_file: _,
            warehouse: _,
            database: _,
            schema: _,
            role: _,
            endpoint: _,
            statement_timeout_secs: _,
            diff: _,
            sluice_schema: _,
        }) => {
            if let Some(p) = password {
                visit_secret("password", p, f)
            }
        }
        SourceSettings::Events(crate::EventsSource { write_key, .. }) => visit_secret("write_key", write_key, f),
        // the key stays in its file: only its path is in the workspace
        SourceSettings::Bigquery(crate::BigQuerySource {
            project: _,
            credentials_file: _,
            location: _,
            endpoint: _,
            statement_timeout_secs: _,
            diff: _,
            sluice_schema: _,
        }) => {}
        SourceSettings::Databricks(crate::DatabricksSource {
            host: _,
            token,
            warehouse_id: _,
            catalog: _,
            schema: _,
            statement_timeout_secs: _,
            diff: _,
            sluice_schema: _,
        }) => visit_secret("token", token, f),
    }
}

/// Visits every credential of a destination: the settings its kind declares as secret (a
/// string, or each string value of a map such as `headers`) or as URL. A kind `catalog` does
/// not know has every string setting treated as a credential (nothing unknown is shown).
pub fn for_each_in_destination(d: &mut DestinationConfig, catalog: &dyn Catalog, f: &mut Visitor<'_>) {
    let info = catalog.kind(&d.kind);
    d.settings.retain(|name, v| {
        let kind = match info {
            Some(k) if k.is_secret(name) => CredentialKind::Whole,
            Some(k) if k.is_url(name) => CredentialKind::Url,
            Some(_) => return true,
            None => CredentialKind::Whole,
        };
        match v {
            Value::String(s) => f(&Credential { kind, field: format!("settings.{name}") }, s) == Keep::Yes,
            Value::Object(entries) => {
                entries.retain(|key, v| match v {
                    Value::String(s) => {
                        f(&Credential { kind, field: format!("settings.{name}.{key}") }, s) == Keep::Yes
                    }
                    _ => true,
                });
                true
            }
            _ => true,
        }
    });
}

/// Visits every credential of a workspace, sources first.
pub fn for_each_in_workspace(file: &mut WorkspaceFile, catalog: &dyn Catalog, f: &mut Visitor<'_>) {
    for s in &mut file.sources {
        for_each_in_source(s, f);
    }
    for d in &mut file.destinations {
        for_each_in_destination(d, catalog, f);
    }
    for_each_in_alerting(file, f);
}

/// Visits the alert webhooks: `workspace.alert_webhook` and each alert's `webhook_url`. A
/// Slack incoming-webhook URL is a secret as a whole (its path is the key), so they are
/// [`CredentialKind::Whole`]: `<set>` wherever shown.
pub fn for_each_in_alerting(file: &mut WorkspaceFile, f: &mut Visitor<'_>) {
    if let Some(w) = &mut file.workspace.alert_webhook {
        visit_secret("workspace.alert_webhook", w, f);
    }
    for a in &mut file.alerts {
        if let Some(w) = &mut a.webhook_url {
            visit_secret(&format!("alerts ({}).webhook_url", a.id), w, f);
        }
    }
}

/// The credentials of a source or destination by field, with their values (for comparing a
/// change with what is stored).
pub fn values<T: Clone>(
    entity: &T,
    walk: impl FnOnce(&mut T, &mut Visitor<'_>),
) -> std::collections::BTreeMap<String, String> {
    let mut copy = entity.clone();
    let mut out = std::collections::BTreeMap::new();
    walk(&mut copy, &mut |c, v| {
        out.insert(c.field.clone(), v.clone());
        Keep::Yes
    });
    out
}

/// What a credential reads as when shown: `<set>`, or a URL with its credentials redacted.
fn redact_one(c: &Credential, v: &mut String) -> Keep {
    *v = match c.kind {
        CredentialKind::Whole => SET.to_string(),
        CredentialKind::Url => crate::redact_url(v),
    };
    Keep::Yes
}

/// A source as the API and the audit log show it: every credential `<set>`.
pub fn redacted_source(s: &SourceConfig) -> Value {
    let mut s = s.clone();
    for_each_in_source(&mut s, &mut redact_one);
    exposing(|| serde_json::to_value(&s)).expect("a source serializes")
}

/// A destination as the API and the audit log show it: secret settings `<set>`, URLs with
/// their credentials redacted.
pub fn redacted_destination(d: &DestinationConfig, catalog: &dyn Catalog) -> Value {
    let mut d = d.clone();
    for_each_in_destination(&mut d, catalog, &mut redact_one);
    serde_json::to_value(&d).expect("a destination serializes")
}

/// An entity (`kind` `source`, `destination`, or any other, returned as is) as JSON, redacted
/// like [`redacted_source`] / [`redacted_destination`]. One that does not read as its kind (an
/// old audit entry) has every string but its `id`, `kind` and `name` replaced by `<set>`.
pub fn redact_entity(kind: &str, v: Value, catalog: &dyn Catalog) -> Value {
    let read = match kind {
        "source" => serde_json::from_value::<SourceConfig>(v.clone()).map(|s| redacted_source(&s)),
        "destination" => {
            serde_json::from_value::<DestinationConfig>(v.clone()).map(|d| redacted_destination(&d, catalog))
        }
        // their webhooks are `Secret`s: serialized without exposing, they read `<set>`
        "alert" => serde_json::from_value::<crate::alerts::AlertConfig>(v.clone())
            .map(|a| serde_json::to_value(&a).expect("an alert serializes")),
        "workspace" => serde_json::from_value::<crate::config::WorkspaceSettings>(v.clone())
            .map(|w| serde_json::to_value(&w).expect("settings serialize")),
        _ => return v,
    };
    read.unwrap_or_else(|_| redact_all_strings(v, true))
}

fn redact_all_strings(v: Value, top: bool) -> Value {
    match v {
        Value::String(_) => Value::String(SET.into()),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| redact_all_strings(x, false)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| {
                    let keep = top && matches!(k.as_str(), "id" | "kind" | "name");
                    let x = if keep { x } else { redact_all_strings(x, false) };
                    (k, x)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TestCatalog;

    #[test]
    fn finds_source_secrets_by_type_and_destination_secrets_by_declaration() {
        let mut f = WorkspaceFile::from_yaml(
            "sources: [{id: dwh, kind: sqlite, path: w.db}, {id: pg, kind: postgres, url: 'postgres://u:pw@h/d'},
  {id: web, kind: events, write_key: wk}]
destinations:
  - {id: h, kind: webhook, settings: {url: 'https://h.example/x?k=1', batch_size: 5, headers: {Authorization: B, X: y}}}
  - {id: c, kind: connections, settings: {url: 'https://c.example', write_key: k2}}
  - {id: f, kind: file, settings: {path: out.jsonl}}
",
        )
        .unwrap();
        let mut seen = Vec::new();
        for_each_in_workspace(&mut f, &TestCatalog, &mut |c, v| {
            seen.push((c.field.clone(), c.kind, v.clone()));
            Keep::Yes
        });
        let w = CredentialKind::Whole;
        let u = CredentialKind::Url;
        let want: Vec<(String, CredentialKind, String)> = [
            ("url", w, "postgres://u:pw@h/d"),
            ("write_key", w, "wk"),
            ("settings.headers.Authorization", w, "B"),
            ("settings.headers.X", w, "y"),
            ("settings.url", u, "https://h.example/x?k=1"),
            ("settings.url", u, "https://c.example"),
            ("settings.write_key", w, "k2"),
        ]
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b, c.to_string()))
        .collect();
        assert_eq!(seen, want);
        let shown = redacted_destination(&f.destinations[0], &TestCatalog);
        assert_eq!(shown["settings"]["url"], "https://h.example/<set>?k=<set>");
        assert_eq!(shown["settings"]["headers"]["X"], "<set>");
        assert_eq!(shown["settings"]["batch_size"], 5);
        assert_eq!(redacted_source(&f.sources[1])["url"], "<set>");
        assert_eq!(redacted_source(&f.sources[0])["path"], "w.db");
    }

    #[test]
    fn removing_drops_a_setting_or_empties_a_source_secret() {
        let mut f = WorkspaceFile::from_yaml(
            "sources: [{id: web, kind: events, write_key: wk}]
destinations: [{id: h, kind: webhook, settings: {url: 'https://h.example', headers: {A: a, B: b}}}]",
        )
        .unwrap();
        for_each_in_workspace(&mut f, &TestCatalog, &mut |c, _| {
            if c.field.ends_with(".A") || c.field == "write_key" {
                Keep::No
            } else {
                Keep::Yes
            }
        });
        assert!(f.sources[0].events().unwrap().write_key.is_empty());
        assert_eq!(f.destinations[0].settings["headers"], serde_json::json!({"B": "b"}));
    }

    #[test]
    fn an_entity_that_does_not_read_is_redacted_whole() {
        let v = serde_json::json!({"id": "s", "kind": "oracle", "url": "u:pw", "n": 3, "x": {"y": "z"}});
        let r = redact_entity("source", v, &TestCatalog);
        assert_eq!(r, serde_json::json!({"id": "s", "kind": "oracle", "url": "<set>", "n": 3, "x": {"y": "<set>"}}));
        let m = serde_json::json!({"id": "m", "sql": "select 1"});
        assert_eq!(redact_entity("model", m.clone(), &TestCatalog), m);
    }
}
