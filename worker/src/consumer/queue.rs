//! One consumed queue of the consume connection: its own channel, its consumer, and its
//! re-subscribe schedule after the broker cancelled it (docs/design.md §6.9).
//!
//! Each queue has a channel of its own so that re-subscribing one (or reopening its channel)
//! never touches the deliveries in flight on the others. The channel is kept while it is open:
//! dropping its last handle would close it and requeue its unacked deliveries.

use std::time::Duration;

use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions,
};
use drumbeat_common::amqp::lapin::types::{FieldTable, ShortString};
use drumbeat_common::amqp::lapin::{Channel, Connection};
use drumbeat_common::amqp::{timed, AmqpError, Ended, TopologyQueue};
use drumbeat_common::backoff::Backoff;
use futures::stream::{self, BoxStream, SelectAll};
use futures::StreamExt;
use tokio::time::Instant;

use crate::worker::Shared;

/// A queue's deliveries tagged with its index, ending with one `None` when its consumer ends,
/// so an ended consumer is noticed instead of silently dropped by `select_all`.
pub(super) type Tagged = BoxStream<
    'static,
    (
        usize,
        Option<drumbeat_common::amqp::lapin::Result<Delivery>>,
    ),
>;

/// One consumed queue on the current connection.
pub(super) struct Queue {
    /// Position in the session's list, carried by each delivery.
    index: usize,
    pub(super) name: String,
    channel: Option<Channel>,
    /// The live consumer's tag, `None` while the queue is not consumed.
    tag: Option<ShortString>,
    backoff: Backoff,
    /// When to try subscribing again while the queue is not consumed.
    pub(super) retry_at: Option<Instant>,
}

impl Queue {
    pub(super) fn new(index: usize, name: &str, backoff: Backoff) -> Self {
        Self {
            index,
            name: name.to_string(),
            channel: None,
            tag: None,
            backoff,
            retry_at: None,
        }
    }

    /// Whether a consumer is live on this queue.
    pub(super) fn consumed(&self) -> bool {
        self.tag.is_some()
    }

    /// Declares the work queue and starts consuming it on this queue's channel (reopened if
    /// the broker closed it).
    pub(super) async fn subscribe(
        &mut self,
        shared: &Shared,
        conn: &Connection,
    ) -> Result<Tagged, AmqpError> {
        let op = shared.settings.amqp.connect_timeout;
        let spec = TopologyQueue {
            queue: self.name.clone(),
            retry: None,
        };
        shared.topology.declare(conn, &[spec]).await?;
        let ch = match &self.channel {
            Some(ch) if ch.status().connected() => ch.clone(),
            _ => {
                let ch = timed("channel.open", op, conn.create_channel()).await?;
                let qos = ch.basic_qos(shared.settings.worker.prefetch, BasicQosOptions::default());
                timed("basic.qos", op, qos).await?;
                self.channel = Some(ch.clone());
                ch
            }
        };
        let consumer = timed(
            "basic.consume",
            op,
            ch.basic_consume(
                shared.topology.work_queue(&self.name).as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        self.tag = Some(consumer.tag());
        self.retry_at = None;
        let index = self.index;
        Ok(consumer
            .map(move |d| (index, Some(d)))
            .chain(stream::once(async move { (index, None) }))
            .boxed())
    }

    /// Not consumed any more (or not yet): schedules the next attempt, returns its delay.
    pub(super) fn lost(&mut self) -> Duration {
        self.tag = None;
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        delay
    }

    /// Cancels the live consumer (on shutdown), waiting at most until `deadline`.
    pub(super) async fn cancel(&self, op: Duration, deadline: Instant) {
        if let (Some(ch), Some(tag)) = (&self.channel, &self.tag) {
            let cancel = ch.basic_cancel(tag.clone(), BasicCancelOptions::default());
            let _ = tokio::time::timeout_at(deadline, timed("basic.cancel", op, cancel)).await;
        }
    }
}

/// Subscribes every queue whose retry time has come; `Some` when the connection is gone.
pub(super) async fn resubscribe_due(
    shared: &Shared,
    conn: &Connection,
    queues: &mut [Queue],
    deliveries: &mut SelectAll<Tagged>,
) -> Option<Ended> {
    let now = Instant::now();
    for q in queues
        .iter_mut()
        .filter(|q| q.retry_at.is_some_and(|t| t <= now))
    {
        match q.subscribe(shared, conn).await {
            Ok(stream) => {
                deliveries.push(stream);
                if q.backoff.failures() > 0 {
                    tracing::info!(queue = %q.name, "consuming again");
                }
                q.backoff.reset();
            }
            Err(e) => {
                if !conn.status().connected() {
                    return Some(Ended::Lost(format!("subscribing {}: {e}", q.name)));
                }
                let delay = q.lost();
                tracing::warn!(queue = %q.name, error = %e, retry_in = ?delay, "could not subscribe; /readyz fails until it works");
            }
        }
    }
    None
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
pub(super) async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
