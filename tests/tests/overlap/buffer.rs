//! `overlap = "buffer_one"`, and manual triggers with and without `--force`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drumbeat_common::envelope::OverlapPolicy;
use drumbeat_tests::{poll_until, TestNs};
use drumbeat_worker::Outcome;

use super::*;
use crate::worker::support::*;

#[tokio::test]
async fn buffer_one_with_two_workers_runs_back_to_back_and_holds_at_most_one() {
    let ns = TestNs::new("ov-buffer");
    let took = Duration::from_millis(2500);
    let pair = SlowPair::start(&ns, took).await;
    let (spans, p) = (&pair.spans, &pair.p);
    // Every id the waiting slot ever held, sampled while the fires arrive.
    let waited: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (waited, sampling) = (waited.clone(), sampling.clone());
        let key = ns.key("waiting:bo");
        tokio::spawn(async move {
            let mut conn = drumbeat_tests::redis_conn(drumbeat_tests::REDIS_URL).await;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let id: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                if let Some(id) = id {
                    waited.lock().unwrap().insert(id);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let n = 7;
    let started = Instant::now();
    every_second(p, "bo", n, Some(OverlapPolicy::BufferOne)).await;
    let count = |o| pair.count(o);
    poll_until(
        "every fire run or skipped",
        Duration::from_secs(40),
        || async { (count(Outcome::Done) + count(Outcome::Skipped) == n as u64).then_some(()) },
    )
    .await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    let runs = spans.all();
    let skipped = count(Outcome::Skipped);
    let gaps: Vec<Duration> = runs
        .windows(2)
        .map(|w| w[1].1.saturating_duration_since(w[0].2))
        .collect();
    println!(
        "buffer_one: {n} fires 1 s apart, handler {took:?}, two workers: {} runs {:?}, {skipped} skipped, \
         gaps between runs {gaps:?}, waiting slot held {:?}, in {:?}",
        runs.len(),
        spans.ids(),
        waited.lock().unwrap(),
        started.elapsed()
    );
    assert_eq!(spans.overlapping(), Vec::<(String, String)>::new());
    assert_eq!(skipped, n as u64 - runs.len() as u64);
    assert!(
        runs.len() >= 3 && skipped >= 2,
        "{} runs, {skipped} skipped",
        runs.len()
    );
    // A waiting fire is the next to run, soon after the running one ends (one tier later).
    for g in &gaps {
        assert!(
            *g < Duration::from_secs(2),
            "idle gap {g:?} while a fire waited"
        );
    }
    // Every fire that held the waiting slot ran: waiting ones are deferred, never dropped.
    let ran: BTreeSet<String> = spans.ids().into_iter().collect();
    let waited = waited.lock().unwrap().clone();
    assert!(!waited.is_empty(), "some fire waited");
    assert!(waited.is_subset(&ran), "waited {waited:?}, ran {ran:?}");
    // Deferred without an attempt or a lost start counted against them.
    for id in &ran {
        assert!(is_done(&ns, drumbeat_tests::REDIS_URL, id).await, "{id}");
    }
    poll_until(
        "skipped:overlap counter",
        Duration::from_secs(10),
        || async { (skipped_counter(&ns, "bo").await == skipped).then_some(()) },
    )
    .await;
    assert_eq!(get(&ns, "running:bo").await, None);
    assert_eq!(get(&ns, "waiting:bo").await, None);
    pair.shutdown().await;
}

#[tokio::test]
async fn a_manual_trigger_obeys_the_policy_unless_forced() {
    let ns = TestNs::new("ov-force");
    let extra = format!(
        "{}\n[[schedules]]\nname = \"tr\"\ntask = \"log\"\nqueue = \"q\"\nevery = \"1h\"\noverlap = \"skip\"\n",
        worker_toml(3, "")
    );
    let settings = ns.settings(&extra);
    let cfg = ns.config_file("beat.toml", &extra);
    declare(&settings).await;
    let spans = Spans::default();
    let w = Running::start(settings.clone(), "w1", |b| {
        slow(b, &spans, Duration::from_secs(4))
    });
    let p = Pub::new(&ns).await;
    fire(&p, "tr", "sched:tr:0", Some(OverlapPolicy::Skip)).await;
    poll_until("sched:tr:0 running", Duration::from_secs(10), || async {
        (get(&ns, "running:tr").await.as_deref() == Some("sched:tr:0")).then_some(())
    })
    .await;
    let (code, plain, err) = ctl(&cfg, &["trigger", "tr"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, forced, err) = ctl(&cfg, &["trigger", "tr", "--force", "--note", "now"]).await;
    assert_eq!(code, 0, "{err}");
    let (plain, forced) = (plain.trim().to_string(), forced.trim().to_string());
    poll_until(
        "scheduled and forced fires ran",
        Duration::from_secs(20),
        || async { (w.handle.count("q", Outcome::Done) == 2).then_some(()) },
    )
    .await;
    let ids = spans.ids();
    println!("trigger: ran {ids:?}; unforced {plain} skipped");
    assert_eq!(w.handle.count("q", Outcome::Skipped), 1);
    assert!(ids.contains(&forced) && !ids.contains(&plain), "{ids:?}");
    assert_eq!(
        spans.overlapping(),
        vec![("sched:tr:0".to_string(), forced.clone())],
        "the forced trigger ran beside the scheduled fire"
    );
    poll_until(
        "skipped:overlap counter",
        Duration::from_secs(10),
        || async { (skipped_counter(&ns, "tr").await == 1).then_some(()) },
    )
    .await;
    let (code, desc, err) = ctl(&cfg, &["describe", "tr"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(desc.contains("overlap") && desc.contains("skip"), "{desc}");
    assert!(
        desc.contains("overlap 1"),
        "describe shows the skip count: {desc}"
    );
    w.shutdown().await;
}

#[tokio::test]
async fn the_api_trigger_takes_force_and_runtime_schedules_carry_the_policy() {
    use crate::api::support::{assert_error, two_tokens, ApiBeat, ALICE, BOB};
    let ns = TestNs::new("ov-api");
    let settings = ns.settings("[worker]\nqueues = [\"q\"]\n");
    declare(&settings).await;
    let beat = ApiBeat::start(&ns, &two_tokens(), &[]).await;
    let body =
        r#"{"task": "log", "every": "1h", "queue": "q", "overlap": "buffer_one", "jitter": "30s"}"#;
    let r = drumbeat_tests::http_request(
        beat.port,
        "PUT",
        "/api/v1/schedules/rt",
        &[
            ("Authorization", &format!("Bearer {ALICE}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let d = beat
        .call("GET", "/api/v1/schedules/rt", Some(BOB), "")
        .await
        .json();
    assert_eq!(
        (d["overlap"].as_str(), d["jitter"].as_str()),
        (Some("buffer_one"), Some("30s")),
        "{d}"
    );
    let trigger =
        |body: &'static str| beat.call("POST", "/api/v1/schedules/rt/trigger", Some(BOB), body);
    let plain = trigger("").await;
    assert_eq!(plain.status, 200, "{plain:?}");
    let forced = trigger(r#"{"force": true, "note": "urgent"}"#).await;
    assert_eq!(forced.status, 200, "{forced:?}");
    assert_error(&trigger(r#"{"force": "yes"}"#).await, 400, "force");
    let (plain, forced) = (
        plain.json()["id"].as_str().unwrap().to_string(),
        forced.json()["id"].as_str().unwrap().to_string(),
    );
    let (_conn, ch) = drumbeat_tests::amqp::channel().await;
    let got =
        drumbeat_tests::amqp::drain(&ch, &format!("{}.q", ns.ns), Duration::from_millis(500)).await;
    let mut policy = std::collections::BTreeMap::new();
    for d in &got {
        let env: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
        policy.insert(
            env["id"].as_str().unwrap().to_string(),
            env.get("overlap").cloned(),
        );
    }
    println!("api trigger envelopes: {policy:?}");
    assert_eq!(
        policy.get(&plain),
        Some(&Some(serde_json::json!("buffer_one")))
    );
    assert_eq!(policy.get(&forced), Some(&None), "forced: no policy");
    let audit = drumbeat_tests::audit_entries(&ns).await;
    assert!(
        audit.iter().any(|e| e
            .values()
            .any(|v| v.contains("forced past overlap = buffer_one"))),
        "{audit:?}"
    );
}
