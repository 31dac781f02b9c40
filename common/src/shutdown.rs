//! SIGINT / SIGTERM become one [`CancellationToken`]; every component watches a child of it.
//!
//! The first signal asks for a clean stop (the beat hands its lease over, the worker drains).
//! A second one means the operator does not want to wait for that: the process exits at once
//! with code 130, like a shell's Ctrl-C. Nothing durable is lost by that: unacked deliveries are
//! requeued by the broker and the lease expires at its TTL.

use tokio_util::sync::CancellationToken;

/// Exit code of a second signal during shutdown (128 + SIGINT, the shell's convention).
pub const FORCED_EXIT_CODE: i32 = 130;

/// Returns a token cancelled on the first SIGINT or SIGTERM; a second one exits the process.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut signals = Signals::new();
        signals.next().await;
        tracing::info!("shutdown requested (a second signal exits at once)");
        t.cancel();
        signals.next().await;
        tracing::warn!(
            code = FORCED_EXIT_CODE,
            "second signal during shutdown: exiting now"
        );
        std::process::exit(FORCED_EXIT_CODE);
    });
    token
}

/// SIGINT and SIGTERM as one stream of "a signal arrived".
struct Signals {
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let unix = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => None,
        };
        Self { unix }
    }

    async fn next(&mut self) {
        match &mut self.unix {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            // Without signal handlers we can still stop on Ctrl-C.
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
