//! The AMQP names and their idempotent declaration (DESIGN.md §5).
//!
//! | name | kind |
//! |------|------|
//! | `{ns}.tasks` | direct exchange, routing key = queue name |
//! | `{ns}.{queue}` | quorum queue, `x-delivery-limit`, DLX `{ns}.dead` |
//! | `{ns}.{queue}.retry.{delay}` | classic durable queue with message TTL, DLX back to `{ns}.tasks` |
//! | `{ns}.dead` | direct exchange |
//! | `{ns}.{queue}.dead` | quorum queue bound to `{ns}.dead` with key = queue name |

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use super::{timed, AmqpError};
use crate::config::retry::tier_label;
use crate::config::RetryPolicy;

/// Redeliveries of one message (crashes mid-handler) after which the broker dead-letters it:
/// the backstop against a message that kills every worker that takes it.
pub const DELIVERY_LIMIT: i64 = 20;

/// Names and declarations for one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    ns: String,
    op_timeout: Duration,
}

impl Topology {
    /// Topology of namespace `ns`; every declare waits at most `op_timeout`.
    pub fn new(ns: &str, op_timeout: Duration) -> Self {
        Self {
            ns: ns.to_string(),
            op_timeout,
        }
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

    /// `{ns}.{queue}`
    pub fn work_queue(&self, queue: &str) -> String {
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

    /// Declares both exchanges, the work queue and its dead-letter queue, with bindings.
    /// Safe to repeat: the same arguments every time.
    pub async fn declare_queue(&self, ch: &Channel, queue: &str) -> Result<(), AmqpError> {
        self.exchange(ch, &self.tasks_exchange()).await?;
        self.exchange(ch, &self.dead_exchange()).await?;
        let mut work = FieldTable::default();
        work.insert("x-queue-type".into(), str_value("quorum"));
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        work.insert(
            "x-dead-letter-exchange".into(),
            str_value(&self.dead_exchange()),
        );
        work.insert("x-dead-letter-routing-key".into(), str_value(queue));
        self.queue(ch, &self.work_queue(queue), work).await?;
        self.bind(ch, &self.work_queue(queue), &self.tasks_exchange(), queue)
            .await?;
        let mut dead = FieldTable::default();
        dead.insert("x-queue-type".into(), str_value("quorum"));
        self.queue(ch, &self.dead_queue(queue), dead).await?;
        self.bind(ch, &self.dead_queue(queue), &self.dead_exchange(), queue)
            .await
    }

    /// Declares one TTL queue per tier of `policy`, each dead-lettering back to the work queue.
    pub async fn declare_retry_tiers(
        &self,
        ch: &Channel,
        queue: &str,
        policy: &RetryPolicy,
    ) -> Result<(), AmqpError> {
        for tier in policy.tiers() {
            let mut args = FieldTable::default();
            let ttl = i64::try_from(tier.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            args.insert(
                "x-dead-letter-exchange".into(),
                str_value(&self.tasks_exchange()),
            );
            args.insert("x-dead-letter-routing-key".into(), str_value(queue));
            self.queue(ch, &self.retry_queue(queue, tier), args).await?;
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

    async fn queue(&self, ch: &Channel, name: &str, args: FieldTable) -> Result<(), AmqpError> {
        let opts = QueueDeclareOptions {
            durable: true,
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

fn str_value(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.as_bytes().to_vec().into())
}
