//! Destinations' answers as a hostile receiver sends them, over real HTTP on 127.0.0.1: any
//! status, `Retry-After` values no parser expects, redirects, huge, endless and trickling
//! bodies, closed connections. The transport never panics, succeeds only on a 2xx, reads a
//! bounded part of any body and keeps error messages short.

use proptest::prelude::*;
use sluice_destinations::http::{HttpOptions, Transport, MAX_RESPONSE_BYTES};
use sluice_destinations::webhook::{WebhookConfig, WebhookSink};
use sluice_destinations::{BuildContext, Destination, ErrorClass, Item};
use sluice_testkit::raw::{head, RawAnswer, RawReceiver};
use std::time::Duration;

/// Fast retries, a short timeout, `Retry-After` honoured up to 1 s.
fn transport(max_attempts: u32) -> Transport {
    Transport::new(&HttpOptions {
        timeout_secs: 0.5,
        max_attempts,
        retry_initial_ms: 1,
        retry_max_ms: 2,
        max_retry_after_secs: 1,
    })
}

const HOSTILE_RETRY_AFTER: [&str; 14] = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "1e300",
    "18446744073709551616",
    "99999999999999999999999999999",
    "0.5",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 99 Foo 2015 99:99:99 GMT",
    "soon",
    "",
];

/// What the receiver does with one request.
#[derive(Debug, Clone)]
enum Hostile {
    /// A complete answer with these headers and a body of this many bytes.
    Full { status: u16, headers: Vec<(String, String)>, body: usize },
    /// A head, then a body that never ends.
    Endless { status: u16 },
    /// A head, then one byte every 20 ms.
    Trickle { status: u16 },
    /// No answer: the connection closes.
    Close,
    /// Bytes that are not HTTP.
    Garbage(Vec<u8>),
}

impl Hostile {
    fn answer(&self) -> RawAnswer {
        match self {
            Hostile::Full { status, headers, body } => {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                RawAnswer::status(*status, &h, &vec![b'e'; *body])
            }
            Hostile::Endless { status } => RawAnswer::Endless(head(*status, &[("Retry-After", "nan")])),
            Hostile::Trickle { status } => RawAnswer::Trickle(head(*status, &[]), Duration::from_millis(20)),
            Hostile::Close => RawAnswer::Close,
            Hostile::Garbage(b) => RawAnswer::Bytes(b.clone()),
        }
    }

    /// The status a client sees, if the answer has one.
    fn status(&self) -> Option<u16> {
        match self {
            Hostile::Full { status, .. } | Hostile::Endless { status } | Hostile::Trickle { status } => Some(*status),
            Hostile::Close | Hostile::Garbage(_) => None,
        }
    }
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![200u16..=299, 300u16..=399, 400u16..=599, 100u16..=199, Just(301), Just(308), Just(429), Just(503)]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(HOSTILE_RETRY_AFTER.to_vec()).prop_map(String::from),
        "[ -~]{0,40}",
        (0usize..4000).prop_map(|n| format!("https://{}.example/", "x".repeat(n))),
    ]
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let headers = proptest::collection::vec(
        (proptest::sample::select(vec!["Retry-After", "Location", "Content-Type", "X-Junk"]), header_value())
            .prop_map(|(k, v)| (k.to_string(), v)),
        0..3,
    );
    prop_oneof![
        6 => (status(), headers, proptest::sample::select(vec![0usize, 17, 5_000, 2_000_000]))
            .prop_map(|(status, headers, body)| Hostile::Full { status, headers, body }),
        1 => status().prop_map(|status| Hostile::Endless { status }),
        1 => status().prop_map(|status| Hostile::Trickle { status }),
        1 => Just(Hostile::Close),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Hostile::Garbage),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_answers_never_panic_and_only_a_2xx_is_a_success(first in hostile(), second in hostile()) {
        let rx = RawReceiver::start();
        rx.script([first.answer(), second.answer()]);
        let out = transport(2).post_json(&format!("{}/hook", rx.url()), &[], br#"{"batch":[]}"#);
        let answered = rx.requests();
        prop_assert!((1..=2).contains(&answered), "{answered} requests");
        let last = if answered == 1 { &first } else { &second };
        match (&out, last.status()) {
            (Ok(()), Some(s)) => prop_assert!((200..300).contains(&s), "success reported for {s}"),
            (Ok(()), None) => prop_assert!(false, "success reported without an answer: {last:?}"),
            (Err(e), Some(s)) => {
                prop_assert!(!(200..300).contains(&s), "a 2xx answer failed: {e:?}");
                if (300..400).contains(&s) {
                    prop_assert!(e.retryable && e.class == ErrorClass::User, "a redirect is a retryable configuration fault: {e:?}");
                }
                prop_assert!(e.message.chars().count() <= 450, "message of {} chars", e.message.chars().count());
            }
            (Err(e), None) => prop_assert!(e.retryable && e.message.chars().count() <= 450, "{e:?}"),
        }
        // an endless body is cut after a bounded read (ureq alone would read 10 MB)
        prop_assert!(rx.body_bytes_written() < 8 * 1024 * 1024 + 2 * MAX_RESPONSE_BYTES,
            "{} body bytes taken", rx.body_bytes_written());
    }
}

