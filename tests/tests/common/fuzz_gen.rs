//! Deterministic generator of mutated configs for `fuzz.rs`: a valid base config, then one to
//! three mutations per case (a value of the right kind but absurd size, a value of the wrong
//! type, a removed or unknown key, corrupted bytes, an environment override), all from a seed.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use super::fuzz_pools::{kind_of, pool, q, wrong_types};

/// The password put in every URL; it must never be printed.
pub const SECRET: &str = "FuzzSecret9pw";

/// splitmix64: tiny, deterministic, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One generated case: file bytes, extra environment, `schedules` flags.
pub struct Case {
    pub label: String,
    pub file: Vec<u8>,
    pub env: Vec<(OsString, OsString)>,
    pub next: String,
    pub from: Option<String>,
    /// Large files only get the cheap commands.
    pub big: bool,
}

type Section = (String, Vec<(String, String)>);

fn base() -> Vec<Section> {
    let s = SECRET;
    let kv = |k: &str, v: String| (k.to_string(), v);
    vec![
        (String::new(), vec![kv("namespace", q("fuzz"))]),
        (
            "[redis]".into(),
            vec![
                kv("url", q(&format!("redis://:{s}@127.0.0.1:6379/0"))),
                kv("timeout", q("1s")),
                kv("wait_replicas", "0".into()),
            ],
        ),
        (
            "[amqp]".into(),
            vec![
                kv("url", q(&format!("amqp://guest:{s}@127.0.0.1:5672/%2f"))),
                kv("confirm_timeout", q("3s")),
                kv("connect_timeout", q("3s")),
                kv("max_body", "1048576".into()),
            ],
        ),
        (
            "[beat]".into(),
            vec![
                kv("lease_ttl", q("3s")),
                kv("renew_every", q("1s")),
                kv("ops_addr", q("off")),
            ],
        ),
        (
            "[worker]".into(),
            vec![
                kv("queues", "[\"default\"]".into()),
                kv("prefetch", "8".into()),
                kv("concurrency", "4".into()),
                kv("handler_timeout", q("5s")),
                kv("drain_timeout", q("1s")),
                kv("done_ttl", q("1d")),
                kv("ops_addr", q("off")),
                kv("beat_users", "[\"guest\"]".into()),
            ],
        ),
        (
            "[worker.retry]".into(),
            vec![
                kv("max_attempts", "3".into()),
                kv("backoff_base", q("100ms")),
                kv("backoff_max", q("1s")),
            ],
        ),
        (
            "[queues.default.retry]".into(),
            vec![kv("max_attempts", "2".into())],
        ),
        schedule("c", "cron", q("30 2 * * *")),
        schedule("e", "every", q("30s")),
        schedule("a", "at", q("2030-01-01T00:00:00Z")),
    ]
}

fn schedule(name: &str, trigger: &str, value: String) -> Section {
    let kv = |k: &str, v: String| (k.to_string(), v);
    (
        "[[schedules]]".into(),
        vec![
            kv("name", q(name)),
            kv("task", q("log")),
            kv("queue", q("default")),
            kv(trigger, value),
            kv("timezone", q("America/New_York")),
            kv("args", "{ n = 1 }".into()),
            kv("misfire_grace", q("60s")),
            kv("catch_up", q("latest")),
            kv("expires", q("10m")),
            kv("overlap", q("skip")),
            kv("jitter", q("1s")),
        ],
    )
}

