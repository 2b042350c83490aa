//! The warehouse factory: the one place that turns a source's settings into a [`Warehouse`].
//! A new warehouse kind is a folder here, a variant of `sluice_core::SourceSettings` and an
//! arm below; the compiler finds the rest.

use crate::postgres::{PgOptions, PostgresWarehouse, TlsMode};
use crate::sqlite::SqliteWarehouse;
use crate::{Warehouse, WarehouseError};
use sluice_core::{SourceConfig, SourceSettings};
use std::path::Path;
use std::time::Duration;

/// The connection options of a `postgres` (or `redshift`) source.
fn pg_options(p: &sluice_core::PostgresSource, base_dir: &Path) -> PgOptions {
    PgOptions {
        url: p.url.expose().to_string(),
        tls: p.tls.map(|t| match t {
            sluice_core::TlsMode::Disable => TlsMode::Disable,
            sluice_core::TlsMode::Prefer => TlsMode::Prefer,
            sluice_core::TlsMode::Require => TlsMode::Require,
            sluice_core::TlsMode::VerifyCa | sluice_core::TlsMode::VerifyFull => TlsMode::VerifyFull,
        }),
        ca_file: p.ca_file.as_ref().map(|f| base_dir.join(f)),
        statement_timeout: p.statement_timeout_secs.map(Duration::from_secs),
        allow_privileged_role: p.allow_privileged_role,
        preview_timeout: None,
        dialect: crate::postgres::Dialect::Postgres,
    }
}

/// Opens the warehouse of `source`; relative paths (`path`, `ca_file`) resolve from `base_dir`
/// (the workspace file's folder). An event source is [`WarehouseError::NotAWarehouse`].
pub fn open(source: &SourceConfig, base_dir: &Path) -> Result<Box<dyn Warehouse>, WarehouseError> {
    match &source.settings {
        SourceSettings::Sqlite(s) => {
            let mut w = SqliteWarehouse::open(&base_dir.join(&s.path))?;
            if let Some(secs) = s.statement_timeout_secs {
                w = w.with_scan_deadline(Duration::from_secs(secs));
            }
            Ok(Box::new(w))
        }
        SourceSettings::Postgres(p) => Ok(Box::new(PostgresWarehouse::connect(&pg_options(p, base_dir))?)),
        SourceSettings::Snowflake(s) => Ok(Box::new(crate::snowflake::open(s, base_dir)?)),
        SourceSettings::Redshift(p) => Ok(Box::new(PostgresWarehouse::connect(&PgOptions {
            dialect: crate::postgres::Dialect::Redshift,
            ..pg_options(p, base_dir)
        })?)),
        SourceSettings::Bigquery(b) => {
            Ok(Box::new(crate::bigquery::BigQueryWarehouse::open(&crate::bigquery::BqOptions {
                project: b.project.clone(),
                credentials_file: base_dir.join(&b.credentials_file),
                location: b.location.clone(),
                endpoint: b.endpoint.clone(),
                statement_timeout: b.statement_timeout_secs.map(Duration::from_secs),
            })?))
        }
        SourceSettings::Databricks(d) => {
            Ok(Box::new(crate::databricks::DatabricksWarehouse::open(&crate::databricks::DbxOptions {
                base: sluice_core::cloud::databricks_base(&d.host),
                token: d.token.expose().to_string(),
                warehouse_id: d.warehouse_id.clone(),
                catalog: d.catalog.clone(),
                schema: d.schema.clone(),
                statement_timeout: d.statement_timeout_secs.map(Duration::from_secs),
            })?))
        }
        SourceSettings::Events(_) => Err(WarehouseError::NotAWarehouse { source_id: source.id.clone() }),
    }
}
