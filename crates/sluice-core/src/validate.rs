//! Validation of a workspace file without I/O. Every error names the entry at fault.

use crate::catalog::{Catalog, ConsentMode};
use crate::config::*;
use crate::source::{SourceKind, SourceSettings};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// One problem in the workspace file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    /// Where: a path such as `consent_categories[1] (C0004).name`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A new error at `at`.
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self { at: at.into(), message: message.into() }
    }
}

/// All problems found at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A workspace that passed validation, with the warnings it deserves.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The workspace as written (paths still unresolved).
    pub file: WorkspaceFile,
    /// Things that work but are probably not what the user wants (R4, R5).
    pub warnings: Vec<String>,
}

/// A category id: 1–34 characters, not starting with a digit, no whitespace, control
/// characters, commas, quotes or backslashes (the CMP's key, e.g. OneTrust `C0004`).
pub fn check_category_id(id: &str) -> Option<&'static str> {
    let n = id.chars().count();
    if n == 0 || n > 34 {
        return Some("must be 1-34 characters");
    }
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("must not start with a digit");
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain whitespace or control characters");
    }
    if id.chars().any(|c| matches!(c, ',' | '"' | '\'' | '`' | '\\')) {
        return Some("must not contain commas, quotes or backslashes");
    }
    None
}

/// The longest id of a source, destination or model.
pub const MAX_ID_LEN: usize = 64;

/// The id of a source, destination or model: 1–64 characters of `A-Z a-z 0-9 _ . -`, starting
/// with a letter or digit (`[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`), so it is safe in paths, URLs,
/// lists and file names.
pub fn check_id(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Some(format!("must be at most {MAX_ID_LEN} characters"));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some(format!("`{}` must start with a letter or digit", id.escape_debug()));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Some(format!(
            "`{}` contains `{}`: use only letters, digits, `_`, `.` and `-`",
            id.escape_debug(),
            c.escape_debug()
        ));
    }
    None
}

/// A schema name Sluice writes its snapshots into: 1–63 ASCII letters, digits or `_`, not
/// starting with a digit (an unquoted identifier in every warehouse).
fn is_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `diff` and `sluice_schema` of a warehouse source: `diff: warehouse` only on the kinds whose
/// warehouse computes the diff (docs/DIFF.md), and with a schema named plainly.
fn check_warehouse_diff(settings: &SourceSettings, at: &str, err: &mut dyn FnMut(String, String)) {
    let (diff, schema) = match settings {
        SourceSettings::Postgres(x) | SourceSettings::Redshift(x) => (x.diff, x.sluice_schema.as_deref()),
        SourceSettings::Snowflake(x) => (x.diff, x.sluice_schema.as_deref()),
        SourceSettings::Bigquery(x) => (x.diff, x.sluice_schema.as_deref()),
        SourceSettings::Databricks(x) => (x.diff, x.sluice_schema.as_deref()),
        SourceSettings::Sqlite(_) | SourceSettings::Events(_) => return,
    };
    if matches!(settings, SourceSettings::Redshift(_)) && diff == crate::DiffMode::Warehouse {
        err(
            format!("{at}.diff"),
            "`diff: warehouse` is not supported on redshift yet (its row hash needs PostgreSQL's \
             hash_record_extended); remove it to diff in Sluice"
                .into(),
        );
    }
    // Databricks names a schema `catalog.schema` or `schema`; the others a schema (BigQuery: a dataset)
    let parts = if matches!(settings, SourceSettings::Databricks(_)) { 2 } else { 1 };
    let plain = |s: &str| s.split('.').count() <= parts && s.split('.').all(is_schema_name);
    match (diff, schema) {
        (crate::DiffMode::Warehouse, None) => err(
            format!("{at}.sluice_schema"),
            "`diff: warehouse` needs `sluice_schema`: a schema Sluice's role owns, for its snapshots".into(),
        ),
        (_, Some(schema)) if !plain(schema) => err(
            format!("{at}.sluice_schema"),
            format!(
                "`{}` must be 1-63 letters, digits or `_`, not starting with a digit{}",
                schema.escape_debug(),
                if parts == 2 { " (or `catalog.schema` of two such names)" } else { "" }
            ),
        ),
        (crate::DiffMode::Local, Some(_)) => {
            err(format!("{at}.sluice_schema"), "only a source with `diff: warehouse` takes this setting".into())
        }
        _ => {}
    }
}

