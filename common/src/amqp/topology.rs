//! The AMQP names and their idempotent declaration (docs/design.md §5, §13).
//!
//! | name | kind |
//! |------|------|
//! | `{ns}.tasks` | direct exchange, routing key = queue name |
//! | `{ns}.{queue}` | quorum queue, `x-delivery-limit`, DLX `{ns}.dead` |
//! | `{ns}.{queue}.retry.{delay}` | quorum queue, message TTL, DLX back to `{ns}.tasks`, `x-dead-letter-strategy = at-least-once` (with `x-overflow = reject-publish`, which it requires) |
//! | `{ns}.dead` | direct exchange |
//! | `{ns}.{queue}.dead` | quorum queue bound to `{ns}.dead` with key = queue name |
//!
//! Why quorum tiers: a classic queue lives on one node, and its TTL dead-lettering is
//! at-most-once (a message expiring while the target is unreachable is dropped), so a retry
//! waiting in a tier could be lost with a node. A quorum tier with at-least-once dead-lettering
//! keeps the message until the work queue has confirmed it (RabbitMQ ≥ 3.10).
//!
//! **Celery queues** ([`Topology::with_celery_queues`], docs/design.md §12) are declared the
//! way Celery 5 declares them, so a Celery worker or client declaring after us is never
//! refused: a classic, durable queue *named as Celery names it* (no namespace) with no
//! arguments, and a durable direct exchange of the same name bound with the queue name. We also
//! bind it to `{ns}.tasks` with key = queue name (a binding never conflicts with anyone's
//! declare), so `worker dlq replay` reaches it. Its dead letters and tiers are ours and named as
//! usual (`{ns}.{queue}.dead`, `{ns}.{queue}.retry.{delay}`); a tier dead-letters through the
//! default exchange straight to the Celery queue, depending on no binding.
//!
//! A queue that already exists with other arguments (a classic tier declared by an older
//! release, a work queue made by hand) makes the broker answer 406 PRECONDITION_FAILED and close
//! the channel. §13 says such a queue is used as it is, with one warning, never failing start:
//! [`Topology::declare`] opens a fresh channel, checks the queue exists (passive declare) and
//! warns once per queue per process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::{timed, AmqpError};
use crate::config::retry::tier_label;
use crate::config::RetryPolicy;

/// Redeliveries of one message (crashes mid-handler) after which the broker dead-letters it:
/// the backstop against a message that kills every worker that takes it.
pub const DELIVERY_LIMIT: i64 = 20;

/// AMQP reply code of a declare whose arguments differ from the existing queue's.
const PRECONDITION_FAILED: u16 = 406;

/// Names and declarations for one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    ns: String,
    op_timeout: Duration,
    /// Queues already warned about as "exists with other arguments".
    warned: Arc<Mutex<HashSet<String>>>,
    /// Queue names that are Celery's (declared Celery's way, see the module docs).
    celery: Arc<HashSet<String>>,
}

/// One queue a component declares on every fresh connection: the publisher of outcomes needs
/// the retry tiers too, the beat and the consume side only the work and dead queues.
#[derive(Debug, Clone)]
pub struct TopologyQueue {
    /// Queue name without the namespace.
    pub queue: String,
    /// Retry tiers to declare, if any.
    pub retry: Option<RetryPolicy>,
}

/// Where declares go: a caller's channel (a 406 is an error), or a connection on which a
/// channel closed by a 406 is replaced.
enum On<'a> {
    Channel(&'a Channel),
    Connection(&'a Connection, Channel),
}

impl On<'_> {
    fn channel(&self) -> &Channel {
        match self {
            On::Channel(ch) => ch,
            On::Connection(_, ch) => ch,
        }
    }
}

impl Topology {
    /// Topology of namespace `ns`; every declare waits at most `op_timeout`.
    pub fn new(ns: &str, op_timeout: Duration) -> Self {
        Self {
            ns: ns.to_string(),
            op_timeout,
            warned: Arc::default(),
            celery: Arc::default(),
        }
    }

    /// The same topology, with `queues` declared and named as Celery's queues (module docs).
    pub fn with_celery_queues(mut self, queues: &[String]) -> Self {
        self.celery = Arc::new(queues.iter().cloned().collect());
        self
    }

