//! A 3-node RabbitMQ cluster loses the node the leader beat is connected to (docs/design.md
//! §13): `kill -9` of that node's Erlang VM. Fires resume through another node, the quorum
//! work queue keeps the tasks published before the kill, and a ledger of handler runs shows
//! none lost and none run twice outside the fault window.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_common::amqp::lapin::{Connection, ConnectionProperties};
use drumbeat_common::amqp::{task_properties, Publisher};
use drumbeat_common::secret::SecretUrl;
use drumbeat_tests::rabbit_cluster::RabbitCluster;
use drumbeat_tests::{poll_until, Proc, TestNs};
use drumbeat_worker::{BoxFuture, Task, Worker};
use tokio_util::sync::CancellationToken;

/// Tasks published before the kill, with no worker consuming.
const PRE: usize = 20;

/// Every handler run: task id → when it ran.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<HashMap<String, Vec<DateTime<Utc>>>>>);

impl Ledger {
    fn recorder(&self) -> impl Fn(Task<serde_json::Value>) -> BoxFuture + Send + Sync + 'static {
        let l = self.clone();
        move |task: Task<serde_json::Value>| {
            l.0.lock()
                .unwrap()
                .entry(task.id.clone())
                .or_default()
                .push(Utc::now());
            Box::pin(async { Ok(()) })
        }
    }

    fn snapshot(&self) -> HashMap<String, Vec<DateTime<Utc>>> {
        self.0.lock().unwrap().clone()
    }

    /// Fire instant → runs of that fire.
    fn fires(&self) -> BTreeMap<DateTime<Utc>, Vec<DateTime<Utc>>> {
        self.snapshot()
            .into_iter()
            .filter_map(|(id, runs)| {
                let t = id.strip_prefix("sched:tick:")?;
                let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
                Some((t, runs))
            })
            .collect()
    }
}

