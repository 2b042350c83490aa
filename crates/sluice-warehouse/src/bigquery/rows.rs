//! BigQuery's row format (`TableSchema`, `TableRow`): each row is `{"f": [{"v": cell}, ...]}`,
//! one cell per field of `schema.fields`; a cell is a string or `null` (INT64 and NUMERIC as
//! decimal strings, FLOAT64 as a number string or `NaN`/`Infinity`, BOOL as `true`/`false`,
//! TIMESTAMP as int64 microseconds with `formatOptions.useInt64Timestamp`, else float epoch
//! seconds such as `1.7E9`), a RECORD a nested `{"f": [...]}`, a REPEATED field `[{"v": ...}]`.

use serde_json::{Map, Value};

/// The deepest RECORD / REPEATED nesting decoded (BigQuery allows 15 levels).
const MAX_DEPTH: usize = 16;

/// One field of a schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// Column name.
    pub name: String,
    /// Type name (`INTEGER`, `INT64`, `STRING`, `RECORD`, ...), uppercase.
    pub kind: String,
    /// `REPEATED` mode.
    pub repeated: bool,
    /// Sub-fields of a RECORD / STRUCT.
    pub fields: Vec<Field>,
}

/// Reads `schema.fields`; `None` when it is not a list of named fields.
pub(crate) fn fields(v: &Value) -> Result<Vec<Field>, String> {
    fields_at(v, 0)
}

fn fields_at(v: &Value, depth: usize) -> Result<Vec<Field>, String> {
    if depth > MAX_DEPTH {
        return Err("the schema nests deeper than 16 levels".into());
    }
    let Some(list) = v.as_array() else { return Err("`schema.fields` is not a list".into()) };
    list.iter()
        .map(|f| {
            let name = f["name"].as_str().ok_or("a schema field has no `name`")?.to_string();
            let kind = f["type"].as_str().ok_or_else(|| format!("schema field `{name}` has no `type`"))?.to_uppercase();
            let repeated = f["mode"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("REPEATED"));
            let fields = match &f["fields"] {
                Value::Null => Vec::new(),
                sub => fields_at(sub, depth + 1)?,
            };
            Ok(Field { name, kind, repeated, fields })
        })
        .collect()
}

/// The cells of one row (`{"f": [...]}`), checked against the number of fields.
pub(crate) fn cells(row: &Value, n: usize) -> Result<&Vec<Value>, String> {
    let f = row["f"].as_array().ok_or("a row is not of the form {\"f\": [...]}")?;
    if f.len() != n {
        return Err(format!("a row has {} values but the schema has {n} fields", f.len()));
    }
    Ok(f)
}

/// A cell's value as JSON, typed by its field.
pub(crate) fn value(field: &Field, cell: &Value) -> Result<Value, String> {
    value_at(field, &cell["v"], 0, field.repeated)
}

fn value_at(field: &Field, v: &Value, depth: usize, repeated: bool) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("field `{}` nests deeper than 16 levels", field.name));
    }
    if v.is_null() {
        return Ok(Value::Null);
    }
    if repeated {
        let items = v.as_array().ok_or_else(|| format!("REPEATED field `{}` is not a list", field.name))?;
        return items.iter().map(|item| value_at(field, &item["v"], depth + 1, false)).collect();
    }
    if matches!(field.kind.as_str(), "RECORD" | "STRUCT") {
        let cells = cells(v, field.fields.len()).map_err(|e| format!("RECORD field `{}`: {e}", field.name))?;
        let mut out = Map::new();
        for (sub, c) in field.fields.iter().zip(cells) {
            out.insert(sub.name.clone(), value_at(sub, &c["v"], depth + 1, sub.repeated)?);
        }
        return Ok(Value::Object(out));
    }
    let Some(s) = v.as_str() else {
        return Err(format!("field `{}` ({}) has a value that is not a string: {}", field.name, field.kind, short(v)));
    };
    Ok(scalar(&field.kind, s))
}

fn short(v: &Value) -> String {
    crate::rest::excerpt(&v.to_string())
}

/// A scalar cell: numbers and booleans typed, JSON parsed, TIMESTAMP as RFC 3339 (UTC),
/// everything else (DATE, DATETIME, TIME, BYTES as base64, GEOGRAPHY, ...) as the string sent.
fn scalar(kind: &str, s: &str) -> Value {
    let parsed = match kind {
        "INTEGER" | "INT64" => s.parse::<i64>().ok().map(Value::from),
        "FLOAT" | "FLOAT64" => s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number),
        "NUMERIC" | "BIGNUMERIC" | "DECIMAL" | "BIGDECIMAL" => s.parse::<serde_json::Number>().ok().map(Value::Number),
        "BOOLEAN" | "BOOL" => match s {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        "JSON" => serde_json::from_str(s).ok(),
        "TIMESTAMP" => timestamp(s).map(Value::String),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(s.to_string()))
}

/// A TIMESTAMP cell (int64 microseconds, or float seconds) as RFC 3339 in UTC with the
/// fraction BigQuery keeps (microseconds) when there is one.
pub(crate) fn timestamp(s: &str) -> Option<String> {
    let micros: i64 = match s.parse::<i64>() {
        Ok(us) => us,
        Err(_) => {
            let secs: f64 = s.parse().ok()?;
            if !secs.is_finite() || secs.abs() > 1e13 {
                return None;
            }
            (secs * 1e6).round() as i64
        }
    };
    let t = chrono::DateTime::from_timestamp_micros(micros)?;
    Some(if micros % 1_000_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_cells() {
        let schema = json!([
            {"name": "id", "type": "INTEGER"},
            {"name": "f", "type": "FLOAT64"},
            {"name": "n", "type": "NUMERIC"},
            {"name": "b", "type": "BOOLEAN"},
            {"name": "t", "type": "TIMESTAMP"},
            {"name": "j", "type": "JSON"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "addr", "type": "RECORD", "fields": [{"name": "city", "type": "STRING"}, {"name": "zip", "type": "INT64"}]},
            {"name": "d", "type": "DATE"},
        ]);
        let fs = fields(&schema).unwrap();
        let row = json!({"f": [{"v": "12"}, {"v": "NaN"}, {"v": "1.5"}, {"v": "true"}, {"v": "1.7E9"}, {"v": "{\"a\":1}"},
            {"v": [{"v": "x"}, {"v": "y"}]}, {"v": {"f": [{"v": "Paris"}, {"v": "75001"}]}}, {"v": null}]});
        let got: Vec<Value> =
            cells(&row, fs.len()).unwrap().iter().zip(&fs).map(|(c, f)| value(f, c).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                json!(12),
                json!("NaN"),
                json!(1.5),
                json!(true),
                json!("2023-11-14T22:13:20Z"),
                json!({"a": 1}),
                json!(["x", "y"]),
                json!({"city": "Paris", "zip": 75001}),
                Value::Null
            ]
        );
        assert_eq!(timestamp("1700000000123456").unwrap(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(timestamp("1.7000000001E9").unwrap(), "2023-11-14T22:13:20.100000Z");
        assert!(timestamp("1e300").is_none());
        assert!(cells(&json!({"f": [{"v": "1"}]}), 2).unwrap_err().contains("1 values but the schema has 2"));
        assert!(value(&fs[0], &json!({"v": 3})).unwrap_err().contains("not a string"));
        assert!(fields(&json!([{"type": "STRING"}])).is_err());
    }
}
