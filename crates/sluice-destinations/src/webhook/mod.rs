//! The `webhook` destination: `POST {"batch": [ITEM, ...]}` as JSON (SPEC §7).

mod config;
mod sink;

pub use config::WebhookConfig;
pub use sink::WebhookSink;

#[cfg(test)]
mod tests;
