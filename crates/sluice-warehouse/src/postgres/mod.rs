//! PostgreSQL (and Redshift, which speaks its protocol) as a warehouse. Rows stream through
//! the extended protocol with backpressure; nothing is loaded whole.
//!
//! Model SQL only ever runs inside a `READ ONLY` transaction that is rolled back, under a role
//! checked at connect (see `role`); the server drops the query of a client that went away
//! (`client_connection_check_interval`), and a [`Canceller`] stops it on request.

mod diff;
mod role;
mod tls;

pub use tls::TlsMode;

use crate::{
    check_columns, model_sql, quote_ident, Canceller, IdOrder, OrderGuard, Preview, Row, Warehouse, WarehouseError,
};
use fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, Config, GenericClient, Transaction};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Which server speaks the PostgreSQL protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// Amazon Redshift: no `work_mem`, `client_connection_check_interval`, `pg_has_role`,
    /// `COLLATE "C"` or `hash_record_extended` (no warehouse-side diff); `text` is
    /// `varchar(256)` there, so values are cast to `varchar(65535)`.
    Redshift,
}

impl Dialect {
    /// The type values are cast to for their text form.
    pub fn text(self) -> &'static str {
        match self {
            Self::Postgres => "text",
            Self::Redshift => "varchar(65535)",
        }
    }
}

/// How to reach the warehouse.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/db` (libpq URL; `sslmode` is honoured).
    pub url: String,
    /// TLS mode; `None`: the URL's `sslmode`, else `prefer`.
    pub tls: Option<TlsMode>,
    /// Extra PEM root certificates for `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Server-side limit per statement.
    pub statement_timeout: Option<Duration>,
    /// Server-side limit of a preview's query; `None`: [`DEFAULT_PREVIEW_TIMEOUT`]. A shorter
    /// `statement_timeout` wins.
    pub preview_timeout: Option<Duration>,
    /// Connect even when the role is a superuser or can reach the server's files or programs
    /// (`pg_read_server_files`, `pg_write_server_files`, `pg_execute_server_program`), which a
    /// read-only transaction cannot stop; [`Warehouse::warnings`] then says so.
    pub allow_privileged_role: bool,
    /// PostgreSQL or Redshift.
    pub dialect: Dialect,
}

/// How long a preview's query may run on the server unless the source's timeout is shorter.
pub const DEFAULT_PREVIEW_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the server checks, while a query runs, that Sluice is still connected
/// (`client_connection_check_interval`, PostgreSQL ≥ 14).
const CLIENT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A connected PostgreSQL warehouse.
pub struct PostgresWarehouse {
    client: Client,
    target: String,
    /// The last model described (a sync asks for columns, id order and a scan of one model).
    described: Option<(String, Vec<(String, Conv)>)>,
    /// For the cancel requests of [`Canceller`]s (they open their own connection).
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    canceller: Canceller,
    preview_timeout: Duration,
    warnings: Vec<String>,
    dialect: Dialect,
}

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conv {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Text,
    Json,
    /// Cast to text by the server, then read as a JSON number.
    Numeric,
    /// Cast to text by the server (dates, uuids, arrays, …).
    AsText,
}

fn conv(t: &Type) -> Conv {
    match *t {
        Type::BOOL => Conv::Bool,
        Type::INT2 => Conv::I16,
        Type::INT4 => Conv::I32,
        Type::INT8 => Conv::I64,
        Type::FLOAT4 => Conv::F32,
        Type::FLOAT8 => Conv::F64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Conv::Text,
        Type::JSON | Type::JSONB => Conv::Json,
        Type::NUMERIC => Conv::Numeric,
        _ => Conv::AsText,
    }
}

/// `user@host:port/db`, never the password.
fn describe(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{}@{host}:{port}/{}", c.get_user().unwrap_or("?"), c.get_dbname().unwrap_or(""))
}

/// A failed statement, with the server's SQLSTATE when it sent one.
fn db_err(e: &postgres::Error) -> WarehouseError {
    WarehouseError::sql(error_text(e), e.code().map(|c| c.code()))
}

fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// The server's message for bad SQL, with the position in the model's own SQL.
fn sql_error(e: postgres::Error, sql: &str) -> WarehouseError {
    let Some(db) = e.as_db_error() else { return db_err(&e) };
    let mut msg = db.message().to_string();
    if let Some(postgres::error::ErrorPosition::Original(pos)) = db.position() {
        let pos = (*pos as usize).saturating_sub(1);
        let before: String = sql.chars().take(pos).collect();
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count() + 1).unwrap_or(1);
        let text = sql.lines().nth(line - 1).unwrap_or("");
        msg.push_str(&format!(
            " at line {line}, column {col} (character {}):\n    {text}\n    {}^",
            pos + 1,
            " ".repeat(col - 1)
        ));
    }
    if let Some(hint) = db.hint() {
        msg.push_str(&format!("\n    hint: {hint}"));
    }
    WarehouseError::sql(msg, Some(db.code().code()))
}

/// Starts the read-only transaction every statement of model SQL runs in. It is rolled back
/// at the end, which also undoes any `set_config` the model made.
fn read_only(client: &mut Client) -> Result<Transaction<'_>, WarehouseError> {
    client.build_transaction().read_only(true).start().map_err(|e| db_err(&e))
}

fn end(tx: Transaction<'_>) -> Result<(), WarehouseError> {
    tx.rollback().map_err(|e| db_err(&e))
}

