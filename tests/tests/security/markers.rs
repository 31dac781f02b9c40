//! Log hygiene (docs/design.md §14): secrets planted as [`MARKERS`] — a RabbitMQ and a Redis
//! password, an ops token, an `http` task URL's `user:password@` and `?token=` — never appear
//! in any output, log, error, metric or dead-letter header. Every `Proc` of the suite checks
//! its own output for the markers when dropped; this test plants them and exercises the paths
//! that could leak them: running, a failing `http` task dead-lettered, wrong passwords,
//! `check`, `--help`, `/status`, `/metrics`, `/api/v1`, `dlq list`.

use std::process::Command;
use std::time::Duration;

use drumbeat_common::amqp::lapin::types::AMQPValue;
use drumbeat_tests::users::{unique, worker_rabbit, RabbitUser, RedisUser};
use drumbeat_tests::{
    amqp, assert_no_markers, bin_path, free_port, http_request, poll_until, Proc, TestNs, AMQP_URL,
    MARKERS, REDIS_URL,
};

const AMQP_PW: &str = MARKERS[0];
const REDIS_PW: &str = MARKERS[1];
const TOKEN: &str = MARKERS[2];
const HTTP_PW: &str = MARKERS[3];
const HTTP_TOKEN: &str = MARKERS[4];

/// A binary run to completion; its output checked for markers. Returns (exit code, output).
fn run(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(bin_path(bin))
        .args(args)
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_markers(&format!("`{bin} {}`", args.join(" ")), &text);
    (out.status.code().unwrap_or(-1), text)
}

