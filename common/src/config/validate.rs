//! Turns [`RawSettings`] into [`Settings`], refusing every value the design rules out.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chrono_tz::Tz;

use super::bounds::{self, quote};
use super::connect;
use super::format;
use super::raw::{RawRetry, RawSchedule, RawSettings};
use super::tokens::{self, OpsTokens};
use super::{
    AmqpSettings, BeatSettings, CatchUp, ConfigError, MessageFormat, OpsSettings, Overlap,
    RedisMode, RedisSettings, RetryPolicy, Schedule, Settings, WorkerSettings, MAX_HANDLER_TIMEOUT,
};
use crate::schedule::Trigger;
use crate::secret::SecretUrl;

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn validate(raw: RawSettings, raw_schedules: Vec<RawSchedule>) -> Result<Settings> {
    let namespace = check_name("namespace", &raw.namespace, 40, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
    })?;
    let target = connect::redis_target("redis.url", &raw.redis.url.0)?;
    let redis_url = match target.mode {
        RedisMode::Single => target.nodes[0].clone(),
        // Not a single URL the `url` crate can read (several hosts): redacted as text.
        _ => SecretUrl::from_text(&raw.redis.url.0),
    };
    let wait_replicas = match u32::try_from(raw.redis.wait_replicas) {
        Ok(n) if i64::from(n) <= bounds::MAX_WAIT_REPLICAS => n,
        _ => {
            return Err(ConfigError::field(
                "redis.wait_replicas",
                format!(
                    "must be between 0 and {}, got {}",
                    bounds::MAX_WAIT_REPLICAS,
                    raw.redis.wait_replicas
                ),
            ))
        }
    };
    let redis = RedisSettings {
        url: redis_url,
        target,
        timeout: network_timeout("redis.timeout", raw.redis.timeout)?,
        sentinel_password: connect::secret(&raw.redis.sentinel_password),
        wait_replicas,
        tls: connect::tls("redis.tls", &raw.redis.tls)?,
    };
    let (amqp_url, fallback) = connect::amqp_urls(&raw.amqp.url)?;
    let amqp = AmqpSettings {
        url: amqp_url,
        fallback,
        tls: connect::tls("amqp.tls", &raw.amqp.tls)?,
        confirm_timeout: network_timeout("amqp.confirm_timeout", raw.amqp.confirm_timeout)?,
        connect_timeout: network_timeout("amqp.connect_timeout", raw.amqp.connect_timeout)?,
        max_body: max_body(raw.amqp.max_body)?,
    };
    let b = &raw.beat;
    if b.lease_ttl < Duration::from_millis(300) {
        return Err(ConfigError::field(
            "beat.lease_ttl",
            "must be at least 300ms",
        ));
    }
    bounds::at_most("beat.lease_ttl", b.lease_ttl, bounds::MAX_LEASE_TTL)?;
    if b.renew_every.is_zero() || b.renew_every > b.lease_ttl / 3 {
        return Err(ConfigError::field(
            "beat.renew_every",
            "must be > 0 and <= lease_ttl/3",
        ));
    }
    let beat = BeatSettings {
        lease_ttl: b.lease_ttl,
        renew_every: b.renew_every,
        ops_addr: ops_addr("beat.ops_addr", &b.ops_addr)?,
    };
    let w = &raw.worker;
    if w.queues.is_empty() {
        return Err(ConfigError::field(
            "worker.queues",
            "must name at least one queue",
        ));
    }
    let mut queues = Vec::new();
    for (i, q) in w.queues.iter().enumerate() {
        let q = queue_name(&format!("worker.queues[{i}]"), q)?;
        if queues.contains(&q) {
            return Err(ConfigError::field(
                format!("worker.queues[{i}]"),
                "listed twice",
            ));
        }
        queues.push(q);
    }
    let mut celery_queues: Vec<String> = Vec::new();
    for (i, q) in w.celery_queues.iter().enumerate() {
        let path = format!("worker.celery_queues[{i}]");
        // Same rule as worker.queues: the name is part of `{ns}.{queue}.dead` and its tiers.
        let q = queue_name(&path, q)?;
        if queues.contains(&q) {
            return Err(ConfigError::field(
                path,
                "also in worker.queues: one name cannot be a drumbeat and a Celery queue",
            ));
        }
        if celery_queues.contains(&q) {
            return Err(ConfigError::field(path, "listed twice"));
        }
        celery_queues.push(q);
    }
    let prefetch = positive("worker.prefetch", w.prefetch)?;
    let prefetch = u16::try_from(prefetch)
        .map_err(|_| ConfigError::field("worker.prefetch", "must be at most 65535"))?;
    let handler_timeout = nonzero("worker.handler_timeout", w.handler_timeout)?;
    if handler_timeout >= MAX_HANDLER_TIMEOUT {
        return Err(ConfigError::field(
            "worker.handler_timeout",
            "must be under 30m (RabbitMQ closes a channel whose delivery stays unacked 30 minutes)",
        ));
    }
    let worker = WorkerSettings {
        queues,
        celery_queues,
        prefetch,
        concurrency: usize::try_from(bounds::count(
            "worker.concurrency",
            w.concurrency,
            bounds::MAX_CONCURRENCY,
        )?)
        .unwrap_or(1),
        handler_timeout,
        drain_timeout: bounds::at_most(
            "worker.drain_timeout",
            w.drain_timeout,
            bounds::MAX_DRAIN_TIMEOUT,
        )?,
        done_ttl: bounds::positive_at_most("worker.done_ttl", w.done_ttl, bounds::MAX_DONE_TTL)?,
        ops_addr: ops_addr("worker.ops_addr", &w.ops_addr)?,
        retry: retry("worker.retry", &w.retry)?,
        beat_users: beat_users(w.beat_users.as_deref(), &amqp)?,
    };
    let mut queue_retry = BTreeMap::new();
    for (name, q) in &raw.queues {
        let name = queue_name(&format!("queues.{name}"), name)?;
        if let Some(r) = &q.retry {
            queue_retry.insert(name.clone(), retry(&format!("queues.{name}.retry"), r)?);
        }
    }
    let mut names = HashSet::new();
    let mut schedules = Vec::with_capacity(raw_schedules.len());
    for (i, s) in raw_schedules.iter().enumerate() {
        let s = schedule(&format!("schedules[{i}]"), s)?;
        if !names.insert(s.name.clone()) {
            return Err(ConfigError::field(
                format!("schedules[{i}].name"),
                format!("duplicate schedule name `{}`", s.name),
            ));
        }
        schedules.push(s);
    }
    let tokens_file = match &raw.ops.tokens_file {
        Some(path) => Some(tokens::read_file(path)?),
        None => None,
    };
    let ops = OpsSettings {
        tokens: OpsTokens::build(&raw.ops.tokens, tokens_file.as_deref())?,
        tokens_file: raw.ops.tokens_file.clone(),
    };
    Ok(Settings {
        ops,
        namespace,
        redis,
        amqp,
        beat,
        worker,
        queue_retry,
        schedules,
    })
}

