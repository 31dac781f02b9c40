//! Reserved ids (docs/design.md §14): another AMQP user cannot forge or pre-empt a scheduled
//! fire. A stranger publishes the very id the beat is about to fire (and a `manual:` one, and
//! one with no `user_id`): each is dead-lettered `forbidden-id` without running or claiming,
//! and the beat's real fire of that id still runs when it comes.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use drumbeat_common::amqp::lapin::options::BasicPublishOptions;
use drumbeat_common::amqp::lapin::{BasicProperties, Connection, ConnectionProperties};
use drumbeat_common::amqp::{header_str, task_properties};
use drumbeat_common::Envelope;
use drumbeat_tests::users::{unique, RabbitPerms, RabbitUser};
use drumbeat_tests::{ns_keys, poll_until, Proc, TestNs, REDIS_URL};
use drumbeat_worker::Task;
use serde_json::Value;

use crate::worker::support::{
    declare, is_done, reason, take_dead, worker_toml, Pub, Running, Runs,
};

/// Publishes `env` to `{ns}.tasks` → `q` over `conn` with `props`, waiting for the confirm.
async fn publish_as(conn: &Connection, ns: &TestNs, env: &Envelope, props: BasicProperties) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            format!("{}.tasks", ns.ns).as_str().into(),
            "q".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &env.encode(),
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "publish not confirmed: {confirm:?}");
}

