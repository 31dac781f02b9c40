//! Plain lapin helpers for assertions: what a test sees is what the broker holds.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::AMQP_URL;

/// The AMQP user of [`AMQP_URL`]: what beats and workers of the default test config use, and
/// so the only `user_id` their workers accept on `sched:` / `manual:` ids (docs/design.md §14).
pub const TEST_USER: &str = "guest";

/// `props` with `user_id` = [`TEST_USER`] unless they name one: what a test publishing a
/// reserved id as if it were the beat must send (RabbitMQ checks it against the connection).
pub fn as_test_user(props: BasicProperties) -> BasicProperties {
    if props.user_id().is_some() {
        return props;
    }
    props.with_user_id(TEST_USER.into())
}

pub async fn connect() -> lapin::Result<Connection> {
    Connection::connect(AMQP_URL, ConnectionProperties::default()).await
}

pub async fn channel() -> (Connection, Channel) {
    let conn = connect().await.expect("test amqp connect");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// Messages ready in `queue`, or None if it does not exist.
pub async fn message_count(ch: &Channel, queue: &str) -> Option<u32> {
    // A passive declare of a missing queue closes the channel; use a throwaway one.
    let conn = connect().await.ok()?;
    let probe = conn.create_channel().await.ok()?;
    let _ = ch;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let r = probe
        .queue_declare(queue.into(), opts, FieldTable::default())
        .await
        .ok()
        .map(|q| q.message_count());
    let _ = conn.close(200, "bye".into()).await;
    r
}

/// Takes every ready message from `queue` (acking them), waiting up to `quiet` for stragglers.
pub async fn drain(ch: &Channel, queue: &str, quiet: Duration) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    loop {
        match ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
        {
            Ok(Some(m)) => {
                let d = m.delivery;
                d.ack(BasicAckOptions::default()).await.unwrap();
                out.push(d);
                last = std::time::Instant::now();
            }
            Ok(None) => {
                if last.elapsed() >= quiet {
                    return out;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("basic_get {queue}: {e}"),
        }
    }
}
