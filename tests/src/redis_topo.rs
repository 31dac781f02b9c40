//! Private Redis topologies for the cluster tests (docs/design.md §13): a master + replica +
//! 3 sentinels, a 3-master Redis Cluster, and a TLS-only server. Each node is a real
//! `redis-server` on a free port in a private directory, without persistence; everything is
//! killed and removed on drop, also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::procs::listening_within;

/// The master name the sentinels monitor.
pub const MASTER: &str = "mymaster";

/// One `redis-server` (or sentinel) process.
pub struct RedisNode {
    pub port: u16,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
    /// The port answers plain TCP `PING` (false for a TLS-only node).
    plain: bool,
    /// Password for [`cli`](Self::cli), when the node requires one.
    pub auth: Option<String>,
}

impl RedisNode {
    /// Starts `redis-server` with `args` (after the port, bind and no-persistence ones) and
    /// waits until its port accepts connections.
    pub fn start(dir: &Path, port: u16, args: &[String]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut n = Self {
            port,
            args: args.to_vec(),
            dir: dir.to_path_buf(),
            child: None,
            plain: !args.iter().any(|a| a == "--tls-port"),
            auth: None,
        };
        n.restart();
        n
    }

    /// (Re)starts the process with the same arguments on the same port.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        assert!(
            listening_within(self.port, Duration::from_secs(10)),
            "redis-server on port {} did not start: {}",
            self.port,
            self.log()
        );
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Plain URL of this node.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// A command to this node with `redis-cli` (plain nodes only).
    pub fn cli(&self, args: &[&str]) -> String {
        assert!(self.plain, "redis-cli helper is for plain nodes");
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(pw) = &self.auth {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let out = cmd.args(args).output().expect("redis-cli on PATH");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn server_args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn private_dir(label: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "drumbeat-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Polls `check` every 50 ms (blocking) up to `deadline`; panics naming `what`.
fn wait(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

/// The master's (and replica's) password in [`SentinelTopo`].
pub const MASTER_PASSWORD: &str = "m4ster-secret";
/// The sentinels' own password in [`SentinelTopo`] (`redis.sentinel_password`).
pub const SENTINEL_PASSWORD: &str = "sent1nel-secret";

/// A master, one replica and three sentinels (quorum 2, down after 1 s), every node behind a
/// password: [`MASTER_PASSWORD`] for the data nodes, [`SENTINEL_PASSWORD`] for the sentinels.
pub struct SentinelTopo {
    pub master: RedisNode,
    pub replica: RedisNode,
    pub sentinels: Vec<RedisNode>,
    dir: PathBuf,
}

impl SentinelTopo {
    pub fn start() -> Self {
        let t0 = Instant::now();
        let dir = private_dir("sentinel");
        let mport = free_port();
        let auth = [
            "--requirepass",
            MASTER_PASSWORD,
            "--masterauth",
            MASTER_PASSWORD,
        ];
        let mut master = RedisNode::start(&dir.join("master"), mport, &server_args(mport, &auth));
        master.auth = Some(MASTER_PASSWORD.into());
        let rport = free_port();
        let mut replica_args = auth.to_vec();
        let mport_s = mport.to_string();
        replica_args.extend(["--replicaof", "127.0.0.1", &mport_s]);
        let mut replica = RedisNode::start(
            &dir.join("replica"),
            rport,
            &server_args(rport, &replica_args),
        );
        replica.auth = Some(MASTER_PASSWORD.into());
        wait("the replica to sync", Duration::from_secs(15), || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let sdir = dir.join(format!("sentinel{i}"));
            std::fs::create_dir_all(&sdir).unwrap();
            let conf = sdir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {d}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {mport} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 3000\n\
                     sentinel parallel-syncs {MASTER} 1\n\
                     sentinel auth-pass {MASTER} {MASTER_PASSWORD}\n\
                     requirepass {SENTINEL_PASSWORD}\n\
                     sentinel sentinel-pass {SENTINEL_PASSWORD}\n",
                    d = sdir.display()
                ),
            )
            .unwrap();
            let args = vec![conf.display().to_string(), "--sentinel".to_string()];
            let mut node = RedisNode::start(&sdir, port, &args);
            node.auth = Some(SENTINEL_PASSWORD.into());
            sentinels.push(node);
        }
        // Ready when every sentinel knows the other two and the replica.
        wait(
            "the sentinels to find each other",
            Duration::from_secs(30),
            || {
                sentinels.iter().all(|s| {
                    let info = s.cli(&["SENTINEL", "master", MASTER]);
                    let lines: Vec<&str> = info.lines().collect();
                    let field = |name: &str| {
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1))
                            .map(|v| v.to_string())
                    };
                    field("num-other-sentinels").as_deref() == Some("2")
                        && field("num-slaves").as_deref() == Some("1")
                })
            },
        );
        eprintln!("sentinel topology up in {:?}", t0.elapsed());
        Self {
            master,
            replica,
            sentinels,
            dir,
        }
    }

    /// `redis+sentinel://:{MASTER_PASSWORD}@…/mymaster/0` (the sentinels' password goes in
    /// `redis.sentinel_password`).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+sentinel://:{MASTER_PASSWORD}@{}/{MASTER}/0",
            hosts.join(",")
        )
    }

    /// The master's port according to the first sentinel that answers.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let out = s.cli(&["SENTINEL", "get-master-addr-by-name", MASTER]);
            out.lines().nth(1)?.trim().parse().ok()
        })
    }
}

impl Drop for SentinelTopo {
    fn drop(&mut self) {
        for s in &mut self.sentinels {
            s.kill9();
        }
        self.master.kill9();
        self.replica.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters sharing the 16384 slots, no replicas.
pub struct ClusterTopo {
    pub nodes: Vec<RedisNode>,
    dir: PathBuf,
}

impl ClusterTopo {
    pub fn start() -> Self {
        let t0 = Instant::now();
        let dir = private_dir("cluster");
        let mut nodes = Vec::new();
        for i in 0..3 {
            // A cluster node also listens on port + 10000: pick ports where both are free.
            let port = loop {
                let p = free_port();
                if p < 55000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
                    break p;
                }
            };
            let ndir = dir.join(format!("node{i}"));
            nodes.push(RedisNode::start(
                &ndir,
                port,
                &server_args(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                ),
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli on PATH");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        wait(
            "cluster_state:ok on every node",
            Duration::from_secs(30),
            || {
                nodes
                    .iter()
                    .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            },
        );
        eprintln!("redis cluster (3 masters) up in {:?}", t0.elapsed());
        Self { nodes, dir }
    }

    /// `redis+cluster://host:port,…`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

impl Drop for ClusterTopo {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` that speaks only TLS (`--port 0 --tls-port P`).
pub struct TlsRedis {
    pub node: RedisNode,
    dir: PathBuf,
}

impl TlsRedis {
    /// `cert`/`key`: the server's; `ca`: whom it trusts for client certificates;
    /// `auth_clients`: require one.
    pub fn start(cert: &Path, key: &Path, ca: &Path, auth_clients: bool) -> Self {
        let dir = private_dir("redis-tls");
        let port = free_port();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-cert-file",
            &cert.display().to_string(),
            "--tls-key-file",
            &key.display().to_string(),
            "--tls-ca-cert-file",
            &ca.display().to_string(),
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let node = RedisNode::start(&dir, port, &args);
        Self { node, dir }
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.node.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
