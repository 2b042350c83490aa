//! Checks of the cloud warehouses' settings that need no I/O (BigQuery, Databricks), and the
//! one rule for the base URLs they send credentials to: `https://`, or plain `http://` only to
//! this machine (a local fake or proxy), never a credential in the URL itself.

use crate::source::{BigQuerySource, DatabricksSource};

/// What is wrong with a base URL Sluice sends a credential to, if anything.
pub fn check_base_url(url: &str) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("`{}` is not a URL ({e})", url.escape_debug())),
    };
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Some(format!("`{}` has no host", url.escape_debug())),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Some("must be https:// (http:// only to 127.0.0.1 or localhost)".into()),
        s => return Some(format!("must be an https:// URL, not {s}://")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not carry a user or password (credentials are separate settings)".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Some("must be a base URL without `?query` or `#fragment`".into());
    }
    None
}

/// The base URL of a Databricks workspace from its `host` setting: a bare host name gets
/// `https://`; a trailing `/` is dropped.
pub fn databricks_base(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_string()
    } else {
        format!("https://{host}")
    }
}

/// Problems of a BigQuery source's settings, as (field, message).
pub fn check_bigquery(s: &BigQuerySource) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    // project ids: 6-30 lowercase letters, digits, hyphens; older ones may carry a domain
    // (`example.com:my-project`)
    let project_ok = !s.project.is_empty()
        && s.project.len() <= 100
        && s.project.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c));
    if s.project.is_empty() {
        out.push(("project", "a source of kind bigquery needs `project` (the Google Cloud project id)".into()));
    } else if !project_ok {
        out.push((
            "project",
            format!(
                "`{}` is not a project id (lowercase letters, digits and `-`, e.g. my-project-123)",
                s.project.escape_debug()
            ),
        ));
    }
    if s.credentials_file.trim().is_empty() {
        out.push((
            "credentials_file",
            "a source of kind bigquery needs `credentials_file` (the service account's JSON key file)".into(),
        ));
    }
    if let Some(l) = &s.location {
        if l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            out.push(("location", format!("`{}` is not a location (e.g. US, EU, europe-west1)", l.escape_debug())));
        }
    }
    if let Some(why) = s.endpoint.as_deref().and_then(check_base_url) {
        out.push(("endpoint", why));
    }
    out
}

/// Problems of a Databricks source's settings, as (field, message).
pub fn check_databricks(s: &DatabricksSource) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if s.host.trim().is_empty() {
        out.push(("host", "a source of kind databricks needs `host` (e.g. dbc-1234.cloud.databricks.com)".into()));
    } else if let Some(why) = check_base_url(&databricks_base(&s.host)) {
        out.push(("host", why));
    }
    if s.token.is_empty() {
        out.push(("token", "a source of kind databricks needs `token` (an access token)".into()));
    }
    if s.warehouse_id.is_empty() || !s.warehouse_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        out.push((
            "warehouse_id",
            "needs the SQL warehouse's id (letters and digits, from its connection details)".into(),
        ));
    }
    for (field, v) in [("catalog", &s.catalog), ("schema", &s.schema)] {
        if v.as_deref().is_some_and(|v| v.trim().is_empty() || v.contains('`')) {
            out.push((field, "must be a non-empty name without backquotes".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_send_credentials_only_over_tls_or_to_this_machine() {
        assert_eq!(check_base_url("https://bigquery.googleapis.com"), None);
        assert_eq!(check_base_url("http://127.0.0.1:9000"), None);
        assert_eq!(check_base_url("http://localhost:9000/x"), None);
        assert!(check_base_url("http://bq.example").unwrap().contains("https://"));
        assert!(check_base_url("ftp://x.example").unwrap().contains("ftp"));
        assert!(check_base_url("https://u:p@x.example").unwrap().contains("password"));
        assert!(check_base_url("https://x.example/?a=1").unwrap().contains("query"));
        assert!(check_base_url("nope").unwrap().contains("not a URL"));
        assert_eq!(databricks_base("dbc-1.cloud.databricks.com/"), "https://dbc-1.cloud.databricks.com");
        assert_eq!(databricks_base("http://127.0.0.1:1"), "http://127.0.0.1:1");
    }
}
