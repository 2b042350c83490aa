//! What a mapping sends for a row: its fields as one JSON object, encoded once per row for
//! every mapping that projects the same fields, and hashed for the diff.

use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// The field projections of a model's mappings, computed lazily per row.
pub struct Projections {
    specs: Vec<Vec<(String, usize)>>,
    bufs: Vec<Vec<u8>>,
    hashes: Vec<u64>,
    fresh: Vec<bool>,
}

impl Projections {
    /// No projections yet.
    pub fn new() -> Self {
        Self { specs: vec![], bufs: vec![], hashes: vec![], fresh: vec![] }
    }

    /// The index of a projection (field name, column index), shared when identical.
    pub fn add(&mut self, spec: Vec<(String, usize)>) -> usize {
        if let Some(i) = self.specs.iter().position(|s| *s == spec) {
            return i;
        }
        self.specs.push(spec);
        self.bufs.push(Vec::with_capacity(256));
        self.hashes.push(0);
        self.fresh.push(false);
        self.specs.len() - 1
    }

    /// Forgets the previous row.
    pub fn next_row(&mut self) {
        self.fresh.iter_mut().for_each(|f| *f = false);
    }

    /// The encoded object and its hash for projection `i` of `values`.
    pub fn get(&mut self, i: usize, values: &[Value]) -> (&[u8], u64) {
        if !self.fresh[i] {
            let buf = &mut self.bufs[i];
            buf.clear();
            let mut ser = serde_json::Serializer::new(&mut *buf);
            let mut map = ser.serialize_map(Some(self.specs[i].len())).expect("in-memory writes do not fail");
            for (name, c) in &self.specs[i] {
                map.serialize_entry(name, &values[*c]).expect("in-memory writes do not fail");
            }
            map.end().expect("in-memory writes do not fail");
            self.hashes[i] = xxhash_rust::xxh3::xxh3_64(buf);
            self.fresh[i] = true;
        }
        (&self.bufs[i], self.hashes[i])
    }
}
