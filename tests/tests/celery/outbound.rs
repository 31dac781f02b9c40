//! drumbeat beat → an unchanged Celery worker (docs/design.md §12): `format = "celery"` fires
//! run by a real `celery worker` (Celery 5.7 from tests/celery/requirements.txt), which
//! records what it decoded (tests/celery/outbound_tasks.py).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use drumbeat_tests::{amqp, bin_path, poll_until, TestNs, REDIS_URL};
use serde_json::{json, Value};

use crate::beat::support::{
    cursor, log_of, log_times, spawn_beat, start_leader, stop_clean, to_role, wait_log, SCHEDULE,
};

const LONG: Duration = Duration::from_secs(20);
/// The documented namespace of Celery task ids (docs/design.md §12), written out here so the
/// test computes the UUIDv5 independently of the beat's code.
const TASK_ID_NAMESPACE: &str = "82b71639-dcb0-4601-a1b0-f13301fd6cff";
const TASK: &str = "drumbeat.outbound.record";
/// The beat's warning when a fire came back unroutable.
const RETURNED: &str = "publish returned as unroutable";

/// Positional and keyword arguments with nesting, unicode and every TOML scalar.
const ARGS_TOML: &str = r#"args = [1, "héllo ✓", [true, 2.5, { deep = ["x", -7] }]]
kwargs = { when = "nightly", flag = false, nested = { list = [1, 2], "ключ" = "значение 🎉" } }
"#;

fn want_args() -> (Value, Value) {
    (
        json!([1, "héllo ✓", [true, 2.5, {"deep": ["x", -7]}]]),
        json!({"when": "nightly", "flag": false,
               "nested": {"list": [1, 2], "ключ": "значение 🎉"}}),
    )
}

/// A short lease and one 1-second `format = "celery"` schedule named [`SCHEDULE`].
fn beat_toml(queue: &str, extra: &str) -> String {
    format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"{SCHEDULE}\"\ntask = \"{TASK}\"\nevery = \"1s\"\n\
         format = \"celery\"\nqueue = \"{queue}\"\nexpires = \"1h\"\n{ARGS_TOML}{extra}"
    )
}

/// One task run, as the Celery worker decoded it.
#[derive(Debug, serde::Deserialize)]
struct Run {
    id: String,
    root_id: Option<String>,
    parent_id: Option<String>,
    task: String,
    args: Value,
    kwargs: Value,
    retries: i64,
    eta: Option<String>,
    expires: Option<String>,
    correlation_id: Option<String>,
    ignore_result: Option<bool>,
    argsrepr: Option<String>,
    fire_id: Option<String>,
    routing_key: Option<String>,
}

impl Run {
    fn fire_time(&self) -> DateTime<Utc> {
        let id = self.fire_id.as_deref().expect("x-drumbeat-fire-id header");
        let t = id
            .strip_prefix(&format!("sched:{SCHEDULE}:"))
            .unwrap_or_else(|| panic!("fire id {id}"));
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }
}

fn uuid5(fire_id: &str) -> String {
    let ns = uuid::Uuid::parse_str(TASK_ID_NAMESPACE).unwrap();
    uuid::Uuid::new_v5(&ns, fire_id.as_bytes()).to_string()
}

/// A `celery worker --pool solo` consuming `queue`; killed, and its queue and exchange
/// (Celery declares a direct exchange named like the queue) deleted on drop.
struct CeleryWorker {
    child: Child,
    log: PathBuf,
    out: PathBuf,
    queue: String,
}

impl CeleryWorker {
    /// A worker with Celery's `worker_prefetch_multiplier = 1`, the setting long tasks use.
    fn start(ns: &TestNs, queue: &str) -> Self {
        Self::with_prefetch(ns, queue, 1)
    }

