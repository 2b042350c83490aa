//! The consuming side of a scan: groups rows by id (duplicates and NULL ids are rejected),
//! counts consent warnings, and hands each valid row to every mapping.

use super::{reject, Mappings};
use crate::report::RunReport;
use sluice_core::{parse_consent, ConsentValue};
use sluice_state::{StateError, StateStore};
use sluice_warehouse::{IdOrder, Row};

/// Rows of one sync, in id order.
pub(super) struct Rows<'a> {
    pub store: &'a mut StateStore,
    pub report: &'a mut RunReport,
    pub maps: &'a mut Mappings,
    pub consent_cols: &'a [(String, usize)],
    pub order: IdOrder,
    /// The id being read, its first row, and how many more rows had the same id.
    group: Option<(String, Row, u64)>,
}

impl<'a> Rows<'a> {
    pub fn new(
        store: &'a mut StateStore,
        report: &'a mut RunReport,
        maps: &'a mut Mappings,
        consent_cols: &'a [(String, usize)],
        order: IdOrder,
    ) -> Self {
        Self { store, report, maps, consent_cols, order, group: None }
    }

    /// The next row of the scan.
    pub fn push(&mut self, mut row: Row) -> Result<(), StateError> {
        self.report.extracted += 1;
        let Some(id) = row.id.take() else {
            reject(self.report, "null_id", "NULL", 1);
            return Ok(());
        };
        if let Some((gid, _, dups)) = &mut self.group {
            if *gid == id {
                *dups += 1;
                return Ok(());
            }
        }
        match self.group.replace((id, row, 0)) {
            Some(g) => self.finish_group(g),
            None => Ok(()),
        }
    }

    /// After the last row of a complete scan.
    pub fn finish(&mut self) -> Result<(), StateError> {
        match self.group.take() {
            Some(g) => self.finish_group(g),
            None => Ok(()),
        }
    }

    fn finish_group(&mut self, (id, row, dups): (String, Row, u64)) -> Result<(), StateError> {
        let values = &row.values;
        let Some(key) = self.order.key(&id) else {
            // the scan's order guard refuses such ids before they get here
            reject(self.report, "bad_id", &id, dups + 1);
            return Ok(());
        };
        if dups > 0 {
            reject(self.report, "duplicate_id", &id, dups + 1);
            self.maps.duplicated.insert(id.clone());
            for m in &mut self.maps.runs {
                m.skip(self.store, &key)?;
            }
            return Ok(());
        }
        for (cat, c) in self.consent_cols {
            if parse_consent(&values[*c]) == ConsentValue::Invalid {
                *self.report.consent_warnings.entry(cat.clone()).or_default() += 1;
            }
        }
        self.maps.payloads.next_row();
        for m in &mut self.maps.runs {
            m.row(self.store, &key, &id, values, row.raw.as_ref(), &mut self.maps.payloads)?;
        }
        Ok(())
    }
}
