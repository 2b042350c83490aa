//! Sources of the workspace file: one settings type per kind, tagged by `kind`, so a setting
//! of another kind is refused by serde with the setting named
//! (`sources: [{id: dwh, kind: sqlite, path: w.db}]`).

use crate::secret::Secret;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// Kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// An SQLite file as warehouse (the embedded default).
    Sqlite,
    /// A PostgreSQL (or Redshift) warehouse.
    Postgres,
    /// A Snowflake warehouse (the connector protocol).
    Snowflake,
    /// An Amazon Redshift warehouse (the PostgreSQL protocol, Redshift's dialect).
    Redshift,
    /// An event source of the Tracking API.
    Events,
    /// Google BigQuery (REST `jobs.query` + `getQueryResults`).
    Bigquery,
    /// Databricks SQL (Statement Execution API 2.0).
    Databricks,
}

impl SourceKind {
    /// Name as written in the workspace file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Snowflake => "snowflake",
            Self::Redshift => "redshift",
            Self::Events => "events",
            Self::Bigquery => "bigquery",
            Self::Databricks => "databricks",
        }
    }
}

/// A source of data: its id and the settings of its kind. Written flat, as
/// `{id: dwh, kind: sqlite, path: w.db}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceConfig {
    /// Unique id of the source, referenced by models.
    pub id: String,
    /// The kind (`kind:`) and its settings.
    #[serde(flatten)]
    pub settings: SourceSettings,
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Strict(value) = Strict::deserialize(d)?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(D::Error::custom("a source must be a mapping of settings"));
        };
        let id = match map.remove("id") {
            Some(serde_json::Value::String(id)) => id,
            Some(other) => {
                return Err(D::Error::custom(format!("invalid type for field `id`: {other}, expected a string")))
            }
            None => return Err(D::Error::missing_field("id")),
        };
        let kind = match map.remove("kind") {
            Some(serde_json::Value::String(k)) if unsupported_kind(&k).is_some() => {
                let why = unsupported_kind(&k).unwrap_or_default();
                return Err(D::Error::custom(format!("field `kind`: {why} (source `{}`)", id.escape_debug())));
            }
            Some(k) => SourceKind::deserialize(k).map_err(|e| D::Error::custom(format!("field `kind`: {e}")))?,
            None => return Err(D::Error::missing_field("kind")),
        };
        let settings = match kind {
            SourceKind::Sqlite => SourceSettings::Sqlite(settings(map, &id)?),
            SourceKind::Postgres => SourceSettings::Postgres(settings(map, &id)?),
            SourceKind::Snowflake => SourceSettings::Snowflake(settings(map, &id)?),
            SourceKind::Redshift => SourceSettings::Redshift(settings(map, &id)?),
            SourceKind::Events => SourceSettings::Events(settings(map, &id)?),
            SourceKind::Bigquery => SourceSettings::Bigquery(settings(map, &id)?),
            SourceKind::Databricks => SourceSettings::Databricks(settings(map, &id)?),
        };
        Ok(Self { id, settings })
    }
}

/// Why a warehouse kind users may write is refused, when it is one Sluice does not support yet.
/// Azure Synapse speaks TDS (SQL Server's protocol): no SQL Server or TDS server can be
/// installed from the package registries Sluice is built and tested with, and Sluice ships no
/// warehouse that no test has run against.
pub fn unsupported_kind(kind: &str) -> Option<String> {
    match kind.to_ascii_lowercase().as_str() {
        "synapse" | "azure_synapse" | "azure-synapse" | "azuresynapse" | "sqlserver" | "mssql" => Some(format!(
            "`{}` (Azure Synapse / SQL Server, over TDS) is not supported yet: no SQL Server or TDS \
             server could be installed to test it against, and Sluice ships no warehouse that no test has \
             run against (supported: sqlite, postgres, redshift, snowflake, bigquery, databricks)",
            kind.escape_debug()
        )),
        _ => None,
    }
}

