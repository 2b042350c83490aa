//! Snowflake as a warehouse, over the connector protocol (client.rs), with password or key-pair
//! (JWT, auth.rs) login. Results stream chunk by chunk: the first rows come inline, each further
//! chunk is fetched, decoded (rows.rs: JSON or Arrow) and handed on before the next one.
//!
//! Read-only: a model only ever runs as a subquery, `SELECT … FROM (\n<model>\n) AS sluice_model`,
//! one statement per request (`MULTI_STATEMENT_COUNT = 1`). A subquery cannot hold `INSERT`,
//! `CREATE`, `CALL` or any other statement, so a model that is not a query fails to compile
//! before anything runs; the statement type the server reports for the describe (compiled, not
//! run) is checked too. Snowflake's transactions cannot stop writes (DDL commits on its own), so
//! no transaction is used; give Sluice a role with only SELECT (README).

mod auth;
mod client;
mod diff;
mod rows;

pub use auth::{jwt_account, KeyPair};
pub use rows::Column;

use crate::{
    check_columns, model_sql, quote_ident, Canceller, IdOrder, OrderGuard, Preview, Row, Warehouse, WarehouseError,
};
use client::{Answer, Auth, Login, Session};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How to reach a Snowflake account.
#[derive(Debug, Clone, Default)]
pub struct SnowflakeOptions {
    /// Base URL (`https://{account}.snowflakecomputing.com` by default).
    pub endpoint: String,
    /// The account identifier.
    pub account: String,
    /// The login name.
    pub user: String,
    /// The password, for password login.
    pub password: Option<String>,
    /// The PEM of the user's RSA private key, for key-pair login.
    pub private_key_pem: Option<String>,
    /// Virtual warehouse, database, schema and role of the session.
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub role: Option<String>,
    /// Server-side limit per statement (`STATEMENT_TIMEOUT_IN_SECONDS`).
    pub statement_timeout: Option<Duration>,
    /// Server-side limit of a preview; `None`: 60 s. A shorter `statement_timeout` wins.
    pub preview_timeout: Option<Duration>,
}

/// How long Sluice waits for a statement without a timeout of its own.
const DEFAULT_WAIT: Duration = Duration::from_secs(86_400);

/// A logged-in Snowflake warehouse.
pub struct SnowflakeWarehouse {
    session: Session,
    canceller: Canceller,
    described: Option<(String, Vec<Column>)>,
    statement_timeout: Option<Duration>,
    preview_timeout: Duration,
}

impl std::fmt::Debug for SnowflakeWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnowflakeWarehouse({})", self.session.target)
    }
}

/// The model as a subquery, on lines of its own so the server's line numbers stay the model's
/// (see [`model_lines`]).
fn wrapped(select: &str, sql: &str, rest: &str) -> String {
    format!("SELECT {select} FROM (\n{}\n) AS sluice_model{rest}", model_sql(sql))
}

/// The server's message with `line N` counted in the model's own SQL (it stands one line down
/// in the statement Sluice sends).
fn model_lines(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let mut out = String::with_capacity(message.len());
    let mut at = 0;
    while let Some(i) = lower[at..].find("line ").map(|i| at + i + 5) {
        out.push_str(&message[at..i]);
        let digits = message[i..].bytes().take_while(u8::is_ascii_digit).count();
        let after = &lower[i + digits..];
        match message[i..i + digits].parse::<u64>() {
            Ok(n) if n > 1 && (after.starts_with(" at position") || after.starts_with(", col")) => {
                out.push_str(&(n - 1).to_string())
            }
            _ => out.push_str(&message[i..i + digits]),
        }
        at = i + digits;
    }
    out.push_str(&message[at..]);
    out
}

fn in_model(e: WarehouseError) -> WarehouseError {
    match e {
        WarehouseError::Sql { message, sqlstate, retryable } => {
            WarehouseError::Sql { message: model_lines(&message), sqlstate, retryable }
        }
        e => e,
    }
}

/// Opens the warehouse of a `kind: snowflake` source; `private_key_file` resolves from `base_dir`.
pub fn open(
    s: &sluice_core::SnowflakeSource,
    base_dir: &std::path::Path,
) -> Result<SnowflakeWarehouse, WarehouseError> {
    let private_key_pem = match &s.private_key_file {
        None => None,
        Some(f) => {
            let path = base_dir.join(f);
            Some(std::fs::read_to_string(&path).map_err(|e| WarehouseError::Connect {
                target: format!("snowflake account {}", s.account),
                message: format!("private_key_file `{}`: {e}", path.display()),
            })?)
        }
    };
    SnowflakeWarehouse::connect(&SnowflakeOptions {
        endpoint: s.endpoint.clone().unwrap_or_else(|| format!("https://{}.snowflakecomputing.com", s.account)),
        account: s.account.clone(),
        user: s.user.clone(),
        password: s.password.as_ref().map(|p| p.expose().to_string()),
        private_key_pem,
        warehouse: s.warehouse.clone(),
        database: s.database.clone(),
        schema: s.schema.clone(),
        role: s.role.clone(),
        statement_timeout: s.statement_timeout_secs.map(Duration::from_secs),
        preview_timeout: None,
    })
}