#[tokio::test]
async fn a_stranger_cannot_forge_or_preempt_a_scheduled_fire() {
    let ns = TestNs::new("reserved");
    // A one-shot fire far enough ahead for the forgeries to be settled first.
    let at =
        (Utc::now() + chrono::Duration::seconds(15)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let at_time = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
    let fire = format!("sched:once:{at}");
    let extra = format!(
        "{}\n[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"once\"\ntask = \"count\"\nqueue = \"q\"\nat = \"{at}\"\n",
        worker_toml(2, "")
    );
    let settings = ns.settings(&extra);
    assert_eq!(
        settings.worker.beat_users,
        ["guest"],
        "default: the user of amqp.url"
    );
    let cfg = ns.config_file("beat.toml", &extra);
    declare(&settings).await;
    let beat = Proc::spawn(
        "beat",
        &["--config", cfg.to_str().unwrap(), "--id", "b1", "run"],
        &[],
        &ns.dir,
        "beat",
    );

    let stranger = RabbitUser::create(
        &unique("stranger"),
        &unique("pw"),
        Some(&RabbitPerms {
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }),
    );
    let conn = Connection::connect(&stranger.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let manual = format!("manual:once:{}", uuid::Uuid::new_v4());
    let forged = [fire.clone(), manual.clone(), format!("sched:once:{at}")];
    // RabbitMQ checks user_id against the connection: the stranger can only name itself, or
    // leave it out.
    for (i, id) in forged.iter().enumerate() {
        let env = Envelope::new(id, "count", Value::Null);
        let props = task_properties(id, 1);
        let props = if i < 2 {
            props.with_user_id(stranger.name.as_str().into())
        } else {
            props
        };
        publish_as(&conn, &ns, &env, props).await;
    }
    // Naming another user is refused by the broker itself.
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let env = Envelope::new(&fire, "count", Value::Null);
    let spoof = ch
        .basic_publish(
            format!("{}.tasks", ns.ns).as_str().into(),
            "q".into(),
            BasicPublishOptions::default(),
            &env.encode(),
            task_properties(&fire, 1).with_user_id("guest".into()),
        )
        .await;
    let refused = match spoof {
        Err(_) => true,
        Ok(pending) => pending.await.is_err(),
    };
    assert!(refused, "RabbitMQ accepted a user_id of another user");

    let runs = Runs::default();
    let r = runs.clone();
    let worker = Running::start(settings.clone(), "w1", move |b| {
        b.task("count", move |t: Task<Value>| {
            let r = r.clone();
            async move {
                r.record(&t.id, t.attempt);
                Ok(())
            }
        })
    });
    let dead = take_dead(&ns, "q", 3).await;
    let settled_at = Utc::now();
    println!(
        "3 forgeries dead-lettered {:.1}s before the fire",
        (at_time.with_timezone(&Utc) - settled_at).num_milliseconds() as f64 / 1000.0
    );
    assert!(
        settled_at < at_time,
        "the forgeries were not settled before the real fire; the test proves nothing"
    );
    let mut ids: Vec<String> = Vec::new();
    for d in &dead {
        assert_eq!(reason(d), "forbidden-id");
        let error = header_str(&d.properties, "x-drumbeat-error").unwrap();
        assert!(error.contains("worker.beat_users"), "{error}");
        let body: Envelope = serde_json::from_slice(&d.data).unwrap();
        ids.push(body.id);
    }
    ids.sort();
    let mut want = forged.to_vec();
    want.sort();
    assert_eq!(ids, want, "each forgery dead-lettered once, body kept");
    assert_eq!(runs.total(), 0, "a forged reserved id ran");
    let task_keys: Vec<String> = ns_keys(&ns)
        .await
        .into_iter()
        .filter(|k| k.contains(":task:"))
        .collect();
    assert!(
        task_keys.is_empty(),
        "a forgery claimed its id: {task_keys:?}"
    );

    // The real fire, from the beat's user, still runs: once.
    poll_until("the real fire ran", Duration::from_secs(40), || async {
        (runs.of(&fire).len() == 1 && is_done(&ns, REDIS_URL, &fire).await).then_some(())
    })
    .await;
    // The beat's user may publish manual ids too (as `beat ctl trigger` does).
    let own = format!("manual:once:{}", uuid::Uuid::new_v4());
    Pub::new(&ns)
        .await
        .task("q", &own, "count", Value::Null)
        .await;
    poll_until(
        "the beat user's manual id ran",
        Duration::from_secs(20),
        || async { (runs.of(&own).len() == 1).then_some(()) },
    )
    .await;
    assert_eq!(runs.of(&fire).len(), 1);
    assert_eq!(runs.of(&manual).len(), 0);
    drop(beat);
    let _ = conn.close(200, "bye".into()).await;
    worker.shutdown().await;
}

/// A worker whose own AMQP user is not in `beat_users` would dead-letter its own retries of
/// scheduled fires: it says so at start.
#[tokio::test]
async fn a_worker_whose_user_is_not_a_beat_user_warns_at_start() {
    let ns = TestNs::new("beatusers");
    let cfg = ns.config_file(
        "w.toml",
        "[worker]\nqueues = [\"q\"]\nops_addr = \"off\"\nbeat_users = [\"drumbeat-beat\"]\n",
    );
    let w = Proc::spawn(
        "worker",
        &["--config", cfg.to_str().unwrap(), "--id", "w1", "run"],
        &[("NO_COLOR", "1")],
        &ns.dir,
        "worker",
    );
    let line = poll_until(
        "the beat_users warning",
        Duration::from_secs(20),
        || async {
            w.log_text()
                .lines()
                .find(|l| l.contains("not in worker.beat_users"))
                .map(str::to_string)
        },
    )
    .await;
    assert!(line.contains("WARN") && line.contains("guest"), "{line}");
    let ok = ns.config_file(
        "ok.toml",
        "[worker]\nqueues = [\"q\"]\nops_addr = \"off\"\n",
    );
    let quiet = Proc::spawn(
        "worker",
        &["--config", ok.to_str().unwrap(), "--id", "w2", "run"],
        &[("NO_COLOR", "1")],
        &ns.dir,
        "quiet",
    );
    poll_until(
        "the default worker consumes",
        Duration::from_secs(20),
        || async { quiet.log_text().contains("consuming").then_some(()) },
    )
    .await;
    assert!(
        !quiet.log_text().contains("beat_users"),
        "the default (its own user) needs no warning"
    );
}
