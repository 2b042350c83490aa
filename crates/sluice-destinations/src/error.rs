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

    /// Classifies an HTTP status: 408, 429 and 5xx are retryable; other 4xx (and 3xx, which
    /// the client did not follow) reject the records permanently.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let body: String = body.chars().take(300).collect();
        let message = format!("HTTP {status}: {body}");
        if status == 408 || status == 429 || status >= 500 {
            Self { class: ErrorClass::External, retryable: true, message, retry_after }
        } else {
            Self { class: ErrorClass::User, retryable: false, message, retry_after: None }
        }
    }
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

/// Parses a `Retry-After` value: delay in seconds (the HTTP-date form is treated as 1 s).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.parse::<f64>().map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0))).unwrap_or(Duration::from_secs(1)))
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
