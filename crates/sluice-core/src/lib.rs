//! The consent/policy core of Sluice.
//!
//! Everything here is pure: it parses and validates the workspace file, and decides, for a
//! record and a destination, whether consent lets the record through (docs/CONSENT.md, R1–R12).
//! No function in this crate performs I/O, so the rules can be tested exhaustively.

pub mod alerts;
pub mod catalog;
pub mod cloud;
pub mod config;
pub mod consent;
pub mod credentials;
pub mod env;
pub mod events;
pub mod profiles;
pub mod redact;
pub mod schedule;
pub mod secret;
pub mod source;
pub mod validate;
pub mod withdrawal;

pub use catalog::{Catalog, ConsentMode, KindInfo};
pub use config::*;
pub use consent::{parse_consent, ConsentValue, Gate, Verdict};
pub use redact::{redact_url, redact_urls_in, url_has_credentials};
pub use secret::{exposing, Secret, SET};
pub use source::*;
pub use validate::{validate, ConfigError, ConfigErrors, Validated};

/// What a caught panic said, for logs (`"a panic without a message"` when it said nothing).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
