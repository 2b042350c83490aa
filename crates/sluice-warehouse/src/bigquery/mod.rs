//! Google BigQuery as a warehouse, over its REST API v2 (see `client`), as a service account
//! (see `auth`).
//!
//! Read-only: BigQuery has no read-only transactions, so every model is first dry-run
//! (`jobs.insert` with `dryRun: true`, which runs nothing) and refused unless its
//! `statementType` is `SELECT`; then it only ever runs as a subquery of a `SELECT` Sluice writes
//! (`SELECT … FROM (model) AS sluice_model …`), where no DML, DDL or script can stand. Results
//! go to BigQuery's anonymous cached results table; Sluice names no destination table. The
//! service account needs `roles/bigquery.jobUser` on the project and `roles/bigquery.dataViewer`
//! on the datasets the models read — nothing that writes.
//!
//! Scans sort by the id's text form (`ORDER BY CAST(id AS STRING)`, BigQuery compares strings
//! by code point, which is UTF-8 byte order) and read the result page by page
//! (`getQueryResults`, `pageToken`), one page in memory at a time.

mod auth;
mod client;
mod diff;
mod rows;

use crate::rest::{backquote, free_alias};
use crate::{check_columns, model_sql, Canceller, IdOrder, OrderGuard, Preview, Row, Warehouse, WarehouseError};
use client::{Client, DryRun};
use rows::Field;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Google's BigQuery API.
pub const DEFAULT_ENDPOINT: &str = "https://bigquery.googleapis.com";
/// A job's limit when the source sets none.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(3600);
/// Rows per page of a scan (`maxResults`; BigQuery also caps a page at 10 MB).
const PAGE_ROWS: usize = 10_000;

/// How to reach a project.
#[derive(Debug, Clone)]
pub struct BqOptions {
    /// The project the jobs run in.
    pub project: String,
    /// The service account's JSON key file.
    pub credentials_file: PathBuf,
    /// The datasets' location, when set.
    pub location: Option<String>,
    /// Base URL of the API; `None`: [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// The jobs' `jobTimeoutMs`; `None`: [`DEFAULT_JOB_TIMEOUT`].
    pub statement_timeout: Option<Duration>,
}

/// A BigQuery project as a warehouse.
pub struct BigQueryWarehouse {
    client: Client,
    canceller: Canceller,
    described: Option<(String, Vec<Field>)>,
}

impl BigQueryWarehouse {
    /// Reads the key file (no network yet: the first call fetches a token).
    pub fn open(opts: &BqOptions) -> Result<Self, WarehouseError> {
        let account = auth::ServiceAccount::load(&opts.credentials_file)?;
        tracing::debug!(project = %opts.project, account = %account.email(), "BigQuery source opened");
        let endpoint = opts.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let timeout = opts.statement_timeout.filter(|t| !t.is_zero()).unwrap_or(DEFAULT_JOB_TIMEOUT);
        let client = Client::new(endpoint, &opts.project, opts.location.clone(), account, timeout);
        let canceller = Canceller::new();
        let mut w = Self { client, canceller: canceller.clone(), described: None };
        w.attach_canceller(&canceller);
        Ok(w)
    }

    /// Shortens the first wait before a throttled request is retried (tests).
    #[doc(hidden)]
    pub fn with_retry_min(mut self, d: Duration) -> Self {
        self.client.http.retry_min = d;
        self
    }

    /// The model's columns, from a dry run; anything but a single SELECT is refused.
    fn describe(&mut self, sql: &str) -> Result<Vec<Field>, WarehouseError> {
        if let Some((known, fields)) = &self.described {
            if known == sql {
                return Ok(fields.clone());
            }
        }
        let _busy = self.canceller.busy()?;
        let DryRun { statement_type, fields } =
            self.client.dry_run(model_sql(sql)).map_err(|e| self.canceller.explain(e))?;
        if statement_type != "SELECT" {
            return Err(WarehouseError::sql(
                format!(
                    "the model is a {} statement; a model must be one SELECT query (Sluice never writes to the warehouse)",
                    crate::rest::excerpt(&statement_type)
                ),
                None,
            ));
        }
        if fields.is_empty() {
            return Err(WarehouseError::NoColumns);
        }
        check_columns(&fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>())?;
        self.described = Some((sql.to_string(), fields.clone()));
        Ok(fields)
    }

    fn answer_error(&self, message: String) -> WarehouseError {
        WarehouseError::Answer { target: self.client.http.target.clone(), message }
    }
}