/// The longest `statement_timeout_secs` (a day).
pub const MAX_STATEMENT_TIMEOUT_SECS: u64 = 86_400;

/// A web origin as browsers send it in `Origin`: `http(s)://host[:port]`, lowercase, without
/// the scheme's default port, path or trailing slash. Returns what is wrong.
fn check_origin(origin: &str) -> Option<&'static str> {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Some("is not an origin: write scheme://host[:port], e.g. https://shop.example");
    };
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return Some("must start with http:// or https://"),
    };
    if authority.contains(['/', '?', '#', '@']) {
        return Some("must be scheme://host[:port] only: no path, trailing slash, query or user");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !authority.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let bracketed = host.len() > 2
        && host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1].chars().all(|c| c.is_ascii_digit() || matches!(c, 'a'..='f' | ':' | '.'));
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    if host.is_empty() || !(bracketed || host.chars().all(plain)) {
        return Some("needs a host in lowercase letters, digits, `.` and `-` (as browsers send it)");
    }
    match port {
        Some(p) if p.parse::<u16>().map_or(true, |n| n == 0) || p.starts_with('0') => {
            Some("has a port that is not a number from 1 to 65535")
        }
        Some(p) if default_port[1..] == *p => Some("names the scheme's default port, which browsers leave out"),
        _ => None,
    }
}

pub(crate) fn label(kind: &str, i: usize, id: &str) -> String {
    if id.is_empty() {
        format!("{kind}[{i}]")
    } else {
        let shown: String = id.chars().take(MAX_ID_LEN).collect();
        format!("{kind}[{i}] ({})", shown.escape_debug())
    }
}

/// The settings of a Snowflake source: an account, a user, exactly one way to authenticate, an
/// `http(s)://` endpoint.
fn check_snowflake(x: &crate::SnowflakeSource, at: &str, err: &mut impl FnMut(String, String)) {
    let ident = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !ident(&x.account) {
        err(format!("{at}.account"), "must be the account identifier (letters, digits, `-`, `_`, `.`)".into());
    }
    if x.user.trim().is_empty() {
        err(format!("{at}.user"), "a source of kind snowflake needs `user`".into());
    }
    match (x.password.as_ref().filter(|p| !p.is_empty()), x.private_key_file.as_deref()) {
        (Some(_), Some(_)) => err(
            format!("{at}.private_key_file"),
            "give either `password` or `private_key_file` (key-pair authentication), not both".into(),
        ),
        (None, None) => err(
            format!("{at}.password"),
            "a source of kind snowflake needs `password` or `private_key_file` (key-pair authentication)".into(),
        ),
        (None, Some("")) => err(format!("{at}.private_key_file"), "must name a PEM file".into()),
        _ => {}
    }
    if let Some(e) = &x.endpoint {
        if !(e.starts_with("https://") || e.starts_with("http://")) || e.len() < 9 {
            err(format!("{at}.endpoint"), "must be an http:// or https:// URL".into());
        }
    }
}

