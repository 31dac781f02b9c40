//! A beat with its ops endpoint on a free port, and requests against it.

use std::path::PathBuf;
use std::time::Duration;

use drumbeat_tests::{free_port, http_request, poll_until, HttpResponse, Proc, TestNs};

/// Alice's token in every test config (never a real one).
pub const ALICE: &str = "alice-test-token-4f1c9e2b7a";
/// Bob's token.
pub const BOB: &str = "bob-test-token-8d3a6c1e5f90";

/// The file schedule every API test beat has.
pub const FILE_SCHEDULE: &str = "file-tick";

/// `[beat]` on `port`, `[worker]` queue `q`, `[ops]` as given, one file schedule (on its own
/// queue `fileq`, so its fires never mix with the dead-letter tests' queue).
pub fn api_toml(port: u16, ops: &str) -> String {
    format!(
        "[beat]\nops_addr = \"127.0.0.1:{port}\"\n\
         [worker]\nqueues = [\"q\"]\nops_addr = \"off\"\n\
         [ops]\n{ops}\n\
         [[schedules]]\nname = \"{FILE_SCHEDULE}\"\ntask = \"log\"\nqueue = \"fileq\"\nevery = \"1h\"\n"
    )
}

/// `tokens = { alice = ALICE, bob = BOB }`.
pub fn two_tokens() -> String {
    format!("tokens = {{ alice = \"{ALICE}\", bob = \"{BOB}\" }}")
}

/// A running beat and where its ops endpoint listens.
pub struct ApiBeat {
    pub proc: Proc,
    pub port: u16,
    pub cfg: PathBuf,
}

impl ApiBeat {
    /// Starts a beat with `[ops]` text `ops` and `envs`; waits until `/healthz` answers.
    pub async fn start(ns: &TestNs, ops: &str, envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let cfg = ns.config_file("beat.toml", &api_toml(port, ops));
        let mut all = vec![("NO_COLOR", "1")];
        all.extend_from_slice(envs);
        let proc = Proc::spawn(
            "beat",
            &["--config", cfg.to_str().unwrap(), "--id", "api-beat", "run"],
            &all,
            &ns.dir,
            "api-beat",
        );
        poll_until(
            "the beat's ops endpoint",
            Duration::from_secs(20),
            || async {
                let up = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok();
                up.then_some(())
            },
        )
        .await;
        Self { proc, port, cfg }
    }

    /// `method path` with `token` (if any) as bearer and `body` as JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> HttpResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        http_request(self.port, method, path, &headers, body.as_bytes()).await
    }

    /// The beat's log so far.
    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

/// Asserts `r` is `status` with `{"error": …}` containing `want`; returns the message.
pub fn assert_error(r: &HttpResponse, status: u16, want: &str) -> String {
    assert_eq!(r.status, status, "{r:?}");
    let msg = r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {r:?}"))
        .to_string();
    assert!(msg.contains(want), "`{msg}` lacks `{want}`");
    msg
}

/// The keys a control action writes (pauses, runtime schedules, the audit log) that exist.
pub async fn control_keys(ns: &TestNs) -> Vec<String> {
    let written = [
        ns.key("ctl:paused"),
        ns.key("ctl:schedules"),
        ns.key("ctl:resumed"),
        ns.key("audit"),
    ];
    ns_keys(ns)
        .await
        .into_iter()
        .filter(|k| written.contains(k))
        .collect()
}

pub use drumbeat_tests::audit_entries;
pub use drumbeat_tests::ns_keys;
