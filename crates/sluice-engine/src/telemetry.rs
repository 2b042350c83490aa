//! Telemetry as typed events: one `emit()` logs and counts together (as vector's
//! `internal_events`). Counts land in the run's [`crate::MappingReport`].

use crate::report::MappingReport;

/// Discard code for records consent kept from a destination (as in Segment's Delivery Overview).
pub const FILTERED_BY_END_USER_CONSENT: &str = "FILTERED_BY_END_USER_CONSENT";

/// Something that happened to records of a mapping.
pub enum Event<'a> {
    /// A record was withheld by consent; `categories` are the ones that refused.
    Withheld {
        /// Record id.
        id: &'a str,
        /// Refusing category ids.
        categories: &'a [&'a str],
    },
    /// Consent was withdrawn from a record the destination holds: its delete call is queued
    /// (R13; counted in `deleted` too).
    WithdrawalDelete {
        /// Record id.
        id: &'a str,
    },
    /// A batch was delivered.
    Delivered {
        /// Items in it.
        count: u64,
    },
    /// An item failed.
    Failed {
        /// Record id.
        id: &'a str,
        /// Whether it will be retried on a later sync.
        retryable: bool,
        /// The error.
        error: &'a str,
    },
}

/// Logs the event and counts it into `report`.
pub fn emit(report: &mut MappingReport, event: Event<'_>) {
    match event {
        Event::Withheld { id, categories } => {
            report.withheld_by_consent += 1;
            for c in categories {
                *report.withheld_by_category.entry((*c).to_string()).or_default() += 1;
            }
            tracing::trace!(destination = %report.destination, id, code = FILTERED_BY_END_USER_CONSENT, "record withheld by consent");
        }
        Event::WithdrawalDelete { id } => {
            report.deleted_on_withdrawal += 1;
            tracing::debug!(destination = %report.destination, id, reason = "consent_withdrawn", "delete queued on withdrawal");
        }
        Event::Delivered { count } => {
            report.delivered += count;
            tracing::debug!(destination = %report.destination, count, "batch delivered");
        }
        Event::Failed { id, retryable, error } => {
            if retryable {
                report.failed_retryable += 1;
            } else {
                report.failed_permanent += 1;
            }
            report.failed += 1;
            tracing::warn!(destination = %report.destination, id, retryable, error, "record not delivered");
        }
    }
}
