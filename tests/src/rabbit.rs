//! A private `rabbitmq-server` node for tests that must change broker-wide state (a memory
//! alarm, a node loss) without touching the shared broker other tests use.
//!
//! Each node has its own name (`drumbeat-t<port>@localhost`), AMQP and distribution ports and a
//! temporary directory for its database, logs, pid file, config and Erlang cookie (a copy of the
//! system node's, so one `rabbitmqctl` can also reach a cluster of these). No plugins are
//! enabled, so no management listener can collide. Stopped and deleted on drop. The node name,
//! ports and directory are all per-node so several can form a cluster later.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// The system node's cookie; copied so the CLI and every private node agree.
const SYSTEM_COOKIE: &str = "/var/lib/rabbitmq/.erlang.cookie";
/// `rabbitmqctl` itself listens on 35672..=35682 for its distribution; a node must not.
const CLI_DIST_PORTS: std::ops::RangeInclusive<u16> = 35672..=35682;

/// One private broker node.
pub struct RabbitNode {
    pub node: String,
    pub port: u16,
    pub dist_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    /// How long `start` took until the node accepted commands.
    pub startup: Duration,
}

/// A free port outside the CLI's distribution range.
fn node_port() -> u16 {
    loop {
        let p = free_port();
        if !CLI_DIST_PORTS.contains(&p) {
            return p;
        }
    }
}

impl RabbitNode {
    /// Starts a fresh single node and waits until it runs (panics after 90 s).
    pub fn start() -> Self {
        let port = node_port();
        let dist_port = node_port();
        let node = format!("drumbeat-t{port}@localhost");
        let dir = std::env::temp_dir().join(format!("drumbeat-rabbit-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq.conf"), "").unwrap();
        let cookie = dir.join(".erlang.cookie");
        std::fs::copy(SYSTEM_COOKIE, &cookie).expect("read the system Erlang cookie");
        set_mode_400(&cookie);
        let mut n = Self {
            node,
            port,
            dist_port,
            dir,
            child: None,
            startup: Duration::ZERO,
        };
        let started = Instant::now();
        let out = std::fs::File::create(n.dir.join("server.out")).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(SERVER);
        n.env(&mut cmd).stdin(Stdio::null()).stdout(out).stderr(err);
        n.child = Some(cmd.spawn().expect("rabbitmq-server"));
        let pid_file = n.dir.join("pid");
        let waited = n.ctl(&["wait", pid_file.to_str().unwrap(), "--timeout", "90"]);
        assert!(
            waited.status.success(),
            "private rabbitmq node {} did not start: {}\n{}",
            n.node,
            String::from_utf8_lossy(&waited.stdout),
            std::fs::read_to_string(n.dir.join("server.out")).unwrap_or_default()
        );
        n.startup = started.elapsed();
        println!("private rabbitmq node {} up in {:?}", n.node, n.startup);
        n
    }

    /// `amqp://guest:guest@127.0.0.1:{port}/%2f`
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The environment that makes a `rabbitmq-server` or `rabbitmqctl` this node's.
    fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        let d = |p: &str| self.dir.join(p);
        cmd.env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
    }

    /// Runs `rabbitmqctl -n <node> args…` and returns its output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(CTL);
        self.env(&mut cmd).arg("-n").arg(&self.node).args(args);
        cmd.stdin(Stdio::null()).output().expect("rabbitmqctl")
    }

    /// Like [`ctl`](Self::ctl), panicking with the output when it fails; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Raises a memory alarm on this node until the guard is dropped (even on panic).
    pub fn memory_alarm(&self) -> MemoryAlarm<'_> {
        self.ctl_ok(&["set_vm_memory_high_watermark", "0.000001"]);
        MemoryAlarm { node: self }
    }

    /// Stops the node (SIGTERM, a graceful stop; SIGKILL after 20 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or_else(|| child.id());
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && alive(pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn set_mode_400(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("DRUMBEAT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A memory alarm on one node; dropping it restores the default watermark.
pub struct MemoryAlarm<'a> {
    node: &'a RabbitNode,
}

impl Drop for MemoryAlarm<'_> {
    fn drop(&mut self) {
        let _ = self.node.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    }
}
