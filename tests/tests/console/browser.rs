//! A real headless Chromium driven over WebDriver: `chromedriver` started on a free port, one
//! session, and the few page helpers the console test needs. Missing browser or driver is a
//! failure naming the fix (scripts/services.sh installs both), never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drumbeat_tests::{free_port, poll_until};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The browser binary: Debian's real one behind its `/usr/bin/chromium` wrapper script.
fn chromium() -> PathBuf {
    let candidates = [
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("chromium is not installed: run scripts/services.sh (apt install chromium)")
        })
}

fn chromedriver() -> PathBuf {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "chromedriver is not installed: run scripts/services.sh (apt install chromium-driver)"
            )
        })
}

/// `chromedriver` and the browser it starts; both ended on drop, by their process ids.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with its profile under `dir`.
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        poll_until(
            "chromedriver listening",
            Duration::from_secs(10),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                    .then_some(())
            },
        )
        .await;
        let profile = dir.join("chromium-profile");
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        // Chromium refuses to run as root with its sandbox on; CI and these machines are root.
        if running_as_root() {
            args.push("--no-sandbox".into());
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium(), "args": args },
        });
        let caps = caps.as_object().cloned().unwrap();
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::native()
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("a browser session within 30 s")
        .unwrap_or_else(|e| panic!("chromedriver session: {e}"));
        Self {
            client,
            driver,
            profile,
        }
    }

    /// The text of the first element matching `css`, or `None` if there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let e = self.client.find(Locator::Css(css)).await.ok()?;
        e.text().await.ok()
    }

    /// Waits until the element `css` has text containing `want`; returns that text.
    /// Polls `css` until its text contains `want`; on timeout the panic says what it showed.
    pub async fn wait_text(&self, css: &str, want: &str, deadline: Duration) -> String {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let got = self.text(css).await;
            if let Some(t) = got.as_ref().filter(|t| t.contains(want)) {
                return t.clone();
            }
            assert!(
                tokio::time::Instant::now() < end,
                "timed out after {deadline:?} waiting for `{css}` to show `{want}`; it shows {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.client.find(Locator::Css(css)).await.ok()?;
        e.attr(name).await.ok().flatten()
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        e.click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Types `text` into the input `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// The value of the input `css`.
    pub async fn value(&self, css: &str) -> String {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.prop("value").await.unwrap().unwrap_or_default()
    }

    /// Runs `script` (a function body) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script `{script}`: {e}"))
    }

    /// Saves a PNG of the page as `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session (the browser quits with it).
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reaches `close`: end the browser processes that use this test's
        // profile (found by it, so only ours), then the driver.
        for pid in processes_using(&self.profile) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Ids of the processes whose command line names `profile`.
fn processes_using(profile: &Path) -> Vec<u32> {
    let needle = profile.display().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
