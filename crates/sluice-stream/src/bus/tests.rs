use super::*;
use crate::writer::{Invalid, Prepared};
use serde_json::json;

#[test]
fn settings_are_checked_without_io_naming_the_setting() {
    assert!(BusSettings::new("nats://127.0.0.1:4222").validate().is_ok());
    assert!(BusSettings::new("nats://a:4222,nats://b:4222").validate().is_ok());
    let e = BusSettings::new("http://127.0.0.1:4222").validate().unwrap_err().to_string();
    assert!(e.contains("--bus") && e.contains("nats://HOST:PORT"), "{e}");
    let e = BusSettings::new("nats://u:secret@h:4222,redis://x").validate().unwrap_err().to_string();
    assert!(!e.contains("secret"), "the password leaked: {e}");
    for bad in ["", "a.b", "a*", "a>", "x y", &"p".repeat(33)] {
        let s = BusSettings { prefix: bad.to_string(), ..BusSettings::new("nats://h:4222") };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("--bus-prefix"), "{bad:?}: {e}");
    }
    for bad in [0, 6] {
        let s = BusSettings { replicas: bad, ..BusSettings::new("nats://h:4222") };
        assert!(s.validate().unwrap_err().to_string().contains("--bus-replicas"));
    }
}

#[test]
fn a_destination_id_never_escapes_its_subject() {
    let s = BusSettings::new("nats://h:4222");
    for id in ["a.b", "*", ">", "x y", "ü"] {
        let subject = s.out_subject(id);
        let tail = subject.strip_prefix("sluice.out.").unwrap();
        assert!(tail.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?} -> {subject}");
        assert!(!s.delivery_consumer(id).contains('.'));
    }
    assert_ne!(s.out_subject("ab"), s.out_subject("a.b"));
}

fn prepared(mid: &str) -> Prepared {
    let v = json!({"type": "track", "event": "x", "messageId": mid, "userId": "u\"1", "context": {"consent": {"categoryPreferences": {"C1": true}}}});
    Prepared::new((v.clone(), v.to_string()))
}

#[test]
fn an_accepted_request_round_trips_with_its_gpc_and_invalid_events() {
    let events = vec![prepared("m1"), prepared("m2").with_gpc(&["C1".to_string()])];
    let invalid = vec![Invalid { reason: "no id".into(), body: "{\"a\":\"\\u0000\"}".into(), ids: vec!["u9".into()] }];
    let bytes = wire::encode_accepted("web \"src\"", &events, &invalid);
    let a = wire::Accepted::decode(&bytes).unwrap();
    assert_eq!(a.source, "web \"src\"");
    assert_eq!(a.invalid.len(), 1);
    assert_eq!(a.invalid[0].ids, vec!["u9".to_string()]);
    let p = a.prepared().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].message_id, "m1");
    assert_eq!(p[0].json, events[0].json);
    assert_eq!(p[1].gpc_refused, vec!["C1".to_string()]);
    assert_eq!(p[1].consent, events[1].consent, "GPC refuses C1 again on the router");
    assert_eq!(p[0].user_id.as_deref(), Some("u\"1"));
}

#[test]
fn hostile_messages_are_refused_with_a_reason_never_a_panic() {
    for bad in [
        &b""[..],
        b"null",
        b"{}",
        b"{\"source\":1,\"events\":[]}",
        b"{\"source\":\"s\",\"events\":[{\"e\":1}]}",
        b"{\"source\":\"s\",\"events\":[],\"extra\":1}",
        b"\xff\xfe",
    ] {
        match wire::Accepted::decode(bad) {
            Err(e) => assert!(e.contains("not an accepted request"), "{e}"),
            Ok(a) => assert!(a.prepared().is_err(), "{:?} was taken", String::from_utf8_lossy(bad)),
        }
        assert!(wire::Routed::decode(bad).is_err());
    }
    assert!(wire::Routed::decode(
        br#"{"kind":"delete","request":{"user_ids":[],"anonymous_ids":[],"reason":"x","evil":1}}"#
    )
    .is_err());
}

#[test]
fn routed_messages_round_trip_and_a_wrong_shape_is_refused() {
    let req = crate::person_delete::PersonDelete::new(
        ["u1".to_string()],
        ["a1".to_string()],
        sluice_destinations::DeleteReason::ConsentWithdrawn,
    );
    match wire::Routed::decode(&wire::Routed::Delete { request: req.clone() }.encode()).unwrap() {
        wire::Routed::Delete { request } => assert_eq!(request, req),
        other => panic!("{other:?}"),
    }
    let body = serde_json::value::RawValue::from_string("{\"messageId\":\"m\",\"x\":[1,\"\\\"\"]}".into()).unwrap();
    let ev = wire::RoutedEvent { source: "web".into(), message_id: "m".into(), body };
    match wire::Routed::decode(&wire::Routed::Events { events: vec![ev] }.encode()).unwrap() {
        wire::Routed::Events { events } => assert_eq!(events[0].body.get(), "{\"messageId\":\"m\",\"x\":[1,\"\\\"\"]}"),
        other => panic!("{other:?}"),
    }
    for bad in [r#"{"kind":"events"}"#, r#"{"kind":"delete","events":[]}"#, r#"{"kind":"other","events":[]}"#] {
        let e = wire::Routed::decode(bad.as_bytes()).unwrap_err();
        assert!(e.contains("wrong fields"), "{bad}: {e}");
    }
}