impl SnowflakeWarehouse {
    /// Logs in; bad credentials are the server's message, naming the account and user.
    pub fn connect(opts: &SnowflakeOptions) -> Result<Self, WarehouseError> {
        let login = Login {
            account: &opts.account,
            user: &opts.user,
            warehouse: opts.warehouse.as_deref(),
            database: opts.database.as_deref(),
            schema: opts.schema.as_deref(),
            role: opts.role.as_deref(),
            statement_timeout: opts.statement_timeout.map(|t| t.as_secs().max(1)),
        };
        let auth = match (&opts.private_key_pem, &opts.password) {
            (Some(pem), _) => {
                let refuse = |message: String| WarehouseError::Connect {
                    target: format!("snowflake account {}", opts.account),
                    message: format!("private_key_file: {message}"),
                };
                let key = KeyPair::from_pem(pem).map_err(refuse)?;
                Auth::Jwt(key.jwt(&opts.account, &opts.user).map_err(refuse)?)
            }
            (None, Some(p)) => Auth::Password(p.clone()),
            (None, None) => {
                return Err(WarehouseError::Connect {
                    target: format!("snowflake account {}", opts.account),
                    message: "neither a password nor a private key was given".into(),
                })
            }
        };
        let session = Session::login(&opts.endpoint, &login, auth)?;
        let preview_timeout = match (opts.preview_timeout.unwrap_or(Duration::from_secs(60)), opts.statement_timeout) {
            (p, Some(s)) if !s.is_zero() => p.min(s),
            (p, _) => p,
        };
        let canceller = Canceller::new();
        let mut w = Self {
            session,
            canceller: canceller.clone(),
            described: None,
            statement_timeout: opts.statement_timeout,
            preview_timeout,
        };
        w.attach_canceller(&canceller);
        Ok(w)
    }

    /// Runs `sql` (Sluice's own wrapper around the model) as one statement, which must be a query.
    fn run(&mut self, sql: &str, describe_only: bool, timeout: Option<Duration>) -> Result<Answer, WarehouseError> {
        let answer = self.statement(sql, describe_only, timeout)?;
        match answer.statement_type {
            Some(t) if t != client::SELECT => Err(WarehouseError::sql(
                format!("the model must be a query (the server reports statement type {t:#x}, not SELECT)"),
                None,
            )),
            _ => Ok(answer),
        }
    }

    /// Runs one statement of any type: only Sluice's own statements on its snapshot schema
    /// (diff.rs) come here, never a model's SQL outside the checked subquery.
    fn statement(
        &mut self,
        sql: &str,
        describe_only: bool,
        timeout: Option<Duration>,
    ) -> Result<Answer, WarehouseError> {
        let mut params = json!({"MULTI_STATEMENT_COUNT": 1});
        if let Some(t) = timeout {
            params["STATEMENT_TIMEOUT_IN_SECONDS"] = json!(t.as_secs().max(1));
        }
        let wait = timeout.or(self.statement_timeout).unwrap_or(DEFAULT_WAIT) + Duration::from_secs(60);
        let canceller = self.canceller.clone();
        let _busy = canceller.busy()?;
        let answer = self
            .session
            .query(sql, describe_only, params, Instant::now() + wait, &|| canceller.is_cancelled())
            .map_err(|e| canceller.explain(in_model(e)))?;
        Ok(answer)
    }

    fn describe_model(&mut self, sql: &str) -> Result<Vec<Column>, WarehouseError> {
        if let Some((known, cols)) = &self.described {
            if known == sql {
                return Ok(cols.clone());
            }
        }
        let answer = self.run(&wrapped("*", sql, ""), true, Some(self.preview_timeout))?;
        if answer.columns.is_empty() {
            return Err(WarehouseError::NoColumns);
        }
        check_columns(&answer.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>())?;
        self.described = Some((sql.to_string(), answer.columns.clone()));
        Ok(answer.columns)
    }