/// Checks every rule that needs no I/O. `catalog` knows the destination kinds and checks each
/// one's settings (the destinations crate's registry, so this crate stays free of them).
pub fn validate(file: WorkspaceFile, catalog: &dyn Catalog) -> Result<Validated, ConfigErrors> {
    let mut errs = Vec::new();
    let mut warnings = Vec::new();
    let mut err = |at: String, m: String| errs.push(ConfigError::new(at, m));

    let f = file.workspace.max_delete_fraction;
    if !(0.0..=1.0).contains(&f) {
        err("workspace.max_delete_fraction".into(), format!("must be between 0 and 1 (it is {f})"));
    }
    let mut source_kinds = BTreeMap::new();
    for (i, s) in file.sources.iter().enumerate() {
        let at = label("sources", i, &s.id);
        if let Some(why) = check_id(&s.id) {
            err(format!("{at}.id"), format!("source id {why}"));
        } else if source_kinds.insert(s.id.clone(), s.kind()).is_some() {
            err(format!("{at}.id"), format!("duplicate source id `{}`", s.id));
        }
        let timeout = match &s.settings {
            SourceSettings::Sqlite(x) => x.statement_timeout_secs,
            SourceSettings::Postgres(x) | SourceSettings::Redshift(x) => {
                let kind = s.kind().as_str();
                let url = x.url.expose();
                if url.is_empty() {
                    err(format!("{at}.url"), format!("a source of kind {kind} needs `url`"));
                } else if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    err(format!("{at}.url"), "must be a postgres:// or postgresql:// URL".into());
                }
                x.statement_timeout_secs
            }
            SourceSettings::Snowflake(x) => {
                check_snowflake(x, &at, &mut err);
                x.statement_timeout_secs
            }
            SourceSettings::Events(x) => {
                if x.write_key.is_empty() {
                    err(format!("{at}.write_key"), "a source of kind events needs `write_key`".into());
                }
                for (j, o) in x.allowed_origins.iter().flatten().enumerate() {
                    if let Some(why) = check_origin(o) {
                        err(format!("{at}.allowed_origins[{j}]"), format!("`{o}` {why}"));
                    }
                }
                for (j, c) in x.gpc_refuses.iter().flatten().enumerate() {
                    if !file.consent_categories.iter().any(|k| &k.id == c) {
                        err(format!("{at}.gpc_refuses[{j}]"), format!("`{c}` is not a consent category id"));
                    }
                }
                None
            }
            SourceSettings::Bigquery(x) => {
                for (field, m) in crate::cloud::check_bigquery(x) {
                    err(format!("{at}.{field}"), m);
                }
                x.statement_timeout_secs
            }
            SourceSettings::Databricks(x) => {
                for (field, m) in crate::cloud::check_databricks(x) {
                    err(format!("{at}.{field}"), m);
                }
                x.statement_timeout_secs
            }
        };
        check_warehouse_diff(&s.settings, &at, &mut err);
        if timeout.is_some_and(|t| t > MAX_STATEMENT_TIMEOUT_SECS) {
            err(
                format!("{at}.statement_timeout_secs"),
                format!("must be at most {MAX_STATEMENT_TIMEOUT_SECS} (a day)"),
            );
        }
    }

    let mut dest_ids = HashSet::new();
    let mut dest_names = HashSet::new();
    for (i, d) in file.destinations.iter().enumerate() {
        let at = label("destinations", i, &d.id);
        if let Some(why) = check_id(&d.id) {
            err(format!("{at}.id"), format!("destination id {why}"));
        } else if !dest_ids.insert(d.id.as_str()) {
            err(format!("{at}.id"), format!("duplicate destination id `{}`", d.id));
        }
        if !dest_names.insert(d.display_name()) {
            err(format!("{at}.name"), format!("duplicate destination name `{}`", d.display_name()));
        }
        if catalog.kind(&d.kind).is_none() {
            err(
                format!("{at}.kind"),
                format!("unknown destination kind `{}` (known: {})", d.kind.escape_debug(), catalog.kinds().join(", ")),
            );
        } else if let Err(e) = catalog.check_settings(d) {
            let field = if e.at.is_empty() { format!("{at}.settings") } else { format!("{at}.settings.{}", e.at) };
            err(field, e.message);
        }
        if let Some(k) = catalog.kind(&d.kind).filter(|_| d.on_withdrawal == OnWithdrawal::Delete) {
            let why = if !k.events {
                Some("receives no streamed events")
            } else if !k.changes.contains(&Change::Deleted) {
                Some("has no delete call")
            } else {
                None
            };
            if let Some(why) = why {
                err(
                    format!("{at}.on_withdrawal"),
                    format!("`delete` is not possible: a {} destination {why} (R13)", k.name),
                );
            }
        }
    }
    // None: no such destination; Some(None): a destination of an unknown kind
    let dest_kind = |id: &str| file.destinations.iter().find(|d| d.id == id).map(|d| catalog.kind(&d.kind));

    let mut cat_ids = HashSet::new();
    let mut cat_names = HashSet::new();
    for (i, c) in file.consent_categories.iter().enumerate() {
        let at = label("consent_categories", i, &c.id);
        if let Some(why) = check_category_id(&c.id) {
            err(format!("{at}.id"), format!("category id `{}` {why}", c.id));
        } else if !cat_ids.insert(c.id.as_str()) {
            err(format!("{at}.id"), format!("duplicate category id `{}`", c.id));
        }
        let n = c.name.chars().count();
        if n == 0 || n > 20 {
            err(format!("{at}.name"), format!("category name `{}` must be 1-20 characters (it has {n})", c.name));
        } else if !cat_names.insert(c.name.as_str()) {
            err(format!("{at}.name"), format!("duplicate category name `{}`", c.name));
        }
        let mut seen = HashSet::new();
        for d in &c.destinations {
            match dest_kind(d) {
                None => err(format!("{at}.destinations"), format!("unknown destination `{d}`")),
                Some(Some(k)) if k.consent == ConsentMode::Stamps => warnings.push(format!(
                    "category {} ({}) is mapped to {} destination `{d}`: Reverse ETL does not \
                     filter by it (consent is stamped on the events and enforced downstream, R5); streamed \
                     events are still routed to `{d}` only with this consent",
                    c.id, c.name, k.name
                )),
                Some(_) => {}
            }
            if !seen.insert(d) {
                err(format!("{at}.destinations"), format!("destination `{d}` listed twice"));
            }
        }
    }

    let mut model_ids = HashSet::new();
    for (i, m) in file.models.iter().enumerate() {
        let at = label("models", i, &m.id);
        if let Some(why) = check_id(&m.id) {
            err(format!("{at}.id"), format!("model id {why}"));
        } else if !model_ids.insert(m.id.as_str()) {
            err(format!("{at}.id"), format!("duplicate model id `{}`", m.id));
        }
        match source_kinds.get(&m.source) {
            None => err(format!("{at}.source"), format!("unknown source `{}`", m.source)),
            Some(SourceKind::Events) => {
                err(format!("{at}.source"), format!("source `{}` is an event source, not a warehouse", m.source))
            }
            Some(_) => {}
        }
        if m.sql.trim().is_empty() {
            err(format!("{at}.sql"), "must not be empty".into());
        }
        if let Some(s) = &m.schedule {
            if let Err(e) = crate::schedule::Schedule::parse(s) {
                err(format!("{at}.schedule"), e);
            }
        }
        if m.unique_id.trim().is_empty() {
            err(format!("{at}.unique_id"), "must name the unique identifier column".into());
        }
        for (cat, col) in &m.consent {
            if !cat_ids.contains(cat.as_str()) {
                err(
                    format!("{at}.consent.{cat}"),
                    format!("unknown consent category id `{cat}` (ids are case-sensitive)"),
                );
            }
            if col.trim().is_empty() {
                err(format!("{at}.consent.{cat}"), "must name a column".into());
            }
        }
        if m.consent.is_empty() && !file.consent_categories.is_empty() {
            let consequence = match file.workspace.unmapped_models {
                UnmappedModels::Allow => "consent is NOT enforced: its records flow to every destination",
                UnmappedModels::Block => "it is blocked from every destination mapped to a category",
            };
            warnings.push(format!("model `{}` maps no consent column (R4): {consequence}", m.id));
        }
        let mut seen = HashSet::new();
        for (j, mp) in m.mappings.iter().enumerate() {
            let mat = format!("{at}.mappings[{j}]");
            if dest_kind(&mp.destination).is_none() {
                err(format!("{mat}.destination"), format!("unknown destination `{}`", mp.destination));
            }
            if !seen.insert(mp.destination.as_str()) {
                err(format!("{mat}.destination"), format!("model already has a mapping to `{}`", mp.destination));
            }
            if let Some(Some(k)) = dest_kind(&mp.destination) {
                if mp.on_withdrawal == OnWithdrawal::Delete && !k.changes.contains(&Change::Deleted) {
                    err(
                        format!("{mat}.on_withdrawal"),
                        format!("`delete` is not possible: a {} destination has no delete call (R13)", k.name),
                    );
                }
                for change in mp.on.iter().filter(|c| !k.changes.contains(c)) {
                    warnings.push(format!(
                        "model `{}` -> `{}`: {} records are not sent to a {} destination (it has no call for them)",
                        m.id,
                        mp.destination,
                        change.as_str(),
                        k.name
                    ));
                }
            }
            if mp.on.is_empty() {
                err(format!("{mat}.on"), "must list at least one of added, updated, deleted".into());
            }
        }
    }

    crate::alerts::validate_alerts(&file, &mut err);

    if errs.is_empty() {
        Ok(Validated { file, warnings })
    } else {
        Err(ConfigErrors(errs))
    }
}

