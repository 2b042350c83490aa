//! Throttling signals, read in one place: `Retry-After` (seconds or an HTTP date),
//! `X-RateLimit-Reset` (epoch seconds, as Braze sends it, or seconds from now), and the
//! vendor-specific bodies that mean "slow down" without a 429: Salesforce's 403
//! `REQUEST_LIMIT_EXCEEDED`, Meta's Graph error codes, Google's `RESOURCE_EXHAUSTED` with its
//! `retryDelay`. Each becomes a retryable [`DeliveryError`] with `retry_after`, so the one
//! [`crate::RetryPolicy`] decides what happens next.

use crate::error::{excerpt, parse_retry_after_at, MAX_MESSAGE_BODY, MAX_RETRY_AFTER};
use crate::{DeliveryError, ErrorClass};
use std::time::{Duration, SystemTime};

/// One answer of a vendor: its status, the start of its body (bounded) and the wait its
/// headers ask for (`Retry-After`, else `X-RateLimit-Reset`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body as read (at most [`crate::vendor::MAX_VENDOR_RESPONSE_BYTES`]).
    pub body: Vec<u8>,
    /// The body was longer than what was read.
    pub truncated: bool,
    /// The wait the headers ask for.
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// Whether the status is a 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`None`: not JSON, or cut short).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text, for messages.
    pub fn text(&self) -> String {
        excerpt(&String::from_utf8_lossy(&self.body), MAX_MESSAGE_BODY)
    }
}

/// A vendor's throttling answer recognised from its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    /// The wait the vendor asks for, if it says.
    pub retry_after: Option<Duration>,
    /// The vendor's own words.
    pub reason: String,
}

/// A kind's hook recognising its vendor's throttling bodies (or a retryable vendor error).
pub type VendorSignal = fn(status: u16, body: &[u8]) -> Option<Throttled>;

/// The wait asked for by `Retry-After` or, failing that, `X-RateLimit-Reset` (epoch seconds
/// when it looks like a date after 2001, else seconds from now), as of `now`.
pub fn header_wait(retry_after: Option<&str>, ratelimit_reset: Option<&str>, now: SystemTime) -> Option<Duration> {
    if let Some(d) = retry_after.and_then(|v| parse_retry_after_at(v, now)) {
        return Some(d);
    }
    let v = ratelimit_reset?.trim();
    let secs: f64 = v.parse().ok().filter(|s: &f64| s.is_finite())?;
    if secs >= 1_000_000_000.0 {
        let Some(at) = Duration::try_from_secs_f64(secs).ok().and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        else {
            return Some(MAX_RETRY_AFTER);
        };
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER));
    }
    Some(Duration::try_from_secs_f64(secs.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64())).unwrap_or(MAX_RETRY_AFTER))
}

/// Classifies an answer that is not a success: a vendor throttling body (through `signal`) or
/// a 429/408/5xx is retryable with the wait asked for; another 4xx rejects the records
/// (`user`), with the vendor's words in the message.
pub fn classify(answer: &Answer, signal: Option<VendorSignal>) -> DeliveryError {
    if let Some(t) = signal.and_then(|s| s(answer.status, &answer.body)) {
        return DeliveryError {
            class: ErrorClass::External,
            retryable: true,
            message: format!("HTTP {} (throttled): {}", answer.status, excerpt(&t.reason, MAX_MESSAGE_BODY)),
            retry_after: t.retry_after.or(answer.retry_after),
        };
    }
    DeliveryError::from_status(answer.status, &answer.text(), answer.retry_after)
}

/// Salesforce: the daily API quota exhausted is a 403 with
/// `[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":...}]`.
pub fn salesforce(status: u16, body: &[u8]) -> Option<Throttled> {
    if status != 403 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.as_array()?.iter().find(|e| e["errorCode"] == "REQUEST_LIMIT_EXCEEDED")?;
    Some(Throttled {
        retry_after: None,
        reason: format!("REQUEST_LIMIT_EXCEEDED: {}", e["message"].as_str().unwrap_or("")),
    })
}

/// Meta Graph API: `{"error":{"code":4|17|32|613|80000..=80014,...}}` are rate limits (app,
/// user, page, custom, business use case), whatever the HTTP status.
pub fn meta_graph(_status: u16, body: &[u8]) -> Option<Throttled> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v["error"]["code"].as_i64()?;
    if !matches!(code, 4 | 17 | 32 | 613 | 80000..=80014) {
        return None;
    }
    Some(Throttled {
        retry_after: None,
        reason: format!(
            "Graph error {code}/{}: {}",
            v["error"]["error_subcode"].as_i64().unwrap_or(0),
            v["error"]["message"].as_str().unwrap_or("")
        ),
    })
}

