//! The one reconnect loop: connect with a deadline, back off with jitter, stop on cancel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::AmqpError;
use crate::backoff::Backoff;
use crate::config::AmqpSettings;

/// Only the most recent retry delays are kept (a broker flapping for weeks must not grow memory).
const KEPT_DELAYS: usize = 32;

/// Heartbeat asked of the broker when the URL names none: a dead peer is noticed in ~2x this.
const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// Opens connections to the broker for one component and remembers how it went.
#[derive(Debug, Clone)]
pub struct Connector {
    settings: AmqpSettings,
    name: String,
    min_delay: Duration,
    max_delay: Duration,
    delays: Arc<Mutex<Vec<Duration>>>,
}

impl Connector {
    /// `name` shows up as the connection name in the RabbitMQ management UI and `rabbitmqctl`.
    pub fn new(settings: &AmqpSettings, name: impl Into<String>) -> Self {
        Self {
            settings: settings.clone(),
            name: name.into(),
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            delays: Arc::default(),
        }
    }

    /// Overrides the reconnect backoff bounds (tests use short ones).
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max;
        self
    }

    /// Connection name given to the broker.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The deadline used for connecting and for each channel or declare call.
    pub fn op_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    /// The configured confirm timeout.
    pub fn confirm_timeout(&self) -> Duration {
        self.settings.confirm_timeout
    }

    /// The last delays slept between failed attempts (at most 32; for `/status` and tests).
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.delays.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// One attempt, under the connect timeout.
    pub async fn connect_once(&self) -> Result<Connection, AmqpError> {
        let mut uri: AMQPUri =
            self.settings.url.expose().parse().map_err(|_| {
                AmqpError::Connect("amqp.url cannot be parsed as an AMQP URI".into())
            })?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let after = self.settings.connect_timeout;
        match tokio::time::timeout(after, Connection::connect_uri(uri, props)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(AmqpError::Connect(e.to_string())),
            Err(_) => Err(AmqpError::Timeout {
                op: "connect",
                after,
            }),
        }
    }

    /// Connects, retrying with capped jittered backoff until it works or `cancel` fires
    /// (then `None`). Each failed attempt is logged once, with the delay before the next.
    pub async fn connect(&self, cancel: &CancellationToken) -> Option<Connection> {
        let mut backoff = Backoff::new(self.min_delay, self.max_delay);
        loop {
            if cancel.is_cancelled() {
                return None;
            }
            let attempt = tokio::select! {
                _ = cancel.cancelled() => return None,
                r = self.connect_once() => r,
            };
            match attempt {
                Ok(conn) => {
                    if backoff.failures() > 0 {
                        tracing::info!(name = %self.name, failures = backoff.failures(), "amqp reconnected");
                    } else {
                        tracing::info!(name = %self.name, broker = %self.settings.url, "amqp connected");
                    }
                    return Some(conn);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    if let Ok(mut d) = self.delays.lock() {
                        if d.len() == KEPT_DELAYS {
                            d.remove(0);
                        }
                        d.push(delay);
                    }
                    tracing::warn!(name = %self.name, error = %e, retry_in = ?delay, "amqp connect failed");
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}