/// Every header of a dead letter, rendered as text.
fn headers_text(d: &drumbeat_common::amqp::lapin::message::Delivery) -> String {
    let mut out = String::new();
    if let Some(h) = d.properties.headers().as_ref() {
        for (k, v) in h.inner() {
            let v = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                other => format!("{other:?}"),
            };
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

#[tokio::test]
async fn planted_secrets_never_reach_output_logs_metrics_or_dead_letter_headers() {
    let ns = TestNs::new("markers");
    let amqp_user = RabbitUser::create(&unique("mk"), AMQP_PW, Some(&worker_rabbit(&ns.ns)));
    let redis_user = RedisUser::create(&unique("mk"), REDIS_PW, "~* +@all");
    let (beat_port, worker_port, closed) = (free_port(), free_port(), free_port());
    let extra = format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"127.0.0.1:{beat_port}\"\n\
         [worker]\nops_addr = \"127.0.0.1:{worker_port}\"\n\
         [worker.retry]\nmax_attempts = 2\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\n\
         [ops]\ntokens = {{ alice = \"{TOKEN}\" }}\n\
         [[schedules]]\nname = \"leaky\"\ntask = \"http\"\nevery = \"2s\"\n\
         args = {{ url = \"http://bot:{HTTP_PW}@127.0.0.1:{closed}/hook?token={HTTP_TOKEN}\", timeout = \"2s\" }}\n"
    );
    let cfg = ns.config_file_as("c.toml", &extra, &amqp_user.url(), &redis_user.url());
    let c = cfg.to_str().unwrap();

    // Before connecting anywhere: check and --help (with the secrets in the environment too).
    let env_secrets = [
        ("DRUMBEAT__AMQP__URL", amqp_user.url()),
        ("DRUMBEAT__OPS__TOKENS__BOB", format!("{TOKEN}-bob")),
    ];
    let envs: Vec<(&str, &str)> = env_secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for bin in ["beat", "worker"] {
        let (code, out) = run(bin, &["--config", c, "check"], &envs);
        assert_eq!(code, 0, "{bin} check: {out}");
        for args in [&["--help"][..], &["run", "--help"][..]] {
            let (code, _) = run(bin, args, &envs);
            assert_eq!(code, 0, "{bin} {args:?}");
        }
    }
    let (code, _) = run("beat", &["ctl", "--help"], &envs);
    assert_eq!(code, 0);
    let (code, _) = run("worker", &["dlq", "--help"], &envs);
    assert_eq!(code, 0);
    // A bad config next to the secrets: refused, naming the field, no secret echoed.
    let bad = ns.dir.join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("every = \"2s\"", "every = \"2 fortnights\""),
    )
    .unwrap();
    let (code, out) = run("beat", &["--config", bad.to_str().unwrap(), "check"], &envs);
    assert_eq!(code, 2, "{out}");

    let beat = Proc::spawn(
        "beat",
        &["--config", c, "--id", "b1", "run"],
        &[],
        &ns.dir,
        "beat",
    );
    let worker = Proc::spawn(
        "worker",
        &["--config", c, "--id", "w1", "run"],
        &[],
        &ns.dir,
        "worker",
    );
    // Wrong passwords (the markers themselves, for users that do not exist): errors that must
    // not quote them. In a namespace of their own, so they take none of the real work.
    let other = TestNs::new("markerswrong");
    let nobody = format!("nobody-{}", other.ns);
    let wrong_amqp = other.config_file("wrong-amqp.toml", &extra);
    std::fs::write(
        &wrong_amqp,
        std::fs::read_to_string(&wrong_amqp)
            .unwrap()
            .replace("guest:guest", &format!("{nobody}:{AMQP_PW}")),
    )
    .unwrap();
    let wrong_redis = other.config_file("wrong-redis.toml", &extra);
    std::fs::write(
        &wrong_redis,
        std::fs::read_to_string(&wrong_redis)
            .unwrap()
            .replace(AMQP_URL, &amqp_user.url())
            .replace(
                "redis://127.0.0.1",
                &format!("redis://{nobody}:{REDIS_PW}@127.0.0.1"),
            ),
    )
    .unwrap();
    let mut wrong = Vec::new();
    for (i, path) in [&wrong_amqp, &wrong_redis].into_iter().enumerate() {
        let args = ["--config", path.to_str().unwrap(), "--id", "wrong", "run"];
        let port = free_port().to_string();
        let ops = [
            ("DRUMBEAT__WORKER__OPS_ADDR", format!("127.0.0.1:{port}")),
            ("DRUMBEAT__BEAT__OPS_ADDR", "off".to_string()),
        ];
        let ops: Vec<(&str, &str)> = ops.iter().map(|(k, v)| (*k, v.as_str())).collect();
        wrong.push(Proc::spawn(
            "worker",
            &args,
            &ops,
            &ns.dir,
            &format!("wrong-worker-{i}"),
        ));
        wrong.push(Proc::spawn(
            "beat",
            &args,
            &ops,
            &ns.dir,
            &format!("wrong-beat-{i}"),
        ));
    }
    let (_conn, ch) = amqp::channel().await;
    let dlq = format!("{}.default.dead", ns.ns);
    poll_until(
        "the leaky task dead-lettered",
        Duration::from_secs(60),
        || async { (amqp::message_count(&ch, &dlq).await.unwrap_or(0) >= 1).then_some(()) },
    )
    .await;
    // The refused processes said something about it by now.
    for p in &wrong {
        poll_until(
            &format!("{} logs its failure", p.name),
            Duration::from_secs(30),
            || async {
                let log = p.log_text();
                (log.contains("WARN") || log.contains("ERROR") || log.contains("error"))
                    .then_some(())
            },
        )
        .await;
    }

    // Ops endpoints: with the token, with a wrong one, and the open ones.
    let auth = format!("Bearer {TOKEN}");
    let wrong_auth = format!("Bearer {TOKEN}x");
    for (port, paths) in [
        (
            beat_port,
            &[
                "/status",
                "/metrics",
                "/api/v1/schedules",
                "/api/v1/dlq",
                "/api/v1/audit",
                "/",
            ][..],
        ),
        (worker_port, &["/status", "/metrics"][..]),
    ] {
        for path in paths {
            for h in [&auth, &wrong_auth] {
                let r = http_request(port, "GET", path, &[("Authorization", h)], b"").await;
                assert_no_markers(&format!("GET {path}"), &format!("{}\n{}", r.head, r.body));
            }
        }
    }
    let r = http_request(
        beat_port,
        "GET",
        "/api/v1/dlq",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = http_request(
        beat_port,
        "GET",
        "/status",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (code, out) = run("worker", &["--config", c, "dlq", "list"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("max-attempts"), "{out}");
    let (code, _) = run("worker", &["--config", c, "dlq", "list", "--json"], &[]);
    assert_eq!(code, 0);
    for args in [&["list"][..], &["describe", "leaky"][..], &["cluster"][..]] {
        let mut all = vec!["--config", c, "ctl"];
        all.extend_from_slice(args);
        let (code, out) = run("beat", &all, &[]);
        assert_eq!(code, 0, "ctl {args:?}: {out}");
    }

    // The dead letter: the body keeps the URL byte for byte; no header holds a secret.
    let dead = amqp::drain(&ch, &dlq, Duration::from_millis(200)).await;
    for d in &dead {
        let h = headers_text(d);
        assert!(h.contains("x-drumbeat-error"), "{h}");
        assert_no_markers("dead-letter headers", &h);
        let body = String::from_utf8_lossy(&d.data);
        assert!(body.contains(HTTP_PW), "the body is kept byte for byte");
    }
    println!(
        "{} dead letters checked; {} processes' logs checked",
        dead.len(),
        wrong.len() + 2
    );
    beat.check_markers();
    worker.check_markers();
    for p in &wrong {
        p.check_markers();
    }
}

/// `RUST_LOG=trace` on the beat while its fires come back unroutable: lapin's own events (the
/// login frame, every returned message with its headers and body) would print the broker
/// password and the task's arguments, as text or as `Debug` bytes. telemetry holds lapin to
/// ERROR whatever the filter says (docs/design.md §14).
#[tokio::test]
async fn trace_logging_never_prints_the_broker_login_or_a_returned_fires_body() {
    let ns = TestNs::new("markerstrace");
    let amqp_user = RabbitUser::create(&unique("mt"), AMQP_PW, Some(&worker_rabbit(&ns.ns)));
    // A Celery-format fire to a queue nobody declared: published to the default exchange and
    // returned NO_ROUTE, its body and `argsrepr` header holding the token.
    let extra = format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"unroutable\"\ntask = \"t.x\"\nevery = \"1s\"\n\
         format = \"celery\"\nqueue = \"{}.nobody\"\nargs = [\"{HTTP_TOKEN}\"]\n",
        ns.ns
    );
    let cfg = ns.config_file_as("c.toml", &extra, &amqp_user.url(), REDIS_URL);
    let beat = Proc::spawn(
        "beat",
        &["--config", cfg.to_str().unwrap(), "--id", "b1", "run"],
        &[("RUST_LOG", "trace"), ("NO_COLOR", "1")],
        &ns.dir,
        "beat",
    );
    poll_until(
        "two fires returned unroutable",
        Duration::from_secs(30),
        || async {
            let log = beat.log_text();
            (log.matches("publish returned as unroutable").count() >= 2).then_some(())
        },
    )
    .await;
    let log = beat.log_text();
    // Before telemetry held lapin to ERROR, this log had hundreds of lapin TRACE lines (every
    // frame) and a WARN per returned fire with its body as bytes.
    assert!(
        !log.lines()
            .any(|l| (l.contains(" lapin") || l.contains(" amq_protocol")) && !l.contains("ERROR")),
        "a lapin event below ERROR was logged"
    );
    beat.check_markers();
}
