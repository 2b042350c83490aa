//! The SQL engine behind the cloud warehouse fakes: statements are evaluated by a real SQLite
//! file the test fills (so the queries Sluice writes really run), with one dialect
//! translation — `CAST(x AS STRING)` (BigQuery and Databricks) becomes `CAST(x AS TEXT)`
//! (SQLite's `STRING` has numeric affinity). Both dialects' backquoted identifiers are SQLite's
//! too. A column's warehouse type comes from its declared type in the table (`INT64`, `BOOL`,
//! `TIMESTAMP`, `JSON`, `REPEATED`, `RECORD`, `DECIMAL`, ...), else from its first value.

use rusqlite::types::Value as Sql;
use std::path::{Path, PathBuf};

/// What a column holds, as the fakes type it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 64-bit integers.
    Integer,
    /// Doubles.
    Float,
    /// Exact decimals (stored as text or numbers).
    Decimal,
    /// 0 / 1.
    Bool,
    /// Text.
    Text,
    /// Epoch seconds (integer or real).
    Timestamp,
    /// JSON text.
    Json,
    /// A JSON array (text) of scalars.
    Repeated,
    /// A JSON object (text) of scalars.
    Record,
}

/// One result column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
}

/// A statement's result.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Vec<Sql>>,
}

/// An SQL error with the byte offset SQLite gave, if any.
#[derive(Debug, Clone)]
pub struct SqlError {
    /// SQLite's message.
    pub message: String,
    /// Where in the statement.
    pub offset: Option<usize>,
    /// A missing table (rather than bad syntax).
    pub not_found: bool,
}

impl SqlError {
    /// `[line:column]` (1-based) of the offset in `sql`.
    pub fn position(&self, sql: &str) -> Option<(usize, usize)> {
        let before = sql.get(..self.offset?)?;
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count() + 1).unwrap_or(1);
        Some((line, col))
    }
}

fn kind_of_decl(decl: &str) -> Option<Kind> {
    Some(match decl.to_ascii_uppercase().as_str() {
        "INT64" | "INTEGER" | "INT" | "BIGINT" | "LONG" => Kind::Integer,
        "FLOAT64" | "FLOAT" | "DOUBLE" | "REAL" => Kind::Float,
        "NUMERIC" | "DECIMAL" | "BIGNUMERIC" => Kind::Decimal,
        "BOOL" | "BOOLEAN" => Kind::Bool,
        "STRING" | "TEXT" | "VARCHAR" => Kind::Text,
        "TIMESTAMP" => Kind::Timestamp,
        "JSON" => Kind::Json,
        "REPEATED" | "ARRAY" => Kind::Repeated,
        "RECORD" | "STRUCT" => Kind::Record,
        _ => return None,
    })
}

/// Replaces every case-insensitive `from` (ASCII) with `to`.
fn replace_ci(sql: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let lower = sql.to_ascii_lowercase();
    let mut i = 0;
    while let Some(j) = lower[i..].find(from) {
        out.push_str(&sql[i..i + j]);
        out.push_str(to);
        i += j + from.len();
    }
    out.push_str(&sql[i..]);
    out
}

/// The dialect translations: `CAST(x AS STRING)` becomes `CAST(x AS TEXT)`;
/// `TO_JSON_STRING(STRUCT(a, b))` (BigQuery) becomes `(json_array(a, b))` (a JSON text of the
/// values, `null` for NULL, as TO_JSON_STRING writes them); `to_json(named_struct('a', a))`
/// (Databricks) becomes `(json_object('a', a))`; `CREATE OR REPLACE TABLE t` becomes
/// `DROP TABLE IF EXISTS t; CREATE TABLE t`.
pub fn translate(sql: &str) -> String {
    let sql = replace_ci(sql, " as string)", " AS TEXT)");
    let sql = replace_ci(&sql, "to_json_string(struct(", "(json_array(");
    let sql = replace_ci(&sql, "to_json(named_struct(", "(json_object(");
    match sql.to_ascii_lowercase().find("create or replace table ") {
        Some(i) => {
            let rest = &sql[i + "create or replace table ".len()..];
            let name = rest.split_whitespace().next().unwrap_or("");
            format!("{}DROP TABLE IF EXISTS {name}; CREATE TABLE {rest}", &sql[..i])
        }
        None => sql,
    }
}

/// The warehouse functions the fakes add to SQLite: `FARM_FINGERPRINT(s)` (BigQuery: a signed
/// 64-bit fingerprint of a STRING; here xxh3 of its UTF-8 bytes stands in for FarmHash — the
/// same input always gives the same INT64, NULL gives NULL) and `FROM_HEX(s)` (BigQuery: the
/// BYTES a hex string spells).
fn functions(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    c.create_scalar_function("FARM_FINGERPRINT", 1, flags, |ctx| {
        Ok(match ctx.get::<Option<String>>(0)? {
            Some(s) => Sql::Integer(xxhash_rust::xxh3::xxh3_64(s.as_bytes()) as i64),
            None => Sql::Null,
        })
    })?;
    // Databricks: `xxhash64(a, …)`, a 64-bit hash of the arguments with seed 42 where a NULL
    // argument leaves the hash as it was (Spark's semantics); xxh3 stands in for XXH64
    c.create_scalar_function("xxhash64", -1, flags, |ctx| {
        let mut h: u64 = 42;
        for i in 0..ctx.len() {
            if let Some(v) = crate::sqlfake::text(&ctx.get::<Sql>(i)?) {
                h = xxhash_rust::xxh3::xxh3_64_with_seed(v.as_bytes(), h);
            }
        }
        Ok(h as i64)
    })?;
    c.create_scalar_function("FROM_HEX", 1, flags, |ctx| {
        let Some(s) = ctx.get::<Option<String>>(0)? else { return Ok(Sql::Null) };
        let bytes: Result<Vec<u8>, _> =
            (0..s.len() / 2).map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)).collect();
        bytes.map(Sql::Blob).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
    })
}