/// A settings value read strictly: a key written twice is refused (`duplicate field`) instead
/// of the last one winning, and a non-finite number (YAML `.nan`, `.inf`) is refused instead of
/// reading as unset — a reviewer reading `kind: sqlite` must not approve what runs as postgres,
/// and `tls: .nan` must not become the default.
struct Strict(serde_json::Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a setting value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Strict, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Strict(serde_json::Value::Number(n)))
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(serde_json::Value::Null))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(serde_json::Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(serde_json::Value::Array(out)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{}`", key.escape_debug())));
            }
            let Strict(v) = map
                .next_value()
                .map_err(|e: A::Error| serde::de::Error::custom(format!("field `{}`: {e}", key.escape_debug())))?;
            out.insert(key, v);
        }
        Ok(Strict(serde_json::Value::Object(out)))
    }
}

/// Reads the settings of one kind. The message names the field at fault first (serde's
/// `unknown field `pth``, or `field `tls`: unknown variant ...`) and the source's id last.
fn settings<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    map: serde_json::Map<String, serde_json::Value>,
    id: &str,
) -> Result<T, E> {
    serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
        let field = match e.path().to_string().as_str() {
            "." => String::new(),
            p => format!("field `{p}`: "),
        };
        E::custom(format!("{field}{} (source `{}`)", e.into_inner(), id.escape_debug()))
    })
}

impl SourceConfig {
    /// The kind of source.
    pub fn kind(&self) -> SourceKind {
        self.settings.kind()
    }

    /// The settings of an event source (`None` for a warehouse).
    pub fn events(&self) -> Option<&EventsSource> {
        match &self.settings {
            SourceSettings::Events(e) => Some(e),
            _ => None,
        }
    }

    /// Whether `other` reaches the same place with the same protection: same kind and, for
    /// PostgreSQL, the same `tls` and `ca_file`; for SQLite the same `path`. Credentials sent
    /// back as `<set>` are kept only then.
    pub fn same_address(&self, other: &SourceConfig) -> bool {
        match (&self.settings, &other.settings) {
            (SourceSettings::Sqlite(a), SourceSettings::Sqlite(b)) => a.path == b.path,
            (SourceSettings::Postgres(a), SourceSettings::Postgres(b))
            | (SourceSettings::Redshift(a), SourceSettings::Redshift(b)) => a.tls == b.tls && a.ca_file == b.ca_file,
            (SourceSettings::Snowflake(a), SourceSettings::Snowflake(b)) => {
                (&a.account, &a.user, &a.endpoint) == (&b.account, &b.user, &b.endpoint)
            }
            (SourceSettings::Events(_), SourceSettings::Events(_)) => true,
            (SourceSettings::Bigquery(a), SourceSettings::Bigquery(b)) => {
                a.endpoint == b.endpoint && a.credentials_file == b.credentials_file
            }
            (SourceSettings::Databricks(a), SourceSettings::Databricks(b)) => a.host == b.host,
            _ => false,
        }
    }
}

/// The settings of a source, by kind (read through [`SourceConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceSettings {
    /// An SQLite file as warehouse (the embedded default).
    Sqlite(SqliteSource),
    /// A PostgreSQL warehouse.
    Postgres(PostgresSource),
    /// A Snowflake warehouse.
    Snowflake(SnowflakeSource),
    /// An Amazon Redshift warehouse: the settings of `postgres` (`diff: warehouse` is refused).
    Redshift(PostgresSource),
    /// An event source of the Tracking API.
    Events(EventsSource),
    /// Google BigQuery.
    Bigquery(BigQuerySource),
    /// Databricks SQL.
    Databricks(DatabricksSource),
}

impl SourceSettings {
    /// The schema of the warehouse-side diff (docs/DIFF.md), when the source has
    /// `diff: warehouse` and a `sluice_schema`.
    pub fn warehouse_diff(&self) -> Option<&str> {
        let (diff, schema) = match self {
            Self::Postgres(p) | Self::Redshift(p) => (p.diff, &p.sluice_schema),
            Self::Snowflake(s) => (s.diff, &s.sluice_schema),
            Self::Bigquery(b) => (b.diff, &b.sluice_schema),
            Self::Databricks(d) => (d.diff, &d.sluice_schema),
            Self::Sqlite(_) | Self::Events(_) => return None,
        };
        (diff == DiffMode::Warehouse).then_some(schema.as_deref()).flatten()
    }

    /// The kind of source.
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::Sqlite(_) => SourceKind::Sqlite,
            Self::Postgres(_) => SourceKind::Postgres,
            Self::Snowflake(_) => SourceKind::Snowflake,
            Self::Redshift(_) => SourceKind::Redshift,
            Self::Events(_) => SourceKind::Events,
            Self::Bigquery(_) => SourceKind::Bigquery,
            Self::Databricks(_) => SourceKind::Databricks,
        }
    }
}