#[test]
fn finding_8_hostile_retry_after_values_are_survived() {
    for v in HOSTILE_RETRY_AFTER {
        for status in [429, 503] {
            let rx = RawReceiver::start();
            rx.script([RawAnswer::status(status, &[("Retry-After", v)], b"busy"), RawAnswer::status(200, &[], b"")]);
            // within one attempt budget: either retried (a short or ignored wait) or given up for
            // now (a wait longer than max_retry_after_secs), never a panic
            let out = transport(2).post_json(&format!("{}/x", rx.url()), &[], b"{}");
            match out {
                Ok(()) => assert_eq!(rx.requests(), 2, "{v}"),
                Err(e) => assert!(e.retryable && e.message.contains(&status.to_string()), "{v}: {e:?}"),
            }
        }
    }
}

#[test]
fn finding_8_timeout_secs_must_be_finite_positive_and_bounded() {
    for bad in [serde_json::json!(1e300), serde_json::json!(-1), serde_json::json!(0), serde_json::json!(86_400)] {
        let s = serde_json::json!({"url": "http://127.0.0.1:9/x", "timeout_secs": bad});
        let e = WebhookConfig::parse(s.as_object().unwrap()).unwrap_err();
        assert_eq!(e.at, "timeout_secs", "{bad}: {e:?}");
    }
    for (field, v) in
        [("retry_max_ms", u64::MAX), ("retry_initial_ms", 10_000_000_000), ("max_retry_after_secs", u64::MAX)]
    {
        let s = serde_json::json!({"url": "http://127.0.0.1:9/x", field: v});
        assert_eq!(WebhookConfig::parse(s.as_object().unwrap()).unwrap_err().at, field);
    }
    // a transport built from options nobody checked clamps instead of panicking
    let t = Transport::new(&HttpOptions { timeout_secs: f64::NAN, ..HttpOptions::default() });
    assert!(t.post_json("http://127.0.0.1:9/x", &[], b"{}").is_err());
    let t = Transport::new(&HttpOptions { timeout_secs: f64::INFINITY, max_attempts: 1, ..HttpOptions::default() });
    assert!(t.post_json("http://127.0.0.1:9/x", &[], b"{}").is_err());
}

#[test]
fn finding_12_a_3xx_is_a_retryable_failure_naming_the_location() {
    let rx = RawReceiver::start();
    rx.script([RawAnswer::status(302, &[("Location", "https://elsewhere.example/in")], b"moved")]);
    let s = serde_json::json!({"url": format!("{}/hook", rx.url()), "max_attempts": 1});
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: "users/hook".into() };
    let mut sink = WebhookSink::new(WebhookConfig::parse(s.as_object().unwrap()).unwrap(), &ctx);
    let item = |id: &str| Item {
        action: sluice_core::Change::Added,
        id: id.into(),
        data: sluice_destinations::raw(&serde_json::json!({"n": id})),
        consent: None,
        reason: None,
    };
    let out = sink.deliver(&[item("1"), item("2")]);
    for o in out {
        let e = o.expect_err("a redirect is not a delivery");
        // retryable: the records stay pending until the URL is fixed, none is rejected for good
        assert!(e.retryable && e.class == ErrorClass::User, "{e:?}");
        assert!(e.message.contains("302") && e.message.contains("https://elsewhere.example/in"), "{e:?}");
    }
    assert_eq!(rx.requests(), 1, "not split into single records, not followed");
}

#[test]
fn bodies_are_read_bounded_and_messages_stay_short() {
    let rx = RawReceiver::start();
    rx.script([RawAnswer::Endless(head(400, &[]))]);
    let e = transport(1).post_json(&format!("{}/x", rx.url()), &[], b"{}").unwrap_err();
    assert!(!e.retryable && e.message.starts_with("HTTP 400: xxx"), "{e:?}");
    assert!(e.message.chars().count() <= 320, "{} chars", e.message.chars().count());
    // a 2xx whose body trickles forever is still a success, within the timeout
    rx.script([RawAnswer::Trickle(head(200, &[]), Duration::from_millis(50))]);
    assert_eq!(transport(1).post_json(&format!("{}/x", rx.url()), &[], b"{}"), Ok(()));
}

