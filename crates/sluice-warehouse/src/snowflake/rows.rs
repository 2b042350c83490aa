//! Snowflake values: the `rowtype` metadata of a result, its JSON rowsets (every value a string
//! in Snowflake's wire form, or null) and its Arrow rowsets (Arrow IPC streams), both turned
//! into the wire form first and then typed by the column's Snowflake type (SPEC §3): `FIXED`
//! with scale 0 an integer, `REAL` a float, `BOOLEAN` a boolean, `VARIANT`/`OBJECT`/`ARRAY`
//! JSON, dates and timestamps ISO 8601 text.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde::Deserialize;
use serde_json::Value;

/// One column of a result, as `rowtype` describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Snowflake's type name (`fixed`, `text`, `timestamp_ntz`, …; any case).
    #[serde(rename = "type")]
    pub ty: String,
    /// Digits after the decimal point (`fixed`, times and timestamps).
    #[serde(default)]
    pub scale: Option<i64>,
    /// Digits in all (`fixed`).
    #[serde(default)]
    pub precision: Option<i64>,
}

impl Column {
    fn ty(&self) -> String {
        self.ty.to_ascii_lowercase()
    }

    /// Whether the column holds whole numbers that fit 64 bits (`NUMBER(p, 0)`, p ≤ 18), which
    /// can sort as numbers; wider ones (`INT` is `NUMBER(38, 0)`) sort as text.
    pub fn is_int64(&self) -> bool {
        self.ty() == "fixed" && self.scale.unwrap_or(0) == 0 && self.precision.is_some_and(|p| (1..=18).contains(&p))
    }
}

/// A value in Snowflake's wire form (`None` for NULL) typed by its column.
pub fn typed(col: &Column, wire: Option<&str>) -> Value {
    let Some(s) = wire else { return Value::Null };
    let text = || Value::String(s.to_string());
    match col.ty().as_str() {
        "fixed" => {
            let n = if col.scale.unwrap_or(0) == 0 {
                s.parse::<i64>().map(Value::from).or_else(|_| s.parse::<u64>().map(Value::from)).ok()
            } else {
                s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
            };
            n.unwrap_or_else(text)
        }
        "real" => s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or_else(text),
        "boolean" => match s {
            "1" | "true" | "TRUE" => Value::Bool(true),
            "0" | "false" | "FALSE" => Value::Bool(false),
            _ => text(),
        },
        "variant" | "object" | "array" | "map" => serde_json::from_str(s).unwrap_or_else(|_| text()),
        "date" => s.parse::<i64>().ok().and_then(date).map(Value::String).unwrap_or_else(text),
        "time" => seconds(s).map(|(secs, nanos)| Value::String(time(secs, nanos))).unwrap_or_else(text),
        "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" => {
            timestamp(&col.ty(), s).map(Value::String).unwrap_or_else(text)
        }
        _ => text(),
    }
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian).
fn date(days: i64) -> Option<String> {
    if days.abs() > 100_000_000 {
        return None;
    }
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Seconds and nanoseconds of `"<secs>[.<fraction>]"` (floor seconds, non-negative nanos).
fn seconds(s: &str) -> Option<(i64, u32)> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    Some(if !neg {
        (whole, nanos)
    } else if nanos == 0 {
        (-whole, 0)
    } else {
        (-whole - 1, 1_000_000_000 - nanos)
    })
}

fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    format!(".{nanos:09}").trim_end_matches('0').to_string()
}

fn time(secs: i64, nanos: u32) -> String {
    let s = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}{}", s / 3600, s / 60 % 60, s % 60, fraction(nanos))
}

/// ISO 8601 of `"<epoch secs>.<fraction>"` (`timestamp_tz`: followed by ` <offset + 1440>` in
/// minutes): NTZ without a zone, LTZ in UTC (`Z`), TZ in its own offset.
fn timestamp(ty: &str, s: &str) -> Option<String> {
    let (value, tz) = match s.split_once(' ') {
        Some((v, tz)) => (v, Some(tz.parse::<i64>().ok()? - 1440)),
        None => (s, None),
    };
    let (secs, nanos) = seconds(value)?;
    let offset_min = if ty == "timestamp_tz" { tz.unwrap_or(0) } else { 0 };
    if offset_min.abs() > 24 * 60 {
        return None;
    }
    let local = secs.checked_add(offset_min * 60)?;
    let day = date(local.div_euclid(86_400))?;
    let clock = time(local.rem_euclid(86_400), nanos);
    Some(match ty {
        "timestamp_ntz" => format!("{day}T{clock}"),
        "timestamp_ltz" => format!("{day}T{clock}Z"),
        _ => {
            let sign = if offset_min < 0 { '-' } else { '+' };
            format!("{day}T{clock}{sign}{:02}:{:02}", offset_min.abs() / 60, offset_min.abs() % 60)
        }
    })
}

