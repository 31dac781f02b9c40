//! Reading a dead-letter queue without consuming it (docs/design.md §10: "nothing is consumed").
//!
//! AMQP 0-9-1 has no "peek": the only way to see a message is to take delivery of it. So a scan
//! takes the queue's ready count from a passive declare, consumes with manual acks and a prefetch
//! of that count (every message is held unacked at once, nothing is redelivered to us), stops at
//! that count, and closes its channel: the broker returns every message not acked, in their
//! original order (checked on RabbitMQ 3.10 by `tests/tests/worker/dlq.rs`). Only the messages a
//! verb acks explicitly (`replay` after the confirm, `purge`) leave the queue.
//!
//! Costs of this: each scan is a redelivery of the scanned messages, so a quorum queue counts it
//! in `x-delivery-count`; a queue with a delivery limit (RabbitMQ ≥ 4.0 sets a default of 20 on
//! every quorum queue) would drop or dead-letter a dead letter after that many listings. The
//! dead-letter queue must therefore have no delivery limit there (`x-delivery-limit = -1`, or a
//! policy `delivery-limit: -1`). And while a scan holds messages, other consumers of the
//! dead-letter queue (another operator's scan) do not see them.

use std::time::Duration;

use crate::amqp::lapin::message::Delivery;
use crate::amqp::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use crate::amqp::lapin::types::{FieldTable, ShortString};
use crate::amqp::lapin::{Channel, Connection, Consumer};
use crate::amqp::{timed, AmqpError};
use futures::StreamExt;

/// Most messages one scan holds at once (AMQP's prefetch is 16 bits). A larger queue is scanned
/// in its first 65 535 messages; acks (replay, purge) free room, so those verbs reach further.
const MAX_HELD: u32 = u16::MAX as u32;

/// One pass over the ready messages of a queue.
pub struct Scan {
    channel: Channel,
    /// A second channel that watches the returns settle (the first one is closed by then).
    probe: Channel,
    queue: String,
    consumer: Option<Consumer>,
    expected: u32,
    seen: u32,
    acked: u32,
    idle: Duration,
    op_timeout: Duration,
}

impl Scan {
    /// Opens a channel and starts consuming `queue` (which must exist).
    pub async fn open(
        conn: &Connection,
        queue: &str,
        op_timeout: Duration,
    ) -> Result<Self, AmqpError> {
        let channel = timed("channel.open", op_timeout, conn.create_channel()).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = timed(
            "queue.declare",
            op_timeout,
            channel.queue_declare(ShortString::from(queue), passive, FieldTable::default()),
        )
        .await?;
        let expected = declared.message_count();
        let probe = timed("channel.open", op_timeout, conn.create_channel()).await?;
        let mut scan = Self {
            channel,
            probe,
            queue: queue.to_string(),
            consumer: None,
            expected,
            seen: 0,
            acked: 0,
            // Deliveries follow each other within milliseconds; a silence this long means the
            // count was stale (another consumer holds some of them).
            idle: op_timeout,
            op_timeout,
        };
        if expected == 0 {
            return Ok(scan);
        }
        let prefetch = u16::try_from(expected.min(MAX_HELD)).unwrap_or(u16::MAX);
        timed(
            "basic.qos",
            op_timeout,
            scan.channel.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await?;
        let consumer = timed(
            "basic.consume",
            op_timeout,
            scan.channel.basic_consume(
                ShortString::from(queue),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        scan.consumer = Some(consumer);
        Ok(scan)
    }

    /// The next message, or `None` once as many as were ready at the start were seen (messages
    /// dead-lettered meanwhile wait for the next call) or none came for a while.
    pub async fn next(&mut self) -> Result<Option<Delivery>, AmqpError> {
        if self.seen >= self.expected {
            return Ok(None);
        }
        let Some(consumer) = self.consumer.as_mut() else {
            return Ok(None);
        };
        match tokio::time::timeout(self.idle, consumer.next()).await {
            Err(_) | Ok(None) => Ok(None),
            Ok(Some(Err(source))) => Err(AmqpError::Call {
                op: "basic.deliver",
                source,
            }),
            Ok(Some(Ok(d))) => {
                self.seen += 1;
                Ok(Some(d))
            }
        }
    }

    /// Removes one message from the queue for good (sent, not yet known processed: see
    /// [`Scan::sync`]).
    pub async fn ack(&mut self, delivery_tag: u64) -> Result<(), AmqpError> {
        timed(
            "basic.ack",
            self.op_timeout,
            self.channel
                .basic_ack(delivery_tag, BasicAckOptions { multiple: false }),
        )
        .await?;
        self.acked += 1;
        Ok(())
    }

    /// Makes sure every ack sent so far was processed: a synchronous call on the same channel
    /// answers only after the broker handled the frames before it.
    pub async fn sync(&self) -> Result<(), AmqpError> {
        let prefetch = u16::try_from(self.expected.clamp(1, MAX_HELD)).unwrap_or(u16::MAX);
        timed(
            "basic.qos",
            self.op_timeout,
            self.channel.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await
    }

    /// Closes the channel: every message seen and not acked goes back to the queue. A quorum
    /// queue takes them back asynchronously, after the close is answered; until it has, a
    /// following scan (the next CLI call, `list` then `replay --id`) would not see them. So
    /// this waits, up to the op timeout, until the ready count is back to what was not acked.
    pub async fn finish(self) -> Result<(), AmqpError> {
        timed(
            "channel.close",
            self.op_timeout,
            self.channel.close(200, ShortString::from("scan done")),
        )
        .await?;
        let want = self.expected.saturating_sub(self.acked);
        let deadline = tokio::time::Instant::now() + self.op_timeout;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        loop {
            let ready = timed(
                "queue.declare",
                self.op_timeout,
                self.probe.queue_declare(
                    ShortString::from(self.queue.as_str()),
                    passive,
                    FieldTable::default(),
                ),
            )
            .await?
            .message_count();
            if ready >= want || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = timed(
            "channel.close",
            self.op_timeout,
            self.probe.close(200, ShortString::from("scan done")),
        )
        .await;
        Ok(())
    }
}
