//! Warehouse sources: run a model's SQL and stream its rows, sorted by the record id's
//! string form in byte order, so the engine can merge them with a checkpoint without
//! holding either in memory.

use serde_json::Value;

pub mod bigquery;
mod cancel;
pub mod databricks;
pub mod diff;
mod error;
mod open;
pub mod postgres;
mod rest;
mod rest_diff;
#[cfg(test)]
mod rest_diff_tests;
pub mod snowflake;
pub mod sqlite;

pub use cancel::Canceller;
pub use error::WarehouseError;
pub use open::open;

/// The order a scan returns rows in; a mapping's checkpoint is kept in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrder {
    /// Ids compared as strings, byte by byte (any id type).
    Text,
    /// Ids are 64-bit integers, compared as numbers (lets the warehouse use its own index).
    Integer,
}

impl IdOrder {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "integer" => Some(Self::Integer),
            _ => None,
        }
    }

    /// A key whose byte order is this order: the id itself for `Text`; for `Integer`, 16 hex
    /// digits of the id with its sign bit flipped. `None` if an integer id does not parse.
    pub fn key(self, id: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Self::Text => Some(std::borrow::Cow::Borrowed(id)),
            Self::Integer => {
                let v: i64 = id.parse().ok()?;
                Some(std::borrow::Cow::Owned(format!("{:016x}", (v as u64) ^ (1 << 63))))
            }
        }
    }

    /// The id a key stands for (the inverse of [`IdOrder::key`]).
    pub fn id(self, key: &str) -> String {
        match self {
            Self::Text => key.to_string(),
            Self::Integer => match u64::from_str_radix(key, 16) {
                Ok(v) => ((v ^ (1 << 63)) as i64).to_string(),
                Err(_) => key.to_string(),
            },
        }
    }
}

/// One row of a model: the id as a string (`None` when NULL) and every column's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The unique id in its string form (integers in decimal, text as is); `None` for NULL.
    pub id: Option<String>,
    /// The model's columns, in order (`Null` for columns the scan was not asked to decode).
    pub values: Vec<Value>,
    /// The whole row as the warehouse sent it, when the scan was asked for it: cheap to hash,
    /// decoded only for rows that are sent.
    pub raw: Option<RawRow>,
}

/// Decodes raw rows of one scan.
pub trait RawDecoder: Send + Sync {
    /// Every column's value.
    fn decode(&self, bytes: &[u8]) -> Vec<Value>;
}

/// A row's columns as the warehouse's own bytes.
#[derive(Clone)]
pub struct RawRow {
    /// Length-prefixed column bytes (what the diff hashes).
    pub bytes: Vec<u8>,
    /// How to turn them into values.
    pub decoder: std::sync::Arc<dyn RawDecoder>,
}

impl RawRow {
    /// Every column's value.
    pub fn decode(&self) -> Vec<Value> {
        self.decoder.decode(&self.bytes)
    }
}

impl std::fmt::Debug for RawRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawRow({} bytes)", self.bytes.len())
    }
}

impl PartialEq for RawRow {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

/// What a scan must return besides the id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanNeeds {
    /// Column indices to decode into `values`; `None`: every column.
    pub typed: Option<Vec<usize>>,
    /// Also return the row's raw bytes (warehouses that can, see [`Warehouse::raw_rows`]).
    pub raw: bool,
    /// Only the rows whose id (as text) is one of these (a sparse pass fetching what the
    /// warehouse said changed); `None`: every row. Only warehouses with [`Warehouse::diff`] take it.
    pub only_ids: Option<Vec<String>>,
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
pub trait Warehouse: Send {
    /// Makes `canceller` stop this warehouse's work: [`Canceller::cancel`], from any thread,
    /// stops the statement running on the server and refuses every later one. Attach it
    /// right after opening, before the work whose cancellation it should cover; one canceller
    /// serves one warehouse.
    fn attach_canceller(&mut self, canceller: &Canceller);