    /// A worker with `worker_prefetch_multiplier = multiplier` (0: no prefetch limit).
    fn with_prefetch(ns: &TestNs, queue: &str, multiplier: u32) -> Self {
        let python = drumbeat_tests::celery::python();
        let log = ns.dir.join("celery-worker.log");
        let out = ns.dir.join("celery-runs.jsonl");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(python)
            .args([
                "-m",
                "celery",
                "-A",
                "outbound_tasks",
                "worker",
                "--pool",
                "solo",
            ])
            .args([
                "-Q",
                queue,
                "-n",
                &format!("{}@%h", ns.ns),
                "--loglevel",
                "INFO",
            ])
            .args([
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ])
            .env("PYTHONPATH", drumbeat_tests::celery::celery_dir())
            .env("OUTBOUND_QUEUE", queue)
            .env("OUTBOUND_OUT", &out)
            .env("OUTBOUND_PREFETCH", multiplier.to_string())
            .current_dir(&ns.dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start the celery worker");
        Self {
            child,
            log,
            out,
            queue: queue.to_string(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for Celery's "ready." line: its queue is declared and consumed.
    async fn ready(&self) {
        poll_until("the celery worker to be ready", LONG, || async {
            self.log_text().contains(" ready.").then_some(())
        })
        .await;
    }

    fn runs(&self) -> Vec<Run> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with('}'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for CeleryWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- celery worker log ----\n{}", self.log_text());
        }
        let queue = self.queue.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    let (_conn, ch) = amqp::channel().await;
                    let _ = ch
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                    let _ = ch
                        .exchange_delete(queue.as_str().into(), Default::default())
                        .await;
                })
                .await;
            });
        })
        .join();
    }
}

/// Every run decoded as configured: the task, args and kwargs intact, the task id the UUIDv5
/// of its fire id (also `root_id` and `correlation_id`), and Celery's other headers as a
/// plain `send_task` would set them, `expires` = fire time + 1h.
fn assert_runs_intact(runs: &[Run], queue: &str) {
    let (args, kwargs) = want_args();
    for r in runs {
        let fire_id = r.fire_id.as_deref().unwrap();
        assert_eq!(r.id, uuid5(fire_id), "task id of {fire_id}");
        assert_eq!(r.root_id.as_deref(), Some(r.id.as_str()));
        assert_eq!(r.correlation_id.as_deref(), Some(r.id.as_str()));
        assert_eq!(r.parent_id, None);
        assert_eq!(r.task, TASK);
        assert_eq!(r.args, args, "{fire_id}");
        assert_eq!(r.kwargs, kwargs, "{fire_id}");
        assert_eq!((r.retries, r.eta.as_deref()), (0, None));
        assert_eq!(r.ignore_result, Some(false));
        assert_eq!(r.routing_key.as_deref(), Some(queue));
        assert!(r.argsrepr.as_deref().unwrap().contains("'héllo ✓'"));
        let expires = DateTime::parse_from_rfc3339(r.expires.as_deref().unwrap()).unwrap();
        assert_eq!(expires, r.fire_time() + Span::hours(1), "{fire_id}");
    }
}

/// Runs per fire time.
fn by_time(runs: &[Run]) -> BTreeMap<DateTime<Utc>, usize> {
    let mut m = BTreeMap::new();
    for r in runs {
        *m.entry(r.fire_time()).or_insert(0) += 1;
    }
    m
}

/// Fire times missing between the first run and `last`, one second apart.
fn gaps(times: &BTreeMap<DateTime<Utc>, usize>, last: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let Some(first) = times.keys().next().copied() else {
        return vec![last];
    };
    let mut missing = Vec::new();
    let mut t = first;
    while t <= last {
        if !times.contains_key(&t) {
            missing.push(t);
        }
        t += Span::seconds(1);
    }
    missing
}

