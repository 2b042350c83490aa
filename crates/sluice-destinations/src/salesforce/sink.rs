use super::config::is_api_name;
use super::job::{Api, Finished};
use super::results::transient;
use super::SalesforceConfig;
use crate::throttle::salesforce;
use crate::vendor::VendorClient;
use crate::{BuildContext, DeliveryError, Destination, ErrorClass, Item, Outcome, RetryPolicy};
use serde_json::Value;
use sluice_core::Change;
use std::collections::BTreeSet;

/// Upserts and deletes records through Bulk API 2.0 ingest jobs.
pub struct SalesforceSink {
    config: SalesforceConfig,
    client: VendorClient,
    auth: String,
}

/// A CSV cell of a mapped value: text as is, numbers and booleans written out, null as
/// `#N/A` (Salesforce's way to clear a field), objects and arrays as JSON text.
fn cell(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Null) => "#N/A".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One CSV row as bytes (quoted by the `csv` crate, LF line ending).
fn csv_row<'a>(cells: impl IntoIterator<Item = &'a str>) -> Result<Vec<u8>, DeliveryError> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(cells).map_err(|e| DeliveryError::rejected(format!("cannot write the CSV row: {e}")))?;
    w.into_inner().map_err(|e| DeliveryError::rejected(format!("cannot write the CSV row: {e}")))
}

impl SalesforceSink {
    /// A sink for `config`.
    pub fn new(config: SalesforceConfig, ctx: &BuildContext) -> Self {
        let opts = config.options.clone().unwrap_or_else(|| crate::vendor::VendorOptions {
            http: Default::default(),
            rate: crate::ratelimit::Rate::new(super::config::RATE, None).expect("the vendor rate is valid"),
        });
        let client = VendorClient::new("salesforce", &opts, ctx, Some(salesforce));
        let auth = format!("Bearer {}", config.access_token.expose());
        Self { config, client, auth }
    }

    fn api(&self) -> Api<'_> {
        Api { config: &self.config, client: &self.client, auth: &self.auth }
    }

    /// Upserts `items` (indexes into `all`): one CSV per job within `max_upload_bytes`.
    fn upsert(&self, all: &[Item], idx: &[usize], out: &mut [Outcome]) {
        let ext = &self.config.external_id_field;
        let data: Vec<serde_json::Map<String, Value>> = idx
            .iter()
            .map(|i| match all[*i].data_value() {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            })
            .collect();
        // the columns: the external id, then every mapped field of the batch
        let mut columns: BTreeSet<&str> = BTreeSet::new();
        for (n, d) in data.iter().enumerate() {
            if let Some(bad) = d.keys().find(|k| !is_api_name(k)) {
                out[idx[n]] = Err(DeliveryError::rejected(format!(
                    "the mapped field `{}` is not a Salesforce field API name (map it to one, e.g. Email or My_Field__c)",
                    bad.escape_debug()
                )));
                continue;
            }
            columns.extend(d.keys().map(String::as_str).filter(|k| !k.eq_ignore_ascii_case(ext)));
        }
        let mut header: Vec<&str> = vec![ext.as_str()];
        header.extend(columns.iter().copied());
        let head = match csv_row(header.iter().copied()) {
            Ok(h) => h,
            Err(e) => return idx.iter().for_each(|i| out[*i] = Err(e.clone())),
        };
        let mut jobs: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for (n, d) in data.iter().enumerate() {
            let i = idx[n];
            if out[i].is_err() {
                continue;
            }
            let cells: Vec<String> =
                std::iter::once(all[i].id.clone()).chain(columns.iter().map(|c| cell(d.get(*c)))).collect();
            let row = match csv_row(cells.iter().map(String::as_str)) {
                Ok(r) => r,
                Err(e) => {
                    out[i] = Err(e);
                    continue;
                }
            };
            if head.len() + row.len() > self.config.max_upload_bytes {
                out[i] = Err(DeliveryError::rejected(format!(
                    "the record's CSV row is {} bytes, over max_upload_bytes ({})",
                    row.len(),
                    self.config.max_upload_bytes
                )));
                continue;
            }
            match jobs.last_mut() {
                Some((csv, members)) if csv.len() + row.len() <= self.config.max_upload_bytes => {
                    csv.extend_from_slice(&row);
                    members.push(i);
                }
                _ => {
                    let mut csv = head.clone();
                    csv.extend_from_slice(&row);
                    jobs.push((csv, vec![i]));
                }
            }
        }
        for (csv, members) in jobs {
            let keys: Vec<String> = members.iter().map(|i| all[*i].id.clone()).collect();
            self.settle(self.api().run("upsert", &csv, ext), &members, &keys, out);
        }
    }

    /// Deletes `idx` records: their `Id`s looked up by external id, then one delete job.
    fn delete(&self, all: &[Item], idx: &[usize], out: &mut [Outcome]) {
        let ext_ids: Vec<String> = idx.iter().map(|i| all[*i].id.clone()).collect();
        let found = match self.api().ids_of(&ext_ids) {
            Ok(f) => f,
            Err(e) => return idx.iter().for_each(|i| out[*i] = Err(e.clone())),
        };
        let mut csv = b"Id\n".to_vec();
        let (mut members, mut keys) = (Vec::new(), Vec::new());
        for (i, ext_id) in idx.iter().zip(&ext_ids) {
            match found.get(ext_id) {
                // Salesforce holds no record with this external id: nothing to delete
                None => tracing::debug!(id = %ext_id, "no Salesforce record to delete"),
                Some(sf) => {
                    csv.extend_from_slice(sf.as_bytes());
                    csv.push(b'\n');
                    members.push(*i);
                    keys.push(sf.clone());
                }
            }
        }
        if !members.is_empty() {
            self.settle(self.api().run("delete", &csv, "Id"), &members, &keys, out);
        }
    }

    /// One outcome per record of a job, joined by key: failed → Salesforce's `sf__Error`
    /// (retryable when it is a lock or outage), successful → taken, unprocessed or missing →
    /// retryable.
    fn settle(&self, job: Result<Finished, DeliveryError>, members: &[usize], keys: &[String], out: &mut [Outcome]) {
        let f = match job {
            Ok(f) => f,
            Err(e) => return members.iter().for_each(|i| out[*i] = Err(e.clone())),
        };
        for (i, key) in members.iter().zip(keys) {
            out[*i] = if let Some(err) = f.results.failed.get(key) {
                let retryable = transient(err);
                Err(DeliveryError {
                    class: if retryable { ErrorClass::External } else { ErrorClass::User },
                    retryable,
                    message: format!("Salesforce: {}", crate::error::excerpt(err, crate::error::MAX_MESSAGE_BODY)),
                    retry_after: None,
                })
            } else if f.results.ok.contains_key(key) {
                Ok(())
            } else {
                let why = if f.results.unprocessed.contains_key(key) { "was not processed" } else { "has no result" };
                Err(DeliveryError::external(format!(
                    "the record {why} in the job (state {}{})",
                    f.state,
                    f.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )))
            };
        }
    }
}

impl Destination for SalesforceSink {
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn deliver(&mut self, items: &[Item]) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = items.iter().map(|_| Ok(())).collect();
        let (dels, ups): (Vec<usize>, Vec<usize>) = (0..items.len()).partition(|i| items[*i].action == Change::Deleted);
        if !ups.is_empty() {
            self.upsert(items, &ups, &mut out);
        }
        if !dels.is_empty() {
            self.delete(items, &dels, &mut out);
        }
        out
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.client.policy())
    }
}
