//! Config validation: every refused case names its field; passwords never leak.

use drumbeat_common::config::ConfigError;
use drumbeat_common::Settings;

const BASE: &str = r#"
namespace = "cfgtest"
[redis]
url = "redis://:hunter2pw@127.0.0.1:6379/0"
[amqp]
url = "amqp://guest:hunter2pw@127.0.0.1:5672/%2f"
"#;

fn parse(extra: &str) -> Result<Settings, ConfigError> {
    Settings::from_toml(&format!("{BASE}{extra}"))
}

fn sched(body: &str) -> String {
    format!("[[schedules]]\nname = \"a\"\ntask = \"log\"\n{body}\n")
}

#[test]
fn refused_configs_name_the_field() {
    let ok_every = "every = \"1s\"";
    let cases: Vec<(String, &str)> = vec![
        (sched("cron = \"61 * * * *\""), "schedules[0].cron"),
        (sched("cron = \"not a cron\""), "schedules[0].cron"),
        (sched("cron = \"0 0 30 2 *\""), "schedules[0].cron"),
        (
            sched("every = \"1s\"\ntimezone = \"Mars/Olympus\""),
            "schedules[0].timezone",
        ),
        (sched(""), "schedules[0]"),
        (
            sched("every = \"1s\"\ncron = \"* * * * *\""),
            "schedules[0]",
        ),
        (
            sched("every = \"1s\"\nat = \"2027-01-01T00:00:00Z\""),
            "schedules[0]",
        ),
        (sched("every = \"500ms\""), "schedules[0].every"),
        (sched("every = \"0s\""), "schedules[0].every"),
        (sched("every = \"ten seconds\""), "schedules[0].every"),
        (sched("at = \"tomorrow\""), "schedules[0].at"),
        (
            format!("{}{}", sched(ok_every), sched(ok_every)),
            "schedules[1].name",
        ),
        (
            sched(&format!("{ok_every}\ncatch_up = \"some\"")),
            "schedules[0].catch_up",
        ),
        (sched(&format!("{ok_every}\nbogus = 1")), "schedules[0]"),
        (
            "[[schedules]]\nname = \"bad name!\"\ntask = \"log\"\nevery = \"1s\"\n".into(),
            "schedules[0].name",
        ),
        (
            sched(&format!("{ok_every}\nqueue = \"a.b\"")),
            "schedules[0].queue",
        ),
        (
            "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"2s\"\n".into(),
            "beat.renew_every",
        ),
        ("[beat]\nleas_ttl = \"3s\"\n".into(), "beat"),
        ("[beat]\nops_addr = \"localhost\"\n".into(), "beat.ops_addr"),
        ("[worker]\nprefetch = 0\n".into(), "worker.prefetch"),
        ("[worker]\nconcurrency = 0\n".into(), "worker.concurrency"),
        (
            "[worker]\nhandler_timeout = \"30m\"\n".into(),
            "worker.handler_timeout",
        ),
        (
            "[worker]\nhandler_timeout = \"2h\"\n".into(),
            "worker.handler_timeout",
        ),
        ("[worker]\nqueues = []\n".into(), "worker.queues"),
        (
            "[worker.retry]\nmax_attempts = 0\n".into(),
            "worker.retry.max_attempts",
        ),
        (
            "[worker.retry]\nbackoff_base = \"10s\"\nbackoff_max = \"1s\"\n".into(),
            "worker.retry.backoff_max",
        ),
        (
            "[queues.q.retry]\nbackoff_base = \"10s\"\nbackoff_max = \"1s\"\n".into(),
            "queues.q.retry.backoff_max",
        ),
        (
            sched(&format!("{ok_every}\noverlap = \"forbid\"")),
            "schedules[0].overlap",
        ),
        (
            sched("every = \"30s\"\njitter = \"30s\""),
            "schedules[0].jitter",
        ),
        (
            sched("cron = \"*/5 * * * *\"\njitter = \"6m\""),
            "schedules[0].jitter",
        ),
        (
            sched("at = \"2030-01-01T00:00:00Z\"\njitter = \"2d\""),
            "schedules[0].jitter",
        ),
        ("[worker]\nbeat_users = []\n".into(), "worker.beat_users"),
    ];
    let mut cases = cases;
    cases.extend(too_large_cases());
    for (extra, field) in &cases {
        match parse(extra) {
            Ok(_) => panic!("accepted, expected refusal at {field}:\n{extra}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(*field),
                    "expected field `{field}` in `{msg}`"
                );
                assert!(!msg.contains("hunter2pw"), "password leaked: {msg}");
            }
        }
    }
    println!("{} refused configs checked", cases.len());
}

