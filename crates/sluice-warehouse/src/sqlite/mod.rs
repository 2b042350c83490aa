//! The embedded default warehouse: an SQLite file, opened read-only (`SQLITE_OPEN_READ_ONLY`,
//! and `PRAGMA query_only` besides), so model SQL cannot write to it.

use crate::{
    check_columns, model_sql, quote_ident, Canceller, IdOrder, OrderGuard, Preview, Row, Warehouse, WarehouseError,
};
use rusqlite::{types::ValueRef, Connection, OpenFlags};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An SQLite warehouse.
pub struct SqliteWarehouse {
    path: PathBuf,
    conn: Connection,
    canceller: Canceller,
    scan_deadline: std::time::Duration,
}

/// Longest a scan runs by default before it is interrupted (a recursive CTE that never ends).
pub const DEFAULT_SCAN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The largest string or blob a model may compute or read (SQLite's own default is 1 GB).
pub const MAX_VALUE_BYTES: i32 = 16 * 1024 * 1024;

impl SqliteWarehouse {
    /// Opens `path` read-only; a missing file is an error naming it.
    pub fn open(path: &Path) -> Result<Self, WarehouseError> {
        let connect = |message: String| WarehouseError::Connect { target: path.display().to_string(), message };
        if !path.is_file() {
            return Err(connect("no such file".into()));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| connect(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| connect(e.to_string()))?;
        conn.pragma_update(None, "query_only", true).map_err(|e| connect(e.to_string()))?;
        // no value a model computes may outgrow this: a 1 GB `printf` fails instead of filling memory
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
        let canceller = Canceller::new();
        let mut w =
            Self { path: path.to_path_buf(), conn, canceller: canceller.clone(), scan_deadline: DEFAULT_SCAN_DEADLINE };
        w.attach_canceller(&canceller);
        Ok(w)
    }

    /// Interrupts a sync's scan after `deadline` instead of [`DEFAULT_SCAN_DEADLINE`]
    /// (the source's `statement_timeout_secs`).
    pub fn with_scan_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.scan_deadline = deadline;
        self
    }

    /// The file this warehouse reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sql_err(e: rusqlite::Error) -> WarehouseError {
    let retryable =
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    WarehouseError::Sql { message: e.to_string(), sqlstate: None, retryable }
}

/// Converts one SQLite cell to JSON.
pub fn cell(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

impl Warehouse for SqliteWarehouse {
    fn scan_deadline(&self) -> Option<std::time::Duration> {
        Some(self.scan_deadline)
    }

    fn attach_canceller(&mut self, canceller: &Canceller) {
        let handle = self.conn.get_interrupt_handle();
        canceller.install(Box::new(move || handle.interrupt()));
        self.canceller = canceller.clone();
    }

    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError> {
        let _busy = self.canceller.busy()?;
        let stmt = self.conn.prepare(model_sql(sql)).map_err(sql_err)?;
        let cols: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        if cols.is_empty() {
            return Err(WarehouseError::NoColumns);
        }
        check_columns(&cols)?;
        Ok(cols)
    }

    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError> {
        let columns = self.columns(sql)?;
        let q = format!("SELECT * FROM ({}) AS sluice_model LIMIT {limit}", model_sql(sql));
        let _busy = self.canceller.busy()?;
        let err = |e| self.canceller.explain(sql_err(e));
        let mut stmt = self.conn.prepare(&q).map_err(err)?;
        let n = columns.len();
        let mut rows = stmt.query([]).map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            out.push((0..n).map(|i| r.get_ref(i).map(cell).unwrap_or(Value::Null)).collect());
        }
        Ok(Preview { columns, rows: out })
    }

    fn scan(
        &mut self,
        sql: &str,
        id_column: &str,
        _order: IdOrder,
        needs: &crate::ScanNeeds,
        sink: &mut dyn FnMut(Row) -> Result<(), String>,
    ) -> Result<(), WarehouseError> {
        if needs.only_ids.is_some() {
            return Err(WarehouseError::Aborted("SQLite sources have no warehouse-side diff".into()));
        }
        let n = self.columns(sql)?.len();
        let q = format!(
            "SELECT CAST(sluice_model.{id} AS TEXT), sluice_model.* FROM ({sql}) AS sluice_model \
             ORDER BY CAST(sluice_model.{id} AS TEXT)",
            id = quote_ident(id_column),
            sql = model_sql(sql)
        );
        let _busy = self.canceller.busy()?;
        let err = |e| self.canceller.explain(sql_err(e));
        let mut stmt = self.conn.prepare(&q).map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut guard = OrderGuard::new(IdOrder::Text);
        while let Some(r) = rows.next().map_err(err)? {
            let id = match r.get_ref(0).map_err(sql_err)? {
                ValueRef::Null => None,
                ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                other => Some(cell(other).to_string()),
            };
            guard.check(id.as_deref())?;
            let values = (1..=n).map(|i| r.get_ref(i).map(cell).unwrap_or(Value::Null)).collect();
            sink(Row { id, values, raw: None }).map_err(WarehouseError::Aborted)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
