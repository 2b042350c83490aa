//! What a mapping sends for a row: its fields as one JSON object. The diff compares a hash of
//! the field values (computed once per row for every mapping that projects the same fields);
//! the JSON is encoded only for rows that are sent.

use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use sluice_warehouse::RawRow;
use xxhash_rust::xxh3::Xxh3;

/// The field projections of a model's mappings, computed lazily per row.
pub struct Projections {
    specs: Vec<Vec<(String, usize)>>,
    /// Whether a projection is the whole row (then a raw row's bytes stand for it).
    whole: Vec<bool>,
    seeds: Vec<Xxh3>,
    hashes: Vec<Option<u64>>,
}

/// Feeds a value to the hasher, tagged by type so `1`, `"1"` and `true` differ.
fn hash_value(h: &mut Xxh3, v: &Value) {
    match v {
        Value::Null => h.update(&[0]),
        Value::Bool(b) => h.update(&[1, *b as u8]),
        Value::Number(n) => {
            h.update(&[2]);
            match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => h.update(&i.to_le_bytes()),
                (None, Some(f)) => h.update(&f.to_bits().to_le_bytes()),
                _ => h.update(n.to_string().as_bytes()),
            }
        }
        Value::String(s) => {
            h.update(&[3]);
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Array(a) => {
            h.update(&[4]);
            h.update(&(a.len() as u64).to_le_bytes());
            a.iter().for_each(|x| hash_value(h, x));
        }
        Value::Object(o) => {
            h.update(&[5]);
            h.update(&(o.len() as u64).to_le_bytes());
            for (k, x) in o {
                h.update(k.as_bytes());
                h.update(&[0]);
                hash_value(h, x);
            }
        }
    }
}

impl Projections {
    /// No projections yet.
    pub fn new() -> Self {
        Self { specs: vec![], whole: vec![], seeds: vec![], hashes: vec![] }
    }

    /// The index of a projection (field name, column index), shared when identical; `whole`:
    /// every column of the row, in order.
    pub fn add(&mut self, spec: Vec<(String, usize)>, whole: bool) -> usize {
        if let Some(i) = self.specs.iter().position(|s| *s == spec) {
            return i;
        }
        // the field names are part of every hash: renaming a field updates every record
        let mut seed = Xxh3::new();
        for (name, _) in &spec {
            seed.update(name.as_bytes());
            seed.update(&[0]);
        }
        self.specs.push(spec);
        self.whole.push(whole);
        self.seeds.push(seed);
        self.hashes.push(None);
        self.specs.len() - 1
    }

    /// Forgets the previous row.
    pub fn next_row(&mut self) {
        self.hashes.iter_mut().for_each(|h| *h = None);
    }

    /// Whether any projection is a whole row.
    pub fn any_whole(&self) -> bool {
        self.whole.iter().any(|w| *w)
    }

    /// The hash of projection `i` of a row: of the raw bytes for a whole-row projection when
    /// the scan returned them, else of the projected values.
    pub fn hash(&mut self, i: usize, values: &[Value], raw: Option<&RawRow>) -> u64 {
        if let Some(h) = self.hashes[i] {
            return h;
        }
        let mut h = self.seeds[i].clone();
        match raw.filter(|_| self.whole[i]) {
            Some(r) => h.update(&r.bytes),
            None => {
                for (_, c) in &self.specs[i] {
                    hash_value(&mut h, &values[*c]);
                }
            }
        }
        let h = h.digest();
        self.hashes[i] = Some(h);
        h
    }

    /// Projection `i` of a row as JSON object text (a raw row is decoded here, only for rows sent).
    pub fn encode(&self, i: usize, values: &[Value], raw: Option<&RawRow>) -> Box<str> {
        let decoded;
        let values = match raw.filter(|_| self.whole[i]) {
            Some(r) => {
                decoded = r.decode();
                &decoded[..]
            }
            None => values,
        };
        let mut buf = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::new(&mut buf);
        let mut map = ser.serialize_map(Some(self.specs[i].len())).expect("in-memory writes do not fail");
        for (name, c) in &self.specs[i] {
            map.serialize_entry(name, &values[*c]).expect("in-memory writes do not fail");
        }
        map.end().expect("in-memory writes do not fail");
        String::from_utf8(buf).expect("serde_json writes UTF-8").into_boxed_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_tell_types_and_fields_apart_and_encode_in_field_order() {
        let mut p = Projections::new();
        let a = p.add(vec![("x".into(), 0)], true);
        let b = p.add(vec![("y".into(), 0)], false);
        assert_eq!(p.add(vec![("x".into(), 0)], true), a, "identical projections are shared");
        let h = |p: &mut Projections, i, v: Value| {
            p.next_row();
            p.hash(i, &[v], None)
        };
        let one = h(&mut p, a, json!(1));
        assert_ne!(one, h(&mut p, a, json!("1")));
        assert_ne!(one, h(&mut p, a, json!(true)));
        assert_ne!(one, h(&mut p, a, json!(1.5)));
        assert_ne!(one, h(&mut p, b, json!(1)), "the field name is part of the hash");
        assert_eq!(one, h(&mut p, a, json!(1)));
        assert_ne!(h(&mut p, a, json!(["a", "b"])), h(&mut p, a, json!(["ab"])));
        let two = p.add(vec![("b".into(), 1), ("a".into(), 0)], false);
        assert_eq!(&*p.encode(two, &[json!(1), json!("é\"")], None), r#"{"b":"é\"","a":1}"#);
    }
}
