//! Client-side rate limits: Sluice paces its own requests to a vendor so it does not provoke
//! the vendor's throttling in the first place.
//!
//! Each SaaS kind declares its vendor's documented rate ([`VendorRate`], from
//! `research/destinations.md`); a destination's `max_requests_per_second` setting may lower it,
//! never raise it. One limiter ([`governor`]'s GCRA) exists per destination in the process:
//! every worker of that destination (each model's Reverse ETL sync, the streaming worker)
//! waits on the same one, so together they never exceed the rate.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use sluice_core::ConfigError;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The setting a destination lowers its rate with, in requests per second.
pub const SETTING: &str = "max_requests_per_second";

/// A vendor's documented request rate: `requests` per `per`, with bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VendorRate {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
}

impl VendorRate {
    /// `requests` per second.
    pub const fn per_second(requests: u32) -> Self {
        Self { requests, per: Duration::from_secs(1) }
    }

    /// `requests` per minute.
    pub const fn per_minute(requests: u32) -> Self {
        Self { requests, per: Duration::from_secs(60) }
    }

    /// The rate in requests per second.
    pub fn per_sec(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64().max(1e-9)
    }
}

/// The rate a destination actually uses: its vendor's, or lower if `max_requests_per_second`
/// says so.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second.
    pub per_second: f64,
    /// Largest burst (at least 1).
    pub burst: u32,
}

impl Rate {
    /// Checks `max_requests_per_second` (if set) against the vendor's rate, naming the setting.
    pub fn new(vendor: VendorRate, max_requests_per_second: Option<f64>) -> Result<Self, ConfigError> {
        let vendor_rps = vendor.per_sec();
        let Some(want) = max_requests_per_second else {
            return Ok(Self { per_second: vendor_rps, burst: vendor.requests.max(1) });
        };
        if !want.is_finite() || want <= 0.0 {
            return Err(ConfigError::new(
                SETTING,
                format!("must be a number of requests per second above 0 (got {want})"),
            ));
        }
        if want > vendor_rps + 1e-9 {
            return Err(ConfigError::new(
                SETTING,
                format!(
                    "must be at most {vendor_rps} (the vendor's documented rate: {} requests per {} s); it can only lower it",
                    vendor.requests,
                    vendor.per.as_secs_f64()
                ),
            ));
        }
        // a lowered rate bursts at most one second's worth
        Ok(Self { per_second: want, burst: (want.floor() as u32).clamp(1, vendor.requests.max(1)) })
    }

    fn quota(&self) -> Quota {
        let period = Duration::from_secs_f64(1.0 / self.per_second.max(1e-6)).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period).map(|q| q.allow_burst(burst)).unwrap_or_else(|| Quota::per_second(burst))
    }
}

/// A limiter shared by every worker of one destination in the process.
pub struct Limiter {
    rate: Rate,
    inner: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("rate", &self.rate).finish()
    }
}

impl Limiter {
    /// A limiter of its own (not shared): tests and one-off clients.
    pub fn new(rate: Rate) -> Self {
        Self { rate, inner: DefaultDirectRateLimiter::direct(rate.quota()) }
    }

    /// The limiter of destination `key` (`kind/destination`) in this process, created at `rate`
    /// on first use; a later call with another rate (the setting changed) replaces it.
    pub fn shared(key: &str, rate: Rate) -> Arc<Self> {
        static ALL: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
        let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        match all.get(key) {
            Some(l) if l.rate == rate => l.clone(),
            _ => {
                let l = Arc::new(Self::new(rate));
                all.insert(key.to_string(), l.clone());
                l
            }
        }
    }

    /// The rate it enforces.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Blocks until one more request may be sent; returns how long it waited.
    pub fn wait(&self) -> Duration {
        let clock = DefaultClock::default();
        let mut waited = Duration::ZERO;
        loop {
            match self.inner.check() {
                Ok(()) => {
                    if !waited.is_zero() {
                        tracing::debug!(waited_ms = waited.as_millis() as u64, "client-side rate limit");
                    }
                    return waited;
                }
                Err(not_until) => {
                    let d = not_until.wait_time_from(clock.now()).max(Duration::from_micros(50));
                    std::thread::sleep(d);
                    waited += d;
                }
            }
        }
    }
}

/// The key a destination's limiter is shared under: its kind and its name (the last part of
/// the mapping key, `model/destination` or `stream/destination`).
pub fn destination_key(kind: &str, mapping_key: &str) -> String {
    format!("{kind}/{}", mapping_key.rsplit('/').next().unwrap_or(mapping_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_setting_can_lower_the_vendor_rate_but_not_raise_it() {
        let v = VendorRate::per_second(10);
        assert_eq!(Rate::new(v, None).unwrap(), Rate { per_second: 10.0, burst: 10 });
        assert_eq!(Rate::new(v, Some(2.0)).unwrap(), Rate { per_second: 2.0, burst: 2 });
        assert_eq!(Rate::new(v, Some(0.5)).unwrap().burst, 1);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 11.0] {
            let e = Rate::new(v, Some(bad)).unwrap_err();
            assert_eq!(e.at, SETTING, "{bad}");
        }
        assert!(Rate::new(v, Some(11.0)).unwrap_err().message.contains("at most 10"));
        let m = VendorRate::per_minute(600);
        assert!((m.per_sec() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn requests_beyond_the_burst_wait_for_the_rate() {
        let l = Limiter::new(Rate::new(VendorRate::per_second(20), None).unwrap());
        let t = Instant::now();
        for _ in 0..30 {
            l.wait();
        }
        // 20 at once, then 10 more at 20/s: at least ~0.5 s
        assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn one_limiter_per_destination_shared_by_its_workers() {
        let rate = Rate::new(VendorRate::per_second(5), None).unwrap();
        let a = Limiter::shared(&destination_key("braze", "users/crm"), rate);
        let b = Limiter::shared(&destination_key("braze", "events/crm"), rate);
        assert!(Arc::ptr_eq(&a, &b), "two workers of destination `crm` share one limiter");
        let c = Limiter::shared(&destination_key("braze", "users/other"), rate);
        assert!(!Arc::ptr_eq(&a, &c));
        let lower = Rate::new(VendorRate::per_second(5), Some(1.0)).unwrap();
        let d = Limiter::shared(&destination_key("braze", "users/crm"), lower);
        assert_eq!(d.rate(), lower, "a changed setting takes effect");
    }
}