    /// Every row of `answer`, chunk by chunk (one chunk in memory at a time).
    fn each_row(
        &mut self,
        answer: Answer,
        sink: &mut dyn FnMut(Vec<Option<String>>) -> Result<bool, WarehouseError>,
    ) -> Result<(), WarehouseError> {
        let mut answer = answer;
        let first = std::mem::take(&mut answer.first);
        for row in first {
            if !sink(row)? {
                return Ok(());
            }
        }
        for i in 0..answer.chunks.len() {
            let _busy = self.canceller.busy()?;
            let rows = self.session.chunk(&answer, i).map_err(|e| self.canceller.explain(e))?;
            tracing::debug!(chunk = i + 1, of = answer.chunks.len(), rows = rows.len(), "snowflake chunk read");
            for row in rows {
                if !sink(row)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl Drop for SnowflakeWarehouse {
    fn drop(&mut self) {
        self.session.close();
    }
}

/// Snowflake's system roles that can create, change or grant: a model cannot write through
/// Sluice's subquery, but a role that only reads is the safe default.
const ADMIN_ROLES: [&str; 5] = ["ACCOUNTADMIN", "ORGADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN"];

impl Warehouse for SnowflakeWarehouse {
    fn attach_canceller(&mut self, canceller: &Canceller) {
        canceller.install(Box::new(self.session.aborter()));
        self.canceller = canceller.clone();
    }

    fn warnings(&self) -> Vec<String> {
        match &self.session.role {
            Some(r) if ADMIN_ROLES.contains(&r.to_ascii_uppercase().as_str()) => vec![format!(
                "role `{r}` is a Snowflake administration role; give Sluice a role with only USAGE and SELECT \
                 (README, \"Snowflake\")"
            )],
            _ => Vec::new(),
        }
    }

    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError> {
        Ok(self.describe_model(sql)?.into_iter().map(|c| c.name).collect())
    }

    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError> {
        let cols = self.describe_model(sql)?;
        let answer = self.run(&wrapped("*", sql, &format!(" LIMIT {limit}")), false, Some(self.preview_timeout))?;
        if answer.columns.len() != cols.len() {
            return Err(WarehouseError::sql("the preview's columns differ from the model's description", None));
        }
        let mut rows = Vec::new();
        self.each_row(answer, &mut |r| {
            rows.push(cols.iter().zip(&r).map(|(c, v)| rows::typed(c, v.as_deref())).collect());
            Ok(rows.len() < limit)
        })?;
        Ok(Preview { columns: cols.into_iter().map(|c| c.name).collect(), rows })
    }

    fn id_order(&mut self, sql: &str, id_column: &str) -> Result<IdOrder, WarehouseError> {
        let cols = self.describe_model(sql)?;
        Ok(match cols.iter().find(|c| c.name == id_column) {
            Some(c) if c.is_int64() => IdOrder::Integer,
            _ => IdOrder::Text,
        })
    }

    fn diff(&mut self) -> Option<&mut dyn crate::diff::WarehouseDiff> {
        Some(self)
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
        let id = format!("sluice_model.{}", quote_ident(id_column));
        // integers sort as numbers; any other id by the bytes of its text (whatever the
        // column's collation), the order the engine's merge needs
        let order_by = match order {
            IdOrder::Integer => id.clone(),
            IdOrder::Text => format!("TO_BINARY(TO_VARCHAR({id}), 'UTF-8')"),
        };
        // a sparse pass fetches only the ids the diff named, in batches taken in scan order
        // (so the batches' rows follow each other in order too)
        let filters: Vec<String> = match &needs.only_ids {
            None => vec![String::new()],
            Some(ids) => diff::id_batches(ids, order)
                .into_iter()
                .map(|list| format!(" WHERE TO_VARCHAR({id}) IN ({list})"))
                .collect(),
        };
        let mut guard = OrderGuard::new(order);
        let start = Instant::now();
        let mut n = 0u64;
        for filter in filters {
            let q =
                wrapped(&format!("TO_VARCHAR({id}), sluice_model.*"), sql, &format!("{filter} ORDER BY {order_by}"));
            let answer = self.run(&q, false, self.statement_timeout)?;
            if answer.columns.len() != cols.len() + 1 {
                return Err(WarehouseError::sql("the scan's columns differ from the model's description", None));
            }
            self.each_row(answer, &mut |mut r| {
                let values: Vec<Value> = cols.iter().zip(&r[1..]).map(|(c, v)| rows::typed(c, v.as_deref())).collect();
                let id = r.swap_remove(0);
                guard.check(id.as_deref())?;
                n += 1;
                sink(Row { id, values, raw: None }).map_err(WarehouseError::Aborted)?;
                Ok(true)
            })?;
        }
        tracing::debug!(rows = n, elapsed_ms = start.elapsed().as_millis() as u64, "snowflake scan done");
        Ok(())
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn line_numbers_are_the_models() {
        assert_eq!(
            model_lines("syntax error line 3 at position 7 unexpected 'x'.\nline 1 at position 2"),
            "syntax error line 2 at position 7 unexpected 'x'.\nline 1 at position 2"
        );
        assert_eq!(model_lines("no line here; line x"), "no line here; line x");
        assert_eq!(model_lines("Expecting ). Line 2, Col: 7."), "Expecting ). Line 1, Col: 7.");
        assert_eq!(wrapped("*", "select 1;", " LIMIT 1"), "SELECT * FROM (\nselect 1\n) AS sluice_model LIMIT 1");
    }
}

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod tests;
