//! The real `worker` and `beat` binaries as child processes, and what `/proc` says about them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the release binaries are: next to this executable (`target/release/`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating drumbeat-bench")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("drumbeat-bench has no parent directory")
}

/// Builds (or confirms up to date) the release `worker` and `beat` binaries, so the suite
/// always measures the code in the tree.
pub fn build_binaries() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    eprintln!("building release worker and beat (cargo build --release -p drumbeat-worker -p drumbeat-beat)...");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "drumbeat-worker",
            "-p",
            "drumbeat-beat",
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .status()
        .context("running cargo")?;
    anyhow::ensure!(status.success(), "cargo build of worker/beat failed");
    Ok(())
}

/// A running child (killed on drop).
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    /// Its process ID.
    pub pid: u32,
    /// What it is, for messages.
    pub name: String,
}

impl Child {
    /// Starts `target/release/{bin} --config {config} --id {id}` with `RUST_LOG=warn`,
    /// stdout/stderr to `{log}`.
    pub fn spawn(bin: &str, config: &Path, id: &str, log: &Path) -> anyhow::Result<Self> {
        let path = bin_dir()?.join(bin);
        anyhow::ensure!(
            path.exists(),
            "{} is missing: run cargo build --release first",
            path.display()
        );
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let inner = Command::new(&path)
            .arg("--config")
            .arg(config)
            .arg("--id")
            .arg(id)
            .env(
                "RUST_LOG",
                std::env::var("DRUMBEAT_BENCH_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Self {
            pid: inner.id(),
            inner,
            name: format!("{bin} {id}"),
        })
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let start = std::time::Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.inner.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill9();
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.inner.try_wait(), Ok(None))
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_secs(&self) -> anyhow::Result<f64> {
        cpu_secs(self.pid)
    }

    /// Resident set size now, in MB.
    pub fn rss_mb(&self) -> anyhow::Result<f64> {
        status_kb(self.pid, "VmRSS:").map(|kb| kb / 1024.0)
    }

    /// Peak resident set size, in MB.
    pub fn hwm_mb(&self) -> anyhow::Result<f64> {
        status_kb(self.pid, "VmHWM:").map(|kb| kb / 1024.0)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.alive() {
            self.kill9();
        }
    }
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state(3) ... utime(14) stime(15).
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / clock_ticks())
}

/// A `kB` line of `/proc/{pid}/status`.
pub fn status_kb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("{field} missing"))?;
    let kb = line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?;
    Ok(kb)
}

/// A free localhost port for an ops endpoint.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `GET {path}` on `127.0.0.1:{port}`; the body, or an error while the endpoint is not up.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// Sum of the Prometheus samples of `name` whose labels contain `label` (e.g. `outcome="done"`).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
