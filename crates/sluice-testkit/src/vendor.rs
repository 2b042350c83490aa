//! The shape every SaaS vendor fake shares (issue 12), so one fault suite and one consent
//! property run against every destination kind.
//!
//! A fake is a real HTTP server on 127.0.0.1 that enforces its vendor's documented contract
//! (paths, auth header, limits, throttling answers, partial-failure bodies, delete endpoint) and
//! says at its top which documented behaviour it implements and where that is documented.

use std::time::Duration;

/// A fault a test scripts into a fake; it applies to the next requests the fake answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The vendor is down: the next `n` requests get a 503 (or the vendor's own outage answer).
    Outage(usize),
    /// The next `n` requests get the vendor's own throttling answer (429 with `Retry-After`,
    /// Salesforce's 403 `REQUEST_LIMIT_EXCEEDED`, Meta's Graph code, Google's
    /// `RESOURCE_EXHAUSTED`...), asking to wait this long.
    Throttle(usize, Duration),
    /// Every request that carries this record (by the identifier the vendor sees: the user id,
    /// or for hashed-identifier vendors the record's unhashed email/id as the test mapped it)
    /// gets the vendor's partial-failure answer for that record only; the rest are taken.
    RejectRecord(String),
    /// The next `n` requests are answered only after this delay (the client should time out).
    Hang(usize, Duration),
}

/// What every vendor fake offers the shared suites.
pub trait VendorFake: Send + Sync {
    /// The destination kind it fakes (`braze`, `hubspot`, ...).
    fn kind(&self) -> &'static str;
    /// The destination's `settings` pointing at this fake (its `endpoint` and credentials the
    /// fake accepts), as JSON object text would hold them.
    fn settings(&self) -> serde_json::Map<String, serde_json::Value>;
    /// Scripts a fault (see [`Fault`]).
    fn script(&self, fault: Fault);
    /// The record identifiers the vendor now holds (upserted and not deleted), in the form the
    /// tests mapped them (unhashed; a hashed-identifier fake keeps the map from the hashes the
    /// test registered with [`VendorFake::expect_identifier`]).
    fn held(&self) -> Vec<String>;
    /// Identifiers deleted through the vendor's delete call, in order.
    fn deleted(&self) -> Vec<String>;
    /// Every identifier that ever reached the vendor in any accepted or rejected request
    /// (upserts, events, deletes): what the "no withheld record ever arrives" property checks.
    fn ever_received(&self) -> Vec<String>;
    /// For hashed-identifier vendors (Google Ads, Meta): teaches the fake the plain value
    /// behind a hash so `held`/`ever_received` can name it; other fakes ignore it.
    fn expect_identifier(&self, _plain: &str) {}
    /// Whether the vendor's throttling answer says how long to wait (`Retry-After`,
    /// `X-RateLimit-Reset`, Google's `retryDelay`). Salesforce's `REQUEST_LIMIT_EXCEEDED` and
    /// Meta's Graph rate-limit codes do not: those are retried with the destination's backoff.
    fn throttle_names_wait(&self) -> bool {
        true
    }
}