    /// What the operator should know about this connection (e.g. a privileged role that was
    /// explicitly allowed); empty when all is well.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// The columns the model returns, without reading its rows.
    fn columns(&mut self, sql: &str) -> Result<Vec<String>, WarehouseError>;
    /// The model's columns and first `limit` rows.
    fn preview(&mut self, sql: &str, limit: usize) -> Result<Preview, WarehouseError>;
    /// The order [`Warehouse::scan`] can return rows in for this id column.
    fn id_order(&mut self, _sql: &str, _id_column: &str) -> Result<IdOrder, WarehouseError> {
        Ok(IdOrder::Text)
    }

    /// The longest a sync's scan may run before the engine interrupts it through the
    /// canceller, for a warehouse that has no statement timeout of its own (SQLite); `None`:
    /// the warehouse enforces its own limit.
    fn scan_deadline(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether scans can return raw rows (hashing raw bytes is cheaper than decoding every column).
    fn raw_rows(&self) -> bool {
        false
    }

    /// The warehouse-side diff (docs/DIFF.md), where this kind supports it.
    fn diff(&mut self) -> Option<&mut dyn diff::WarehouseDiff> {
        None
    }

    /// Streams every row in `order` of `id_column` (NULL ids anywhere), with what `needs` asks.
    /// `sink` returning an error stops the scan with [`WarehouseError::Aborted`].
    fn scan(
        &mut self,
        sql: &str,
        id_column: &str,
        order: IdOrder,
        needs: &ScanNeeds,
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
            return Err(WarehouseError::DuplicateColumn { column: c.clone() });
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

/// Checks the order rows come in, which the merge with the checkpoint relies on.
pub struct OrderGuard {
    order: IdOrder,
    last: Option<String>,
}

impl OrderGuard {
    /// A guard for `order`.
    pub fn new(order: IdOrder) -> Self {
        Self { order, last: None }
    }

    /// Accepts `id` if it is not smaller than the previous one. NULL ids may come anywhere:
    /// they are rejected rows and take no part in the merge.
    pub fn check(&mut self, id: Option<&str>) -> Result<(), WarehouseError> {
        let Some(id) = id else { return Ok(()) };
        let key = self.order.key(id).ok_or_else(|| WarehouseError::Order {
            previous: self.last.clone().map(|k| self.order.id(&k)).unwrap_or_default(),
            current: id.to_string(),
        })?;
        if let Some(prev) = &self.last {
            if prev.as_bytes() > key.as_bytes() {
                return Err(WarehouseError::Order { previous: self.order.id(prev), current: id.to_string() });
            }
            if *prev == *key {
                return Ok(());
            }
        }
        self.last = Some(key.into_owned());
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
    fn integer_keys_sort_like_numbers() {
        let vals = [i64::MIN, -1_000_000, -10, -1, 0, 1, 9, 10, 100, 9_007_199_254_740_993, i64::MAX];
        let keys: Vec<String> =
            vals.iter().map(|v| IdOrder::Integer.key(&v.to_string()).unwrap().into_owned()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (v, k) in vals.iter().zip(&keys) {
            assert_eq!(IdOrder::Integer.id(k), v.to_string());
        }
        assert!(IdOrder::Integer.key("12a").is_none());
        assert_eq!(IdOrder::Text.key("x").unwrap(), "x");
        let mut g = OrderGuard::new(IdOrder::Integer);
        g.check(Some("9")).unwrap();
        g.check(Some("10")).unwrap();
        assert!(g.check(Some("2")).is_err());
    }

    #[test]
    fn order_guard() {
        let mut g = OrderGuard::new(IdOrder::Text);
        g.check(None).unwrap();
        g.check(Some("1")).unwrap();
        g.check(Some("1")).unwrap();
        g.check(Some("10")).unwrap();
        g.check(Some("2")).unwrap();
        assert!(g.check(Some("11")).is_err());
        assert!(g.check(None).is_ok());
    }

    #[test]
    fn strips_trailing_semicolons_and_quotes() {
        assert_eq!(model_sql(" select 1 ;\n"), "select 1");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
