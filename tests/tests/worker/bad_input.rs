//! Every way a message can be wrong ends as a dead letter with the right reason, byte-identical,
//! and the worker keeps serving.

use std::time::Duration;

use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::task_properties;
use drumbeat_tests::{poll_until, TestNs};
use drumbeat_worker::{Outcome, Task};
use serde::Deserialize;

use super::support::*;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Typed {
    n: u32,
}

#[tokio::test]
async fn bad_inputs_are_dead_lettered_with_their_reason() {
    let ns = TestNs::new("w-badinput");
    // `max_body` lands in the [amqp] section the base config ends with.
    let settings = ns.settings(&format!("max_body = 32768\n{}", worker_toml(3, "")));
    assert_eq!(settings.amqp.max_body, 32768);
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("typed", move |task: Task<Typed>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                Ok(())
            }
        })
    });
    let deep = format!(
        r#"{{"v":1,"id":"deep","task":"typed","args":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let big = format!(
        r#"{{"v":1,"id":"big","task":"typed","args":{{"pad":"{}"}}}}"#,
        "x".repeat(40_000)
    );
    let json = |case: &str| task_properties(case, 1);
    let cases: Vec<(&str, Vec<u8>, BasicProperties, &str)> = vec![
        (
            "not-json",
            b"hello there".to_vec(),
            json("not-json"),
            "invalid-json",
        ),
        ("empty", Vec::new(), json("empty"), "invalid-json"),
        (
            "missing-field",
            br#"{"v":1,"id":"missing-field"}"#.to_vec(),
            json("missing-field"),
            "invalid-envelope",
        ),
        (
            "v2",
            br#"{"v":2,"id":"v2","task":"typed","args":{"n":1}}"#.to_vec(),
            json("v2"),
            "invalid-envelope",
        ),
        (
            "unknown-task",
            br#"{"v":1,"id":"unknown-task","task":"nope"}"#.to_vec(),
            json("unknown-task"),
            "unknown-task",
        ),
        (
            "content-type",
            br#"{"v":1,"id":"content-type","task":"typed","args":{"n":1}}"#.to_vec(),
            json("content-type").with_content_type("text/plain".into()),
            "unsupported-content-type",
        ),
        ("big", big.into_bytes(), json("big"), "too-large"),
        (
            "bad-args",
            br#"{"v":1,"id":"bad-args","task":"typed","args":{"n":"seven"}}"#.to_vec(),
            json("bad-args"),
            "invalid-args",
        ),
        ("deep", deep.into_bytes(), json("deep"), "invalid-json"),
        (
            "bad-id",
            br#"{"v":1,"id":"","task":"typed","args":{"n":1}}"#.to_vec(),
            json("bad-id"),
            "invalid-envelope",
        ),
    ];
    let p = Pub::new(&ns).await;
    for (_, body, props, _) in &cases {
        p.raw("q", body, props.clone()).await;
    }
    p.task("q", "good", "typed", serde_json::json!({"n": 7}))
        .await;
    let dead = take_dead(&ns, "q", cases.len()).await;
    assert_eq!(dead.len(), cases.len());
    for (case, body, _, want) in &cases {
        let d = dead
            .iter()
            .find(|d| d.properties.message_id().as_ref().map(|m| m.as_str()) == Some(*case))
            .unwrap_or_else(|| panic!("no dead letter for {case}"));
        println!("{case:>14} -> {}", reason(d));
        assert_eq!(reason(d), *want, "{case}");
        assert_eq!(&d.data, body, "{case}: body byte-identical");
    }
    poll_until("good task still runs", Duration::from_secs(20), || async {
        (runs.count("good") == 1).then_some(())
    })
    .await;
    assert_eq!(runs.total(), 1, "no bad message reached the handler");
    assert_eq!(w.handle.count("q", Outcome::Dead), cases.len() as u64);
    wait_queues_empty(&ns, &settings, "q").await;
    w.shutdown().await;
}
