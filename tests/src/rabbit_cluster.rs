//! A private RabbitMQ cluster of [`RabbitNode`]s (docs/design.md §13): each node has its own
//! node name, AMQP and distribution ports and data directory, no plugins, and the shared
//! Erlang cookie each node's `$HOME` holds a copy of. The nodes boot in parallel; the second
//! and later ones join the first with `stop_app; join_cluster; start_app`. Dropping the cluster
//! stops every node still running and removes its directory, also when the test panics.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::rabbit::RabbitNode;

/// A running cluster; `nodes[0]` is the one the others joined.
pub struct RabbitCluster {
    pub nodes: Vec<RabbitNode>,
    /// From the first boot to every node running in the cluster.
    pub startup: Duration,
}

impl RabbitCluster {
    /// Boots `n` nodes and clusters them (panics, cleaning up, when that fails).
    pub fn start(n: usize) -> Self {
        let started = Instant::now();
        let boots: Vec<_> = (0..n)
            .map(|_| std::thread::spawn(RabbitNode::start))
            .collect();
        // Join every thread before looking at results, so no node is left behind unowned.
        let results: Vec<_> = boots.into_iter().map(|h| h.join()).collect();
        let mut nodes = Vec::with_capacity(n);
        let mut failed = false;
        for r in results {
            match r {
                Ok(node) => nodes.push(node),
                Err(_) => failed = true,
            }
        }
        assert!(!failed, "a cluster node failed to boot (see above)");
        let mut cluster = Self {
            nodes,
            startup: Duration::ZERO,
        };
        let seed = cluster.nodes[0].node.clone();
        for node in &cluster.nodes[1..] {
            node.ctl_ok(&["stop_app"]);
            node.ctl_ok(&["join_cluster", &seed]);
            node.ctl_ok(&["start_app"]);
        }
        let count = n.to_string();
        cluster.nodes[0].ctl_ok(&["await_online_nodes", &count, "--timeout", "90"]);
        cluster.startup = started.elapsed();
        println!(
            "private rabbitmq cluster of {n} nodes up in {:.1?} ({})",
            cluster.startup,
            cluster
                .nodes
                .iter()
                .map(|x| x.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        cluster
    }

    /// Every node's URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RabbitNode::url).collect()
    }

    /// The node listening for AMQP on `port`.
    pub fn by_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// `kill -9` of node `i`'s Erlang VM: no goodbye to clients or peers, as in a crash.
    /// The node stays in the list; its drop then only cleans up.
    pub fn kill9(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let pid = std::fs::read_to_string(node.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        node.stop();
    }
}
