//! RabbitMQ: connection supervisor, topology, confirmed publisher.
//!
//! lapin's own auto-recovery is young, so drumbeat owns the reconnect loop ([`Connector`]) and
//! puts a deadline on every broker call. A publish counts as done only on a plain broker ack:
//! a nack, a return (unroutable) or a missing confirm is a typed [`PublishError`].

mod connector;
mod publisher;
mod slot;
mod topology;

use std::future::Future;
use std::time::Duration;

pub use connector::Connector;
pub use publisher::{
    header_int, header_str, long_string, task_properties, PendingConfirm, PublishError, Publisher,
};
pub use slot::{PublisherSender, PublisherSlot};
pub use topology::Topology;

pub use lapin;

/// A broker call that failed; messages never contain the URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AmqpError {
    /// Could not connect.
    #[error("amqp connect failed: {0}")]
    Connect(String),
    /// A call did not answer within its deadline.
    #[error("amqp {op} timed out after {after:?}")]
    Timeout {
        /// The call.
        op: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The broker or the client refused a call.
    #[error("amqp {op} failed: {message}")]
    Call {
        /// The call.
        op: &'static str,
        /// lapin's message.
        message: String,
    },
}

/// Runs one lapin call under `after`, naming it in the error.
pub async fn timed<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = lapin::Result<T>>,
) -> Result<T, AmqpError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(AmqpError::Call {
            op,
            message: e.to_string(),
        }),
        Err(_) => Err(AmqpError::Timeout { op, after }),
    }
}

/// The header carrying the 1-based attempt number on drumbeat's own publishes.
pub const ATTEMPT_HEADER: &str = "x-drumbeat-attempt";
