//! Envelope v1 decoding: each malformed kind maps to exactly one dead-letter reason.

use drumbeat_common::envelope::{DecodeError, Envelope};
use drumbeat_common::DeadReason;

const LIMIT: usize = 1024 * 1024;
const JSON: Option<&str> = Some("application/json");

#[test]
fn valid_bodies_decode() {
    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"{"v":1,"id":"order-42","task":"http","args":{"url":"http://x"}}"#,
            JSON,
        ),
        (r#"{"v":1,"id":"a","task":"log"}"#, None),
        (
            r#"{"v":1,"id":"a","task":"log","args":null}"#,
            Some("application/json; charset=utf-8"),
        ),
        (
            r#"{"v":1,"id":"sched:x:2026-11-25T07:30:00Z","task":"log","args":[1,2],"expires_at":"2026-11-25T07:40:00Z","schedule":"x","fire_time":"2026-11-25T07:30:00Z"}"#,
            Some("APPLICATION/JSON"),
        ),
        (
            r#"{"v":1,"id":"ünïcødé id ✓","task":"log","unknown_field":"kept compatible"}"#,
            JSON,
        ),
    ];
    for (body, ct) in cases {
        let env =
            Envelope::decode(body.as_bytes(), *ct, LIMIT).unwrap_or_else(|e| panic!("{body}: {e}"));
        let again = Envelope::decode(&env.encode(), JSON, LIMIT).unwrap();
        assert_eq!(env, again, "round trip of {body}");
    }
}

#[test]
fn malformed_bodies_map_to_reasons() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_args = format!(
        r#"{{"v":1,"id":"a","task":"log","args":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let long_id = format!(r#"{{"v":1,"id":"{}","task":"log"}}"#, "x".repeat(201));
    let big = format!(
        r#"{{"v":1,"id":"a","task":"log","args":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    let cases: Vec<(&str, Vec<u8>, Option<&str>, DeadReason)> = vec![
        ("not json", b"hello".to_vec(), JSON, DeadReason::InvalidJson),
        ("empty", b"".to_vec(), JSON, DeadReason::InvalidJson),
        (
            "truncated",
            br#"{"v":1,"id":"a","ta"#.to_vec(),
            JSON,
            DeadReason::InvalidJson,
        ),
        (
            "binary",
            vec![0xff, 0xfe, 0x00],
            JSON,
            DeadReason::InvalidJson,
        ),
        (
            "deep nesting",
            deep.into_bytes(),
            JSON,
            DeadReason::InvalidJson,
        ),
        (
            "deep args",
            deep_args.into_bytes(),
            JSON,
            DeadReason::InvalidJson,
        ),
        (
            "type error then garbage",
            br#"{"v":"one", garbage"#.to_vec(),
            JSON,
            DeadReason::InvalidJson,
        ),
        (
            "array",
            b"[1,2]".to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "missing id",
            br#"{"v":1,"task":"log"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "missing task",
            br#"{"v":1,"id":"a"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "missing v",
            br#"{"id":"a","task":"log"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "v = 2",
            br#"{"v":2,"id":"a","task":"log"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "v string",
            br#"{"v":"1","id":"a","task":"log"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "id number",
            br#"{"v":1,"id":5,"task":"log"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "empty id",
            br#"{"v":1,"id":"","task":"log"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "control char id",
            b"{\"v\":1,\"id\":\"a\\u0007b\",\"task\":\"log\"}".to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "long id",
            long_id.into_bytes(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "empty task",
            br#"{"v":1,"id":"a","task":""}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "bad expires_at",
            br#"{"v":1,"id":"a","task":"log","expires_at":"soon"}"#.to_vec(),
            JSON,
            DeadReason::InvalidEnvelope,
        ),
        (
            "text/plain",
            br#"{"v":1,"id":"a","task":"log"}"#.to_vec(),
            Some("text/plain"),
            DeadReason::UnsupportedContentType,
        ),
        (
            "pickle",
            br#"{"v":1,"id":"a","task":"log"}"#.to_vec(),
            Some("application/x-python-serialize"),
            DeadReason::UnsupportedContentType,
        ),
        ("oversize", big.into_bytes(), JSON, DeadReason::TooLarge),
    ];
    for (name, body, ct, want) in &cases {
        let got = Envelope::decode(body, *ct, LIMIT);
        match got {
            Ok(e) => panic!("{name}: decoded as {e:?}"),
            Err(e) => {
                assert_eq!(e.reason(), *want, "{name}: {e}");
                assert!(e.to_string().len() < 2000, "{name}: error too long");
            }
        }
    }
    println!("{} malformed bodies checked", cases.len());
}

#[test]
fn size_is_checked_before_parsing() {
    let body = vec![b'['; 2048];
    assert!(matches!(
        Envelope::decode(&body, JSON, 1024),
        Err(DecodeError::TooLarge {
            size: 2048,
            limit: 1024
        })
    ));
}

#[test]
fn expiry() {
    let mut e = Envelope::new("a", "log", serde_json::Value::Null);
    let now = chrono::Utc::now();
    assert!(!e.is_expired(now));
    e.expires_at = Some(now - chrono::Duration::seconds(1));
    assert!(e.is_expired(now));
    e.expires_at = Some(now + chrono::Duration::seconds(1));
    assert!(!e.is_expired(now));
}