/// An integer with `scale` implied decimals, in decimal (`150`, scale 2 → `1.50`).
fn scaled(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let digits = format!("{:0>width$}", v.unsigned_abs(), width = scale as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

/// The wire form of every cell of an Arrow record batch, row by row; an Arrow type Snowflake
/// does not send is an error naming the column.
pub fn arrow_rows(batch: &RecordBatch, cols: &[Column]) -> Result<Vec<Vec<Option<String>>>, String> {
    if batch.num_columns() != cols.len() {
        return Err(format!("an Arrow batch has {} columns, the result {}", batch.num_columns(), cols.len()));
    }
    let mut rows = vec![Vec::with_capacity(cols.len()); batch.num_rows()];
    for (c, col) in cols.iter().enumerate() {
        let array = batch.column(c);
        let scale = batch
            .schema()
            .field(c)
            .metadata()
            .get("scale")
            .and_then(|s| s.parse::<u32>().ok())
            .or(col.scale.and_then(|s| u32::try_from(s).ok()))
            .unwrap_or(0)
            .min(38);
        for (r, row) in rows.iter_mut().enumerate() {
            row.push(if array.is_null(r) { None } else { Some(arrow_cell(array.as_ref(), r, scale, col)?) });
        }
    }
    Ok(rows)
}

fn arrow_cell(a: &dyn Array, r: usize, scale: u32, col: &Column) -> Result<String, String> {
    let int = |v: i128| scaled(v, scale);
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(r).to_string(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(r).to_string(),
        DataType::Boolean => a.as_boolean().value(r).to_string(),
        DataType::Int8 => int(a.as_primitive::<Int8Type>().value(r).into()),
        DataType::Int16 => int(a.as_primitive::<Int16Type>().value(r).into()),
        DataType::Int32 => int(a.as_primitive::<Int32Type>().value(r).into()),
        DataType::Int64 => int(a.as_primitive::<Int64Type>().value(r).into()),
        DataType::UInt64 => int(a.as_primitive::<UInt64Type>().value(r).into()),
        DataType::Decimal128(_, s) => {
            scaled(a.as_primitive::<arrow_array::types::Decimal128Type>().value(r), (*s).clamp(0, 38) as u32)
        }
        DataType::Float32 => a.as_primitive::<Float32Type>().value(r).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(r).to_string(),
        DataType::Date32 => a.as_primitive::<Date32Type>().value(r).to_string(),
        DataType::Binary => a.as_binary::<i32>().value(r).iter().map(|b| format!("{b:02X}")).collect(),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let field = |name: &str| fields.iter().position(|f| f.name() == name).map(|i| s.column(i));
            let epoch = field("epoch").ok_or_else(|| format!("column `{}`: a timestamp without epoch", col.name))?;
            let epoch: i128 = match epoch.data_type() {
                DataType::Int64 => epoch.as_primitive::<Int64Type>().value(r).into(),
                t => return Err(format!("column `{}`: timestamp epoch of type {t}", col.name)),
            };
            // {epoch seconds, fraction nanoseconds[, timezone]}, or (TIMESTAMP_TZ of scale ≤ 3)
            // {epoch in units of the scale, timezone}
            let mut out = match field("fraction") {
                Some(f) if f.data_type() == &DataType::Int32 => {
                    let frac: i128 = f.as_primitive::<Int32Type>().value(r).into();
                    scaled(epoch * 1_000_000_000 + frac, 9)
                }
                _ => scaled(epoch, scale),
            };
            if let Some(tz) = field("timezone").filter(|t| t.data_type() == &DataType::Int32) {
                out.push_str(&format!(" {}", tz.as_primitive::<Int32Type>().value(r)));
            }
            out
        }
        t => return Err(format!("column `{}` ({}): Arrow type {t} is not supported", col.name, col.ty)),
    })
}