fn render(sections: &[Section]) -> Vec<u8> {
    let mut out = String::new();
    for (header, kvs) in sections {
        if !header.is_empty() {
            out.push_str(header);
            out.push('\n');
        }
        for (k, v) in kvs {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out.into_bytes()
}

const ENV_KEYS: &[(&str, &str)] = &[
    ("DRUMBEAT__NAMESPACE", "namespace"),
    ("DRUMBEAT__REDIS__URL", "url"),
    ("DRUMBEAT__REDIS__TIMEOUT", "timeout"),
    ("DRUMBEAT__AMQP__URL", "url"),
    ("DRUMBEAT__BEAT__LEASE_TTL", "lease_ttl"),
    ("DRUMBEAT__WORKER__CONCURRENCY", "concurrency"),
    ("DRUMBEAT__WORKER__QUEUES", "name"),
    ("DRUMBEAT__WORKER__RETRY__BACKOFF_MAX", "backoff_max"),
    ("DRUMBEAT__AMQP__MAX_BODY", "max_body"),
    ("DRUMBEAT__WORKER__BEAT_USERS", "beat_users"),
    ("DRUMBEAT__REDIS__WAIT_REPLICAS", "wait_replicas"),
    ("DRUMBEAT__BEAT", "lease_ttl"),
    ("DRUMBEAT____X", "lease_ttl"),
    ("DRUMBEAT__NAMESPACE__DEEPER", "lease_ttl"),
];

/// Case `i` of the run seeded with `seed`.
pub fn case(seed: u64, i: usize) -> Case {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut sections = base();
    let mut env = Vec::new();
    let mut labels = Vec::new();
    let mut corrupt: Option<u8> = None;
    let mutations = if rng.chance(60) { 1 } else { 2 + rng.below(2) };
    for _ in 0..mutations {
        let si = rng.below(sections.len());
        match rng.below(10) {
            0..=5 => {
                let (header, kvs) = &mut sections[si];
                if kvs.is_empty() {
                    continue;
                }
                let ki = rng.below(kvs.len());
                let key = kvs[ki].0.clone();
                let value = if rng.chance(75) {
                    rng.pick(&pool(kind_of(header, &key)))
                } else {
                    rng.pick(&wrong_types())
                };
                labels.push(format!("{header}{key}={}", short(&value)));
                kvs[ki].1 = value;
            }
            6 => {
                let (header, kvs) = &mut sections[si];
                if !kvs.is_empty() {
                    let (k, _) = kvs.remove(rng.below(kvs.len()));
                    labels.push(format!("{header}-{k}"));
                }
            }
            7 => {
                let (header, kvs) = &mut sections[si];
                let k = rng.pick(&["bogus", "leas_ttl", "名前", "\"\\u0000\"", "url"]);
                kvs.push((k.to_string(), "1".into()));
                labels.push(format!("{header}+{k}"));
            }
            8 => {
                let (var, key) = rng.pick(ENV_KEYS);
                let value = if rng.chance(30) {
                    let mut b = format!("redis://u:{SECRET}@h/0").into_bytes();
                    b.push(0xff);
                    OsString::from_vec(b)
                } else {
                    OsString::from(unquote(&rng.pick(&pool(kind_of(var, key)))))
                };
                labels.push(format!("env {var}"));
                env.push((OsString::from(var), value));
            }
            _ => {
                corrupt = Some(rng.pick(&[0xffu8, 0x00, 0xc3, b'"', b'[', b'\n']));
                labels.push(format!("byte {:#04x}", corrupt.unwrap_or(0)));
            }
        }
    }
    if rng.chance(10) {
        env.push((
            OsString::from("SOMEONE_ELSES_VAR"),
            OsString::from_vec(vec![0xff, 0xfe, b'x']),
        ));
        labels.push("foreign non-UTF-8 env".into());
    }
    let mut file = render(&sections);
    if let Some(b) = corrupt {
        let at = rng.below(file.len());
        file.insert(at, b);
        if rng.chance(30) {
            file.truncate(rng.below(file.len()));
        }
    }
    let next = rng.pick(&[
        "0",
        "1",
        "3",
        "100",
        "10000",
        "10001",
        "99999999999999",
        "-1",
        "abc",
        "",
        "18446744073709551616",
    ]);
    let from = rng.pick(&[
        None,
        None,
        Some("0001-01-01T00:00:00Z"),
        Some("9999-12-31T23:59:59Z"),
        Some("9999-12-31T23:59:59-23:59"),
        Some("2027-03-14T06:59:59Z"),
        Some("garbage"),
    ]);
    Case {
        label: labels.join("; "),
        file,
        env,
        next: next.to_string(),
        from: from.map(str::to_string),
        big: false,
    }
}

/// Fixed cases: URLs with `?token=`-style credentials, and the large ones: 1 MB of schedules (about 17 000: more only slows the test), a 5 MB
/// comment, a 5 MB string, 5 MB of bytes that are not UTF-8.
pub fn fixed_cases() -> Vec<Case> {
    let mut many = render(&base()[..7]);
    let mut i = 0;
    while many.len() < 1024 * 1024 {
        many.extend(
            format!(
                "[[schedules]]\nname = \"s{i}\"\ntask = \"log\"\nevery = \"{}s\"\n",
                i + 1
            )
            .bytes(),
        );
        i += 1;
    }
    let mut huge_string = render(&base());
    huge_string.extend(format!("[queues.x]\n# {}\n", "y".repeat(5 * 1024 * 1024)).bytes());
    let mut string_arg = render(&base()[..7]);
    string_arg.extend(
        format!(
            "[[schedules]]\nname = \"big\"\ntask = \"log\"\nevery = \"1s\"\nargs = {{ s = \"{}\" }}\n",
            "z".repeat(5 * 1024 * 1024)
        )
        .bytes(),
    );
    let mut tokens = base();
    tokens[1].1[0].1 = q(&format!("rediss://u:{SECRET}@h/0?password={SECRET}&n=1"));
    tokens[2].1[0].1 = q(&format!(
        "amqp://u:{SECRET}@h/%2f?token={SECRET}&key={SECRET}"
    ));
    let mut binary = render(&base());
    binary.extend((0..5 * 1024 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    [
        ("1 MB of schedules", many),
        ("5 MB comment", huge_string),
        ("5 MB string arg", string_arg),
        ("5 MB of binary", binary),
    ]
    .into_iter()
    .map(|(label, file)| Case {
        label: label.into(),
        file,
        env: Vec::new(),
        next: "1".into(),
        from: None,
        big: true,
    })
    .chain(wrong_type_for_every_key())
    .chain(std::iter::once(Case {
        label: "credentials in URL userinfo and query".into(),
        file: render(&tokens),
        env: Vec::new(),
        next: "2".into(),
        from: None,
        big: false,
    }))
    .collect()
}

/// One case per key of the base config, each holding a value of the wrong type.
fn wrong_type_for_every_key() -> Vec<Case> {
    let wrong = wrong_types();
    let mut cases = Vec::new();
    let sections = base();
    for (si, (header, kvs)) in sections.iter().enumerate() {
        for (ki, (key, _)) in kvs.iter().enumerate() {
            let mut mutated = base();
            let value = wrong[cases.len() % wrong.len()].clone();
            mutated[si].1[ki].1 = value.clone();
            cases.push(Case {
                label: format!("wrong type: {header}{key} = {}", short(&value)),
                file: render(&mutated),
                env: Vec::new(),
                next: "2".into(),
                from: None,
                big: false,
            });
        }
    }
    cases
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

fn short(v: &str) -> String {
    if v.chars().count() > 40 {
        format!(
            "{}…({} chars)",
            v.chars().take(40).collect::<String>(),
            v.len()
        )
    } else {
        v.to_string()
    }
}
