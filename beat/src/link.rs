//! The beat's broker link: one supervised connection with a confirm-mode channel, re-opened
//! with capped backoff whenever it drops, topology declared on every (re)connect.

use std::time::Duration;

use drumbeat_common::amqp::{Connector, Publisher, Topology};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Keeps `tx` holding an open publisher whenever the broker is reachable.
pub async fn link_loop(
    connector: Connector,
    topology: Topology,
    queues: Vec<String>,
    tx: watch::Sender<Option<Publisher>>,
    stop: CancellationToken,
) {
    let mut backoff =
        drumbeat_common::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        let Some(conn) = connector.connect(&stop).await else {
            break;
        };
        let opened = async {
            let p =
                Publisher::open(&conn, connector.op_timeout(), connector.confirm_timeout()).await?;
            for q in &queues {
                topology.declare_queue(p.channel(), q).await?;
            }
            Ok::<_, drumbeat_common::amqp::AmqpError>(p)
        }
        .await;
        match opened {
            Ok(p) => {
                backoff.reset();
                let _ = tx.send(Some(p.clone()));
                // Watch the channel; lapin reports closure through its status.
                while p.is_open() && conn.status().connected() {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                }
                let _ = tx.send(None);
                if stop.is_cancelled() {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        conn.close(200, "beat stopping".into()),
                    )
                    .await;
                    break;
                }
                tracing::warn!("amqp channel closed; reconnecting");
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "amqp setup failed");
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    conn.close(200, "setup failed".into()),
                )
                .await;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    let _ = tx.send(None);
}
