//! Days of missed fires caught up while the broker is down (docs/design.md §6.10): every missed
//! fire is either sent or skipped, each counted once however often the send is retried; `latest`
//! sends one old fire however many were missed (more than one walk's worth); one log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use drumbeat_beat::{Beat, Clock, OffsetClock};
use drumbeat_common::control::SkipReason;
use drumbeat_tests::{amqp, poll_until, Relay, TestNs, AMQP_URL};
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(30);

/// Log lines of this thread's beat (the test runs on a current-thread runtime, so every task of
/// the in-process beat logs through the thread's default subscriber).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn lines(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

fn fire_times(deliveries: &[lapin::message::Delivery]) -> Vec<DateTime<Utc>> {
    deliveries
        .iter()
        .filter_map(|d| d.properties.message_id().as_ref().map(|m| m.to_string()))
        .filter_map(|id| DateTime::parse_from_rfc3339(id.strip_prefix("sched:tick:")?).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

#[tokio::test]
async fn days_missed_during_a_broker_outage_are_counted_once_and_capped() {
    let ns = TestNs::new("beat-catchup");
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_env_filter("drumbeat_beat=info")
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let extra = "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n\
         misfire_grace = \"5s\"\ncatch_up = \"latest\"\n";
    ns.settings(extra); // registers the queues for cleanup
    let relayed = ns.base_toml().replace(
        &AMQP_URL.replace("%2f", ""),
        &format!("amqp://guest:guest@{}/", relay.addr),
    );
    assert!(relayed.contains(&relay.addr.to_string()), "{relayed}");
    let settings = drumbeat_common::Settings::from_toml(&format!("{relayed}{extra}")).unwrap();
    let clock = OffsetClock::default();
    let beat = Beat::new(settings, "catchup", Arc::new(clock.clone()));
    let metrics = beat.metrics();
    let stop = CancellationToken::new();
    let run = tokio::spawn(beat.run(stop.clone()));
    let (conn, ch) = amqp::channel().await;
    let queue = format!("{}.default", ns.ns);
    poll_until("two fires", LONG, || {
        let n = metrics.fires_sent.get();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    // Cut right after a confirm, so no fire is in flight at the cut.
    let sent = metrics.fires_sent.get();
    poll_until("one more fire", LONG, || {
        let n = metrics.fires_sent.get();
        async move { (n > sent).then_some(()) }
    })
    .await;

    // Broker gone, then three days (more than one 200 000-fire walk) jump past.
    relay.set_refusing(true);
    relay.cut();
    let cut_at = Utc::now();
    let sent_before = metrics.fires_sent.get();
    let failures = metrics.publish_failures.get();
    clock.jump(Span::days(3));
    poll_until("several retried sends", LONG, || {
        let n = metrics.publish_failures.get();
        async move { (n >= failures + 3).then_some(()) }
    })
    .await;
    let skipped_during = metrics.skipped(SkipReason::Misfire).get();
    relay.set_refusing(false);
    let back = clock.now();
    poll_until("fires flowing after the outage", LONG, || {
        let n = metrics.fires_sent.get();
        async move { (n >= sent_before + 3).then_some(()) }
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    let fires = fire_times(&amqp::drain(&ch, &queue, Duration::from_millis(300)).await);
    let _ = conn.close(200, "bye".into()).await;

    let skipped = metrics.skipped(SkipReason::Misfire).get();
    let mut distinct = fires.clone();
    distinct.sort();
    distinct.dedup();
    let (first, last) = (distinct[0], *distinct.last().unwrap());
    let window = (last - first).num_seconds() as u64 + 1;
    let after_cut = |f: &&DateTime<Utc>| **f > cut_at + Span::seconds(1);
    let stale: Vec<_> = distinct
        .iter()
        .filter(after_cut)
        .filter(|f| **f < back - Span::seconds(5))
        .collect();
    let far: Vec<_> = stale
        .iter()
        .filter(|f| ***f < back - Span::seconds(60))
        .collect();
    let lines = capture.lines("missed fires skipped");
    println!(
        "3 days missed: window {window} fires, {} sent, {skipped} skipped ({skipped_during} \
         during the outage), stale sent {stale:?}, skip lines {lines:#?}",
        distinct.len()
    );
    assert_eq!(
        distinct.len() as u64 + skipped,
        window,
        "every fire from {first} to {last} sent or skipped exactly once"
    );
    assert!(far.is_empty(), "latest sent fires from days ago: {far:?}");
    assert!(
        stale.len() <= 1,
        "latest sent {} old fires: {stale:?}",
        stale.len()
    );
    assert_eq!(lines.len(), 1, "one skip log line per catch-up: {lines:#?}");
    assert!(
        lines[0].contains(&format!("skipped={skipped}")),
        "the line names the whole count {skipped}: {}",
        lines[0]
    );
}