/// Checks the framing of an Arrow IPC stream before the reader sees it: every message's
/// metadata and body must lie within the bytes (the reader allocates a body's declared length
/// before reading it, so a hostile length must never reach it).
fn check_framing(bytes: &[u8]) -> Result<(), String> {
    let broken = |why: &str| Err(format!("a broken Arrow stream: {why}"));
    let word = |at: usize| bytes.get(at..at + 4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(mut len) = word(pos) else { return broken("a cut message header") };
        pos += 4;
        if len == -1 {
            let Some(l) = word(pos) else { return broken("a cut message header") };
            len = l;
            pos += 4;
        }
        if len == 0 {
            return Ok(()); // end of stream
        }
        let Some(meta) = usize::try_from(len).ok().and_then(|l| bytes.get(pos..pos.checked_add(l)?)) else {
            return broken("message metadata beyond the end");
        };
        let Ok(message) = arrow_ipc::root_as_message(meta) else { return broken("unreadable message metadata") };
        pos += meta.len();
        match usize::try_from(message.bodyLength()) {
            Ok(body) if body <= bytes.len() - pos => pos += body,
            _ => return broken("a message body beyond the end"),
        }
    }
    Ok(())
}

/// Decodes an Arrow IPC stream (a `rowsetBase64` or an Arrow chunk) into wire-form rows.
pub fn arrow_stream(bytes: &[u8], cols: &[Column]) -> Result<Vec<Vec<Option<String>>>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    check_framing(bytes)?;
    // the reader validates what it decodes; a panic on data it missed must not end the sync
    std::panic::catch_unwind(|| decode_stream(bytes, cols))
        .unwrap_or_else(|_| Err("a broken Arrow stream the decoder could not read".into()))
}

fn decode_stream(bytes: &[u8], cols: &[Column]) -> Result<Vec<Vec<Option<String>>>, String> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("a broken Arrow batch: {e}"))?;
        rows.extend(arrow_rows(&batch, cols)?);
    }
    Ok(rows)
}

