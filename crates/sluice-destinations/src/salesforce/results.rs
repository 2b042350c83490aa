//! The result CSVs of a finished ingest job, read with the `csv` crate and keyed by a column
//! (the external id of an upsert, the `Id` of a delete): Salesforce does not keep the order
//! of the upload, so results are joined back by that key, never by position.

use std::collections::HashMap;

/// Per-record results of one job, by key.
#[derive(Debug, Default)]
pub struct Results {
    /// Keys Salesforce took.
    pub ok: HashMap<String, ()>,
    /// Keys it refused, with `sf__Error`.
    pub failed: HashMap<String, String>,
    /// Keys it did not process (the job failed or was aborted first).
    pub unprocessed: HashMap<String, ()>,
}

/// Which result file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    /// `successfulResults/`: `sf__Id, sf__Created, <columns>`.
    Successful,
    /// `failedResults/`: `sf__Id, sf__Error, <columns>`.
    Failed,
    /// `unprocessedrecords/`: `<columns>`.
    Unprocessed,
}

impl File {
    /// The path segment after `jobs/ingest/{id}/`.
    pub fn path(self) -> &'static str {
        match self {
            File::Successful => "successfulResults/",
            File::Failed => "failedResults/",
            File::Unprocessed => "unprocessedrecords/",
        }
    }
}

/// Most rows one result file may hold (far above a job's records: a bound on what is read).
const MAX_ROWS: usize = 200_000;

impl Results {
    /// Reads one result file into `self`; returns how many rows it held. A file that is not
    /// CSV, lacks the key column (or `sf__Error` for failures), or has a row of another width
    /// is refused with what is wrong.
    pub fn add(&mut self, file: File, csv_text: &[u8], key: &str) -> Result<usize, String> {
        let what = file.path().trim_end_matches('/');
        if csv_text.iter().all(u8::is_ascii_whitespace) {
            return Ok(0);
        }
        let mut r = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(csv_text);
        let headers = r.headers().map_err(|e| format!("{what} is not CSV: {e}"))?.clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let k = col(key).ok_or_else(|| {
            format!(
                "{what} has no `{key}` column (columns: {})",
                crate::error::excerpt(&headers.iter().collect::<Vec<_>>().join(","), 200)
            )
        })?;
        let err_col = if file == File::Failed {
            Some(col("sf__Error").ok_or_else(|| format!("{what} has no `sf__Error` column"))?)
        } else {
            None
        };
        let mut n = 0;
        for row in r.records() {
            let row = row.map_err(|e| format!("{what} is not valid CSV: {e}"))?;
            n += 1;
            if n > MAX_ROWS {
                return Err(format!("{what} holds more than {MAX_ROWS} rows"));
            }
            let id = row.get(k).unwrap_or_default().to_string();
            match file {
                File::Successful => {
                    self.ok.insert(id, ());
                }
                File::Failed => {
                    let e = err_col.and_then(|c| row.get(c)).unwrap_or_default();
                    self.failed.insert(id, e.to_string());
                }
                File::Unprocessed => {
                    self.unprocessed.insert(id, ());
                }
            }
        }
        Ok(n)
    }
}

/// Whether an `sf__Error` is worth retrying (a lock or a temporary outage) rather than a
/// rejection of the record.
pub fn transient(error: &str) -> bool {
    ["UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"]
        .iter()
        .any(|c| error.starts_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_files_are_joined_by_key_whatever_their_order() {
        let mut r = Results::default();
        let ok = "sf__Id,sf__Created,Ext__c,Email\n003B,false,2,b@x\n003A,true,1,\"a,\"\"quoted\"\"@x\"\n";
        assert_eq!(r.add(File::Successful, ok.as_bytes(), "Ext__c"), Ok(2));
        let failed = "sf__Id,sf__Error,Ext__c,Email\n,\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",3,c@x\n";
        assert_eq!(r.add(File::Failed, failed.as_bytes(), "Ext__c"), Ok(1));
        assert!(r.ok.contains_key("1") && r.ok.contains_key("2"));
        assert!(r.failed["3"].starts_with("REQUIRED_FIELD_MISSING"));
        assert_eq!(r.add(File::Unprocessed, b"", "Ext__c"), Ok(0));
    }

    #[test]
    fn garbage_and_cut_files_are_refused() {
        let mut r = Results::default();
        assert!(r.add(File::Successful, b"<html>oops</html>", "Ext__c").unwrap_err().contains("no `Ext__c` column"));
        let cut = "sf__Id,sf__Created,Ext__c\n003A,true,1\n003B,tr";
        assert!(r.add(File::Successful, cut.as_bytes(), "Ext__c").unwrap_err().contains("not valid CSV"));
        assert!(r.add(File::Failed, b"sf__Id,Ext__c\n1,2\n", "Ext__c").unwrap_err().contains("sf__Error"));
        assert!(transient("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"));
        assert!(!transient("INVALID_EMAIL_ADDRESS:Email: invalid email address: x:Email --"));
    }
}
