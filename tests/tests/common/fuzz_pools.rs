//! Value pools for `fuzz_gen.rs`: for each kind of config key, values of the right kind
//! (including absurd ones: huge and tiny durations, far dates, 10 000-character names, NUL
//! escapes, deep nesting) and values of the wrong type.

use super::fuzz_gen::SECRET;

/// What a key holds, to pick values of the right kind.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Dur,
    Int,
    Str,
    Name,
    Addr,
    RedisUrl,
    AmqpUrl,
    Cron,
    At,
    Args,
    Queues,
}

pub fn q(s: &str) -> String {
    format!("\"{s}\"")
}

fn deep_table(depth: usize) -> String {
    format!("{}1{}", "{ a = ".repeat(depth), " }".repeat(depth))
}

fn deep_array(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Values of the right kind for a key of `kind`.
pub fn pool(kind: Kind) -> Vec<String> {
    let s = SECRET;
    let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match kind {
        Kind::Dur => v(&[
            "0s",
            "1ns",
            "1us",
            "1500us",
            "1ms",
            "299ms",
            "1s",
            "10s",
            "30m",
            "1h",
            "7d",
            "366d",
            "367d",
            "1000000y",
            "584942417355y",
            "18446744073709551615s",
            "99999999999999999999999s",
            "-1s",
            "",
            "soon",
            "1s 1ns",
        ])
        .iter()
        .map(|d| q(d))
        .collect(),
        Kind::Int => v(&[
            "0",
            "-1",
            "1",
            "2",
            "7",
            "65535",
            "65536",
            "10000",
            "10001",
            "4294967296",
            "536870913",
            "9223372036854775807",
            "-9223372036854775808",
        ]),
        Kind::Str | Kind::Name => {
            let mut p = v(&[
                "\"\"",
                "\"default\"",
                "\"UTC\"",
                "\"America/New_York\"",
                "\"Mars/Olympus\"",
                "\"a.b\"",
                "\"with space\"",
                "\"ŝĉĥ-名前🎉\"",
                "\"a\\u0000b\"",
                "\"\\u0000\"",
                "\"skip\"",
                "\"all\"",
                "\"latest\"",
                "\"http\"",
                "\"log\"",
                "\"buffer_one\"",
                "\"allow\"",
            ]);
            p.push(q(&"x".repeat(10_000)));
            p.push(q(&"é".repeat(5_000)));
            p.push(q(&"n".repeat(100)));
            p.push(q(&"n".repeat(101)));
            p
        }
        Kind::RedisUrl | Kind::AmqpUrl => {
            let (sc, path) = if kind == Kind::RedisUrl {
                ("redis", "0")
            } else {
                ("amqp", "%2f")
            };
            vec![
                q(&format!("{sc}://:{s}@127.0.0.1:1/{path}")),
                q(&format!("{sc}://u:{s}@127.0.0.1:1/{path}")),
                q(&format!("{sc}://u:{s}@127.0.0.1:99999/{path}")),
                q(&format!("http://u:{s}@x")),
                q(&format!("{sc}://u:{s}@[::1")),
                q(&format!("not a url {s}")),
                q(&format!("{sc}s://u:{s}@h/{path}?password={s}")),
                q(&format!("{sc}://h/{path}?token={s}&heartbeat=5")),
                q(&format!("{sc}://h/{path}?sig={s}&x=1&key={s}")),
                q(&format!("{sc}://u:{s}@{}/{path}", "h".repeat(10_000))),
                q(&format!("{sc}://u:{s}@名前.example/{path}")),
                // Node lists and the multi-host Redis schemes (docs/design.md §13).
                q(&format!(
                    "{sc}://u:{s}@127.0.0.1:1/{path},{sc}://u:{s}@127.0.0.1:2/{path}"
                )),
                q(&format!("{sc}://u:{s}@127.0.0.1:1/{path},,")),
                q(&format!(
                    "{sc}://u:{s}@a:1/{path},{sc}://other:{s}@b:2/{path}"
                )),
                format!("[\"{sc}://u:{s}@127.0.0.1:1/{path}\", \"http://u:{s}@x\"]"),
                "[]".into(),
                q(&format!(
                    "{sc}+sentinel://:{s}@127.0.0.1:1,127.0.0.1:2/mymaster/0"
                )),
                q(&format!("{sc}+sentinel://:{s}@127.0.0.1:1/")),
                q(&format!("{sc}+sentinel://:{s}@127.0.0.1:1/m/-1")),
                q(&format!("{sc}+sentinel://:{s}@,/m/0")),
                q(&format!("{sc}s+cluster://:{s}@a:7000,b:7001")),
                q(&format!("{sc}+cluster://:{s}@a:7000,b/0")),
                q(&format!("{sc}+cluster://:{s}@[::1:7000")),
            ]
        }
        Kind::Addr => v(&[
            "\"off\"",
            "\"127.0.0.1:0\"",
            "\"localhost:9464\"",
            "\"[::1]:99999\"",
            "\"\"",
            "\"0.0.0.0:65535\"",
            "\"300.1.1.1:80\"",
        ]),
        Kind::Cron => {
            let mut p: Vec<String> = [
                "* * * * *",
                "* * * * * *",
                "0 0 30 2 *",
                "0 0 29 2 *",
                "*/0 * * * *",
                "59 23 31 12 *",
                "@yearly",
                "@reboot",
                "0 0 31 4 *",
                "0 0 1 1 0",
                "1-5/2 * * * MON-FRI",
                "60 * * * *",
                "* * * * * * *",
                "30 2 * * SUN",
                "0 0 29 2 1",
                "5-1 * * * *",
                "*/99999999999 * * * *",
                "",
            ]
            .iter()
            .map(|c| q(c))
            .collect();
            p.push(q(&"* ".repeat(5_000)));
            p
        }
        Kind::At => [
            "0001-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
            "2027-02-30T00:00:00Z",
            "2027-03-14T02:30:00-04:00",
            "2099-01-01T00:00:00.999999999Z",
            "+10000-01-01T00:00:00Z",
            "tomorrow",
        ]
        .iter()
        .map(|a| q(a))
        .collect(),
        Kind::Args => vec![
            "{}".into(),
            "{ url = \"http://127.0.0.1:1/x\", method = \"POST\" }".into(),
            deep_table(20),
            deep_table(120),
            deep_table(1_000),
            deep_array(50),
            deep_array(5_000),
            format!("{{ {} = 1 }}", "k".repeat(10_000)),
            "[1, \"two\", { three = 3.0 }, nan, inf]".into(),
        ],
        Kind::Queues => vec![
            "[]".into(),
            "[\"default\", \"default\"]".into(),
            "[\"a.b\"]".into(),
            format!("[{}]", ["\"q\""; 3].join(", ")),
            format!(
                "[{}]",
                (0..2000)
                    .map(|i| format!("\"q{i}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "\"default\"".into(),
        ],
    }
}

/// Values of the wrong type for any key.
pub fn wrong_types() -> Vec<String> {
    let mut p: Vec<String> = [
        "1.5",
        "nan",
        "-inf",
        "true",
        "[]",
        "[1, \"a\"]",
        "{}",
        "{ a = 1 }",
        "1979-05-27T07:32:00Z",
        "1979-05-27",
        "07:32:00",
        "0",
        "-1",
        "9223372036854775807",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    p.push(deep_array(200));
    p.push(deep_table(200));
    p
}

/// The kind of `key` (in `header`, a section header or an environment variable name).
pub fn kind_of(header: &str, key: &str) -> Kind {
    match key {
        "url" if header.to_ascii_lowercase().contains("redis") => Kind::RedisUrl,
        "url" => Kind::AmqpUrl,
        "ops_addr" => Kind::Addr,
        "cron" => Kind::Cron,
        "at" => Kind::At,
        "args" => Kind::Args,
        "namespace" | "name" | "queue" => Kind::Name,
        "task" | "timezone" | "catch_up" | "overlap" => Kind::Str,
        "queues" | "beat_users" => Kind::Queues,
        "max_body" | "prefetch" | "concurrency" | "max_attempts" | "wait_replicas" => Kind::Int,
        _ => Kind::Dur,
    }
}