impl Warehouse for BigQueryWarehouse {
    fn attach_canceller(&mut self, canceller: &Canceller) {
        crate::rest::install_cancel(canceller, &self.client.running, &self.client.http, client::cancel_job);
        self.canceller = canceller.clone();
    }

    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError> {
        Ok(self.describe(sql)?.into_iter().map(|f| f.name).collect())
    }

    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError> {
        let fields = self.describe(sql)?;
        let q = format!("SELECT * FROM ({}) AS sluice_model LIMIT {limit}", model_sql(sql));
        let _busy = self.canceller.busy()?;
        let mut out: Vec<Vec<Value>> = Vec::new();
        let mut columns = fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        let mut failure = None;
        let timeout = crate::rest::PREVIEW_TIMEOUT;
        self.client.run(&q, timeout, limit.max(1), &self.canceller.clone(), &mut |fs, row| {
            columns = fs.iter().map(|f| f.name.clone()).collect();
            let cells = rows::cells(row, fs.len())
                .map_err(|m| WarehouseError::Answer { target: "BigQuery".into(), message: m })?;
            let vals: Result<Vec<Value>, String> = fs.iter().zip(cells).map(|(f, c)| rows::value(f, c)).collect();
            match vals {
                Ok(v) => out.push(v),
                Err(m) => failure = Some(m),
            }
            Ok(failure.is_none() && out.len() < limit)
        })?;
        if let Some(m) = failure {
            return Err(self.answer_error(m));
        }
        Ok(Preview { columns, rows: out })
    }

    fn id_order(&mut self, _sql: &str, _id_column: &str) -> Result<IdOrder, WarehouseError> {
        Ok(IdOrder::Text)
    }

    fn diff(&mut self) -> Option<&mut dyn crate::diff::WarehouseDiff> {
        Some(self)
    }

    fn scan(
        &mut self,
        sql: &str,
        id_column: &str,
        _order: IdOrder,
        needs: &crate::ScanNeeds,
        sink: &mut dyn FnMut(Row) -> Result<(), String>,
    ) -> Result<(), WarehouseError> {
        let fields = self.describe(sql)?;
        let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        let n = fields.len();
        let typed: Vec<usize> = match &needs.typed {
            Some(t) => t.iter().copied().filter(|i| *i < n).collect(),
            None => (0..n).collect(),
        };
        let alias = backquote(&free_alias(&names));
        // a sparse pass fetches only the ids the diff named, in batches taken in byte order
        let filters: Vec<String> = match &needs.only_ids {
            None => vec![String::new()],
            Some(ids) => diff::id_batches(ids)
                .into_iter()
                .map(|list| format!(" WHERE CAST(sluice_model.{} AS STRING) IN ({list})", backquote(id_column)))
                .collect(),
        };
        for filter in filters {
            self.scan_part(sql, id_column, &alias, &filter, (n, &typed), sink)?;
        }
        Ok(())
    }
}

impl BigQueryWarehouse {
    /// One query of a scan: the rows `filter` keeps, in id order.
    fn scan_part(
        &mut self,
        sql: &str,
        id_column: &str,
        alias: &str,
        filter: &str,
        (n, typed): (usize, &[usize]),
        sink: &mut dyn FnMut(Row) -> Result<(), String>,
    ) -> Result<(), WarehouseError> {
        let q = format!(
            "SELECT CAST(sluice_model.{id} AS STRING) AS {alias}, sluice_model.* FROM ({model}) AS sluice_model{filter} ORDER BY {alias}",
            id = backquote(id_column),
            model = model_sql(sql)
        );
        let _busy = self.canceller.busy()?;
        let mut guard = OrderGuard::new(IdOrder::Text);
        let target = self.client.http.target.clone();
        let bad = |m: String| WarehouseError::Answer { target: target.clone(), message: m };
        self.client.run(&q, Duration::MAX, PAGE_ROWS, &self.canceller.clone(), &mut |fs, row| {
            if fs.len() != n + 1 {
                return Err(bad(format!("the result has {} columns, the model {n} (and the id)", fs.len())));
            }
            let cells = rows::cells(row, n + 1).map_err(bad)?;
            let id = match &cells[0]["v"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => {
                    return Err(bad(format!("an id is not a string: {}", crate::rest::excerpt(&other.to_string()))))
                }
            };
            guard.check(id.as_deref())?;
            let mut values = vec![Value::Null; n];
            for &i in typed {
                values[i] = rows::value(&fs[i + 1], &cells[i + 1]).map_err(bad)?;
            }
            sink(Row { id, values, raw: None }).map_err(WarehouseError::Aborted)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod tests;
