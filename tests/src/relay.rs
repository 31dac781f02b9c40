//! An in-process TCP relay between a component and a server, to cut connections on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards `127.0.0.1:port` → `upstream`; `cut()` drops every live connection,
/// `set_refusing(true)` drops new ones at once.
pub struct Relay {
    pub addr: SocketAddr,
    generation: CancellationToken,
    gen_holder: Arc<std::sync::Mutex<CancellationToken>>,
    refusing: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
    stop: CancellationToken,
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
        let (g, r, a, s) = (
            gen_holder.clone(),
            refusing.clone(),
            accepted.clone(),
            stop.clone(),
        );
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
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut c, mut sv) = (client, server);
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut c, &mut sv) => {}
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
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.gen_holder.lock().unwrap().cancel();
    }
}
