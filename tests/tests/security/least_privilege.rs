//! Least privilege (docs/design.md §14): beat and worker binaries under RabbitMQ users and
//! Redis ACL users with exactly the permissions the README documents (`drumbeat_tests::users`,
//! rendered for this test's namespace) run fires, retries and dead letters end to end; the
//! same users are refused what they were not given; the README holds the commands verbatim.

use std::time::Duration;

use drumbeat_common::amqp::lapin::options::QueueDeclareOptions;
use drumbeat_common::amqp::lapin::types::FieldTable;
use drumbeat_common::amqp::lapin::{Connection, ConnectionProperties};
use drumbeat_common::amqp::{header_int, header_str};
use drumbeat_tests::users::{
    beat_rabbit, beat_redis, rabbit_command, redis_command, unique, worker_rabbit, worker_redis,
    RabbitUser, RedisUser,
};
use drumbeat_tests::{amqp, free_port, ns_keys, poll_until, Proc, TestNs, REDIS_URL};

#[test]
fn the_readme_gives_exactly_the_tested_commands() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for line in [
        rabbit_command("drumbeat-beat", &beat_rabbit("drumbeat")),
        rabbit_command("drumbeat-worker", &worker_rabbit("drumbeat")),
        redis_command("drumbeat-beat", "BEAT_PASSWORD", &beat_redis("drumbeat")),
        redis_command(
            "drumbeat-worker",
            "WORKER_PASSWORD",
            &worker_redis("drumbeat"),
        ),
    ] {
        assert!(readme.contains(&line), "README.md lacks the line\n{line}");
    }
}

/// Lines of a process's log that say a permission was refused.
fn refusals(p: &Proc) -> Vec<String> {
    p.log_text()
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("noperm") || l.contains("access_refused") || l.contains("access refused")
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn beat_and_worker_run_fires_retries_and_dead_letters_under_least_privilege() {
    let ns = TestNs::new("leastpriv");
    let n = &ns.ns;
    let beat_amqp = RabbitUser::create(&unique("lp-beat"), &unique("pw"), Some(&beat_rabbit(n)));
    let worker_amqp =
        RabbitUser::create(&unique("lp-worker"), &unique("pw"), Some(&worker_rabbit(n)));
    let beat_redis_user = RedisUser::create(&unique("lp-beat"), &unique("pw"), &beat_redis(n));
    let worker_redis_user =
        RedisUser::create(&unique("lp-worker"), &unique("pw"), &worker_redis(n));

    let closed = free_port();
    let common = format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [worker]\nops_addr = \"off\"\nbeat_users = [\"{}\", \"{}\"]\n\
         [worker.retry]\nmax_attempts = 2\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\n\
         [[schedules]]\nname = \"ok\"\ntask = \"log\"\nevery = \"1s\"\n\
         [[schedules]]\nname = \"bad\"\ntask = \"http\"\nevery = \"2s\"\n\
         args = {{ url = \"http://127.0.0.1:{closed}/down\", timeout = \"2s\" }}\n",
        beat_amqp.name, worker_amqp.name
    );
    let as_user = |name: &str, amqp_url: &str, redis_url: &str| {
        ns.config_file_as(name, &common, amqp_url, redis_url)
    };
    let beat_cfg = as_user("beat.toml", &beat_amqp.url(), &beat_redis_user.url());
    let worker_cfg = as_user("worker.toml", &worker_amqp.url(), &worker_redis_user.url());
    let beat = Proc::spawn(
        "beat",
        &["--config", beat_cfg.to_str().unwrap(), "--id", "b1", "run"],
        &[],
        &ns.dir,
        "beat",
    );
    let worker = Proc::spawn(
        "worker",
        &[
            "--config",
            worker_cfg.to_str().unwrap(),
            "--id",
            "w1",
            "run",
        ],
        &[],
        &ns.dir,
        "worker",
    );

    // Fires run: `done` markers of `ok` appear (written by the worker's user).
    let started = std::time::Instant::now();
    let done = poll_until(
        "three fires of `ok` done",
        Duration::from_secs(40),
        || async {
            let done: Vec<String> = ns_keys(&ns)
                .await
                .into_iter()
                .filter(|k| k.contains("{sched:ok:") && k.ends_with(":done"))
                .collect();
            (done.len() >= 3).then_some(done)
        },
    )
    .await;
    println!(
        "3 fires done under restricted users after {:.1?}",
        started.elapsed()
    );
    assert!(done.iter().all(|k| k.starts_with(&format!("{n}:task:"))));

    // A failing fire retries (a publish with the worker's user_id) and is dead-lettered.
    let (_c, ch) = amqp::channel().await;
    let dlq = format!("{n}.default.dead");
    poll_until(
        "a dead letter of `bad`",
        Duration::from_secs(40),
        || async { (amqp::message_count(&ch, &dlq).await.unwrap_or(0) >= 1).then_some(()) },
    )
    .await;
    let dead = amqp::drain(&ch, &dlq, Duration::from_millis(200)).await;
    let d = &dead[0];
    assert_eq!(
        header_str(&d.properties, "x-drumbeat-reason").as_deref(),
        Some("max-attempts")
    );
    assert_eq!(header_int(&d.properties, "x-drumbeat-attempts"), Some(2));
    assert_eq!(
        d.properties.user_id().as_ref().map(|u| u.to_string()),
        Some(worker_amqp.name.clone()),
        "the worker republishes as itself"
    );
    // The outcome reports reached the control store.
    let stats: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(ns.key("sched:bad"))
        .query_async(&mut drumbeat_tests::redis_conn(REDIS_URL).await)
        .await
        .unwrap();
    assert!(
        stats
            .get("last_outcome")
            .is_some_and(|o| o.contains("\"dead\"") || o.contains("retrying")),
        "{stats:?}"
    );
    for p in [&beat, &worker] {
        let refused = refusals(p);
        assert!(
            refused.is_empty(),
            "{} was refused something: {refused:#?}",
            p.name
        );
    }

    // Refused what was not granted, on each side.
    let conn = Connection::connect(&worker_amqp.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    let declared = other
        .queue_declare(
            "not-drumbeat.q".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    let e = declared.expect_err("declared a queue outside the namespace");
    assert!(e.to_string().contains("ACCESS_REFUSED"), "{e}");
    let _ = conn.close(200, "bye".into()).await;
    let mut r = drumbeat_tests::redis_conn(&worker_redis_user.url()).await;
    let lease: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg(ns.key("beat:lease"))
        .query_async(&mut r)
        .await;
    let e = lease.expect_err("the worker's Redis user read the lease");
    assert!(e.to_string().to_lowercase().contains("noperm"), "{e}");
    drop(beat);
    drop(worker);
}