/// Google APIs: `RESOURCE_EXHAUSTED` (HTTP 429) with a `retryDelay` ("30s") somewhere in its
/// details (`google.rpc.RetryInfo` or the Ads `QuotaErrorDetails`); Ads'
/// `CONCURRENT_MODIFICATION` is retryable too.
pub fn google(status: u16, body: &[u8]) -> Option<Throttled> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = String::from_utf8_lossy(body);
    let exhausted = v["error"]["status"] == "RESOURCE_EXHAUSTED" || text.contains("RESOURCE_EXHAUSTED");
    if !exhausted && !text.contains("CONCURRENT_MODIFICATION") {
        return None;
    }
    let _ = status;
    Some(Throttled {
        retry_after: find_retry_delay(&v, 0),
        reason: v["error"]["message"].as_str().unwrap_or("RESOURCE_EXHAUSTED").to_string(),
    })
}

/// The first `retryDelay` ("1.5s", protobuf Duration JSON) in `v`, searched at most 8 deep.
fn find_retry_delay(v: &serde_json::Value, depth: u32) -> Option<Duration> {
    if depth > 8 {
        return None;
    }
    match v {
        serde_json::Value::Object(m) => {
            if let Some(s) = m.get("retryDelay").or_else(|| m.get("retry_delay")).and_then(|d| d.as_str()) {
                let secs: f64 = s.trim().strip_suffix('s')?.parse().ok().filter(|s: &f64| s.is_finite())?;
                return Duration::try_from_secs_f64(secs.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64())).ok();
            }
            m.values().find_map(|x| find_retry_delay(x, depth + 1))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_retry_delay(x, depth + 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, retry_after: Option<Duration>) -> Answer {
        Answer { status, body: body.as_bytes().to_vec(), truncated: false, retry_after }
    }

    #[test]
    fn headers_retry_after_first_then_ratelimit_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(header_wait(Some("7"), Some("1700000100"), now), Some(Duration::from_secs(7)));
        assert_eq!(header_wait(None, Some("1700000100"), now), Some(Duration::from_secs(100)));
        assert_eq!(header_wait(None, Some("1600000000"), now), Some(Duration::ZERO), "a past reset: no wait");
        assert_eq!(header_wait(None, Some("12"), now), Some(Duration::from_secs(12)), "seconds from now");
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(header_wait(Some(&date), None, now), Some(Duration::from_secs(30)));
        assert_eq!(header_wait(Some("soon"), Some("nan"), now), None);
        assert_eq!(header_wait(None, Some("1e300"), now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn vendor_bodies_become_retryable_throttling() {
        let sf =
            answer(403, r#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]"#, None);
        let e = classify(&sf, Some(salesforce));
        assert!(e.retryable && e.class == ErrorClass::External && e.message.contains("TotalRequests"), "{e:?}");
        let other403 = answer(403, r#"[{"errorCode":"INSUFFICIENT_ACCESS","message":"no"}]"#, None);
        assert!(!classify(&other403, Some(salesforce)).retryable);

        for code in [4, 17, 32, 613, 80004] {
            let body = format!(
                r#"{{"error":{{"code":{code},"error_subcode":2446079,"message":"User request limit reached"}}}}"#
            );
            let e = classify(&answer(400, &body, None), Some(meta_graph));
            assert!(e.retryable && e.message.contains("User request limit"), "{code}: {e:?}");
        }
        let bad = answer(400, r#"{"error":{"code":100,"message":"Invalid parameter"}}"#, None);
        let e = classify(&bad, Some(meta_graph));
        assert!(!e.retryable && e.class == ErrorClass::User && e.message.contains("Invalid parameter"));

        let g = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Too many requests","details":[
            {"@type":"type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure","errors":[
            {"errorCode":{"quotaError":"RESOURCE_EXHAUSTED"},"details":{"quotaErrorDetails":{"retryDelay":"42s"}}}]}]}}"#;
        let e = classify(&answer(429, g, None), Some(google));
        assert_eq!(e.retry_after, Some(Duration::from_secs(42)));
        assert!(e.retryable && e.message.contains("Too many requests"));
        let cm = r#"{"error":{"code":400,"message":"x","details":[{"errors":[{"errorCode":{"databaseError":"CONCURRENT_MODIFICATION"}}]}]}}"#;
        assert!(classify(&answer(400, cm, None), Some(google)).retryable);
    }

    #[test]
    fn plain_statuses_keep_the_header_wait() {
        let e = classify(&answer(429, "slow down", Some(Duration::from_secs(3))), None);
        assert!(e.retryable && e.retry_after == Some(Duration::from_secs(3)) && e.message.contains("slow down"));
        let e = classify(&answer(400, "{not json", None), Some(meta_graph));
        assert!(!e.retryable);
        assert!(classify(&answer(503, "", None), None).retryable);
    }
}
