//! Retry policy: how many attempts, and which broker-held delay tier each retry waits in.
//!
//! Delays are held by RabbitMQ in one TTL queue per tier (`{ns}.{queue}.retry.{delay}`), never
//! by unacked messages in a worker. Tiers are `backoff_base * 2^i` up to `backoff_max` (plus
//! `backoff_max` itself), so a policy has a small fixed set of queues.

use std::time::Duration;

use rand::Rng;

/// Attempts and backoff for one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; after the last failure the task is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the second attempt (about).
    pub backoff_base: Duration,
    /// No delay is longer than this.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The delay tiers of this policy, shortest first.
    pub fn tiers(&self) -> Vec<Duration> {
        let mut tiers = Vec::new();
        let mut d = self.backoff_base;
        while d < self.backoff_max && tiers.len() < 40 {
            tiers.push(d);
            d = d.saturating_mul(2);
        }
        tiers.push(self.backoff_max);
        tiers
    }

    /// The tier a retry after failed attempt `attempt` (1-based) waits in: about
    /// `base * 2^(attempt-1)`, jittered by picking, at random, that tier or the one below
    /// (so retries of a burst of failures spread over two tiers instead of one instant).
    pub fn backoff_tier(&self, attempt: u32) -> Duration {
        let tiers = self.tiers();
        let ideal = attempt.saturating_sub(1) as usize;
        let top = ideal.min(tiers.len() - 1);
        let pick = if top > 0 && rand::rng().random_bool(0.5) {
            top - 1
        } else {
            top
        };
        tiers[pick]
    }

    /// The shortest tier that waits at least `wanted` (capped at `backoff_max`): used when a
    /// handler or an HTTP `Retry-After` asks for a specific delay.
    pub fn tier_at_least(&self, wanted: Duration) -> Duration {
        let tiers = self.tiers();
        tiers
            .iter()
            .copied()
            .find(|t| *t >= wanted)
            .unwrap_or(self.backoff_max)
    }
}

/// The name suffix of a tier queue: `1s`, `8s`, `100ms`, `10m`, `1h` (no spaces, stable).
pub fn tier_label(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff_base: Duration::from_millis(base_ms),
            backoff_max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn tiers_double_up_to_the_cap() {
        let p = policy(1000, 600_000);
        let labels: Vec<_> = p.tiers().into_iter().map(tier_label).collect();
        assert_eq!(
            labels,
            ["1s", "2s", "4s", "8s", "16s", "32s", "64s", "128s", "256s", "512s", "10m"]
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy(100, 1000);
        for attempt in 1..10 {
            let d = p.backoff_tier(attempt);
            let ideal = Duration::from_millis(100 * 2u64.pow(attempt - 1)).min(p.backoff_max);
            assert!(
                d <= ideal && d * 2 >= ideal.min(p.backoff_max),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn tier_at_least_rounds_up() {
        let p = policy(1000, 60_000);
        assert_eq!(
            p.tier_at_least(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.tier_at_least(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(p.tier_at_least(Duration::ZERO), Duration::from_secs(1));
    }
}
