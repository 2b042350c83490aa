//! The `salesforce` destination: Bulk API 2.0 ingest jobs. Added and updated records are
//! upserted by the object's external id field (create job → upload CSV with `PUT .../batches`
//! → close with `UploadComplete` → poll the job, bounded, until `JobComplete`, `Failed` or
//! `Aborted` → read `successfulResults/`, `failedResults/` and `unprocessedrecords/`, joined
//! back to the records by external id, since Salesforce does not keep their order). Deleted
//! records: their Salesforce `Id`s are looked up by external id (SOQL), then a `delete` job
//! runs the same way. CSV is written and read with the `csv` crate. A 403
//! `REQUEST_LIMIT_EXCEEDED` is throttling. Streaming: Salesforce has no event API here; the
//! kind takes no streamed events (docs/destinations/salesforce.md).

mod config;
mod job;
mod results;
mod sink;

pub use config::SalesforceConfig;
pub use sink::SalesforceSink;

use sluice_core::{Change, ConsentMode, KindInfo};

/// The `salesforce` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "salesforce",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: false,
        deletes_person: false,
        secret_settings: &["access_token"],
        url_settings: &["endpoint"],
        address_settings: &["object"],
    },
    check: |s| SalesforceConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(SalesforceSink::new(SalesforceConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
