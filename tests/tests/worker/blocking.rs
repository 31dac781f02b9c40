//! A timed-out handler whose work is still running keeps its claim until the work ends
//! (docs/design.md §6.4): the retry is deferred meanwhile, so runs never overlap. The blocking
//! work runs through `drumbeat_worker::spawn_blocking`, which ties it to the run; the abort at
//! the timeout cannot stop it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drumbeat_tests::{poll_until, TestNs, REDIS_URL};
use drumbeat_worker::{Outcome, Task};

use super::support::*;

/// (attempt, started, ended) of every run.
type Spans = Arc<Mutex<Vec<(u32, Instant, Option<Instant>)>>>;

fn end(spans: &Spans, attempt: u32) {
    let mut s = spans.lock().unwrap();
    if let Some(span) = s.iter_mut().find(|(a, _, _)| *a == attempt) {
        span.2 = Some(Instant::now());
    }
}

/// Runs one task whose first attempt blocks for 2 s under a 300 ms timeout; returns the spans.
async fn run_blocking(label: &str, handler: fn(Spans, u32) -> drumbeat_worker::BoxFuture) -> Spans {
    let ns = TestNs::new(label);
    let settings = ns.settings(
        &worker_toml(3, "").replace(r#"handler_timeout = "5s""#, r#"handler_timeout = "300ms""#),
    );
    declare(&settings).await;
    let spans: Spans = Arc::default();
    let s = spans.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("block", move |task: Task<serde_json::Value>| {
            let s = s.clone();
            async move {
                // Inside the future: a handler's closure is called before the claim, its
                // future runs only once claimed.
                s.lock().unwrap().push((task.attempt, Instant::now(), None));
                handler(s, task.attempt).await
            }
        })
    });
    let p = Pub::new(&ns).await;
    p.task("q", "blocker", "block", serde_json::Value::Null)
        .await;
    poll_until("blocker done", Duration::from_secs(30), || async {
        is_done(&ns, REDIS_URL, "blocker").await.then_some(())
    })
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    println!(
        "deferred while the first run's work went on: {}",
        w.handle.count("q", Outcome::Deferred)
    );
    w.shutdown().await;
    spans
}

fn assert_no_overlap(spans: &Spans) {
    let spans = spans.lock().unwrap().clone();
    let t0 = spans[0].1;
    let shown: Vec<_> = spans
        .iter()
        .map(|(a, s, e)| (*a, *s - t0, e.map(|e| e - t0)))
        .collect();
    println!("runs (attempt, start, end): {shown:?}");
    assert_eq!(spans.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2]);
    let first_end = spans[0].2.expect("the first run's work ended");
    assert!(
        spans[1].1 >= first_end,
        "attempt 2 started while attempt 1's work was still running: {shown:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_handler_waiting_on_spawn_blocking_never_overlaps_its_retry() {
    let spans = run_blocking("w-blockpool", |s, attempt| {
        Box::pin(async move {
            let work = drumbeat_worker::spawn_blocking(move || {
                if attempt == 1 {
                    std::thread::sleep(Duration::from_secs(2));
                }
                end(&s, attempt);
            });
            let _ = work.await;
            Ok(())
        })
    })
    .await;
    assert_no_overlap(&spans);
}