/// Settings of an SQLite source (`kind: sqlite`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSource {
    /// Path of the SQLite file, relative to the workspace file.
    pub path: String,
    /// Longest a sync's scan may run, in seconds: it is interrupted after it (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_secs: Option<u64>,
}

/// Settings of a PostgreSQL (or Redshift) source (`kind: postgres`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// Connection URL (`postgres://user:password@host/db`): a credential, sealed at rest.
    pub url: Secret,
    /// TLS mode: `disable`, `prefer` (default), `require`, `verify-ca`, `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// Extra PEM root certificates for `tls: verify-full`, relative to the workspace file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Longest a model's query may run on the server, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_secs: Option<u64>,
    /// Connect even when the role is a superuser or may read or write the server's files or run
    /// programs there, which a read-only transaction cannot stop (default: refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_privileged_role: bool,
    /// Where re-syncs find what changed: `local` (default: every row is read and compared with
    /// Sluice's checkpoint) or `warehouse` (the warehouse compares each model with a snapshot
    /// kept in `sluice_schema` and returns only what changed; docs/DIFF.md).
    #[serde(default, skip_serializing_if = "DiffMode::is_local")]
    pub diff: DiffMode,
    /// With `diff: warehouse`: a schema Sluice's role owns (CREATE and USAGE), where it keeps
    /// one snapshot table per model. Nothing else in the warehouse is ever written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluice_schema: Option<String>,
}

/// Settings of a Snowflake source (`kind: snowflake`); exactly one of `password` and
/// `private_key_file` authenticates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeSource {
    /// The account identifier (`myorg-myaccount`, or a locator such as `xy12345.eu-west-1`).
    pub account: String,
    /// The login name of the user Sluice connects as.
    pub user: String,
    /// The user's password: a credential, sealed at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A PEM file (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`, unencrypted) holding the
    /// user's RSA key for key-pair authentication, relative to the workspace file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// The virtual warehouse that runs the models (else the user's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// The database models run in (else the user's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The schema models run in (else the user's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The role Sluice uses (else the user's default): give it only SELECT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Base URL of the account (default `https://{account}.snowflakecomputing.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Longest a model's query may run on the server, in seconds (`STATEMENT_TIMEOUT_IN_SECONDS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_secs: Option<u64>,
    /// Where re-syncs find what changed: `local` (default) or `warehouse` (the warehouse compares
    /// each model with a snapshot kept in `sluice_schema` and returns only what changed;
    /// docs/DIFF.md).
    #[serde(default, skip_serializing_if = "DiffMode::is_local")]
    pub diff: DiffMode,
    /// With `diff: warehouse`: a schema of the source's `database` where Sluice's role may create
    /// tables (USAGE, CREATE TABLE); it keeps one snapshot table per model there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluice_schema: Option<String>,
}

/// Where a re-sync's diff is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffMode {
    /// Every row is read and compared with Sluice's checkpoint.
    #[default]
    Local,
    /// The warehouse compares the model with its snapshot and returns only what changed.
    Warehouse,
}

impl DiffMode {
    /// Whether this is the default.
    pub fn is_local(&self) -> bool {
        *self == Self::Local
    }
}

/// Settings of an event source of the Tracking API (`kind: events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSource {
    /// The write key clients send events with: a credential, sealed at rest.
    pub write_key: Secret,
    /// Web origins (`scheme://host[:port]`) whose pages may send events with this write key.
    /// Unset: any origin; an empty list: no browser page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    /// Consent category ids that an event sent with the header `Sec-GPC: 1` (Global Privacy
    /// Control) counts as refused, whatever its consent object says (R14). Unset: GPC is not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpc_refuses: Option<Vec<String>>,
}