/// After the last beat stopped: waits until Celery ran the fire its cursor holds.
async fn wait_ran_through(ns: &TestNs, celery: &CeleryWorker) -> (Vec<Run>, DateTime<Utc>) {
    let last = cursor(ns, REDIS_URL).await.expect("a cursor");
    poll_until("celery to run every confirmed fire", LONG, || async {
        let runs = celery.runs();
        by_time(&runs).contains_key(&last).then_some(())
    })
    .await;
    (celery.runs(), last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_celery_worker_runs_every_fire_of_two_beats_across_a_kill9_failover() {
    let ns = TestNs::new("celery-out-ha");
    let queue = format!("{}.celery", ns.ns);
    let celery = CeleryWorker::start(&ns, &queue);
    celery.ready().await;
    let cfg = ns.config_file("beat.toml", &beat_toml(&queue, ""));
    let mut b1 = start_leader(&ns, &cfg, "b1", &[]).await;
    let mut b2 = spawn_beat(&ns, &cfg, "b2", &[]);
    wait_log(&b2, "beat started", 1, LONG).await;
    poll_until("celery to run 3 fires of b1", LONG, || async {
        (celery.runs().len() >= 3).then_some(())
    })
    .await;

    let killed = Utc::now();
    b1.kill9();
    let led = wait_log(&b2, &to_role("leader"), 1, LONG).await;
    poll_until("celery to run b2's fires", LONG, || async {
        let runs = celery.runs();
        runs.iter()
            .any(|r| r.fire_time() >= led + Span::seconds(3))
            .then_some(())
    })
    .await;
    stop_clean(&mut b2);
    let (runs, last) = wait_ran_through(&ns, &celery).await;

    let times = by_time(&runs);
    let first = *times.keys().next().unwrap();
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "kill -9: b2 leader after {:.2}s; celery ran {} runs of {} fire times {first}..{last}; \
         run more than once: {twice:?}",
        (led - killed).num_milliseconds() as f64 / 1000.0,
        runs.len(),
        times.len()
    );
    assert!(first < killed - Span::seconds(1) && last > led + Span::seconds(2));
    assert_eq!(
        gaps(&times, last),
        Vec::<DateTime<Utc>>::new(),
        "fires lost"
    );
    assert_runs_intact(&runs, &queue);
    // Copies of one fire carry one task id (checked per run above: id = uuid5(fire id)); a
    // Celery worker has no dedup, so a fire b1 published but had not yet recorded when it was
    // killed runs twice. Only the fires around the kill may be repeated, never b2's later ones.
    assert!(twice.len() <= 2, "{} fire times ran twice", twice.len());
    for (t, _) in &twice {
        assert!(
            **t <= led + Span::seconds(1),
            "{t} repeated after the takeover"
        );
    }
    assert!(!log_of(&b2).contains("missed fires skipped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_published_before_the_celery_queue_exists_are_delivered_once_it_does() {
    let ns = TestNs::new("celery-out-late");
    let queue = format!("{}.celery", ns.ns);
    let extra = "misfire_grace = \"30s\"\ncatch_up = \"all\"\n";
    let cfg = ns.config_file("beat.toml", &beat_toml(&queue, extra));
    let mut b1 = start_leader(&ns, &cfg, "b1", &[]).await;
    let first_fail = wait_log(&b1, RETURNED, 1, LONG).await;
    let held = cursor(&ns, REDIS_URL).await;
    // Retried (with backoff) for 3 s, so at least 3 fires are held back.
    poll_until("the beat to retry for 3 s", LONG, || async {
        log_times(&b1, RETURNED)
            .into_iter()
            .find(|t| *t >= first_fail + Span::seconds(3))
    })
    .await;
    assert_eq!(cursor(&ns, REDIS_URL).await, held, "the cursor is held");
    // The beat never declared Celery's queue: only the Celery worker does.
    let (_conn, ch) = amqp::channel().await;
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let absent = ch
        .queue_declare(queue.as_str().into(), passive, Default::default())
        .await;
    assert!(absent.is_err(), "the beat declared the Celery queue");

    let started = Utc::now();
    let celery = CeleryWorker::start(&ns, &queue);
    celery.ready().await;
    poll_until(
        "celery to run fires published after it started",
        LONG,
        || async {
            let runs = celery.runs();
            runs.iter()
                .any(|r| r.fire_time() >= started + Span::seconds(2))
                .then_some(())
        },
    )
    .await;
    stop_clean(&mut b1);
    let (runs, last) = wait_ran_through(&ns, &celery).await;

    let times = by_time(&runs);
    let first = *times.keys().next().unwrap();
    let held_back = times.keys().filter(|t| **t < started).count();
    println!(
        "first unroutable at {first_fail}; celery started {started}; it ran {} fire times \
         {first}..{last}, {held_back} of them due before it started",
        times.len()
    );
    assert!(
        first <= first_fail,
        "the first held fire ({first_fail}) ran"
    );
    assert!(
        held_back >= 3,
        "fires held back while the queue was missing ran"
    );
    assert_eq!(
        gaps(&times, last),
        Vec::<DateTime<Utc>>::new(),
        "fires lost"
    );
    // One beat, and a returned publish is not delivered: every fire ran exactly once.
    assert!(times.values().all(|n| *n == 1), "{times:?}");
    assert_runs_intact(&runs, &queue);
    assert!(!log_of(&b1).contains("missed fires skipped"));
    assert!(log_times(&b1, RETURNED).len() >= 3);
}

#[test]
fn beat_check_refuses_celery_args_that_are_not_an_array_and_kwargs_not_a_table() {
    let ns = TestNs::new("celery-out-check");
    let check = |extra: &str| {
        let schedule = format!(
            "[[schedules]]\nname = \"n\"\ntask = \"t\"\nevery = \"1m\"\nformat = \"celery\"\n{extra}"
        );
        let cfg = ns.config_file("beat.toml", &schedule);
        let out = Command::new(bin_path("beat"))
            .args(["--config", cfg.to_str().unwrap(), "check"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let (ok, stderr) = check("args = [1]\nkwargs = { a = 1 }\n");
    assert_eq!(ok, Some(0), "{stderr}");
    for (extra, field) in [
        ("args = { a = 1 }\n", "schedules[0].args"),
        ("args = \"x\"\n", "schedules[0].args"),
        ("kwargs = [1, 2]\n", "schedules[0].kwargs"),
        ("kwargs = \"k\"\n", "schedules[0].kwargs"),
    ] {
        let (code, stderr) = check(extra);
        println!("{extra:?}: {}", stderr.trim());
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(field), "{extra:?}: {stderr}");
    }
}

/// `beat --config CFG ctl ARGS… --json`, expecting exit 0.
async fn ctl_json(cfg: &std::path::Path, args: &[&str]) -> Value {
    let mut cmd = tokio::process::Command::new(bin_path("beat"));
    cmd.arg("--config")
        .arg(cfg)
        .arg("ctl")
        .args(args)
        .arg("--json");
    let out = tokio::time::timeout(LONG, cmd.output())
        .await
        .expect("ctl finished")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "ctl {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_trigger_and_backfill_publish_celery_messages_too() {
    let ns = TestNs::new("celery-out-ctl");
    let queue = format!("{}.celery", ns.ns);
    let celery = CeleryWorker::start(&ns, &queue);
    celery.ready().await;
    let cfg = ns.config_file("beat.toml", &beat_toml(&queue, ""));
    let manual = ctl_json(&cfg, &["trigger", SCHEDULE]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let to = DateTime::from_timestamp(Utc::now().timestamp() - 60, 0).unwrap();
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (from_s, to_s) = (rfc(to - Span::seconds(3)), rfc(to));
    let backfill = ctl_json(
        &cfg,
        &["backfill", SCHEDULE, "--from", &from_s, "--to", &to_s],
    )
    .await;
    assert_eq!(backfill["published"], 3, "{backfill}");
    let mut want: Vec<String> = (0..3)
        .map(|i| format!("sched:{SCHEDULE}:{}", rfc(to - Span::seconds(i))))
        .collect();
    want.push(manual.clone());
    want.sort();

    let runs = poll_until(
        "celery to run the trigger and the backfill",
        LONG,
        || async {
            let runs = celery.runs();
            (runs.len() >= 4).then_some(runs)
        },
    )
    .await;
    let mut got: Vec<String> = runs.iter().map(|r| r.fire_id.clone().unwrap()).collect();
    got.sort();
    assert_eq!(got, want);
    let (args, kwargs) = want_args();
    for r in &runs {
        assert_eq!(r.id, uuid5(r.fire_id.as_deref().unwrap()));
        assert_eq!((&r.args, &r.kwargs), (&args, &kwargs));
        assert_eq!(r.routing_key.as_deref(), Some(queue.as_str()));
        // Both expire `expires` after the publish, not after a fire time in the past.
        let expires = DateTime::parse_from_rfc3339(r.expires.as_deref().unwrap()).unwrap();
        assert!(expires > Utc::now() + Span::minutes(55), "{expires}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_discards_the_held_fires_whose_expires_passed_and_runs_the_rest() {
    let ns = TestNs::new("celery-out-expires");
    let queue = format!("{}.celery", ns.ns);
    let extra = "misfire_grace = \"30s\"\ncatch_up = \"all\"\n";
    let toml = beat_toml(&queue, extra).replace("expires = \"1h\"", "expires = \"2s\"");
    let cfg = ns.config_file("beat.toml", &toml);
    let mut b1 = start_leader(&ns, &cfg, "b1", &[]).await;
    let first_fail = wait_log(&b1, RETURNED, 1, LONG).await;
    poll_until("the beat to retry for 4 s", LONG, || async {
        log_times(&b1, RETURNED)
            .into_iter()
            .find(|t| *t >= first_fail + Span::seconds(4))
    })
    .await;
    let started = Utc::now();
    // No prefetch limit: with a window of 2, Celery 5.7 (kombu's hub) sends the acks of
    // discarded messages only after its next poll, which nothing wakes while the window is
    // full, so it pauses up to 10 s per window and the fresh fires queued behind the backlog
    // expired in turn (docs/design.md §12). Unlimited, every arrival wakes it.
    let celery = CeleryWorker::with_prefetch(&ns, &queue, 0);
    celery.ready().await;
    // The beat's retry backoff may still run a while: the first delivery marks its end, and
    // every fire due after it is published on time.
    poll_until("celery to receive the held fires", LONG, || async {
        celery.log_text().contains("] received").then_some(())
    })
    .await;
    let delivered = Utc::now();
    poll_until(
        "celery to run fires due after the first delivery",
        LONG,
        || async {
            let runs = celery.runs();
            runs.iter()
                .any(|r| r.fire_time() >= delivered + Span::seconds(2))
                .then_some(())
        },
    )
    .await;
    stop_clean(&mut b1);
    let last = cursor(&ns, REDIS_URL).await.expect("a cursor");
    let first = DateTime::from_timestamp(first_fail.timestamp(), 0).unwrap();
    let times: Vec<DateTime<Utc>> = (0..=(last - first).num_seconds())
        .map(|s| first + Span::seconds(s))
        .collect();
    let id_of = |t: &DateTime<Utc>| {
        uuid5(&format!(
            "sched:{SCHEDULE}:{}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
    };
    // Every fire the beat confirmed reaches Celery: run, or discarded as expired.
    let (ran, discarded) = poll_until("celery to run or discard every fire", LONG, || async {
        let ran = by_time(&celery.runs());
        let discarded: Vec<String> = celery
            .log_text()
            .lines()
            .filter(|l| l.contains("Discarding revoked task"))
            .filter_map(|l| {
                l.rsplit_once('[')
                    .map(|x| x.1.trim_end_matches(']').to_string())
            })
            .collect();
        times
            .iter()
            .all(|t| ran.contains_key(t) || discarded.contains(&id_of(t)))
            .then_some((ran, discarded))
    })
    .await;
    let mut expired = 0;
    for t in &times {
        let (was_run, was_discarded) = (ran.contains_key(t), discarded.contains(&id_of(t)));
        assert!(!(was_run && was_discarded), "{t}: both run and discarded");
        if *t + Span::seconds(2) < started {
            assert!(was_discarded, "{t} expired before celery started, yet ran");
            expired += 1;
        }
    }
    assert!(
        ran.keys().any(|t| *t >= delivered + Span::seconds(2)),
        "fires published on time ran"
    );
    println!(
        "celery discarded {} fires ({expired} expired before it started), ran {} of {first}..{last}",
        discarded.len(),
        ran.len()
    );
    assert!(expired >= 2, "too few fires held past their expiry to tell");
}