    /// Whether `queue` is one of the Celery queues.
    pub fn is_celery(&self, queue: &str) -> bool {
        self.celery.contains(queue)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// `{ns}.tasks`: where every task is published.
    pub fn tasks_exchange(&self) -> String {
        format!("{}.tasks", self.ns)
    }

    /// `{ns}.dead`
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.ns)
    }

    /// `{ns}.{queue}`; a Celery queue's own name.
    pub fn work_queue(&self, queue: &str) -> String {
        if self.is_celery(queue) {
            return queue.to_string();
        }
        format!("{}.{queue}", self.ns)
    }

    /// `{ns}.{queue}.retry.{delay}`
    pub fn retry_queue(&self, queue: &str, tier: Duration) -> String {
        format!("{}.{queue}.retry.{}", self.ns, tier_label(tier))
    }

    /// `{ns}.{queue}.dead`
    pub fn dead_queue(&self, queue: &str) -> String {
        format!("{}.{queue}.dead", self.ns)
    }

    /// Declares `queues` on a channel of its own on `conn` (closed afterwards), using any
    /// existing queue of another type as it is (see the module docs).
    pub async fn declare(
        &self,
        conn: &Connection,
        queues: &[TopologyQueue],
    ) -> Result<(), AmqpError> {
        let ch = timed("channel.open", self.op_timeout, conn.create_channel()).await?;
        let mut on = On::Connection(conn, ch);
        for q in queues {
            self.queue_set(&mut on, &q.queue).await?;
            if let Some(policy) = &q.retry {
                self.tiers(&mut on, &q.queue, policy).await?;
            }
        }
        let _ = timed(
            "channel.close",
            self.op_timeout,
            on.channel().close(200, "declared".into()),
        )
        .await;
        Ok(())
    }

    /// Declares both exchanges, the work queue and its dead-letter queue, with bindings, on
    /// `ch`. Safe to repeat: the same arguments every time.
    pub async fn declare_queue(&self, ch: &Channel, queue: &str) -> Result<(), AmqpError> {
        self.queue_set(&mut On::Channel(ch), queue).await
    }

    /// Declares one TTL queue per tier of `policy` on `ch`, each dead-lettering back to the
    /// work queue.
    pub async fn declare_retry_tiers(
        &self,
        ch: &Channel,
        queue: &str,
        policy: &RetryPolicy,
    ) -> Result<(), AmqpError> {
        self.tiers(&mut On::Channel(ch), queue, policy).await
    }

    async fn queue_set(&self, on: &mut On<'_>, queue: &str) -> Result<(), AmqpError> {
        self.exchange(on.channel(), &self.tasks_exchange()).await?;
        self.exchange(on.channel(), &self.dead_exchange()).await?;
        if self.is_celery(queue) {
            // Celery's own declaration: classic, durable, no arguments; its exchange, direct.
            self.exchange(on.channel(), queue).await?;
            self.queue(on, queue, FieldTable::default()).await?;
            self.bind(on.channel(), queue, queue, queue).await?;
            self.bind(on.channel(), queue, &self.tasks_exchange(), queue)
                .await?;
            return self.dead_set(on, queue).await;
        }
        let mut work = quorum();
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        work.insert(
            "x-dead-letter-exchange".into(),
            str_value(&self.dead_exchange()),
        );
        work.insert("x-dead-letter-routing-key".into(), str_value(queue));
        self.queue(on, &self.work_queue(queue), work).await?;
        self.bind(
            on.channel(),
            &self.work_queue(queue),
            &self.tasks_exchange(),
            queue,
        )
        .await?;
        self.dead_set(on, queue).await
    }

    /// `{ns}.{queue}.dead`, bound to `{ns}.dead` with key = queue.
    async fn dead_set(&self, on: &mut On<'_>, queue: &str) -> Result<(), AmqpError> {
        self.queue(on, &self.dead_queue(queue), quorum()).await?;
        self.bind(
            on.channel(),
            &self.dead_queue(queue),
            &self.dead_exchange(),
            queue,
        )
        .await
    }

    async fn tiers(
        &self,
        on: &mut On<'_>,
        queue: &str,
        policy: &RetryPolicy,
    ) -> Result<(), AmqpError> {
        for tier in policy.tiers() {
            let mut args = quorum();
            let ttl = i64::try_from(tier.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            // A Celery queue is reached through the default exchange by its own name.
            let back = if self.is_celery(queue) {
                String::new()
            } else {
                self.tasks_exchange()
            };
            args.insert("x-dead-letter-exchange".into(), str_value(&back));
            args.insert("x-dead-letter-routing-key".into(), str_value(queue));
            args.insert("x-dead-letter-strategy".into(), str_value("at-least-once"));
            args.insert("x-overflow".into(), str_value("reject-publish"));
            self.queue(on, &self.retry_queue(queue, tier), args).await?;
        }
        Ok(())
    }

    async fn exchange(&self, ch: &Channel, name: &str) -> Result<(), AmqpError> {
        let opts = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        timed(
            "exchange.declare",
            self.op_timeout,
            ch.exchange_declare(
                ShortString::from(name),
                ExchangeKind::Direct,
                opts,
                FieldTable::default(),
            ),
        )
        .await
    }

    async fn queue(&self, on: &mut On<'_>, name: &str, args: FieldTable) -> Result<(), AmqpError> {
        let declared = self.queue_declare(on.channel(), name, args, false).await;
        let conn = match (&declared, &*on) {
            (Err(e), On::Connection(conn, _)) if e.reply_code() == Some(PRECONDITION_FAILED) => {
                *conn
            }
            _ => return declared,
        };
        // The 406 closed the channel: carry on on a new one, with the queue as it is.
        let ch = timed("channel.open", self.op_timeout, conn.create_channel()).await?;
        self.queue_declare(&ch, name, FieldTable::default(), true)
            .await?;
        *on = On::Connection(conn, ch);
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(name.to_string()))
            .unwrap_or(true);
        if first {
            if let Err(e) = &declared {
                tracing::warn!(
                    queue = name, error = %e,
                    "queue exists with other arguments (e.g. a classic queue from an older release); using it as it is"
                );
            }
        }
        Ok(())
    }

    async fn queue_declare(
        &self,
        ch: &Channel,
        name: &str,
        args: FieldTable,
        passive: bool,
    ) -> Result<(), AmqpError> {
        let opts = QueueDeclareOptions {
            durable: true,
            passive,
            ..Default::default()
        };
        timed(
            "queue.declare",
            self.op_timeout,
            ch.queue_declare(ShortString::from(name), opts, args),
        )
        .await
        .map(|_| ())
    }

    async fn bind(&self, ch: &Channel, q: &str, x: &str, key: &str) -> Result<(), AmqpError> {
        timed(
            "queue.bind",
            self.op_timeout,
            ch.queue_bind(
                ShortString::from(q),
                ShortString::from(x),
                ShortString::from(key),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), str_value("quorum"));
    args
}

fn str_value(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.as_bytes().to_vec().into())
}