/// The connection settings of docs/design.md §13-14 and the schedule keys of §15, accepted.
#[test]
fn cluster_tls_and_overlap_settings_are_read() {
    let s = Settings::from_toml(&format!(
        r#"namespace = "cfgtest"
[redis]
url = "redis+sentinel://:hunter2pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/1"
sentinel_password = "hunter2pw"
wait_replicas = 1
[amqp]
url = ["amqp://beat:hunter2pw@127.0.0.1:5672/%2f", "amqp://beat:hunter2pw@127.0.0.1:5673/%2f"]
{}"#,
        sched("every = \"1m\"\noverlap = \"buffer_one\"\njitter = \"59s\"")
    ))
    .unwrap();
    assert_eq!(s.amqp.nodes().count(), 2);
    assert_eq!(s.worker.beat_users, vec!["beat".to_string()]);
    assert_eq!(s.redis.wait_replicas, 1);
    assert_eq!(s.redis.target.nodes.len(), 2);
    assert_eq!(s.schedules[0].overlap.as_str(), "buffer_one");
    assert_eq!(
        s.schedules[0].jitter,
        Some(std::time::Duration::from_secs(59))
    );
    let shown = format!("{:#}", s.summary());
    assert!(!shown.contains("hunter2pw"), "{shown}");
    assert!(
        shown.contains("\"mode\": \"sentinel (master mymaster, db 1)\""),
        "{shown}"
    );
    // Without an ops_addr the ops servers listen on loopback only (docs/design.md §14).
    assert_eq!(
        s.beat.ops_addr.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9464")
    );
    assert_eq!(
        s.worker.ops_addr.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9465")
    );
}

#[test]
fn refused_connection_settings_name_the_field() {
    for (redis, amqp, field) in [
        ("wait_replicas = -1", "", "redis.wait_replicas"),
        ("wait_replicas = 101", "", "redis.wait_replicas"),
        (
            "tls = { ca_file = \"/nonexistent/ca.pem\" }",
            "",
            "redis.tls.ca_file",
        ),
        (
            "",
            "tls = { cert_file = \"/etc/hostname\" }",
            "amqp.tls.key_file",
        ),
    ] {
        let text = format!(
            "[redis]\nurl = \"redis://:hunter2pw@127.0.0.1:6379/0\"\n{redis}\n\
             [amqp]\nurl = \"amqp://guest:hunter2pw@127.0.0.1:5672/%2f\"\n{amqp}\n"
        );
        let e = Settings::from_toml(&text).expect_err(field).to_string();
        assert!(e.starts_with(field), "expected {field}: {e}");
        assert!(!e.contains("hunter2pw"), "{e}");
    }
}

/// Values that parse but would overflow later arithmetic (chrono, `Instant + Duration`, Redis
/// PX in i64 ms, RabbitMQ TTLs, tier labels): each is refused at start, naming the field.
fn too_large_cases() -> Vec<(String, &'static str)> {
    let every = "every = \"1s\"";
    vec![
        (
            sched(&format!("{every}\nexpires = \"1000000y\"")),
            "schedules[0].expires",
        ),
        (
            sched(&format!("{every}\nmisfire_grace = \"1000000y\"")),
            "schedules[0].misfire_grace",
        ),
        (sched("every = \"1000000y\""), "schedules[0].every"),
        (
            "[beat]\nlease_ttl = \"1000000y\"\n".into(),
            "beat.lease_ttl",
        ),
        (
            "[worker]\ndrain_timeout = \"1000000y\"\n".into(),
            "worker.drain_timeout",
        ),
        (
            "[worker]\ndone_ttl = \"1000000y\"\n".into(),
            "worker.done_ttl",
        ),
        (
            "[worker]\nconcurrency = 9223372036854775807\n".into(),
            "worker.concurrency",
        ),
        (
            "[worker.retry]\nmax_attempts = 9223372036854775807\n".into(),
            "worker.retry.max_attempts",
        ),
        (
            "[worker.retry]\nbackoff_max = \"1000000y\"\n".into(),
            "worker.retry.backoff_max",
        ),
        (
            "[worker.retry]\nbackoff_base = \"1500us\"\n".into(),
            "worker.retry.backoff_base",
        ),
        (
            "[queues.q.retry]\nbackoff_base = \"100y\"\nbackoff_max = \"200y\"\n".into(),
            "queues.q.retry.backoff_base",
        ),
    ]
}

