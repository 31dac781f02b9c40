//! Upper (and a few lower) bounds of every duration and count in the config.
//!
//! A value that parses is not yet a value the process can use: `expires = "1000000y"` is a
//! valid humantime string, but `fire_time + expires` overflows chrono and panics the beat at
//! its first fire. Each bound here is far above any sensible setting and far below what the
//! later arithmetic can hold (chrono conversions, `Instant + Duration`, milliseconds as `i64`
//! for Redis `PX`, RabbitMQ's `x-message-ttl` of at most 2^32-1 ms, tier labels, backoff
//! doubling), so a config that validates cannot overflow anywhere later. The reason for each
//! bound is written beside it; a value above one is refused at start naming the field (exit 2,
//! docs/design.md §2).

use std::time::Duration;

use super::ConfigError;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `redis.timeout`, `amqp.confirm_timeout`, `amqp.connect_timeout`: a network deadline
/// longer than an hour is a hang, and several of them are added and multiplied together.
pub const MAX_NETWORK_TIMEOUT: Duration = Duration::from_secs(HOUR);
/// `beat.lease_ttl`: failover takes about this long; Redis gets it in milliseconds.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(HOUR);
/// `worker.drain_timeout`: an orchestrator kills a process long before this.
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(HOUR);
/// `worker.done_ttl`: the dedup window, sent to Redis in milliseconds.
pub const MAX_DONE_TTL: Duration = Duration::from_secs(366 * DAY);
/// `backoff_base` / `backoff_max`: each becomes a RabbitMQ `x-message-ttl`, which must stay
/// under 2^32-1 ms (about 49 days).
pub const MAX_BACKOFF: Duration = Duration::from_secs(7 * DAY);
/// `schedules[].every`: ten years; longer intervals belong to `at` or a cron.
pub const MAX_EVERY: Duration = Duration::from_secs(3660 * DAY);
/// `schedules[].misfire_grace`: compared with `now - fire_time` in chrono.
pub const MAX_MISFIRE_GRACE: Duration = Duration::from_secs(366 * DAY);
/// `schedules[].expires`: added to the fire time in chrono for `expires_at`.
pub const MAX_EXPIRES: Duration = Duration::from_secs(366 * DAY);
/// `worker.concurrency`: handlers running at once (a tokio semaphore holds the permits).
pub const MAX_CONCURRENCY: i64 = 10_000;
/// `max_attempts`: more attempts than this is a retry loop, not a policy.
pub const MAX_ATTEMPTS: i64 = 1_000;
/// `redis.wait_replicas` beyond this is a typo, not a topology.
pub const MAX_WAIT_REPLICAS: i64 = 100;
/// A fire published more than a day late is no longer "jittered".
pub const MAX_JITTER: Duration = Duration::from_secs(DAY);
/// `amqp.max_body`: RabbitMQ itself refuses messages above 512 MiB.
pub const MAX_BODY: usize = 512 * 1024 * 1024;

type Result<T> = std::result::Result<T, ConfigError>;

/// Refuses `d` above `max`, naming `path` and the bound.
pub fn at_most(path: &str, d: Duration, max: Duration) -> Result<Duration> {
    if d > max {
        return Err(ConfigError::field(
            path,
            format!("must be at most {}", show(max)),
        ));
    }
    Ok(d)
}

/// A bound as a user would write it: `366d` rather than humantime's `1year 18h`.
fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs >= DAY && secs % DAY == 0 {
        format!("{}d", secs / DAY)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Refuses zero and values above `max`.
pub fn positive_at_most(path: &str, d: Duration, max: Duration) -> Result<Duration> {
    if d.is_zero() {
        return Err(ConfigError::field(path, "must be greater than 0"));
    }
    at_most(path, d, max)
}

/// A count in `1..=max`.
pub fn count(path: &str, v: i64, max: i64) -> Result<i64> {
    if !(1..=max).contains(&v) {
        return Err(ConfigError::field(
            path,
            format!("must be between 1 and {max}, got {v}"),
        ));
    }
    Ok(v)
}

/// A backoff delay: a whole number of milliseconds (each tier is a queue named after its
/// delay in milliseconds, so two delays within one millisecond would share a name with
/// different TTLs) from 1ms to [`MAX_BACKOFF`].
pub fn backoff(path: &str, d: Duration) -> Result<Duration> {
    if d.subsec_nanos() % 1_000_000 != 0 || d.is_zero() {
        return Err(ConfigError::field(
            path,
            "must be a whole number of milliseconds, at least 1ms",
        ));
    }
    at_most(path, d, MAX_BACKOFF)
}

/// Shortens a user-given value quoted in an error, so a 10 000-character name does not make
/// a 10 000-character message.
pub fn quote(v: &str) -> String {
    const MAX: usize = 64;
    if v.chars().count() <= MAX {
        return v.to_string();
    }
    let head: String = v.chars().take(MAX).collect();
    format!("{head}… ({} characters)", v.chars().count())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounds_keep_later_arithmetic_in_range() {
        // The beat adds expires to a fire time and subtracts grace from now; the worker sends
        // done_ttl as i64 ms; tiers become u32 ms TTLs.
        let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").unwrap();
        let e = chrono::Duration::from_std(MAX_EXPIRES).unwrap();
        assert!(far.checked_add_signed(e).is_some());
        assert!(chrono::Duration::from_std(MAX_MISFIRE_GRACE).is_ok());
        assert!(i64::try_from(MAX_DONE_TTL.as_millis()).is_ok());
        assert!(MAX_BACKOFF.as_millis() < u128::from(u32::MAX));
        assert!(i64::try_from(MAX_EVERY.as_secs()).is_ok());
        let sum = MAX_LEASE_TTL * 3 + MAX_NETWORK_TIMEOUT * 3 + MAX_DRAIN_TIMEOUT;
        assert!(std::time::Instant::now().checked_add(sum).is_some());
    }

    #[test]
    fn backoff_refuses_sub_millisecond_parts() {
        assert!(backoff("b", Duration::from_micros(1500)).is_err());
        assert!(backoff("b", Duration::ZERO).is_err());
        assert!(backoff("b", Duration::from_millis(1)).is_ok());
        assert!(backoff("b", MAX_BACKOFF + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn long_values_are_shortened() {
        let long = "x".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 100 && q.contains("10000 characters"), "{q}");
        assert_eq!(quote("abc"), "abc");
    }
}
