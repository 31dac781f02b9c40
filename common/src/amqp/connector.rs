//! How to reach the broker: URL, connection name, deadlines and the reconnect backoff bounds.
//!
//! The bounds live here, once, and every reconnect loop (the [`supervise`](super::supervise)
//! loop of the beat's link and of the worker's two connections) draws its delays from
//! [`Connector::backoff`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use rustls::ClientConfig;

use super::tls::{self, TlsSetupError};
use super::AmqpError;
use crate::backoff::Backoff;
use crate::config::AmqpSettings;
use crate::secret::SecretUrl;

/// Only the most recent retry delays are kept (a broker flapping for weeks must not grow memory).
const KEPT_DELAYS: usize = 32;

/// Heartbeat asked of the broker when the URL names none: a dead peer is noticed in ~2x this.
const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// Default reconnect backoff: a quick first retry, capped so an outage is noticed as over
/// within half a minute.
const MIN_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Opens connections to the broker for one component and remembers how it went.
#[derive(Debug, Clone)]
pub struct Connector {
    settings: AmqpSettings,
    name: String,
    min_delay: Duration,
    max_delay: Duration,
    delays: Arc<Mutex<Vec<Duration>>>,
    /// Index into [`AmqpSettings::nodes`] of the node to try first: the last one that answered.
    current: Arc<AtomicUsize>,
    /// The TLS client for `amqps://` nodes, built once from `amqp.tls` (`None`: no node is
    /// `amqps`). A set-up error is returned by every connect attempt, so it is logged with the
    /// backoff like any other connect failure.
    tls: Option<Result<Arc<ClientConfig>, TlsSetupError>>,
}

impl Connector {
    /// `name` shows up as the connection name in the RabbitMQ management UI and `rabbitmqctl`.
    ///
    /// With an `amqps://` node and `amqp.tls.insecure = true` this logs a warning: that
    /// connection is encrypted but not authenticated.
    pub fn new(settings: &AmqpSettings, name: impl Into<String>) -> Self {
        let name = name.into();
        let any_tls = settings.nodes().any(|u| {
            u.expose()
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("amqps://"))
        });
        let tls = any_tls.then(|| tls::client_config(&settings.tls));
        if any_tls && settings.tls.insecure {
            tracing::warn!(
                %name,
                "amqp.tls.insecure = true: the broker's certificate and host name are NOT \
                 verified; anyone on the path can read and alter this connection"
            );
        }
        Self {
            settings: settings.clone(),
            name,
            min_delay: MIN_DELAY,
            max_delay: MAX_DELAY,
            delays: Arc::default(),
            current: Arc::default(),
            tls,
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

    /// A fresh backoff with this connector's bounds.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.min_delay, self.max_delay)
    }

    /// Remembers one delay slept before a retry (for `/status` and tests).
    pub(crate) fn record_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.delays.lock() {
            if d.len() == KEPT_DELAYS {
                d.remove(0);
            }
            d.push(delay);
        }
    }

    /// The last delays slept between failed attempts (at most 32; for `/status` and tests).
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.delays.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The URL of the node last connected to (or to be tried first), password hidden, for logs.
    pub(crate) fn redacted_url(&self) -> String {
        let nodes: Vec<_> = self.settings.nodes().collect();
        let i = self.current.load(Ordering::Relaxed) % nodes.len();
        nodes[i].to_string()
    }

    /// One attempt per node, each under the connect timeout: the node that answered last
    /// first, then the others in configured order (docs/design.md §13). With one node this is
    /// one attempt. The error is the last node's.
    pub async fn connect_once(&self) -> Result<Connection, AmqpError> {
        let nodes: Vec<_> = self.settings.nodes().collect();
        let start = self.current.load(Ordering::Relaxed) % nodes.len();
        let mut last = None;
        for k in 0..nodes.len() {
            let i = (start + k) % nodes.len();
            match self.connect_node(nodes[i]).await {
                Ok(c) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => {
                    if nodes.len() > 1 {
                        tracing::warn!(
                            name = %self.name,
                            node = %nodes[i],
                            error = %e,
                            "amqp node did not answer; trying the next"
                        );
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(AmqpError::BadUrl))
    }

    /// One attempt at one node, under the connect timeout.
    async fn connect_node(&self, url: &SecretUrl) -> Result<Connection, AmqpError> {
        let mut uri: AMQPUri = url.expose().parse().map_err(|_| AmqpError::BadUrl)?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        let tls = match (&uri.scheme, &self.tls) {
            (AMQPScheme::AMQPS, Some(Ok(tls))) => Some(tls.clone()),
            (AMQPScheme::AMQPS, Some(Err(e))) => return Err(AmqpError::Tls(e.clone())),
            _ => None,
        };
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let after = self.settings.connect_timeout;
        match tokio::time::timeout(after, tls::connect(uri, props, tls)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(AmqpError::Connect(e)),
            Err(_) => Err(AmqpError::Timeout {
                op: "connect",
                after,
            }),
        }
    }
}
