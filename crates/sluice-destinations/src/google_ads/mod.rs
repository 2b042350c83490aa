//! The `google_ads` destination: Customer Match through the Google Ads API's
//! OfflineUserDataJobService (REST): create a `CUSTOMER_MATCH_USER_LIST` job for the user list,
//! `addOperations` (create for added/updated records, remove for deleted ones; partial failure
//! on, each failed operation mapped back to its record by index), `run`, then poll the job's
//! status with `googleAds:search` (bounded). Identifiers are SHA-256 of Google's normalised
//! email and E.164 phone (`match_key: contact_info`) or the record's unique id as
//! `thirdPartyUserId` (`match_key: crm_id`). Streaming: Customer Match has no events; the kind
//! takes no streamed events (docs/destinations/google_ads.md).

mod config;
mod sink;

pub use config::{GoogleAdsConfig, MatchKey};
pub use sink::GoogleAdsSink;

use sluice_core::{Change, ConsentMode, KindInfo};

/// The `google_ads` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "google_ads",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: false,
        deletes_person: false,
        secret_settings: &["developer_token", "access_token"],
        url_settings: &["endpoint"],
        address_settings: &["customer_id", "user_list_id", "login_customer_id"],
    },
    check: |s| GoogleAdsConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(GoogleAdsSink::new(GoogleAdsConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
