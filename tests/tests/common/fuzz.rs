//! Config fuzz (issue #9): several hundred mutated configs, fed to the real `beat` and `worker`
//! binaries with `check`, `schedules --next N [--from T]` and `run`. Every run must exit 0, 1
//! or 2, say why when it is not 0, never panic, and never print the password in the URLs.
//!
//! `run` is only given configs that `check` refused (two in three of them, to keep the test
//! short), so no valid mutation is left running against the shared services; it must refuse
//! them the same way (exit 2) before connecting.
//! The mutations come from a seed (`DRUMBEAT_FUZZ_SEED`, default fixed; `DRUMBEAT_FUZZ_CASES`
//! sets the count), so a failure is reproduced by its seed and case number.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::fuzz_gen::{case, fixed_cases, Case, SECRET};

/// One binary run that broke a rule, for the failure report.
struct Broken {
    case: String,
    args: Vec<String>,
    code: Option<i32>,
    why: String,
    stderr: String,
}

/// Runs `bin args` with `env`, killing it after `deadline`; returns (exit code, stdout, stderr).
fn run(
    bin: &str,
    args: &[String],
    env: &[(OsString, OsString)],
    dir: &Path,
    deadline: Duration,
) -> (Option<i32>, String, String) {
    let out_path = dir.join(format!("{bin}.out"));
    let err_path = dir.join(format!("{bin}.err"));
    let mut cmd = Command::new(drumbeat_tests::bin_path(bin));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env_remove("DRUMBEAT_CONFIG");
    for (k, _) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"DRUMBEAT__") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Some(-1);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    (code, read(&out_path), read(&err_path))
}

/// The rules every run must keep.
fn judge(code: Option<i32>, stdout: &str, stderr: &str) -> Option<String> {
    if code == Some(-1) {
        return Some("did not exit in time".into());
    }
    if !matches!(code, Some(0..=2)) {
        return Some(format!("exit code {code:?} is not 0, 1 or 2"));
    }
    if stderr.contains("panicked at") || stderr.contains("RUST_BACKTRACE") {
        return Some("panicked".into());
    }
    if code != Some(0) && stderr.trim().is_empty() {
        return Some("non-zero exit without a message".into());
    }
    if stdout.contains(SECRET) || stderr.contains(SECRET) {
        return Some("printed the URL password".into());
    }
    None
}

/// The commands of one case: both `check`s and `schedules`, then `run` if `check` refused.
fn run_case(
    label: &str,
    c: &Case,
    dir: &Path,
    tally: &Mutex<BTreeMap<String, usize>>,
) -> Vec<Broken> {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("drumbeat.toml");
    std::fs::write(&cfg, &c.file).unwrap();
    let cfg = cfg.to_string_lossy().into_owned();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut schedules = s(&["--config", &cfg, "schedules", "--next", &c.next]);
    if let Some(from) = &c.from {
        schedules.extend(s(&["--from", from]));
    }
    if label.len() % 2 == 0 {
        schedules.push("--json".into());
    }
    let mut plan = vec![
        ("beat", s(&["--config", &cfg, "check"])),
        ("worker", s(&["--config", &cfg, "check"])),
        ("beat", schedules),
    ];
    let deadline = Duration::from_secs(if c.big { 60 } else { 20 });
    let mut broken = Vec::new();
    let mut i = 0;
    while i < plan.len() {
        let (bin, args) = plan[i].clone();
        let (code, stdout, stderr) = run(bin, &args, &c.env, dir, deadline);
        *tally
            .lock()
            .unwrap()
            .entry(format!(
                "exit {}",
                code.map_or("signal".into(), |c| c.to_string())
            ))
            .or_default() += 1;
        if let Some(why) = judge(code, &stdout, &stderr) {
            broken.push(Broken {
                case: label.to_string(),
                args: args.clone(),
                code,
                why,
                stderr: stderr.chars().take(600).collect(),
            });
        }
        if i == 0 {
            *tally
                .lock()
                .unwrap()
                .entry(format!(
                    "configs `beat check` {}",
                    if code == Some(0) {
                        "accepted"
                    } else {
                        "refused"
                    }
                ))
                .or_default() += 1;
        }
        if i == 0 && code == Some(2) && !c.big && label.len() % 3 != 0 {
            plan.push(("beat", s(&["--config", &cfg, "run"])));
            plan.push(("worker", s(&["--config", &cfg, "run"])));
        } else if i >= 3 && code != Some(2) {
            broken.push(Broken {
                case: label.to_string(),
                args: args.clone(),
                code,
                why: "`run` of a config `check` refused did not exit 2".into(),
                stderr: stderr.chars().take(600).collect(),
            });
        }
        i += 1;
    }
    let _ = std::fs::remove_dir_all(dir);
    broken
}

#[test]
fn mutated_configs_never_panic_or_leak() {
    let seed: u64 = std::env::var("DRUMBEAT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00d5_0b3a_7f00_0009);
    let count: usize = std::env::var("DRUMBEAT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let root = std::env::temp_dir().join(format!("drumbeat-fuzz-{}", uuid::Uuid::new_v4()));
    let mut cases: Vec<(String, Case)> = (0..count)
        .map(|i| {
            let c = case(seed, i);
            (format!("case {i} [{}]", c.label), c)
        })
        .collect();
    cases.extend(fixed_cases().into_iter().map(|c| (c.label.clone(), c)));
    let tally = Mutex::new(BTreeMap::new());
    let broken = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((label, c)) = cases.get(i) else {
                    break;
                };
                let found = run_case(label, c, &root.join(i.to_string()), &tally);
                broken.lock().unwrap().extend(found);
            });
        }
    });
    for (what, arg) in [
        ("missing file", "/nonexistent/drumbeat.toml"),
        ("directory", "/"),
    ] {
        for bin in ["beat", "worker"] {
            let args = vec!["--config".to_string(), arg.to_string(), "check".to_string()];
            let (code, stdout, stderr) = run(
                bin,
                &args,
                &[],
                &std::env::temp_dir(),
                Duration::from_secs(20),
            );
            if code != Some(2) || judge(code, &stdout, &stderr).is_some() {
                broken.lock().unwrap().push(Broken {
                    case: what.into(),
                    args,
                    code,
                    why: "a config file that cannot be read must exit 2 with a message".into(),
                    stderr,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let tally = tally.into_inner().unwrap();
    let broken = broken.into_inner().unwrap();
    println!(
        "config fuzz: seed {seed:#x}, {} cases, {} runs in {:?}; {tally:?}; {} broke a rule",
        cases.len(),
        tally
            .iter()
            .filter(|(k, _)| k.starts_with("exit"))
            .map(|(_, n)| n)
            .sum::<usize>(),
        start.elapsed(),
        broken.len()
    );
    if !broken.is_empty() {
        let shown: Vec<String> = broken
            .iter()
            .take(8)
            .map(|b| {
                format!(
                    "{}: {} {:?} → {:?}: {}\n{}",
                    b.case,
                    b.args.get(2).map_or("", String::as_str),
                    &b.args[3..],
                    b.code,
                    b.why,
                    b.stderr
                )
            })
            .collect();
        panic!(
            "{} runs broke a rule; first ones:\n{}",
            broken.len(),
            shown.join("\n---\n")
        );
    }
}
