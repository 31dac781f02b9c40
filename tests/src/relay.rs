//! An in-process TCP relay between a component and a server, to cut connections on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards `127.0.0.1:port` → `upstream`; `cut()` drops every live connection,
/// `set_refusing(true)` drops new ones at once, and [`Relay::delay_reply_to`] holds back the
/// server's answer to one chosen request (the "it ran, but the reply came too late" fault).
pub struct Relay {
    pub addr: SocketAddr,
    generation: CancellationToken,
    gen_holder: Arc<std::sync::Mutex<CancellationToken>>,
    refusing: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
    stop: CancellationToken,
    delay: Arc<Mutex<Option<DelayRule>>>,
    /// How many replies were held back by [`Relay::delay_reply_to`] so far.
    pub delayed: Arc<AtomicUsize>,
}

/// Hold the next server→client bytes after a client request containing `pattern`.
#[derive(Clone)]
struct DelayRule {
    pattern: Vec<u8>,
    by: Duration,
    /// Set once the request was seen; the next reply chunk is held for `by`.
    armed: bool,
}

impl Relay {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let generation = CancellationToken::new();
        let gen_holder = Arc::new(std::sync::Mutex::new(generation.clone()));
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let delay: Arc<Mutex<Option<DelayRule>>> = Arc::default();
        let delayed = Arc::new(AtomicUsize::new(0));
        let (g, r, a, s) = (
            gen_holder.clone(),
            refusing.clone(),
            accepted.clone(),
            stop.clone(),
        );
        let (dl, dn) = (delay.clone(), delayed.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = s.cancelled() => return,
                    c = listener.accept() => match c { Ok(c) => c, Err(_) => continue },
                };
                if r.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                a.fetch_add(1, Ordering::SeqCst);
                let cut = g.lock().unwrap().clone();
                let (dl, dn) = (dl.clone(), dn.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = pipe(cr, sw, Direction::Request, dl.clone(), dn.clone()) => {}
                        _ = pipe(sr, cw, Direction::Reply, dl, dn) => {}
                    }
                });
            }
        });
        Self {
            addr,
            generation,
            gen_holder,
            refusing,
            accepted,
            stop,
            delay,
            delayed,
        }
    }

    /// Drops every connection currently open through the relay.
    pub fn cut(&mut self) {
        let mut g = self.gen_holder.lock().unwrap();
        g.cancel();
        *g = CancellationToken::new();
        self.generation = g.clone();
    }

    pub fn set_refusing(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// Once: after the next client request whose bytes contain `pattern` passes through (the
    /// server still gets it at once and acts on it), the server's next reply bytes (on any
    /// connection through the relay) are held for `by` before the client sees them. Every byte still arrives, in
    /// order: only late.
    pub fn delay_reply_to(&self, pattern: &[u8], by: Duration) {
        *self.delay.lock().unwrap() = Some(DelayRule {
            pattern: pattern.to_vec(),
            by,
            armed: false,
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Reply,
}

/// Copies one direction of a connection, applying the delay rule.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Direction,
    rule: Arc<Mutex<Option<DelayRule>>>,
    delayed: Arc<AtomicUsize>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let hold = {
            let mut r = rule.lock().unwrap();
            match (dir, r.as_mut()) {
                (Direction::Request, Some(d)) if !d.armed => {
                    if chunk
                        .windows(d.pattern.len().max(1))
                        .any(|w| w == d.pattern.as_slice())
                    {
                        d.armed = true;
                    }
                    None
                }
                (Direction::Reply, Some(d)) if d.armed => {
                    let by = d.by;
                    *r = None;
                    Some(by)
                }
                _ => None,
            }
        };
        if let Some(by) = hold {
            delayed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(by).await;
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.gen_holder.lock().unwrap().cancel();
    }
}
