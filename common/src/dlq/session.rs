//! The broker side of one `dlq` call: a connection, the topology declared (so the verbs work
//! before any worker ran), and a confirmed publisher when the verb re-publishes.

use crate::amqp::lapin::Connection;
use crate::amqp::{timed, AmqpError, Connector, Publisher, Topology};
use crate::Settings;

use super::scan::Scan;

/// A connection to the broker for one CLI call; closed on [`Session::close`].
pub struct Session {
    conn: Connection,
    /// The names of the namespace.
    pub topology: Topology,
    settings: Settings,
}

impl Session {
    /// Connects once (the CLI does not retry: an unreachable broker is exit 1) and declares
    /// `queues` with their dead-letter queues.
    pub async fn open(settings: &Settings, queues: &[String]) -> Result<Self, AmqpError> {
        let connector = Connector::new(&settings.amqp, "drumbeat-dlq");
        let conn = connector.connect_once().await?;
        let topology = Topology::new(&settings.namespace, settings.amqp.connect_timeout)
            .with_celery_queues(&settings.worker.celery_queues);
        let ch = timed(
            "channel.open",
            settings.amqp.connect_timeout,
            conn.create_channel(),
        )
        .await?;
        for q in queues {
            topology.declare_queue(&ch, q).await?;
        }
        let _ = timed(
            "channel.close",
            settings.amqp.connect_timeout,
            ch.close(200, "declared".into()),
        )
        .await;
        Ok(Self {
            conn,
            topology,
            settings: settings.clone(),
        })
    }

    /// Starts a scan of `queue`'s dead-letter queue.
    pub async fn scan(&self, queue: &str) -> Result<Scan, AmqpError> {
        Scan::open(
            &self.conn,
            &self.topology.dead_queue(queue),
            self.settings.amqp.connect_timeout,
        )
        .await
    }

    /// A confirm-mode channel for re-publishing.
    pub async fn publisher(&self) -> Result<Publisher, AmqpError> {
        Publisher::open(
            &self.conn,
            self.settings.amqp.connect_timeout,
            self.settings.amqp.confirm_timeout,
        )
        .await
    }

    /// The AMQP user of `amqp.url`: a replay's `user_id` (RabbitMQ accepts only its own).
    pub fn user(&self) -> Option<String> {
        Some(self.settings.amqp.user())
    }

    /// Closes the connection (best effort: the broker cleans up a dropped one as well).
    pub async fn close(self) {
        let _ = timed(
            "connection.close",
            self.settings.amqp.connect_timeout,
            self.conn.close(200, "bye".into()),
        )
        .await;
    }
}
