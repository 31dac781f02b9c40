//! A campaign whose `SET NX` ran but whose reply came too late: the next round recognises the
//! beat's own value and leads within about one `renew_every`, not a whole TTL.

use std::sync::atomic::Ordering;
use std::time::Duration;

use drumbeat_tests::{Relay, TestNs};

use super::support::{lease_holder, secs, spawn_beat, stop_clean, to_role, wait_log, Ledger};

/// Long enough that waiting out the TTL is clearly distinguishable from one poll.
const TTL_SECS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_set_nx_reply_is_recognised_as_our_own_lease() {
    let ns = TestNs::new("beat-nxretry");
    let relay = Relay::start("127.0.0.1:6379".parse().unwrap()).await;
    // redis.timeout is 1s (the tests' base config): the reply arrives well after it.
    relay.delay_reply_to(b"NX", Duration::from_millis(2500));
    let url = format!("redis://{}/0", relay.addr);
    let cfg = ns.config_file(
        "beat.toml",
        &format!(
            "[beat]\nlease_ttl = \"{TTL_SECS}s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
             [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n"
        ),
    );
    let ledger = Ledger::start(&ns);
    let mut b1 = spawn_beat(&ns, &cfg, "b1", &[("DRUMBEAT__REDIS__URL", &url)]);
    let started = wait_log(&b1, "beat started", 1, Duration::from_secs(15)).await;
    let led = wait_log(&b1, &to_role("leader"), 1, Duration::from_secs(30)).await;
    let took = secs(started, led);
    println!("lost SET NX reply: b1 led {took:.2}s after start (ttl {TTL_SECS}s)");
    assert_eq!(
        relay.delayed.load(Ordering::SeqCst),
        1,
        "the reply was held"
    );
    assert!(
        took < TTL_SECS as f64 / 2.0,
        "b1 waited out its own lease: led {took:.2}s after start"
    );
    assert_eq!(
        lease_holder(&ns, drumbeat_tests::REDIS_URL)
            .await
            .as_deref(),
        Some("b1")
    );
    ledger.wait_count(2, Duration::from_secs(15)).await;
    stop_clean(&mut b1);
    ledger.finish(Duration::from_millis(500)).await;
}
