//! Redis unreachable under the leader: it fences before its lease could expire, idles without
//! spinning, and fires again once Redis is back (empty: it starts from now).

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use drumbeat_tests::{PrivateRedis, TestNs};

use super::support::{
    audit, audit_all, secs, start_leader, stop_clean, tick_config, to_role, wait_log, Ledger, TTL,
};

const LONG: Duration = Duration::from_secs(15);
/// How long the fenced beat is watched for CPU use.
const IDLE: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fences_in_time_without_busy_loop_then_resumes() {
    let ns = TestNs::new("beat-redisdown");
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let cfg = tick_config(&ns);
    let ledger = Ledger::start(&ns);
    let mut b1 = start_leader(&ns, &cfg, "b1", &[("DRUMBEAT__REDIS__URL", &url)]).await;
    ledger.wait_count(2, LONG).await;

    // CPU is sampled over the whole outage: inside the lease (still leader, cursor writes
    // failing) and after fencing.
    let (cpu0, t0) = (cpu_ms(b1.pid()), std::time::Instant::now());
    let killed = Utc::now();
    redis.kill();
    let fenced = wait_log(&b1, &to_role("fenced"), 1, LONG).await;
    let to_fence = secs(killed, fenced);
    println!("redis down: b1 fenced after {to_fence:.2}s (ttl {TTL:?})");
    assert!(
        to_fence <= TTL.as_secs_f64() + 0.5,
        "fenced too late: {to_fence:.2}s"
    );

    tokio::time::sleep(IDLE).await; // observing an idle process takes a while
    let used = cpu_ms(b1.pid()) - cpu0;
    let share = used as f64 / t0.elapsed().as_millis() as f64;
    println!(
        "redis down: b1 used {used} ms CPU in {:.1?} ({:.1}%)",
        t0.elapsed(),
        share * 100.0
    );
    assert!(
        share < 0.10,
        "busy loop while Redis is down: {:.1}% CPU",
        share * 100.0
    );
    let during: Vec<_> = ledger.fires().into_iter().filter(|f| *f > fenced).collect();
    assert!(during.is_empty(), "fired while fenced: {during:?}");

    let before = ledger.fires();
    redis.restart();
    let restarted = Utc::now();
    let back = wait_log(&b1, &to_role("leader"), 2, LONG).await;
    let first = ledger
        .wait_fire_after(restarted + Span::seconds(1), LONG)
        .await;
    println!(
        "redis back: b1 leader after {:.2}s, first fire arrived after {:.2}s",
        secs(restarted, back),
        secs(restarted, first.got)
    );
    ledger.wait_fire_after(back + Span::seconds(2), LONG).await;
    stop_clean(&mut b1);
    let fires = ledger.finish(Duration::from_millis(1500)).await;

    // Before the outage and after it (a fresh Redis starts from now), nothing is missing.
    let (lo, hi) = (before.iter().min().unwrap(), before.iter().max().unwrap());
    let pre = audit(&fires, *lo, *hi, 1);
    let after: Vec<_> = fires.iter().copied().filter(|f| *f > restarted).collect();
    let post = audit(
        &fires,
        *after.iter().min().unwrap(),
        *after.iter().max().unwrap(),
        1,
    );
    println!("redis outage: before {pre:?}, after {post:?}");
    assert!(
        pre.missing.is_empty() && post.missing.is_empty(),
        "fires lost"
    );
    assert!(pre.duplicates <= 1, "{} duplicates", pre.duplicates);
}

/// User + system CPU time of a process, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // After the state letter: ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime, i.e. utime is the 11th number.
    let ticks = f[10] + f[11];
    let hz: u64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    ticks * 1000 / hz
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_fences_by_the_deadline_then_catches_up_from_the_cursor() {
    let ns = TestNs::new("beat-redishung");
    let redis = PrivateRedis::start();
    let url = redis.url();
    let pid = redis.pid().unwrap().to_string();
    let cfg = tick_config(&ns);
    let ledger = Ledger::start(&ns);
    let mut b1 = start_leader(&ns, &cfg, "b1", &[("DRUMBEAT__REDIS__URL", &url)]).await;
    ledger.wait_count(2, LONG).await;

    // A stopped server accepts connections and never answers: every call must time out.
    let hung = Utc::now();
    signal(&pid, "STOP");
    let fenced = wait_log(&b1, &to_role("fenced"), 1, LONG).await;
    let to_fence = secs(hung, fenced);
    println!("redis hung: b1 logged fenced after {to_fence:.2}s (ttl {TTL:?})");
    let deadline = hung + Span::from_std(TTL).unwrap();
    ledger.wait_fire_after(hung, LONG).await; // maybe sent before the deadline
    tokio::time::sleep(Duration::from_secs(2)).await; // a stray publish would show by now
    let late: Vec<_> = ledger
        .fires()
        .into_iter()
        .filter(|f| *f > deadline)
        .collect();
    assert!(late.is_empty(), "fired past the lease deadline: {late:?}");
    assert!(
        to_fence <= TTL.as_secs_f64() + 2.5,
        "fenced logged {to_fence:.2}s after"
    );

    let resumed = Utc::now();
    signal(&pid, "CONT");
    let back = wait_log(&b1, &to_role("leader"), 2, LONG).await;
    let caught = ledger.wait_fire_after(resumed, LONG).await;
    println!(
        "redis resumed: b1 leader after {:.2}s, caught up after {:.2}s",
        secs(resumed, back),
        secs(resumed, caught.got)
    );
    ledger.wait_fire_after(back + Span::seconds(2), LONG).await;
    stop_clean(&mut b1);
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let (audit, from, _) = audit_all("redis hung", &fires);
    assert!(from < hung, "window spans the hang");
    assert!(audit.missing.is_empty(), "fires lost: {:?}", audit.missing);
    // Fires confirmed while the cursor write timed out are not re-sent: the next term of the
    // same process starts from the later of the stored cursor and what it saw confirmed.
    let twice: std::collections::BTreeSet<_> = fires
        .iter()
        .filter(|f| fires.iter().filter(|g| g == f).count() > 1)
        .collect();
    println!("redis hung: sent twice {twice:?}");
    assert!(twice.is_empty(), "fires sent twice: {twice:?}");
}

fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} {pid}");
}