#[cfg(test)]
mod origin_tests {
    use super::check_origin;

    #[test]
    fn allowed_origins_take_origins_as_browsers_send_them() {
        for ok in ["https://shop.example", "http://127.0.0.1:8080", "https://a-b.example.com:8443", "http://[::1]:3000"]
        {
            assert_eq!(check_origin(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("shop.example", "scheme://host"),
            ("ftp://shop.example", "http:// or https://"),
            ("https://shop.example/", "no path"),
            ("https://shop.example/checkout", "no path"),
            ("https://user@shop.example", "no path"),
            ("https://Shop.Example", "lowercase"),
            ("https://", "host"),
            ("https://shop.example:0", "port"),
            ("https://shop.example:99999", "port"),
            ("https://shop.example:x", "port"),
            ("https://shop.example:443", "default port"),
            ("http://shop.example:80", "default port"),
            ("*", "scheme://host"),
        ] {
            let got = check_origin(bad).unwrap_or_else(|| panic!("{bad} was accepted"));
            assert!(got.contains(why), "{bad}: {got}");
        }
    }

    #[test]
    fn gpc_refuses_names_only_consent_categories() {
        let yaml = |refuses: &str| {
            format!(
                "sources: [{{id: web, kind: events, write_key: k, gpc_refuses: {refuses}}}]
consent_categories: [{{id: C0004, name: Advertising}}]"
            )
        };
        let check =
            |y: String| super::validate(crate::WorkspaceFile::from_yaml(&y).unwrap(), &crate::catalog::TestCatalog);
        let errs = check(yaml("[C0004, C0009]")).unwrap_err().0;
        let at: Vec<&str> = errs.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(at, ["sources[0] (web).gpc_refuses[1]"], "{errs:?}");
        assert!(errs[0].message.contains("`C0009`"), "{errs:?}");
        let v = check(yaml("[C0004]")).unwrap();
        assert_eq!(v.file.sources[0].events().unwrap().gpc_refuses.as_deref(), Some(&["C0004".to_string()][..]));
    }

    #[test]
    fn allowed_origins_errors_name_the_field() {
        let yaml = "sources: [{id: web, kind: events, write_key: k, allowed_origins: [\"https://ok.example\", \"https://shop.example/\"]}]";
        let file = crate::WorkspaceFile::from_yaml(yaml).unwrap();
        let errs = super::validate(file, &crate::catalog::TestCatalog).unwrap_err().0;
        let at: Vec<&str> = errs.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(at, ["sources[0] (web).allowed_origins[1]"], "{errs:?}");
        let other_kind = "sources: [{id: dwh, kind: sqlite, path: w.db, allowed_origins: []}]";
        let e = crate::WorkspaceFile::from_yaml(other_kind).unwrap_err().to_string();
        assert!(e.contains("unknown field `allowed_origins`"), "{e}");
        assert!(errs[0].message.contains("`https://shop.example/`"), "{errs:?}");
        let ok = "sources: [{id: web, kind: events, write_key: k, allowed_origins: [\"http://127.0.0.1:8080\"]}]";
        let v = super::validate(crate::WorkspaceFile::from_yaml(ok).unwrap(), &crate::catalog::TestCatalog).unwrap();
        assert_eq!(
            v.file.sources[0].events().unwrap().allowed_origins.as_deref(),
            Some(&["http://127.0.0.1:8080".to_string()][..])
        );
    }
}

#[cfg(test)]
mod warehouse_source_tests {
    fn errors(yaml: &str) -> Vec<(String, String)> {
        let file = crate::WorkspaceFile::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
        match super::validate(file, &crate::catalog::TestCatalog) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|e| (e.at, e.message)).collect(),
        }
    }