impl PostgresWarehouse {
    /// Connects; bad credentials, an unreachable host or a bad URL give an error naming the target.
    pub fn connect(opts: &PgOptions) -> Result<Self, WarehouseError> {
        let mut url = opts.url.clone();
        let mut mode = opts.tls;
        for verify in ["sslmode=verify-full", "sslmode=verify-ca"] {
            if url.contains(verify) {
                url = url.replace(verify, "sslmode=require");
                mode.get_or_insert(TlsMode::VerifyFull);
            }
        }
        let mut config: Config = url.parse().map_err(|e: postgres::Error| WarehouseError::Connect {
            target: "postgres source".into(),
            message: format!("invalid connection URL: {e}"),
        })?;
        let target = describe(&config);
        let connect = |message: String| WarehouseError::Connect { target: target.clone(), message };
        let mode = mode.unwrap_or(match config.get_ssl_mode() {
            postgres::config::SslMode::Disable => TlsMode::Disable,
            postgres::config::SslMode::Require => TlsMode::Require,
            _ => TlsMode::Prefer,
        });
        config.ssl_mode(match mode {
            TlsMode::Disable => postgres::config::SslMode::Disable,
            TlsMode::Prefer => postgres::config::SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyFull => postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("sluice");
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            tls::client_config(mode, opts.ca_file.as_deref()).map_err(&connect)?,
        );
        let mut client = config.connect(tls.clone()).map_err(|e| connect(error_text(&e)))?;
        let redshift = opts.dialect == Dialect::Redshift;
        // Redshift has no work_mem (its memory is managed by workload management queues)
        let mut setup = if redshift { String::new() } else { "SET work_mem = '64MB';".to_string() };
        if let Some(t) = opts.statement_timeout {
            setup.push_str(&format!("SET statement_timeout = {};", t.as_millis()));
        }
        client.batch_execute(&setup).map_err(|e| connect(error_text(&e)))?;
        let mut warnings = Vec::new();
        match role::privileged(&mut client, opts.dialect)
            .map_err(|e| connect(format!("cannot check the role's privileges: {}", error_text(&e))))?
        {
            Some((user, why)) if !opts.allow_privileged_role => return Err(connect(role::refusal(&user, &why))),
            Some((user, why)) => warnings.push(role::warning(&user, &why)),
            None => {}
        }
        // servers before 14 and Redshift refuse it: there only cancel requests and timeouts
        // stop the query of a client that went away
        let check = format!("SET client_connection_check_interval = {}", CLIENT_CHECK_INTERVAL.as_millis());
        if let Err(e) = if redshift { Ok(()) } else { client.batch_execute(&check) } {
            if e.as_db_error().is_none() {
                return Err(connect(error_text(&e)));
            }
        }
        let preview_timeout = match (opts.preview_timeout.unwrap_or(DEFAULT_PREVIEW_TIMEOUT), opts.statement_timeout) {
            (p, Some(s)) if !s.is_zero() => p.min(s),
            (p, _) => p,
        };
        let canceller = Canceller::new();
        let mut w = Self {
            client,
            target,
            described: None,
            tls,
            canceller: canceller.clone(),
            preview_timeout,
            warnings,
            dialect: opts.dialect,
        };
        w.attach_canceller(&canceller);
        Ok(w)
    }

    /// `user@host:port/db`.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn describe_model(&mut self, sql: &str) -> Result<Vec<(String, Conv)>, WarehouseError> {
        if let Some((known, cols)) = &self.described {
            if known == sql {
                return Ok(cols.clone());
            }
        }
        let _busy = self.canceller.busy()?;
        let mut tx = read_only(&mut self.client)?;
        let cols = prepare_model(&mut tx, sql).map_err(|e| self.canceller.explain(e))?;
        end(tx)?;
        self.described = Some((sql.to_string(), cols.clone()));
        Ok(cols)
    }
    /// The select list that reads every column as `conv` says.
    fn select_list(&self, cols: &[(String, Conv)]) -> String {
        cols.iter()
            .map(|(name, c)| match c {
                Conv::Numeric | Conv::AsText => {
                    format!("(sluice_model.{})::{}", quote_ident(name), self.dialect.text())
                }
                _ => format!("sluice_model.{}", quote_ident(name)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn prepare_model(client: &mut impl GenericClient, sql: &str) -> Result<Vec<(String, Conv)>, WarehouseError> {
    let stmt = client.prepare(model_sql(sql)).map_err(|e| sql_error(e, model_sql(sql)))?;
    let cols: Vec<(String, Conv)> = stmt.columns().iter().map(|c| (c.name().to_string(), conv(c.type_()))).collect();
    if cols.is_empty() {
        return Err(WarehouseError::NoColumns);
    }
    check_columns(&cols.iter().map(|c| c.0.clone()).collect::<Vec<_>>())?;
    Ok(cols)
}

fn cell(row: &postgres::Row, i: usize, c: Conv) -> Result<Value, postgres::Error> {
    Ok(match c {
        Conv::Bool => row.try_get::<_, Option<bool>>(i)?.map(Value::Bool).unwrap_or(Value::Null),
        Conv::I16 => row.try_get::<_, Option<i16>>(i)?.map(Value::from).unwrap_or(Value::Null),
        Conv::I32 => row.try_get::<_, Option<i32>>(i)?.map(Value::from).unwrap_or(Value::Null),
        Conv::I64 => row.try_get::<_, Option<i64>>(i)?.map(Value::from).unwrap_or(Value::Null),
        Conv::F32 => row.try_get::<_, Option<f32>>(i)?.map(|f| Value::from(f as f64)).unwrap_or(Value::Null),
        Conv::F64 => row.try_get::<_, Option<f64>>(i)?.map(Value::from).unwrap_or(Value::Null),
        Conv::Text | Conv::AsText => row.try_get::<_, Option<String>>(i)?.map(Value::String).unwrap_or(Value::Null),
        Conv::Json => row.try_get::<_, Option<Value>>(i)?.unwrap_or(Value::Null),
        Conv::Numeric => match row.try_get::<_, Option<String>>(i)? {
            None => Value::Null,
            Some(s) => s.parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::String(s)),
        },
    })
}

/// A column's bytes as the server sent them (binary format), whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> postgres::types::FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Decodes the raw rows of one scan, column by column, as [`cell`] does.
struct PgDecoder {
    convs: Vec<Conv>,
    types: Vec<Type>,
}

fn from_raw<'a, T: postgres::types::FromSql<'a>>(t: &Type, b: &'a [u8]) -> Option<T> {
    T::from_sql(t, b).ok()
}

impl crate::RawDecoder for PgDecoder {
    fn decode(&self, mut bytes: &[u8]) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.convs.len());
        for (c, t) in self.convs.iter().zip(&self.types) {
            let Some((len, rest)) = bytes.split_first_chunk::<4>() else { break };
            let len = u32::from_le_bytes(*len);
            bytes = rest;
            if len == u32::MAX {
                out.push(Value::Null);
                continue;
            }
            let (b, rest) = bytes.split_at((len as usize).min(bytes.len()));
            bytes = rest;
            out.push(
                match c {
                    Conv::Bool => from_raw::<bool>(t, b).map(Value::Bool),
                    Conv::I16 => from_raw::<i16>(t, b).map(Value::from),
                    Conv::I32 => from_raw::<i32>(t, b).map(Value::from),
                    Conv::I64 => from_raw::<i64>(t, b).map(Value::from),
                    Conv::F32 => from_raw::<f32>(t, b).map(|f| Value::from(f as f64)),
                    Conv::F64 => from_raw::<f64>(t, b).map(Value::from),
                    Conv::Text | Conv::AsText => from_raw::<String>(t, b).map(Value::String),
                    Conv::Json => from_raw::<Value>(t, b),
                    Conv::Numeric => from_raw::<String>(t, b)
                        .map(|s| s.parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::String(s))),
                }
                .unwrap_or(Value::Null),
            );
        }
        out
    }
}

impl Warehouse for PostgresWarehouse {
    fn attach_canceller(&mut self, canceller: &Canceller) {
        let token = self.client.cancel_token();
        let tls = self.tls.clone();
        // a failed cancel request (server gone) leaves nothing to stop
        canceller.install(Box::new(move || {
            let _ = token.cancel_query(tls.clone());
        }));
        self.canceller = canceller.clone();
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn raw_rows(&self) -> bool {
        true
    }

    fn diff(&mut self) -> Option<&mut dyn crate::diff::WarehouseDiff> {
        // the row hash needs hash_record_extended or md5 over a row, which Redshift lacks
        (self.dialect == Dialect::Postgres).then_some(self as &mut dyn crate::diff::WarehouseDiff)
    }

    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError> {
        Ok(self.describe_model(sql)?.into_iter().map(|c| c.0).collect())
    }

    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError> {
        let cols = self.describe_model(sql)?;
        let q = format!("SELECT {} FROM ({}) AS sluice_model LIMIT {limit}", self.select_list(&cols), model_sql(sql));
        let _busy = self.canceller.busy()?;
        let mut tx = read_only(&mut self.client)?;
        // the source's own timeout, if shorter, is already in preview_timeout
        tx.batch_execute(&format!("SET LOCAL statement_timeout = {}", self.preview_timeout.as_millis()))
            .map_err(|e| db_err(&e))?;
        let rows = tx.query(&q, &[]).map_err(|e| self.canceller.explain(sql_error(e, &q)))?;
        end(tx)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let vals: Result<Vec<Value>, _> = cols.iter().enumerate().map(|(i, (_, c))| cell(r, i, *c)).collect();
            out.push(vals.map_err(|e| db_err(&e))?);
        }
        Ok(Preview { columns: cols.into_iter().map(|c| c.0).collect(), rows: out })
    }