/// Settings of a Google BigQuery source (`kind: bigquery`). Queries run in `project` over the
/// REST API (`jobs.query`, `getQueryResults`), authenticated as a service account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySource {
    /// The Google Cloud project the queries run (and are billed) in, e.g. `my-project`.
    pub project: String,
    /// Path of the service account's JSON key file (as Google Cloud downloads it), relative to
    /// the workspace file. The key stays in that file; only the path is stored.
    pub credentials_file: String,
    /// Location of the datasets the models read (`US`, `EU`, `europe-west1`, ...); unset: BigQuery
    /// infers it from the tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Base URL of the BigQuery API (default `https://bigquery.googleapis.com`; tests and private
    /// endpoints override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Longest a model's query may run, in seconds (the job's `jobTimeoutMs`; default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_secs: Option<u64>,
    /// Where re-syncs find what changed: `local` (default) or `warehouse` (the warehouse compares
    /// each model with a snapshot kept in `sluice_schema` and returns only what changed;
    /// docs/DIFF.md).
    #[serde(default, skip_serializing_if = "DiffMode::is_local")]
    pub diff: DiffMode,
    /// With `diff: warehouse`: a dataset of `project` (in the models' location) where Sluice's
    /// service account may create and write tables (`roles/bigquery.dataEditor` on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluice_schema: Option<String>,
}

/// Settings of a Databricks SQL source (`kind: databricks`): statements run on a SQL warehouse
/// through the Statement Execution API 2.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabricksSource {
    /// The workspace's host (`dbc-1234.cloud.databricks.com`, or a full `https://` URL).
    pub host: String,
    /// A personal access token (or a service principal's): a credential, sealed at rest.
    pub token: Secret,
    /// The id of the SQL warehouse the statements run on.
    pub warehouse_id: String,
    /// Default catalog of the models' unqualified table names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Default schema of the models' unqualified table names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Longest a model's statement may run, in seconds (default 3600); it is cancelled after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_secs: Option<u64>,
    /// Where re-syncs find what changed: `local` (default) or `warehouse` (the warehouse compares
    /// each model with a snapshot kept in `sluice_schema` and returns only what changed;
    /// docs/DIFF.md).
    #[serde(default, skip_serializing_if = "DiffMode::is_local")]
    pub diff: DiffMode,
    /// With `diff: warehouse`: a schema, `schema` (in `catalog`, or the workspace's default
    /// catalog) or `catalog.schema`, where Sluice may create and modify tables (USE CATALOG, USE
    /// SCHEMA, CREATE TABLE, MODIFY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sluice_schema: Option<String>,
}

/// How a PostgreSQL connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate (the default).
    Prefer,
    /// TLS required, certificate not checked.
    Require,
    /// Accepted for libpq compatibility; checked like `verify-full` (the stricter mode).
    VerifyCa,
    /// TLS required, certificate and host name checked.
    VerifyFull,
}

#[cfg(test)]
mod tests {
    use crate::{SourceConfig, SourceKind, WorkspaceFile};

    fn refused(yaml: &str) -> String {
        WorkspaceFile::from_yaml(yaml).unwrap_err().to_string()
    }

    #[test]
    fn reads_and_writes_the_flat_shape() {
        let yaml = "sources:
- {id: dwh, kind: sqlite, path: w.db}
- {id: pg, kind: postgres, url: 'postgres://u:pw@h/d', tls: verify-full, allow_privileged_role: true}
- {id: web, kind: events, write_key: wk_1, allowed_origins: ['https://a.example']}
";
        let f = WorkspaceFile::from_yaml(yaml).unwrap();
        let kinds: Vec<SourceKind> = f.sources.iter().map(SourceConfig::kind).collect();
        assert_eq!(kinds, [SourceKind::Sqlite, SourceKind::Postgres, SourceKind::Events]);
        let json = crate::exposing(|| serde_json::to_value(&f.sources).unwrap());
        assert_eq!(
            json,
            serde_json::json!([
                {"id": "dwh", "kind": "sqlite", "path": "w.db"},
                {"id": "pg", "kind": "postgres", "url": "postgres://u:pw@h/d", "tls": "verify-full", "allow_privileged_role": true},
                {"id": "web", "kind": "events", "write_key": "wk_1", "allowed_origins": ["https://a.example"]},
            ])
        );
        let back: Vec<SourceConfig> = serde_json::from_value(json).unwrap();
        assert_eq!(back, f.sources);
        let shown = serde_json::to_value(&f.sources).unwrap();
        assert_eq!((shown[1]["url"].as_str(), shown[2]["write_key"].as_str()), (Some("<set>"), Some("<set>")));
        assert!(!format!("{:?}", f.sources).contains("pw"), "Debug never shows a credential");
    }