pub(super) fn schedule(path: &str, s: &RawSchedule) -> Result<Schedule> {
    let field = |f: &str| format!("{path}.{f}");
    let name = check_name(&field("name"), &s.name, 100, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    })?;
    if s.task.trim().is_empty() || s.task.chars().count() > 200 {
        return Err(ConfigError::field(
            field("task"),
            "must be 1-200 characters",
        ));
    }
    let formatted = format::formatted(path, s, queue_name)?;
    let timezone: Tz = s.timezone.parse().map_err(|_| {
        ConfigError::field(
            field("timezone"),
            format!(
                "unknown time zone `{}` (use an IANA name such as Europe/Berlin)",
                quote(&s.timezone)
            ),
        )
    })?;
    let trigger = match (&s.cron, &s.every, &s.at) {
        (Some(c), None, None) => {
            Trigger::cron(c).map_err(|e| ConfigError::field(field("cron"), e.to_string()))?
        }
        (None, Some(d), None) => {
            bounds::at_most(&field("every"), *d, bounds::MAX_EVERY)?;
            Trigger::every(*d).map_err(|e| ConfigError::field(field("every"), e.to_string()))?
        }
        (None, None, Some(a)) => {
            Trigger::at_rfc3339(a).map_err(|e| ConfigError::field(field("at"), e.to_string()))?
        }
        _ => {
            return Err(ConfigError::field(
                path,
                "set exactly one of `cron`, `every` or `at`",
            ))
        }
    };
    let catch_up = match s.catch_up.as_str() {
        "skip" => CatchUp::Skip,
        "latest" => CatchUp::Latest,
        "all" => CatchUp::All,
        other => {
            return Err(ConfigError::field(
                field("catch_up"),
                format!("must be skip, latest or all, got `{}`", quote(other)),
            ))
        }
    };
    if let Some(e) = s.expires {
        bounds::positive_at_most(&field("expires"), e, bounds::MAX_EXPIRES)?;
    }
    bounds::at_most(
        &field("misfire_grace"),
        s.misfire_grace,
        bounds::MAX_MISFIRE_GRACE,
    )?;
    let overlap = match &s.overlap {
        None => Overlap::Allow,
        Some(o) => Overlap::parse(o).ok_or_else(|| {
            ConfigError::field(
                field("overlap"),
                format!("must be allow, skip or buffer_one, got `{}`", quote(o)),
            )
        })?,
    };
    if overlap != Overlap::Allow && matches!(formatted.format, MessageFormat::Celery(_)) {
        return Err(ConfigError::field(
            field("overlap"),
            format!(
                "`{}` needs drumbeat workers (Celery workers do not honour it); \
                 use allow with format = \"celery\"",
                overlap.as_str()
            ),
        ));
    }
    let jitter = match s.jitter {
        None => None,
        Some(j) if j.is_zero() => None,
        Some(j) => Some(jitter(&field("jitter"), j, &trigger, timezone)?),
    };
    Ok(Schedule {
        name,
        task: s.task.clone(),
        queue: formatted.queue,
        trigger,
        timezone,
        args: formatted.args,
        misfire_grace: s.misfire_grace,
        catch_up,
        expires: s.expires,
        format: formatted.format,
        overlap,
        jitter,
    })
}