/// Decodes a JSON rowset: an array of rows, each an array of strings or nulls.
pub fn json_rows(v: Value, width: usize) -> Result<Vec<Vec<Option<String>>>, String> {
    let Value::Array(rows) = v else { return Err("the rowset is not an array".into()) };
    rows.into_iter()
        .map(|row| {
            let Value::Array(cells) = row else { return Err("a row of the rowset is not an array".to_string()) };
            if cells.len() != width {
                return Err(format!("a row has {} values, the result {width} columns", cells.len()));
            }
            cells
                .into_iter()
                .map(|c| match c {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s)),
                    Value::Bool(b) => Ok(Some(b.to_string())),
                    Value::Number(n) => Ok(Some(n.to_string())),
                    other => Err(format!("a value of the rowset is {other}, not a string")),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: &str, scale: Option<i64>) -> Column {
        Column { name: "C".into(), ty: ty.into(), scale, precision: None }
    }

    #[test]
    fn types_values_by_rowtype() {
        assert_eq!(typed(&col("FIXED", Some(0)), Some("42")), Value::from(42));
        assert_eq!(typed(&col("fixed", Some(0)), Some("99999999999999999999999")), "99999999999999999999999");
        assert_eq!(typed(&col("fixed", Some(2)), Some("1.50")), serde_json::json!(1.5));
        assert_eq!(typed(&col("real", None), Some("2.5")), serde_json::json!(2.5));
        assert_eq!(typed(&col("boolean", None), Some("1")), Value::Bool(true));
        assert_eq!(typed(&col("boolean", None), Some("false")), Value::Bool(false));
        assert_eq!(typed(&col("text", None), Some("x")), "x");
        assert_eq!(typed(&col("text", None), None), Value::Null);
        assert_eq!(typed(&col("variant", None), Some(r#"{"a":[1]}"#)), serde_json::json!({"a": [1]}));
        assert_eq!(typed(&col("date", None), Some("19724")), "2024-01-02");
        assert_eq!(typed(&col("date", None), Some("-1")), "1969-12-31");
        assert_eq!(typed(&col("timestamp_ntz", Some(9)), Some("1704164645.500000000")), "2024-01-02T03:04:05.5");
        assert_eq!(typed(&col("timestamp_ltz", Some(9)), Some("0")), "1970-01-01T00:00:00Z");
        assert_eq!(typed(&col("timestamp_ntz", Some(3)), Some("-0.500")), "1969-12-31T23:59:59.5");
        assert_eq!(typed(&col("timestamp_tz", Some(9)), Some("0.000 1500")), "1970-01-01T01:00:00+01:00");
        assert_eq!(typed(&col("time", Some(9)), Some("3723.000000001")), "01:02:03.000000001");
        assert_eq!(typed(&col("timestamp_ntz", None), Some("garbage")), "garbage", "unreadable stays text");
    }

    #[test]
    fn only_ids_that_fit_64_bits_sort_as_numbers() {
        let c = |p: Option<i64>, s: Option<i64>| Column { precision: p, ..col("FIXED", s) };
        assert!(c(Some(18), Some(0)).is_int64());
        assert!(!c(Some(38), Some(0)).is_int64(), "INT is NUMBER(38, 0)");
        assert!(!c(Some(10), Some(2)).is_int64());
        assert!(!c(None, Some(0)).is_int64());
        assert!(!col("text", None).is_int64());
    }

    #[test]
    fn scaled_integers() {
        assert_eq!(scaled(150, 2), "1.50");
        assert_eq!(scaled(-5, 3), "-0.005");
        assert_eq!(scaled(7, 0), "7");
    }

    #[test]
    fn json_rowsets_are_checked() {
        let rows = json_rows(serde_json::json!([["1", null], ["2", "x"]]), 2).unwrap();
        assert_eq!(rows[1], vec![Some("2".to_string()), Some("x".to_string())]);
        assert!(json_rows(serde_json::json!([["1"]]), 2).unwrap_err().contains("1 values"));
        assert!(json_rows(serde_json::json!({"a": 1}), 2).is_err());
        assert!(json_rows(serde_json::json!([[{"a": 1}, null]]), 2).is_err());
        assert!(arrow_stream(b"not arrow at all", &[col("text", None)]).is_err());
    }

    fn ipc(n: i64) -> Vec<u8> {
        let a: arrow_array::ArrayRef = std::sync::Arc::new(arrow_array::Int64Array::from((0..n).collect::<Vec<_>>()));
        let batch = RecordBatch::try_from_iter(vec![("N", a)]).unwrap();
        let mut out = Vec::new();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    #[test]
    fn arrow_timestamps_in_each_of_snowflakes_layouts() {
        use arrow_array::{ArrayRef, Int32Array, Int64Array, StructArray};
        use arrow_schema::{Field, Schema};
        use std::sync::Arc;
        let i64s = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        let i32s = |v: i32| Arc::new(Int32Array::from(vec![v])) as ArrayRef;
        let field = |n: &str, t: DataType| Arc::new(Field::new(n, t, false));
        // scale 9: {epoch, fraction}; TZ scale 3: {epoch in ms, timezone}; NTZ scale 3: Int64 ms
        let ntz9 = StructArray::from(vec![
            (field("epoch", DataType::Int64), i64s(1_704_164_645)),
            (field("fraction", DataType::Int32), i32s(500_000_000)),
        ]);
        let tz3 = StructArray::from(vec![
            (field("epoch", DataType::Int64), i64s(1_704_164_645_250)),
            (field("timezone", DataType::Int32), i32s(1440 + 120)),
        ]);
        let meta = |scale: &str| std::collections::HashMap::from([("scale".to_string(), scale.to_string())]);
        let schema = Schema::new(vec![
            Field::new("A", ntz9.data_type().clone(), true).with_metadata(meta("9")),
            Field::new("B", tz3.data_type().clone(), true).with_metadata(meta("3")),
            Field::new("C", DataType::Int64, true).with_metadata(meta("3")),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(ntz9) as ArrayRef, Arc::new(tz3) as ArrayRef, i64s(1_704_164_645_250)],
        )
        .unwrap();
        let cols = [col("timestamp_ntz", Some(9)), col("timestamp_tz", Some(3)), col("timestamp_ltz", Some(3))];
        let row = &arrow_rows(&batch, &cols).unwrap()[0];
        let values: Vec<Value> = cols.iter().zip(row).map(|(c, v)| typed(c, v.as_deref())).collect();
        assert_eq!(values[0], "2024-01-02T03:04:05.5");
        assert_eq!(values[1], "2024-01-02T05:04:05.25+02:00");
        assert_eq!(values[2], "2024-01-02T03:04:05.25Z");
    }

    #[test]
    fn arrow_streams_are_checked_before_decoding() {
        let cols = [col("fixed", Some(0))];
        let good = ipc(1000);
        let rows = arrow_stream(&good, &cols).unwrap();
        assert_eq!((rows.len(), rows[999][0].as_deref()), (1000, Some("999")));
        for cut in [5, 100, good.len() / 2, good.len() - 9] {
            let e = arrow_stream(&good[..cut], &cols).unwrap_err();
            assert!(e.contains("broken Arrow stream"), "cut at {cut}: {e}");
        }
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(arrow_stream(&bad, &cols).unwrap_err().contains("beyond the end"));
        let mut flipped = good.clone();
        for b in flipped.iter_mut().skip(200).step_by(7) {
            *b ^= 0x5a;
        }
        assert!(arrow_stream(&flipped, &cols).is_err(), "garbage is an error, not a panic");
        assert!(arrow_stream(&good, &[col("fixed", Some(0)), col("text", None)]).unwrap_err().contains("columns"));
    }
}
