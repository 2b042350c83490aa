//! Databricks SQL as a warehouse, over the SQL Statement Execution API 2.0 (see `client`),
//! with a personal access token or a service principal's token.
//!
//! Read-only: the API has no read-only mode, so a model must be a query — its first keyword
//! `SELECT`, `WITH`, `VALUES`, `FROM` or `TABLE` (after comments and opening parentheses), which
//! is checked before anything is sent — and it only ever runs as a subquery of a `SELECT`
//! Sluice writes (`SELECT … FROM (model) AS sluice_model …`), where no DML, DDL or second
//! statement can stand. Give the token's principal `USE CATALOG`, `USE SCHEMA` and `SELECT` on
//! what the models read and `CAN USE` on the SQL warehouse — nothing that writes.
//!
//! Descriptions and previews come INLINE; scans use EXTERNAL_LINKS (INLINE results are capped
//! at 25 MiB), sorted by the id's text form (`ORDER BY CAST(id AS STRING)`, byte order under
//! the default UTF8_BINARY collation), one chunk in memory at a time.

mod client;
mod diff;
mod rows;

use crate::rest::{backquote, free_alias};
use crate::{check_columns, model_sql, Canceller, IdOrder, OrderGuard, Preview, Row, Warehouse, WarehouseError};
use client::{Client, Disposition};
use rows::Column;
use serde_json::Value;
use std::time::Duration;

/// A statement's limit when the source sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How to reach a SQL warehouse.
#[derive(Debug, Clone)]
pub struct DbxOptions {
    /// `https://host` (or `http://127.0.0.1:port` for a local fake).
    pub base: String,
    /// The access token.
    pub token: String,
    /// The SQL warehouse's id.
    pub warehouse_id: String,
    /// Default catalog.
    pub catalog: Option<String>,
    /// Default schema.
    pub schema: Option<String>,
    /// Longest a statement runs before it is cancelled; `None`: [`DEFAULT_TIMEOUT`].
    pub statement_timeout: Option<Duration>,
}

/// A Databricks SQL warehouse.
pub struct DatabricksWarehouse {
    client: Client,
    canceller: Canceller,
    described: Option<(String, Vec<Column>)>,
}

/// The first keyword of `sql`, after whitespace, comments and opening parentheses, uppercase.
fn first_keyword(sql: &str) -> String {
    let mut s = sql;
    loop {
        let t = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.split_once('\n').map(|x| x.1).unwrap_or("");
        } else if let Some(rest) = t.strip_prefix("/*") {
            s = rest.split_once("*/").map(|x| x.1).unwrap_or("");
        } else {
            return t.chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_uppercase();
        }
    }
}