    #[test]
    fn a_setting_of_another_kind_is_refused_by_name() {
        for (yaml, field) in [
            ("sources: [{id: dwh, kind: sqlite, path: w.db, write_key: k}]", "write_key"),
            ("sources: [{id: dwh, kind: sqlite, path: w.db, tls: disable}]", "tls"),
            ("sources: [{id: w, kind: events, write_key: k, statement_timeout_secs: 3}]", "statement_timeout_secs"),
            ("sources: [{id: pg, kind: postgres, url: 'postgres://h/d', allowed_origins: []}]", "allowed_origins"),
            ("sources: [{id: pg, kind: postgres, url: 'postgres://h/d', pth: x}]", "pth"),
        ] {
            let e = refused(yaml);
            assert!(e.contains(&format!("unknown field `{field}`")), "{yaml}: {e}");
            assert!(e.contains("(source `"), "names the entry: {e}");
        }
        assert!(refused("sources: [{id: pg, kind: postgres}]").contains("missing field `url`"));
        assert!(refused("sources: [{kind: sqlite, path: w.db}]").contains("missing field `id`"));
        let e = refused("sources: [{id: x, kind: mysql}]");
        assert!(e.contains("field `kind`: unknown variant `mysql`"), "{e}");
        let e = refused("sources: [{id: pg, kind: postgres, url: 'postgres://h/d', tls: sometimes}]");
        assert!(e.contains("field `tls`: unknown variant `sometimes`") && e.contains("verify-full"), "{e}");
        let e = refused("sources: [{id: dwh, kind: sqlite, path: w.db, statement_timeout_secs: soon}]");
        assert!(e.contains("field `statement_timeout_secs`: invalid type"), "{e}");
    }

    #[test]
    fn synapse_and_sql_server_are_refused_with_the_reason() {
        for kind in ["synapse", "azure_synapse", "Synapse", "mssql"] {
            let e = refused(&format!("sources: [{{id: az, kind: {kind}, host: x.sql.azuresynapse.net}}]"));
            assert!(e.contains("field `kind`") && e.contains("not supported yet"), "{kind}: {e}");
            assert!(e.contains("TDS") && e.contains("(source `az`)"), "{kind}: {e}");
        }
    }

    #[test]
    fn cloud_warehouse_settings_are_checked_without_io() {
        let check = |yaml: &str| {
            let f = WorkspaceFile::from_yaml(yaml).unwrap();
            crate::validate(f, &crate::catalog::TestCatalog).err().map(|e| e.to_string()).unwrap_or_default()
        };
        let ok = "sources: [{id: bq, kind: bigquery, project: my-proj, credentials_file: sa.json, location: EU},
  {id: db, kind: databricks, host: dbc-1.cloud.databricks.com, token: dapi1, warehouse_id: abc123, catalog: main}]";
        assert_eq!(check(ok), "");
        let f = WorkspaceFile::from_yaml(ok).unwrap();
        let shown = serde_json::to_value(&f.sources).unwrap();
        assert_eq!(shown[1]["token"], "<set>", "the Databricks token is a sealed credential");
        let e = check("sources: [{id: bq, kind: bigquery, project: My_Proj, credentials_file: '', endpoint: 'http://bq.example'}]");
        assert!(e.contains("sources[0] (bq).project") && e.contains("not a project id"), "{e}");
        assert!(e.contains("sources[0] (bq).credentials_file"), "{e}");
        assert!(e.contains("sources[0] (bq).endpoint") && e.contains("https://"), "{e}");
        let e =
            check("sources: [{id: db, kind: databricks, host: 'http://db.example', token: '', warehouse_id: 'a b'}]");
        assert!(e.contains("(db).host") && e.contains("(db).token") && e.contains("(db).warehouse_id"), "{e}");
        let e = refused("sources: [{id: db, kind: databricks, host: h, token: t, warehouse_id: w, url: x}]");
        assert!(e.contains("unknown field `url`"), "{e}");
    }
}
