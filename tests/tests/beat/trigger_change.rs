//! A changed trigger is a new schedule (docs/design.md §3): it starts from now instead of
//! replaying the fires the new trigger "would have had"; the same trigger re-added resumes from
//! its cursor; a cursor written before fingerprints existed keeps working and gains one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use drumbeat_beat::{Beat, BeatError, Clock, OffsetClock, SystemClock};
use drumbeat_common::control::SkipReason;
use drumbeat_tests::{amqp, poll_until, TestNs, REDIS_URL};
use tokio_util::sync::CancellationToken;

use super::support::{get_key, SCHEDULE};

const LONG: Duration = Duration::from_secs(20);

fn config(trigger: &str) -> String {
    format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"{SCHEDULE}\"\ntask = \"log\"\n{trigger}\n\
         misfire_grace = \"60s\"\ncatch_up = \"all\"\n"
    )
}

/// A running in-process beat.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), BeatError>>,
    metrics: drumbeat_beat::metrics::BeatMetrics,
}

fn start(ns: &TestNs, trigger: &str, clock: Arc<dyn Clock>) -> Running {
    let beat = Beat::new(ns.settings(&config(trigger)), "fp", clock);
    let metrics = beat.metrics();
    let stop = CancellationToken::new();
    let task = tokio::spawn(beat.run(stop.clone()));
    Running {
        stop,
        task,
        metrics,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn raw_cursor(ns: &TestNs) -> Option<String> {
    get_key(ns, REDIS_URL, &format!("beat:cursor:{SCHEDULE}")).await
}

fn cursor_secs(v: &str) -> i64 {
    v.split(' ').next().unwrap().parse().unwrap()
}

/// Fire instants of every message in the work queue.
async fn drain_fires(ch: &lapin::Channel, queue: &str) -> Vec<DateTime<Utc>> {
    amqp::drain(ch, queue, Duration::from_millis(300))
        .await
        .iter()
        .filter_map(|d| d.properties.message_id().as_ref().map(|m| m.to_string()))
        .filter_map(|id| {
            let t = id.strip_prefix(&format!("sched:{SCHEDULE}:"))?.to_string();
            DateTime::parse_from_rfc3339(&t).ok()
        })
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_trigger_starts_from_now_and_the_same_trigger_resumes() {
    let ns = TestNs::new("beat-fingerprint");
    let (conn, ch) = amqp::channel().await;
    let queue = format!("{}.default", ns.ns);

    // 1. A yearly schedule leads with its clock an hour back: its cursor is an hour old.
    let back = OffsetClock::default();
    back.jump(Span::hours(-1));
    let yearly = start(&ns, "cron = \"@yearly\"", Arc::new(back));
    let v1 = poll_until("the yearly start cursor", LONG, || raw_cursor(&ns)).await;
    yearly.stop().await;
    let hour_ago = Utc::now() - Span::minutes(59);
    assert!(DateTime::from_timestamp(cursor_secs(&v1), 0).unwrap() < hour_ago);

    // 2. Changed to every second (catch_up = all): starts from now, replays nothing.
    let changed_at = Utc::now();
    let every = start(&ns, "every = \"1s\"", Arc::new(SystemClock));
    poll_until("three fires", LONG, || async {
        (every.metrics.fires_sent.get() >= 3).then_some(())
    })
    .await;
    let skipped = every.metrics.skipped(SkipReason::Misfire).get();
    every.stop().await;
    let fires = drain_fires(&ch, &queue).await;
    let replayed: Vec<_> = fires
        .iter()
        .filter(|f| **f < changed_at - Span::seconds(1))
        .collect();
    println!(
        "trigger changed: {} fires, {} before the change, {skipped} skipped",
        fires.len(),
        replayed.len()
    );
    assert!(
        replayed.is_empty(),
        "the changed trigger replayed {} fires from before the change, first {:?}",
        replayed.len(),
        replayed.first()
    );
    assert_eq!(skipped, 0, "no history to skip either");
    let v2 = raw_cursor(&ns).await.unwrap();
    let fp2 = v2.split_once(' ').map(|x| x.1.to_string());
    assert!(fp2.is_some(), "cursor {v2} carries a fingerprint");
    assert_ne!(
        fp2,
        v1.split_once(' ').map(|x| x.1.to_string()),
        "{v1} vs {v2}"
    );
    let last = *fires.iter().max().unwrap();

    // 3. Removed for a few seconds, re-added with the same trigger: resumes from the cursor.
    poll_until("a few fires' worth of absence", LONG, || async {
        (Utc::now() > last + Span::seconds(3)).then_some(())
    })
    .await;
    let readded_at = Utc::now();
    let again = start(&ns, "every = \"1s\"", Arc::new(SystemClock));
    poll_until("a fire after the re-add", LONG, || async {
        raw_cursor(&ns)
            .await
            .filter(|v| cursor_secs(v) > readded_at.timestamp() + 1)
    })
    .await;
    again.stop().await;
    let resumed = drain_fires(&ch, &queue).await;
    let gap: Vec<i64> = (last.timestamp() + 1..=readded_at.timestamp()).collect();
    let missing: Vec<_> = gap
        .iter()
        .filter(|t| !resumed.iter().any(|f| f.timestamp() == **t))
        .collect();
    println!(
        "re-added: {} fires, gap {gap:?}, missing {missing:?}",
        resumed.len()
    );
    assert!(
        missing.is_empty(),
        "fires of the absence not sent: {missing:?}"
    );

    // 4. A cursor without a fingerprint (an earlier version's) is resumed from, then gains one.
    let legacy = Utc::now().timestamp() - 5;
    let mut c = drumbeat_tests::redis_conn(REDIS_URL).await;
    let key = ns.key(&format!("beat:cursor:{SCHEDULE}"));
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(legacy.to_string())
        .query_async(&mut c)
        .await
        .unwrap();
    let old = start(&ns, "every = \"1s\"", Arc::new(SystemClock));
    let v4 = poll_until("the legacy cursor to gain a fingerprint", LONG, || async {
        raw_cursor(&ns).await.filter(|v| v.contains(' '))
    })
    .await;
    old.stop().await;
    let fires = drain_fires(&ch, &queue).await;
    let first = fires.iter().min().copied().unwrap();
    println!("legacy cursor {legacy}: first fire {first}, now stored {v4}");
    assert_eq!(
        first.timestamp(),
        legacy + 1,
        "resumed right after the legacy cursor"
    );
    assert_eq!(
        v4.split_once(' ').map(|x| x.1.to_string()),
        fp2,
        "same trigger, same fingerprint"
    );
    let _ = conn.close(200, "bye".into()).await;
}
