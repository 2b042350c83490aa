//! The client every SaaS kind sends its requests through: the destination's rate limiter is
//! waited on before **every** request ([`crate::ratelimit`]), answers are read with a bound,
//! throttling signals are recognised in one place ([`crate::throttle`]) and the one
//! [`RetryPolicy`] decides retries.

use crate::http::{transport_error, HttpOptions, Retries};
use crate::ratelimit::{destination_key, Limiter, Rate, VendorRate, SETTING};
use crate::throttle::{classify, header_wait, Answer, VendorSignal};
use crate::{parse_settings, BuildContext, DeliveryError, RetryPolicy};
use sluice_core::ConfigError;
use std::io::Read;
use std::sync::Arc;

/// Most bytes of a vendor's answer read (per-record results of a full batch fit; a huge or
/// endless body is cut and then treated as not understood).
pub const MAX_VENDOR_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

type Settings = serde_json::Map<String, serde_json::Value>;

/// Settings every SaaS kind accepts beside its own: the transport's [`HttpOptions`] and
/// `max_requests_per_second` (lowers the vendor's documented rate; one limit shared by every
/// worker of the destination in the process).
#[derive(Debug, Clone)]
pub struct VendorOptions {
    /// Timeouts and retries.
    pub http: HttpOptions,
    /// The request rate actually used.
    pub rate: Rate,
}

impl VendorOptions {
    /// The defaults at `vendor`'s rate.
    pub fn of(vendor: VendorRate) -> Self {
        Self {
            http: HttpOptions::default(),
            rate: Rate { per_second: vendor.per_sec(), burst: vendor.requests.max(1) },
        }
    }

    /// Splits `settings` into the shared options and the kind's own settings, checking the rate
    /// against `vendor`'s documented one.
    pub fn split(settings: &Settings, vendor: VendorRate) -> Result<(Self, Settings), ConfigError> {
        let mut rest = settings.clone();
        let max = match rest.remove(SETTING) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                Some(v.as_f64().ok_or_else(|| ConfigError::new(SETTING, "must be a number of requests per second"))?)
            }
        };
        let (http, rest) = HttpOptions::split(&rest)?;
        Ok((Self { http, rate: Rate::new(vendor, max)? }, rest))
    }
}

/// Parses a kind's typed settings after [`VendorOptions::split`].
pub fn parse_kind<T: serde::de::DeserializeOwned>(
    settings: &Settings,
    vendor: VendorRate,
) -> Result<(T, VendorOptions), ConfigError> {
    let (opts, rest) = VendorOptions::split(settings, vendor)?;
    Ok((parse_settings(&rest)?, opts))
}

/// Checks an `endpoint` setting: an http(s) base URL, kept without a trailing `/`.
pub fn check_endpoint(field: &str, url: &str) -> Result<String, ConfigError> {
    crate::http::check_url(field, url)?;
    Ok(url.trim_end_matches('/').to_string())
}

/// Checks a credential is set (never showing it).
pub fn check_secret(field: &str, s: &sluice_core::Secret) -> Result<(), ConfigError> {
    let v = s.expose();
    if v.trim().is_empty() {
        return Err(ConfigError::new(field, "must be set"));
    }
    if v.chars().any(|c| !(c == ' ' || c.is_ascii_graphic())) {
        return Err(ConfigError::new(
            field,
            "holds a line break or a character a header cannot carry (value not shown)",
        ));
    }
    Ok(())
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// Headers (credentials included; never shown in errors).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body and its content type.
    pub body: Option<(&'a str, &'a [u8])>,
}

/// The client of one destination.
pub struct VendorClient {
    agent: ureq::Agent,
    policy: RetryPolicy,
    limiter: Arc<Limiter>,
    signal: Option<VendorSignal>,
}

impl VendorClient {
    /// The client of destination `ctx` of `kind`, its limiter shared with the destination's
    /// other workers; `signal` recognises the vendor's throttling bodies.
    pub fn new(kind: &str, opts: &VendorOptions, ctx: &BuildContext, signal: Option<VendorSignal>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(opts.http.timeout()).redirects(0).build();
        let limiter = Limiter::shared(&destination_key(kind, &ctx.mapping_key), opts.rate);
        Self { agent, policy: opts.http.retry_policy(), limiter, signal }
    }

    /// The retry policy requests follow.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The destination's limiter.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// One attempt: waits on the rate limiter, sends, and returns the answer whatever its
    /// status (a 3xx is an error: never followed). No answer at all is a retryable error.
    pub fn once(&self, req: Req<'_>) -> Result<Answer, DeliveryError> {
        self.limiter.wait();
        let mut r = self.agent.request(req.method, req.url);
        for (k, v) in req.headers {
            r = r.set(k, v);
        }
        let sent = match req.body {
            Some((ct, body)) => r.set("Content-Type", ct).send_bytes(body),
            None => r.call(),
        };
        let resp = match sent {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => return Err(transport_error(req.url, req.headers, &t)),
        };
        let status = resp.status();
        if (300..400).contains(&status) {
            return Err(DeliveryError::redirected(status, resp.header("Location")));
        }
        let retry_after =
            header_wait(resp.header("Retry-After"), resp.header("X-RateLimit-Reset"), std::time::SystemTime::now());
        let mut body = Vec::new();
        let mut reader = resp.into_reader().take(MAX_VENDOR_RESPONSE_BYTES + 1);
        if let Err(e) = reader.read_to_end(&mut body) {
            if (200..300).contains(&status) {
                // a success whose body broke off cannot say which records were taken
                return Err(DeliveryError::external(format!("{}: the answer broke off: {e}", req.url)));
            }
        }
        let truncated = body.len() as u64 > MAX_VENDOR_RESPONSE_BYTES;
        body.truncate(MAX_VENDOR_RESPONSE_BYTES as usize);
        tracing::debug!(method = req.method, status, bytes = body.len(), "vendor answer");
        Ok(Answer { status, body, truncated, retry_after })
    }

    /// Sends with retries as `retries` says. A 2xx, or an answer `accept` takes (a vendor's
    /// partial success such as Mixpanel's 400), is returned; anything else is classified
    /// ([`classify`]: throttling bodies, 429, 5xx retryable; other 4xx rejected).
    pub fn call(
        &self,
        req: Req<'_>,
        retries: Retries,
        accept: impl Fn(&Answer) -> bool,
    ) -> Result<Answer, DeliveryError> {
        let attempt = |_| {
            let a = self.once(req)?;
            if a.ok() || accept(&a) {
                Ok(a)
            } else {
                Err(classify(&a, self.signal))
            }
        };
        match retries {
            Retries::Transport => self.policy.run(attempt),
            Retries::Caller => attempt(0),
        }
    }

    /// POSTs JSON; only a 2xx is taken.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        retries: Retries,
    ) -> Result<Answer, DeliveryError> {
        self.call(Req { method: "POST", url, headers, body: Some(("application/json", body)) }, retries, |_| false)
    }
}

/// A 2xx body a kind cannot read cannot say which records were taken: retryable (the
/// vendor's upserts are idempotent), naming what was expected.
pub fn unreadable(what: &str, a: &Answer) -> DeliveryError {
    DeliveryError::external(format!(
        "HTTP {}: the answer is not the expected {what}{}: {}",
        a.status,
        if a.truncated { " (cut at 4 MiB)" } else { "" },
        a.text()
    ))
}
