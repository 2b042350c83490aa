//! Databricks' JSON_ARRAY format: every value a string or `null`, typed by the manifest's
//! `schema.columns[].type_name` (BOOLEAN, BYTE, SHORT, INT, LONG, FLOAT, DOUBLE, DECIMAL,
//! STRING, CHAR, DATE, TIMESTAMP, TIMESTAMP_NTZ, BINARY (base64), INTERVAL, ARRAY, MAP, STRUCT,
//! VARIANT (JSON text), NULL).

use serde_json::Value;

/// One result column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    /// Its name.
    pub name: String,
    /// `type_name`, uppercase.
    pub type_name: String,
}

/// Reads `manifest.schema.columns`.
pub(crate) fn columns(v: &Value) -> Result<Vec<Column>, String> {
    let list = v.as_array().ok_or("`schema.columns` is not a list")?;
    let mut out: Vec<Column> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let name = c["name"].as_str().ok_or("a column has no `name`")?.to_string();
        if c["position"].as_u64().is_some_and(|p| p != i as u64) {
            return Err(format!("column `{name}` is listed at {i} but says position {}", c["position"]));
        }
        let type_name = c["type_name"].as_str().unwrap_or("STRING").to_ascii_uppercase();
        out.push(Column { name, type_name });
    }
    Ok(out)
}

/// A value as JSON, typed by its column.
pub(crate) fn value(col: &Column, v: Value) -> Result<Value, String> {
    let s = match v {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s,
        other => {
            return Err(format!(
                "column `{}` ({}) has a value that is not a string: {}",
                col.name,
                col.type_name,
                crate::rest::excerpt(&other.to_string())
            ))
        }
    };
    let typed = match col.type_name.as_str() {
        "BYTE" | "SHORT" | "INT" | "LONG" => s.parse::<i64>().ok().map(Value::from),
        "FLOAT" | "DOUBLE" => s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number),
        "DECIMAL" => s.parse::<serde_json::Number>().ok().map(Value::Number),
        "BOOLEAN" => match s.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        "ARRAY" | "MAP" | "STRUCT" | "VARIANT" => serde_json::from_str(&s).ok(),
        _ => None,
    };
    Ok(typed.unwrap_or(Value::String(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_values() {
        let cols = columns(&json!([
            {"name": "id", "type_name": "LONG", "position": 0},
            {"name": "ok", "type_name": "BOOLEAN", "position": 1},
            {"name": "amt", "type_name": "DECIMAL", "position": 2},
            {"name": "tags", "type_name": "ARRAY", "position": 3},
            {"name": "ts", "type_name": "TIMESTAMP", "position": 4},
            {"name": "d", "type_name": "DOUBLE", "position": 5},
        ]))
        .unwrap();
        let row = [
            json!("7"),
            json!("false"),
            json!("9.99"),
            json!("[\"a\"]"),
            json!("2024-01-01T00:00:00.000Z"),
            json!("NaN"),
        ];
        let got: Vec<Value> = cols.iter().zip(row).map(|(c, v)| value(c, v).unwrap()).collect();
        assert_eq!(
            got,
            vec![json!(7), json!(false), json!(9.99), json!(["a"]), json!("2024-01-01T00:00:00.000Z"), json!("NaN")]
        );
        assert!(value(&cols[0], json!(7)).unwrap_err().contains("not a string"));
        assert!(columns(&json!([{"name": "a", "position": 3}])).is_err());
    }
}
