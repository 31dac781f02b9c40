//! Real processes for fault tests: the `beat`/`worker` binaries and a private `redis-server`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary (`beat`, `worker`) next to the test executable's `deps/`.
/// The README's test command builds them before running the tests.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} missing: build the binaries first (cargo build --bins), as scripts/test.sh does",
        p.display()
    );
    p
}

/// Secrets the log-hygiene test plants (docs/design.md §14): a RabbitMQ and a Redis password,
/// an ops token, and the password and query token of an `http` task's URL. None of them may
/// appear in anything a test captures from our binaries: every [`Proc`] checks its output for
/// them when it is dropped, so the check covers the whole suite, not one test.
pub const MARKERS: &[&str] = &[
    "mkAmqpPw7f3c9e1d5a",
    "mkRedisPw5b1d8a3c7",
    "mkOpsTok2e6f4c8b9d",
    "mkHttpPw9a7b3d2e6",
    "mkHttpTok4c8e1f7a3",
];

/// A marker as `Debug` prints its bytes (`[109, 107, …]`): how lapin's own events render
/// message bodies, headers and frames.
fn as_debug_bytes(marker: &str) -> String {
    let bytes: Vec<String> = marker.bytes().map(|b| b.to_string()).collect();
    bytes.join(", ")
}

/// Panics naming `what` when `text` holds one of the [`MARKERS`], as text or as `Debug`
/// bytes.
pub fn assert_no_markers(what: &str, text: &str) {
    for m in MARKERS {
        let found = text.find(m).map(|at| (at, m.len())).or_else(|| {
            let b = as_debug_bytes(m);
            text.find(&b).map(|at| (at, b.len()))
        });
        if let Some((at, len)) = found {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            let to = (at + len + 200).min(text.len());
            let to = (to..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            panic!(
                "secret marker {m} leaked into {what}:\n…{}…",
                &text[from..to]
            );
        }
    }
}

/// A child process whose stdout+stderr go to a log file; killed on drop, when its output is
/// checked for leaked [`MARKERS`].
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(
        bin: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        log_dir: &Path,
        name: &str,
    ) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(bin_path(bin));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env(
                "RUST_LOG",
                std::env::var("DRUMBEAT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Self {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for exit up to `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics when the output so far holds a leaked secret marker.
    pub fn check_markers(&self) {
        assert_no_markers(&format!("the output of {}", self.name), &self.log_text());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log_text());
        } else {
            // A leak fails the test that captured it, whichever test that is.
            self.check_markers();
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something accepts TCP connections on `127.0.0.1:port` within `deadline` (a
/// private server just started).
pub fn listening_within(port: u16, deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A throwaway `redis-server` on a free port, for outage tests.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// (Re)starts the server on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        assert!(
            listening_within(self.port, Duration::from_secs(10)),
            "private redis-server did not start"
        );
    }

    /// Process id of the running server (to SIGSTOP/SIGCONT it), if started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
