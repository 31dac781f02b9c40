//! Publishing with confirms: success only on a plain broker ack.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};

use super::{timed, AmqpError, ATTEMPT_HEADER};
use crate::envelope::CONTENT_TYPE;

/// Why a publish is not known to be stored by the broker. Every variant means "not sent":
/// the caller retries (same message ID) and does not advance any cursor or ack anything.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No open channel to publish on (the broker is unreachable, or the link is reconnecting).
    #[error("publish not sent: no open channel to the broker")]
    NotConnected,
    /// The frame could not be sent (channel or connection closed).
    #[error("publish not sent: {0}")]
    Send(#[source] lapin::Error),
    /// The broker refused to store the message.
    #[error("publish nacked by the broker")]
    Nacked,
    /// No queue was bound for the routing key (mandatory publish came back).
    #[error("publish returned as unroutable ({code} {text})")]
    Returned {
        /// AMQP reply code, 312 for NO_ROUTE.
        code: u16,
        /// Broker's reply text.
        text: String,
    },
    /// No confirm within the deadline.
    #[error("publish confirm timed out after {0:?}")]
    Timeout(Duration),
    /// The channel closed before the confirm arrived.
    #[error("publish confirm lost: {0}")]
    Lost(#[source] lapin::Error),
    /// The channel is not in confirm mode (a bug: every Publisher channel is).
    #[error("publish was not confirmed (channel not in confirm mode)")]
    NotConfirmed,
}

/// A channel in confirm mode.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    confirm_timeout: Duration,
    /// Publishes nacked in a row on this channel (any ack resets it), shared by clones: a
    /// channel that only gets nacks is replaced by its [`PublishLink`](super::PublishLink).
    nacks: Arc<AtomicU32>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.channel.id())
            .finish()
    }
}

/// A publish that was sent and whose confirm is still to come; pipelining many of these is
/// how the beat sends a burst of due fires without one round trip each.
pub struct PendingConfirm {
    confirm: PublisherConfirm,
    timeout: Duration,
    nacks: Arc<AtomicU32>,
}

impl Publisher {
    /// Opens a channel on `conn` and puts it in confirm mode.
    pub async fn open(
        conn: &Connection,
        op_timeout: Duration,
        confirm_timeout: Duration,
    ) -> Result<Self, AmqpError> {
        let channel = timed("channel.open", op_timeout, conn.create_channel()).await?;
        timed(
            "confirm.select",
            op_timeout,
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(Self {
            channel,
            confirm_timeout,
            nacks: Arc::default(),
        })
    }

    /// The underlying channel (for declares on the same channel).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Whether the channel can still publish.
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// How many publishes in a row the broker nacked on this channel.
    pub fn nack_streak(&self) -> u32 {
        self.nacks.load(Ordering::Relaxed)
    }

    /// Sends one persistent, mandatory message; await the returned [`PendingConfirm`].
    pub async fn start(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<PendingConfirm, PublishError> {
        let opts = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let sent = tokio::time::timeout(
            self.confirm_timeout,
            self.channel.basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                opts,
                body,
                properties.with_delivery_mode(2),
            ),
        )
        .await;
        match sent {
            Ok(Ok(confirm)) => Ok(PendingConfirm {
                confirm,
                timeout: self.confirm_timeout,
                nacks: self.nacks.clone(),
            }),
            Ok(Err(e)) => Err(PublishError::Send(e)),
            Err(_) => Err(PublishError::Timeout(self.confirm_timeout)),
        }
    }

    /// Sends and waits for the confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.start(exchange, routing_key, body, properties)
            .await?
            .wait()
            .await
    }
}

impl PendingConfirm {
    /// Waits for the broker's verdict: only a plain ack is success.
    pub async fn wait(self) -> Result<(), PublishError> {
        let got = tokio::time::timeout(self.timeout, self.confirm).await;
        match &got {
            Ok(Ok(Confirmation::Nack(_))) => {
                self.nacks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(Confirmation::Ack(_))) => self.nacks.store(0, Ordering::Relaxed),
            _ => {}
        }
        match got {
            Err(_) => Err(PublishError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(PublishError::Lost(e)),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(ret)))) => Err(PublishError::Returned {
                code: ret.reply_code,
                text: ret.reply_text.to_string(),
            }),
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::NotConfirmed),
        }
    }
}

/// Properties of a task drumbeat publishes: JSON, persistent, `message_id = id`, attempt header.
pub fn task_properties(id: &str, attempt: u32) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        ATTEMPT_HEADER.into(),
        AMQPValue::LongLongInt(attempt.into()),
    );
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(id.into())
        .with_headers(headers)
}

/// Reads a string-ish header value.
pub fn header_str(props: &BasicProperties, name: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Reads an integer header value of any AMQP integer width.
pub fn header_int(props: &BasicProperties, name: &str) -> Option<i64> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).parse().ok(),
        _ => None,
    }
}

/// A long-string header value.
pub fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}