/// The database a fake answers from, with the schemas (BigQuery datasets) created in it, each
/// an SQLite file attached under its name.
#[derive(Debug, Clone)]
pub struct Db {
    path: PathBuf,
    schemas: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn sql_error(e: rusqlite::Error) -> SqlError {
    let message = e.to_string();
    let offset = match &e {
        rusqlite::Error::SqlInputError { offset, .. } if *offset >= 0 => Some(*offset as usize),
        _ => None,
    };
    SqlError { not_found: message.contains("no such table") || message.contains("unknown database"), message, offset }
}

impl Db {
    /// An SQLite file at `path` (created if missing).
    pub fn new(path: &Path) -> Self {
        rusqlite::Connection::open(path).expect("open the fake's database");
        Self { path: path.to_path_buf(), schemas: Default::default() }
    }

    /// Creates schema (dataset) `name`: tables `name.t` live in a file of their own.
    pub fn create_schema(&self, name: &str) {
        self.schemas.lock().unwrap_or_else(|p| p.into_inner()).push(name.to_string());
    }

    /// A connection with every schema attached and the warehouse functions added.
    fn connect(&self) -> Result<rusqlite::Connection, SqlError> {
        let c = rusqlite::Connection::open(&self.path).map_err(sql_error)?;
        let schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for s in schemas {
            let file = format!("{}.{s}.sqlite", self.path.display());
            c.execute(&format!("ATTACH DATABASE ?1 AS \"{s}\""), [file]).map_err(sql_error)?;
        }
        functions(&c).map_err(sql_error)?;
        Ok(c)
    }

    /// Runs a statement that writes (DDL or DML; `CREATE OR REPLACE` is two) in one
    /// transaction; returns the rows the last one changed.
    pub fn execute(&self, sql: &str) -> Result<u64, SqlError> {
        let sql = translate(sql);
        let c = self.connect()?;
        c.execute_batch(&format!("BEGIN; {sql}; COMMIT;")).map_err(sql_error)?;
        Ok(c.changes())
    }

    /// Runs statements that change the data (the test's setup and edits).
    pub fn exec(&self, sql: &str) {
        rusqlite::Connection::open(&self.path).and_then(|c| c.execute_batch(sql)).expect("fake database setup");
    }

    /// Whether `sql` is one statement that only reads, and its columns (typed by declaration).
    pub fn describe(&self, sql: &str) -> Result<(bool, Vec<Column>), SqlError> {
        let sql = translate(sql);
        let c = self.connect()?;
        let stmt = c.prepare(&sql).map_err(sql_error)?;
        let cols = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_string(),
                kind: c.decl_type().and_then(kind_of_decl).unwrap_or(Kind::Text),
            })
            .collect::<Vec<_>>();
        Ok((stmt.readonly() && !cols.is_empty(), cols))
    }

    /// Runs a query and returns every row.
    pub fn query(&self, sql: &str) -> Result<Table, SqlError> {
        let sql = translate(sql);
        let c = self.connect()?;
        let mut stmt = c.prepare(&sql).map_err(sql_error)?;
        let decl: Vec<(String, Option<Kind>)> =
            stmt.columns().iter().map(|c| (c.name().to_string(), c.decl_type().and_then(kind_of_decl))).collect();
        let n = decl.len();
        let mut rows = Vec::new();
        let mut q = stmt.query([]).map_err(sql_error)?;
        while let Some(r) = q.next().map_err(sql_error)? {
            let row: Result<Vec<Sql>, _> = (0..n).map(|i| r.get::<_, Sql>(i)).collect();
            rows.push(row.map_err(sql_error)?);
        }
        let columns = decl
            .into_iter()
            .enumerate()
            .map(|(i, (name, kind))| {
                let kind = kind.unwrap_or_else(|| {
                    match rows.iter().map(|r: &Vec<Sql>| &r[i]).find(|v| !matches!(v, Sql::Null)) {
                        Some(Sql::Integer(_)) => Kind::Integer,
                        Some(Sql::Real(_)) => Kind::Float,
                        _ => Kind::Text,
                    }
                });
                Column { name, kind }
            })
            .collect();
        Ok(Table { columns, rows })
    }
}

/// A value as text (what both APIs send for scalars).
pub fn text(v: &Sql) -> Option<String> {
    match v {
        Sql::Null => None,
        Sql::Integer(i) => Some(i.to_string()),
        Sql::Real(f) => Some(f.to_string()),
        Sql::Text(t) => Some(t.clone()),
        Sql::Blob(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// Epoch seconds of a TIMESTAMP value.
pub fn epoch_secs(v: &Sql) -> Option<f64> {
    match v {
        Sql::Integer(i) => Some(*i as f64),
        Sql::Real(f) => Some(*f),
        Sql::Text(t) => t.parse().ok(),
        _ => None,
    }
}

/// A JSON scalar as the text both APIs send inside arrays and records.
pub fn json_scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The first half of `text` (cut on a character boundary): a truncated answer.
pub fn half(text: &str) -> String {
    let mut n = text.len() / 2;
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    text[..n].to_string()
}