    #[test]
    fn snowflake_sources_need_an_account_a_user_and_one_credential() {
        assert!(errors("sources: [{id: s, kind: snowflake, account: org-acct, user: u, password: p}]").is_empty());
        assert!(errors("sources: [{id: s, kind: snowflake, account: xy1.eu-west-1, user: u, private_key_file: k.p8, role: R, warehouse: W, database: D, schema: S, endpoint: 'https://x.example', statement_timeout_secs: 60}]").is_empty());
        for (yaml, at, says) in [
            ("{id: s, kind: snowflake, account: a, user: u}", "password", "`password` or `private_key_file`"),
            (
                "{id: s, kind: snowflake, account: a, user: u, password: p, private_key_file: k}",
                "private_key_file",
                "not both",
            ),
            ("{id: s, kind: snowflake, account: 'a b', user: u, password: p}", "account", "account identifier"),
            ("{id: s, kind: snowflake, account: a, user: ' ', password: p}", "user", "needs `user`"),
            ("{id: s, kind: snowflake, account: a, user: u, password: p, endpoint: 'ftp://x'}", "endpoint", "http"),
            (
                "{id: s, kind: snowflake, account: a, user: u, password: p, statement_timeout_secs: 100000}",
                "statement_timeout_secs",
                "at most",
            ),
        ] {
            let e = errors(&format!("sources: [{yaml}]"));
            assert_eq!(e.len(), 1, "{yaml}: {e:?}");
            assert_eq!(e[0].0, format!("sources[0] (s).{at}"), "{yaml}");
            assert!(e[0].1.contains(says), "{yaml}: {}", e[0].1);
        }
        let e = crate::WorkspaceFile::from_yaml(
            "sources: [{id: s, kind: snowflake, account: a, user: u, password: p, url: x}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `url`"), "{e}");
    }

    #[test]
    fn snowflake_passwords_are_credentials() {
        let f = crate::WorkspaceFile::from_yaml(
            "sources: [{id: s, kind: snowflake, account: a, user: u, password: hunter2}]",
        )
        .unwrap();
        let shown = crate::credentials::redacted_source(&f.sources[0]);
        assert_eq!((shown["password"].as_str(), shown["user"].as_str()), (Some("<set>"), Some("u")));
        assert!(!format!("{:?}", f.sources).contains("hunter2"));
        // a password sent back as `<set>` is kept only for the same account, user and endpoint
        let same = |other: &str| {
            let g = crate::WorkspaceFile::from_yaml(&format!("sources: [{other}]")).unwrap();
            f.sources[0].same_address(&g.sources[0])
        };
        assert!(same("{id: s, kind: snowflake, account: a, user: u, password: x, role: R}"));
        assert!(!same("{id: s, kind: snowflake, account: a, user: u, password: x, endpoint: 'https://evil.example'}"));
        assert!(!same("{id: s, kind: snowflake, account: b, user: u, password: x}"));
        assert!(!same("{id: s, kind: snowflake, account: a, user: v, password: x}"));
        assert!(!same("{id: s, kind: redshift, url: 'postgres://h/d'}"));
    }

    #[test]
    fn redshift_takes_the_postgres_settings_but_not_the_warehouse_diff() {
        assert!(errors("sources: [{id: r, kind: redshift, url: 'postgres://u:p@h:5439/d', tls: require}]").is_empty());
        let e = errors("sources: [{id: r, kind: redshift, url: 'postgres://h/d', diff: warehouse, sluice_schema: s}]");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "sources[0] (r).diff");
        assert!(e[0].1.contains("not supported on redshift"), "{}", e[0].1);
        let e = errors("sources: [{id: r, kind: redshift, url: 'mysql://h/d'}]");
        assert_eq!(e[0].0, "sources[0] (r).url");
        let f =
            crate::WorkspaceFile::from_yaml("sources: [{id: r, kind: redshift, url: 'postgres://u:pw@h/d'}]").unwrap();
        assert_eq!(crate::credentials::redacted_source(&f.sources[0])["url"], "<set>");
    }

    #[test]
    fn the_warehouse_diff_is_taken_where_the_warehouse_computes_it() {
        let snow = "{id: s, kind: snowflake, account: a, user: u, password: p";
        assert!(errors(&format!("sources: [{snow}, diff: warehouse, sluice_schema: sluice_snap}}]")).is_empty());
        let e = errors(&format!("sources: [{snow}, diff: warehouse}}]"));
        assert_eq!((e[0].0.as_str(), e.len()), ("sources[0] (s).sluice_schema", 1), "{e:?}");
        let e = errors(&format!("sources: [{snow}, sluice_schema: x}}]"));
        assert!(e[0].1.contains("only a source with `diff: warehouse`"), "{e:?}");
        let e = errors(&format!("sources: [{snow}, diff: warehouse, sluice_schema: 'a.b'}}]"));
        assert_eq!(e[0].0, "sources[0] (s).sluice_schema", "a Snowflake snapshot schema is one name");
        // BigQuery: a dataset; Databricks: `schema` or `catalog.schema`
        let bq = "{id: b, kind: bigquery, project: p, credentials_file: k.json, diff: warehouse, sluice_schema: snaps}";
        assert!(errors(&format!("sources: [{bq}]")).is_empty());
        let dbx = "{id: d, kind: databricks, host: h.cloud.databricks.com, token: t, warehouse_id: w, diff: warehouse";
        assert!(errors(&format!("sources: [{dbx}, sluice_schema: main.snaps}}]")).is_empty());
        assert!(errors(&format!("sources: [{dbx}, sluice_schema: snaps}}]")).is_empty());
        let e = errors(&format!("sources: [{dbx}, sluice_schema: 'a.b.c'}}]"));
        assert!(e.iter().any(|(at, _)| at == "sources[0] (d).sluice_schema"), "{e:?}");
    }
}