/// The AMQP port in the last `amqp connected` / `amqp reconnected` line of a beat log
/// (`broker=amqp://…@127.0.0.1:P/…`).
fn connected_port(log: &str) -> Option<u16> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("amqp connected") || l.contains("amqp reconnected"))?;
    let rest = line.split("@127.0.0.1:").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_beats_node_resumes_fires_on_another_and_keeps_queued_tasks() {
    let mut cluster = tokio::task::spawn_blocking(|| RabbitCluster::start(3))
        .await
        .unwrap();
    let urls = cluster.urls();
    let ns = TestNs::new("cluster-amqp");
    let cfg = ns.config_file(
        "beat.toml",
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"tick\"\ntask = \"rec\"\nevery = \"1s\"\n",
    );
    let list = urls.join(",");
    let env = [("NO_COLOR", "1"), ("DRUMBEAT__AMQP__URL", list.as_str())];
    let beat = Proc::spawn(
        "beat",
        &["--config", cfg.to_str().unwrap(), "--id", "b1", "run"],
        &env,
        &ns.dir,
        "beat",
    );
    let port = poll_until("the beat connected", Duration::from_secs(30), || async {
        connected_port(&beat.log_text())
    })
    .await;
    let k = cluster
        .by_port(port)
        .expect("the beat's node is a cluster node");
    let other = (k + 1) % urls.len();
    println!(
        "leader beat connected to node {k} ({})",
        cluster.nodes[k].node
    );

    // The connection is named after the process (the client-provided `connection_name`).
    let names = poll_until(
        "the beat's connection listed",
        Duration::from_secs(20),
        || {
            let out = cluster.nodes[k].ctl_ok(&[
                "-q",
                "list_connections",
                "peer_port",
                "client_properties",
            ]);
            async move { out.contains("\"drumbeat-beat b1\"").then_some(out) }
        },
    )
    .await;
    let named = names
        .lines()
        .find(|l| l.contains("drumbeat-beat b1"))
        .unwrap_or_default();
    println!(
        "node {k} lists the beat's connection: {}",
        named.split('\t').next().unwrap_or_default()
    );

    // With the work queue declared by the beat, PRE tasks go in through another node.
    let conn = Connection::connect(&urls[other], ConnectionProperties::default())
        .await
        .unwrap();
    let exchange = format!("{}.tasks", ns.ns);
    // Until the beat has declared the queue a publish is returned unroutable: retry the first.
    for i in 0..PRE {
        let id = format!("pre-{i}");
        let body = drumbeat_common::Envelope::new(&id, "rec", serde_json::Value::Null).encode();
        poll_until(
            &format!("{id} published"),
            Duration::from_secs(30),
            || async {
                let p = Publisher::open(&conn, Duration::from_secs(10), Duration::from_secs(10))
                    .await
                    .ok()?;
                let r = p.publish(&exchange, "default", &body, task_properties(&id, 1));
                r.await.ok()
            },
        )
        .await;
    }
    let _ = conn.close(200, "bye".into()).await;
    // The work queue is a quorum queue with a replica on every node.
    let work = format!("{}.default", ns.ns);
    let listed =
        cluster.nodes[other].ctl_ok(&["-q", "list_queues", "name", "type", "leader", "members"]);
    let row = listed
        .lines()
        .find(|l| l.split('\t').next() == Some(work.as_str()))
        .unwrap_or_else(|| panic!("{work} not listed: {listed}"))
        .to_string();
    println!("work queue: {row}");
    assert!(row.contains("\tquorum\t"), "{row}");
    for n in &cluster.nodes {
        assert!(row.contains(&n.node), "no replica on {}: {row}", n.node);
    }
    // A few fires queue up behind the tasks.
    poll_until("3 more fires", Duration::from_secs(20), || {
        let out = cluster.nodes[other].ctl_ok(&["-q", "list_queues", "name", "messages"]);
        let n = out.lines().find_map(|l| {
            l.strip_prefix(&format!("{work}\t"))?
                .trim()
                .parse::<usize>()
                .ok()
        });
        async move { n.filter(|n| *n >= PRE + 3).map(|_| ()) }
    })
    .await;

    let killed_at = Utc::now();
    cluster.kill9(k);
    println!("kill -9 node {k} at {killed_at}");

    // The worker lists the dead node first: it must move on to the next.
    let mut settings = ns.settings(
        "[worker]\nqueues = [\"default\"]\nops_addr = \"off\"\nhandler_timeout = \"5s\"\n\
         drain_timeout = \"5s\"\n",
    );
    let order: Vec<&String> = (0..urls.len())
        .map(|i| &urls[(k + i) % urls.len()])
        .collect();
    let parse = |u: &String| SecretUrl::parse(u, &["amqp", "amqps"]).unwrap();
    settings.amqp.url = parse(order[0]);
    settings.amqp.fallback = order[1..].iter().map(|u| parse(u)).collect();
    let ledger = Ledger::default();
    let worker = Worker::builder(settings)
        .id("w1")
        .task("rec", ledger.recorder())
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let join = tokio::spawn(worker.run(stop.clone()));

    poll_until(
        "every task published before the kill ran",
        Duration::from_secs(90),
        || async {
            let runs = ledger.snapshot();
            (0..PRE)
                .all(|i| runs.contains_key(&format!("pre-{i}")))
                .then_some(())
        },
    )
    .await;
    let resumed = poll_until(
        "a fire after the kill ran",
        Duration::from_secs(90),
        || async {
            let fires = ledger.fires();
            let (t, runs) = fires.iter().find(|(t, _)| **t > killed_at)?;
            Some((*t, runs[0]))
        },
    )
    .await;
    // Fires run on for a while after the window, contiguously from the first.
    let until = resumed.0 + chrono::Duration::seconds(5);
    let fires = poll_until(
        "contiguous fires up to 5 s after the first fire past the kill",
        Duration::from_secs(60),
        || async {
            let fires = ledger.fires();
            let first = *fires.keys().next()?;
            let n = (until - first).num_seconds() + 1;
            (0..n)
                .all(|s| fires.contains_key(&(first + chrono::Duration::seconds(s))))
                .then_some(fires)
        },
    )
    .await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), join).await;
    let beat_log = beat.log_text();
    drop(beat);

    let runs = ledger.snapshot();
    for i in 0..PRE {
        let n = runs.get(&format!("pre-{i}")).map_or(0, Vec::len);
        assert_eq!(n, 1, "pre-{i} ran {n} times");
    }
    // The fault window: fires due from just before the kill to the first one that ran after.
    let window_start = killed_at - chrono::Duration::seconds(2);
    let twice: Vec<_> = fires.iter().filter(|(_, r)| r.len() > 1).collect();
    let twice_outside: Vec<_> = twice
        .iter()
        .filter(|(t, _)| **t < window_start || **t > resumed.0)
        .collect();
    // How late the fires due after the kill ran (the worker was already up by then).
    let late = fires
        .iter()
        .filter(|(t, _)| **t > killed_at)
        .map(|(t, r)| r[0] - *t)
        .max()
        .unwrap_or_default();
    let reconnected = beat_log
        .lines()
        .find(|l| l.contains("amqp reconnected"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (t.with_timezone(&Utc) - killed_at).num_milliseconds() as f64 / 1000.0);
    let secs = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;
    println!(
        "fault window: beat reconnected {reconnected:?} s after the kill, to node {:?}; first \
         fire due after the kill ran {:.1} s after it; fires due after the kill ran at most \
         {:.1} s late; {} fires contiguous, {} ran twice ({} outside the window); \
         {PRE}/{PRE} queued tasks ran once; beat replaced a channel that only got nacks: {}",
        connected_port(&beat_log).and_then(|p| cluster.by_port(p)),
        secs(resumed.1 - killed_at),
        secs(late),
        fires.len(),
        twice.len(),
        twice_outside.len(),
        beat_log.contains("publishes in a row nacked")
    );
    assert!(
        twice_outside.is_empty(),
        "fires run twice: {twice_outside:?}"
    );
    let now_on = connected_port(&beat_log).and_then(|p| cluster.by_port(p));
    assert!(
        now_on.is_some_and(|i| i != k),
        "the beat is not connected to another node: {beat_log}"
    );
    drop(cluster);
}
