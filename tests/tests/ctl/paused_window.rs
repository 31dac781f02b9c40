//! A paused window backfilled once (docs/design.md §10): the fires a resume skipped are exactly
//! the ones `ctl backfill` over that window publishes, each runs once on a real worker, and a
//! second backfill of the window runs nothing (the workers count every one as a duplicate).

use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_tests::{free_port, poll_until, redis_conn, Proc, TestNs, REDIS_URL};

use super::fire::settled;
use super::*;
use crate::beat::support::{start_leader, stop_clean};

const LONG: Duration = Duration::from_secs(30);

fn config(ops: u16) -> String {
    format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [worker]\nqueues = [\"default\"]\nops_addr = \"127.0.0.1:{ops}\"\n\
         [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n\
         catch_up = \"all\"\nmisfire_grace = \"1h\"\n"
    )
}

async fn done_keys(ns: &TestNs, ids: &[String]) -> usize {
    let mut conn = redis_conn(REDIS_URL).await;
    let mut n = 0;
    for id in ids {
        let exists: bool = redis::cmd("EXISTS")
            .arg(ns.task_key(id, "done"))
            .query_async(&mut conn)
            .await
            .unwrap();
        n += usize::from(exists);
    }
    n
}

async fn skipped_paused(ns: &TestNs) -> u64 {
    store(ns).stats(&["tick"]).await.unwrap()[0]
        .skipped
        .get("paused")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_window_is_backfilled_once() {
    let ns = TestNs::new("ctl-pausefill");
    let port = free_port();
    let cfg = ns.config_file("drumbeat.toml", &config(port));
    let mut beat = start_leader(&ns, &cfg, "b1", &[]).await;
    let mut worker = Proc::spawn(
        "worker",
        &["--config", cfg.to_str().unwrap(), "--id", "w1", "run"],
        &[],
        &ns.dir,
        "worker",
    );
    poll_until("a tick done by the worker", LONG, || async {
        let s = store(&ns).stats(&["tick"]).await.ok()?;
        (s[0].last_outcome.as_ref()?.outcome == "done").then_some(())
    })
    .await;

    ctl_json(&cfg, &["pause", "tick", "--note", "window"]).await;
    // The paused window's length is the test's input (an outage of a few seconds), not a wait
    // for an event.
    let paused_at = Utc::now();
    poll_until("a 4 s paused window", LONG, || async {
        (Utc::now() - paused_at >= chrono::Duration::seconds(4)).then_some(())
    })
    .await;
    ctl_json(&cfg, &["resume", "tick"]).await;
    let k = poll_until("the resume applied", LONG, || async {
        let k = skipped_paused(&ns).await;
        (k > 0).then_some(k)
    })
    .await;
    // The resume mark (whole seconds) is where the skip ends: (mark - k, mark] were skipped.
    let mark: DateTime<Utc> = store(&ns)
        .snapshot()
        .await
        .unwrap()
        .resumed
        .get("tick")
        .copied()
        .expect("a resume mark");
    let to = DateTime::from_timestamp(mark.timestamp(), 0).unwrap();
    let from = to - chrono::Duration::seconds(k as i64);
    let window: Vec<String> = (1..=k as i64)
        .map(|s| drumbeat_beat::publish::fire_id("tick", from + chrono::Duration::seconds(s)))
        .collect();
    assert_eq!(
        done_keys(&ns, &window).await,
        0,
        "nothing of the paused window ran: {window:?}"
    );

    // Stop the schedule again so only the backfills reach the worker from here on.
    ctl_json(&cfg, &["pause", "tick"]).await;
    let (from_s, to_s) = (rfc(from), rfc(to));
    let out = ctl_json(
        &cfg,
        &["backfill", "tick", "--from", &from_s, "--to", &to_s],
    )
    .await;
    let fires: Vec<String> = out["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(fires, window, "the backfill is exactly the skipped window");
    assert_eq!(out["published"], window.len());
    poll_until("every backfilled fire done", LONG, || async {
        (done_keys(&ns, &window).await == window.len()).then_some(())
    })
    .await;
    // Quiet: whatever was in flight when the second pause landed has settled.
    let done = poll_until("the worker's done count settled", LONG, || async {
        let a = settled(port, "done").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        (settled(port, "done").await == a).then_some(a)
    })
    .await;
    let dup = settled(port, "duplicate").await;

    let again = ctl_json(
        &cfg,
        &["backfill", "tick", "--from", &from_s, "--to", &to_s],
    )
    .await;
    assert_eq!(again["fires"], out["fires"], "the same ids again");
    poll_until(
        "every repeated fire counted as a duplicate",
        LONG,
        || async { (settled(port, "duplicate").await >= dup + window.len() as f64).then_some(()) },
    )
    .await;
    assert_eq!(
        settled(port, "done").await,
        done,
        "the repeated backfill ran nothing"
    );
    assert_eq!(
        settled(port, "duplicate").await,
        dup + window.len() as f64,
        "exactly the window was seen again"
    );
    stop_clean(&mut beat);
    worker.signal("TERM");
    let _ = worker.wait_exit(Duration::from_secs(30));
}
