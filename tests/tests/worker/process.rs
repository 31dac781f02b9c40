//! Process faults with the real `worker` binary (built with `--features failpoints`): SIGTERM
//! drain, kill -9 mid-handler, a crash between `done` and ack.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use drumbeat_tests::{poll_until, Proc, TestNs, REDIS_URL};

use super::support::*;

pub(crate) fn spawn(ns: &TestNs, name: &str, extra: &str, envs: &[(&str, &str)]) -> Proc {
    let path = ns.config_file(&format!("{name}.toml"), extra);
    let path = path.to_str().unwrap().to_string();
    Proc::spawn(
        "worker",
        &["--config", &path, "--id", name, "run"],
        envs,
        &ns.dir,
        name,
    )
}

pub(super) async fn wait_log(p: &Proc, needle: &str) {
    poll_until(
        &format!("`{needle}` in {} log", p.name),
        Duration::from_secs(30),
        || async { p.log_text().contains(needle).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn sigterm_lets_in_flight_handlers_finish_and_leaves_the_rest_queued() {
    let ns = TestNs::new("w-sigterm");
    let extra = worker_toml(3, "").replace(
        "prefetch = 16\nconcurrency = 8",
        "prefetch = 2\nconcurrency = 2",
    );
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let p = Pub::new(&ns).await;
    for i in 0..6 {
        p.task(
            "q",
            &format!("slow-{i}"),
            "http",
            serde_json::json!({"url": format!("http://{addr}/slow/1500/{i}")}),
        )
        .await;
    }
    let mut w = spawn(&ns, "w1", &extra, &[]);
    poll_until(
        "two slow handlers in flight",
        Duration::from_secs(30),
        || async { (server.started() == 2).then_some(()) },
    )
    .await;
    let t = Instant::now();
    w.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let s = w.wait_exit(Duration::from_secs(20));
        (s, w)
    })
    .await
    .unwrap();
    let (status, w) = status;
    let status = status.expect("worker exited after SIGTERM");
    println!(
        "exit {status:?} {:?} after SIGTERM; calls started {}, finished {}",
        t.elapsed(),
        server.started(),
        server.finished()
    );
    assert_eq!(status.code(), Some(0), "{}", w.log_text());
    assert_eq!(server.started(), 2, "no new work started during the drain");
    assert_eq!(server.finished(), 2, "in-flight handlers finished");
    let mut done = 0;
    for i in 0..6 {
        done += is_done(&ns, REDIS_URL, &format!("slow-{i}")).await as usize;
    }
    assert_eq!(done, 2);
    poll_until(
        "the 4 others back in the queue",
        Duration::from_secs(10),
        || async { (ready(&ns, "q").await == 4).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn kill9_mid_handler_with_a_second_worker_loses_nothing() {
    let ns = TestNs::new("w-kill9");
    let extra = worker_toml(3, "")
        .replace(r#"handler_timeout = "5s""#, r#"handler_timeout = "2s""#)
        .replace(
            "prefetch = 16\nconcurrency = 8",
            "prefetch = 4\nconcurrency = 4",
        );
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let mut a = spawn(&ns, "wa", &extra, &[]);
    wait_log(&a, "consuming").await;
    let p = Pub::new(&ns).await;
    let n = 12;
    for i in 0..n {
        p.task(
            "q",
            &format!("k-{i}"),
            "http",
            serde_json::json!({"url": format!("http://{addr}/slow/600/{i}")}),
        )
        .await;
    }
    poll_until("worker a mid-handler", Duration::from_secs(30), || async {
        (server.started() > server.finished()).then_some(())
    })
    .await;
    a.kill9();
    let killed = Instant::now();
    let b = spawn(&ns, "wb", &extra, &[]);
    poll_until(
        "every task done after the kill",
        Duration::from_secs(90),
        || async {
            for i in 0..n {
                if !is_done(&ns, REDIS_URL, &format!("k-{i}")).await {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    let mut per: HashMap<String, usize> = HashMap::new();
    for c in server.calls.lock().unwrap().iter() {
        *per.entry(c.key.clone()).or_default() += 1;
    }
    let rerun: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "all {n} done {:?} after kill -9; calls {}, rerun after the kill (at least once): {rerun:?}",
        killed.elapsed(),
        server.started()
    );
    assert_eq!(per.len(), n, "every task ran");
    assert!(!b.log_text().contains("panicked"));
}

#[tokio::test]
async fn crash_between_done_and_ack_is_not_rerun() {
    let ns = TestNs::new("w-crashdone");
    let extra = worker_toml(3, "");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let p = Pub::new(&ns).await;
    p.task(
        "q",
        "crash-1",
        "http",
        serde_json::json!({"url": format!("http://{addr}/ok/crash")}),
    )
    .await;
    let mut a = spawn(
        &ns,
        "wa",
        &extra,
        &[("DRUMBEAT_FAILPOINT", "crash-after-done")],
    );
    let status = tokio::task::spawn_blocking(move || (a.wait_exit(Duration::from_secs(30)), a))
        .await
        .unwrap();
    let (status, a) = status;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "failpoint did not fire; is target/debug/worker built with --features failpoints?\n{}",
        a.log_text()
    );
    assert!(
        is_done(&ns, REDIS_URL, "crash-1").await,
        "done recorded before the crash"
    );
    poll_until(
        "unacked delivery back in the queue",
        Duration::from_secs(10),
        || async { (ready(&ns, "q").await == 1).then_some(()) },
    )
    .await;
    let b = spawn(&ns, "wb", &extra, &[]);
    wait_log(&b, "already done").await;
    wait_queues_empty(&ns, &settings, "q").await;
    println!(
        "calls to the handler's endpoint: {}",
        server.calls_to("ok/crash").len()
    );
    assert_eq!(server.calls_to("ok/crash").len(), 1, "not run again");
}

/// A second signal during the drain means "don't wait": the worker exits at once with 130,
/// long before `drain_timeout`, and the in-flight task is requeued by the broker, not lost.
#[tokio::test]
async fn a_second_signal_during_the_drain_exits_at_once_with_130() {
    let ns = TestNs::new("w-sig2");
    let extra = worker_toml(3, "").replace(r#"drain_timeout = "5s""#, r#"drain_timeout = "30s""#);
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let p = Pub::new(&ns).await;
    let url = format!("http://{addr}/slow/20000/x");
    p.task("q", "sig2-slow", "http", serde_json::json!({ "url": url }))
        .await;
    let mut w = spawn(&ns, "w1", &extra, &[]);
    poll_until(
        "the slow handler in flight",
        Duration::from_secs(30),
        || async { (server.started() == 1).then_some(()) },
    )
    .await;
    w.signal("TERM");
    wait_log(&w, "shutdown requested").await;
    let t = Instant::now();
    w.signal("INT");
    let (status, w) =
        tokio::task::spawn_blocking(move || (w.wait_exit(Duration::from_secs(10)), w))
            .await
            .unwrap();
    // Within 10 s, so it did not wait out the 30 s drain.
    let status = status.expect("worker exited after the second signal");
    println!("exit {status:?} {:?} after the second signal", t.elapsed());
    assert_eq!(status.code(), Some(130), "{}", w.log_text());
    assert!(!is_done(&ns, REDIS_URL, "sig2-slow").await);
    poll_until(
        "the task back in the queue",
        Duration::from_secs(10),
        || async { (ready(&ns, "q").await == 1).then_some(()) },
    )
    .await;
}
