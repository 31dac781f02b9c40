//! The broker side of one `trigger` or `backfill`: one connection (no retry: an unreachable
//! broker is a runtime failure the caller reports), the schedule's queue declared first
//! (idempotent, so a trigger works before any worker ran) unless it is a Celery queue (its
//! arguments are Celery's, docs/design.md §12), and a confirm-mode channel. Every call is
//! under the config's `connect_timeout` or `confirm_timeout`.

use drumbeat_common::amqp::lapin::{BasicProperties, Connection};
use drumbeat_common::amqp::{
    timed, AmqpError, Connector, PendingConfirm, PublishError, Publisher, Topology, TopologyQueue,
};
use drumbeat_common::config::Schedule;
use drumbeat_common::Settings;

use crate::publish::Outgoing;

/// A connection and a confirming publisher for one control action.
pub(super) struct Broker {
    conn: Connection,
    publisher: Publisher,
    exchange: String,
    /// The AMQP user of `amqp.url`, sent as `user_id`: RabbitMQ checks it against the
    /// connection's user, and workers run reserved ids (`sched:`, `manual:`) only from the
    /// users in `worker.beat_users` (docs/design.md §14).
    user: String,
    settings: Settings,
}

impl Broker {
    /// Connects, declares the topology of `schedule`'s queue (not a Celery one) and opens a
    /// confirm-mode channel.
    pub(super) async fn open(settings: &Settings, schedule: &Schedule) -> Result<Self, AmqpError> {
        let declared: Vec<TopologyQueue> = if schedule.format.is_celery() {
            Vec::new()
        } else {
            vec![TopologyQueue {
                queue: schedule.queue.clone(),
                retry: None,
            }]
        };
        let connector = Connector::new(&settings.amqp, "drumbeat-ctl");
        let conn = connector.connect_once().await?;
        let topology = Topology::new(&settings.namespace, settings.amqp.connect_timeout);
        let ready = async {
            if !declared.is_empty() {
                topology.declare(&conn, &declared).await?;
            }
            Publisher::open(
                &conn,
                settings.amqp.connect_timeout,
                settings.amqp.confirm_timeout,
            )
            .await
        }
        .await;
        let publisher = match ready {
            Ok(p) => p,
            Err(e) => {
                close(&conn, settings).await;
                return Err(e);
            }
        };
        let user = settings.amqp.user();
        Ok(Self {
            conn,
            publisher,
            exchange: topology.tasks_exchange(),
            user,
            settings: settings.clone(),
        })
    }

    /// The namespace's tasks exchange, where drumbeat-format fires go.
    pub(super) fn tasks_exchange(&self) -> &str {
        &self.exchange
    }

    /// Sends `out` (persistent, mandatory); await the confirm on the result.
    pub(super) async fn start(&self, out: &Outgoing) -> Result<PendingConfirm, PublishError> {
        self.publisher
            .start(
                &out.exchange,
                &out.routing_key,
                &out.body,
                self.with_user(out.properties.clone()),
            )
            .await
    }

    fn with_user(&self, props: BasicProperties) -> BasicProperties {
        props.with_user_id(self.user.as_str().into())
    }

    /// Closes the connection (best effort: the broker drops a vanished one as well).
    pub(super) async fn close(self) {
        close(&self.conn, &self.settings).await;
    }
}

async fn close(conn: &Connection, settings: &Settings) {
    let _ = timed(
        "connection.close",
        settings.amqp.connect_timeout,
        conn.close(200, "bye".into()),
    )
    .await;
}