#[test]
fn finding_13_transport_errors_never_carry_url_credentials() {
    // nothing listens on port 1: the transport error names the URL, which must come out redacted
    let url = "http://hook_user:hunter2pass@127.0.0.1:1/in?api_key=sk_live_secretvalue&x=1";
    let e = transport(1).post_json(url, &[], b"{}").unwrap_err();
    assert!(e.retryable, "{e:?}");
    for secret in ["hunter2pass", "sk_live_secretvalue", "hook_user"] {
        assert!(!e.message.contains(secret), "`{secret}` in {}", e.message);
    }
    assert!(e.message.contains("127.0.0.1:1"), "the host is still named: {}", e.message);
    let bad = sluice_destinations::http::check_url("url", "ftp://u:hunter2pass@h/").unwrap_err();
    assert!(!bad.message.contains("hunter2pass"), "{}", bad.message);
}

/// The streaming path (`deliver_events`, one attempt per call: the worker retries) against
/// receivers that answer what no well-behaved server would: every event gets one outcome, only
/// a 2xx is a delivery, nothing panics, and no answer makes the sink send more than it was asked.
#[test]
fn streamed_events_survive_hostile_answers_with_one_request_per_call() {
    let events: Vec<sluice_destinations::Event> = (1..=3)
        .map(|i| sluice_destinations::Event {
            seq: i,
            source: "web".into(),
            body: format!(r#"{{"type":"track","event":"E","messageId":"m{i}"}}"#),
        })
        .collect();
    for (name, answer, delivered) in [
        ("garbage status line", RawAnswer::Bytes(b"HTTP/1.1 2OO OK\r\n\r\n".to_vec()), false),
        ("closed without an answer", RawAnswer::Close, false),
        ("a 200 whose body never ends", RawAnswer::Endless(head(200, &[])), true),
        ("a 500 whose body trickles", RawAnswer::Trickle(head(500, &[]), Duration::from_millis(300)), false),
        (
            "a 429 with a hostile Retry-After",
            RawAnswer::status(429, &[("Retry-After", "99999999999999999999")], b""),
            false,
        ),
    ] {
        let rx = RawReceiver::start();
        rx.script([answer]);
        let s = serde_json::json!({"url": format!("{}/hook", rx.url()), "max_attempts": 4, "timeout_secs": 1});
        let ctx = BuildContext { base_dir: ".".into(), mapping_key: "stream/hook".into() };
        let mut sink = WebhookSink::new(WebhookConfig::parse(s.as_object().unwrap()).unwrap(), &ctx);
        let out = sink.deliver_events(&events);
        assert_eq!(out.len(), 3, "{name}");
        for o in &out {
            match (delivered, o) {
                (true, Ok(())) => {}
                (false, Err(e)) => assert!(e.retryable, "{name}: {e:?}"),
                _ => panic!("{name}: {o:?}"),
            }
        }
        assert_eq!(rx.requests(), 1, "{name}: the worker retries, not the transport");
    }
}

/// The SaaS kinds' client: an endless 2xx body is cut (and then not understood: retryable, never
/// success), a success cut short is not a success, garbage bodies of every status never panic.
#[test]
fn vendor_answers_are_read_with_a_bound_and_never_taken_on_faith() {
    use sluice_destinations::braze::{BrazeConfig, BrazeSink};
    let rx = RawReceiver::start();
    let settings = serde_json::json!({"endpoint": rx.url(), "api_key": "k", "max_attempts": 1, "timeout_secs": 2});
    let ctx = BuildContext { base_dir: ".".into(), mapping_key: format!("users/hostile-{}", rx.url()) };
    let mut sink = BrazeSink::new(BrazeConfig::parse(settings.as_object().unwrap()).unwrap(), &ctx);
    let item =
        Item { action: sluice_core::Change::Added, id: "u1".into(), data: "{}".into(), consent: None, reason: None };
    let t = std::time::Instant::now();
    rx.script([RawAnswer::Endless(head(201, &[("Content-Type", "application/json")]))]);
    let out = sink.deliver(std::slice::from_ref(&item));
    assert!(out[0].as_ref().is_err_and(|e| e.retryable), "an endless body is not a success: {out:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    for body in
        [&b"{\"message\":\"succ"[..], b"[]", b"null", b"{\"message\":\"success\",\"errors\":[{\"index\":99999999999}]}"]
    {
        rx.script([RawAnswer::status(201, &[("Content-Type", "application/json")], body)]);
        let out = sink.deliver(std::slice::from_ref(&item));
        let text = String::from_utf8_lossy(body);
        if text.contains("errors") {
            assert!(out[0].is_ok(), "an error naming no record of the request concerns none: {out:?}");
        } else {
            assert!(out[0].is_err(), "{text}: {out:?}");
        }
    }
    for status in [400u16, 429, 500, 503] {
        rx.script([RawAnswer::status(
            status,
            &[("X-RateLimit-Reset", "nan"), ("Retry-After", "1e300")],
            b"\xff\xfe garbage",
        )]);
        let out = sink.deliver(std::slice::from_ref(&item));
        assert!(out[0].is_err(), "{status}");
    }
}
