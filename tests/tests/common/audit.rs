//! The audit log (docs/design.md §10) on the real Redis: newest first, capped, fields intact.

use drumbeat_common::audit::{AuditLog, MAX_ENTRIES};
use drumbeat_common::redis::Redis;
use drumbeat_tests::{redis_conn, TestNs, REDIS_URL};

#[tokio::test]
async fn entries_read_newest_first_and_the_stream_stays_capped() {
    let ns = TestNs::new("audit");
    let settings = ns.settings("");
    let log = AuditLog::new(Redis::new(&settings.redis).unwrap(), &ns.ns);
    assert!(log.recent(10).await.unwrap().is_empty());
    log.record("pause", "nightly", "alice@host", "incident 42")
        .await
        .unwrap();
    log.record("replay", "queues=q all", "bob", "")
        .await
        .unwrap();
    let got = log.recent(10).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].action.as_str(), got[0].by.as_str()),
        ("replay", "bob")
    );
    assert_eq!(got[1].note, "incident 42");
    assert_eq!(got[1].target, "nightly");
    assert!(got[1].at.ends_with('Z') && got[1].at <= got[0].at);
    assert_eq!(log.recent(1).await.unwrap()[0].action, "replay");

    // Past the cap the oldest go (approximately: Redis trims whole nodes).
    let extra = MAX_ENTRIES + 300;
    for chunk in 0..extra / 100 {
        let writes = (0..100).map(|i| {
            let log = log.clone();
            async move {
                log.record("trigger", &format!("s{}", chunk * 100 + i), "t", "")
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(writes).await;
    }
    let mut c = redis_conn(REDIS_URL).await;
    let len: usize = redis::cmd("XLEN")
        .arg(log.key())
        .query_async(&mut c)
        .await
        .unwrap();
    println!("XLEN after {} records: {len}", extra + 2);
    assert!((MAX_ENTRIES..=MAX_ENTRIES + 200).contains(&len), "{len}");
    assert_eq!(log.recent(5).await.unwrap().len(), 5);
}
