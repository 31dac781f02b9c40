//! v1 → v2 key migration at beat start (beat/src/migrate.rs, docs/design.md §13): cursors
//! move once, a later cursor is never overwritten, two beats starting at once agree, and a live
//! v1 lease holds the migration (and the beat) back.

use std::time::Duration;

use drumbeat_beat::migrate;
use drumbeat_common::config::RedisMode;
use drumbeat_common::keys;
use drumbeat_common::redis::Redis;
use drumbeat_tests::{redis_conn, TestNs, REDIS_URL};
use tokio_util::sync::CancellationToken;

async fn get(c: &mut redis::aio::MultiplexedConnection, k: &str) -> Option<String> {
    redis::cmd("GET").arg(k).query_async(c).await.unwrap()
}

async fn set(c: &mut redis::aio::MultiplexedConnection, k: &str, v: &str) {
    redis::cmd("SET")
        .arg(k)
        .arg(v)
        .query_async::<()>(c)
        .await
        .unwrap();
}

#[tokio::test]
async fn v1_cursors_move_once_and_never_over_a_later_one() {
    let ns = TestNs::new("migrate");
    let settings = ns.settings("");
    let mut c = redis_conn(REDIS_URL).await;
    let old = keys::legacy_cursor_prefix(&ns.ns);
    let new = keys::cursor_prefix(&ns.ns);
    set(&mut c, &format!("{old}only-v1"), "1800000000 fp1").await;
    set(&mut c, &format!("{old}v2-later"), "1800000000").await;
    set(&mut c, &format!("{new}v2-later"), "1800000100 fp2").await;
    set(&mut c, &format!("{old}v1-later"), "1800000200 fp3").await;
    set(&mut c, &format!("{new}v1-later"), "1800000100 fp3").await;
    // A live v1 lease: the migration waits and moves nothing until it is gone.
    redis::cmd("SET")
        .arg(keys::legacy_lease(&ns.ns))
        .arg("old-beat token")
        .arg("PX")
        .arg(800)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let redis = Redis::new(&settings.redis).unwrap();
    let stop = CancellationToken::new();
    let early = {
        let (r, s, n) = (redis.clone(), stop.clone(), ns.ns.clone());
        tokio::spawn(async move { migrate::run(&r, &RedisMode::Single, &n, &s).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !early.is_finished(),
        "the migration must wait for the v1 lease"
    );
    assert!(get(&mut c, &format!("{old}only-v1")).await.is_some());

    // Two beats starting at once once the lease expired.
    let second = {
        let (r, s, n) = (redis.clone(), stop.clone(), ns.ns.clone());
        tokio::spawn(async move { migrate::run(&r, &RedisMode::Single, &n, &s).await })
    };
    tokio::time::timeout(Duration::from_secs(10), early)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        get(&mut c, &format!("{new}only-v1")).await.as_deref(),
        Some("1800000000 fp1")
    );
    assert_eq!(
        get(&mut c, &format!("{new}v2-later")).await.as_deref(),
        Some("1800000100 fp2")
    );
    assert_eq!(
        get(&mut c, &format!("{new}v1-later")).await.as_deref(),
        Some("1800000200 fp3")
    );
    for name in ["only-v1", "v2-later", "v1-later"] {
        assert_eq!(
            get(&mut c, &format!("{old}{name}")).await,
            None,
            "{name} left behind"
        );
    }
    assert!(
        get(&mut c, &keys::migrated(&ns.ns)).await.is_some(),
        "marker set"
    );

    // Idempotent: a v1 key appearing later is not scanned for again (the marker says done).
    set(&mut c, &format!("{old}late"), "1800000300").await;
    migrate::run(&redis, &RedisMode::Single, &ns.ns, &stop).await;
    assert_eq!(get(&mut c, &format!("{new}late")).await, None);
    redis::cmd("DEL")
        .arg(format!("{old}late"))
        .query_async::<()>(&mut c)
        .await
        .unwrap();
}

/// A beat whose Redis user may not touch v1's keys (an ACL written without them) skips the
/// migration with a warning and goes on, rather than retrying forever and never leading.
#[tokio::test]
async fn a_user_refused_the_v1_keys_skips_the_migration_instead_of_waiting() {
    use drumbeat_tests::users::{beat_redis, unique, RedisUser};
    let ns = TestNs::new("migrate-acl");
    // The beat's documented rules without v1's `ns:beat:*` (and without SCAN).
    let rules = beat_redis(&ns.ns)
        .replace(&format!("~{}:beat:* ", ns.ns), "")
        .replace(" +scan", "");
    assert!(!rules.contains(&format!("~{}:beat:*", ns.ns)), "{rules}");
    let user = RedisUser::create(&unique("mig"), "migrate-acl-pw-1234", &rules);
    let mut settings = ns.settings("");
    settings.redis = drumbeat_common::Settings::from_toml(&format!(
        "[redis]\nurl = \"{}\"\n[amqp]\nurl = \"{}\"\n",
        user.url(),
        drumbeat_tests::AMQP_URL
    ))
    .unwrap()
    .redis;
    let redis = Redis::new(&settings.redis).unwrap();
    let stop = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        migrate::run(&redis, &RedisMode::Single, &ns.ns, &stop),
    )
    .await
    .expect("the migration returns although NOPERM refuses the v1 keys");
    // It never claimed to have migrated: a later run with the permission still can.
    let mut c = redis_conn(REDIS_URL).await;
    assert_eq!(get(&mut c, &keys::migrated(&ns.ns)).await, None);
}
