//! Warehouse sources: run a model's SQL and stream its rows, sorted by the record id's
//! string form in byte order, so the engine can merge them with a checkpoint without
//! holding either in memory.

use serde_json::Value;

pub mod postgres;
pub mod sqlite;

/// What went wrong talking to a warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The warehouse cannot be reached or opened.
    #[error("cannot connect to warehouse {target}: {message}")]
    Connect {
        /// The file or host at fault.
        target: String,
        /// The driver's message.
        message: String,
    },
    /// The model's SQL was refused.
    #[error("model SQL failed: {0}")]
    Sql(String),
    /// The model does not have the shape the workspace expects.
    #[error("{0}")]
    Model(String),
    /// Rows did not arrive in the promised order (would make the diff unsafe).
    #[error("rows arrived out of id order ({previous:?} then {current:?}); refusing to diff")]
    Order {
        /// The id before.
        previous: String,
        /// The id after.
        current: String,
    },
    /// The consumer of the rows stopped the scan.
    #[error("{0}")]
    Aborted(String),
}

/// One row of a model: the id as a string (`None` when NULL) and every column's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The unique id in its string form (integers in decimal, text as is); `None` for NULL.
    pub id: Option<String>,
    /// The model's columns, in order.
    pub values: Vec<Value>,
}

/// The first rows of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Up to the requested number of rows.
    pub rows: Vec<Vec<Value>>,
}

/// A warehouse a model runs on.
pub trait Warehouse {
    /// The columns the model returns, without reading its rows.
    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError>;
    /// The model's columns and first `limit` rows.
    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError>;
    /// Streams every row, sorted by `id_column`'s string form in byte order (NULL ids first).
    /// `sink` returning an error stops the scan with [`WarehouseError::Aborted`].
    fn scan(
        &mut self,
        sql: &str,
        id_column: &str,
        sink: &mut dyn FnMut(Row) -> Result<(), String>,
    ) -> Result<(), WarehouseError>;
}

/// Strips what cannot stand inside a subquery: trailing semicolons and whitespace.
pub fn model_sql(sql: &str) -> &str {
    sql.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// Quotes an SQL identifier (ANSI double quotes; both SQLite and PostgreSQL accept them).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks the model's column names: none twice.
pub fn check_columns(columns: &[String]) -> Result<(), WarehouseError> {
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(WarehouseError::Model(format!(
                "the model returns column `{c}` twice; give each column a distinct name (with AS)"
            )));
        }
    }
    Ok(())
}

/// Resolves a column name as SPEC §3 says: exact match, else case-insensitive when unambiguous.
pub fn resolve_column(columns: &[String], name: &str) -> Result<usize, String> {
    if let Some(i) = columns.iter().position(|c| c == name) {
        return Ok(i);
    }
    let hits: Vec<usize> =
        columns.iter().enumerate().filter(|(_, c)| c.eq_ignore_ascii_case(name)).map(|(i, _)| i).collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!("unknown column `{name}` (the model has: {})", columns.join(", "))),
        _ => Err(format!("column `{name}` is ambiguous: several columns differ from it only in case")),
    }
}

/// Orders rows come in: ensures byte order of ids, which the merge with the checkpoint relies on.
#[derive(Default)]
pub struct OrderGuard {
    last: Option<String>,
}

impl OrderGuard {
    /// Accepts `id` if it is not smaller than the previous one.
    pub fn check(&mut self, id: Option<&str>) -> Result<(), WarehouseError> {
        let Some(id) = id else {
            return if self.last.is_some() {
                Err(WarehouseError::Order { previous: self.last.clone().unwrap_or_default(), current: "NULL".into() })
            } else {
                Ok(())
            };
        };
        if let Some(prev) = &self.last {
            if prev.as_bytes() > id.as_bytes() {
                return Err(WarehouseError::Order { previous: prev.clone(), current: id.to_string() });
            }
            if prev == id {
                return Ok(());
            }
        }
        self.last = Some(id.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_columns_like_postgres_folds() {
        let cols: Vec<String> = ["USERID", "email", "Ads", "ads2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(resolve_column(&cols, "USERID"), Ok(0));
        assert_eq!(resolve_column(&cols, "userid"), Ok(0));
        assert!(resolve_column(&cols, "nope").unwrap_err().contains("unknown column `nope`"));
        let amb: Vec<String> = ["a", "A"].iter().map(|s| s.to_string()).collect();
        assert_eq!(resolve_column(&amb, "A"), Ok(1));
        assert!(resolve_column(&amb, "b").is_err());
        let amb: Vec<String> = ["ab", "AB"].iter().map(|s| s.to_string()).collect();
        assert!(resolve_column(&amb, "Ab").unwrap_err().contains("ambiguous"));
    }

    #[test]
    fn order_guard() {
        let mut g = OrderGuard::default();
        g.check(None).unwrap();
        g.check(Some("1")).unwrap();
        g.check(Some("1")).unwrap();
        g.check(Some("10")).unwrap();
        g.check(Some("2")).unwrap();
        assert!(g.check(Some("11")).is_err());
        assert!(g.check(None).is_err());
    }

    #[test]
    fn strips_trailing_semicolons_and_quotes() {
        assert_eq!(model_sql(" select 1 ;\n"), "select 1");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
