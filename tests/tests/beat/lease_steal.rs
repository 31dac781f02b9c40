//! The lease overwritten under the leader: it stops firing, never extends the foreign key, and
//! its cursor stops moving; once the key is gone it campaigns, wins, and catches up.

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use drumbeat_tests::{redis_conn, TestNs, REDIS_URL};

use super::support::{
    audit_all, cursor, get_key, log_of, secs, start_leader, stop_clean, tick_config, to_role,
    wait_log, Ledger,
};

const LONG: Duration = Duration::from_secs(15);
const FOREIGN: &str = "thief 0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwritten_lease_stops_firing_and_is_never_extended() {
    let ns = TestNs::new("beat-steal");
    let cfg = tick_config(&ns);
    let ledger = Ledger::start(&ns);
    let mut b1 = start_leader(&ns, &cfg, "b1", &[]).await;
    ledger.wait_count(2, LONG).await;

    let mut r = redis_conn(REDIS_URL).await;
    let key = ns.key("beat:lease");
    let stolen = Utc::now();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(FOREIGN)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut r)
        .await
        .unwrap();
    let stepped_down = wait_log(&b1, &to_role("standby"), 1, LONG).await;
    println!(
        "lease stolen: b1 standby after {:.2}s",
        secs(stolen, stepped_down)
    );
    let settled = Utc::now();
    let cursor_then = cursor(&ns, REDIS_URL).await;
    let pttl_then: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();

    // Absence of fires can only be observed over a while: three renew rounds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<_> = ledger
        .fires()
        .into_iter()
        .filter(|f| *f > settled)
        .collect();
    assert!(late.is_empty(), "b1 fired after losing the lease: {late:?}");
    assert_eq!(
        get_key(&ns, REDIS_URL, "beat:lease").await.as_deref(),
        Some(FOREIGN)
    );
    let pttl_now: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
    println!("foreign lease PTTL {pttl_then} -> {pttl_now} ms");
    assert!(
        pttl_now <= pttl_then - 2500,
        "the foreign key's TTL was extended"
    );
    assert_eq!(
        cursor(&ns, REDIS_URL).await,
        cursor_then,
        "cursor moved without the lease"
    );
    let refused = log_of(&b1).contains("cursor advance refused");
    println!("b1 logged a refused cursor advance: {refused}");

    // The thief vanishes: b1 campaigns, wins, and sends the gap from its cursor.
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
    let back = wait_log(&b1, &to_role("leader"), 2, LONG).await;
    ledger.wait_fire_after(back + Span::seconds(2), LONG).await;
    stop_clean(&mut b1);
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let (audit, from, _) = audit_all("lease stolen", &fires);
    assert!(from < stolen, "window spans the theft");
    assert!(audit.missing.is_empty(), "fires lost: {:?}", audit.missing);
    assert!(audit.duplicates <= 1, "{} duplicates", audit.duplicates);
}