/// `jitter` must stay under the schedule's smallest interval, so a jittered fire is always
/// published before the next nominal one (docs/design.md §15).
fn jitter(path: &str, j: Duration, trigger: &Trigger, tz: Tz) -> Result<Duration> {
    bounds::at_most(path, j, bounds::MAX_JITTER)?;
    match trigger.smallest_gap(chrono::Utc::now(), tz) {
        Some(gap) if j >= gap => Err(ConfigError::field(
            path,
            format!(
                "must be less than the schedule's smallest interval ({})",
                humantime::format_duration(gap)
            ),
        )),
        _ => Ok(j),
    }
}

/// `worker.beat_users`: default the user of `amqp.url` (docs/design.md §14).
fn beat_users(raw: Option<&[String]>, amqp: &AmqpSettings) -> Result<Vec<String>> {
    let Some(list) = raw else {
        return Ok(vec![amqp.user()]);
    };
    if list.is_empty() {
        return Err(ConfigError::field(
            "worker.beat_users",
            "must name at least one AMQP user (leave it out for the user of amqp.url)",
        ));
    }
    for (i, u) in list.iter().enumerate() {
        if u.is_empty() || u.len() > 255 {
            return Err(ConfigError::field(
                format!("worker.beat_users[{i}]"),
                "must be 1-255 bytes",
            ));
        }
    }
    Ok(list.to_vec())
}

fn retry(path: &str, r: &RawRetry) -> Result<RetryPolicy> {
    let max_attempts = bounds::count(
        &format!("{path}.max_attempts"),
        r.max_attempts,
        bounds::MAX_ATTEMPTS,
    )?;
    let max_attempts = u32::try_from(max_attempts).unwrap_or(1);
    let backoff_base = bounds::backoff(&format!("{path}.backoff_base"), r.backoff_base)?;
    bounds::backoff(&format!("{path}.backoff_max"), r.backoff_max)?;
    if r.backoff_max < backoff_base {
        return Err(ConfigError::field(
            format!("{path}.backoff_max"),
            "must be >= backoff_base",
        ));
    }
    Ok(RetryPolicy {
        max_attempts,
        backoff_base,
        backoff_max: r.backoff_max,
    })
}

fn check_name(path: &str, v: &str, max: usize, ok: impl Fn(char) -> bool) -> Result<String> {
    if v.is_empty() || v.len() > max || !v.chars().all(ok) {
        return Err(ConfigError::field(
            path,
            format!(
                "`{}` is not a valid name (1-{max} characters from the allowed set)",
                quote(v)
            ),
        ));
    }
    Ok(v.to_string())
}

/// Queue names become part of AMQP names (`{ns}.{queue}.retry.1s`), so dots are not allowed.
fn queue_name(path: &str, v: &str) -> Result<String> {
    check_name(path, v, 100, |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })
}

fn positive(path: &str, v: i64) -> Result<i64> {
    if v <= 0 {
        return Err(ConfigError::field(
            path,
            format!("must be at least 1, got {v}"),
        ));
    }
    Ok(v)
}

fn nonzero(path: &str, d: Duration) -> Result<Duration> {
    bounds::positive_at_most(path, d, Duration::MAX)
}

fn network_timeout(path: &str, d: Duration) -> Result<Duration> {
    bounds::positive_at_most(path, d, bounds::MAX_NETWORK_TIMEOUT)
}

fn max_body(v: usize) -> Result<usize> {
    if v == 0 || v > bounds::MAX_BODY {
        return Err(ConfigError::field(
            "amqp.max_body",
            format!("must be between 1 and {} bytes, got {v}", bounds::MAX_BODY),
        ));
    }
    Ok(v)
}

fn ops_addr(path: &str, v: &str) -> Result<Option<SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| {
        ConfigError::field(
            path,
            format!("`{}` is not host:port (an IP address) or \"off\"", quote(v)),
        )
    })
}
