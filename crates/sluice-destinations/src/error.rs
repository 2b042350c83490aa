//! Delivery errors, classified, and the one retry policy that acts on them.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Who is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// The data or configuration (e.g. a 400 for a bad record): fix the input.
    User,
    /// The destination or network (5xx, 429, timeouts): usually passes.
    External,
    /// A bug or local failure in Sluice.
    Internal,
}

/// Why an item was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{message}")]
pub struct DeliveryError {
    /// Who is at fault.
    pub class: ErrorClass,
    /// Whether a later attempt may succeed.
    pub retryable: bool,
    /// What happened (status and the start of the response body).
    pub message: String,
    /// How long the receiver asked us to wait (`Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    /// A retryable failure of the destination or network.
    pub fn external(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::External, retryable: true, message: message.into(), retry_after: None }
    }

    /// A permanent rejection of the record.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::User, retryable: false, message: message.into(), retry_after: None }
    }

    /// Classifies an HTTP answer that is not a 2xx: 408, 429 and 5xx are retryable; other 4xx
    /// reject the records permanently; 1xx (and anything else unexpected) is a retryable fault
    /// of the receiver. A 3xx is [`DeliveryError::redirected`].
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let message = format!("HTTP {status}: {}", excerpt(body, MAX_MESSAGE_BODY));
        match status {
            300..=399 => Self::redirected(status, None),
            408 | 429 => Self { class: ErrorClass::External, retryable: true, message, retry_after },
            400..=499 => Self { class: ErrorClass::User, retryable: false, message, retry_after: None },
            _ => Self { class: ErrorClass::External, retryable: true, message, retry_after },
        }
    }

    /// A 3xx: the receiver did not take the records, it points elsewhere (Sluice never follows
    /// redirects: it would re-send secrets and personal data to a host nobody configured).
    /// Nothing is wrong with the records, the destination's `url` is: the failure is the
    /// configuration's (`user`) but retryable, so the records stay queued (streaming) or
    /// pending (Reverse ETL) until the URL is fixed instead of being rejected one by one.
    pub fn redirected(status: u16, location: Option<&str>) -> Self {
        let to = match location.map(str::trim).filter(|l| !l.is_empty()) {
            Some(l) => format!("redirected to {}", excerpt(l, MAX_MESSAGE_BODY)),
            None => "redirected without a Location".to_string(),
        };
        Self {
            class: ErrorClass::User,
            retryable: true,
            message: format!(
                "HTTP {status}: {to}; redirects are not followed: set the destination's url to the final address"
            ),
            retry_after: None,
        }
    }
}

/// The most characters of a response body (or `Location`) kept in an error message.
pub const MAX_MESSAGE_BODY: usize = 300;

/// The first `max` characters of `s`, with `…` when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Retries within one sync: exponential backoff with jitter, honouring `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay.
    pub initial: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one ends this sync's attempts (retried next sync).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0: the first) by a caller that keeps its own
    /// durable schedule (the streaming worker): `initial` doubled per retry, at most `max_delay`.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.initial.saturating_mul(1u32 << retry.min(20)).min(self.max_delay.max(self.initial))
    }

    /// Runs `attempt` until it succeeds, fails permanently, or attempts run out.
    pub fn run<T>(&self, mut attempt: impl FnMut(u32) -> Result<T, DeliveryError>) -> Result<T, DeliveryError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        let mut n = 0;
        loop {
            n += 1;
            let err = match attempt(n) {
                Ok(v) => return Ok(v),
                Err(e) if !e.retryable => return Err(e),
                Err(e) => e,
            };
            let Some(backoff) = delays.next() else { return Err(err) };
            let wait = match err.retry_after {
                Some(ra) if ra > self.max_retry_after => return Err(err),
                Some(ra) => ra.max(backoff),
                None => backoff,
            };
            tracing::debug!(attempt = n, wait_ms = wait.as_millis() as u64, error = %err.message, "retrying delivery");
            std::thread::sleep(wait);
        }
    }
}

/// The longest wait a `Retry-After` can ask for; longer ones (and infinities) are clamped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// Parses a `Retry-After` value (RFC 9110 §10.2.3) as the wait from now: delay-seconds or an
/// HTTP-date (a past date: no wait). Never fails on what a receiver sends: decimal, negative,
/// infinite or huge numbers are clamped to `0..=MAX_RETRY_AFTER`; NaN and anything else that is
/// neither a number nor a date is ignored (`None`, as if the header were absent).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    parse_retry_after_at(v, std::time::SystemTime::now())
}

/// [`parse_retry_after`] as of `now`.
pub fn parse_retry_after_at(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // more digits than a u64 holds is still a (very long) delay
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if let Ok(at) = httpdate::parse_http_date(v) {
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER));
    }
    // not RFC 9110, but seen in the wild: "1.5", "-1", "1e3"
    let secs = v.parse::<f64>().ok().filter(|s| !s.is_nan())?;
    Some(Duration::try_from_secs_f64(secs.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64())).unwrap_or(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert!(DeliveryError::from_status(500, "", None).retryable);
        assert!(DeliveryError::from_status(429, "", None).retryable);
        assert!(DeliveryError::from_status(408, "", None).retryable);
        let e = DeliveryError::from_status(422, "bad email", None);
        assert!(!e.retryable && e.class == ErrorClass::User && e.message.contains("bad email"));
        let long = "x".repeat(10_000);
        assert!(DeliveryError::from_status(400, &long, None).message.chars().count() < 320);
        let r = DeliveryError::redirected(301, Some("https://elsewhere.example/hook"));
        assert!(r.retryable && r.class == ErrorClass::User && r.message.contains("https://elsewhere.example/hook"));
        assert!(DeliveryError::from_status(302, "", None).retryable);
        assert!(DeliveryError::from_status(101, "", None).retryable);
    }

    #[test]
    fn retry_after_never_panics_and_is_clamped() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = |v: &str| parse_retry_after_at(v, now);
        assert_eq!(p("5"), Some(Duration::from_secs(5)));
        assert_eq!(p(" 0 "), Some(Duration::ZERO));
        assert_eq!(p("1.5"), Some(Duration::from_millis(1500)));
        for huge in ["18446744073709551616", "99999999999999999999999999", "1e300", "inf", "+Infinity"] {
            assert_eq!(p(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for zero in ["-1", "-inf", "-0.5"] {
            assert_eq!(p(zero), Some(Duration::ZERO), "{zero}");
        }
        for garbage in ["", "nan", "NaN", "-nan", "soon", "1 2", "0x10", "\u{1F600}"] {
            assert_eq!(p(garbage), None, "{garbage}");
        }
        // HTTP-date: the wait until then; a past date: no wait
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(p(&later), Some(Duration::from_secs(90)));
        assert_eq!(p("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(p("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_policy_stops_on_permanent_and_honours_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            initial: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..Default::default()
        };
        let mut calls = 0;
        let r: Result<(), _> = p.run(|_| {
            calls += 1;
            Err(DeliveryError::external("down"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 3);
        calls = 0;
        let r: Result<(), _> = p.run(|_| {
            calls += 1;
            Err(DeliveryError::rejected("no"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let r = p.run(|n| if n < 2 { Err(DeliveryError::external("x")) } else { Ok(n) });
        assert_eq!(r, Ok(2));
    }

    #[test]
    fn retry_after_too_long_gives_up_now() {
        let p = RetryPolicy { max_retry_after: Duration::from_secs(1), ..Default::default() };
        let mut calls = 0;
        let r: Result<(), _> = p.run(|_| {
            calls += 1;
            Err(DeliveryError::from_status(429, "", parse_retry_after("3600")))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