#[test]
fn huge_network_timeouts_are_refused() {
    for (section, key) in [
        ("[redis]\n", "timeout"),
        ("[amqp]\n", "confirm_timeout"),
        ("[amqp]\n", "connect_timeout"),
    ] {
        let text = BASE.replace(section, &format!("{section}{key} = \"1000000y\"\n"));
        let e = Settings::from_toml(&text).unwrap_err();
        let field = format!("{}.{key}", &section[1..section.len() - 2]);
        assert_eq!(e.field_path(), Some(field.as_str()), "{e}");
    }
}

#[test]
fn config_at_every_bound_is_usable_without_overflow() {
    use drumbeat_common::config::bounds::*;
    let d = |d: std::time::Duration| format!("{}s", d.as_secs());
    let s = parse(&format!(
        "[beat]\nlease_ttl = \"{lease}\"\n[worker]\ndrain_timeout = \"{drain}\"\ndone_ttl = \"{done}\"\nconcurrency = {MAX_CONCURRENCY}\n[worker.retry]\nmax_attempts = {MAX_ATTEMPTS}\nbackoff_base = \"1ms\"\nbackoff_max = \"{backoff}\"\n{}",
        sched(&format!(
            "at = \"9999-12-31T23:59:59Z\"\nexpires = \"{expires}\"\nmisfire_grace = \"{grace}\"",
            expires = d(MAX_EXPIRES),
            grace = d(MAX_MISFIRE_GRACE),
        )),
        lease = d(MAX_LEASE_TTL),
        drain = d(MAX_DRAIN_TIMEOUT),
        done = d(MAX_DONE_TTL),
        backoff = d(MAX_BACKOFF),
    ))
    .unwrap();
    let sch = &s.schedules[0];
    let at = sch
        .trigger
        .next_after(chrono::Utc::now(), sch.timezone)
        .unwrap();
    // What the beat computes at the fire (beat/src/publish.rs): must not panic.
    let env = drumbeat_beat::publish::envelope(sch, at);
    assert!(env.expires_at.is_some(), "{env:?}");
    let tiers = s.worker.retry.tiers();
    let labels: std::collections::HashSet<_> = tiers
        .iter()
        .map(|t| drumbeat_common::config::retry::tier_label(*t))
        .collect();
    assert_eq!(labels.len(), tiers.len(), "tier names are distinct");
    assert!(s.worker.retry.backoff_tier(u32::MAX) <= s.worker.retry.backoff_max);
}

#[test]
fn refused_namespaces_and_urls() {
    let cases = [
        ("namespace = \"Bad NS\"\n", "namespace"),
        ("namespace = \"\"\n", "namespace"),
        (
            "namespace = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
            "namespace",
        ),
    ];
    for (ns, field) in cases {
        let text = format!(
            "{ns}[redis]\nurl = \"redis://127.0.0.1\"\n[amqp]\nurl = \"amqp://127.0.0.1\"\n"
        );
        let e = Settings::from_toml(&text).unwrap_err();
        assert_eq!(e.field_path(), Some(field), "{e}");
    }
    for (redis, amqp, field) in [
        ("http://u:hunter2pw@x", "amqp://x", "redis.url"),
        ("redis://x", "not a url hunter2pw", "amqp.url"),
        ("redis://x", "redis://u:hunter2pw@x", "amqp.url"),
    ] {
        let text = format!("[redis]\nurl = \"{redis}\"\n[amqp]\nurl = \"{amqp}\"\n");
        let e = Settings::from_toml(&text).unwrap_err();
        assert_eq!(e.field_path(), Some(field), "{e}");
        assert!(!e.to_string().contains("hunter2pw"), "{e}");
    }
}

#[test]
fn valid_config_is_normalised_and_redacted() {
    let s = parse(&format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\n[worker]\nqueues = [\"default\", \"mail\"]\n[queues.mail.retry]\nmax_attempts = 2\n{}",
        sched("cron = \"30 2 * * MON-FRI\"\ntimezone = \"America/New_York\"\nexpires = \"10m\"")
    ))
    .unwrap();
    assert_eq!(s.retry_policy("mail").max_attempts, 2);
    assert_eq!(s.retry_policy("default").max_attempts, 5);
    assert_eq!(s.schedules[0].timezone, chrono_tz::America::New_York);
    let shown = format!("{:#}\n{:?}", s.summary(), s);
    assert!(!shown.contains("hunter2pw"), "{shown}");
    assert!(shown.contains("***"));
}

