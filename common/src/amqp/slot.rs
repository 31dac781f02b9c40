//! The publisher a component should use right now, kept current by its connection supervisor.
//!
//! A delivery's outcome (retry, dead letter) must outlive the publish channel it started with:
//! when that channel dies, the supervisor opens a new one and the outcome is published there,
//! while the delivery itself stays unacked on its own (consume) connection. So code that
//! publishes holds a [`PublisherSlot`], not a [`Publisher`].

use std::time::Duration;

use tokio::sync::watch;

use super::Publisher;

/// A read handle on the current publisher (`None` while the broker is unreachable).
#[derive(Clone, Debug)]
pub struct PublisherSlot {
    rx: watch::Receiver<Option<Publisher>>,
}

/// The supervisor's side of a [`PublisherSlot`].
pub type PublisherSender = watch::Sender<Option<Publisher>>;

impl PublisherSlot {
    /// A new, empty slot and the sender that fills it.
    pub fn channel() -> (PublisherSender, PublisherSlot) {
        let (tx, rx) = watch::channel(None);
        (tx, PublisherSlot { rx })
    }

    /// The current publisher if its channel is open.
    pub fn current(&self) -> Option<Publisher> {
        self.rx.borrow().clone().filter(Publisher::is_open)
    }

    /// Waits up to `timeout` for an open publisher.
    pub async fn wait(&self, timeout: Duration) -> Option<Publisher> {
        if let Some(p) = self.current() {
            return Some(p);
        }
        let mut rx = self.rx.clone();
        let found = tokio::time::timeout(
            timeout,
            rx.wait_for(|p| p.as_ref().is_some_and(Publisher::is_open)),
        )
        .await;
        match found {
            Ok(Ok(p)) => p.clone(),
            _ => None,
        }
    }
}