impl DatabricksWarehouse {
    /// A client of the warehouse (no network yet).
    pub fn open(opts: &DbxOptions) -> Result<Self, WarehouseError> {
        let timeout = opts.statement_timeout.filter(|t| !t.is_zero()).unwrap_or(DEFAULT_TIMEOUT);
        let client = Client::new(
            opts.base.trim_end_matches('/').to_string(),
            opts.token.clone(),
            opts.warehouse_id.clone(),
            opts.catalog.clone(),
            opts.schema.clone(),
            timeout,
        );
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

    fn describe(&mut self, sql: &str) -> Result<Vec<Column>, WarehouseError> {
        if let Some((known, cols)) = &self.described {
            if known == sql {
                return Ok(cols.clone());
            }
        }
        let kw = first_keyword(model_sql(sql));
        if !matches!(kw.as_str(), "SELECT" | "WITH" | "VALUES" | "FROM" | "TABLE") {
            return Err(WarehouseError::sql(
                format!(
                    "the model starts with `{}`; a model must be one query (SELECT or WITH; Sluice never writes to the warehouse)",
                    crate::rest::excerpt(&kw)
                ),
                None,
            ));
        }
        let q = format!("SELECT * FROM ({}) AS sluice_model LIMIT 0", model_sql(sql));
        let _busy = self.canceller.busy()?;
        let cols =
            self.client.run(&q, Disposition::Inline, Duration::MAX, &self.canceller.clone(), &mut |_, _| Ok(false))?;
        if cols.is_empty() {
            return Err(WarehouseError::NoColumns);
        }
        check_columns(&cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>())?;
        self.described = Some((sql.to_string(), cols.clone()));
        Ok(cols)
    }
}

impl Warehouse for DatabricksWarehouse {
    fn attach_canceller(&mut self, canceller: &Canceller) {
        crate::rest::install_cancel(canceller, &self.client.running, &self.client.http, client::cancel_statement);
        self.canceller = canceller.clone();
    }

    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError> {
        Ok(self.describe(sql)?.into_iter().map(|c| c.name).collect())
    }

    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError> {
        self.describe(sql)?;
        let q = format!("SELECT * FROM ({}) AS sluice_model LIMIT {limit}", model_sql(sql));
        let _busy = self.canceller.busy()?;
        let mut out: Vec<Vec<Value>> = Vec::new();
        let timeout = crate::rest::PREVIEW_TIMEOUT;
        let cols = self.client.run(&q, Disposition::Inline, timeout, &self.canceller.clone(), &mut |cols, cells| {
            if out.len() >= limit {
                return Ok(false);
            }
            let vals: Result<Vec<Value>, String> = cols.iter().zip(cells).map(|(c, v)| rows::value(c, v)).collect();
            out.push(vals.map_err(|m| WarehouseError::Answer { target: "Databricks".into(), message: m })?);
            Ok(true)
        })?;
        Ok(Preview { columns: cols.into_iter().map(|c| c.name).collect(), rows: out })
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
        let cols = self.describe(sql)?;
        let n = cols.len();
        let mut typed = vec![needs.typed.is_none(); n];
        for &i in needs.typed.iter().flatten().filter(|i| **i < n) {
            typed[i] = true;
        }
        let alias = backquote(&free_alias(&cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>()));
        // a sparse pass fetches only the ids the diff named, in batches taken in byte order
        let filters: Vec<String> = match &needs.only_ids {
            None => vec![String::new()],
            Some(ids) => diff::id_batches(ids)
                .into_iter()
                .map(|list| format!(" WHERE CAST(sluice_model.{} AS STRING) IN ({list})", backquote(id_column)))
                .collect(),
        };
        let mut guard = OrderGuard::new(IdOrder::Text);
        for filter in filters {
            let q = format!(
                "SELECT CAST(sluice_model.{id} AS STRING) AS {alias}, sluice_model.* FROM ({model}) AS sluice_model{filter} ORDER BY {alias}",
                id = backquote(id_column),
                model = model_sql(sql)
            );
            self.scan_part(&q, n, &typed, &mut guard, sink)?;
        }
        Ok(())
    }
}

impl DatabricksWarehouse {
    /// One query of a scan, its rows in id order.
    fn scan_part(
        &mut self,
        q: &str,
        n: usize,
        typed: &[bool],
        guard: &mut OrderGuard,
        sink: &mut dyn FnMut(Row) -> Result<(), String>,
    ) -> Result<(), WarehouseError> {
        let _busy = self.canceller.busy()?;
        let target = self.client.http.target.clone();
        let bad = |m: String| WarehouseError::Answer { target: target.clone(), message: m };
        self.client.run(q, Disposition::ExternalLinks, Duration::MAX, &self.canceller.clone(), &mut |cs, cells| {
            if cs.len() != n + 1 {
                return Err(bad(format!("the result has {} columns, the model {n} (and the id)", cs.len())));
            }
            let mut cells = cells.into_iter();
            let id = match cells.next() {
                Some(Value::String(s)) => Some(s),
                Some(Value::Null) | None => None,
                Some(other) => {
                    return Err(bad(format!("an id is not a string: {}", crate::rest::excerpt(&other.to_string()))))
                }
            };
            guard.check(id.as_deref())?;
            let mut values = vec![Value::Null; n];
            for (i, v) in cells.enumerate() {
                if typed[i] {
                    values[i] = rows::value(&cs[i + 1], v).map_err(bad)?;
                }
            }
            sink(Row { id, values, raw: None }).map_err(WarehouseError::Aborted)?;
            Ok(true)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod tests;
