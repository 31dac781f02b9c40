//! The one reconnect loop: connect → set up → watch → reconnect, for every broker connection.
//!
//! What happens on a fresh connection is the caller's [`Session`]; the loop owns the rest:
//! connecting under a deadline, closing what is left of a connection, and one capped, jittered
//! [`Backoff`](crate::backoff::Backoff) (bounds from the [`Connector`]) shared by connect
//! failures, set-up failures and lost sessions. A session that stayed up a while resets the
//! backoff; one lost right after it was set up does not, so a flapping broker is never retried
//! in a tight loop. [`PublishLink`] is the session of a connection that only publishes: the beat's
//! link and the worker's outcome publisher (the worker consumes on a second connection,
//! docs/design.md §6.9).

use std::future::Future;
use std::time::Duration;

use lapin::Connection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{timed, AmqpError, Connector, Publisher, PublisherSender, Topology, TopologyQueue};

/// A session that lived this long counts as healthy: the next failure starts the backoff over.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// How often a [`PublishLink`] looks at its channel (lapin reports closure only through status).
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// Publishes nacked in a row after which a [`PublishLink`] replaces its connection. RabbitMQ
/// 3.10 can leave a channel that published to a quorum queue while the queue had no leader
/// (its node was just lost) nacking every later publish, even once a new leader is up; a
/// fresh channel works at once (seen in tests/tests/cluster_amqp/failover.rs).
const NACKS_BEFORE_RECONNECT: u32 = 3;

/// How a session that was set up ended.
#[derive(Debug)]
pub enum Ended {
    /// `stop` fired; the supervisor closes the connection and returns.
    Stopped,
    /// The connection or a channel the session needs is gone; the supervisor reconnects.
    Lost(String),
}

/// What to do with one fresh connection.
pub trait Session: Send {
    /// Sets up on `conn` (channels, declares, consumers), then serves until the connection is
    /// lost or `stop` fires. An `Err` means set-up failed; the connection is closed either way.
    fn run(
        &mut self,
        conn: &Connection,
        stop: &CancellationToken,
    ) -> impl Future<Output = Result<Ended, AmqpError>> + Send;
}

/// Runs `session` on one connection after another until `stop` fires.
pub async fn supervise<S: Session>(
    connector: &Connector,
    session: &mut S,
    stop: &CancellationToken,
) {
    let name = connector.name().to_string();
    let mut backoff = connector.backoff();
    let mut wait = None;
    loop {
        if let Some(delay) = wait.take() {
            connector.record_delay(delay);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        if stop.is_cancelled() {
            return;
        }
        let conn = tokio::select! {
            _ = stop.cancelled() => return,
            c = connector.connect_once() => c,
        };
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(%name, error = %e, retry_in = ?delay, "amqp connect failed");
                wait = Some(delay);
                continue;
            }
        };
        if backoff.failures() > 0 {
            let broker = connector.redacted_url();
            tracing::info!(%name, %broker, failures = backoff.failures(), "amqp reconnected");
        } else {
            tracing::info!(%name, broker = %connector.redacted_url(), "amqp connected");
        }
        let started = Instant::now();
        let ended = session.run(&conn, stop).await;
        if conn.status().connected() {
            let bye = conn.close(200, "drumbeat: session over".into());
            let _ = timed("connection.close", connector.op_timeout(), bye).await;
        }
        match ended {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Lost(why)) => {
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!(%name, error = %why, retry_in = ?delay, "amqp session lost; reconnecting");
                wait = Some(delay);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(%name, error = %e, retry_in = ?delay, "amqp set-up failed");
                wait = Some(delay);
            }
        }
    }
}

/// Keeps a confirm-mode [`Publisher`] in a slot whenever the broker is reachable (`None` while
/// it is not), declaring `queues` on every fresh connection first.
pub struct PublishLink {
    topology: Topology,
    queues: Vec<TopologyQueue>,
    tx: PublisherSender,
    op_timeout: Duration,
    confirm_timeout: Duration,
}

impl PublishLink {
    /// A link filling `tx`, with deadlines from `connector`.
    pub fn new(
        connector: &Connector,
        topology: Topology,
        queues: Vec<TopologyQueue>,
        tx: PublisherSender,
    ) -> Self {
        Self {
            topology,
            queues,
            tx,
            op_timeout: connector.op_timeout(),
            confirm_timeout: connector.confirm_timeout(),
        }
    }
}

impl Session for PublishLink {
    async fn run(
        &mut self,
        conn: &Connection,
        stop: &CancellationToken,
    ) -> Result<Ended, AmqpError> {
        self.topology.declare(conn, &self.queues).await?;
        let p = Publisher::open(conn, self.op_timeout, self.confirm_timeout).await?;
        self.tx.send_replace(Some(p.clone()));
        let ended = loop {
            if !conn.status().connected() {
                break Ended::Lost("connection closed".into());
            }
            if !p.is_open() {
                break Ended::Lost("publish channel closed".into());
            }
            let nacks = p.nack_streak();
            if nacks >= NACKS_BEFORE_RECONNECT {
                break Ended::Lost(format!(
                    "{nacks} publishes in a row nacked by the broker; replacing the channel"
                ));
            }
            tokio::select! {
                _ = stop.cancelled() => break Ended::Stopped,
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
        };
        self.tx.send_replace(None);
        Ok(ended)
    }
}

impl Drop for PublishLink {
    fn drop(&mut self) {
        self.tx.send_replace(None);
    }
}
