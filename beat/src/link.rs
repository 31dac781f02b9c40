//! The beat's broker link: one supervised publish-only connection (a confirm-mode channel),
//! re-opened with the common capped backoff whenever it drops, work queues declared on every
//! (re)connect. The loop itself is [`supervise`]; this module only says what the beat needs.

use drumbeat_common::amqp::{
    supervise, Connector, PublishLink, Publisher, Topology, TopologyQueue,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Keeps `tx` holding an open publisher whenever the broker is reachable, until `stop`.
pub async fn link_loop(
    connector: Connector,
    topology: Topology,
    queues: Vec<String>,
    tx: watch::Sender<Option<Publisher>>,
    stop: CancellationToken,
) {
    let queues = queues
        .into_iter()
        .map(|queue| TopologyQueue { queue, retry: None })
        .collect();
    let mut link = PublishLink::new(&connector, topology, queues, tx);
    supervise(&connector, &mut link, &stop).await;
}