    fn id_order(&mut self, sql: &str, id_column: &str) -> Result<IdOrder, WarehouseError> {
        let cols = self.describe_model(sql)?;
        Ok(match cols.iter().find(|c| c.0 == id_column).map(|c| c.1) {
            Some(Conv::I16 | Conv::I32 | Conv::I64) => IdOrder::Integer,
            _ => IdOrder::Text,
        })
    }

    fn scan(
        &mut self,
        sql: &str,
        id_column: &str,
        order: IdOrder,
        needs: &crate::ScanNeeds,
        sink: &mut dyn FnMut(Row) -> Result<(), String>,
    ) -> Result<(), WarehouseError> {
        let cols = self.describe_model(sql)?;
        let typed: Vec<usize> = match &needs.typed {
            Some(t) => t.iter().copied().filter(|i| *i < cols.len()).collect(),
            None => (0..cols.len()).collect(),
        };
        let col = format!("sluice_model.{}", quote_ident(id_column));
        let id = format!("({col})::{}", self.dialect.text());
        // integers sort natively (an index on the id serves it); other ids sort as bytes
        let order_by = match (order, self.dialect) {
            // ascending with NULLs last: the order a plain b-tree index on the id serves
            (IdOrder::Integer, _) => col.clone(),
            (IdOrder::Text, Dialect::Postgres) => format!("{id} COLLATE \"C\" NULLS FIRST"),
            // Redshift has no locales: its varchar compares bytes (a CASE_INSENSITIVE database
            // would not, and the order guard then stops the scan)
            (IdOrder::Text, Dialect::Redshift) => format!("{id} NULLS FIRST"),
        };
        let only: Vec<String> = needs.only_ids.clone().unwrap_or_default();
        let filter = match (needs.only_ids.is_some(), order) {
            (false, _) => String::new(),
            // compared as integers, so an index on the id finds each row (no text form of every id)
            (true, IdOrder::Integer) => format!(" WHERE {col} IN (SELECT unnest($1::bigint[]))"),
            (true, IdOrder::Text) => format!(" WHERE {id} IN (SELECT unnest($1::text[]))"),
        };
        let q = format!(
            "SELECT {id}, {} FROM ({}) AS sluice_model{filter} ORDER BY {order_by}",
            self.select_list(&cols),
            model_sql(sql)
        );
        // (an id that is not an integer is not in an integer model)
        let only_ints: Vec<i64> = match order {
            IdOrder::Integer => only.iter().filter_map(|id| id.parse().ok()).collect(),
            IdOrder::Text => Vec::new(),
        };
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = match (needs.only_ids.is_some(), order) {
            (false, _) => vec![],
            (true, IdOrder::Integer) => vec![&only_ints],
            (true, IdOrder::Text) => vec![&only],
        };
        let _busy = self.canceller.busy()?;
        let mut tx = read_only(&mut self.client)?;
        let explain = |e: WarehouseError| self.canceller.explain(e);
        let stmt = tx.prepare(&q).map_err(|e| explain(sql_error(e, &q)))?;
        let decoder: Option<std::sync::Arc<dyn crate::RawDecoder>> = if needs.raw {
            let types = stmt.columns().iter().skip(1).map(|c| c.type_().clone()).collect();
            Some(std::sync::Arc::new(PgDecoder { convs: cols.iter().map(|c| c.1).collect(), types }))
        } else {
            None
        };
        let mut rows = tx.query_raw(&stmt, params).map_err(|e| explain(sql_error(e, &q)))?;
        let mut guard = OrderGuard::new(order);
        let read = |e: postgres::Error| explain(db_err(&e));
        while let Some(r) = rows.next().map_err(read)? {
            let id: Option<String> = r.try_get(0).map_err(read)?;
            guard.check(id.as_deref())?;
            let mut values = vec![Value::Null; cols.len()];
            for i in &typed {
                values[*i] = cell(&r, i + 1, cols[*i].1).map_err(read)?;
            }
            let raw = match &decoder {
                None => None,
                Some(d) => {
                    let mut bytes = Vec::with_capacity(160);
                    for i in 0..cols.len() {
                        match r.try_get::<_, Option<Raw>>(i + 1).map_err(read)? {
                            None => bytes.extend_from_slice(&u32::MAX.to_le_bytes()),
                            Some(Raw(b)) => {
                                bytes.extend_from_slice(&(b.len() as u32).to_le_bytes());
                                bytes.extend_from_slice(b);
                            }
                        }
                    }
                    Some(crate::RawRow { bytes, decoder: d.clone() })
                }
            };
            sink(Row { id, values, raw }).map_err(WarehouseError::Aborted)?;
        }
        drop(rows);
        end(tx)
    }
}

#[cfg(test)]
mod read_only_tests;
#[cfg(test)]
mod redshift_tests;
#[cfg(test)]
mod tests;
