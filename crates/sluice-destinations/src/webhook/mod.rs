//! The `webhook` destination: `POST {"batch": [ITEM, ...]}` as JSON (SPEC §7).

mod config;
mod sink;

pub use config::WebhookConfig;
pub use sink::WebhookSink;

use sluice_core::{Change, ConsentMode, KindInfo};

/// The `webhook` kind in the registry.
pub const KIND: crate::Registration = crate::Registration {
    info: KindInfo {
        name: "webhook",
        consent: ConsentMode::Filters,
        changes: &[Change::Added, Change::Updated, Change::Deleted],
        events: true,
        deletes_person: false,
        secret_settings: &["headers"],
        url_settings: &["url"],
        address_settings: &[],
    },
    check: |s| WebhookConfig::parse(s).map(|_| ()),
    build: |d, ctx| Ok(Box::new(WebhookSink::new(WebhookConfig::parse(&d.settings)?, ctx))),
};

#[cfg(test)]
mod tests;
