//! RabbitMQ: connection supervisor, topology, confirmed publisher.
//!
//! lapin's own auto-recovery is young, so drumbeat owns the reconnect loop ([`supervise`]: connect
//! → set up → watch → reconnect, with the backoff bounds kept in [`Connector`]) and puts a
//! deadline on every broker call. A publish counts as done only on a plain broker ack: a nack, a
//! return (unroutable) or a missing confirm is a typed [`PublishError`].

mod connector;
mod publisher;
mod slot;
mod supervisor;
mod tls;
mod topology;

use std::future::Future;
use std::time::Duration;

pub use connector::Connector;
pub use publisher::{
    header_int, header_str, long_string, task_properties, PendingConfirm, PublishError, Publisher,
};
pub use slot::{PublisherSender, PublisherSlot};
pub use supervisor::{supervise, Ended, PublishLink, Session};
pub use tls::{client_config as tls_client_config, TlsSetupError};
pub use topology::{Topology, TopologyQueue};

pub use lapin;

/// A broker call that failed. lapin's error is kept as the source; no message contains the URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AmqpError {
    /// `amqp.url` is not an AMQP URI (checked at config load, so only a bug lands here).
    #[error("amqp.url cannot be parsed as an AMQP URI")]
    BadUrl,
    /// `amqp.tls` names files that do not make a TLS client (bad PEM, no usable CA).
    #[error("amqp TLS set-up failed: {0}")]
    Tls(#[source] TlsSetupError),
    /// Could not connect (for `amqps://`, a failed handshake says `TLS handshake with ...`).
    #[error("amqp connect failed: {0}")]
    Connect(#[source] lapin::Error),
    /// A call did not answer within its deadline.
    #[error("amqp {op} timed out after {after:?}")]
    Timeout {
        /// The call.
        op: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The broker or the client refused a call.
    #[error("amqp {op} failed: {source}")]
    Call {
        /// The call.
        op: &'static str,
        /// lapin's error (for a broker refusal it carries the AMQP reply code and text).
        #[source]
        source: lapin::Error,
    },
}

impl AmqpError {
    /// The AMQP reply code when the broker refused the call (404, 405, 406, ...).
    pub fn reply_code(&self) -> Option<u16> {
        let (AmqpError::Connect(e) | AmqpError::Call { source: e, .. }) = self else {
            return None;
        };
        match e.kind() {
            lapin::ErrorKind::ProtocolError(p) => Some(p.get_id()),
            _ => None,
        }
    }
}

/// Runs one lapin call under `after`, naming it in the error.
pub async fn timed<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = lapin::Result<T>>,
) -> Result<T, AmqpError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(AmqpError::Call { op, source }),
        Err(_) => Err(AmqpError::Timeout { op, after }),
    }
}

/// The header carrying the 1-based attempt number on drumbeat's own publishes.
pub const ATTEMPT_HEADER: &str = "x-drumbeat-attempt";
