//! Raw lapin on both ends: pipelined confirmed publishing (the ceiling the baselines use) and a
//! recorder that notes when each message reached a consumer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use drumbeat_common::amqp::task_properties;
use drumbeat_common::config::Schedule;
use drumbeat_common::Envelope;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::task::JoinHandle;

/// Confirms kept in flight by the raw publisher (drumbeat's beat pipelines 4096 per batch).
pub const WINDOW: usize = 4096;

/// A message ready to send: body and the properties drumbeat would give it.
pub struct Msg {
    /// The envelope, encoded.
    pub body: Vec<u8>,
    /// `task_properties(id, 1)`.
    pub props: BasicProperties,
}

impl Msg {
    /// A task envelope as drumbeat publishes it.
    pub fn task(env: &Envelope) -> Self {
        Self {
            body: env.encode(),
            props: task_properties(&env.id, 1),
        }
    }
}

/// The envelopes `n` copies of `template` (named `{prefix}{i}`) would publish for a fire at
/// `at`, built by the beat's own code: the raw baselines send exactly what drumbeat sends.
pub fn fire_burst(template: &Schedule, prefix: &str, n: usize, at: DateTime<Utc>) -> Vec<Msg> {
    (0..n)
        .map(|i| {
            let mut s = template.clone();
            s.name = format!("{prefix}{i}");
            Msg::task(&drumbeat_beat::publish::envelope(&s, at))
        })
        .collect()
}

/// Opens a channel in confirm mode.
pub async fn confirm_channel(conn: &Connection) -> anyhow::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Publishes every message (persistent, mandatory) keeping up to [`WINDOW`] confirms in flight;
/// fails on any nack or return. Returns the time from the first send to the last confirm.
pub async fn publish_all(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    msgs: Vec<Msg>,
) -> anyhow::Result<Duration> {
    let start = std::time::Instant::now();
    let mut pending = FuturesUnordered::new();
    let opts = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    for m in msgs {
        while pending.len() >= WINDOW {
            settle(pending.next().await)?;
        }
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                opts,
                &m.body,
                m.props.with_delivery_mode(2),
            )
            .await?;
        pending.push(confirm);
    }
    while let Some(c) = pending.next().await {
        settle(Some(c))?;
    }
    Ok(start.elapsed())
}

fn settle(c: Option<lapin::Result<Confirmation>>) -> anyhow::Result<()> {
    match c {
        Some(Ok(Confirmation::Ack(None))) | None => Ok(()),
        Some(Ok(other)) => anyhow::bail!("publish not stored: {other:?}"),
        Some(Err(e)) => Err(e).context("publish confirm"),
    }
}

/// One message as a consumer saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Envelope ID.
    pub id: String,
    /// Envelope `fire_time`, when set.
    pub fire: Option<DateTime<Utc>>,
    /// Wall-clock time it reached the consumer.
    pub at: DateTime<Utc>,
}

impl Arrival {
    /// Arrival − fire time, in ms.
    pub fn lag_ms(&self) -> Option<f64> {
        self.fire
            .map(|f| (self.at - f).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0)
    }
}

#[derive(serde::Deserialize)]
struct Peek {
    id: String,
    #[serde(default)]
    fire_time: Option<String>,
}

/// A no-ack consumer writing every arrival into a shared log (stops when dropped).
pub struct Recorder {
    /// Everything seen so far.
    pub log: Arc<Mutex<Vec<Arrival>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts consuming `queue` on a fresh channel of `conn`.
    pub async fn start(conn: &Connection, queue: &str) -> anyhow::Result<Self> {
        let ch = conn.create_channel().await?;
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut consumer = ch
            .basic_consume(queue.into(), "".into(), opts, FieldTable::default())
            .await
            .with_context(|| format!("consuming {queue}"))?;
        let log: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let sink = log.clone();
        let task = tokio::spawn(async move {
            let _ch = ch;
            while let Some(Ok(d)) = consumer.next().await {
                let at = Utc::now();
                let Ok(p) = serde_json::from_slice::<Peek>(&d.data) else {
                    continue;
                };
                let fire = p
                    .fire_time
                    .and_then(|f| DateTime::parse_from_rfc3339(&f).ok())
                    .map(|f| f.with_timezone(&Utc));
                if let Ok(mut l) = sink.lock() {
                    l.push(Arrival { id: p.id, fire, at });
                }
            }
        });
        Ok(Self { log, task })
    }

    /// A copy of the arrivals so far.
    pub fn snapshot(&self) -> Vec<Arrival> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many arrived so far.
    pub fn count(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sleeps until the next whole wall-clock second (plus `offset`) and returns that second.
pub async fn until_next_second(offset: Duration) -> DateTime<Utc> {
    let now = Utc::now();
    let next = DateTime::from_timestamp(now.timestamp() + 1, 0).unwrap_or(now);
    let wait = (next - now).to_std().unwrap_or_default() + offset;
    tokio::time::sleep(wait).await;
    next
}
