//! The connection supervisor and the receive loop.
//!
//! One loop owns the broker connection: connect (with [`Connector`]'s capped backoff), open one
//! publisher channel (confirms) and one consume channel (`basic_qos(prefetch)`), declare the
//! topology of every configured queue, then hand each delivery to its own task once a
//! concurrency permit is free. The receive loop never awaits an ack or a Redis call, which is
//! what keeps throughput near the raw client's. When the stream ends the session is over:
//! in-flight runs may finish but their acks fail on the dead channel, and the broker's
//! redeliveries are absorbed by dedup. On shutdown the consumers are cancelled, in-flight runs get
//! `drain_timeout`, and closing the channel requeues the rest.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions,
};
use drumbeat_common::amqp::lapin::types::{FieldTable, ShortString};
use drumbeat_common::amqp::lapin::{Channel, Connection};
use drumbeat_common::amqp::{
    timed, AmqpError, Connector, Publisher, PublisherSender, PublisherSlot,
};
use drumbeat_common::backoff::Backoff;
use futures::stream::{select_all, BoxStream};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outcome::InFlight;
use crate::process::{attempt_of, handle};
use crate::worker::Shared;

type Deliveries = BoxStream<'static, (String, Result<Delivery, String>)>;

/// One connection's channels and consumers.
struct Session {
    conn: Connection,
    publisher: Publisher,
    /// Outcomes of this session's deliveries are published through this slot.
    slot: PublisherSlot,
    _slot_tx: PublisherSender,
    consume: Channel,
    tags: Vec<ShortString>,
    deliveries: Deliveries,
}

/// How a session ended.
enum Ended {
    Shutdown,
    Lost(String),
}

/// Consumes until `shutdown`, reconnecting as often as needed, then drains.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let connector = Connector::new(
        &shared.settings.amqp,
        format!("drumbeat-worker {}", shared.id),
    );
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(shared.settings.worker.concurrency));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    while let Some(conn) = connector.connect(&shutdown).await {
        let session = match open(&shared, conn).await {
            Ok(s) => s,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "could not set up channels and topology");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff.reset();
        shared.amqp_up.store(true, Ordering::Relaxed);
        let ended = consume(&shared, session, &tracker, &permits, &shutdown).await;
        shared.amqp_up.store(false, Ordering::Relaxed);
        match ended {
            Ended::Shutdown => break,
            Ended::Lost(why) => {
                tracing::warn!(error = %why, "broker session lost; reconnecting");
            }
        }
    }
    // Runs left from lost sessions (or a shutdown before any connection) get the same grace.
    tracker.close();
    let _ = tokio::time::timeout(shared.settings.worker.drain_timeout, tracker.wait()).await;
}

async fn open(shared: &Shared, conn: Connection) -> Result<Session, AmqpError> {
    let amqp = &shared.settings.amqp;
    let op = amqp.connect_timeout;
    let publisher = Publisher::open(&conn, op, amqp.confirm_timeout).await?;
    let mut consume = None;
    let mut tags = Vec::new();
    let mut streams = Vec::new();
    for queue in &shared.settings.worker.queues {
        let topo = &shared.topology;
        topo.declare_queue(publisher.channel(), queue).await?;
        let policy = shared.settings.retry_policy(queue);
        topo.declare_retry_tiers(publisher.channel(), queue, policy)
            .await?;
        if consume.is_none() {
            let ch = timed("channel.open", op, conn.create_channel()).await?;
            let qos = ch.basic_qos(shared.settings.worker.prefetch, BasicQosOptions::default());
            timed("basic.qos", op, qos).await?;
            consume = Some(ch);
        }
        let Some(ch) = consume.as_ref() else {
            continue;
        };
        let consumer = timed(
            "basic.consume",
            op,
            ch.basic_consume(
                topo.work_queue(queue).as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        tags.push(consumer.tag());
        let q = queue.clone();
        streams.push(
            consumer
                .map(move |d| (q.clone(), d.map_err(|e| e.to_string())))
                .boxed(),
        );
    }
    let consume = consume.ok_or_else(|| AmqpError::Connect("no queues to consume".into()))?;
    tracing::info!(queues = ?shared.settings.worker.queues, prefetch = shared.settings.worker.prefetch, "consuming");
    let (slot_tx, slot) = PublisherSlot::channel();
    let _ = slot_tx.send(Some(publisher.clone()));
    Ok(Session {
        conn,
        publisher,
        slot,
        _slot_tx: slot_tx,
        consume,
        tags,
        deliveries: select_all(streams).boxed(),
    })
}

async fn consume(
    shared: &Arc<Shared>,
    mut s: Session,
    tracker: &TaskTracker,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Ended {
    // Cancelled when this session ends for any reason: unclaimed deliveries stop waiting.
    let session_stop = shutdown.child_token();
    let _stop_on_exit = session_stop.clone().drop_guard();
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            n = s.deliveries.next() => n,
        };
        let (queue, delivery) = match next {
            Some((q, Ok(d))) => (q, d),
            Some((q, Err(e))) => return abandon(shared, s, format!("consumer on {q}: {e}")).await,
            None => return abandon(shared, s, "consumer stream ended".into()).await,
        };
        if !s.publisher.is_open() {
            // Retries and dead letters would all fail and requeue: start a fresh session.
            return abandon(shared, s, "publisher channel closed".into()).await;
        }
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let inflight = InFlight {
            shared: shared.clone(),
            publisher: s.slot.clone(),
            queue,
            attempt: attempt_of(&delivery.properties),
            delivery,
            id: None,
        };
        let stop = session_stop.clone();
        tracker.spawn(async move {
            handle(inflight, stop).await;
            drop(permit);
        });
    }
    drain(shared, s, tracker).await;
    Ended::Shutdown
}

/// Ends a broken session: closes its connection (if it is still up, e.g. only a consumer was
/// cancelled by the broker) so its unacked deliveries go back to the queue now. In-flight runs
/// of this session then fail to ack, and dedup absorbs the redeliveries.
async fn abandon(shared: &Shared, s: Session, why: String) -> Ended {
    let op = shared.settings.amqp.connect_timeout;
    let _ = timed(
        "connection.close",
        op,
        s.conn.close(200, "session lost".into()),
    )
    .await;
    Ended::Lost(why)
}

/// Stops consuming, lets in-flight runs finish up to `drain_timeout`, then closes the channels,
/// which requeues every delivery still unacked.
async fn drain(shared: &Shared, s: Session, tracker: &TaskTracker) {
    let op = shared.settings.amqp.connect_timeout;
    for tag in s.tags {
        let cancel = s.consume.basic_cancel(tag, BasicCancelOptions::default());
        let _ = timed("basic.cancel", op, cancel).await;
    }
    drop(s.deliveries);
    let grace = shared.settings.worker.drain_timeout;
    tracing::info!(in_flight = shared.metrics.in_flight(), grace = ?grace, "draining");
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            in_flight = shared.metrics.in_flight(),
            "drain timeout; the rest is requeued"
        );
    }
    // Closing the connection closes both channels; the broker requeues every unacked delivery.
    let _ = timed("connection.close", op, s.conn.close(200, "shutdown".into())).await;
    tracing::info!("drained");
}