#[test]
fn binaries_exit_2_naming_the_field_and_never_print_passwords() {
    let dir = std::env::temp_dir().join(format!("drumbeat-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{BASE}[beat]\nlease_ttl = \"3s\"\nrenew_every = \"2s\"\n"),
    )
    .unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, format!("{BASE}{}", sched("every = \"1s\""))).unwrap();
    for bin in ["beat", "worker"] {
        let (code, text) = run_bin(bin, &["--config", bad.to_str().unwrap(), "check"], &[]);
        assert_eq!(code, Some(2), "{bin}: {text}");
        assert!(text.contains("beat.renew_every"), "{bin}: {text}");
        assert!(!text.contains("hunter2pw"), "{bin}: {text}");

        let (code, text) = run_bin(bin, &["--config", good.to_str().unwrap(), "check"], &[]);
        assert_eq!(code, Some(0), "{bin}: {text}");
        assert!(!text.contains("hunter2pw"), "{bin}: {text}");
        assert!(text.contains("***"), "{bin}: {text}");

        let env = [
            ("DRUMBEAT_CONFIG", "/nonexistent/hunter2pw.toml"),
            ("DRUMBEAT__AMQP__URL", "amqp://u:hunter2pw@x"),
        ];
        let (code, text) = run_bin(bin, &["--help"], &env);
        assert_eq!(code, Some(0), "{bin} --help: {text}");
        assert!(text.contains("--config"), "{text}");
        assert!(!text.contains("hunter2pw"), "{bin} --help: {text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn environment_overrides_the_file() {
    // Spawned process: env changes are process-wide, so never set_var in the test process.
    let dir = std::env::temp_dir().join(format!("drumbeat-env-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, format!("{BASE}{}", sched("every = \"1s\""))).unwrap();
    let check = ["--config", file.to_str().unwrap(), "check"];
    let (code, text) = run_bin(
        "beat",
        &check,
        &[
            ("DRUMBEAT__BEAT__LEASE_TTL", "30s"),
            ("DRUMBEAT__BEAT__RENEW_EVERY", "11s"),
        ],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("beat.renew_every"), "{text}");
    let (code, text) = run_bin(
        "beat",
        &check,
        &[
            ("DRUMBEAT__BEAT__LEASE_TTL", "30s"),
            ("DRUMBEAT__WORKER__QUEUES", "a,b"),
            (
                "DRUMBEAT__AMQP__URL",
                "amqp://guest:hunter2pw@127.0.0.1:5672/%2f,amqp://guest:hunter2pw@127.0.0.1:5673/%2f",
            ),
            ("DRUMBEAT__WORKER__BEAT_USERS", "beat,ops"),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("127.0.0.1:5673"), "both AMQP nodes: {text}");
    assert!(
        text.contains("\"ops\""),
        "beat_users from the environment: {text}"
    );
    assert!(!text.contains("hunter2pw"), "{text}");
    assert!(text.contains("\"lease_ttl\": \"30s\""), "{text}");
    assert!(text.contains("\"a\","), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn next_above_the_cap_and_non_utf8_environment_exit_2_naming_them() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let dir = std::env::temp_dir().join(format!("drumbeat-cap-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, format!("{BASE}{}", sched("every = \"1s\""))).unwrap();
    let cfg = file.to_str().unwrap();
    let (code, text) = run_bin(
        "beat",
        &["--config", cfg, "schedules", "--next", "99999999999999"],
        &[],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--next") && !text.contains("panicked"),
        "{text}"
    );
    let (code, text) = run_bin("beat", &["--config", cfg, "schedules", "--next", "3"], &[]);
    let fires = text.lines().filter(|l| l.starts_with("  20")).count();
    assert_eq!((code, fires), (Some(0), 3), "{text}");

    let secret = OsString::from_vec(b"amqp://u:hunter2pw@x\xff".to_vec());
    for bin in ["beat", "worker"] {
        let run = |name: &str| {
            let out = std::process::Command::new(drumbeat_tests::bin_path(bin))
                .args(["--config", cfg, "check"])
                .env(name, &secret)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.code(), text)
        };
        let (code, text) = run("DRUMBEAT__AMQP__URL");
        assert_eq!(code, Some(2), "{bin}: {text}");
        assert!(text.contains("DRUMBEAT__AMQP__URL"), "{bin}: {text}");
        assert!(
            !text.contains("hunter2pw") && !text.contains("panicked"),
            "{bin}: {text}"
        );
        let (code, text) = run("SOMEONE_ELSES_VARIABLE");
        assert_eq!(
            code,
            Some(0),
            "{bin}: unrelated non-UTF-8 variable ignored: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs a workspace binary; returns its exit code and stdout + stderr.
fn run_bin(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(drumbeat_tests::bin_path(bin))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}
